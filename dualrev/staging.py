"""Staging: a trace below every other that records what runs as a program.

A :class:`StagingTrace` is started before any transformation inside the
compiled function, so it has the lowest level: ``bind`` hands it every
primitive that reaches concrete values, whether the user's code, a rule run
during a backward sweep or a nested transformation called it. Its tracers
(:class:`Staged`) carry those concrete values, so the user's Python runs as
usual, and each primitive is appended to a :class:`Program`: a flat list of
:class:`Equation` ``(op, inputs, params, output)`` over registry ops.

Python that reads a staged value (``if x > 0``, ``int(k)``, an index built
from data) records a :class:`Guard`: the value read and the outcome seen. A
replay checks each guard where the Python read it and stages again on a
miss, so a program never takes a branch the Python would not take.
"""

import itertools
import operator

import numpy as np

from .lazy import LazyEvaluationError, is_lazy
from .numpy_dispatch import Indexable, TracedArray
from .registry import NO_PARAMS, Op, Tracer, new_level
from .tree import flatten, unflatten

_new = object.__new__

__all__ = ["Var", "Const", "Equation", "Guard", "Program", "StagingTrace", "Staged",
           "StagingError"]


class StagingError(TypeError):
    """A staged value was used where its value would be baked into a program."""


def aval_of(value):
    """``(type, shape, dtype)`` of ``value``: what passes and backends read of it."""
    return (type(value), getattr(value, "shape", ()), getattr(value, "dtype", None))


class Var:
    """A value computed when the program runs (an input or an equation's output).

    ``aval`` is the ``(type, shape, dtype)`` it had at staging (passes and
    backends read it, never the staged value); ``c_order`` whether its memory
    was in C order (the order NumPy gives a result made of it); ``source`` is
    the name of the op that made it (None for an input).
    """

    __slots__ = ("id", "aval", "c_order", "source")

    def __init__(self, id, value, source):
        self.id = id
        self.aval = aval_of(value)
        self.c_order = getattr(getattr(value, "flags", None), "c_contiguous", True)
        self.source = source

    def __repr__(self):
        return f"t{self.id}"


class Const:
    """A value fixed at staging, read by reference when the program runs."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return f"Const({type(self.value).__name__})"


class Equation:
    """``out = op.impl(*ins, **params)``; ``ins`` are :class:`Var` or :class:`Const`."""

    __slots__ = ("op", "ins", "params", "out")

    def __init__(self, op, ins, params, out):
        self.op, self.ins, self.params, self.out = op, ins, params, out

    def __repr__(self):
        return f"{self.out!r} = {self.op.name}{self.ins!r}"


class Guard:
    """The program is valid only while ``var`` reads as ``expected``.

    ``kind`` is ``"bool"`` (Python's ``bool`` of the value) or ``"value"``
    (the value itself, read by ``int``, ``float``, an index or a shape).
    """

    __slots__ = ("var", "kind", "expected")

    def __init__(self, var, kind, expected):
        self.var, self.kind, self.expected = var, kind, expected

    def describe(self):
        what = "bool()" if self.kind == "bool" else "the value"
        source = self.var.source
        of = "an input" if source is None else f"the output of op {source!r}"
        return f"{what} of {of}, seen as {self.expected!r}"

    def __repr__(self):
        return f"Guard({self.var!r} {self.kind} {self.expected!r})"


class Program:
    """A staged computation as data: inputs (:class:`Var`), a body of
    equations and guards, and outputs (each a :class:`Var` or a :class:`Const`)."""

    __slots__ = ("inputs", "body", "outputs")

    def __init__(self, inputs, body, outputs):
        self.inputs, self.body, self.outputs = inputs, body, outputs

    @property
    def equations(self):
        return [e for e in self.body if isinstance(e, Equation)]

    @property
    def guards(self):
        return [e for e in self.body if isinstance(e, Guard)]

    def __repr__(self):
        return (f"<Program: {len(self.inputs)} inputs, {len(self.equations)} equations, "
                f"{len(self.guards)} guards, {len(self.outputs)} outputs>")


class StagingTrace:
    """The outermost trace of one staging run; its tracers hold concrete values."""

    __slots__ = ("level", "body", "consts", "closed", "_ids")
    kind = "dualrev.compile staging run"  # named when its values escape

    def __init__(self):
        self.level = new_level()
        self.body = []
        self.consts = {}  # id(value) -> (value, Const): one Const per object
        self.closed = False
        self._ids = itertools.count()

    def new_input(self, value):
        return make_staged(value, self, Var(next(self._ids), value, None))

    def const(self, value):
        entry = self.consts.get(id(value))
        if entry is None:
            entry = self.consts[id(value)] = (value, Const(value))
        return entry[1]

    def process(self, op, args, params):
        if self.closed:
            raise StagingError(
                "a value of a finished dualrev.compile staging run was used after the "
                "run ended (it was stored outside the compiled function); return it "
                "from the function instead of keeping it")
        ins = []
        vals = []
        for a in args:
            if isinstance(a, Tracer):
                if a._trace is not self:
                    raise StagingError(f"{op.name}: a traced value of another, finished "
                                       "transformation reached a compiled function")
                ins.append(a.var)
                vals.append(a.value)
            else:
                ins.append(self.const(a))
                vals.append(a)
        if params:
            params = {k: self.concrete(v) for k, v in params.items()}
        out = op.impl(*vals, **params)
        var = Var(next(self._ids), out, op.name)
        self.body.append(Equation(op, tuple(ins), params, var))
        node = _new(ArrayStaged if getattr(out, "shape", ()) else Staged)
        node.value, node._trace, node.var = out, self, var
        return node

    def process_one(self, op, args, k):
        return self.process(op, args, NO_PARAMS)

    def call(self, func, args, kwargs, name):
        """Record ``func(*args, **kwargs)``, a NumPy function without a
        differentiation rule met by values that carry no derivative: one
        equation of an op that calls it (its leaves as inputs), and one per
        item of a tuple or list it returns."""
        op = _PLAIN_CALLS.get(func)
        if op is None:
            op = _PLAIN_CALLS[func] = Op(name, _call_with_leaves(func), None, None)
        leaves, treedef = flatten((args, kwargs))
        out = self.process(op, leaves, {"treedef": treedef})
        if isinstance(out.value, (tuple, list)):
            return type(out.value)(self.process(_ITEM, (out,), {"k": k})
                                   for k in range(len(out.value)))
        return out

    def guard(self, x, kind, outcome):
        self.body.append(Guard(x.var, kind, outcome))
        return outcome

    def read(self, x, kind):
        """The value Python reads of the staged ``x`` (``bool`` or itself)."""
        if is_lazy(x.value):
            raise LazyEvaluationError(
                f"Python read a dask value inside a compiled function ({kind} of the "
                f"output of op {x.var.source!r}): that would compute the data there. "
                "Use np.where(condition, a, b) to stay lazy, or decide on NumPy values")
        return self.guard(x, kind, bool(x.value) if kind == "bool" else x.value)

    def concrete(self, v):
        """``v`` with every staged value in it replaced by its value, guarded:
        what ops take as static parameters (axes, indices, shapes)."""
        if isinstance(v, Staged):
            if v._trace is not self:
                raise StagingError("a traced value of another, finished transformation "
                                   "was used as a static parameter")
            return self.read(v, "value")
        if isinstance(v, (tuple, list)):
            if any(isinstance(i, (Staged, tuple, list, slice)) for i in v):
                return type(v)(self.concrete(i) for i in v)
            return v
        if isinstance(v, slice) and any(isinstance(i, Staged) for i in
                                        (v.start, v.stop, v.step)):
            return slice(self.concrete(v.start), self.concrete(v.stop),
                         self.concrete(v.step))
        return v

    def program(self, outputs):
        """Close the trace and return its program for ``outputs`` (a flat list)."""
        self.closed = True
        refs = []
        for o in outputs:
            if isinstance(o, Staged) and o._trace is self:
                refs.append(o.var)
            elif isinstance(o, Tracer):
                raise StagingError("the compiled function returned a traced value of "
                                   "another transformation")
            else:
                refs.append(Const(o))
        return refs


def _call_with_leaves(func):
    def call(*leaves, treedef):
        args, kwargs = unflatten(treedef, leaves)
        return func(*args, **kwargs)
    call.__name__ = getattr(func, "__name__", "call")
    return call


#: NumPy function -> the op that calls it on plain values (see StagingTrace.call).
_PLAIN_CALLS = {}
_ITEM = Op("item", lambda t, *, k: t[k], None, None)


class Staged(TracedArray):
    """A concrete value whose computation is being recorded (no derivative)."""

    __slots__ = ("value", "var")
    staged = True

    def __init__(self, value, trace, var):
        self.value = value
        self._trace = trace
        self.var = var

    def __repr__(self):
        return f"Staged({self.value!r}, {self.var!r})"

    # Python reading the value: a guard, then the value.
    def __bool__(self):
        return self._trace.read(self, "bool")

    def __index__(self):
        return operator.index(self._trace.concrete(self))

    def __int__(self):
        return int(self._trace.concrete(self))

    def __float__(self):
        return float(self._trace.concrete(self))

    def __complex__(self):
        return complex(self._trace.concrete(self))

    def item(self, *args):
        return np.asarray(self._trace.concrete(self)).item(*args)

    def tolist(self):
        return np.asarray(self._trace.concrete(self)).tolist()

    def __array__(self, dtype=None, copy=None):
        raise StagingError(
            "np.asarray / np.array of a value inside dualrev.compile: the value changes "
            "from call to call, so it cannot become a constant of the compiled program. "
            "Use the value directly (NumPy functions and operators accept it), or pass "
            "the argument it comes from in static_argnums.")


class ArrayStaged(Indexable, Staged):
    """A staged value with at least one axis (indexable)."""

    __slots__ = ()


def make_staged(value, trace, var):
    return (ArrayStaged if getattr(value, "shape", ()) else Staged)(value, trace, var)
