"""Traced values holding lazy arrays: dask arrays.

A traced value may hold any array that speaks NumPy's dispatch protocols
(``__array_ufunc__`` and ``__array_function__``); the rules, written as NumPy
calls, then build that array's graph instead of computing. For dask arrays
this module adds what the transformations need around a call:

- :func:`is_lazy` tells a dask array apart, without importing dask;
- :func:`computed` wraps a transformation so that a call whose differentiated
  arguments are NumPy values returns NumPy results, all of them computed by
  one ``dask.compute`` (one pass over the data);
- :func:`guard_materialization` turns a silent full computation of the data
  (an op dask does not implement lazily) into a :class:`LazyEvaluationError`
  naming the op.

dualrev never imports dask itself: the checks read ``sys.modules``.
"""

import contextlib
import functools
import re
import sys
import warnings

import numpy as np

from .core import Tracer
from .tree import flatten, unflatten

__all__ = ["is_lazy", "computed", "LazyEvaluationError"]


class LazyEvaluationError(RuntimeError):
    """A lazy (dask) value would have been computed in full inside a traced function."""


def _dask_array_type():
    module = sys.modules.get("dask.array")
    return getattr(module, "Array", None)


def is_lazy(x):
    """Whether ``x`` is a dask array (False when dask was never imported).

    Examples
    --------
    >>> import numpy as np
    >>> from dualrev.lazy import is_lazy
    >>> is_lazy(np.ones(3))
    False
    """
    array = _dask_array_type()
    return array is not None and isinstance(x, array)


def chunks_of(x):
    """The chunks of the dask array under every level of tracing of ``x``
    (a traced value, a plain one or a tape's placeholder); None when there is
    none (NumPy data, or a value staged by compile: a compiled program makes
    its broadcasts chunk by chunk, see :mod:`dualrev.chunked`)."""
    while isinstance(x, Tracer) and not x.staged:
        x = x.value
    return getattr(x, "chunks", None)


def broadcast_like(g, shape, chunks):
    """The plain value ``g`` broadcast to ``shape`` as a dask array of
    ``chunks``: a reduction's cotangent for lazy data stays lazy (a NumPy
    broadcast would be shipped whole, as one chunk as long as the data)."""
    import dask.array as da
    if is_lazy(g):
        return np.broadcast_to(g, shape)  # already lazy: dask's own broadcast
    g = np.asarray(g)
    lead = len(shape) - g.ndim
    own = tuple((1,) * n if n == 1 else c for c, n in zip(chunks[lead:], g.shape))
    return da.broadcast_to(da.from_array(g, chunks=own), shape, chunks=chunks)


def lazy_float(x, where):
    """A dask array ``x`` as a differentiable float array (see ``api.as_float``)."""
    kind = x.dtype.kind
    if kind == "f":
        return x
    if kind in "iu":
        return x.astype("float64")
    raise TypeError(f"{where} is a dask array of dtype {x.dtype}; dualrev "
                    "differentiates real floating-point arrays only")


def _any_lazy(tree):
    array = _dask_array_type()
    return array is not None and any(isinstance(x, array) for x in flatten(tree)[0])


def compute_leaves(tree):
    """``tree`` with its dask leaves computed, all in one ``dask.compute``."""
    leaves, treedef = flatten(tree)
    array = _dask_array_type()
    if array is None:
        return tree
    lazy = [i for i, x in enumerate(leaves) if isinstance(x, array)]
    if not lazy:
        return tree
    import dask
    values = dask.compute(*(leaves[i] for i in lazy))
    for i, value in zip(lazy, values):
        leaves[i] = value
    return unflatten(treedef, leaves)


def computed(transformed, argnums=None):
    """``transformed`` returning computed results when it ran on lazy data.

    Parameters
    ----------
    transformed : callable
        A transformed function (``grad(f)``, ``hessian(f)``...).
    argnums : int, tuple of int or None
        Its differentiated positional arguments. When one of them holds a
        dask array, the results stay lazy (a derivative with respect to data
        is as large as the data); otherwise every dask array among the results
        is computed, all in one ``dask.compute``.

    Inside an enclosing transformation (a traced argument or result) nothing
    is computed: the enclosing call computes once, at the end.
    """
    nums = () if argnums is None else (argnums,) if isinstance(argnums, int) else argnums

    @functools.wraps(transformed)
    def computed_call(*args, **kwargs):
        if _dask_array_type() is None:
            return transformed(*args, **kwargs)
        with guard_materialization():
            out = transformed(*args, **kwargs)
        return computed_results(out, [args[n] for n in nums if -len(args) <= n < len(args)],
                                (args, kwargs))
    return computed_call


def computed_results(out, selected, inputs=()):
    """``out`` with its dask arrays computed in one ``dask.compute``, unless a
    leaf of ``selected`` (the differentiated values) is a dask array or a
    leaf of ``out`` or ``inputs`` is traced (an enclosing transformation)."""
    if not _any_lazy(out) or _any_lazy(selected) \
            or any(isinstance(x, Tracer) for x in flatten((inputs, selected, out))[0]):
        return out
    return compute_leaves(out)


#: What dask warns before computing a function it does not implement lazily.
_FALLBACK = r"The `.*` function is not implemented by Dask array"


def _op_in_traceback(tb):
    """The name of the innermost registry op being applied in traceback ``tb``."""
    from .registry import Op
    name = None
    while tb is not None:
        op = tb.tb_frame.f_locals.get("op")
        if isinstance(op, Op):
            name = op.name
        tb = tb.tb_next
    return name


@contextlib.contextmanager
def guard_materialization():
    """Raise :class:`LazyEvaluationError` where dask would compute a whole array
    to call a NumPy function it has no lazy version of."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", _FALLBACK, FutureWarning)
        try:
            yield
        except FutureWarning as warning:
            if not re.match(_FALLBACK, str(warning)):
                raise
            raise _not_lazy(warning, "dask would compute the whole array to run it") \
                from None
        except (ValueError, TypeError, NotImplementedError, AttributeError) as error:
            if not _raised_by_dask(error.__traceback__):
                raise
            raise _not_lazy(error, "dask refused it") from error


def _raised_by_dask(tb):
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_globals.get("__name__", "").startswith("dask.")


def _not_lazy(error, what):
    op = _op_in_traceback(error.__traceback__)
    where = f"the op {op!r}" if op else "a NumPy function"
    return LazyEvaluationError(
        f"{where} has no lazy implementation for these dask arrays: {what} "
        f"({type(error).__name__}: {error}). Compute that part yourself on a small "
        "piece, or keep the values it needs in NumPy; the 'Data larger than memory' "
        "docs page lists what stays lazy.")


def _single_chunk_limit():
    import dask
    from dask.utils import parse_bytes
    return parse_bytes(dask.config.get("array.chunk-size"))


def lazy_untake(g, index, shape, basic, scatter_into):
    """Zeros of ``shape`` with the dask array ``g`` added at ``index`` (the
    ``untake`` op, lazily). A basic index (integers, slices) is a chunked
    assignment; an advanced one, where repeated indices accumulate, runs in one
    task and is refused for arrays larger than one dask chunk."""
    import dask
    import dask.array as da
    dtype = np.result_type(g.dtype, np.float64)
    if basic:
        z = da.zeros(shape, dtype=dtype)
        index = tuple(i for i in index if i is not None)  # dask assigns to no new axis
        z[index] = g.reshape(z[index].shape)
        return z
    size = max(np.prod(shape), np.prod(g.shape)) * dtype.itemsize
    if size > _single_chunk_limit():
        raise LazyEvaluationError(
            "the op 'untake' (the derivative of indexing with an integer or boolean "
            f"array) would gather {size} bytes into one dask chunk: index the data "
            "with slices, or apply the advanced index to NumPy parameters only")

    def scatter(g):
        return scatter_into(np.zeros(shape, dtype), index, g)
    return da.from_delayed(dask.delayed(scatter)(g), shape, dtype)

