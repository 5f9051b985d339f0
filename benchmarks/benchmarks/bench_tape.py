"""Tape overhead: many tiny ops, and a realistic loss against hand-written backprop.

``TapeOverhead`` runs the scalar chain ``acc = sin(acc) * x + 0.5`` for 2,000
steps (6,000 primitives) and a Python loop indexing 2,000 elements (10,000
primitives: two ``getitem``, ``sin``, ``multiply``, ``add`` per element);
``track_grad_us_per_primitive`` divides the gradient's time by the number of
primitives on its tape. ``MLPLoss`` times the loss, its dualrev gradient and
the hand-written gradient of :func:`.common.mlp_loss_grad_by_hand`.
"""

import timeit

import numpy as np

import dualrev
from dualrev.costmodel import tape_cost
from dualrev.reverse import Tape

from .bench_peers import BUILDERS
from .common import (indexing_loop, indexing_loop_grad_by_hand, mlp_loss,
                     mlp_loss_grad_by_hand, mlp_problem, rng, scalar_chain,
                     scalar_chain_deriv_by_hand)


def _best_seconds(fn, repeat=15):
    """The best of ``repeat`` single runs: the run least disturbed by other load.

    Wall time, not the process's CPU time: that would also count threads
    that spin while waiting for work (a threaded BLAS does).
    """
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def _ratio(numerator, denominator, repeat=15):
    """Best time of ``numerator`` over best time of ``denominator``, their runs
    interleaved so that changes in the machine's load fall on both alike."""
    best = [np.inf, np.inf]
    for _ in range(repeat):
        for k, fn in enumerate((numerator, denominator)):
            best[k] = min(best[k], timeit.timeit(fn, number=1))
    return best[0] / best[1]


class TapeOverhead:
    """Per-primitive cost of recording and sweeping a long tape of tiny ops."""

    params = [["scalar_chain", "indexing_loop"]]
    param_names = ["workload"]

    def setup(self, workload):
        if workload == "scalar_chain":
            self.f, self.x, self.by_hand = scalar_chain, 0.3, scalar_chain_deriv_by_hand
        else:
            self.f, self.x = indexing_loop, rng(0).uniform(-1.0, 1.0, 2000)
            self.by_hand = indexing_loop_grad_by_hand
        self.grad = dualrev.grad(self.f)
        tape = Tape(keep_all=True)  # every primitive call, also those a tape elides
        self.f(tape.input(self.x))
        self.primitives = tape_cost(tape).ops

    def time_f(self, workload):
        self.f(self.x)

    def time_grad(self, workload):
        self.grad(self.x)

    def time_grad_by_hand(self, workload):
        self.by_hand(self.x)

    def track_primitives(self, workload):
        return self.primitives

    track_primitives.unit = "primitives"

    def track_grad_us_per_primitive(self, workload):
        return 1e6 * _best_seconds(lambda: self.grad(self.x)) / self.primitives

    track_grad_us_per_primitive.unit = "us"

    def track_f_us_per_primitive(self, workload):
        return 1e6 * _best_seconds(lambda: self.f(self.x)) / self.primitives

    track_f_us_per_primitive.unit = "us"


class MLPLoss:
    """Two-layer MLP (batch 128, 784-256-10): loss, gradient, hand-written gradient."""

    def setup(self):
        self.params, self.X, self.y = mlp_problem()
        self.grad = dualrev.grad(mlp_loss)

    def time_loss(self):
        mlp_loss(self.params, self.X, self.y)

    def time_grad(self):
        self.grad(self.params, self.X, self.y)

    def time_grad_by_hand(self):
        mlp_loss_grad_by_hand(self.params, self.X, self.y)

    def track_grad_over_loss(self):
        return _ratio(lambda: self.grad(self.params, self.X, self.y),
                           lambda: mlp_loss(self.params, self.X, self.y))

    track_grad_over_loss.unit = "ratio"

    def track_grad_over_by_hand(self):
        return _ratio(lambda: self.grad(self.params, self.X, self.y),
                           lambda: mlp_loss_grad_by_hand(self.params, self.X, self.y))

    track_grad_over_by_hand.unit = "ratio"


def main():
    """Print the figures of the tape and MLP targets, measured in one run,
    and, when HIPS/autograd is installed, the scalar chain's time as a
    fraction of autograd's (a figure that does not depend on the machine's
    speed of the day).

    ``cd benchmarks && OPENBLAS_NUM_THREADS=1 python -m benchmarks.bench_tape``
    """
    for workload in TapeOverhead.params[0]:
        bench = TapeOverhead()
        bench.setup(workload)
        print(f"{workload}: grad {bench.track_grad_us_per_primitive(workload):.2f} us, "
              f"f {bench.track_f_us_per_primitive(workload):.2f} us per primitive "
              f"({bench.primitives} primitives)")
    mlp = MLPLoss()
    mlp.setup()
    print(f"MLP loss: grad / loss {mlp.track_grad_over_loss():.2f}, "
          f"grad / hand-written {mlp.track_grad_over_by_hand():.2f}")
    try:  # the scalar chain in HIPS/autograd, when it is installed (the peers extra)
        autograd_grad = BUILDERS["autograd"]("scalar_chain")
    except NotImplementedError:
        return
    print(f"scalar_chain: dualrev / HIPS/autograd "
          f"{_ratio(BUILDERS['dualrev']('scalar_chain'), autograd_grad, repeat=7):.3f}")


if __name__ == "__main__":
    main()
