"""The NumPy functions built as composites (np.average, np.median, np.interp,
np.linalg.norm of every ord...) and the decompositions, FFT and complex
parts: a VJP and a JVP of each spec of ``COVERAGE_SPECS`` in
``dualrev/testing/op_specs.py``, on that spec's largest shape case.

``bench_ops.py`` times each primitive through one spec; a composite reaches
several primitives, so each calling convention is timed here on its own.
"""

import numpy as np

import dualrev
from dualrev.testing.op_specs import COVERAGE_SPECS

from .common import rng

SPECS = {spec.name: spec for spec in COVERAGE_SPECS}


class Functions:
    """VJP (record + one sweep) and JVP (one forward pass) of each spec."""

    params = [sorted(name for name, spec in SPECS.items() if spec.differentiable)]
    param_names = ["function"]

    def setup(self, name):
        spec = SPECS[name]
        self.fn = spec.fn
        self.primals = spec.draw(spec.shapes[-1], rng(0))
        self.tangents = tuple(np.ones(np.shape(x)) if np.shape(x) else 1.0
                              for x in self.primals)
        self.cotangent = np.ones(np.shape(spec.fn(*self.primals)))

    def time_vjp(self, name):
        _, vjp_fn = dualrev.vjp(self.fn, *self.primals)
        vjp_fn(self.cotangent)

    def time_jvp(self, name):
        dualrev.jvp(self.fn, self.primals, self.tangents)
