"""The optimizers end to end, with derivatives from dualrev and from its peers.

Two solves, each with the same SciPy solver and only the derivative source
changed: Newton-CG on L2 logistic regression (1,000 x 50; gradient and
Hessian-vector products) and ``least_squares`` (``trf``) on the
two-exponential fit (2,000 x 5; the Jacobian). Sources: dualrev
(:func:`dualrev.optimize.minimize`, :func:`dualrev.optimize.least_squares`),
hand-written NumPy (the floor), HIPS/autograd, JAX (eager, float64) and
PyTorch (float64). A peer that is not installed is skipped with a message
naming the extra that installs them: ``pip install dualrev[peers]``.
"""

import importlib

import numpy as np
import scipy.optimize

from dualrev.optimize import least_squares, minimize

from .bench_least_squares import START, exp_fit_problem, jacobian_by_hand, residual
from .common import (logistic_grad_by_hand, logistic_hessp_by_hand, logistic_loss,
                     logistic_problem)

SOURCES = ["dualrev", "by_hand", "autograd", "jax", "torch"]
PROBLEMS = ["newton_cg_logistic", "least_squares_exp_fit"]


def require_peer(module):
    """Import a peer library, or NotImplementedError naming the extra (asv skips)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise NotImplementedError(f"{module} is not installed; `pip install dualrev[peers]` "
                                  "installs the peers (autograd, JAX, PyTorch)") from None


# ---- derivative sources: (value_and_grad, hessp) and jacobian, on NumPy arrays ----------

def _logistic(xp, w, A, b, lam, logaddexp):
    z = b * (A @ w)
    return xp.sum(logaddexp(0.0 * z, -z)) / A.shape[0] + 0.5 * lam * xp.sum(w * w)


def _decay_residual(xp, p, t, y):
    return p[0] * xp.exp(-p[1] * t) + p[2] * xp.exp(-p[3] * t) + p[4] - y


def _autograd_derivatives(A, b, lam, t, y):
    autograd = require_peer("autograd")
    anp = require_peer("autograd.numpy")

    def loss(w):
        return _logistic(anp, w, A, b, lam, anp.logaddexp)
    make_hvp = autograd.differential_operators.make_hvp(loss)
    return (autograd.value_and_grad(loss), lambda w, p: make_hvp(w)[0](p),
            autograd.jacobian(lambda p: _decay_residual(anp, p, t, y)))


def _jax_derivatives(A, b, lam, t, y):
    jax = require_peer("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    A_, b_, t_, y_ = (jnp.asarray(a) for a in (A, b, t, y))

    def loss(w):
        return _logistic(jnp, w, A_, b_, lam, jnp.logaddexp)
    value_and_grad = jax.value_and_grad(loss)
    jac = jax.jacfwd(lambda p: _decay_residual(jnp, p, t_, y_))
    return ((lambda w: tuple(np.asarray(v) for v in value_and_grad(w))),
            (lambda w, p: np.asarray(jax.jvp(jax.grad(loss), (w,), (p,))[1])),
            (lambda p: np.asarray(jac(p))))


def _torch_derivatives(A, b, lam, t, y):
    torch = require_peer("torch")
    A_, b_, t_, y_ = (torch.tensor(a) for a in (A, b, t, y))

    def loss(w):
        return _logistic(torch, w, A_, b_, lam, torch.logaddexp)

    def value_and_grad(w):
        w = torch.tensor(w, requires_grad=True)
        value = loss(w)
        return value.item(), torch.autograd.grad(value, w)[0].numpy()

    def hessp(w, p):
        return torch.autograd.functional.hvp(loss, torch.tensor(w), torch.tensor(p))[1].numpy()

    def jac(p):
        return torch.autograd.functional.jacobian(
            lambda q: _decay_residual(torch, q, t_, y_), torch.tensor(p),
            vectorize=True, strategy="forward-mode").numpy()
    return value_and_grad, hessp, jac


PEERS = {"autograd": _autograd_derivatives, "jax": _jax_derivatives,
         "torch": _torch_derivatives}


def solver(source, problem):
    """A function of no argument running ``problem`` with derivatives from ``source``."""
    A, b, lam = logistic_problem(1000, 50)
    t, y = exp_fit_problem()
    w0 = np.zeros(A.shape[1])
    if source == "dualrev":
        return {"newton_cg_logistic": lambda: minimize(logistic_loss, w0, args=(A, b, lam),
                                                       method="Newton-CG"),
                "least_squares_exp_fit": lambda: least_squares(residual, START,
                                                               args=(t, y))}[problem]
    if source == "by_hand":
        return {"newton_cg_logistic": lambda: scipy.optimize.minimize(
                    logistic_loss, w0, args=(A, b, lam), method="Newton-CG",
                    jac=logistic_grad_by_hand, hessp=logistic_hessp_by_hand),
                "least_squares_exp_fit": lambda: scipy.optimize.least_squares(
                    residual, START, jac=jacobian_by_hand, args=(t, y))}[problem]
    value_and_grad, hessp, jac = PEERS[source](A, b, lam, t, y)
    if problem == "newton_cg_logistic":
        return lambda: scipy.optimize.minimize(value_and_grad, w0, jac=True, hessp=hessp,
                                               method="Newton-CG")
    return lambda: scipy.optimize.least_squares(lambda p: residual(p, t, y), START, jac=jac)


class OptimizerPeers:
    """Solve time per derivative source; peers skipped (naming dualrev[peers]) when absent."""

    params = [SOURCES, PROBLEMS]
    param_names = ["source", "problem"]
    timeout = 300

    def setup(self, source, problem):
        self.solve = solver(source, problem)
        self.result = self.solve()  # warm up (imports, tracing caches)

    def time_solve(self, source, problem):
        self.solve()

    def track_nfev(self, source, problem):
        return self.result.nfev


def main():
    import time
    for problem in PROBLEMS:
        print(problem)
        floor = None
        for source in ["by_hand"] + [s for s in SOURCES if s != "by_hand"]:
            try:
                solve = solver(source, problem)
                solve()
            except NotImplementedError as error:
                print(f"{source:>9}: skipped ({error})")
                continue
            best = min(_timed(solve, time) for _ in range(5))
            floor = floor or best
            print(f"{source:>9}: {best * 1e3:8.2f} ms  {best / floor:5.2f} x by_hand")


def _timed(solve, time):
    start = time.perf_counter()
    solve()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
