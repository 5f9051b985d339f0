"""Shape and indexing primitives, and the NumPy shape functions built on them.

All of these are linear. Their JVP rules keep any leading batch axes of the
tangent in front (``batch_shape``); parameters are normalized when the op is
called (negative axes, resolved shapes), so the rules never guess.
"""

import operator

import numpy as np

from ..lazy import broadcast_like, is_lazy, lazy_untake
from ..registry import (NO_FLOPS, Teaching, Tracer, defop, dtype_of, fit_tangent, primal_value,
                        promote_tangent, register_numpy, shape_of, strip_derivatives, unbroadcast)


def batch_shape(t, x):
    """Leading axes of the tangent ``t`` that the primal ``x`` does not have."""
    ts = shape_of(t)
    return ts[:len(ts) - len(shape_of(x))]


# ---- reshape ---------------------------------------------------------------

def reshape_jvp(t, out, x, *, shape):
    return reshape(t, shape=batch_shape(t, x) + shape)


def reshape_vjp(g, out, x, *, shape):
    return reshape(g, shape=shape_of(x))


def _reshape_impl(x, *, shape):
    # np.asarray for Python floats; a dask array reshapes lazily, never through it
    return (x if is_lazy(x) else np.asarray(x)).reshape(shape)


reshape = defop("reshape", _reshape_impl,
                jvp=reshape_jvp, vjp=reshape_vjp, saves=((),), flops=NO_FLOPS,
                teaching=Teaching(rev=("{g}.reshape({0}.shape)",),
                                  fwd=("{t}.reshape({o}.shape)",),
                                  gate="reshape: the gradient takes the input's shape back",
                                  fwd_gate="reshape: the tangent is reshaped"),
                doc="Reshape to a resolved shape.")


def _resolve_shape(size, shape):
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    shape = tuple(int(n) for n in shape)
    if -1 in shape:
        known = int(np.prod([n for n in shape if n != -1]))
        shape = tuple(size // known if n == -1 else n for n in shape)
    return shape


def np_reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    if order != "C":
        raise NotImplementedError("dualrev supports reshape with order='C' only")
    shape = newshape if shape is None else shape
    return reshape(a, shape=_resolve_shape(int(np.prod(shape_of(a))), shape))


def ravel(a, order="C"):
    return np_reshape(a, -1, order)


def expand_dims(a, axis):
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    ndim = len(shape_of(a)) + len(axes)
    axes = sorted(ax % ndim for ax in axes)
    shape = list(shape_of(a))
    for ax in axes:
        shape.insert(ax, 1)
    return reshape(a, shape=tuple(shape))


def squeeze(a, axis=None):
    shape = shape_of(a)
    if axis is None:
        axes = {i for i, n in enumerate(shape) if n == 1}
    else:
        axes = {ax % len(shape) for ax in ((axis,) if isinstance(axis, int) else axis)}
        if any(shape[ax] != 1 for ax in axes):
            raise ValueError("cannot select an axis to squeeze out which has size not equal to one")
    return reshape(a, shape=tuple(n for i, n in enumerate(shape) if i not in axes))


def atleast_1d(*arys):
    res = [a if len(shape_of(a)) >= 1 else reshape(a, shape=(1,)) for a in arys]
    return res[0] if len(res) == 1 else res


def atleast_2d(*arys):
    res = []
    for a in arys:
        s = shape_of(a)
        res.append(a if len(s) >= 2 else reshape(a, shape=(1,) * (2 - len(s)) + s))
    return res[0] if len(res) == 1 else res


register_numpy(np.reshape, np_reshape)
register_numpy(np.ravel, ravel)
register_numpy(np.expand_dims, expand_dims)
register_numpy(np.squeeze, squeeze)
register_numpy(np.atleast_1d, atleast_1d)
register_numpy(np.atleast_2d, atleast_2d)


# ---- transpose -------------------------------------------------------------

def transpose_jvp(t, out, x, *, axes):
    nb = len(batch_shape(t, x))
    return transpose(t, axes=tuple(range(nb)) + tuple(nb + a for a in axes))


def transpose_vjp(g, out, x, *, axes):
    return transpose(g, axes=tuple(np.argsort(axes)))


transpose = defop("transpose", lambda x, *, axes: np.transpose(x, axes),
                  jvp=transpose_jvp, vjp=transpose_vjp, saves=((),), flops=NO_FLOPS,
                  teaching=Teaching(rev=("np.transpose({g}, np.argsort(axes))",),
                                    fwd=("np.transpose({t}, axes)",),
                                    gate="transpose: the gradient is transposed back",
                                    fwd_gate="transpose: the tangent is transposed"),
                  doc="Permute axes.")


def np_transpose(a, axes=None):
    ndim = len(shape_of(a))
    axes = tuple(reversed(range(ndim))) if axes is None else tuple(ax % ndim for ax in axes)
    return a if axes == tuple(range(ndim)) else transpose(a, axes=axes)


def moveaxis(a, source, destination):
    ndim = len(shape_of(a))
    src = [s % ndim for s in np.atleast_1d(source)]
    dst = [d % ndim for d in np.atleast_1d(destination)]
    order = [n for n in range(ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return np_transpose(a, order)


def swapaxes(a, axis1, axis2):
    axes = list(range(len(shape_of(a))))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return np_transpose(a, axes)


register_numpy(np.transpose, np_transpose)
register_numpy(np.moveaxis, moveaxis)
register_numpy(np.swapaxes, swapaxes)


# ---- broadcast_to ----------------------------------------------------------

def broadcast_to_impl(x, *, shape, chunks=None):
    """``np.broadcast_to``; with ``chunks`` (those of lazy data the result
    matches), a dask array of those chunks: never a NumPy array as long as
    the data."""
    return np.broadcast_to(x, shape) if chunks is None else broadcast_like(x, shape, chunks)


def broadcast_to_jvp(t, out, x, *, shape, chunks=None):
    if chunks is None:
        return fit_tangent(t, x, out)
    batch = shape_of(t)[:len(shape_of(t)) - len(shape_of(x))]  # leading batch axes
    return broadcast_to(promote_tangent(t, x, len(shape)), shape=batch + shape,
                        chunks=tuple((n,) for n in batch) + chunks)


def broadcast_to_vjp(g, out, x, *, shape, chunks=None):
    return unbroadcast(g, shape_of(x))


broadcast_to = defop("broadcast_to", broadcast_to_impl,
                     jvp=broadcast_to_jvp, vjp=broadcast_to_vjp, saves=((),), flops=NO_FLOPS,
                     teaching=Teaching(rev=("{g} summed over the broadcast axes",),
                                       fwd=("broadcast({t})",),
                                       gate="broadcast: a copy to many slots, so the "
                                            "gradients of the copies add",
                                       fwd_gate="broadcast copies the tangent"),
                     doc="Broadcast to a shape; its VJP sums back (unbroadcast).")


def np_broadcast_to(array, shape, subok=False):
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return array if shape_of(array) == shape else broadcast_to(array, shape=shape)


register_numpy(np.broadcast_to, np_broadcast_to)


# ---- concatenate -----------------------------------------------------------

def _concat_impl(*xs, axis):
    return np.concatenate(xs, axis=axis)


def _concat_vjp(i):
    def concatenate_vjp(g, out, *xs, axis):
        start = sum(shape_of(x)[axis] for x in xs[:i])
        stop = start + shape_of(xs[i])[axis]
        index = (Ellipsis, slice(start, stop)) + (slice(None),) * (-axis - 1)
        return getitem(g, index=index)
    return concatenate_vjp


def _concat_jvp(i):
    def concatenate_jvp(t, out, *xs, axis):
        # Pad this argument's tangent with zeros where the others sit.
        batch = batch_shape(t, xs[i])
        parts = [t if j == i else np.zeros(batch + shape_of(x), dtype_of(t))
                 for j, x in enumerate(xs)]
        return concatenate(*parts, axis=axis)
    return concatenate_jvp


concatenate = defop("concatenate", _concat_impl, nargs=None, jvp=_concat_jvp,
                    vjp=_concat_vjp, flops=NO_FLOPS,
                    doc="Concatenate the arguments along a negative axis.")


def np_concatenate(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    arrays = list(arrays)
    if axis is None:
        arrays, axis = [ravel(a) for a in arrays], 0
    ndim = len(shape_of(arrays[0]))
    return concatenate(*arrays, axis=axis % ndim - ndim)


def stack(arrays, axis=0, out=None, dtype=None, casting="same_kind"):
    arrays = list(arrays)
    ndim = len(shape_of(arrays[0])) + 1
    return np_concatenate([expand_dims(a, axis % ndim) for a in arrays], axis=axis)


def hstack(tup, dtype=None, casting="same_kind"):
    arrs = [atleast_1d(a) for a in tup]
    return np_concatenate(arrs, axis=0 if len(shape_of(arrs[0])) == 1 else 1)


def vstack(tup, dtype=None, casting="same_kind"):
    return np_concatenate([atleast_2d(a) for a in tup], axis=0)


register_numpy(np.concatenate, np_concatenate)
register_numpy(np.stack, stack)
register_numpy(np.hstack, hstack)
register_numpy(np.vstack, vstack)


# ---- indexing --------------------------------------------------------------

def _getitem_jvp(t, out, x, *, index):
    nb = len(batch_shape(t, x))
    if not nb:
        return getitem(t, index=index)
    res = getitem(t, index=(slice(None),) * nb + index)
    k = _split_advanced_ndim(index)
    if k:  # NumPy moved the advanced-index axes in front of the batch axes
        res = np.moveaxis(res, tuple(range(k, k + nb)), tuple(range(nb)))
    return res


def _split_advanced_ndim(index):
    """ndim of the advanced-index result if NumPy moves it to the front
    (advanced indices separated by a slice or None), else 0."""
    advanced = [k for k, i in enumerate(index) if isinstance(i, np.ndarray)]
    if not advanced or advanced[-1] - advanced[0] + 1 == len(advanced):
        return 0
    return np.broadcast_shapes(*(np.shape(np.nonzero(index[k])[0]) if index[k].dtype == bool
                                 else index[k].shape for k in advanced)).__len__()


def _getitem_vjp(g, out, x, *, index):
    return untake(g, index=index, shape=shape_of(x))


def _index_add_into(buffer, base, g, *, index):
    """Write ``base`` with ``g`` added at ``index`` into ``buffer``, which may
    be ``base`` itself: O(size of g) then."""
    if buffer is not base:
        buffer[...] = base
    if is_basic_index(index):
        buffer[index] += g
    else:
        np.add.at(buffer, index, g)  # repeated indices accumulate
    return buffer


def _floating(dtype):
    """``dtype`` if floating or complex (float32 stays float32), else float64."""
    return dtype if dtype.kind in "fc" else np.dtype(np.float64)


def _index_add_impl(base, g, *, index):
    if is_lazy(base) or is_lazy(g):
        return base + lazy_untake(g, index, shape_of(base), is_basic_index(index), _scatter)
    buffer = np.array(base, dtype=_floating(np.result_type(base, g)))
    return _index_add_into(buffer, buffer, g, index=index)


def _index_add_jvp_g(t, out, base, g, *, index):
    batch = batch_shape(t, g)
    return untake(t, index=(slice(None),) * len(batch) + index, shape=batch + shape_of(base))


def _index_add_flops(out, base, g, *, index):
    return int(np.prod(shape_of(g)))  # one add per element of g


index_add = defop("index_add", _index_add_impl, nargs=2,
                  jvp=(lambda t, out, base, g, *, index: t, _index_add_jvp_g),
                  vjp=(lambda h, out, base, g, *, index: h,
                       lambda h, out, base, g, *, index: getitem(h, index=index)),
                  saves=((), ()), flops=_index_add_flops, loop="{0} + {1}",
                  doc="``base`` with ``g`` added at ``index`` (repeated indices "
                      "accumulate): how a sweep accumulates indexing cotangents.")
index_add.into = _index_add_into


# No ``saves``: the indexed array is nearly always alive anyway (a Python loop
# over x[i]), and keeping the reference costs less than dropping it each time.
getitem = defop("getitem", lambda x, *, index: x[index], jvp=_getitem_jvp, vjp=_getitem_vjp,
                vjp_add=index_add, flops=NO_FLOPS, loop="{0}",
                teaching=Teaching(short="idx", rev=("np.add.at(np.zeros_like({0}), index, {g})",),
                                  gate="indexing routes the gradient into the selected slots",
                                  fwd_gate="indexing selects the tangent's slots"),
                doc="x[index], with integers, slices, None, integer arrays and masks.")


def _scatter(z, index, g):
    """``z[index] = g`` on zeros, repeated indices accumulating."""
    if is_basic_index(index):
        z[index] = g
    else:
        np.add.at(z, index, g)
    return z


def _untake_impl(g, *, index, shape):
    if is_lazy(g):
        return lazy_untake(g, index, shape, is_basic_index(index), _scatter)
    return _scatter(np.zeros(shape, _floating(np.result_type(g))), index, g)


def _untake_into(buffer, g, *, index, shape):
    if buffer is g:  # written over: keep g's values
        g = g.copy()
    buffer.fill(0)
    return _scatter(buffer, index, g)


def _untake_jvp(t, out, g, *, index, shape):
    batch = batch_shape(t, g)
    if batch and _split_advanced_ndim(index):
        raise NotImplementedError("batched tangents through an index with separated "
                                  "advanced indices are not supported")
    return untake(t, index=(slice(None),) * len(batch) + index, shape=batch + shape)


def _untake_vjp(h, out, g, *, index, shape):
    return getitem(h, index=index)


untake = defop("untake", _untake_impl, jvp=_untake_jvp, vjp=_untake_vjp, saves=((),),
               flops=NO_FLOPS, loop="{0}",
               teaching=Teaching(display="scatter", rev=("{g}[index]",),
                                 fwd=("scatter({t})",),
                                 gate="scatter: each slot's gradient is read back",
                                 fwd_gate="scatter places the tangent in the slots"),
               doc="Zeros of ``shape`` with ``g`` added at ``index``: the VJP of getitem.")
untake.into = _untake_into


def is_basic_index(index):
    """Is ``index`` (a tuple) NumPy basic indexing: integers (not booleans),
    slices, None and Ellipsis only? Such an index selects a view and never
    repeats an element."""
    if index.__class__ is not tuple:
        return False
    for i in index:  # on the sweep's hot path (x[i] in a loop): exact types first
        if i.__class__ is int or i.__class__ is slice or i is None or i is Ellipsis:
            continue
        if not isinstance(i, np.integer):
            return False
    return True


def _strip_index(i):
    if isinstance(i, Tracer) and i.staged:
        i = i._trace.concrete(i)  # staged under dualrev.compile: guarded
    if isinstance(i, Tracer):
        raise TypeError("an index must not be a traced value: index with integers, "
                        "slices or integer/boolean arrays that do not depend on the "
                        "differentiated inputs")
    if isinstance(i, (bool, np.bool_)):
        return np.asarray(i)
    if isinstance(i, (int, np.integer)):
        return operator.index(i)
    if isinstance(i, (list, np.ndarray)):
        return np.asarray(i)
    return i


def normalize_index(index, shape):
    """An index tuple with no Ellipsis and plain (non-traced) entries."""
    if not isinstance(index, tuple):
        index = (index,)
    index = tuple(_strip_index(i) for i in index)
    if any(i is Ellipsis for i in index):
        pos = next(k for k, i in enumerate(index) if i is Ellipsis)
        used = sum(1 if i is not None and not (isinstance(i, np.ndarray) and i.dtype == bool)
                   else (0 if i is None else i.ndim) for i in index if i is not Ellipsis)
        index = index[:pos] + (slice(None),) * (len(shape) - used) + index[pos + 1:]
    return index


def np_getitem(x, index):
    return getitem(x, index=normalize_index(index, shape_of(x)))


# ---- composites: flip, roll, split, pad, tile, repeat, diff -------------------

def axis_index(ndim, axis, item):
    """An index tuple that applies ``item`` along ``axis`` and keeps the rest."""
    axis %= ndim
    return (slice(None),) * axis + (item,) + (slice(None),) * (ndim - axis - 1)


def _take_along(a, axis, indices):
    """``a`` indexed by the plain integer array ``indices`` along one axis; in
    the VJP, repeated indices accumulate."""
    ndim = len(shape_of(a))
    return getitem(a, index=axis_index(ndim, axis, np.asarray(indices, dtype=np.intp)))


def normalize_axis(axis, ndim, *, ordered=False):
    """``axis`` (None, an int or a sequence of ints) as a tuple of negative
    axes, each checked against ``ndim`` (``AxisError`` if out of range).

    By default the axes are sorted and distinct (reductions); ``ordered=True``
    keeps them as given, repeats included (``flip``, ``roll``).
    """
    if axis is None:
        return tuple(range(-ndim, 0))
    axes = (int(axis),) if isinstance(axis, (int, np.integer)) else tuple(map(int, axis))
    for a in axes:
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(a, ndim)
    if ordered or len(axes) == 1:
        return tuple(a % ndim - ndim for a in axes)
    return tuple(sorted({a % ndim - ndim for a in axes}))


def flip(m, axis=None):
    index = [slice(None)] * len(shape_of(m))
    for ax in normalize_axis(axis, len(shape_of(m)), ordered=True):
        index[ax] = slice(None, None, -1)
    return getitem(m, index=tuple(index))


def fliplr(m):
    return flip(m, 1)


def flipud(m):
    return flip(m, 0)


def roll(a, shift, axis=None):
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), shape=shape_of(a))
    shape = shape_of(a)
    axes = normalize_axis(axis, len(shape), ordered=True)
    shifts = np.broadcast_to(shift, (len(axes),))
    for ax, s in zip(axes, shifts):
        a = _take_along(a, ax, np.roll(np.arange(shape[ax]), int(s)))
    return a


def array_split(ary, indices_or_sections, axis=0):
    ndim = len(shape_of(ary))
    axis = axis % ndim
    pieces = np.array_split(np.arange(shape_of(ary)[axis]), indices_or_sections)
    return [getitem(ary, index=axis_index(ndim, axis, _span(p))) for p in pieces]


def _span(positions):
    start = int(positions[0]) if len(positions) else 0
    return slice(start, start + len(positions))


def split(ary, indices_or_sections, axis=0):
    # np.split on the positions raises NumPy's own error for an unequal split.
    np.split(np.arange(shape_of(ary)[axis]), indices_or_sections)
    return array_split(ary, indices_or_sections, axis)


def hsplit(ary, indices_or_sections):
    return split(ary, indices_or_sections, 1 if len(shape_of(ary)) > 1 else 0)


def vsplit(ary, indices_or_sections):
    return split(ary, indices_or_sections, 0)


_PAD_COPY_MODES = ("edge", "reflect", "symmetric", "wrap")


def pad(array, pad_width, mode="constant", **kwargs):
    shape = shape_of(array)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.intp), (len(shape), 2))
    if mode == "constant":
        return _pad_constant(array, widths, kwargs.pop("constant_values", 0), kwargs)
    if mode not in _PAD_COPY_MODES or kwargs:
        raise NotImplementedError(
            f"np.pad on traced values supports mode='constant' (constant_values) and "
            f"modes {_PAD_COPY_MODES} without options; got mode={mode!r}"
            + (f" with {sorted(kwargs)}" if kwargs else ""))
    for ax, (before, after) in enumerate(widths):
        if before or after:
            positions = np.pad(np.arange(shape[ax]), (before, after), mode=mode)
            array = _take_along(array, ax, positions)
    return array


def _pad_constant(array, widths, constant_values, kwargs):
    if kwargs:
        raise NotImplementedError(f"np.pad(mode='constant') options {sorted(kwargs)} "
                                  "are not supported on traced values")
    if isinstance(constant_values, Tracer):
        raise NotImplementedError("np.pad: a traced constant_values is not supported; "
                                  "pad with 0 and add the constant times a mask")
    shape = shape_of(array)
    padded = tuple(int(n + b + a) for n, (b, a) in zip(shape, widths))
    interior = tuple(slice(int(b), int(b + n)) for n, (b, _) in zip(shape, widths))
    border = np.pad(np.zeros(shape), widths, constant_values=constant_values)
    return untake(array, index=interior, shape=padded) + border


def tile(A, reps):
    reps = (int(reps),) if isinstance(reps, (int, np.integer)) else tuple(int(r) for r in reps)
    shape = shape_of(A)
    d = max(len(shape), len(reps))
    shape = (1,) * (d - len(shape)) + shape
    reps = (1,) * (d - len(reps)) + reps
    # (1, s0, 1, s1, ...) broadcast to (r0, s0, r1, s1, ...): the VJP sums the copies.
    spread = tuple(n for s in shape for n in (1, s))
    copies = tuple(n for r, s in zip(reps, shape) for n in (r, s))
    tiled = broadcast_to(reshape(A, shape=spread), shape=copies)
    return reshape(tiled, shape=tuple(r * s for r, s in zip(reps, shape)))


def repeat(a, repeats, axis=None):
    if axis is None:
        a, axis = ravel(a), 0
    axis = axis % len(shape_of(a))
    positions = np.repeat(np.arange(shape_of(a)[axis]), repeats)
    return _take_along(a, axis, positions)


def take(a, indices, axis=None, out=None, mode="raise"):
    if out is not None or mode != "raise":
        raise NotImplementedError("take on traced values supports out=None, mode='raise'")
    if axis is None:
        a, axis = ravel(a), 0
    return _take_along(a, axis % len(shape_of(a)), indices)


def take_along_axis(arr, indices, axis):
    if axis is None:
        arr, axis = ravel(arr), 0
    indices = np.asarray(primal_value(indices), dtype=np.intp)  # an index: a constant
    index = list(np.ix_(*(np.arange(n) for n in indices.shape)))
    index[axis % len(indices.shape)] = indices
    return getitem(arr, index=tuple(np.broadcast_arrays(*index)))


def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """Sorted ``a``: a permutation read off the primal values, so the
    cotangent of each output element goes back to the element it came from."""
    if axis is None:
        a, axis = ravel(a), -1
    order = np.argsort(strip_derivatives(a), axis=axis, kind="stable")
    return take_along_axis(a, order, axis)


_NO_VALUE = object()


def diff(a, n=1, axis=-1, prepend=_NO_VALUE, append=_NO_VALUE):
    ndim = len(shape_of(a))
    axis = axis % ndim
    pieces = [_edge_piece(prepend, a, axis), a, _edge_piece(append, a, axis)]
    pieces = [p for p in pieces if p is not None]
    if len(pieces) > 1:
        a = np_concatenate(pieces, axis=axis)
    for _ in range(n):
        a = (getitem(a, index=axis_index(ndim, axis, slice(1, None)))
             - getitem(a, index=axis_index(ndim, axis, slice(None, -1))))
    return a


def _edge_piece(value, a, axis):
    """``prepend``/``append`` of np.diff as an array with ``a``'s other axes."""
    if value is _NO_VALUE:
        return None
    if shape_of(value) == ():
        shape = list(shape_of(a))
        shape[axis] = 1
        return np_broadcast_to(value, tuple(shape))
    return value


register_numpy(np.flip, flip)
register_numpy(np.fliplr, fliplr)
register_numpy(np.flipud, flipud)
register_numpy(np.roll, roll)
register_numpy(np.array_split, array_split)
register_numpy(np.split, split)
register_numpy(np.hsplit, hsplit)
register_numpy(np.vsplit, vsplit)
register_numpy(np.pad, pad)
register_numpy(np.tile, tile)
register_numpy(np.repeat, repeat)
register_numpy(np.diff, diff)
register_numpy(np.take, take)
register_numpy(np.take_along_axis, take_along_axis)
register_numpy(np.sort, sort)
