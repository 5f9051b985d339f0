"""Every registered primitive: one reverse (VJP) and one forward (JVP) pass.

The inputs come from the op specs the test suite runs (``tests/op_specs.py``):
for each differentiable op of ``dualrev.OPS``, its main spec, on that spec's
largest shape case, drawn from its domain. The inputs are small, so the
figures are the per-op cost of dispatch, recording, sweeping and pushing a
tangent. Like numpy's ``bench_ufunc.py``, importing this module fails when a
registered differentiable op has no spec: a new op must come with one.
"""

import os
import sys

import numpy as np

import dualrev

from .common import rng

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests"))
from op_specs import SPECS  # noqa: E402


def differentiable_ops():
    """Names of the registered ops that have derivative rules."""
    return sorted(name for name, op in dualrev.OPS.items() if op.differentiable)


def _main_specs():
    """op name -> its spec without a label (the plain NumPy call), else its first."""
    chosen = {}
    for spec in SPECS:
        if spec.differentiable and (spec.op not in chosen
                                    or (not spec.label and chosen[spec.op].label)):
            chosen[spec.op] = spec
    return chosen


SPEC_OF = _main_specs()

_missing = [name for name in differentiable_ops() if name not in SPEC_OF]
if _missing:
    raise RuntimeError(f"no op spec (tests/op_specs.py) to benchmark the registered "
                       f"op(s) {_missing}: add one")


def _is_float(a):
    return isinstance(a, float) or (isinstance(a, np.ndarray) and a.dtype.kind == "f")


class Ops:
    """VJP (record + one sweep) and JVP (one forward pass) of each primitive."""

    params = [differentiable_ops()]
    param_names = ["op"]

    def setup(self, name):
        spec = SPEC_OF[name]
        args = spec.draw(spec.shapes[-1], rng(0))
        where = [i for i, a in enumerate(args) if _is_float(a)]
        self.primals = tuple(args[i] for i in where)

        def apply(*floats):
            full = list(args)
            for i, x in zip(where, floats):
                full[i] = x
            return spec.fn(*full)
        self.apply = apply
        self.cotangent = np.ones(np.shape(apply(*self.primals)))
        self.tangents = tuple(np.ones(np.shape(x)) if np.shape(x) else 1.0
                              for x in self.primals)

    def time_vjp(self, name):
        _, vjp_fn = dualrev.vjp(self.apply, *self.primals)
        vjp_fn(self.cotangent)

    def time_jvp(self, name):
        dualrev.jvp(self.apply, self.primals, self.tangents)
