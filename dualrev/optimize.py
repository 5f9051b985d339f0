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

:func:`jac`, :func:`hessp` and :func:`hess` give the callables SciPy expects,
for code that calls SciPy itself.
"""

import collections
import collections.abc
import copy
import time

import numpy as np
import scipy.optimize
from scipy.optimize import LinearConstraint, NonlinearConstraint, OptimizeResult

from .api import jacobian, jvp, value_and_grad, vjp
from .hvp import hessian, hvp_operator
from .tree import ravel_pytree

__all__ = ["minimize", "jac", "hessp", "hess", "hessian_free", "ModelLoss",
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

    def __init__(self, fun, unravel=None, hvp_mode="rev-rev", operator=False):
        self.fun = fun
        self.unravel = unravel if unravel is not None else _identity
        self.hvp_mode = hvp_mode
        self.operator = operator
        self._cache = collections.OrderedDict()

    def _entry(self, x, args, operator):
        x = np.asarray(x, np.float64)
        key = x.tobytes()
        entry = self._cache.get(key)
        if entry is not None and _same_args(entry["args"], args) \
                and (entry["operator"] is not None or not operator):
            self._cache.move_to_end(key)
            return entry
        point = self.unravel(x.copy())
        if operator:
            op = hvp_operator(self.fun, point, self.hvp_mode, args)
            entry = {"value": op.value, "grad": op.grad, "operator": op}
        else:
            value, g = value_and_grad(self.fun)(point, *args)
            entry = {"value": float(value), "grad": _flat(g, x.size), "operator": None}
        entry["args"] = args
        self._cache[key] = entry
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return entry

    def value(self, x, *args):
        return self._entry(x, args, self.operator)["value"]

    def jac(self, x, *args):
        return self._entry(x, args, self.operator)["grad"].copy()

    def hessp(self, x, p, *args):
        return self._entry(x, args, True)["operator"].matvec(np.asarray(p, np.float64))

    def hess(self, x, *args):
        x = np.asarray(x, np.float64)
        H = hessian(self._flat_fun, mode=self.hvp_mode)(x, *args)
        return np.asarray(H, np.float64).reshape(x.size, x.size)

    def plain_value(self, x, *args):
        return float(self.fun(self.unravel(np.asarray(x, np.float64)), *args))

    def _flat_fun(self, x, *args):
        return self.fun(self.unravel(x), *args)


def _identity(x):
    return x


def _same_args(a, b):
    return len(a) == len(b) and all(u is v for u, v in zip(a, b))


def _flat(tree, n=None):
    flat = np.asarray(ravel_pytree(tree)[0], np.float64)
    return flat if n is None else flat.reshape(n)


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

def minimize(fun, x0, args=(), method="trust-ncg", hvp_mode="rev-rev", **kwargs):
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
    **kwargs
        Passed to SciPy: ``bounds`` (on the flat vector, whose order is that
        of :func:`dualrev.tree.flatten`: dict keys sorted; or, when ``x0`` is
        a dict, a dict mapping some of its keys to a ``(low, high)`` pair of
        scalars or arrays for that entry), ``constraints``
        (dicts or ``NonlinearConstraint`` whose ``fun`` takes ``x`` in the
        structure of ``x0``; their ``jac`` is computed by dualrev when not a
        callable, and a ``NonlinearConstraint`` without ``hess`` gets the
        Hessian of ``v . fun`` as an HVP operator), ``tol``, ``callback``
        (sees the flat vector), ``options``.

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
    """
    for name in ("jac", "hess", "hessp"):
        if name in kwargs:
            raise TypeError(f"minimize computes {name!r} itself; call "
                            "scipy.optimize.minimize directly to supply your own")
    flat0, unravel = ravel_pytree(x0)
    args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
    name = method.lower() if isinstance(method, str) else method
    objective = _Objective(fun, unravel, hvp_mode, operator=name in HESSP_METHODS
                           or callable(name))
    if "constraints" in kwargs:
        kwargs["constraints"] = _constraints_with_jacobians(kwargs["constraints"], unravel)
    if isinstance(kwargs.get("bounds"), dict):
        kwargs["bounds"] = _flat_bounds(kwargs["bounds"], x0)
    derivatives = _derivatives_for(name, objective)
    value = objective.value if derivatives else objective.plain_value
    res = scipy.optimize.minimize(value, flat0, args=args, method=method,
                                  **derivatives, **kwargs)
    res.x_flat = res.x
    res.x = unravel(np.array(res.x, np.float64))
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
        low, high = bounds.get(key, (None, None))
        lows += _limits(low, x0[key])
        highs += _limits(high, x0[key])
    return list(zip(lows, highs))


def _limits(limit, entry):
    """One bound (None, a scalar or an array) for every element of ``entry``."""
    size = ravel_pytree(entry)[0].size
    if limit is None:
        return [None] * size
    return np.broadcast_to(limit, np.shape(entry)).ravel().tolist()


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
            else con.hess if con.hess is not None else _constraint_hessian(con.fun, unravel)
        return new
    raise TypeError(f"constraint of type {type(con).__name__}: expected a dict, "
                    "NonlinearConstraint or LinearConstraint")


def _on_flat(f, unravel):
    def on_flat(x, *args):
        return f(unravel(np.asarray(x, np.float64)), *args)
    return on_flat


def _constraint_hessian(c, unravel):
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


# ---- Hessian-free ----------------------------------------------------------------------

class ModelLoss:
    """A loss kept split as ``out_loss(model(params, *batch), *batch)``.

    The split is what Gauss-Newton curvature needs: the Jacobian ``J`` of
    the model outputs and the Hessian ``H_out`` of ``out_loss`` in the
    outputs give ``G = J^T H_out J``, positive semi-definite when
    ``out_loss`` is convex in the outputs (squared error, softmax
    cross-entropy). Calling a ``ModelLoss`` gives the loss itself.

    Parameters
    ----------
    model : callable
        ``model(params, *batch)`` returns the outputs (array or structure).
    out_loss : callable
        ``out_loss(outputs, *batch)`` returns a scalar.

    See Also
    --------
    hessian_free

    Examples
    --------
    >>> import numpy as np
    >>> loss = ModelLoss(lambda w, x: x @ w, lambda out, x: np.sum(out ** 2))
    >>> float(loss(np.ones(2), np.eye(2)))
    2.0
    """

    def __init__(self, model, out_loss):
        self.model = model
        self.out_loss = out_loss

    def __call__(self, params, *batch):
        return self.out_loss(self.model(params, *batch), *batch)


class _HessianCurvature:
    """Value, gradient and ``H v`` at one point, from one recording."""

    def __init__(self, loss, params, batch, mode):
        self._op = hvp_operator(loss, params, mode, batch)
        self.value, self.grad = self._op.value, self._op.grad

    def matvec(self, v):
        return self._op.matvec(v)


class _GaussNewtonCurvature:
    """Value, gradient and ``J^T H_out J v`` at one point.

    The model is recorded once (``vjp``); each product is one forward pass
    (``jvp``, giving ``J v``), one sweep of the ``out_loss`` HVP operator
    and one sweep of the model's tape (``J^T``).
    """

    def __init__(self, loss, params, batch, unravel, hvp_mode):
        self._model = loss.model
        self._params, self._batch, self._unravel = params, batch, unravel
        out, self._pullback = vjp(lambda p: loss.model(p, *batch), params)
        self._out_unravel = ravel_pytree(out)[1]
        self._h_out = hvp_operator(loss.out_loss, out, hvp_mode, batch)
        self.value = self._h_out.value
        self.grad = self._pull(self._h_out.grad)

    def _pull(self, u):
        return _flat(self._pullback(self._out_unravel(u))[0])

    def matvec(self, v):
        _, Jv = jvp(lambda p: self._model(p, *self._batch), (self._params,),
                    (self._unravel(v),))
        return self._pull(self._h_out.matvec(_flat(Jv)))


def _martens_cg(matvec, g, x0, maxiter, tol):
    """Minimise ``phi(x) = x.A x / 2 + g.x`` by CG from ``x0``.

    Stops on Martens' relative-progress test: after ``k = max(10, i/10)``
    more steps ``phi`` improved by less than ``k * tol`` of its value; also
    on negative curvature. Returns ``(x, phi(x), iterations)``.
    """
    x = x0
    r = matvec(x) + g if np.any(x) else g.copy()
    phi = 0.5 * x @ (r + g)
    if phi >= 0.0 and np.any(x):  # the warm start is worse than zero: drop it
        x, r, phi = np.zeros_like(g), g.copy(), 0.0
    d = -r
    rr = r @ r
    phis = [phi]
    i = 0
    while i < maxiter and rr > 0.0:
        Ad = matvec(d)
        curvature = d @ Ad
        if curvature <= 0.0:
            break
        alpha = rr / curvature
        x = x + alpha * d
        r = r + alpha * Ad
        rr, rr_old = r @ r, rr
        d = -r + (rr / rr_old) * d
        phi = 0.5 * x @ (r + g)
        phis.append(phi)
        i += 1
        k = max(10, int(0.1 * i))
        if i > k and phi < 0.0 and (phi - phis[-1 - k]) / phi < k * tol:
            break
    return x, phi, i


def _batch_source(batches):
    """A function ``iteration -> tuple of extra loss arguments``."""
    if batches is None:
        return lambda k: ()
    if callable(batches):
        return lambda k: (batches(k),)
    if isinstance(batches, collections.abc.Sequence):
        return lambda k: (batches[k % len(batches)],)
    iterator = iter(batches)
    return lambda k: (next(iterator),)


def hessian_free(loss, params, batches=None, *, maxiter=100, curvature="hessian",
                 damping=1.0, cg_maxiter=250, cg_tol=5e-4, warm_start_decay=0.95,
                 gtol=1e-6, hvp_mode="rev-rev", callback=None, verbose=False):
    """Minimise ``loss`` by Hessian-free (truncated Newton) optimisation.

    Each iteration (Martens 2010): evaluate the loss and gradient ``g``,
    then run conjugate gradient on the damped quadratic model
    ``q(d) = d.(B + lambda I) d / 2 + g.d``, warm-started from the previous
    direction times ``warm_start_decay`` and stopped when the relative
    progress of ``q`` stalls (Martens' criterion, tolerance ``cg_tol``) or
    on negative curvature. The damping ``lambda`` follows the reduction
    ratio ``rho`` = actual / predicted decrease (Levenberg-Marquardt:
    ``rho < 1/4``: ``lambda *= 3/2``; ``rho > 3/4``: ``lambda *= 2/3``), and a
    backtracking line search (Armijo, ratio 0.8) scales the step.

    Parameters
    ----------
    loss : callable or ModelLoss
        ``loss(params)``, or ``loss(params, batch)`` with ``batches``;
        returns a scalar. Must be a :class:`ModelLoss` for Gauss-Newton.
    params : array or nested dict/list/tuple of arrays
        Starting point.
    batches : None, sequence, iterable or callable, optional
        One batch per iteration: a sequence is cycled, an iterable consumed,
        a callable called with the iteration number. ``None``: full batch.
    maxiter : int
        Number of iterations (outer steps).
    curvature : {"hessian", "gauss-newton"}
        ``B`` is the Hessian (products from one
        :func:`~dualrev.hvp.hvp_operator` per iteration) or the Gauss-Newton
        matrix ``J^T H_out J`` (products from one ``jvp`` and one ``vjp``
        of the model outputs), positive semi-definite for a convex
        ``out_loss``.
    damping : float
        Initial ``lambda``.
    cg_maxiter : int
        CG steps per iteration at most.
    cg_tol : float
        Martens' relative-progress tolerance (``epsilon``).
    warm_start_decay : float
        The previous direction, scaled by this, starts CG.
    gtol : float
        Stop when the gradient norm falls below this.
    hvp_mode : {"rev-rev", "fwd-rev"}
        How Hessian-vector products are computed.
    callback : callable, optional
        ``callback(step)`` after each iteration, with ``step`` a dict of
        ``iteration, params, loss, grad_norm, cg_iterations, damping, rho,
        alpha, time``; returning True stops.
    verbose : bool
        Print one progress line per iteration.

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``params`` (also ``x``) in the structure of the input, ``x_flat``,
        ``fun`` (last loss), ``nit``, ``success``, ``message``, ``damping``
        and ``history``: one dict per iteration as given to ``callback``
        (without ``params``); ``loss`` is the value after the step and
        ``grad_norm`` that of the point the step started from.

    See Also
    --------
    ModelLoss, minimize, dualrev.hvp_operator

    References
    ----------
    J. Martens, "Deep learning via Hessian-free optimization", ICML 2010.

    Examples
    --------
    >>> import numpy as np
    >>> from dualrev.optimize import hessian_free
    >>> res = hessian_free(lambda w: np.sum((w - 2.0) ** 4) + np.sum(w ** 2),
    ...                    np.zeros(3), maxiter=30)
    >>> w = res.params                  # the gradient 4 (w - 2)**3 + 2 w vanishes
    >>> bool(np.allclose(4 * (w - 2.0) ** 3 + 2 * w, 0.0, atol=1e-6)), res.nit < 30
    (True, True)
    """
    if curvature not in ("hessian", "gauss-newton"):
        raise ValueError(f"curvature must be 'hessian' or 'gauss-newton', not {curvature!r}")
    if curvature == "gauss-newton" and not isinstance(loss, ModelLoss):
        raise TypeError("curvature='gauss-newton' needs the loss split as "
                        "ModelLoss(model, out_loss)")
    x, unravel = ravel_pytree(params)
    next_batch = _batch_source(batches)
    direction = np.zeros_like(x)
    history = []
    start = time.perf_counter()
    message, success = "maximum number of iterations reached", False
    value = np.nan
    for k in range(maxiter):
        batch = next_batch(k)
        model = _curvature_at(loss, unravel(x), batch, curvature, unravel, hvp_mode)
        value, g = model.value, model.grad
        grad_norm = float(np.linalg.norm(g))
        if grad_norm < gtol:
            message, success = "gradient norm below gtol", True
            break
        direction, phi, cg_iterations = _newton_direction(
            model, g, damping, warm_start_decay * direction, cg_maxiter, cg_tol)

        def loss_at(alpha, d=direction, batch=batch):
            return float(loss(unravel(x + alpha * d), *batch))
        new_value = loss_at(1.0)
        rho = _reduction_ratio(new_value - value, phi - 0.5 * damping * (direction @ direction))
        alpha, value = _backtrack(loss_at, new_value, value, g @ direction)
        x = x + alpha * direction
        step = {"iteration": k, "loss": value, "grad_norm": grad_norm,
                "cg_iterations": cg_iterations, "damping": damping, "rho": rho,
                "alpha": alpha, "time": time.perf_counter() - start}
        damping = _levenberg_marquardt(damping, rho)
        history.append(step)
        if verbose:
            print(_progress_line(step))
        if callback is not None and callback(dict(step, params=unravel(x.copy()))):
            message, success = "stopped by callback", True
            break
    return OptimizeResult(params=unravel(x.copy()), x=unravel(x.copy()), x_flat=x,
                          fun=float(value), nit=len(history), success=success,
                          message=message, damping=damping, history=history)


def _curvature_at(loss, point, batch, curvature, unravel, hvp_mode):
    if curvature == "hessian":
        return _HessianCurvature(loss, point, batch, hvp_mode)
    return _GaussNewtonCurvature(loss, point, batch, unravel, hvp_mode)


def _newton_direction(model, g, damping, x0, maxiter, tol):
    """CG on the damped model: ``(d, q(d), iterations)``.

    Negative curvature at the very first step leaves ``d = 0``; a gradient
    step ``-g / damping`` is taken instead (its ``q`` computed exactly).
    """
    def damped(v):
        return model.matvec(v) + damping * v
    d, phi, iterations = _martens_cg(damped, g, x0, maxiter, tol)
    if not np.any(d):
        d = -g / damping
        phi = 0.5 * d @ damped(d) + g @ d
    return d, phi, iterations


def _reduction_ratio(actual, predicted):
    """Actual over predicted decrease; ``-inf`` when the model predicts none."""
    return float(actual / predicted) if predicted < 0.0 else -np.inf


def _levenberg_marquardt(damping, rho):
    """Martens' rule: more damping when the model overpromised, less when it held."""
    if rho < 0.25:
        return damping * 1.5
    if rho > 0.75:
        return damping * (2.0 / 3.0)
    return damping


def _backtrack(loss_at, value_at_one, value, slope, shrink=0.8, c=1e-2, tries=60):
    """Largest ``alpha = shrink**j`` with Armijo decrease; ``(0, value)`` if none."""
    alpha, new_value = 1.0, value_at_one
    for _ in range(tries):
        if new_value <= value + c * alpha * slope:
            return alpha, new_value
        alpha *= shrink
        new_value = loss_at(alpha)
    return 0.0, value


def _progress_line(step):
    return (f"iter {step['iteration']:4d}  loss {step['loss']:.6e}  "
            f"|g| {step['grad_norm']:.3e}  cg {step['cg_iterations']:3d}  "
            f"lambda {step['damping']:.3e}  rho {step['rho']:+.3f}  "
            f"alpha {step['alpha']:.3f}  {step['time']:.2f}s")
