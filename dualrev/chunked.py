"""Compiled programs over dask data: one task per chunk of rows per pass.

:func:`dualrev.compile` stages a function called with dask arrays (the data)
as it stages any other: the primitives run on the dask arrays, building their
graph, and are recorded. What runs afterwards is not that graph. When the
program is a map-reduce over the rows of the data (a loss summed or averaged
over samples, its gradient, Hessian-vector products, Hessians), it is split
(:func:`split_by_rows`) into:

- ``before``: what the small inputs (parameters) alone determine, run once
  in NumPy by the caller;
- passes over the data, each one ``dask.compute`` of a graph with one task
  per chunk, running the work on the chunk's rows up to the sums over rows
  (``np.sum`` and ``np.mean`` over the row axis, ``X.T @ r``; ``np.max``
  and ``np.min`` too) as NumPy source generated for the chunk's shape, and
  one task that combines the chunks' results; then what reads those sums,
  run in NumPy.

A loss summed over samples and its derivatives take one pass, whatever the
number of primitives. Rows computed from a sum over rows (the residuals
divided by their norm, columns centred by their mean) wait for the next pass,
which computes the rows it needs again from the data.

The data's row axis is the axis of length ``n`` (the rows of the dask
inputs, all chunked along their first axis). An op is placed in a per-chunk
part only when it is known to treat rows independently (elementwise ops,
reductions and matrix products over other axes, row-wise indexing, reshapes
and transposes that keep the rows whole): anything else that meets the rows,
a guard reading the data, or an output as long as the data makes
:class:`ChunkedProgram` unavailable (:class:`NotRowSeparable` names the
reason), and the program's own generated source is replayed over the dask
arrays instead (:class:`LazyProgram`): one ``dask.compute`` per call.
"""

import collections
import functools
import uuid

import numpy as np

from .codegen import Miss, generated
from .lazy import compute_leaves, is_lazy
from .ops.shape import normalize_axis
from .registry import OPS, Op
from .staging import Const, Equation, Guard, Program, Var

__all__ = ["ChunkedProgram", "LazyProgram", "NotRowSeparable", "split_by_rows",
           "lazy_program"]


class NotRowSeparable(Exception):
    """A program that is not a map-reduce over the rows of its data (why)."""


#: Ops with a loop body that are not elementwise.
_NOT_ELEMENTWISE = {"sum", "getitem", "untake", "index_add"}

#: Reductions over the row axis whose results for chunks combine into the
#: result for all rows, and how: op name -> the combining ufunc.
_ROW_REDUCTIONS = {"sum": np.add, "matmul": np.add, "amax": np.maximum,
                   "amin": np.minimum}


# ---- splitting a program ------------------------------------------------------

class Pass:
    """One pass over the data in a :class:`RowSplit`: the equations run on
    each chunk (``per_chunk``, ending in the sums over rows ``sums``) and
    those run in NumPy once the sums are known (``after``)."""

    def __init__(self):
        self.per_chunk, self.sums, self.after = [], [], []


class RowSplit:
    """A program split by :func:`split_by_rows`: the equations and guards on
    the small inputs alone (``before``), then the passes over the data
    (``passes``, each a :class:`Pass`), and each row value's row axis
    (``rows``)."""

    def __init__(self, before, passes, rows):
        self.before, self.passes, self.rows = before, passes, rows


def split_by_rows(program, data, n):
    """Split ``program`` whose inputs at positions ``data`` hold the data
    (``n`` rows, along axis 0) into a :class:`RowSplit`, or raise
    :class:`NotRowSeparable` saying why it is not a map-reduce over rows.

    A value of the rows computed from a sum over rows waits for the pass
    after the one that computes the sum: a norm of the residuals and its
    gradient take two passes.
    """
    rows = {}  # Var -> its row axis (a value as long as the data)
    known = {}  # Var -> the pass after which it is known (0: before any)
    for k, var in enumerate(program.inputs):
        known[var] = 0
        if k in data:
            if _row_axis(var.aval[1], n) != 0:
                raise NotRowSeparable("the dask inputs must share their first axis, "
                                      "the rows, and no other axis of that length")
            rows[var], known[var] = 0, 1
        elif _row_axis(var.aval[1], n) is not None:
            raise NotRowSeparable("an input that is not a dask array is as long "
                                  "as the data")
    before, passes = [], collections.defaultdict(Pass)
    order = {}  # per-chunk equation -> its place in the program
    for item in program.body:
        if isinstance(item, Guard):
            if known[item.var]:
                raise NotRowSeparable("Python reads a value computed from the data")
            before.append(item)
            continue
        ins = [r for r in item.ins if isinstance(r, Var)]
        axis = _row_axis(item.out.aval[1], n)
        if axis is None and not any(r in rows for r in ins):  # small values only
            when = max((known[r] for r in ins), default=0)
            (passes[when].after if when else before).append(item)
            known[item.out] = when
            continue
        item = _row_constants(item, n, rows, axis)
        # in the pass of its rows, after the passes of the sums it reads
        when = max([1] + [known[r] + (r not in rows) for r in ins if known[r]])
        if axis is None:
            _check_row_reduction(item, rows)
            passes[when].sums.append(item.out)
        else:
            _check_row_local(item, rows, axis)
            rows[item.out] = axis
        _resized_params(item, n, n, axis)  # raises on a parameter depending on n
        known[item.out] = when
        order[item] = len(order)
        passes[when].per_chunk.append(item)
    for r in program.outputs:
        if r in rows:
            raise NotRowSeparable("an output is as long as the data (a derivative "
                                  "with respect to the data?)")
    passes = [passes[k] for k in range(1, max(passes, default=0) + 1)]
    _recompute_rows(passes, rows, order)
    return RowSplit(before, passes, rows)


def _recompute_rows(passes, rows, order):
    """Add to each pass the equations of earlier passes that make the rows it
    reads (a pass keeps no row of the data: it computes them again)."""
    making = {e.out: e for p in passes for e in p.per_chunk if e.out in rows}
    for stage in passes:
        own = set(stage.per_chunk)
        todo = list(stage.per_chunk)
        while todo:
            for r in todo.pop().ins:
                eqn = making.get(r)
                if eqn is not None and eqn not in own:
                    own.add(eqn)
                    todo.append(eqn)
        stage.per_chunk = sorted(own, key=order.__getitem__)


def _row_axis(shape, n):
    axes = [a for a, size in enumerate(shape) if size == n]
    if len(axes) > 1:
        raise NotRowSeparable(f"a value has {len(axes)} axes as long as the data")
    return axes[0] if axes else None


def _row_constants(eqn, n, rows, axis):
    """``eqn`` with each constant as long as the data, when it is the same on
    every row (a seed broadcast along the rows) and the op is elementwise with
    a row input, replaced by one row (broadcasting restores the rest)."""
    ins = list(eqn.ins)
    for k, r in enumerate(ins):
        if not isinstance(r, Const) or n not in np.shape(r.value):
            continue
        value = np.asarray(r.value)
        at = _row_axis(value.shape, n)
        one = value.take([0], axis=at)
        if not (_elementwise(eqn.op) and axis is not None
                and len(eqn.out.aval[1]) - value.ndim + at == axis
                and any(isinstance(i, Var) and i in rows for i in ins)
                and np.array_equal(value, np.broadcast_to(one, value.shape))):
            raise NotRowSeparable(f"op {eqn.op.name!r} reads a constant array as long "
                                  "as the data (pass it as a dask argument)")
        ins[k] = Const(one)
    return Equation(eqn.op, tuple(ins), eqn.params, eqn.out) if ins != list(eqn.ins) \
        else eqn


def _elementwise(op):
    return OPS.get(op.name) is op and op.loop is not None and op.name not in _NOT_ELEMENTWISE


def _axes(eqn):
    """The axes ``eqn``'s ``axis`` parameter names, non-negative."""
    ndim = len(eqn.ins[0].aval[1]) if isinstance(eqn.ins[0], Var) else \
        np.ndim(eqn.ins[0].value)
    return {a % ndim for a in normalize_axis(eqn.params["axis"], ndim)}


def _contracted(shape, first):
    """The axis a matrix product contracts in an operand of ``shape``
    (``first``: the left operand)."""
    if len(shape) == 1:
        return 0
    return len(shape) - 1 if first else len(shape) - 2


def _check_row_reduction(eqn, rows):
    """``eqn`` reduces the rows away: its results for chunks must combine
    (sums add, maxima take the maximum...)."""
    name = eqn.op.name
    if OPS.get(name) is eqn.op and name in _ROW_REDUCTIONS:
        if name == "matmul":
            if all(rows[r] == _contracted(r.aval[1], k == 0)
                   for k, r in enumerate(eqn.ins) if isinstance(r, Var) and r in rows):
                return
        elif all(rows[r] in _axes(eqn) for r in eqn.ins if r in rows):
            return
    raise NotRowSeparable(f"op {name!r} reduces over the rows of the data in a way "
                          "that chunks do not combine; sums (np.sum, np.mean, X.T @ r), "
                          "np.max and np.min do")


def _check_row_local(eqn, rows, axis):
    """``eqn`` makes a value as long as the data: each of its rows must come
    from the same row of its inputs."""
    if OPS.get(eqn.op.name) is not eqn.op or not _row_local(eqn, rows, axis):
        raise NotRowSeparable(f"op {eqn.op.name!r} is not known to treat the rows of "
                              "the data independently")


def _row_local(eqn, rows, axis):
    name = eqn.op.name
    row_ins = [(k, r) for k, r in enumerate(eqn.ins) if isinstance(r, Var) and r in rows]
    out_ndim = len(eqn.out.aval[1])
    # broadcasting: each input's row axis is the output's
    aligned = all(out_ndim - len(r.aval[1]) + rows[r] == axis for _, r in row_ins)
    if _elementwise(eqn.op) or name == "broadcast_to":
        return aligned
    if name == "transpose":
        return True
    if name == "reshape":
        (_, r), = row_ins
        return np.prod(r.aval[1][:rows[r]]) == np.prod(eqn.out.aval[1][:axis])
    if name in ("getitem", "untake"):
        index = eqn.params["index"]
        return all(_keeps_rows(index, rows[r]) for _, r in row_ins) and \
            (name == "getitem" or _keeps_rows(index, axis))
    if name == "matmul":
        return all(rows[r] != _contracted(r.aval[1], k == 0) for k, r in row_ins)
    if "axis" in eqn.params:
        return all(rows[r] not in _axes(eqn) for _, r in row_ins)
    return False


def _keeps_rows(index, axis):
    """Does the basic ``index`` take every row of ``axis``, in place?"""
    index = index if isinstance(index, tuple) else (index,)
    if not all(isinstance(i, slice) for i in index[:axis]):
        return False
    return len(index) <= axis or index[axis] == slice(None)


# ---- running it -----------------------------------------------------------------

def _var_like(var, shape):
    """A Var of NumPy type and ``shape``, the dtype of ``var``."""
    new = object.__new__(Var)
    new.id, new.source = var.id, var.source
    new.aval = (np.ndarray, shape, var.aval[2])
    new.c_order = var.c_order
    return new


def _rename(r, renamed):
    return renamed.get(r, r) if isinstance(r, Var) else r


def _resized_params(eqn, n, m, axis):
    """``eqn``'s parameters with a shape as long as the data (the output's
    shape, with ``n`` at the row ``axis``) resized to ``m`` rows; any other
    parameter that depends on ``n`` raises :class:`NotRowSeparable`."""
    params = {}
    for key, value in eqn.params.items():
        rest = value
        if isinstance(value, tuple) and len(value) == len(eqn.out.aval[1]) \
                and axis is not None and value[axis] == n \
                and all(isinstance(v, (int, np.integer)) for v in value):
            rest = value[:axis] + value[axis + 1:]
            value = value[:axis] + (m,) + value[axis + 1:]
        if _mentions(rest, n):
            raise NotRowSeparable(f"op {eqn.op.name!r} has a parameter that depends "
                                  "on the number of rows")
        params[key] = value
    return params


def _mentions(value, n):
    if isinstance(value, (tuple, list)):
        return any(_mentions(v, n) for v in value)
    if isinstance(value, slice):
        return any(_mentions(v, n) for v in (value.start, value.stop, value.step))
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) \
        and value == n


# ---- the per-chunk program's matrix products ---------------------------------------

def matmul_as_gemm(a, b):
    """``np.matmul(a, b)``, a stack of matrices against one matrix done as one
    matrix product (NumPy multiplies a stack one matrix at a time).

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.ones((4, 3)), np.arange(24.0).reshape(2, 3, 4)
    >>> bool(np.allclose(matmul_as_gemm(a, b), a @ b))
    True
    """
    if a.ndim == 2 and b.ndim > 2:
        stacked = np.moveaxis(b, -2, 0)
        product = a @ stacked.reshape(stacked.shape[0], -1)
        return np.moveaxis(product.reshape((a.shape[0],) + stacked.shape[1:]), 0, -2)
    if b.ndim == 2 and a.ndim > 2:
        return (a.reshape(-1, a.shape[-1]) @ b).reshape(a.shape[:-1] + b.shape[-1:])
    return np.matmul(a, b)


def columns_as_stack(a):
    """``a @ E`` where ``E[i]`` is the ``i``-th unit column: the columns of
    ``a`` as a stack of ``(rows, 1)`` matrices (a view)."""
    return np.moveaxis(a, -1, 0)[..., None]


_GEMM = Op("matmul", matmul_as_gemm, None, None)
_COLUMNS = Op("columns", columns_as_stack, None, None)


def _unit_columns(r, a):
    """Is ``r`` the constant stack of unit columns of ``a``'s width (the
    tangents that a Hessian pushes in one batch)?"""
    if not isinstance(r, Const) or not isinstance(a, Var) or len(a.aval[1]) != 2:
        return False
    k = a.aval[1][1]
    return np.shape(r.value) == (k, k, 1) and np.array_equal(r.value[..., 0], np.eye(k))


def _fast_products(eqn):
    """``eqn`` with a matrix product written for chunks (see :func:`matmul_as_gemm`)."""
    if eqn.op is not OPS.get("matmul"):
        return eqn
    a, b = eqn.ins
    if _unit_columns(b, a):
        return Equation(_COLUMNS, (a,), {}, eqn.out)
    return Equation(_GEMM, eqn.ins, eqn.params, eqn.out)


class ChunkKernel:
    """The per-chunk program for chunks of ``m`` rows, generated on first use
    in each process that runs it. What is pickled is the program and a token:
    a process that unpickles a kernel it already has (each pass sends the
    kernel again, with its graph) keeps its generated code and buffers."""

    def __init__(self, program, token=None):
        self.program = program
        self.token = token or uuid.uuid4().hex
        self.source = self._run = None

    def __reduce__(self):
        return _kernel, (self.token, self.program)

    def __call__(self, small, *blocks):
        if self._run is None:
            self.source, self._run = generated(self.program, f"chunk_{self.program_rows}")
        return self._run(*small, *blocks)

    @property
    def program_rows(self):
        """Rows of the chunks this kernel is for."""
        return self.program.inputs[-1].aval[1][0]


#: Kernels unpickled in this process, by token, the most recently used last.
_KERNELS = collections.OrderedDict()
_KERNELS_KEPT = 16


def _kernel(token, program):
    """The process's kernel of ``token`` (see :class:`ChunkKernel`)."""
    kernel = _KERNELS.get(token)
    if kernel is None:
        kernel = _KERNELS[token] = ChunkKernel(program, token)
        while len(_KERNELS) > _KERNELS_KEPT:
            _KERNELS.popitem(last=False)
    else:
        _KERNELS.move_to_end(token)
    return kernel


def _combine(combiners, parts):
    """The results for all rows from those of each chunk (``parts``)."""
    return [functools.reduce(combine, column)
            for combine, column in zip(combiners, zip(*parts))]


class _OverDask:
    """What the programs of a call with dask inputs share."""

    def __init__(self, program, out_def, staging_seconds, equations_before):
        self.program, self.out_def = program, out_def
        self.staging_seconds, self.equations_before = staging_seconds, equations_before
        self.backend = "default"
        self.hits = 0

    def __repr__(self):
        return f"<{type(self).__name__}: {self.program!r}>"

    # The interface of a program split in its varying inputs (Compiled.fix):
    # over dask data nothing is worth running apart, so the "fixed part"
    # keeps the fixed inputs and each call runs the whole program.
    def split_at(self, varying, varying_output):
        """Take the inputs at positions ``varying`` last in :meth:`run_varying`;
        every output depends on them (each is ``varying_output``)."""
        fixed = [k for k in range(len(self.program.inputs)) if k not in varying]
        position = {k: j for j, k in enumerate(fixed + list(varying))}
        self._order = [position[k] for k in range(len(self.program.inputs))]
        self.fixed_outputs = [varying_output] * len(self.program.outputs)

    def run_fixed(self, *fixed):
        return fixed

    def run_varying(self, *inputs):
        return self.run(*(inputs[k] for k in self._order))


class LazyProgram(_OverDask):
    """A program with dask inputs replayed over them as generated source (the
    graph rebuilt per call), its outputs computed in one ``dask.compute``.

    Attributes
    ----------
    reason : str
        Why the program is not a :class:`ChunkedProgram`.
    source : str
        The generated source.
    """

    kind = "lazy"

    def __init__(self, program, out_def, staging_seconds, equations_before, reason):
        super().__init__(program, out_def, staging_seconds, equations_before)
        self.reason = reason
        self.source, self._replay = generated(program, "replay")

    def run(self, *dynamic):
        """The outputs, computed in one ``dask.compute``, except those in
        several chunks (as large as the data): they stay dask arrays."""
        out = self._replay(*dynamic)
        if out.__class__ is Miss:
            return out
        out = list(out)
        small = [k for k, o in enumerate(out) if not (is_lazy(o) and o.npartitions > 1)]
        for k, value in zip(small, compute_leaves([out[k] for k in small])):
            out[k] = value
        return out


class ChunkedProgram(_OverDask):
    """A program over dask data run as one task per chunk of rows plus one
    that adds their partial sums, per pass over the data (see the module's
    documentation).

    Attributes
    ----------
    split : RowSplit
        The program's equations, by where they run.
    kernels : dict
        ``(pass, rows per chunk)`` -> its :class:`ChunkKernel` (made when
        first needed).
    source : str
        The generated source of the parts run in NumPy and of each chunk
        kernel made so far.
    """

    kind = "chunked"
    reason = None

    def __init__(self, program, out_def, staging_seconds, equations_before, data, n):
        super().__init__(program, out_def, staging_seconds, equations_before)
        self.split = split = split_by_rows(program, data, n)
        self.data, self.n = data, n
        self.small_positions = [k for k in range(len(program.inputs)) if k not in data]
        self.small = [program.inputs[k] for k in self.small_positions]
        outputs = {r for r in program.outputs if isinstance(r, Var)}

        def read_from(k):  # what passes k, k + 1... and the outputs read
            return outputs.union(*(_ordered_reads(p.per_chunk + p.after)
                                   for p in split.passes[k:]))
        made = self.small + [e.out for e in split.before if isinstance(e, Equation)]
        later = read_from(0)
        self._before = self._part(self.small, split.before,
                                  [v for v in made if v in later], "before")
        self._passes = []
        for k, stage in enumerate(split.passes):
            made = {e.out for e in stage.per_chunk}
            reads = [v for v in _ordered_reads(stage.per_chunk)
                     if v not in made and v not in split.rows]
            made = [e.out for e in stage.after]
            later = read_from(k + 1)
            after = self._part([v for v in _ordered_reads(stage.after) if v not in made],
                               stage.after, [v for v in made if v in later], f"after_{k + 1}")
            self._passes.append((reads, after))
        reduction = {e.out: e.op.name for p in split.passes for e in p.per_chunk}
        self._combiners = [[_ROW_REDUCTIONS[reduction[v]] for v in p.sums]
                           for p in split.passes]
        self.kernels = {}

    @property
    def passes(self):
        """Passes over the data per call."""
        return len(self.split.passes)

    @property
    def source(self):
        parts = [self._before[2]] + [after[2] for _, after in self._passes]
        kernels = [k.source for k in self.kernels.values() if k.source is not None]
        return "\n".join(parts + kernels)

    @staticmethod
    def _part(inputs, body, outputs, name):
        """``(inputs, outputs, source, function)`` of a part run in NumPy."""
        program = Program(inputs, body, outputs)
        renamed = {v: _var_like(v, v.aval[1]) for v in _ordered(program)}
        source, function = generated(_renamed(program, renamed, lambda e: e.params), name)
        return inputs, outputs, source, function

    def kernel(self, k, m):
        """The :class:`ChunkKernel` of pass ``k`` (from 0) for chunks of ``m`` rows."""
        kernel = self.kernels.get((k, m))
        if kernel is None:
            rows, n = self.split.rows, self.n
            stage, inputs = self.split.passes[k], self._passes[k][0]
            data = [self.program.inputs[j] for j in self.data]
            renamed = {}
            for v in inputs + data + [e.out for e in stage.per_chunk]:
                shape = v.aval[1]
                if v in rows:
                    shape = shape[:rows[v]] + (m,) + shape[rows[v] + 1:]
                renamed[v] = _var_like(v, shape)
            program = _renamed(Program(inputs + data, stage.per_chunk, stage.sums), renamed,
                               lambda e: _resized_params(e, n, m, rows.get(e.out)))
            program.body = [_fast_products(e) for e in program.body]
            kernel = self.kernels[k, m] = ChunkKernel(program)
        return kernel

    def run(self, *dynamic):
        import dask
        from dask.delayed import Delayed
        from dask.highlevelgraph import HighLevelGraph
        _, outputs, _, before = self._before
        out = before(*(dynamic[k] for k in self.small_positions))
        if out.__class__ is Miss:
            return out
        known = dict(zip(outputs, out))
        data = _aligned([dynamic[j] for j in self.data])
        for k, (reads, (after_inputs, after_outputs, _, after)) in enumerate(self._passes):
            name = f"dualrev-chunk-{uuid.uuid4().hex}"
            small = [known[v] for v in reads]
            layer = {}
            for i, m in enumerate(data[0].chunks[0]):
                blocks = [(x.name, i) + (0,) * (x.ndim - 1) for x in data]
                layer[(name, i)] = (self.kernel(k, m), small, *blocks)
            layer[name] = (_combine, self._combiners[k], list(layer))  # over all rows
            graph = HighLevelGraph.from_collections(name, layer, dependencies=data)
            sums, = dask.compute(Delayed(name, graph))
            known.update(zip(self.split.passes[k].sums, sums))
            known.update(zip(after_outputs, after(*(known[v] for v in after_inputs))))
        return [known[r] if isinstance(r, Var) else r.value for r in self.program.outputs]


def _ordered_reads(body):
    """The Vars ``body`` reads, each once, in order."""
    return list(dict.fromkeys(r for e in body if isinstance(e, Equation)
                              for r in e.ins if isinstance(r, Var)))


def _ordered(program):
    """Vars of ``program`` (inputs, then outputs of equations), in order."""
    return list(program.inputs) + [e.out for e in program.body if isinstance(e, Equation)]


def _renamed(program, renamed, params):
    body = []
    for item in program.body:
        if isinstance(item, Guard):
            body.append(Guard(_rename(item.var, renamed), item.kind, item.expected))
        else:
            body.append(Equation(item.op, tuple(_rename(r, renamed) for r in item.ins),
                                 params(item), _rename(item.out, renamed)))
    return Program([_rename(v, renamed) for v in program.inputs], body,
                   [_rename(r, renamed) for r in program.outputs])


def _aligned(data):
    """The dask inputs with the row chunks of the first and one chunk along
    every other axis."""
    rows = data[0].chunks[0]
    return [x if x.chunks[0] == rows and all(len(c) == 1 for c in x.chunks[1:])
            else x.rechunk((rows,) + tuple(-1 for _ in x.shape[1:])) for x in data]


def lazy_program(program, out_def, staging_seconds, equations_before, dynamic):
    """The program for a call whose ``dynamic`` inputs include dask arrays: a
    :class:`ChunkedProgram` when it is a map-reduce over the rows of the
    data, else a :class:`LazyProgram` (its ``reason`` says why)."""
    data = [k for k, x in enumerate(dynamic) if is_lazy(x)]
    lengths = {dynamic[k].shape[0] if dynamic[k].ndim else None for k in data}
    reason = "the dask inputs do not share their number of rows (at least 2)"
    if len(lengths) == 1 and None not in lengths and min(lengths) >= 2:
        n, = lengths
        try:
            return ChunkedProgram(program, out_def, staging_seconds, equations_before,
                                  data, n)
        except NotRowSeparable as error:
            reason = str(error)
    return LazyProgram(program, out_def, staging_seconds, equations_before, reason)
