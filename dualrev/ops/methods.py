"""The Python operators and ndarray methods of traced values.

:mod:`dualrev.numpy_dispatch` defines the base class of traced values
without knowing any op, so that the traces (:mod:`dualrev.forward`,
:mod:`dualrev.reverse`) depend on the registry and that base only. Here the
operators (``x + y``, ``x @ W``, ``x[i]``) and methods (``x.sum()``,
``x.T``) that call ops are installed on it, once the ops are registered,
along with the NumPy functions that need no rule of their own.
"""

import numpy as np

from ..numpy_dispatch import REDUCERS, Indexable, TracedArray
from ..registry import (NO_PARAMS, NUMPY_FUNCTIONS, Op, Tracer, bind, shape_of,
                        strip_derivatives)
from . import arithmetic as ar
from . import fft, linalg, reductions, shape


def _operator(op):
    """The method and reflected method of a binary Python operator.

    With a plain operand or one of the same trace, the traced value's own
    trace processes the op directly (the hot path of scalar loops);
    otherwise ``bind`` finds the innermost trace.
    """
    def method(self, other):
        if not isinstance(other, Tracer):
            return self._trace.process_one(op, (self, other), 0)
        if other._trace is not self._trace:
            return bind(op, self, other)
        return self._trace.process(op, (self, other), NO_PARAMS)

    def reflected(self, other):
        if not isinstance(other, Tracer):
            return self._trace.process_one(op, (other, self), 1)
        if other._trace is not self._trace:
            return bind(op, other, self)
        return self._trace.process(op, (other, self), NO_PARAMS)

    method.__name__, reflected.__name__ = f"__{op.name}__", f"__r{op.name}__"
    return method, reflected


class _TracedArrayMethods:
    """Operators and methods of every traced value (copied onto TracedArray)."""

    @property
    def T(self):
        return shape.np_transpose(self)

    @property
    def mT(self):
        return linalg.mT(self)

    @property
    def real(self):
        return fft.np_real(self)

    @property
    def imag(self):
        return fft.np_imag(self)

    def conj(self):
        return fft.np_conj(self)

    conjugate = conj

    # ---- operators --------------------------------------------------------
    __add__, __radd__ = _operator(ar.add)
    __sub__, __rsub__ = _operator(ar.subtract)
    __mul__, __rmul__ = _operator(ar.multiply)
    __truediv__, __rtruediv__ = _operator(ar.divide)
    __pow__, __rpow__ = _operator(ar.power)
    __mod__, __rmod__ = _operator(ar.remainder)
    def __divmod__(self, other): return np.floor_divide(self, other), np.remainder(self, other)
    def __rdivmod__(self, other): return np.floor_divide(other, self), np.remainder(other, self)

    def __round__(self, ndigits=None):
        if ndigits is None:
            raise TypeError("round(x) of a traced value would return a Python int, "
                            "dropping the derivative: use np.round(x) (a traced value "
                            "whose derivative is zero almost everywhere) or "
                            "round(float(dualrev.stop_gradient(x))) for a plain number")
        return np.round(self, ndigits)

    def __floordiv__(self, other): return np.floor_divide(self, other)
    def __rfloordiv__(self, other): return np.floor_divide(other, self)
    def __matmul__(self, other): return linalg.np_matmul(self, other)
    def __rmatmul__(self, other): return linalg.np_matmul(other, self)
    def __neg__(self): return bind(ar.negative, self)
    def __pos__(self): return self
    def __abs__(self): return np.abs(self)
    def __lt__(self, other): return np.less(self, other)
    def __le__(self, other): return np.less_equal(self, other)
    def __gt__(self, other): return np.greater(self, other)
    def __ge__(self, other): return np.greater_equal(self, other)
    def __eq__(self, other): return np.equal(self, other)
    def __ne__(self, other): return np.not_equal(self, other)
    def __and__(self, other): return np.bitwise_and(self, other)
    def __rand__(self, other): return np.bitwise_and(other, self)
    def __or__(self, other): return np.bitwise_or(self, other)
    def __ror__(self, other): return np.bitwise_or(other, self)
    def __invert__(self): return np.invert(self)

    # ---- methods ----------------------------------------------------------
    def sum(self, axis=None, dtype=None, out=None, keepdims=False):
        return reductions.np_sum(self, axis, dtype, out, keepdims)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False):
        return reductions.mean(self, axis, dtype, out, keepdims)

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        return reductions.var(self, axis, dtype, out, ddof, keepdims)

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        return reductions.std(self, axis, dtype, out, ddof, keepdims)

    def prod(self, axis=None, dtype=None, out=None, keepdims=False):
        return reductions.np_prod(self, axis, dtype, out, keepdims)

    def max(self, axis=None, out=None, keepdims=False):
        return reductions.np_max(self, axis, out, keepdims)

    def min(self, axis=None, out=None, keepdims=False):
        return reductions.np_min(self, axis, out, keepdims)

    def cumsum(self, axis=None, dtype=None, out=None):
        return np.cumsum(self, axis=axis, out=out)

    def cumprod(self, axis=None, dtype=None, out=None):
        return np.cumprod(self, axis=axis, out=out)

    def dot(self, other):
        return linalg.dot(self, other)

    def reshape(self, *newshape, order="C"):
        if len(newshape) == 1 and not isinstance(newshape[0], (int, np.integer)):
            newshape = newshape[0]
        return shape.np_reshape(self, newshape, order)

    def ravel(self, order="C"):
        return shape.ravel(self, order)

    flatten = ravel

    def transpose(self, *axes):
        if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)):
            axes = axes[0]
        return shape.np_transpose(self, axes or None)

    def swapaxes(self, axis1, axis2):
        return shape.swapaxes(self, axis1, axis2)

    def squeeze(self, axis=None):
        return shape.squeeze(self, axis)

    def clip(self, min=None, max=None):
        return np.clip(self, min, max)

    def diagonal(self, offset=0, axis1=0, axis2=1):
        return linalg.diagonal(self, offset, axis1, axis2)

    def trace(self, offset=0, axis1=0, axis2=1):
        return linalg.trace(self, offset, axis1, axis2)

    def argmax(self, axis=None):
        return np.argmax(strip_derivatives(self), axis=axis)

    def argmin(self, axis=None):
        return np.argmin(strip_derivatives(self), axis=axis)

    def repeat(self, repeats, axis=None):
        return shape.repeat(self, repeats, axis)

    def take(self, indices, axis=None, out=None, mode="raise"):
        return shape.take(self, indices, axis, out, mode)

    def round(self, decimals=0, out=None):
        return np.round(self, decimals, out)

    def any(self, axis=None, out=None, keepdims=False):
        return np.any(strip_derivatives(self), axis=axis, out=out, keepdims=keepdims)

    def all(self, axis=None, out=None, keepdims=False):
        return np.all(strip_derivatives(self), axis=axis, out=out, keepdims=keepdims)


class _IndexableMethods:
    """Indexing of traced values with at least one axis (copied onto Indexable)."""

    def __getitem__(self, index):
        if index.__class__ is int:  # the common case of a Python loop, kept fast
            return bind(shape.getitem, self, index=(index,))
        return shape.np_getitem(self, index)


def _install(target, source):
    for name, value in vars(source).items():
        # __hash__ is None in a class that defines __eq__: the base keeps its own.
        if name not in ("__module__", "__qualname__", "__doc__", "__dict__", "__weakref__",
                        "__hash__"):
            setattr(target, name, value)


_install(TracedArray, _TracedArrayMethods)
_install(Indexable, _IndexableMethods)


def _clip(a, a_min=None, a_max=None, out=None, *, min=None, max=None, **kwargs):
    if out is not None:
        raise TypeError("clip(..., out=...) cannot hold a traced value: use the returned value")
    lo = a_min if a_min is not None else min
    hi = a_max if a_max is not None else max
    if lo is not None:
        a = np.maximum(a, lo)
    if hi is not None:
        a = np.minimum(a, hi)
    return a


def _on_primal(func):
    """Functions whose result carries no derivative read the values without
    derivatives: a non-differentiable op, so that staging records it."""
    op = Op(func.__name__, func, None, None)

    def on_primal(*args, **kwargs):
        return bind(op, *map(strip_derivatives, args), **kwargs)
    on_primal.__name__ = func.__name__
    return on_primal


REDUCERS.update({np.add: reductions.np_sum, np.multiply: reductions.np_prod,
                 np.maximum: reductions.np_max, np.minimum: reductions.np_min})

NUMPY_FUNCTIONS[np.clip] = _clip
NUMPY_FUNCTIONS[np.positive] = lambda x: x
NUMPY_FUNCTIONS[np.absolute] = NUMPY_FUNCTIONS[np.abs]
NUMPY_FUNCTIONS[np.fabs] = NUMPY_FUNCTIONS[np.abs]
for _f in (np.argmax, np.argmin, np.argsort, np.nonzero, np.flatnonzero, np.shape,
           np.ndim, np.size, np.isclose, np.allclose, np.array_equal, np.round,
           np.around, np.any, np.all, np.count_nonzero, np.argwhere):
    NUMPY_FUNCTIONS.setdefault(_f, _on_primal(_f))


def _constant_like(make):
    """np.zeros_like and friends: a plain array of the traced value's shape."""
    def constant_like(a, *args, **kwargs):
        kwargs.pop("dtype", None)
        return make(shape_of(a), *args, **kwargs)
    return constant_like


NUMPY_FUNCTIONS[np.zeros_like] = _constant_like(np.zeros)
NUMPY_FUNCTIONS[np.ones_like] = _constant_like(np.ones)
NUMPY_FUNCTIONS[np.empty_like] = _constant_like(np.zeros)
NUMPY_FUNCTIONS[np.full_like] = _constant_like(np.full)
NUMPY_FUNCTIONS[np.copy] = lambda a, *args, **kwargs: a  # traced values are immutable
