"""The array API namespace of traced values (``x.__array_namespace__()``).

SciPy >= 1.15 runs a growing list of its functions (``scipy.optimize.rosen``,
``scipy.special.logsumexp`` / ``softmax`` / ``log_softmax``, ...) on
``xp = array_namespace(x)`` when ``SCIPY_ARRAY_API=1`` is set before SciPy is
first imported. For a traced value that namespace is this module: the array
API standard (2024.12) written with NumPy calls, which NumPy hands to the
registry for traced values and computes as usual for plain ones, so the same
function serves both. Names of the standard that dualrev does not provide are
listed, with the reason, in ``UNSUPPORTED`` (``UNSUPPORTED_LINALG`` and
``UNSUPPORTED_FFT`` for the ``linalg`` and ``fft`` extensions; and on the
"SciPy's own functions" docs page).
"""

import numpy as np

from .registry import Tracer, dtype_of, shape_of

__array_api_version__ = "2024.12"

# ---- constants and data types -------------------------------------------------
e, inf, nan, pi, newaxis = np.e, np.inf, np.nan, np.pi, None
bool = np.bool_  # noqa: A001  (the standard's name)
int8, int16, int32, int64 = np.int8, np.int16, np.int32, np.int64
uint8, uint16, uint32, uint64 = np.uint8, np.uint16, np.uint32, np.uint64
float32, float64 = np.float32, np.float64
complex64, complex128 = np.complex64, np.complex128

# ---- functions NumPy already provides under the standard's name -------------
# Each dispatches traced values to the registry (__array_ufunc__ /
# __array_function__) and computes plain values as NumPy does.
_SAME_AS_NUMPY = """
abs acos acosh add asin asinh atan atan2 atanh ceil clip conj copysign cos cosh
divide equal exp expm1 floor floor_divide greater greater_equal hypot isfinite isinf isnan
less less_equal log log10 log1p log2 logaddexp logical_and logical_not logical_or
logical_xor maximum minimum multiply negative not_equal positive pow reciprocal
real imag remainder round sign signbit sin sinh sqrt square subtract tan tanh
trunc argmax argmin argsort count_nonzero nonzero searchsorted where
broadcast_shapes finfo iinfo isdtype
arange empty eye full linspace ones zeros empty_like full_like ones_like zeros_like
broadcast_to concat expand_dims flip moveaxis permute_dims repeat roll
squeeze stack tile take take_along_axis tensordot matmul
""".split()
globals().update({name: getattr(np, name) for name in _SAME_AS_NUMPY})

UNSUPPORTED = {
    **dict.fromkeys(["bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_invert",
                     "bitwise_left_shift", "bitwise_right_shift"],
                    "integer-only: nothing to differentiate"),
    **dict.fromkeys(["unique_all", "unique_counts", "unique_inverse", "unique_values",
                     "isin", "nextafter"],
                    "no differentiation rule in the registry; call it on "
                    "dualrev.stop_gradient(x) when no derivative is wanted"),
    **dict.fromkeys(["from_dlpack", "meshgrid"], "not implemented yet"),
}


def _traced(x):
    return isinstance(x, Tracer)


def result_type(*arrays_and_dtypes):
    """The standard's type promotion, on the values' dtypes."""
    return np.result_type(*(dtype_of(a) if isinstance(a, Tracer) else a
                           for a in arrays_and_dtypes))


def can_cast(from_, to, /):
    """Whether ``from_`` (a dtype or array) casts safely to ``to``."""
    return np.can_cast(getattr(from_, "dtype", from_), to)


# ---- creation and conversion --------------------------------------------------
def asarray(obj, /, *, dtype=None, device=None, copy=None):
    """The standard's ``asarray``; a traced value stays traced.

    ``copy=True`` returns a new traced value (a recorded identity), so that
    an in-place update of the copy leaves ``obj`` as it was.

    Examples
    --------
    >>> import dualrev
    >>> from dualrev import array_api as xp
    >>> dualrev.grad(lambda x: xp.sum(xp.asarray(x, copy=True) ** 2))(xp.asarray([1.0, 2.0]))
    array([2., 4.])
    """
    if not _traced(obj):
        return np.asarray(obj, dtype=dtype, copy=copy, device=device)
    if dtype is not None and not np.issubdtype(np.dtype(dtype), np.floating):
        raise TypeError(f"asarray(..., dtype={np.dtype(dtype)}) would drop the derivative "
                        "of a traced value; only floating dtypes are supported")
    return obj * 1.0 if copy else obj


def astype(x, dtype, /, *, copy=True, device=None):
    """The standard's ``astype``: traced values keep floating dtypes only."""
    if not _traced(x):
        return np.astype(x, dtype, copy=copy, device=device)
    return x.astype(dtype)


# ---- names that differ from NumPy's or need a composition --------------------
def matrix_transpose(x, /):
    """Swap the last two axes."""
    return np.swapaxes(x, -1, -2)


def vecdot(x1, x2, /, *, axis=-1):
    """Dot product of (real) vectors along ``axis``, broadcasting the rest."""
    return np.sum(x1 * x2, axis=axis)


def cumulative_sum(x, /, *, axis=None, dtype=None, include_initial=False):
    """Cumulative sum, optionally starting with a zero."""
    return _cumulative(np.cumsum, 0.0, x, axis, include_initial)


def cumulative_prod(x, /, *, axis=None, dtype=None, include_initial=False):
    """Cumulative product, optionally starting with a one."""
    return _cumulative(np.cumprod, 1.0, x, axis, include_initial)


def _cumulative(accumulate, initial, x, axis, include_initial):
    if axis is None:
        if np.ndim(x) > 1:
            raise ValueError("axis must be given for arrays of more than one dimension")
        axis = 0
    out = accumulate(x, axis=axis)
    if not include_initial:
        return out
    shape = list(shape_of(x))
    shape[axis] = 1
    return np.concatenate([np.full(shape, initial), out], axis=axis)


def unstack(x, /, *, axis=0):
    """The slices of ``x`` along ``axis``, as a tuple."""
    moved = np.moveaxis(x, axis, 0)
    return tuple(moved[i] for i in range(shape_of(x)[axis]))


def reshape(x, /, shape, *, copy=None):
    """The standard's ``reshape``."""
    return np.reshape(x, shape)


def max(x, /, *, axis=None, keepdims=False):  # noqa: A001
    """Largest element along ``axis``."""
    return np.max(x, axis=axis, keepdims=keepdims)


def min(x, /, *, axis=None, keepdims=False):  # noqa: A001
    """Smallest element along ``axis``."""
    return np.min(x, axis=axis, keepdims=keepdims)


def sum(x, /, *, axis=None, dtype=None, keepdims=False):  # noqa: A001
    """Sum along ``axis``; ``dtype`` only for plain values."""
    return np.sum(x, axis=axis, keepdims=keepdims, **({} if _traced(x) else {"dtype": dtype}))


def prod(x, /, *, axis=None, dtype=None, keepdims=False):
    """Product along ``axis``; ``dtype`` only for plain values."""
    return np.prod(x, axis=axis, keepdims=keepdims, **({} if _traced(x) else {"dtype": dtype}))


def mean(x, /, *, axis=None, keepdims=False):
    """Mean along ``axis``."""
    return np.mean(x, axis=axis, keepdims=keepdims)


def std(x, /, *, axis=None, correction=0.0, keepdims=False):
    """Standard deviation along ``axis`` with ``correction`` degrees of freedom."""
    return np.std(x, axis=axis, ddof=correction, keepdims=keepdims)


def var(x, /, *, axis=None, correction=0.0, keepdims=False):
    """Variance along ``axis`` with ``correction`` degrees of freedom."""
    return np.var(x, axis=axis, ddof=correction, keepdims=keepdims)


def all(x, /, *, axis=None, keepdims=False):  # noqa: A001
    """Whether every element along ``axis`` is true (no derivative)."""
    return np.all(x, axis=axis, keepdims=keepdims)


def any(x, /, *, axis=None, keepdims=False):  # noqa: A001
    """Whether some element along ``axis`` is true (no derivative)."""
    return np.any(x, axis=axis, keepdims=keepdims)


def diff(x, /, *, axis=-1, n=1, prepend=None, append=None):
    """n-th forward difference along ``axis``."""
    pieces = [p for p in (prepend, x, append) if p is not None]
    if len(pieces) > 1:
        x = np.concatenate(pieces, axis=axis)
    return np.diff(x, n=n, axis=axis)


def sort(x, /, *, axis=-1, descending=False, stable=True):
    """Sorted copy along ``axis``."""
    out = np.sort(x, axis=axis)
    return np.flip(out, axis=axis) if descending else out


def tril(x, /, *, k=0):
    """Lower triangle of the last two axes, zeros above diagonal ``k``."""
    rows, cols = shape_of(x)[-2:]
    return np.where(np.tri(rows, cols, k, dtype=np.bool_), x, 0.0)


def triu(x, /, *, k=0):
    """Upper triangle of the last two axes, zeros below diagonal ``k``."""
    rows, cols = shape_of(x)[-2:]
    return np.where(np.tri(rows, cols, k - 1, dtype=np.bool_), 0.0, x)


def broadcast_arrays(*arrays):
    """The arrays broadcast to their common shape."""
    shape = np.broadcast_shapes(*(shape_of(a) for a in arrays))
    return [np.broadcast_to(a, shape) for a in arrays]


# ---- in-place update of a traced value ---------------------------------------
def updated(x, index, value):
    """``x`` with ``x[index]`` replaced by ``value``, as a new value.

    Written with registry ops (broadcast, take, where), so the result carries
    the derivatives of both ``x`` and ``value``; NumPy's assignment
    semantics, including repeated indices (the last one wins).

    Examples
    --------
    >>> import numpy as np
    >>> from dualrev.array_api import updated
    >>> updated(np.zeros(4), slice(1, 3), np.array([5.0, 6.0]))
    array([0., 5., 6., 0.])
    """
    shape = shape_of(x)
    positions = np.arange(int(np.prod(shape))).reshape(shape)[index]
    if not _traced(value) and not _traced(x):
        out = np.array(x, dtype=np.result_type(x, value))
        out[index] = value
        return out
    if positions.size == 0:
        return x
    source = np.full(int(np.prod(shape)), -1)
    source[positions.ravel()] = np.arange(positions.size)
    mask = (source >= 0).reshape(shape)
    flat = np.ravel(np.broadcast_to(value, positions.shape))
    placed = np.reshape(np.take(flat, np.where(source >= 0, source, 0)), shape)
    return np.where(mask, placed, x)


# ---- linear algebra -----------------------------------------------------------
class _Linalg:
    """The standard's ``linalg`` extension (``xp.linalg``)."""

    cholesky = staticmethod(lambda x, /, *, upper=False: (
        matrix_transpose(np.linalg.cholesky(x)) if upper else np.linalg.cholesky(x)))
    det = staticmethod(np.linalg.det)
    diagonal = staticmethod(lambda x, /, *, offset=0: np.diagonal(x, offset, -2, -1))
    eigh = staticmethod(np.linalg.eigh)
    eigvalsh = staticmethod(np.linalg.eigvalsh)
    inv = staticmethod(np.linalg.inv)
    matmul = staticmethod(np.matmul)
    matrix_transpose = staticmethod(matrix_transpose)
    outer = staticmethod(np.outer)
    cross = staticmethod(lambda x1, x2, /, *, axis=-1: np.cross(x1, x2, axis=axis))
    eig = staticmethod(np.linalg.eig)
    eigvals = staticmethod(np.linalg.eigvals)
    matrix_power = staticmethod(lambda x, n, /: np.linalg.matrix_power(x, n))
    pinv = staticmethod(lambda x, /, *, rtol=None: np.linalg.pinv(x, rtol=rtol))
    qr = staticmethod(lambda x, /, *, mode="reduced": np.linalg.qr(x, mode=mode))
    svd = staticmethod(lambda x, /, *, full_matrices=True: np.linalg.svd(
        x, full_matrices=full_matrices))
    svdvals = staticmethod(np.linalg.svdvals)
    slogdet = staticmethod(np.linalg.slogdet)
    solve = staticmethod(np.linalg.solve)
    tensordot = staticmethod(np.tensordot)
    trace = staticmethod(lambda x, /, *, offset=0, dtype=None: np.trace(x, offset, -2, -1))
    vecdot = staticmethod(vecdot)

    @staticmethod
    def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
        """Vector norm along ``axis`` (all axes by default)."""
        if axis is None:
            x, axis = np.ravel(x), 0
        return np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims)

    @staticmethod
    def matrix_norm(x, /, *, keepdims=False, ord="fro"):
        """Matrix norm over the last two axes."""
        return np.linalg.norm(x, ord=ord, axis=(-2, -1), keepdims=keepdims)


linalg = _Linalg()

UNSUPPORTED_LINALG = {"matrix_rank": "no differentiation rule in the registry yet"}


# ---- Fourier transforms ------------------------------------------------------------
class _FFT:
    """The standard's ``fft`` extension (``xp.fft``): the one-dimensional
    transforms, on real inputs and complex intermediates (see
    :mod:`dualrev.ops.fft`)."""

    fft = staticmethod(lambda x, /, *, n=None, axis=-1, norm="backward": np.fft.fft(
        x, n=n, axis=axis, norm=norm))
    ifft = staticmethod(lambda x, /, *, n=None, axis=-1, norm="backward": np.fft.ifft(
        x, n=n, axis=axis, norm=norm))
    rfft = staticmethod(lambda x, /, *, n=None, axis=-1, norm="backward": np.fft.rfft(
        x, n=n, axis=axis, norm=norm))
    irfft = staticmethod(lambda x, /, *, n=None, axis=-1, norm="backward": np.fft.irfft(
        x, n=n, axis=axis, norm=norm))


fft = _FFT()

UNSUPPORTED_FFT = {
    **dict.fromkeys(["fftn", "ifftn", "rfftn", "irfftn", "hfft", "ihfft"],
                    "no differentiation rule in the registry yet"),
    **dict.fromkeys(["fftfreq", "rfftfreq", "fftshift", "ifftshift"],
                    "not implemented yet"),
}


def assign(x, index, value):
    """``x[index] = value`` on a traced value: ``x`` now holds the updated value.

    The previous value of ``x`` stays where it was used (records keep values,
    not the objects). A differentiated input itself cannot be updated: its
    derivative is read from it at the end; update a copy,
    ``asarray(x, copy=True)``, instead.
    """
    trace = x._trace
    if getattr(trace, "records", None) is not None and trace.records[x.index] is None:
        raise TypeError("x[i] = v on a differentiated input: update a copy instead, "
                        "e.g. x = xp.asarray(x, copy=True)")
    new = updated(x, index, value)
    if type(new) is not type(x) or new._trace is not trace:
        raise TypeError("x[i] = v: v carries a derivative of an enclosing "
                        "transformation that x does not; build a new array instead "
                        "(np.where(mask, v, x) or np.concatenate of pieces)")
    for cls in type(x).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if slot != "__weakref__":
                setattr(x, slot, getattr(new, slot))
