"""How plain NumPy code reaches the registry.

Traced values (dual numbers and tape nodes) subclass :class:`TracedArray`.
NumPy hands them over through ``__array_ufunc__`` (``np.sin(x)``, ``x + a``
with an ndarray on the left) and ``__array_function__`` (``np.sum``,
``np.concatenate``, ``np.linalg.solve``); Python operators and array methods
call the registry directly. NumPy itself is never patched.

This module is the base that the traces build on and knows no op: the
Python operators and the ndarray methods of traced values, which call ops,
are installed by :mod:`dualrev.ops.methods` when the ops are registered.
"""

import numpy as np
import scipy.special

from .lazy import LazyEvaluationError, is_lazy
from .registry import NUMPY_FUNCTIONS, Op, Tracer, bind
from .tree import flatten

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
    "  - SciPy functions written for the array API standard (scipy.optimize.rosen, "
    "scipy.special.logsumexp / softmax / log_softmax, ...) differentiate only when "
    "the environment variable SCIPY_ARRAY_API=1 is set before SciPy is first "
    "imported (before importing dualrev, which imports SciPy); or call "
    "dualrev.logsumexp / dualrev.softmax / dualrev.log_softmax instead.\n"
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


#: ufunc -> the function that implements its ``reduce`` (``np.add.reduce(x)``).
REDUCERS = {}


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
        if method == "reduce" and ufunc in REDUCERS:
            return REDUCERS[ufunc](*inputs, **kwargs)
        what = _name(ufunc) if method == "__call__" else f"{_name(ufunc)}.{method}"
        staging = _staging_only(inputs, kwargs)
        if staging is not None:  # no derivative involved: record the call as it is
            return staging.call(getattr(ufunc, method), inputs, kwargs, what)
        raise UnsupportedFunctionError(
            f"{what} has no differentiation rule in dualrev; {REGISTRATION_HINT}")

    def __array_function__(self, func, types, args, kwargs):
        impl = NUMPY_FUNCTIONS.get(func)
        if impl is None:
            staging = _staging_only(args, kwargs)
            if staging is not None:  # no derivative involved: record the call as it is
                return staging.call(func, args, kwargs, _name(func))
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
        if is_lazy(self.primal):
            raise LazyEvaluationError(
                "a traced dask value was used in control flow (if / while / and / or): "
                "that would compute the whole graph inside the traced function. Use "
                "np.where(condition, a, b) to stay lazy, or decide on NumPy values")
        return bool(self.value)

    def __setitem__(self, index, value):
        from .array_api import assign  # x[i] = v rebinds x to the updated value
        assign(self, index, value)

    def __array_namespace__(self, api_version=None):
        from . import array_api
        return array_api

    def __hash__(self):
        return id(self)

    # ---- array attributes -------------------------------------------------
    @property
    def primal(self):
        """The innermost plain value, without any derivative (for its shape
        and dtype: read as a value, use :func:`~dualrev.registry.primal_value`)."""
        x = self.value
        while isinstance(x, Tracer):
            x = x.value
        return x

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

    def sort(self, axis=-1, kind=None, order=None):
        raise TypeError("traced values are immutable: x.sort() sorts in place; "
                        "use np.sort(x) instead")

    def item(self, *args):
        raise TypeError(CONVERSION_HINT)

    tolist = item

    def astype(self, dtype, copy=True):
        if not np.issubdtype(np.dtype(dtype), np.floating):
            raise TypeError(f"astype({np.dtype(dtype)}) would drop the derivative of a "
                            "traced value; only floating dtypes are supported")
        return self

    def copy(self):
        return self


def _staging_only(args, kwargs):
    """The staging trace (:func:`dualrev.compile`) if every traced value in
    ``args`` and ``kwargs`` is staged and none carries a derivative, else None:
    then a NumPy function without a rule may run as it is, recorded."""
    trace = None
    for leaf in flatten((args, kwargs))[0]:
        if isinstance(leaf, Tracer):
            if not leaf.staged:
                return None
            trace = leaf._trace
    return trace


class Indexable:
    """Indexing and iteration, for traced values with at least one axis.

    Scalar (0-d) traced values lack them on purpose: NumPy treats any object
    with ``__getitem__`` as a sequence, and ``a[i] = x`` would then fail with
    NumPy's "setting an array element with a sequence" instead of dualrev's
    explanation.
    """

    __slots__ = ()

    def __len__(self):
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))
