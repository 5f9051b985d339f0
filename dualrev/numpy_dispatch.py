"""How plain NumPy code reaches the registry.

Traced values (dual numbers and tape nodes) subclass :class:`TracedArray`.
NumPy hands them over through ``__array_ufunc__`` (``np.sin(x)``, ``x + a``
with an ndarray on the left) and ``__array_function__`` (``np.sum``,
``np.concatenate``, ``np.linalg.solve``); Python operators and array methods
call the registry directly. NumPy itself is never patched.
"""

import numpy as np
import scipy.special

from . import ops  # noqa: F401  (fills the registry)
from .ops import arithmetic as ar
from .ops import linalg, reductions, shape
from .registry import (NO_PARAMS, NUMPY_FUNCTIONS, Op, Tracer, bind, primal_value,
                       strip_derivatives)

REGISTRATION_HINT = ("register it with dualrev.defop(...) (a new primitive with its "
                     "derivative rules) or dualrev.register_numpy(func, implementation) "
                     "(built from existing ops); see the 'Adding an op' docs page")

CONVERSION_HINT = (
    "A traced value (one that carries a derivative) was converted to a plain "
    "NumPy array or number, which would silently drop its derivative. Common "
    "causes and fixes:\n"
    "  - np.asarray(x) / np.array(x) / float(x): keep using x directly; NumPy "
    "functions and operators accept it. To read its value without derivative, "
    "use dualrev.stop_gradient(x).\n"
    "  - a[i] = x, writing into a plain array: build the array from traced values "
    "instead, e.g. np.stack([...]), np.concatenate, or np.where(mask, x, a).\n"
    "  - scipy.special.logsumexp / softmax / log_softmax are plain Python functions "
    "that NumPy never hands to dualrev: call dualrev.logsumexp / dualrev.softmax / "
    "dualrev.log_softmax instead.\n"
    "  - a NumPy/SciPy function without a dualrev rule converted its input: "
    + REGISTRATION_HINT + ".")


def _name(func):
    name = getattr(func, "__name__", repr(func))
    if isinstance(func, np.ufunc):  # ufuncs do not say which module made them
        return f"scipy.special.{name}" if getattr(scipy.special, name, None) is func \
            else f"numpy.{name}"
    return f"{getattr(func, '__module__', None) or 'numpy'}.{name}"


class UnsupportedFunctionError(NotImplementedError):
    """A NumPy or SciPy function that dualrev has no rule for met a traced value."""


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


class TracedArray(Tracer):
    """NumPy-compatible behaviour shared by every traced value.

    Subclasses provide ``value`` (the primal, possibly itself traced).
    """

    __slots__ = ()
    __array_priority__ = 1000

    # ---- NumPy protocols --------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        impl = NUMPY_FUNCTIONS.get(ufunc)
        if not kwargs and method == "__call__" and impl.__class__ is Op:
            if len(inputs) == 1:  # np.sin(x): no trace search
                return self._trace.process_one(impl, inputs, 0)
            return bind(impl, *inputs)
        if kwargs.get("out") is not None:
            raise TypeError(f"{_name(ufunc)}(..., out=...) cannot hold a traced value: "
                            "use the returned value instead of out=")
        kwargs.pop("out", None)
        if method == "__call__" and impl is not None:
            if kwargs:
                raise NotImplementedError(
                    f"{_name(ufunc)}: keyword argument(s) {sorted(kwargs)} are not "
                    "supported on traced values")
            return impl(*inputs)
        if method == "reduce" and ufunc in _REDUCERS:
            return _REDUCERS[ufunc](*inputs, **kwargs)
        what = _name(ufunc) if method == "__call__" else f"{_name(ufunc)}.{method}"
        raise UnsupportedFunctionError(
            f"{what} has no differentiation rule in dualrev; {REGISTRATION_HINT}")

    def __array_function__(self, func, types, args, kwargs):
        impl = NUMPY_FUNCTIONS.get(func)
        if impl is None:
            raise UnsupportedFunctionError(
                f"{_name(func)} has no differentiation rule in dualrev; {REGISTRATION_HINT}")
        return impl(*args, **kwargs)

    def __array__(self, dtype=None, copy=None):
        raise TypeError(CONVERSION_HINT)

    # ---- conversions ------------------------------------------------------
    def __float__(self):
        raise TypeError(CONVERSION_HINT)

    __int__ = __complex__ = __index__ = __float__

    def __bool__(self):
        # Control flow reads the primal value (``if x > 0`` compares plain values);
        # a staged value underneath records the outcome as a guard.
        return bool(self.value)

    def __setitem__(self, index, value):
        raise TypeError("traced values are immutable: instead of x[i] = v, build a new "
                        "array, e.g. np.where(mask, v, x) or np.concatenate of pieces")

    def __hash__(self):
        return id(self)

    # ---- array attributes -------------------------------------------------
    @property
    def primal(self):
        """The innermost plain value, without any derivative."""
        return primal_value(self.value)

    @property
    def shape(self):
        return getattr(self.primal, "shape", ())

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape))

    @property
    def dtype(self):
        return np.result_type(self.primal)

    @property
    def T(self):
        return shape.np_transpose(self)

    @property
    def mT(self):
        return linalg.mT(self)

    # ---- operators --------------------------------------------------------
    __add__, __radd__ = _operator(ar.add)
    __sub__, __rsub__ = _operator(ar.subtract)
    __mul__, __rmul__ = _operator(ar.multiply)
    __truediv__, __rtruediv__ = _operator(ar.divide)
    __pow__, __rpow__ = _operator(ar.power)
    __mod__, __rmod__ = _operator(ar.remainder)
    def __floordiv__(self, other): return np.floor_divide(self, other)
    def __rfloordiv__(self, other): return np.floor_divide(other, self)
    def __matmul__(self, other): return linalg.matmul(self, other)
    def __rmatmul__(self, other): return linalg.matmul(other, self)
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

    def sort(self, axis=-1, kind=None, order=None):
        raise TypeError("traced values are immutable: x.sort() sorts in place; "
                        "use np.sort(x) instead")

    def item(self, *args):
        raise TypeError(CONVERSION_HINT)

    tolist = item

    @property
    def real(self):
        return self

    @property
    def imag(self):
        return np.zeros(self.shape)

    def conj(self):
        return self

    conjugate = conj

    def astype(self, dtype, copy=True):
        if not np.issubdtype(np.dtype(dtype), np.floating):
            raise TypeError(f"astype({np.dtype(dtype)}) would drop the derivative of a "
                            "traced value; only floating dtypes are supported")
        return self

    def copy(self):
        return self


class Indexable:
    """Indexing and iteration, for traced values with at least one axis.

    Scalar (0-d) traced values lack them on purpose: NumPy treats any object
    with ``__getitem__`` as a sequence, and ``a[i] = x`` would then fail with
    NumPy's "setting an array element with a sequence" instead of dualrev's
    explanation.
    """

    __slots__ = ()

    def __getitem__(self, index):
        if index.__class__ is int:  # the common case of a Python loop, kept fast
            return bind(shape.getitem, self, index=(index,))
        return shape.np_getitem(self, index)

    def __len__(self):
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))


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


_REDUCERS = {np.add: reductions.np_sum, np.multiply: reductions.np_prod,
             np.maximum: reductions.np_max, np.minimum: reductions.np_min}

NUMPY_FUNCTIONS[np.clip] = _clip
NUMPY_FUNCTIONS[np.positive] = lambda x: x
NUMPY_FUNCTIONS[np.absolute] = NUMPY_FUNCTIONS[np.abs]
NUMPY_FUNCTIONS[np.fabs] = NUMPY_FUNCTIONS[np.abs]
for _f in (np.argmax, np.argmin, np.argsort, np.nonzero, np.flatnonzero, np.shape,
           np.ndim, np.size, np.isclose, np.allclose, np.array_equal, np.round,
           np.around, np.any, np.all, np.count_nonzero, np.argwhere, np.searchsorted):
    NUMPY_FUNCTIONS.setdefault(_f, _on_primal(_f))


def _constant_like(make):
    """np.zeros_like and friends: a plain array of the traced value's shape."""
    def constant_like(a, *args, **kwargs):
        kwargs.pop("dtype", None)
        return make(np.shape(primal_value(a)), *args, **kwargs)
    return constant_like


NUMPY_FUNCTIONS[np.zeros_like] = _constant_like(np.zeros)
NUMPY_FUNCTIONS[np.ones_like] = _constant_like(np.ones)
NUMPY_FUNCTIONS[np.empty_like] = _constant_like(np.zeros)
NUMPY_FUNCTIONS[np.full_like] = _constant_like(np.full)
NUMPY_FUNCTIONS[np.copy] = lambda a, *args, **kwargs: a  # traced values are immutable
