"""Every registered primitive: a reverse (VJP) and a forward (JVP) pass of each
differentiable op, the forward value of each non-differentiable one.

The inputs come from the op specs the test suite runs (``dualrev.testing.op_specs``):
for each op of ``dualrev.OPS``, its main spec, on that spec's largest shape
case, drawn from its domain. The inputs are small, so the figures are the
per-op cost of dispatch, recording, sweeping and pushing a tangent. Like
numpy's ``bench_ufunc.py``, importing this module fails when a registered op
(differentiable or not) has no spec: a new op must come with one.
"""

import numpy as np

import dualrev
from dualrev.testing.op_specs import SPECS

from .common import rng


def differentiable_ops():
    """Names of the registered ops that have derivative rules."""
    return sorted(name for name, op in dualrev.OPS.items() if op.differentiable)


def nondifferentiable_ops():
    """Names of the registered ops declared non-differentiable."""
    return sorted(name for name, op in dualrev.OPS.items() if not op.differentiable)


def _main_specs():
    """op name -> its spec without a label (the plain NumPy call), else its first."""
    chosen = {}
    for spec in SPECS:
        if spec.op not in chosen or (not spec.label and chosen[spec.op].label):
            chosen[spec.op] = spec
    return chosen


SPEC_OF = _main_specs()

_missing = sorted(set(dualrev.OPS) - set(SPEC_OF))
if _missing:
    raise RuntimeError(f"no op spec (dualrev/testing/op_specs.py) to benchmark the registered "
                       f"op(s) {_missing}: add one")


def _is_float(a):
    return isinstance(a, float) or (isinstance(a, np.ndarray) and a.dtype.kind == "f")


class SpecInputs:
    """Inputs of an op's main spec; the float arguments are the ones traced."""

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
        self.tangents = tuple(np.ones(np.shape(x)) if np.shape(x) else 1.0
                              for x in self.primals)


class Ops(SpecInputs):
    """VJP (record + one sweep) and JVP (one forward pass) of each primitive."""

    params = [differentiable_ops()]
    param_names = ["op"]

    def setup(self, name):
        super().setup(name)
        self.cotangent = np.ones(np.shape(self.apply(*self.primals)))

    def time_vjp(self, name):
        _, vjp_fn = dualrev.vjp(self.apply, *self.primals)
        vjp_fn(self.cotangent)

    def time_jvp(self, name):
        dualrev.jvp(self.apply, self.primals, self.tangents)


class NondiffOps(SpecInputs):
    """The forward value of each non-differentiable primitive on traced inputs.

    Such an op reads only the values of its traced inputs and gives a
    constant, so its cost is dispatch plus NumPy: no tangent is pushed.
    """

    params = [nondifferentiable_ops()]
    param_names = ["op"]

    def time_value(self, name):
        dualrev.jvp(self.apply, self.primals, self.tangents)
