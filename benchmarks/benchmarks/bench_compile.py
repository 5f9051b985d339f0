"""Compiled derivatives (``dualrev.compile``) against eager ones and hand-written code.

Each workload is staged once in ``setup``; the ``time_*`` benchmarks then
time one replay, ``track_staging_over_eager`` the first call (staging,
passes, source generation and Python's compilation of it) over one eager
call of the same transformation.

The ``compiled-numba`` benchmarks (``FusedTapeOverhead``, ``FusedRosenbrock``,
``FusedMLP``) time the same workloads with ``backend="numba"`` (the extra
``dualrev[jit]``; skipped without it); ``track_compile_seconds`` reports
numba's compile time apart (loaded from its disk cache after the first run).

``python -m benchmarks.bench_compile`` (from ``benchmarks/``, with
``OPENBLAS_NUM_THREADS=1``) prints every figure of the compile targets as a
ratio measured in one run.
"""

import importlib.util
import time

import numpy as np
import scipy.optimize

import dualrev
from dualrev.optimize import minimize

from .bench_tape import TapeOverhead, _best_seconds, _ratio
from .common import (logistic_grad_by_hand, logistic_hessp_by_hand, logistic_loss,
                     logistic_problem, mlp_loss, mlp_loss_grad_by_hand, mlp_problem, rng,
                     rosen_point)


def rosen(x):
    """Rosenbrock in plain NumPy (SciPy's ``rosen``, written out)."""
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _staging_over_eager(make, call):
    """Time of a compiled function's first call (it stages) over one eager call."""
    eager = _best_seconds(call(make(False)), repeat=3)
    compiled = make(True)
    start = time.perf_counter()
    call(compiled)()
    return (time.perf_counter() - start) / eager


class CompiledTapeOverhead:
    """Per-primitive cost of a compiled gradient on the tape-overhead workloads."""

    params = [["scalar_chain", "indexing_loop"]]
    param_names = ["workload"]
    backend = "default"

    def setup(self, workload):
        base = TapeOverhead()
        base.setup(workload)
        self.x, self.primitives, self.by_hand = base.x, base.primitives, base.by_hand
        self.f = base.f
        self.grad = dualrev.compile(dualrev.grad(self.f), backend=self.backend)
        self.grad(self.x)

    def time_grad(self, workload):
        self.grad(self.x)

    def track_grad_us_per_primitive(self, workload):
        return 1e6 * _best_seconds(lambda: self.grad(self.x)) / self.primitives

    track_grad_us_per_primitive.unit = "us"

    def track_staging_over_eager(self, workload):
        return _staging_over_eager(
            lambda compiled: dualrev.compile(dualrev.grad(self.f), backend=self.backend)
            if compiled else dualrev.grad(self.f), lambda g: lambda: g(self.x))

    track_staging_over_eager.unit = "ratio"


class CompiledMLP:
    """Two-layer MLP (batch 128, 784-256-10): compiled gradient against hand-written."""

    backend = "default"

    def setup(self):
        self.params, self.X, self.y = mlp_problem()
        self.grad = dualrev.compile(dualrev.grad(mlp_loss), backend=self.backend)
        self.grad(self.params, self.X, self.y)

    def time_grad(self):
        self.grad(self.params, self.X, self.y)

    def track_grad_over_by_hand(self):
        return _ratio(lambda: self.grad(self.params, self.X, self.y),
                      lambda: mlp_loss_grad_by_hand(self.params, self.X, self.y))

    track_grad_over_by_hand.unit = "ratio"

    def track_staging_over_eager(self):
        return _staging_over_eager(
            lambda compiled: dualrev.compile(dualrev.grad(mlp_loss), backend=self.backend)
            if compiled else dualrev.grad(mlp_loss),
            lambda g: lambda: g(self.params, self.X, self.y))

    track_staging_over_eager.unit = "ratio"


class CompiledRosenbrock:
    """Rosenbrock at n = 10^6: compiled gradient and HVP-operator matvec over f."""

    def setup(self):
        self.x = rosen_point(10 ** 6)
        self.v = rng(1).standard_normal(10 ** 6)
        self.grad = dualrev.compile(dualrev.grad(rosen))
        self.grad(self.x)
        operator = dualrev.hvp_operator(rosen, self.x, "fwd-rev", compile=True)
        self.matvec = lambda x, v: operator.matvec(v)
        self.matvec(self.x, self.v)

    def time_grad(self):
        self.grad(self.x)

    def time_matvec(self):
        self.matvec(self.x, self.v)

    def track_grad_over_f(self):
        return _ratio(lambda: self.grad(self.x), lambda: rosen(self.x), repeat=7)

    track_grad_over_f.unit = "ratio"

    def track_matvec_over_f(self):
        return _ratio(lambda: self.matvec(self.x, self.v), lambda: rosen(self.x), repeat=7)

    track_matvec_over_f.unit = "ratio"

    def track_rosen_der_over_f(self):
        return _ratio(lambda: scipy.optimize.rosen_der(self.x), lambda: rosen(self.x),
                      repeat=7)

    track_rosen_der_over_f.unit = "ratio"

    def track_matvec_over_rosen_hess_prod(self):
        return _ratio(lambda: self.matvec(self.x, self.v),
                      lambda: scipy.optimize.rosen_hess_prod(self.x, self.v), repeat=7)

    track_matvec_over_rosen_hess_prod.unit = "ratio"

    def track_staging_over_eager(self):
        return _staging_over_eager(
            lambda compiled: dualrev.compile(dualrev.grad(rosen)) if compiled
            else dualrev.grad(rosen), lambda g: lambda: g(self.x))

    track_staging_over_eager.unit = "ratio"


class CompiledNewtonCG:
    """L2 logistic regression by Newton-CG and trust-ncg: ``minimize(compile=True)``
    over the same solver fed hand-written derivatives (the programs staged by
    a first solve in ``setup``, as when an objective is solved again)."""

    params = [["5000x200", "569x31"], ["Newton-CG", "trust-ncg"]]
    param_names = ["problem", "method"]

    def setup(self, problem, method):
        n, d = map(int, problem.split("x"))
        A, b, lam = logistic_problem(n, d)
        self.args, self.w0 = (A, b, lam), np.zeros(d)
        self.options = {"xtol": 1e-8} if method == "Newton-CG" else {"gtol": 1e-8}
        self.method = method
        self.solve_compiled()

    def solve_compiled(self):
        return minimize(logistic_loss, self.w0, args=self.args, method=self.method,
                        options=self.options, compile=True)

    def solve_by_hand(self):
        return scipy.optimize.minimize(
            logistic_loss, self.w0, args=self.args, method=self.method,
            jac=logistic_grad_by_hand, hessp=logistic_hessp_by_hand, options=self.options)

    def time_compiled(self, problem, method):
        self.solve_compiled()

    def time_by_hand(self, problem, method):
        self.solve_by_hand()

    def track_compiled_over_by_hand(self, problem, method):
        return _ratio(self.solve_compiled, self.solve_by_hand, repeat=9)

    track_compiled_over_by_hand.unit = "ratio"


def _require_numba():
    if importlib.util.find_spec("numba") is None:
        raise NotImplementedError("the compiled-numba benchmarks need dualrev[jit]")


class FusedTapeOverhead(CompiledTapeOverhead):
    """compiled-numba: per-primitive cost of the fused gradient (scalar programs)."""

    backend = "numba"
    timeout = 300

    def setup(self, workload):
        _require_numba()
        super().setup(workload)

    def track_compile_seconds(self, workload):
        return self.grad.programs[0].compile_seconds

    track_compile_seconds.unit = "seconds"


class FusedRosenbrock:
    """compiled-numba: Rosenbrock n = 10^6 gradient and HVP matvec over SciPy's
    hand-written ``rosen_der`` and ``rosen_hess_prod``."""

    timeout = 300

    def setup(self):
        _require_numba()
        self.x = rosen_point(10 ** 6)
        self.v = rng(1).standard_normal(10 ** 6)
        self.grad = dualrev.compile(dualrev.grad(rosen), backend="numba")
        self.grad(self.x)
        self.matvec = dualrev.compile(lambda x, v: dualrev.hvp(rosen, x, v),
                                      varying_argnums=1, backend="numba").fix(self.x)
        self.matvec(self.v)

    def time_grad(self):
        self.grad(self.x)

    def time_matvec(self):
        self.matvec(self.v)

    def track_grad_over_rosen_der(self):
        return _ratio(lambda: self.grad(self.x), lambda: scipy.optimize.rosen_der(self.x),
                      repeat=7)

    track_grad_over_rosen_der.unit = "ratio"

    def track_matvec_over_rosen_hess_prod(self):
        return _ratio(lambda: self.matvec(self.v),
                      lambda: scipy.optimize.rosen_hess_prod(self.x, self.v), repeat=7)

    track_matvec_over_rosen_hess_prod.unit = "ratio"

    def track_compile_seconds(self):
        return self.grad.programs[0].compile_seconds

    track_compile_seconds.unit = "seconds"


class FusedMLP(CompiledMLP):
    """compiled-numba: MLP (batch 128, 784-256-10) gradient over hand-written."""

    backend = "numba"
    timeout = 300

    def setup(self):
        _require_numba()
        super().setup()


def main_numba():
    """Print the compiled-numba figures (compile time apart)."""
    for workload in FusedTapeOverhead.params[0]:
        bench = FusedTapeOverhead()
        bench.setup(workload)
        print(f"{workload}: compiled-numba grad "
              f"{bench.track_grad_us_per_primitive(workload):.3f} us per primitive; "
              f"numba compile {bench.track_compile_seconds(workload):.2f} s")
    ros = FusedRosenbrock()
    ros.setup()
    print(f"Rosenbrock 10^6: compiled-numba grad / rosen_der "
          f"{ros.track_grad_over_rosen_der():.3f}; HVP matvec / rosen_hess_prod "
          f"{ros.track_matvec_over_rosen_hess_prod():.3f}; numba compile "
          f"{ros.track_compile_seconds():.2f} s")
    mlp = FusedMLP()
    mlp.setup()
    print(f"MLP: compiled-numba grad / hand-written {mlp.track_grad_over_by_hand():.3f}")


def main():
    """Print the figures of the compile targets, each measured in one run.

    ``cd benchmarks && OPENBLAS_NUM_THREADS=1 python -m benchmarks.bench_compile``
    """
    for workload in CompiledTapeOverhead.params[0]:
        bench = CompiledTapeOverhead()
        bench.setup(workload)
        print(f"{workload}: compiled grad {bench.track_grad_us_per_primitive(workload):.3f} "
              f"us per primitive; staging / eager call "
              f"{bench.track_staging_over_eager(workload):.1f}")
    mlp = CompiledMLP()
    mlp.setup()
    print(f"MLP: compiled grad / hand-written {mlp.track_grad_over_by_hand():.3f}; "
          f"staging / eager call {mlp.track_staging_over_eager():.2f}")
    ros = CompiledRosenbrock()
    ros.setup()
    print(f"Rosenbrock 10^6: compiled grad / f {ros.track_grad_over_f():.2f} "
          f"(rosen_der / f {ros.track_rosen_der_over_f():.2f}); compiled operator matvec "
          f"/ f {ros.track_matvec_over_f():.2f}, / rosen_hess_prod "
          f"{ros.track_matvec_over_rosen_hess_prod():.2f}; staging / eager call "
          f"{ros.track_staging_over_eager():.2f}")
    for problem in CompiledNewtonCG.params[0]:
        for method in CompiledNewtonCG.params[1]:
            bench = CompiledNewtonCG()
            bench.setup(problem, method)
            print(f"{method}, logistic regression {problem}: compiled / hand-written "
                  f"derivatives {bench.track_compiled_over_by_hand(problem, method):.2f}")
    if importlib.util.find_spec("numba") is not None:
        main_numba()


if __name__ == "__main__":
    main()
