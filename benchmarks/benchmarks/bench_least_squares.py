"""``dualrev.optimize.least_squares`` against SciPy with a hand-written Jacobian.

The problem: a two-exponential decay ``a1 exp(-k1 t) + a2 exp(-k2 t) + c``
fitted to 2,000 noisy samples (5 parameters, tall and thin, so the cost
model picks forward mode). Solvers: SciPy's ``trf`` with the hand-written
Jacobian (the floor), dualrev eager (the Jacobian by ``jacfwd`` at each
point), dualrev with ``compile=True`` (the Jacobian staged once and kept for
the residual function: the staging is paid by the first solve only).
``python -m benchmarks.bench_least_squares`` (from ``benchmarks/``) times
them in one run and prints the ratios.
"""

import time

import numpy as np
import scipy.optimize

from dualrev.optimize import least_squares

from .common import best_times, rng

TRUE = np.array([3.0, 1.3, 1.5, 0.2, 0.5])
START = np.array([1.0, 1.0, 1.0, 0.1, 0.0])


def exp_fit_problem(m=2000, seed=0):
    """``(t, y)``: 2,000 samples of the two-exponential decay with noise."""
    t = np.linspace(0.0, 10.0, m)
    return t, decay(TRUE, t) + 0.01 * rng(seed).standard_normal(m)


def decay(p, t):
    return p[0] * np.exp(-p[1] * t) + p[2] * np.exp(-p[3] * t) + p[4]


def residual(p, t, y):
    return p[0] * np.exp(-p[1] * t) + p[2] * np.exp(-p[3] * t) + p[4] - y


def jacobian_by_hand(p, t, y):
    e1, e2 = np.exp(-p[1] * t), np.exp(-p[3] * t)
    return np.column_stack([e1, -p[0] * t * e1, e2, -p[2] * t * e2, np.ones_like(t)])


def solve_by_hand(t, y):
    return scipy.optimize.least_squares(residual, START, jac=jacobian_by_hand, args=(t, y))


def solve_dualrev(t, y):
    return least_squares(residual, START, args=(t, y))


def solve_dualrev_compiled(t, y):
    return least_squares(residual, START, args=(t, y), compile=True)


SOLVERS = {"by_hand": solve_by_hand, "dualrev": solve_dualrev,
           "compiled": solve_dualrev_compiled}


class LeastSquaresExpFit:
    """Total ``trf`` solve time, 2,000 residuals x 5 parameters."""

    params = [list(SOLVERS)]
    param_names = ["solver"]

    def setup(self, solver):
        self.problem = exp_fit_problem()
        self.result = SOLVERS[solver](*self.problem)  # also stages the compiled Jacobian

    def time_solve(self, solver):
        SOLVERS[solver](*self.problem)

    def track_njev(self, solver):
        return self.result.njev


def main(repeat=50):
    problem = exp_fit_problem()
    start = time.perf_counter()
    solve_dualrev_compiled(*problem)
    first = time.perf_counter() - start
    rows = best_times(SOLVERS, problem, repeat)
    floor = rows["by_hand"][0]
    print(f"least_squares (trf), 2000 residuals x 5 parameters (best of {repeat}, "
          "interleaved)")
    for name, (seconds, res) in rows.items():
        print(f"{name:>9}: {seconds * 1e3:7.2f} ms  {seconds / floor:5.2f} x by_hand  "
              f"nfev {res.nfev}  njev {res.njev}  cost {res.cost:.10f}")
    print(f"first compiled solve (staging included): {first * 1e3:.2f} ms  "
          f"{first / floor:5.2f} x by_hand")


if __name__ == "__main__":
    main()
