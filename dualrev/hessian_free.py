"""Hessian-free optimisation: truncated Newton in the style of Martens (2010).

:func:`hessian_free` minimises a loss of many parameters by damped,
optionally preconditioned conjugate gradient on a quadratic model, with
Hessian curvature products (one :func:`~dualrev.hvp.hvp_operator` per
iteration) or Gauss-Newton products (one
:func:`~dualrev.operators.gauss_newton_operator` per iteration), on the
full batch or a separate curvature minibatch. :class:`ModelLoss` (from
:mod:`dualrev.operators`) splits a loss into model, output loss and
penalty for the Gauss-Newton curvature. Also reachable as
``dualrev.optimize.hessian_free``.
"""

import collections.abc
import time

import numpy as np
from scipy.optimize import OptimizeResult

from .api import jacobian, jvp, value_and_grad, vjp
from .compiled import compile
from .finite import first_nonfinite_op, require_finite
from .hvp import HVPProgram, hvp, hvp_operator
from .operators import ModelLoss, gauss_newton_operator
from .tree import flat_vector, ravel_pytree

__all__ = ["hessian_free", "ModelLoss", "martens_diagonal"]

#: The exponent of Martens' diagonal preconditioner ``(diag + lambda)^xi``.
MARTENS_EXPONENT = 0.75


class CompiledGaussNewton:
    """Gauss-Newton curvature staged once (:func:`dualrev.compile`) and
    replayed at every point: value, gradient and ``J^T H_out J v`` (plus the
    penalty's Hessian times ``v``) from one program split in ``v``, whose
    part that only the point and batch determine (the model's forward pass)
    runs once per point."""

    def __init__(self, loss, hvp_mode):
        def value_grad_product(params, v, *batch):
            value, g = value_and_grad(loss)(params, *batch)
            out, pullback = vjp(lambda p: loss.model(p, *batch), params)
            _, Jv = jvp(lambda p: loss.model(p, *batch), (params,), (v,))
            products = [pullback(hvp(loss.out_loss, out, Jv, hvp_mode, args=batch))[0]]
            if loss.penalty is not None:
                products.append(hvp(loss.penalty, params, v, hvp_mode))
            return value, g, products

        self.compiled = compile(value_grad_product, varying_argnums=1)

    def at(self, params, batch):
        """The curvature at ``params`` on ``batch`` (``value``, ``grad``, ``matvec``)."""
        return _CompiledPoint(self.compiled.fix(params, *batch), params)


class _CompiledPoint:
    def __init__(self, fixed, params):
        self._fixed = fixed
        flat, self._unravel = ravel_pytree(params)
        value, g, _ = fixed.fixed_values(self._unravel(np.zeros_like(flat)))
        self.value, self.grad = float(value), flat_vector(g, flat.size)

    def matvec(self, v):
        return sum(flat_vector(p, v.size) for p in self._fixed(self._unravel(v))[2])


class _Counted:
    """A curvature operator whose products are counted in ``counters``."""

    def __init__(self, operator, counters, check_finite, x):
        self._operator, self._counters = operator, counters
        self._check_finite, self._x = check_finite, x

    def matvec(self, v):
        self._counters["nhev"] += 1
        product = self._operator.matvec(v)
        if self._check_finite:
            require_finite("curvature product", product, self._x)
        return product


def _martens_cg(matvec, g, x0, maxiter, tol, precondition=None):
    """Minimise ``phi(x) = x.A x / 2 + g.x`` by preconditioned CG from ``x0``.

    ``precondition(r)`` applies ``M^-1`` (identity when None). Stops on
    Martens' relative-progress test: after ``k = max(10, i/10)`` more steps
    ``phi`` improved by less than ``k * tol`` of its value; also on negative
    curvature. Returns ``(x, phi(x), iterations, stored)`` with ``stored``
    the iterates after steps ``ceil(1.3^j)`` and the last, as ``(step, x,
    phi)``, for backtracking.
    """
    precondition = precondition or (lambda r: r)
    x = x0
    r = matvec(x) + g if np.any(x) else g.copy()
    phi = 0.5 * x @ (r + g)
    if phi >= 0.0 and np.any(x):  # the warm start is worse than zero: drop it
        x, r, phi = np.zeros_like(g), g.copy(), 0.0
    z = precondition(r)
    d = -z
    rz = r @ z
    phis, stored = [phi], []
    save_at = _storage_steps(maxiter)
    i = 0
    while i < maxiter and rz > 0.0:
        Ad = matvec(d)
        curvature = d @ Ad
        if curvature <= 0.0:
            break
        alpha = rz / curvature
        x = x + alpha * d
        r = r + alpha * Ad
        z = precondition(r)
        rz, rz_old = r @ z, rz
        d = -z + (rz / rz_old) * d
        phi = 0.5 * x @ (r + g)
        phis.append(phi)
        i += 1
        if i in save_at:
            stored.append((i, x, phi))
        k = max(10, int(0.1 * i))
        if i > k and phi < 0.0 and (phi - phis[-1 - k]) / phi < k * tol:
            break
    if not stored or stored[-1][0] != i:
        stored.append((i, x, phi))
    return x, phi, i, stored


def _storage_steps(maxiter):
    """Martens' schedule of stored CG iterates: ``ceil(1.3^j)``."""
    steps, j = set(), 0
    while np.ceil(1.3 ** j) <= maxiter:
        steps.add(int(np.ceil(1.3 ** j)))
        j += 1
    return steps


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


def martens_diagonal(example_losses, params, *batch, damping=0.0, exponent=MARTENS_EXPONENT):
    """Martens' (2010) diagonal preconditioner from squared per-example gradients.

    For a loss made of per-example terms ``l_i`` (their sum, or their mean),
    ``M = (sum_i grad(l_i)^2 + damping)^exponent``, elementwise. The
    per-example gradients are the rows of the Jacobian of
    ``example_losses`` (computed in the mode the cost model picks: forward
    mode for a few parameters and many examples).

    Parameters
    ----------
    example_losses : callable
        ``example_losses(params, *batch)`` returns the vector of the
        per-example losses ``l_i``. Martens sums the squared gradients of
        the per-case losses; for a mean loss pass them without the ``1/N``,
        or the diagonal is dwarfed by ``damping`` and the preconditioner
        becomes a multiple of the identity, which leaves CG unchanged.
    params : array or nested dict/list/tuple of arrays
    *batch
        Further arguments of ``example_losses``.
    damping : float
        Added before the power (Martens adds the damping ``lambda``).
    exponent : float
        Martens uses ``3/4``.

    Returns
    -------
    ndarray
        The flat diagonal of ``M``; CG applies ``M^-1`` by dividing by it.

    Examples
    --------
    >>> import numpy as np
    >>> from dualrev.hessian_free import martens_diagonal
    >>> X = np.array([[1.0, 2.0], [3.0, 0.0]])      # grad l_i = (x_i . w) x_i
    >>> martens_diagonal(lambda w, X: (X @ w) ** 2 / 2, np.ones(2), X, exponent=1.0)
    array([90., 36.])
    """
    flat, unravel = ravel_pytree(params)

    def on_flat(x):
        return np.reshape(example_losses(unravel(x), *batch), (-1,))
    J = np.asarray(jacobian(on_flat)(flat), np.float64).reshape(-1, flat.size)
    return (np.sum(J ** 2, axis=0) + damping) ** exponent


def hessian_free(loss, params, batches=None, *, maxiter=100, curvature="hessian",
                 damping=1.0, cg_maxiter=250, cg_tol=5e-4, warm_start_decay=0.95,
                 gtol=1e-6, ftol=0.0, max_time=None, preconditioner=None,
                 example_losses=None, curvature_batches=None, backtrack_cg=True,
                 hvp_mode="rev-rev", check_finite=True, callback=None, verbose=False,
                 compile=False):
    """Minimise ``loss`` by Hessian-free (truncated Newton) optimisation.

    Each iteration (Martens 2010): evaluate the loss and gradient ``g`` on
    the iteration's batch, then run (preconditioned) conjugate gradient on
    the damped quadratic model ``q(d) = d.(B + lambda I) d / 2 + g.d``, with
    ``B`` the curvature on the curvature batch (the same batch, or a
    separate smaller one), warm-started from the previous direction times
    ``warm_start_decay`` and stopped when the relative progress of ``q``
    stalls (Martens' criterion, tolerance ``cg_tol``) or on negative
    curvature. CG iterates are stored at steps ``ceil(1.3^j)``; with
    ``backtrack_cg`` the step is the stored iterate after which the loss
    stops falling, going back from the last. The damping ``lambda``
    follows the reduction ratio ``rho`` = actual / predicted decrease
    (Levenberg-Marquardt: ``rho < 1/4``: ``lambda *= 3/2``; ``rho > 3/4``:
    ``lambda *= 2/3``), and a backtracking line search (Armijo, ratio 0.8)
    scales the step.

    Parameters
    ----------
    loss : callable or ModelLoss
        ``loss(params)``, or ``loss(params, batch)`` with ``batches``;
        returns a scalar. Must be a :class:`ModelLoss` for Gauss-Newton; a
        ``ModelLoss`` with a ``penalty`` adds its Hessian to the curvature
        (Gauss-Newton with L2 regularisation).
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
        matrix ``J^T H_out J`` (:func:`~dualrev.operators.gauss_newton_operator`),
        positive semi-definite for a convex ``out_loss``.
    damping : float
        Initial ``lambda``, positive.
    cg_maxiter : int
        CG steps per iteration at most.
    cg_tol : float
        Martens' relative-progress tolerance (``epsilon``).
    warm_start_decay : float
        The previous direction, scaled by this, starts CG.
    gtol : float
        Stop when the gradient norm falls below this.
    ftol : float
        Stop when an iteration lowers the loss by no more than
        ``ftol * max(|loss|, 1)``.
    max_time : float, optional
        Stop after the iteration that passes this many seconds.
    preconditioner : None, "martens" or callable, optional
        ``"martens"``: Martens' diagonal (:func:`martens_diagonal`, with
        the current damping) from ``example_losses`` on the curvature
        batch. A callable ``preconditioner(x, batch, damping)`` (``x``
        flat, ``batch`` the curvature batch) returns the flat diagonal ``M`` (CG divides by it) or a
        function ``r -> M^-1 r``.
    example_losses : callable, optional
        ``example_losses(params, *batch)``: the per-example losses (see
        :func:`martens_diagonal`); needed by ``preconditioner="martens"``.
    curvature_batches : None, sequence, iterable or callable, optional
        A separate (smaller) batch per iteration for the curvature products
        only, in the forms of ``batches``. ``None``: the iteration's batch.
    backtrack_cg : bool
        Choose among the stored CG iterates (Martens' CG backtracking).
    hvp_mode : {"rev-rev", "fwd-rev"}
        How Hessian-vector products are computed.
    check_finite : bool
        Stop with :class:`~dualrev.finite.NonFiniteError` when the loss, the
        gradient or a curvature product is NaN or inf, naming the iterate
        and, where it is found, the first op that gave it.
    callback : callable, optional
        ``callback(step)`` after each iteration, with ``step`` a dict of
        ``iteration, params, loss, grad_norm, cg_iterations, cg_step,
        damping, rho, alpha, time``; returning True stops.
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
        ``fun`` (last loss), ``nit``, ``success``, ``message``, ``damping``,
        the counters ``nfev`` (loss evaluations), ``ngev`` (gradient
        evaluations), ``nhev`` (curvature products) and ``history``: one
        dict per iteration as given to ``callback`` (without ``params``);
        ``loss`` is the value after the step and ``grad_norm`` that of the
        point the step started from.

    See Also
    --------
    ModelLoss, martens_diagonal, minimize, dualrev.gauss_newton_operator

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
    >>> res.ngev == res.nit + 1, res.nhev > 0
    (True, True)
    """
    if curvature not in ("hessian", "gauss-newton"):
        raise ValueError(f"curvature must be 'hessian' or 'gauss-newton', not {curvature!r}")
    if curvature == "gauss-newton" and not isinstance(loss, ModelLoss):
        raise TypeError("curvature='gauss-newton' needs the loss split as "
                        "ModelLoss(model, out_loss)")
    if not damping > 0:
        raise ValueError(f"damping must be a positive number, not {damping!r}: the "
                         "damped model must stay bounded, and the damping is adapted by "
                         "factors, so it could never leave 0")
    if preconditioner == "martens" and example_losses is None:
        raise TypeError("preconditioner='martens' needs example_losses(params, *batch), "
                        "the per-example terms whose sum is the loss")
    x, unravel = ravel_pytree(params)
    next_batch = _batch_source(batches)
    next_curvature_batch = None if curvature_batches is None \
        else _batch_source(curvature_batches)
    counters = {"nfev": 0, "ngev": 0, "nhev": 0}
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
        curvature_batch = batch if next_curvature_batch is None else next_curvature_batch(k)
        value, g, operator = _point(loss, unravel(x), x, batch, curvature_batch, curvature,
                                    hvp_mode, check_finite, counters, staged)
        if not np.isfinite(value):  # with check_finite=False: stop, as SciPy does
            message = f"NaN result encountered: the loss is {value} at iteration {k}"
            break
        grad_norm = float(np.linalg.norm(g))
        if grad_norm < gtol:
            message, success = "gradient norm below gtol", True
            break
        precondition = _preconditioning(preconditioner, example_losses, x, unravel,
                                        curvature_batch, damping)

        def loss_at(alpha, d, batch=batch):
            counters["nfev"] += 1
            return float(loss(unravel(x + alpha * d), *batch))
        direction, phi, cg_iterations, stored = _newton_direction(
            operator, g, damping, warm_start_decay * direction, cg_maxiter, cg_tol,
            precondition)
        cg_step, direction, phi, new_value = _best_stored(stored, direction, phi, loss_at,
                                                          backtrack_cg)
        rho = _reduction_ratio(new_value - value, phi - 0.5 * damping * (direction @ direction))
        alpha, new_value = _backtrack(lambda a, d=direction: loss_at(a, d), new_value, value,
                                      g @ direction)
        x = x + alpha * direction
        decrease, value = value - new_value, new_value
        step = {"iteration": k, "loss": value, "grad_norm": grad_norm,
                "cg_iterations": cg_iterations, "cg_step": cg_step, "damping": damping,
                "rho": rho, "alpha": alpha, "time": time.perf_counter() - start}
        damping = _levenberg_marquardt(damping, rho)
        history.append(step)
        if verbose:
            print(_progress_line(step))
        if callback is not None and callback(dict(step, params=unravel(x.copy()))):
            message, success = "stopped by callback", True
            break
        if ftol > 0.0 and alpha > 0.0 and decrease <= ftol * max(abs(value), 1.0):
            message, success = "loss decrease below ftol", True
            break
        if max_time is not None and step["time"] >= max_time:
            message, success = "time budget max_time reached", True
            break
    return OptimizeResult(params=unravel(x.copy()), x=unravel(x.copy()), x_flat=x,
                          fun=float(value), nit=len(history), success=success,
                          message=message, damping=damping, history=history, **counters)


def _point(loss, point, x, batch, curvature_batch, curvature, hvp_mode, check_finite,
           counters, staged):
    """``(value, gradient, counted curvature operator)`` at ``point``.

    On one batch, one recording gives all three; with a separate
    curvature batch the value and gradient come from the iteration's batch.
    """
    operator = _curvature_operator(loss, point, curvature_batch, curvature, hvp_mode,
                                   check_finite, staged)
    if curvature_batch is batch:
        value, g = operator.value, operator.grad
    else:
        value, g = value_and_grad(loss)(point, *batch)
        value, g = float(value), ravel_pytree(g)[0]
    counters["ngev"] += 1
    counters["nfev"] += 1
    if check_finite:
        def diagnose():
            return first_nonfinite_op(loss, point, batch)
        require_finite("loss value", value, x, diagnose)
        require_finite("gradient", g, x, diagnose)
    return value, g, _Counted(operator, counters, check_finite, x)


def _curvature_operator(loss, point, batch, curvature, hvp_mode, check_finite, staged):
    if isinstance(staged, HVPProgram):
        return staged.operator(point, args=batch)
    if staged is not None:
        return staged.at(point, batch)
    if curvature == "hessian":
        return hvp_operator(loss, point, hvp_mode, args=batch)
    return gauss_newton_operator(loss, point, args=batch, hvp_mode=hvp_mode,
                                 check_finite=check_finite)


def _preconditioning(preconditioner, example_losses, x, unravel, batch, damping):
    """``r -> M^-1 r`` for this iteration, or None."""
    if preconditioner is None:
        return None
    if preconditioner == "martens":
        diagonal = martens_diagonal(example_losses, unravel(x), *batch, damping=damping)
    elif callable(preconditioner):
        diagonal = preconditioner(x, batch, damping)
        if callable(diagonal):
            return diagonal
    else:
        raise ValueError(f"preconditioner must be None, 'martens' or a callable, not "
                         f"{preconditioner!r}")
    diagonal = np.asarray(diagonal, np.float64)
    if diagonal.shape != x.shape or not np.all(diagonal > 0.0):
        raise ValueError(f"the preconditioner's diagonal must be positive, of shape {x.shape}")
    return lambda r: r / diagonal


def _newton_direction(operator, g, damping, x0, maxiter, tol, precondition):
    """CG on the damped model: ``(d, q(d), iterations, stored iterates)``.

    Negative curvature at the very first step leaves ``d = 0``; a gradient
    step ``-g / damping`` is taken instead (its ``q`` computed exactly).
    """
    def damped(v):
        return operator.matvec(v) + damping * v
    d, phi, iterations, stored = _martens_cg(damped, g, x0, maxiter, tol, precondition)
    if not np.any(d):
        d = -g / damping
        phi = 0.5 * d @ damped(d) + g @ d
        stored = [(0, d, phi)]
    return d, phi, iterations, stored


def _best_stored(stored, direction, phi, loss_at, backtrack):
    """Martens' CG backtracking: ``(step, d, q(d), loss(x + d))``.

    From the last stored iterate back, move to the previous one while it
    gives a lower loss.
    """
    best_value = loss_at(1.0, direction)
    best = (stored[-1][0], direction, phi, best_value)
    if not backtrack:
        return best
    for step, d, q in reversed(stored[:-1]):
        candidate = loss_at(1.0, d)
        if not candidate < best[3]:
            break
        best = (step, d, q, candidate)
    return best


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
