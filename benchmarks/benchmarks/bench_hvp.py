"""Hessian-vector products: the four modes, the prebuilt operator, full cost.

Rosenbrock at n = 100 ... 10^6 (SciPy's ``rosen_der`` and
``rosen_hess_prod`` are the hand-written floors) and the MLP loss of
:mod:`.common`. ``python -m benchmarks.bench_hvp`` (from ``benchmarks/``)
prints every cost at n = 10^6 as a multiple of one evaluation of ``rosen``.
"""

import multiprocessing
import sys
import time
import timeit
from concurrent.futures import ProcessPoolExecutor

import numpy as np

import dualrev
from dualrev.hvp import HVP_MODES, OPERATOR_MODES

from .common import (mlp_loss, mlp_loss_grad_by_hand, mlp_problem, rng, rosen_der,
                     rosen_hess_prod, rosen_point)


def rosen_numpy(x):
    """``scipy.optimize.rosen`` in plain NumPy (SciPy's converts its input)."""
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2.0) ** 2.0 + (1 - x[:-1]) ** 2.0)


class HVPModes:
    """One-shot ``hvp(rosen, x, v, mode)``: recording and product together."""

    params = [[100, 10_000, 1_000_000], list(HVP_MODES)]
    param_names = ["n", "mode"]

    def setup(self, n, mode):
        self.x = rosen_point(n)
        self.v = rng(1).standard_normal(n)

    def time_hvp(self, n, mode):
        dualrev.hvp(rosen_numpy, self.x, self.v, mode=mode)

    def peakmem_hvp(self, n, mode):
        dualrev.hvp(rosen_numpy, self.x, self.v, mode=mode)


class HVPOperatorRosen:
    """The prebuilt operator: one recording of ``grad f``, then sweeps."""

    params = [[100, 10_000, 1_000_000], list(OPERATOR_MODES)]
    param_names = ["n", "mode"]

    def setup(self, n, mode):
        self.x = rosen_point(n)
        self.v = rng(1).standard_normal(n)
        self.H = dualrev.hvp_operator(rosen_numpy, self.x, mode=mode)

    def time_build_operator(self, n, mode):
        dualrev.hvp_operator(rosen_numpy, self.x, mode=mode)

    def peakmem_build_operator(self, n, mode):
        dualrev.hvp_operator(rosen_numpy, self.x, mode=mode)

    def time_matvec(self, n, mode):
        self.H.matvec(self.v)


class RosenReference:
    """``f``, ``grad f`` and the hand-written floors, for the ratios."""

    params = [[100, 10_000, 1_000_000]]
    param_names = ["n"]

    def setup(self, n):
        self.x = rosen_point(n)
        self.v = rng(1).standard_normal(n)
        self.grad = dualrev.grad(rosen_numpy)

    def time_f(self, n):
        rosen_numpy(self.x)

    def time_grad(self, n):
        self.grad(self.x)

    def time_value_grad_hvp(self, n):
        dualrev.value_grad_hvp(rosen_numpy, self.x, self.v)

    def time_rosen_der(self, n):
        rosen_der(self.x)

    def time_rosen_hess_prod(self, n):
        rosen_hess_prod(self.x, self.v)


class HVPModesMLP:
    """HVPs of the MLP loss over its parameter dict (784-256-10, batch 128)."""

    params = [list(HVP_MODES)]
    param_names = ["mode"]

    def setup(self, mode):
        self.params_, self.X, self.y = mlp_problem()
        r = rng(2)
        self.v = {k: r.standard_normal(np.shape(p)) for k, p in self.params_.items()}

    def time_hvp(self, mode):
        dualrev.hvp(mlp_loss, self.params_, self.v, mode=mode, args=(self.X, self.y))

    def peakmem_hvp(self, mode):
        dualrev.hvp(mlp_loss, self.params_, self.v, mode=mode, args=(self.X, self.y))


class HVPOperatorMLP:
    """Prebuilt operator over the flattened MLP parameters."""

    params = [list(OPERATOR_MODES)]
    param_names = ["mode"]

    def setup(self, mode):
        self.params_, self.X, self.y = mlp_problem()
        self.H = dualrev.hvp_operator(mlp_loss, self.params_, mode=mode,
                                      args=(self.X, self.y))
        self.v = rng(2).standard_normal(self.H.shape[0])

    def time_matvec(self, mode):
        self.H.matvec(self.v)


class MLPReference:
    """MLP loss, its gradient by dualrev and by hand."""

    def setup(self):
        self.params_, self.X, self.y = mlp_problem()
        self.grad = dualrev.grad(mlp_loss)

    def time_f(self):
        mlp_loss(self.params_, self.X, self.y)

    def time_grad(self):
        self.grad(self.params_, self.X, self.y)

    def time_grad_by_hand(self):
        mlp_loss_grad_by_hand(self.params_, self.X, self.y)


#: What ``rosen_ratios`` times, in its order.
ROSEN_COSTS = (("f", "grad") + tuple(f"hvp {mode}" for mode in HVP_MODES)
               + tuple(f"matvec {mode}" for mode in OPERATOR_MODES)
               + ("value_grad_hvp", "rosen_der", "rosen_hess_prod"))


def rosen_cost(name, n):
    """The call timed as ``name`` by :func:`rosen_ratios`, with its set-up done."""
    x, v = rosen_point(n), rng(1).standard_normal(n)
    kind, _, mode = name.partition(" ")
    if kind == "f":
        return lambda: rosen_numpy(x)
    if kind == "grad":
        grad = dualrev.grad(rosen_numpy)
        return lambda: grad(x)
    if kind == "hvp":
        return lambda: dualrev.hvp(rosen_numpy, x, v, mode=mode)
    if kind == "matvec":
        H = dualrev.hvp_operator(rosen_numpy, x, mode=mode)
        return lambda: H.matvec(v)
    if kind == "value_grad_hvp":
        return lambda: dualrev.value_grad_hvp(rosen_numpy, x, v)
    if kind == "rosen_der":
        return lambda: rosen_der(x)
    if kind == "rosen_hess_prod":
        return lambda: rosen_hess_prod(x, v)
    raise ValueError(f"no Rosenbrock cost named {name!r}; the costs are {ROSEN_COSTS}")


def best_seconds(name, n, runs):
    """Best of ``runs`` timed calls of :func:`rosen_cost` after one untimed call."""
    fn = rosen_cost(name, n)
    fn()
    return min(timeit.repeat(fn, number=1, repeat=runs, timer=time.process_time))


def rosen_ratios(n=1_000_000, rounds=5, runs=3):
    """Costs at ``n`` as multiples of one ``rosen`` evaluation.

    As asv does, each cost is timed in a process of its own that holds only
    its own set-up: at n = 10^6 a cost depends on the memory state the
    process is in (whether freed blocks are still mapped changes f by a
    third), and each cost then meets the state it leaves itself. A cost is
    the best, over ``rounds`` such processes, of ``runs`` calls in CPU time
    (``time.process_time``: page faults included, time lost to other
    processes on a shared machine not); the rounds visit every cost in turn,
    so that changes in the machine's load fall on all of them alike.
    """
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    seconds = dict.fromkeys(ROSEN_COSTS, np.inf)
    for _ in range(rounds):
        for name in ROSEN_COSTS:
            with ProcessPoolExecutor(1, mp_context=context) as pool:
                seconds[name] = min(seconds[name],
                                    pool.submit(best_seconds, name, n, runs).result())
    return {name: (s, s / seconds["f"]) for name, s in seconds.items()}


if __name__ == "__main__":
    for name, (seconds, ratio) in rosen_ratios().items():
        print(f"{name:22s} {seconds * 1e3:9.2f} ms  {ratio:6.2f} x f")
