"""Reductions: sum, prod, max/min, cumulative sums and products, logsumexp.

Axes are normalized to a tuple of negative integers when the op is called, so
that the rules also act on tangents that carry leading batch axes. ``mean``,
``var`` and ``std`` are built from ``sum``.
"""

import numpy as np
import scipy.special as sp

from ..lazy import chunks_of
from ..registry import REDUCTION, Teaching, add_reduce, defop, register_numpy, shape_of
from .shape import broadcast_to, concatenate, getitem, normalize_axis, reshape


def keepdims_shape(shape, axis):
    """The shape of a reduction over negative ``axis`` with keepdims=True."""
    n = len(shape)
    return tuple(1 if i - n in axis else s for i, s in enumerate(shape))


def expand_to(g, x, axis, keepdims):
    """Broadcast a reduction's cotangent ``g`` back to the shape of ``x``."""
    xs = shape_of(x)
    if not keepdims:
        g = reshape(g, shape=keepdims_shape(xs, axis))
    chunks = chunks_of(x)
    if chunks is not None:  # x is lazy (dask), even traced: so is its cotangent
        return broadcast_to(g, shape=xs, chunks=chunks)
    return broadcast_to(g, shape=xs)


def _check_out(out, name, options=None):
    """Refuse ``out=`` and the reduction options dualrev does not implement
    (``where=``, ``initial=``...), rather than silently ignore them."""
    if out is not None:
        raise TypeError(f"{name}(..., out=...) cannot hold a traced value: "
                        "use the returned value instead of out=")
    if not options:
        return
    unsupported = sorted(k for k, v in options.items()
                         if not (k == "where" and v is True) and v is not np._NoValue)
    if unsupported:
        raise NotImplementedError(f"{name}: the option(s) {unsupported} are not supported "
                                  "on traced values; mask the input instead, e.g. "
                                  "np.where(mask, x, 0)")


# ---- sum -------------------------------------------------------------------

def sum_vjp(g, out, x, *, axis, keepdims):
    return expand_to(g, x, axis, keepdims)


sum_ = defop("sum", add_reduce,
             vjp=sum_vjp, linear=(0,), saves=((),), flops=REDUCTION, loop="{0} + {1}",
             teaching=Teaching(rev=("broadcast({g})",), fwd=("sum({t})",),
                               gate="sum copies the gradient to every summed element",
                               fwd_gate="sum: the tangents sum"),
             doc="Sum over negative axes. Its VJP broadcasts the cotangent back.")


def np_sum(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    _check_out(out, "sum", kwargs)
    return sum_(a, axis=normalize_axis(axis, len(shape_of(a))), keepdims=bool(keepdims))


def mean(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    _check_out(out, "mean", kwargs)
    axis = normalize_axis(axis, len(shape_of(a)))
    shape = shape_of(a)
    count = int(np.prod([shape[ax] for ax in axis]))
    return sum_(a, axis=axis, keepdims=bool(keepdims)) / count


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    _check_out(out, "var", kwargs)
    axis = normalize_axis(axis, len(shape_of(a)))
    shape = shape_of(a)
    count = int(np.prod([shape[ax] for ax in axis]))
    centered = a - sum_(a, axis=axis, keepdims=True) / count
    return sum_(centered * centered, axis=axis, keepdims=bool(keepdims)) / (count - ddof)


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    return np.sqrt(var(a, axis=axis, out=out, ddof=ddof, keepdims=keepdims, **kwargs))


register_numpy(np.sum, np_sum)
register_numpy(np.mean, mean)
register_numpy(np.var, var)
register_numpy(np.std, std)


# ---- max / min ---------------------------------------------------------------

def _winners(x, out, axis, keepdims):
    """Where x attains its max/min, each tie weighted 1/count (ties split evenly)."""
    out_kd = out if keepdims else reshape(out, shape=keepdims_shape(shape_of(x), axis))
    hit = x == out_kd  # a plain boolean array: equal is not differentiable
    return hit / add_reduce(hit, axis=axis, keepdims=True)


def extreme_jvp(t, out, x, *, axis, keepdims):
    return sum_(t * _winners(x, out, axis, keepdims), axis=axis, keepdims=keepdims)


def extreme_vjp(g, out, x, *, axis, keepdims):
    # The product broadcasts g over the reduced axes: no broadcast_to needed.
    g_kd = g if keepdims else reshape(g, shape=keepdims_shape(shape_of(x), axis))
    return g_kd * _winners(x, out, axis, keepdims)


amax = defop("amax", lambda x, *, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims),
             jvp=extreme_jvp, vjp=extreme_vjp, saves=((0, "out"),), flops=REDUCTION,
             teaching=Teaching(
                 display="max",
                 gate="max reduction routes the gradient to the maximum (ties split evenly)",
                 fwd_gate="max reduction: the maximum's tangent passes"),
             doc="Max over axes: routes the cotangent to the maximum; ties split evenly.")
amin = defop("amin", lambda x, *, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims),
             jvp=extreme_jvp, vjp=extreme_vjp, saves=((0, "out"),), flops=REDUCTION,
             teaching=Teaching(display="min"),
             doc="Min over axes: routes the cotangent to the minimum; ties split evenly.")


def np_max(a, axis=None, out=None, keepdims=False, **kwargs):
    _check_out(out, "max", kwargs)
    return amax(a, axis=normalize_axis(axis, len(shape_of(a))), keepdims=bool(keepdims))


def np_min(a, axis=None, out=None, keepdims=False, **kwargs):
    _check_out(out, "min", kwargs)
    return amin(a, axis=normalize_axis(axis, len(shape_of(a))), keepdims=bool(keepdims))


register_numpy((np.max, np.amax), np_max)
register_numpy((np.min, np.amin), np_min)


# ---- prod --------------------------------------------------------------------

def _others_product(x, axis):
    """For each element, the product of the others along ``axis`` (no division,
    so zeros are exact): exclusive cumulative products from both ends."""
    ones = np.ones(keepdims_shape(shape_of(x), (axis,)))
    n = shape_of(x)[axis]
    head = (Ellipsis, slice(0, n - 1)) + (slice(None),) * (-axis - 1)
    before = concatenate(ones, cumprod(getitem(x, index=head), axis=axis), axis=axis)
    flip = (Ellipsis, slice(None, None, -1)) + (slice(None),) * (-axis - 1)
    rev = getitem(x, index=flip)
    after = getitem(concatenate(ones, cumprod(getitem(rev, index=head), axis=axis), axis=axis),
                    index=flip)
    return before * after


def _prod_local(x, axis):
    """d prod / d x: the reduced axes flattened into one, then _others_product."""
    xs, k = shape_of(x), len(axis)
    last = tuple(range(-k, 0))
    moved = np.moveaxis(x, axis, last)
    size = int(np.prod([xs[a] for a in axis]))
    flat = reshape(moved, shape=shape_of(moved)[:len(xs) - k] + (size,))
    local = reshape(_others_product(flat, -1), shape=shape_of(moved))
    return np.moveaxis(local, last, axis)


def prod_jvp(t, out, x, *, axis, keepdims):
    return sum_(t * _prod_local(x, axis), axis=axis, keepdims=keepdims)


def prod_vjp(g, out, x, *, axis, keepdims):
    return expand_to(g, x, axis, keepdims) * _prod_local(x, axis)


prod = defop("prod", lambda x, *, axis, keepdims: np.prod(x, axis=axis, keepdims=keepdims),
             jvp=prod_jvp, vjp=prod_vjp, flops=REDUCTION,
             doc="Product over axes; exact at zeros (no division by x).")


def np_prod(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    _check_out(out, "prod", kwargs)
    return prod(a, axis=normalize_axis(axis, len(shape_of(a))), keepdims=bool(keepdims))


register_numpy(np.prod, np_prod)


# ---- cumulative ----------------------------------------------------------------

def _flip(x, axis):
    return getitem(x, index=(Ellipsis, slice(None, None, -1)) + (slice(None),) * (-axis - 1))


def cumsum_vjp(g, out, x, *, axis):
    return _flip(cumsum(_flip(g, axis), axis=axis), axis)


cumsum = defop("cumsum", lambda x, *, axis: np.cumsum(x, axis=axis), vjp=cumsum_vjp,
               linear=(0,), saves=((),), flops=REDUCTION,
               doc="Cumulative sum along a negative axis.")


def cumprod(x, *, axis):
    """Cumulative product along a negative axis, by log2(n) shifted products.

    Not a primitive: the Hillis-Steele scan multiplies each prefix by the
    prefix ``shift`` places before it, doubling ``shift``. Its derivatives are
    those of ``multiply``, so they are exact at zeros at every order (a rule
    that divides by ``x`` would give NaN there).
    """
    n = shape_of(x)[axis]
    shift = 1
    while shift < n:
        ones = np.ones(shape_of(x)[:len(shape_of(x)) + axis] + (shift,)
                       + shape_of(x)[len(shape_of(x)) + axis + 1:])
        head = (Ellipsis, slice(0, n - shift)) + (slice(None),) * (-axis - 1)
        x = x * concatenate(ones, getitem(x, index=head), axis=axis)
        shift *= 2
    return x


def _cumulative(op, name):
    def np_cumulative(a, axis=None, dtype=None, out=None):
        _check_out(out, name)
        if axis is None:
            a, axis = reshape(a, shape=(int(np.prod(shape_of(a))),)), -1
        ndim = len(shape_of(a))
        return op(a, axis=axis % ndim - ndim)
    np_cumulative.__name__ = name
    return np_cumulative


register_numpy(np.cumsum, _cumulative(cumsum, "cumsum"))
register_numpy(np.cumprod, _cumulative(cumprod, "cumprod"))


# ---- logsumexp ---------------------------------------------------------------

def logsumexp_jvp(t, out, x, *, axis, keepdims):
    return sum_(t * _softmax_from(x, out, axis, keepdims), axis=axis, keepdims=keepdims)


def logsumexp_vjp(g, out, x, *, axis, keepdims):
    return expand_to(g, x, axis, keepdims) * _softmax_from(x, out, axis, keepdims)


def _softmax_from(x, out, axis, keepdims):
    out_kd = out if keepdims else reshape(out, shape=keepdims_shape(shape_of(x), axis))
    return np.exp(x - out_kd)


logsumexp_op = defop(
    "logsumexp", lambda x, *, axis, keepdims: sp.logsumexp(x, axis=axis, keepdims=keepdims),
    jvp=logsumexp_jvp, vjp=logsumexp_vjp, saves=((0, "out"),), flops=REDUCTION,
    doc="log(sum(exp(x))) over axes, stable at any |x|; its derivative is softmax.")


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """Stable ``log(sum(exp(a)))``, differentiable in every mode.

    The counterpart of :func:`scipy.special.logsumexp`, which is a plain Python
    function that NumPy never hands to dualrev: calling SciPy's version on a
    traced value raises a ``TypeError`` (it converts its input), so call this
    one instead.

    Parameters
    ----------
    a : array_like
    axis : None or int or tuple of int
        Axes to reduce; all by default.
    b : None
        Scale factors are not supported.
    keepdims : bool
    return_sign : False
        Not supported.

    Returns
    -------
    array
        The reduction; its derivative is ``softmax(a)``, finite at any ``|a|``.

    See Also
    --------
    softmax, log_softmax

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> x = np.array([1000.0, 1000.0])
    >>> bool(np.isclose(dualrev.logsumexp(x), 1000.0 + np.log(2.0)))
    True
    >>> dualrev.grad(dualrev.logsumexp)(np.array([1000.0, -1000.0]))
    array([1., 0.])
    """
    if b is not None or return_sign:
        raise NotImplementedError("dualrev.logsumexp supports b=None and return_sign=False only")
    return logsumexp_op(a, axis=normalize_axis(axis, len(shape_of(a))), keepdims=bool(keepdims))


def softmax(x, axis=None):
    """Stable softmax, ``exp(x - logsumexp(x))``, differentiable in every mode.

    The counterpart of :func:`scipy.special.softmax` (see :func:`logsumexp`
    for why SciPy's own cannot be traced).

    Parameters
    ----------
    x : array_like
    axis : None or int or tuple of int
        Axes the probabilities sum to one over; all by default.

    Returns
    -------
    array
        Same shape as ``x``.

    See Also
    --------
    log_softmax, logsumexp

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> dualrev.softmax(np.array([0.0, np.log(3.0)]))
    array([0.25, 0.75])
    """
    return np.exp(log_softmax(x, axis=axis))


def log_softmax(x, axis=None):
    """Stable log-softmax, ``x - logsumexp(x)``, differentiable in every mode.

    The counterpart of :func:`scipy.special.log_softmax`.

    Parameters
    ----------
    x : array_like
    axis : None or int or tuple of int
        Axes to normalize over; all by default.

    Returns
    -------
    array
        Same shape as ``x``; finite at any ``|x|``.

    See Also
    --------
    softmax, logsumexp

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> dualrev.log_softmax(np.array([1000.0, 0.0]))
    array([    0., -1000.])
    """
    return x - logsumexp(x, axis=axis, keepdims=True)
