"""Forward mode: dual numbers.

A :class:`Dual` carries a primal value and a tangent; a :class:`ForwardTrace`
applies each op's JVP rules as the computation runs. Nothing is recorded, so
memory stays at the size of the values. A tangent may carry leading batch
axes, one per direction, so that several directions share one pass.
"""

from .core import ClosedTrace
from .numpy_dispatch import Indexable, TracedArray
from .registry import NO_PARAMS, Tracer, bind, new_level


class Dual(TracedArray):
    """A primal ``value`` and its ``tangent`` at one forward level."""

    __slots__ = ("value", "tangent")

    def __init__(self, value, tangent, trace):
        self.value = value
        self.tangent = tangent
        self._trace = trace

    def __repr__(self):
        return f"Dual({self.value!r}, tangent={self.tangent!r})"


class ArrayDual(Indexable, Dual):
    """A dual number with at least one axis (indexable)."""

    __slots__ = ()


def make_dual(value, tangent, trace):
    return (ArrayDual if getattr(value, "shape", ()) else Dual)(value, tangent, trace)


class ForwardTrace:
    """One forward-mode transformation; its ``level`` orders nested ones."""

    __slots__ = ("level",)
    closed = False
    kind = "forward-mode transformation (jvp, jacfwd, derivative...)"

    def __init__(self):
        self.level = new_level()

    def dual(self, value, tangent):
        return make_dual(value, tangent, self)

    def process(self, op, args, params):
        vals = list(args)
        tangents = [None] * len(args)
        lower = False  # does any value belong to an enclosing trace?
        for i, a in enumerate(args):
            if isinstance(a, Tracer):
                if a._trace is self:
                    v = vals[i] = a.value
                    tangents[i] = a.tangent
                    if isinstance(v, Tracer):
                        lower = True
                else:
                    lower = True
        out = bind(op, *vals, **params) if lower else op.impl(*vals, **params)
        jvps = op.jvps
        if jvps is None:
            return out
        t_out = None
        for i, t in enumerate(tangents):
            if t is None or jvps[i] is None:
                continue
            contribution = jvps[i](t, out, *vals, **params)
            t_out = contribution if t_out is None else t_out + contribution
        if t_out is None:
            return out
        return (ArrayDual if getattr(out, "shape", ()) else Dual)(out, t_out, self)

    def process_one(self, op, args, k):
        """``process`` when only ``args[k]`` is traced (see ``Tape.process_one``)."""
        return self.process(op, args, NO_PARAMS)

    def unpack(self, x):
        """(primal, tangent) of ``x`` at this level; tangent None if constant."""
        if isinstance(x, Dual) and x._trace is self:
            return x.value, x.tangent
        return x, None


class ClosedForwardTrace(ClosedTrace, ForwardTrace):
    """A finished forward trace: an op on one of its dual numbers raises."""

    __slots__ = ()


ForwardTrace.Closed = ClosedForwardTrace.Closed = ClosedForwardTrace
