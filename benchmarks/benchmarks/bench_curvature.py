"""Curvature tools: ``hessian_diagonal`` with 100 probes against one gradient.

Hutchinson's estimate pushes its 100 Rademacher probes through one recording
of ``grad f`` as batched forward replays (``HVPOperator.matmat``), not 100
separate sweeps. ``python -m benchmarks.bench_curvature`` (from
``benchmarks/``) prints the time of the estimate in units of one gradient,
and of 100 one-at-a-time products for comparison, on the MLP of
:mod:`.common` at two sizes.
"""

import numpy as np

import dualrev

from .bench_tape import _best_seconds
from .common import mlp_loss, mlp_problem

MLPS = {"784-256-10 batch 128": {}, "64-32-10 batch 256": {"batch": 256,
                                                             "sizes": (64, 32, 10)}}


class HessianDiagonal:
    """Hutchinson's diagonal, 100 probes, on the MLP."""

    params = [list(MLPS), ["batched", "one_at_a_time"]]
    param_names = ["mlp", "products"]
    timeout = 300

    def setup(self, mlp, products):
        self.params_, self.X, self.y = mlp_problem(**MLPS[mlp])
        if products == "one_at_a_time":
            self.Z = np.random.default_rng(0).choice([-1.0, 1.0], size=(
                dualrev.tree.ravel_pytree(self.params_)[0].size, 100))

    def time_diagonal(self, mlp, products):
        if products == "batched":
            dualrev.hessian_diagonal(mlp_loss, self.params_, 100, args=(self.X, self.y),
                                     seed=0)
        else:
            H = dualrev.hvp_operator(mlp_loss, self.params_, args=(self.X, self.y))
            np.mean(self.Z * np.column_stack([H @ z for z in self.Z.T]), axis=1)


class Gradient:
    """One gradient of the MLP: the unit of :class:`HessianDiagonal`'s times."""

    params = [list(MLPS)]
    param_names = ["mlp"]

    def setup(self, mlp):
        self.params_, self.X, self.y = mlp_problem(**MLPS[mlp])

    def time_gradient(self, mlp):
        dualrev.grad(mlp_loss)(self.params_, self.X, self.y)


def main():
    for name in MLPS:
        unit, bench = Gradient(), HessianDiagonal()
        unit.setup(name)
        bench.setup(name, "one_at_a_time")  # its probes serve both
        gradient = _best_seconds(lambda: unit.time_gradient(name), 20)
        batched = _best_seconds(lambda: bench.time_diagonal(name, "batched"), 3)
        single = _best_seconds(lambda: bench.time_diagonal(name, "one_at_a_time"), 3)
        print(f"MLP {name}: one gradient {gradient * 1e3:.2f} ms; hessian_diagonal, 100 "
              f"probes: batched {batched * 1e3:.1f} ms = {batched / gradient:.0f} x gradient, "
              f"one at a time {single * 1e3:.1f} ms = {single / gradient:.0f} x gradient")


if __name__ == "__main__":
    main()
