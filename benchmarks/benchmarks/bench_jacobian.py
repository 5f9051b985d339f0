"""Forward against reverse Jacobians of ``tanh(A x)``: where the modes cross.

``jacfwd`` pushes ``n`` directions (batched), ``jacrev`` sweeps one tape ``m``
times. ``track_model_cost`` records the machine-independent prediction of
:mod:`dualrev.comparison` next to the measured times, so a plot of both shows
how far the cost model's crossover sits from the measured one.
"""

import numpy as np

import dualrev
from dualrev.costmodel import jacobian_costs, tape_cost
from dualrev.reverse import Tape

from .common import rng


class JacobianCrossover:
    """Jacobian of ``x -> tanh(A x)``, ``A`` of shape ``(m, n)``."""

    params = [[4, 32, 256, 1024], [4, 32, 256], ["fwd", "rev"]]
    param_names = ["n", "m", "mode"]

    def setup(self, n, m, mode):
        A = rng(0).standard_normal((m, n)) / np.sqrt(n)
        self.f = lambda x: np.tanh(A @ x)
        self.x = rng(1).standard_normal(n)
        self.jacobian = dualrev.jacfwd(self.f) if mode == "fwd" else dualrev.jacrev(self.f)

    def time_jacobian(self, n, m, mode):
        self.jacobian(self.x)

    def peakmem_jacobian(self, n, m, mode):
        self.jacobian(self.x)

    def track_model_cost(self, n, m, mode):
        tape = Tape()
        self.f(tape.input(self.x))
        return jacobian_costs(tape_cost(tape), n, m)[mode]

    track_model_cost.unit = "flop-equivalents"
