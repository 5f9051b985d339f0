"""The extended Rosenbrock function in 10,000 dimensions, by trust-krylov.

trust-krylov solves each trust-region subproblem by Lanczos iterations,
that is by Hessian-vector products. dualrev records the gradient once per
iterate and answers every product with one sweep of that recording; the
10,000 x 10,000 Hessian is never formed.

Run: python examples/rosenbrock.py
"""

import time

import numpy as np

from dualrev.optimize import minimize


def rosen(x):
    """sum 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2, minimum 0 at all ones."""
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def main(n=10_000):
    x0 = np.random.default_rng(0).uniform(0.0, 2.0, n)
    start = time.perf_counter()
    res = minimize(rosen, x0, method="trust-krylov", options={"gtol": 1e-8})
    seconds = time.perf_counter() - start
    print(f"extended Rosenbrock, n = {n}, trust-krylov")
    print(f"  {res.message}")
    print(f"  nit {res.nit}  nfev {res.nfev}  njev {res.njev}  nhev {res.nhev}  "
          f"time {seconds:.2f}s")
    print(f"  f = {res.fun:.3e}, max |x - 1| = {np.max(np.abs(res.x - 1.0)):.2e}")


if __name__ == "__main__":
    main()
