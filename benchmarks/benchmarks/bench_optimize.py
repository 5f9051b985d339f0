"""SciPy's optimisers fed by dualrev: evaluation counts, solve time, overhead.

``Optimizers`` tracks ``nfev``/``njev``/``nhev`` and the solve time of each
SciPy method on a seeded L2 logistic regression. ``NewtonCGLogistic`` solves
the 5,000 x 200 problem by Newton-CG three ways: dualrev
(:func:`dualrev.optimize.minimize`), hand-written NumPy derivatives (the
floor), and HIPS/autograd when it is installed.
``NewtonCGRosen`` solves ``scipy.optimize.rosen`` at n = 10^4 by Newton-CG
through the array API namespace (``SCIPY_ARRAY_API=1``) against SciPy's own
``rosen_der``/``rosen_hess_prod``. ``python -m benchmarks.bench_optimize``
(from ``benchmarks/``) times the solvers of each in one run and prints the
ratios.
"""

import os

import numpy as np
import scipy.optimize

from dualrev.optimize import minimize

from .common import (best_times, logistic_grad_by_hand, logistic_hessp_by_hand,
                     logistic_loss, logistic_problem)

NEWTON_CG_OPTIONS = {"xtol": 1e-8}


def _autograd():
    """The ``autograd`` package, or NotImplementedError (asv then skips)."""
    try:
        import autograd
        import autograd.numpy
    except ImportError:
        raise NotImplementedError("autograd is not installed") from None
    return autograd


class Optimizers:
    """Each SciPy method that takes derivatives, on logistic regression 1,000 x 50."""

    params = [["Newton-CG", "trust-ncg", "trust-krylov", "trust-constr", "trust-exact",
               "dogleg", "BFGS", "L-BFGS-B", "CG", "SLSQP"]]
    param_names = ["method"]

    def setup(self, method):
        A, b, lam = logistic_problem(1000, 50)
        self.args = (A, b, lam)
        self.w0 = np.zeros(A.shape[1])
        self.result = self.solve(method)

    def solve(self, method):
        return minimize(logistic_loss, self.w0, args=self.args, method=method)

    def time_solve(self, method):
        self.solve(method)

    def track_nfev(self, method):
        return self.result.nfev

    def track_njev(self, method):
        return self.result.get("njev", 0)

    def track_nhev(self, method):
        return self.result.get("nhev", 0)


def solve_dualrev(A, b, lam):
    """Newton-CG with dualrev's gradient and HVP operator."""
    return minimize(logistic_loss, np.zeros(A.shape[1]), args=(A, b, lam),
                    method="Newton-CG", options=NEWTON_CG_OPTIONS)


def solve_by_hand(A, b, lam):
    """Newton-CG with hand-written NumPy gradient and Hessian-vector product."""
    return scipy.optimize.minimize(logistic_loss, np.zeros(A.shape[1]), args=(A, b, lam),
                                   method="Newton-CG", jac=logistic_grad_by_hand,
                                   hessp=logistic_hessp_by_hand, options=NEWTON_CG_OPTIONS)


def solve_autograd(A, b, lam):
    """Newton-CG with autograd: value and gradient together, ``make_hvp`` per iterate.

    ``make_hvp`` records ``grad f`` once at a point; its products are cached
    on ``x`` as dualrev's are, so both libraries do the same work.
    """
    autograd = _autograd()
    anp = autograd.numpy

    def loss(w):  # logistic_loss, written against autograd.numpy
        z = b * (A @ w)
        return anp.sum(anp.logaddexp(0.0, -z)) / A.shape[0] + 0.5 * lam * anp.sum(w * w)

    value_and_grad = autograd.value_and_grad(loss)
    make_hvp = autograd.differential_operators.make_hvp(loss)
    cache = {}

    def hessp(w, p):
        key = w.tobytes()
        if key not in cache:
            cache.clear()
            cache[key] = make_hvp(w)[0]
        return cache[key](p)
    return scipy.optimize.minimize(value_and_grad, np.zeros(A.shape[1]), jac=True,
                                   hessp=hessp, method="Newton-CG",
                                   options=NEWTON_CG_OPTIONS)


SOLVERS = {"dualrev": solve_dualrev, "by_hand": solve_by_hand, "autograd": solve_autograd}


class NewtonCGLogistic:
    """Total Newton-CG solve time on L2 logistic regression 5,000 x 200."""

    params = [list(SOLVERS)]
    param_names = ["solver"]

    def setup(self, solver):
        if solver == "autograd":
            _autograd()
        self.problem = logistic_problem(5000, 200)

    def time_solve(self, solver):
        SOLVERS[solver](*self.problem)

    def track_nhev(self, solver):
        return SOLVERS[solver](*self.problem).nhev


def _rosen_start(n):
    """The classic start (-1.2, 1, -1.2, 1, ...)."""
    return np.where(np.arange(n) % 2 == 0, -1.2, 1.0)


def solve_rosen_dualrev(x0):
    return minimize(scipy.optimize.rosen, x0, method="Newton-CG")


def solve_rosen_scipy(x0):
    return scipy.optimize.minimize(scipy.optimize.rosen, x0, method="Newton-CG",
                                   jac=scipy.optimize.rosen_der,
                                   hessp=scipy.optimize.rosen_hess_prod)


ROSEN_SOLVERS = {"dualrev": solve_rosen_dualrev, "scipy": solve_rosen_scipy}


def _require_scipy_array_api():
    if not os.environ.get("SCIPY_ARRAY_API"):
        raise NotImplementedError("set SCIPY_ARRAY_API=1 before running (SciPy reads it "
                                  "at import) to differentiate scipy.optimize.rosen")


class NewtonCGRosen:
    """``minimize(scipy.optimize.rosen, x0, method="Newton-CG")`` at n = 10^4 through
    the array API namespace, against SciPy with ``rosen_der``/``rosen_hess_prod``."""

    params = [list(ROSEN_SOLVERS)]
    param_names = ["solver"]

    def setup(self, solver):
        _require_scipy_array_api()
        self.x0 = _rosen_start(10_000)

    def time_solve(self, solver):
        ROSEN_SOLVERS[solver](self.x0)

    def track_nhev(self, solver):
        return ROSEN_SOLVERS[solver](self.x0).nhev


def main():
    problem = logistic_problem(5000, 200)
    rows = best_times(SOLVERS, problem)
    floor = rows["by_hand"][0]
    print("Newton-CG, L2 logistic regression 5000 x 200 (best of 9 solves, interleaved)")
    for name, (seconds, res) in rows.items():
        print(f"{name:>9}: {seconds * 1e3:8.1f} ms  {seconds / floor:5.2f} x by_hand  "
              f"nit {res.nit}  nfev {res.nfev}  njev {res.njev}  nhev {res.nhev}  "
              f"f {res.fun:.12f}")
    if "autograd" in rows:
        print(f"dualrev / autograd: {rows['dualrev'][0] / rows['autograd'][0]:.2f}")
    try:
        _require_scipy_array_api()
    except NotImplementedError as error:
        print(f"Newton-CG on scipy.optimize.rosen: skipped ({error})")
        return
    rows = best_times(ROSEN_SOLVERS, (_rosen_start(10_000),), repeat=5)
    print("Newton-CG, scipy.optimize.rosen n = 10^4 (best of 5 solves, interleaved)")
    for name, (seconds, res) in rows.items():
        print(f"{name:>9}: {seconds * 1e3:8.1f} ms  nit {res.nit}  nfev {res.nfev}  "
              f"nhev {res.nhev}  f {res.fun:.3e}")
    print(f"dualrev / scipy (rosen_der, rosen_hess_prod): "
          f"{rows['dualrev'][0] / rows['scipy'][0]:.2f}")


if __name__ == "__main__":
    main()
