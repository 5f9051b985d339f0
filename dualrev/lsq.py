"""Nonlinear least squares with dualrev Jacobians: ``dualrev.optimize.least_squares``.

``scipy.optimize.least_squares`` wants the Jacobian of the residuals at each
accepted point. The cost model picks the mode once, at ``x0`` (forward for
tall-and-thin problems, one batched pass for all ``n`` directions; reverse
for wide ones), and every later Jacobian goes straight to that mode. With
``tr_solver="lsmr"`` the Jacobian is a :class:`~dualrev.operators.JacobianOperator`
instead: one recording per point, products by forward replay and reverse
sweep, never the dense matrix.
"""


import numpy as np
import scipy.optimize

from .api import choose_mode, jacfwd, jacrev
from .compiled import compile as compile_function, kept_on
from .finite import first_nonfinite_op, require_finite
from .operators import jacobian_operator, sum_of_outputs
from .tree import flatten, ravel_pytree

__all__ = ["least_squares", "JAC_MODES"]

#: The Jacobian modes of :func:`least_squares`.
JAC_MODES = ("auto", "fwd", "rev", "operator")



class _Residuals:
    """``residual(unravel(x), *args)`` on flat ``x``, as one flat vector."""

    def __init__(self, residual, unravel, args, check_finite):
        self.residual, self.unravel, self.args = residual, unravel, args
        self.check_finite = check_finite

    def flat(self, x):
        leaves = flatten(self.residual(self.unravel(x), *self.args))[0]
        return leaves[0].ravel() if len(leaves) == 1 and np.ndim(leaves[0]) == 1 \
            else np.concatenate([np.reshape(leaf, (-1,)) for leaf in leaves])

    def _diagnose(self, x):
        point = np.asarray(x, np.float64)
        return lambda: first_nonfinite_op(sum_of_outputs(self.flat), point)

    def value(self, x):
        r = np.asarray(self.flat(x), np.float64)
        if self.check_finite:
            require_finite("residual", r, x, self._diagnose(x))
        return r

    def checked(self, quantity, J, x):
        if self.check_finite:
            require_finite(quantity, J, x, self._diagnose(x))
        return J


def least_squares(residual, x0, args=(), *, method="trf", jac_mode="auto",
                  tr_solver=None, check_finite=True, compile=False, **kwargs):
    """``scipy.optimize.least_squares`` with the Jacobian computed by dualrev.

    Minimises ``0.5 * sum(residual(x, *args) ** 2)`` (with SciPy's robust
    ``loss`` when given). The residuals are written in plain NumPy; the
    Jacobian mode is chosen once, at ``x0``, by the cost model
    (:func:`dualrev.choose_mode`), not re-chosen at every point.

    Parameters
    ----------
    residual : callable
        ``residual(x, *args)`` returns an array (or a structure of arrays,
        flattened in :func:`dualrev.tree.flatten` order), ``x`` in the
        structure of ``x0``.
    x0 : float, array or nested dict/list/tuple of arrays
        Starting point.
    args : tuple
        Further arguments of ``residual``, held constant.
    method : {"trf", "dogbox", "lm"}
        SciPy's algorithm.
    jac_mode : {"auto", "fwd", "rev", "operator"}
        ``"auto"``: the cost model's choice at ``x0``; ``"fwd"``/``"rev"``:
        dense Jacobians by forward / reverse mode; ``"operator"``: a
        :class:`~dualrev.operators.JacobianOperator` (``trf`` and ``dogbox``
        with ``tr_solver="lsmr"``; the default when ``tr_solver="lsmr"``).
    tr_solver : {None, "exact", "lsmr"}
        SciPy's trust-region subproblem solver.
    check_finite : bool
        Stop with :class:`~dualrev.finite.NonFiniteError` when the residual
        or Jacobian is not finite, naming the iterate and the first op that
        gave the NaN or inf.
    compile : bool
        Stage the dense Jacobian with :func:`dualrev.compile` (one staging
        run, then generated NumPy code per point). The staged Jacobian is
        kept for the residual function and reused by later solves with the
        same ``args`` objects and structure of ``x0``: worth it for small,
        overhead-bound problems solved repeatedly.
    **kwargs
        Passed to SciPy (``bounds`` on the flat vector, ``loss``,
        ``f_scale``, ``x_scale``, ``ftol``, ``xtol``, ``gtol``,
        ``max_nfev``, ``verbose``...).

    Returns
    -------
    scipy.optimize.OptimizeResult
        SciPy's result with ``x`` in the structure of ``x0``, ``x_flat`` the
        flat vector and ``jac_mode`` the mode used.

    See Also
    --------
    dualrev.jacobian_operator, dualrev.gauss_newton_operator, minimize

    Examples
    --------
    >>> import numpy as np
    >>> from dualrev.optimize import least_squares
    >>> t = np.linspace(0.0, 3.0, 50)
    >>> y = 2.0 * np.exp(-1.5 * t)
    >>> res = least_squares(lambda p: p["a"] * np.exp(-p["k"] * t) - y,
    ...                     {"a": 1.0, "k": 1.0})
    >>> round(float(res.x["a"]), 6), round(float(res.x["k"]), 6), res.jac_mode
    (2.0, 1.5, 'fwd')
    """
    if "jac" in kwargs:
        raise TypeError("least_squares computes 'jac' itself; call "
                        "scipy.optimize.least_squares directly to supply your own")
    if jac_mode not in JAC_MODES:
        raise ValueError(f"jac_mode must be one of {JAC_MODES}, not {jac_mode!r}")
    flat0, unravel = ravel_pytree(x0)
    args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
    residuals = _Residuals(residual, unravel, args, check_finite)
    stage_key = compile and _stage_key(x0, args)
    if jac_mode == "auto":
        jac_mode = "operator" if tr_solver == "lsmr" else _auto_mode(residuals, flat0, stage_key)
    if jac_mode == "operator" and (method == "lm" or tr_solver not in (None, "lsmr")):
        raise ValueError("jac_mode='operator' needs tr_solver='lsmr' (method 'trf' or "
                         f"'dogbox'), not method={method!r}, tr_solver={tr_solver!r}")
    if jac_mode == "operator":
        tr_solver = "lsmr"
    result = scipy.optimize.least_squares(
        residuals.value, flat0,
        jac=_jacobian(residuals, jac_mode, check_finite, stage_key),
        method=method, tr_solver=tr_solver, **kwargs)
    result.x_flat = result.x
    result.x = unravel(result.x.copy())
    result.jac_mode = jac_mode
    return result


def _stage_key(x0, args):
    return (tuple(id(a) for a in args), repr(flatten(x0)[1]),
            tuple(np.shape(leaf) for leaf in flatten(x0)[0]))


def _staged_entries(residual):
    """``{(mode, ids of args, structure of x0): (staged Jacobian, args)}``:
    with ``compile=True`` a residual's Jacobian is staged once and reused by
    later solves with the same arguments, kept with the residual
    (:func:`~dualrev.compiled.kept_on`)."""
    return kept_on(residual, "least_squares")


def _auto_mode(residuals, flat0, stage_key):
    """The cost model's mode at ``x0``; remembered with the staged Jacobians."""
    if not stage_key:
        return choose_mode(residuals.flat, (flat0,))
    staged = _staged_entries(residuals.residual)
    key = ("auto",) + stage_key
    if key not in staged:
        staged[key] = (choose_mode(residuals.flat, (flat0,)), residuals.args)
    return staged[key][0]


def _dense_transform(residuals, mode, stage_key):
    """``x -> J(x)`` in ``mode``, staged (and kept) when ``stage_key`` is given."""
    transform = jacfwd(residuals.flat) if mode == "fwd" else jacrev(residuals.flat)
    if not stage_key:
        return transform
    staged = _staged_entries(residuals.residual)
    key = (mode,) + stage_key
    if key not in staged:
        staged[key] = (compile_function(transform), residuals.args)
    return staged[key][0]


def _jacobian(residuals, mode, check_finite, stage_key=None):
    """The ``jac(x)`` callable for SciPy in ``mode``."""
    if mode == "operator":
        def jac_operator(x, *_):
            return jacobian_operator(residuals.flat, np.asarray(x, np.float64),
                                     check_finite=check_finite)
        return jac_operator
    transform = _dense_transform(residuals, mode, stage_key)

    def jac_dense(x, *_):
        J = np.asarray(transform(np.asarray(x, np.float64)), np.float64)
        return residuals.checked("Jacobian", J.reshape(-1, np.size(x)), x)
    return jac_dense
