"""Reverse mode: a tape recorded in execution order, swept backwards.

A :class:`Tape` is the trace of one reverse-mode transformation. Each op on a
:class:`Node` of the tape appends one record ``(op, args, params, out,
parents)``; input nodes have the record ``None``, and an op whose rule is the
identity (``x + c``) appends none: its output shares ``x``'s position. The
backward sweep walks the records once, from the last to the first, with no
recursion, accumulating cotangents with ``+`` (a value used twice receives
both cotangents: the copy gate). A tape can be swept any number of times, and replayed forwards with
tangents (a JVP through the recorded computation).

When the values on a tape are themselves traced by an outer transformation,
the rules that run during a sweep are recorded by that outer transformation:
the backward pass is itself on a tape, and can be differentiated again.
"""

from collections import namedtuple

import numpy as np

from .lazy import chunks_of, is_lazy
from .numpy_dispatch import Indexable, TracedArray
from .core import ClosedTrace
from .registry import NO_PARAMS, Tracer, bind, new_level, shape_of

#: The fields of a tape record, named once. On the hot path a record is a
#: plain tuple in this order; :meth:`Tape.__iter__` and :meth:`Tape.record`
#: hand out the named form to every other module.
Record = namedtuple("Record", ["op", "args", "params", "out", "parents"])
Record.__doc__ = """One recorded primitive: ``op`` applied to ``args`` (values, or
:class:`Dropped` placeholders of those its rules do not read) with ``params``
gave ``out``; ``parents`` lists ``(argument position, tape index)`` of each
differentiated argument."""

_new = object.__new__
FLOAT64 = np.dtype(np.float64)
_PLAIN = frozenset({np.ndarray, np.float64, np.float32, float})  # plain NumPy values


class Node(TracedArray):
    """A value recorded on a tape, at position ``index``."""

    __slots__ = ("value", "index")

    def __init__(self, value, tape, index):
        self.value = value
        self._trace = tape
        self.index = index

    def __repr__(self):
        return f"Node({self.value!r}, index={self.index})"


class ArrayNode(Indexable, Node):
    """A recorded value with at least one axis (indexable)."""

    __slots__ = ()


def make_node(value, tape, index):
    return (ArrayNode if getattr(value, "shape", ()) else Node)(value, tape, index)


def _keeps_kind(out, x):
    """Is ``out`` real wherever ``x`` is? Else ``x + c`` is no identity for the
    sweep: a complex ``c`` makes the output complex, and ``x``'s cotangent is
    the real part of the output's (docs/conventions), which a record takes."""
    cls = out.__class__
    return cls is np.float64 or cls is float or not _is_complex(out) or _is_complex(x)


def _is_complex(value):
    """Whether a plain, traced or dropped value is complex (Python complex too)."""
    cls = value.__class__
    if cls is np.float64 or cls is float:  # the sweep asks once per record: fast first
        return False
    if cls is np.ndarray:
        return value.dtype.kind == "c"
    return isinstance(value, complex) or getattr(value, "dtype", FLOAT64).kind == "c"


class Dropped:
    """What a record keeps of a value that its rules do not read."""

    __slots__ = ("shape", "dtype", "chunks")

    def __init__(self, x):
        self.shape = getattr(x, "shape", ())
        self.dtype = getattr(x, "dtype", FLOAT64)
        self.chunks = chunks_of(x)  # a dask array's, even traced: see lazy.broadcast_like

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape))

    def __repr__(self):
        return f"Dropped(shape={self.shape})"


def _saved(drops, parents, vals, out):
    """What a record keeps of ``vals`` (its own list) and ``out``: the values
    that the rules of its parents read (``drops`` is the op's ``Op.drops``)."""
    mask = 0
    for pos, _ in parents:
        mask |= 1 << pos
    dropped, drop_out = drops[mask]
    for k in dropped:
        if getattr(vals[k], "ndim", 0):
            vals[k] = Dropped(vals[k])
    return vals, (Dropped(out) if drop_out else out)


def _carries_derivative(x):
    """Is ``x`` traced by a transformation (not just staged by compile)?"""
    return isinstance(x, Tracer) and not x.staged


class Tape:
    """One reverse-mode transformation: its records and its level.

    With ``keep_all=False`` (the default) a record keeps only the values its
    rules read (``Op.saves``); ``keep_all=True`` keeps every intermediate
    value, for tools that show them (:func:`dualrev.explain`).
    """

    __slots__ = ("level", "records", "keep_all", "__weakref__")
    #: A finished tape is closed (:func:`dualrev.core.close`): still swept, no
    #: longer recorded on.
    closed = False
    kind = "reverse-mode transformation (grad, vjp, jacrev, hessian...)"

    def __init__(self, keep_all=False):
        self.level = new_level()
        self.records = []
        self.keep_all = keep_all

    def input(self, value):
        """A new input node holding ``value``."""
        self.records.append(None)
        return make_node(value, self, len(self.records) - 1)

    def process(self, op, args, params):
        vjps = op.vjps
        vals = []
        parents = []
        lower = False  # does any value belong to an enclosing trace?
        i = 0
        for a in args:
            if isinstance(a, Tracer):
                if a._trace is self:
                    v = a.value
                    if vjps is not None and vjps[i] is not None:
                        parents.append((i, a.index))
                    if isinstance(v, Tracer):
                        lower = True
                    vals.append(v)
                else:
                    lower = True
                    vals.append(a)
            else:
                vals.append(a)
            i += 1
        if lower:
            out = bind(op, *vals, **params)
        else:
            out = op.impl(*vals, **params) if params else op.impl(*vals)
        if not parents:
            return out
        records = self.records
        shape = getattr(out, "shape", ())
        # A node made without calling __init__: this is the hot path of scalar loops.
        node = _new(ArrayNode if shape else Node)
        node.value, node._trace = out, self
        pos, index = parents[0]
        if len(parents) == 1 and pos in op.identity and not self.keep_all \
                and shape == getattr(vals[pos], "shape", ()) and _keeps_kind(out, vals[pos]):
            node.index = index  # out = x + c: every cotangent of out is x's
            return node
        node.index = len(records)
        # Dropping unread values is worth its cost only when arrays are involved.
        if (shape or getattr(vals[pos], "shape", ())) and op.drops is not None \
                and not self.keep_all:
            vals, out = _saved(op.drops, parents, vals, out)
        records.append((op, vals, params, out, parents))
        return node

    def process_one(self, op, args, k):
        """``process(op, args, {})`` when ``args[k]`` is a node of this tape and
        every other argument a constant: the hot path of scalar loops
        (``np.sin(x)``, ``x * c``, ``x + c``), without the general search."""
        x = args[k]
        v = x.value
        vjps = op.vjps
        if vjps is None or vjps[k] is None or isinstance(v, Tracer):
            return self.process(op, args, NO_PARAMS)
        vals = list(args)
        vals[k] = v
        out = op.impl(*vals)
        shape = getattr(out, "shape", ())
        node = _new(ArrayNode if shape else Node)
        node.value, node._trace = out, self
        if k in op.identity and not self.keep_all and shape == getattr(v, "shape", ()) \
                and _keeps_kind(out, v):
            node.index = x.index  # out = x + c: every cotangent of out is x's
            return node
        records = self.records
        node.index = len(records)
        parents = [(k, x.index)]
        if (shape or getattr(v, "shape", ())) and op.drops is not None and not self.keep_all:
            vals, out = _saved(op.drops, parents, vals, out)
        records.append((op, vals, NO_PARAMS, out, parents))
        return node

    def __iter__(self):
        """The records in execution order, as named :class:`Record` tuples
        (input nodes and pruned records are skipped); see :meth:`items`."""
        return (record for _, record in self.items())

    def items(self):
        """``(index, Record)`` of every record, in execution order."""
        for i, record in enumerate(self.records):
            if record is not None:
                yield i, Record._make(record)

    def record(self, index):
        """The record at ``index`` as a :class:`Record`; None for an input."""
        record = self.records[index]
        return None if record is None else Record._make(record)

    def pruned(self, wanted):
        """A tape holding only the records that the indices ``wanted`` depend on.

        The other positions hold ``None``; the records are shared, not copied.
        A forward replay (:meth:`forward`) of the pruned tape skips the work
        that leads to nothing in ``wanted``.
        """
        records = self.records
        needed = [False] * len(records)
        for i in wanted:
            needed[i] = True
        for i in range(max(wanted, default=-1), -1, -1):
            if needed[i] and records[i] is not None:
                for _, parent in records[i][4]:
                    needed[parent] = True
        pruned = Tape(self.keep_all)
        pruned.records = [r if keep else None for r, keep in zip(records, needed)]
        return pruned

    def index_of(self, x):
        """The tape position of ``x``, or None if it is not on this tape."""
        if isinstance(x, Node) and x._trace is self:
            return x.index
        return None

    def backward(self, seeds, wanted, release=False):
        """Sweep the tape once from ``seeds`` (index -> cotangent).

        Returns the accumulated cotangent of each index in ``wanted`` (None
        where nothing reached it). With ``release=True`` the sweep spends the
        tape: each record is dropped as soon as it is swept, so the values it
        saved are freed while the sweep still allocates cotangents.
        """
        records = self.records
        start = max(seeds)
        cts = [None] * (start + 1)
        for i, g in seeds.items():
            cts[i] = g if cts[i] is None else cts[i] + g
        owned = set()  # buffers created here, safe to add into in place
        keep = set(wanted)
        for i in range(start, -1, -1):
            g = cts[i]
            if g is None:
                continue
            record = records[i]
            if record is None:
                continue
            if i not in keep:
                cts[i] = None
            if release:
                records[i] = None
            op, vals, params, out, parents = record
            if op.vjp_add is not None and not _carries_derivative(g):
                self._accumulate(op, g, record, cts, owned)
                continue
            vjps = op.vjps
            cls = out.__class__  # the common real types without a call: the hot path
            complex_out = False if cls is np.float64 or cls is float else _is_complex(out)
            for pos, p in parents:
                c = vjps[pos](g, out, *vals, **params) if params else vjps[pos](g, out, *vals)
                if complex_out and not _is_complex(vals[pos]):
                    c = np.real(c)  # a real value's cotangent is real (docs/conventions)
                prev = cts[p]
                if prev is None:
                    cts[p] = c
                else:
                    cts[p] = prev + c
                    if owned:
                        owned.discard(p)
        return [cts[i] if i < len(cts) else None for i in wanted]

    @staticmethod
    def _accumulate(op, g, record, cts, owned):
        """Accumulate an indexing cotangent into its input's cotangent with
        ``op.vjp_add``, in place in a buffer the sweep owns: O(size of g), not
        O(size of the input) per indexed element."""
        _, vals, params, out, parents = record
        for pos, p in parents:
            x, prev = vals[pos], cts[p]
            plain = g.__class__ in _PLAIN and x.__class__ in _PLAIN and (
                prev is None or prev.__class__ in _PLAIN)  # x[i] in a loop: no more tests
            if not plain and (_carries_derivative(x) or _carries_derivative(prev)):
                c = op.vjps[pos](g, out, *vals, **params)
                cts[p] = c if prev is None else prev + c
                owned.discard(p)
            elif not plain and (isinstance(g, Tracer) or isinstance(prev, Tracer)
                                or is_lazy(g) or is_lazy(prev)):
                # staged: recorded as ops; the compiled program updates in place.
                # lazy (dask): a new graph, never an in-place update
                cts[p] = op.vjps[pos](g, out, *vals, **params) if prev is None \
                    else op.vjp_add(prev, g, **params)
            else:
                if p not in owned:
                    buffer = np.zeros(shape_of(x), np.result_type(x.dtype, g))
                    if prev is not None:
                        buffer += prev
                    cts[p] = buffer
                    owned.add(p)
                op.vjp_add.into(cts[p], cts[p], g, **params)

    def forward(self, tangents, wanted):
        """Replay the tape forwards with tangents (index -> tangent): a JVP.

        Returns the tangent of each index in ``wanted`` (None where zero).
        """
        records = self.records
        stop = max(wanted) + 1
        tans = [None] * stop
        for i, t in tangents.items():
            if i < stop:
                tans[i] = t
        for i in range(stop):
            record = records[i]
            if record is None:
                continue
            op, vals, params, out, parents = record
            t_out = None
            for pos, p in parents:
                t = tans[p]
                if t is None:
                    continue
                c = op.jvps[pos](t, out, *vals, **params)
                t_out = c if t_out is None else t_out + c
            tans[i] = t_out
        return [tans[i] for i in wanted]


class ClosedTape(ClosedTrace, Tape):
    """A finished tape: it can be swept, but an op on one of its nodes raises."""

    __slots__ = ()


Tape.Closed = ClosedTape.Closed = ClosedTape
