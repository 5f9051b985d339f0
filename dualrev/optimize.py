"""Optimisation with dualrev derivatives: a SciPy adapter and Hessian-free.

:func:`minimize` hands ``scipy.optimize.minimize`` the gradient and the
Hessian-vector products of a plain NumPy objective, computed by dualrev.
Parameters may be nested dicts/lists/tuples of arrays: SciPy sees one flat
float64 vector, the result comes back in the structure of ``x0``.

Newton-type methods call ``hessp`` many times at one point (once per
conjugate-gradient step). Each point is therefore recorded once, by
:func:`~dualrev.hvp.hvp_operator`: the recording gives the value, the
gradient and an operator whose every product is one sweep of the recorded
tape, never a new call of the objective.

:func:`hessian_free` is a truncated-Newton optimiser in the style of Martens
(2010) for models with many parameters: damped conjugate gradient on a
quadratic model, with Hessian or Gauss-Newton curvature products.

:func:`least_squares` hands ``scipy.optimize.least_squares`` the Jacobian of
plain NumPy residuals, its mode chosen once by the cost model, or as a
:class:`~dualrev.operators.JacobianOperator` for ``tr_solver="lsmr"``.

:func:`jac`, :func:`hessp` and :func:`hess` give the callables SciPy expects,
for code that calls SciPy itself.

Every optimiser here checks what it computes: a NaN or inf stops the run
with :class:`~dualrev.finite.NonFiniteError` (``check_finite=False`` turns
that off).

(:func:`hessian_free` and :class:`ModelLoss` live in
:mod:`dualrev.hessian_free` and :mod:`dualrev.operators`,
:func:`least_squares` in :mod:`dualrev.lsq`, the operators in
:mod:`dualrev.operators`; they are reachable from here too.)
"""

import collections
import copy
import inspect

import numpy as np
import scipy.optimize
from scipy.optimize import LinearConstraint, NonlinearConstraint

from .api import float_dtype, jacobian, value_and_grad
from .compiled import compile, kept_on
from .finite import first_nonfinite_op, require_finite
from .hessian_free import ModelLoss, hessian_free
from .hvp import DENSE_HESSIAN_MAX, HVPProgram, hessian, hvp_operator
from .lazy import is_lazy
from .lsq import least_squares
from .operators import gauss_newton_operator, jacobian_operator
from .tree import flat_vector, flatten, ravel_pytree

__all__ = ["minimize", "least_squares", "jac", "hessp", "hess", "hessian_free", "ModelLoss",
           "jacobian_operator", "gauss_newton_operator",
           "HESSP_METHODS", "HESS_METHODS", "GRADIENT_METHODS"]

#: SciPy methods that use Hessian-vector products (given ``hessp``).
HESSP_METHODS = ("newton-cg", "trust-ncg", "trust-krylov", "trust-constr")

#: SciPy methods that need the full Hessian matrix (given ``hess``).
HESS_METHODS = ("trust-exact", "dogleg")

#: SciPy methods that use the gradient only.
GRADIENT_METHODS = ("bfgs", "l-bfgs-b", "cg", "slsqp", "tnc")

#: Points kept per objective: a trust-region method that rejects a trial
#: point returns to the current one, so the current and the trial point.
_CACHE_SIZE = 2


# ---- the objective seen by SciPy -------------------------------------------------

class _Objective:
    """``fun(unravel(x), *args)`` on flat float64 ``x``, derivatives cached per x.

    With ``operator=True`` each new point is recorded once by
    :func:`hvp_operator` (value, gradient and Hessian products from one
    recording); otherwise by :func:`value_and_grad`. The last
    ``_CACHE_SIZE`` points are kept.
    """

    def __init__(self, fun, unravel=None, hvp_mode="rev-rev", operator=False,
                 check_finite=False, compiled=False):
        self.fun = fun
        self.unravel = unravel if unravel is not None else _identity
        self.hvp_mode = hvp_mode
        self.operator = operator
        self.check_finite = check_finite
        self._cache = collections.OrderedDict()
        self.dtype = np.dtype(np.float64)
        # Compiled: every derivative staged once (dualrev.compile), replayed after.
        self._value_and_grad = value_and_grad(fun)
        self._hessian = hessian(self._flat_fun, mode=hvp_mode)
        self._program = None
        if compiled:
            self._value_and_grad, self._program = _staged(fun, hvp_mode)
            self._hessian = compile(self._hessian)

    def _checked(self, quantity, array, x, args):
        if self.check_finite:
            require_finite(quantity, array, x, lambda: first_nonfinite_op(
                self.fun, self.unravel(np.asarray(x, np.float64)), args))
        return array

    def _entry(self, x, args, operator):
        x = np.asarray(x, np.float64)
        key = x.tobytes()
        entry = self._cache.get(key)
        if entry is not None and _same_args(entry["args"], args) \
                and (entry["operator"] is not None or not operator):
            self._cache.move_to_end(key)
            return entry
        point = self.unravel(x.astype(self.dtype))  # f runs in the dtype of x0
        if operator:
            op = hvp_operator(self.fun, point, self.hvp_mode, args=args) \
                if self._program is None else self._program.operator(point, args=args)
            entry = {"value": op.value, "grad": op.grad, "operator": op}
        else:
            value, g = self._value_and_grad(point, *args)
            entry = {"value": float(value), "grad": flat_vector(g, x.size), "operator": None}
        entry["args"] = args
        self._checked("objective value", entry["value"], x, args)
        self._checked("gradient", entry["grad"], x, args)
        self._cache[key] = entry
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return entry

    def value(self, x, *args):
        return self._entry(x, args, self.operator)["value"]

    def jac(self, x, *args):
        return self._entry(x, args, self.operator)["grad"].copy()

    def hessp(self, x, p, *args):
        product = self._entry(x, args, True)["operator"]._matvec(np.asarray(p, np.float64))
        return self._checked("Hessian-vector product", product, x, args)

    def hess(self, x, *args):
        x = np.asarray(x, np.float64)
        H = self._entry(x, args, True)["operator"].matrix if self.operator else None
        if H is None:
            H = self._hessian(x, *args)
        return self._checked("Hessian", np.asarray(H, np.float64).reshape(x.size, x.size),
                             x, args)

    def plain_value(self, x, *args):
        value = float(self.fun(self.unravel(np.asarray(x, np.float64)), *args))
        return self._checked("objective value", value, x, args)

    def _flat_fun(self, x, *args):
        return self.fun(self.unravel(x), *args)


def _staged(fun, hvp_mode):
    """(value_and_grad, HVPProgram) of ``fun``, compiled; kept with ``fun``
    (:func:`~dualrev.compiled.kept_on`), so a second solve of the same
    objective (new data of the same shapes, a new start) replays the programs
    of the first, as a jit cache does."""
    per_mode = kept_on(fun, "minimize")
    if hvp_mode not in per_mode:
        per_mode[hvp_mode] = (compile(value_and_grad(fun)), HVPProgram(fun, hvp_mode))
    return per_mode[hvp_mode]


def _identity(x):
    return x


def _same_args(a, b):
    return len(a) == len(b) and all(u is v for u, v in zip(a, b))


# ---- callables for SciPy ---------------------------------------------------------------

def jac(f):
    """The gradient of ``f`` as the ``jac`` callable SciPy expects.

    Parameters
    ----------
    f : callable
        ``f(x, *args)`` returns a scalar; ``x`` is a flat float vector.

    Returns
    -------
    callable
        ``jac(x, *args)`` returns the gradient as a float64 vector, by one
        reverse sweep.

    See Also
    --------
    hessp, hess, minimize

    Examples
    --------
    >>> import numpy as np, scipy.optimize
    >>> from dualrev.optimize import jac
    >>> f = lambda x: np.sum((x - 3.0) ** 2)
    >>> res = scipy.optimize.minimize(f, np.zeros(2), jac=jac(f), method="BFGS")
    >>> np.round(res.x, 6)
    array([3., 3.])
    """
    return _Objective(f).jac


def hessp(f, mode="rev-rev"):
    """Hessian-vector products of ``f`` as the ``hessp`` callable SciPy expects.

    The Hessian at each new ``x`` is recorded once as an
    :class:`~dualrev.hvp.HVPOperator`; further products at the same ``x``
    (SciPy's conjugate-gradient steps) sweep that recording only.

    Parameters
    ----------
    f : callable
        ``f(x, *args)`` returns a scalar; ``x`` is a flat float vector.
    mode : {"rev-rev", "fwd-rev"}
        How each product is computed (see :func:`~dualrev.hvp.hvp_operator`).

    Returns
    -------
    callable
        ``hessp(x, p, *args)`` returns ``H(x) @ p`` as a float64 vector.

    See Also
    --------
    jac, hess, dualrev.hvp_operator

    Examples
    --------
    >>> import numpy as np
    >>> from dualrev.optimize import hessp
    >>> hessp(lambda x: x[0] ** 2 * x[1])(np.array([1.0, 3.0]), np.array([1.0, 0.0]))
    array([6., 2.])
    """
    return _Objective(f, hvp_mode=mode, operator=True).hessp


def hess(f, mode="fwd-rev"):
    """The Hessian matrix of ``f`` as the ``hess`` callable SciPy expects.

    Parameters
    ----------
    f : callable
        ``f(x, *args)`` returns a scalar; ``x`` is a flat float vector.
    mode : {"fwd-rev", "rev-rev"}
        See :func:`~dualrev.hvp.hessian`.

    Returns
    -------
    callable
        ``hess(x, *args)`` returns the ``(n, n)`` Hessian.

    See Also
    --------
    jac, hessp, dualrev.hessian

    Examples
    --------
    >>> import numpy as np
    >>> from dualrev.optimize import hess
    >>> hess(lambda x: x[0] ** 2 * x[1])(np.array([1.0, 3.0]))
    array([[6., 2.],
           [2., 0.]])
    """
    return _Objective(f, hvp_mode=mode).hess


# ---- minimize ---------------------------------------------------------------------------

def minimize(fun, x0, args=(), method="trust-ncg", hvp_mode="rev-rev", *,
             check_finite=True, compile=None, **kwargs):
    """``scipy.optimize.minimize`` with derivatives computed by dualrev.

    The objective is written in plain NumPy; dualrev supplies what the
    chosen method uses: the gradient (value and gradient from one
    recording), Hessian-vector products (one
    :class:`~dualrev.hvp.HVPOperator` per iterate, every product at that
    iterate one sweep of it) or the full Hessian (``trust-exact``,
    ``dogleg``). Constraints get their Jacobians from dualrev too.

    Parameters
    ----------
    fun : callable
        ``fun(x, *args)`` returns a scalar, ``x`` in the structure of ``x0``.
    x0 : float, array or nested dict/list/tuple of arrays
        Starting point. SciPy works on its flattened float64 form.
    args : tuple
        Further arguments of ``fun``, held constant.
    method : str
        Any method of ``scipy.optimize.minimize``. Hessian-vector products
        for Newton-CG, trust-ncg, trust-krylov, trust-constr; the Hessian for
        trust-exact, dogleg; the gradient for BFGS, L-BFGS-B, CG, SLSQP,
        TNC; derivative-free methods get the value only.
    hvp_mode : {"rev-rev", "fwd-rev"}
        How Hessian-vector products (and full Hessians) are computed.
    check_finite : bool
        Stop with :class:`~dualrev.finite.NonFiniteError` when the value,
        the gradient, a Hessian-vector product or the Hessian is NaN or
        inf, naming the iterate and, where it is found, the first op that
        gave the non-finite value (SciPy would go on: L-BFGS-B reports
        success with ``fun=nan``). Derivative-free methods are not checked:
        an infinite value is how an objective rejects a point there.
    compile : bool or None
        Stage the derivatives once with :func:`dualrev.compile` (one program
        per guard outcome) and replay them at every iterate: the value and
        gradient, and for Hessian-vector methods one
        :class:`~dualrev.hvp.HVPProgram` whose part that only the iterate
        determines runs once per iterate. Worth it when ``fun`` has many
        small operations or many iterations. None (the default) compiles
        when ``args`` hold dask arrays: each iterate is then one pass over
        the data, one task per chunk (see :mod:`dualrev.chunked`).
    **kwargs
        Passed to SciPy: ``bounds`` (on the flat vector, whose order is that
        of :func:`dualrev.tree.flatten`: dict keys sorted; or, when ``x0`` is
        a dict, a dict mapping some of its keys to a ``(low, high)`` pair of
        scalars or arrays for that entry), ``constraints``
        (dicts or ``NonlinearConstraint`` whose ``fun`` takes ``x`` in the
        structure of ``x0``; their ``jac`` is computed by dualrev when not a
        callable, and a ``NonlinearConstraint`` without ``hess`` gets the
        Hessian of ``v . fun`` as an HVP operator), ``tol``, ``callback``
        (given the parameters in the structure of ``x0``, or, when its
        argument is named ``intermediate_result``, SciPy's intermediate
        result with ``x`` in that structure), ``options``.

        Float32 parameters (every leaf of ``x0`` float32) are handed to
        ``fun`` as float32, so the value, the gradient and the Hessian
        products are computed in float32 (SciPy's own iteration runs in
        float64); the result's ``x`` is float32.

    Returns
    -------
    scipy.optimize.OptimizeResult
        SciPy's result, with ``x`` in the structure of ``x0`` and the flat
        vector as ``x_flat`` (``jac`` stays flat).

    See Also
    --------
    jac, hessp, hess, hessian_free, dualrev.hvp_operator

    Examples
    --------
    >>> import numpy as np
    >>> from dualrev.optimize import minimize
    >>> def f(p):
    ...     return np.sum((p["w"] - 1.0) ** 2) + (p["b"] + 2.0) ** 2 + p["w"][0] * p["b"]
    >>> res = minimize(f, {"w": np.zeros(2), "b": 0.0}, method="Newton-CG")
    >>> bool(res.success), np.round(res.x["w"], 4), np.round(res.x["b"], 4)
    (True, array([2.6667, 1.    ]), np.float64(-3.3333))
    >>> staged = minimize(f, {"w": np.zeros(2), "b": 0.0}, method="Newton-CG", compile=True)
    >>> bool(np.allclose(staged.x["w"], res.x["w"]))
    True
    """
    for name in ("jac", "hess", "hessp"):
        if name in kwargs:
            raise TypeError(f"minimize computes {name!r} itself; call "
                            "scipy.optimize.minimize directly to supply your own")
    flat0, unravel = ravel_pytree(x0)
    args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
    name = method.lower() if isinstance(method, str) else method
    derivative_free = not (callable(name) or name in HESSP_METHODS + HESS_METHODS
                           + GRADIENT_METHODS)
    lazy = any(is_lazy(leaf) for leaf in flatten(args)[0])
    compile = lazy if compile is None else compile
    # On dask data a compiled operator brings the whole Hessian (few
    # parameters) from the pass that computes the value and gradient.
    operator = name in HESSP_METHODS or callable(name) or \
        (lazy and compile and name in HESS_METHODS and flat0.size <= DENSE_HESSIAN_MAX)
    objective = _Objective(fun, unravel, hvp_mode, operator=operator,
                           check_finite=check_finite and not derivative_free, compiled=compile)
    objective.dtype = dtype = float_dtype(*flatten(x0)[0])
    if kwargs.get("callback") is not None:
        kwargs["callback"] = _structured_callback(kwargs["callback"], unravel)
    if "constraints" in kwargs:
        kwargs["constraints"] = _constraints_with_jacobians(kwargs["constraints"], unravel)
    if isinstance(kwargs.get("bounds"), dict):
        kwargs["bounds"] = _flat_bounds(kwargs["bounds"], x0)
    derivatives = _derivatives_for(name, objective)
    value = objective.value if derivatives else objective.plain_value
    res = scipy.optimize.minimize(value, flat0, args=args, method=method,
                                  **derivatives, **kwargs)
    res.x_flat = res.x
    res.x = unravel(np.array(res.x, dtype))  # the dtype of x0 (docs/conventions)
    return res


def _flat_bounds(bounds, x0):
    """Bounds given per entry of a dict ``x0``, as SciPy's flat (low, high) pairs."""
    if not isinstance(x0, dict):
        raise TypeError("bounds may be a dict only when x0 is a dict")
    unknown = set(bounds) - set(x0)
    if unknown:
        raise ValueError(f"bounds name entries that x0 does not have: {sorted(unknown)}")
    lows, highs = [], []
    for key in sorted(x0):  # the order of ravel_pytree
        pair = bounds.get(key, (None, None))
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"bounds[{key!r}] must be a pair (low, high), each None, "
                             f"a scalar or an array shaped like x0[{key!r}]; got {pair!r}")
        low, high = pair
        lows += _limits(low, x0[key], key)
        highs += _limits(high, x0[key], key)
    return list(zip(lows, highs))


def _limits(limit, entry, key):
    """One bound (None, a scalar or an array) for every element of ``entry``."""
    size = ravel_pytree(entry)[0].size
    if limit is None:
        return [None] * size
    if np.shape(limit) in (np.shape(entry), ()):
        return np.broadcast_to(limit, np.shape(entry)).ravel().tolist()
    raise ValueError(f"bounds[{key!r}] has a limit of shape {np.shape(limit)}, but "
                     f"x0[{key!r}] has shape {np.shape(entry)}: give a scalar, None, "
                     "or an array of that shape")


def _structured_callback(callback, unravel):
    """The user's callback, given parameters in the structure of ``x0``."""
    try:
        wants_result = "intermediate_result" in inspect.signature(callback).parameters
    except (TypeError, ValueError):
        wants_result = False
    if wants_result:
        def callback_with_result(intermediate_result):
            result = scipy.optimize.OptimizeResult(intermediate_result)
            result.x_flat = intermediate_result.x
            result.x = unravel(np.array(intermediate_result.x, np.float64))
            return callback(intermediate_result=result)
        return callback_with_result

    def callback_with_x(xk, *rest):
        return callback(unravel(np.array(xk, np.float64)), *rest)
    return callback_with_x


def _derivatives_for(name, objective):
    """The derivative callables a SciPy method takes."""
    if name in HESSP_METHODS or callable(name):
        return {"jac": objective.jac, "hessp": objective.hessp}
    if name in HESS_METHODS:
        return {"jac": objective.jac, "hess": objective.hess}
    if name in GRADIENT_METHODS:
        return {"jac": objective.jac}
    return {}


def _constraints_with_jacobians(constraints, unravel):
    """Constraints on the flat vector, with dualrev Jacobians where none is given."""
    if isinstance(constraints, (dict, NonlinearConstraint, LinearConstraint)):
        return _constraint_with_jacobian(constraints, unravel)
    return [_constraint_with_jacobian(c, unravel) for c in constraints]


def _constraint_with_jacobian(con, unravel):
    if isinstance(con, LinearConstraint):
        return con
    if isinstance(con, dict):
        new = dict(con)
        new["fun"] = _on_flat(con["fun"], unravel)
        given = con.get("jac")
        new["jac"] = _on_flat(given, unravel) if callable(given) \
            else _constraint_jacobian(con["fun"], unravel)
        return new
    if isinstance(con, NonlinearConstraint):
        new = copy.copy(con)
        new.fun = _on_flat(con.fun, unravel)
        new.jac = _on_flat(con.jac, unravel) if callable(con.jac) \
            else _constraint_jacobian(con.fun, unravel)
        new.hess = _on_flat(con.hess, unravel) if callable(con.hess) \
            else con.hess if con.hess is not None else constraint_hessian(con.fun, unravel)
        return new
    raise TypeError(f"constraint of type {type(con).__name__}: expected a dict, "
                    "NonlinearConstraint or LinearConstraint")


def _on_flat(f, unravel):
    def on_flat(x, *args):
        return f(unravel(np.asarray(x, np.float64)), *args)
    return on_flat


def constraint_hessian(c, unravel):
    """``hess(x, v)``: the Hessian of ``v . c`` as an operator, for trust-constr."""
    def constraint_hess(x, v):
        v = np.asarray(v, np.float64)

        def weighted(point):
            out = c(point)
            return np.sum(np.reshape(v, np.shape(out)) * out)
        return hvp_operator(weighted, unravel(np.asarray(x, np.float64)))
    return constraint_hess


def _constraint_jacobian(c, unravel):
    def c_flat(x, *args):
        return c(unravel(x), *args)

    def constraint_jac(x, *args):
        x = np.asarray(x, np.float64)
        J = jacobian(c_flat)(x, *args)
        return np.asarray(J, np.float64).reshape(-1, x.size)
    return constraint_jac
