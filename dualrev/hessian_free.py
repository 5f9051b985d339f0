"""Hessian-free optimisation: truncated Newton in the style of Martens (2010).

:func:`hessian_free` minimises a loss of many parameters by damped conjugate
gradient on a quadratic model, with Hessian curvature products (one
:func:`~dualrev.hvp.hvp_operator` per iteration) or Gauss-Newton products
(one ``jvp`` and one ``vjp`` through the model, one HVP of the output loss).
:class:`ModelLoss` splits a loss into model and output loss for the
Gauss-Newton curvature. Also reachable as ``dualrev.optimize.hessian_free``.
"""

import collections.abc
import time

import numpy as np
from scipy.optimize import OptimizeResult

from .api import jvp, value_and_grad, vjp
from .compiled import compile
from .hvp import HVPProgram, hvp, hvp_operator
from .tree import flat_vector, ravel_pytree

__all__ = ["hessian_free", "ModelLoss"]


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


class HessianCurvature:
    """Value, gradient and ``H v`` at one point, from one recording."""

    def __init__(self, loss, params, batch, mode):
        self._op = hvp_operator(loss, params, mode, args=batch)
        self.value, self.grad = self._op.value, self._op.grad

    def matvec(self, v):
        return self._op.matvec(v)


class GaussNewtonCurvature:
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
        self._h_out = hvp_operator(loss.out_loss, out, hvp_mode, args=batch)
        self.value = self._h_out.value
        self.grad = self._pull(self._h_out.grad)

    def _pull(self, u):
        return flat_vector(self._pullback(self._out_unravel(u))[0])

    def matvec(self, v):
        _, Jv = jvp(lambda p: self._model(p, *self._batch), (self._params,),
                    (self._unravel(v),))
        return self._pull(self._h_out.matvec(flat_vector(Jv)))


class CompiledGaussNewton:
    """Gauss-Newton curvature staged once (:func:`dualrev.compile`) and
    replayed at every point: value, gradient and ``J^T H_out J v`` from one
    program split in ``v``, whose part that only the point and batch
    determine (the model's forward pass) runs once per point."""

    def __init__(self, loss, hvp_mode):
        def value_grad_product(params, v, *batch):
            value, g = value_and_grad(loss)(params, *batch)
            out, pullback = vjp(lambda p: loss.model(p, *batch), params)
            _, Jv = jvp(lambda p: loss.model(p, *batch), (params,), (v,))
            product = pullback(hvp(loss.out_loss, out, Jv, hvp_mode, args=batch))[0]
            return value, g, product

        self.compiled = compile(value_grad_product, varying_argnums=1)

    def at(self, params, batch):
        """The curvature at ``params`` on ``batch`` (``value``, ``grad``, ``matvec``)."""
        return _CompiledPoint(self.compiled.fix(params, *batch), params)


class _CompiledPoint:
    def __init__(self, fixed, params):
        self._fixed = fixed
        flat, self._unravel = ravel_pytree(params)
        value, g, _ = fixed.fixed_values(self._unravel(np.zeros_like(flat)))
        self.value, self.grad = value, flat_vector(g, flat.size)

    def matvec(self, v):
        return flat_vector(self._fixed(self._unravel(v))[2], v.size)


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

    def next_batch(k):
        try:
            return (next(iterator),)
        except StopIteration:
            raise ValueError(f"the batches iterator ran out after {k} batch(es), before "
                             "maxiter iterations: pass a longer iterator, a sequence "
                             "(cycled) or a callable k -> batch") from None
    return next_batch


def hessian_free(loss, params, batches=None, *, maxiter=100, curvature="hessian",
                 damping=1.0, cg_maxiter=250, cg_tol=5e-4, warm_start_decay=0.95,
                 gtol=1e-6, hvp_mode="rev-rev", callback=None, verbose=False,
                 compile=False):
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
        Initial ``lambda``, non-negative.
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
    compile : bool
        Stage the value, gradient and curvature products once
        (:func:`dualrev.compile`) and replay them at every iteration, the
        part that only the point and batch determine once per iteration.

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
    if not damping >= 0:
        raise ValueError(f"damping must be a non-negative number, not {damping!r}")
    x, unravel = ravel_pytree(params)
    next_batch = _batch_source(batches)
    staged = None
    if compile:
        staged = HVPProgram(loss, hvp_mode) if curvature == "hessian" \
            else CompiledGaussNewton(loss, hvp_mode)
    direction = np.zeros_like(x)
    history = []
    start = time.perf_counter()
    message, success = "maximum number of iterations reached", False
    value = float(loss(params, *next_batch(0))) if maxiter <= 0 else np.nan
    for k in range(maxiter):
        batch = next_batch(k)
        model = _curvature_at(loss, unravel(x), batch, curvature, unravel, hvp_mode, staged)
        value, g = model.value, model.grad
        if not np.isfinite(value):
            message = f"NaN result encountered: the loss is {value} at iteration {k}"
            break
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


def _curvature_at(loss, point, batch, curvature, unravel, hvp_mode, staged):
    if isinstance(staged, HVPProgram):
        return staged.operator(point, args=batch)
    if staged is not None:
        return staged.at(point, batch)
    if curvature == "hessian":
        return HessianCurvature(loss, point, batch, hvp_mode)
    return GaussNewtonCurvature(loss, point, batch, unravel, hvp_mode)


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
