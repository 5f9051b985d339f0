"""L2-regularised logistic regression: Newton-CG against L-BFGS-B.

The loss is plain NumPy; dualrev.optimize.minimize gives SciPy its
gradient and, for Newton-CG, Hessian-vector products (one recording of the
gradient per iterate, one sweep of it per product). Prints the iterations,
the evaluation counts and the time of each solver.

Run: python examples/logistic_regression.py
"""

import time

import numpy as np

from dualrev.optimize import minimize


def make_problem(n_samples=5000, n_features=200, seed=0):
    """A seeded design matrix, labels in {-1, +1} from a noisy linear model."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n_samples, n_features))
    w_true = rng.standard_normal(n_features) / np.sqrt(n_features)
    b = np.where(A @ w_true + 0.5 * rng.standard_normal(n_samples) >= 0.0, 1.0, -1.0)
    return A, b, 1.0 / n_samples


def loss(w, A, b, lam):
    """Mean logistic loss plus (lam / 2) ||w||^2."""
    z = b * (A @ w)
    return np.sum(np.logaddexp(0.0, -z)) / A.shape[0] + 0.5 * lam * np.sum(w * w)


def solve(method, A, b, lam):
    start = time.perf_counter()
    res = minimize(loss, np.zeros(A.shape[1]), args=(A, b, lam), method=method,
                   options={"gtol": 1e-8, "ftol": 1e-15} if method == "L-BFGS-B"
                   else {"xtol": 1e-8})
    return res, time.perf_counter() - start


def main():
    A, b, lam = make_problem()
    print(f"L2 logistic regression, {A.shape[0]} samples x {A.shape[1]} features")
    print(f"{'method':>10} {'nit':>5} {'nfev':>5} {'njev':>5} {'nhev':>5} "
          f"{'time':>9} {'loss':>16} {'|grad|':>9}")
    solutions = {}
    for method in ("Newton-CG", "L-BFGS-B"):
        res, seconds = solve(method, A, b, lam)
        solutions[method] = res.x
        print(f"{method:>10} {res.nit:5d} {res.nfev:5d} {res.njev:5d} "
              f"{res.get('nhev', 0):5d} {seconds * 1e3:7.1f}ms {res.fun:16.12f} "
              f"{np.linalg.norm(res.jac):9.2e}")
    gap = np.max(np.abs(solutions["Newton-CG"] - solutions["L-BFGS-B"]))
    print(f"largest difference between the two solutions: {gap:.1e}")


if __name__ == "__main__":
    main()
