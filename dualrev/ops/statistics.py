"""Statistics and 1-D signal functions, as composites of existing ops.

np.average, np.median/np.percentile/np.quantile, np.nansum/np.nanmean/
np.nanmax/np.nanmin, np.interp, np.convolve/np.correlate, np.polyval,
np.trapezoid, np.cumulative_sum; np.searchsorted and np.digitize are
declared non-differentiable.

Order statistics (median, quantiles) sort the values: the gradient goes to
the selected elements, weighted by the interpolation weights of the method
(for ``'linear'``, ``1 - frac`` and ``frac`` to the two neighbours), and the
quantile level ``q`` is differentiable too. np.interp is piecewise linear:
at a knot its derivative in ``x`` is the slope of the piece on the right
(the last piece at the last knot).
"""

import math

import numpy as np

from ..registry import defnondiff, primal_value, register_numpy, shape_of
from .shape import axis_index, broadcast_to, getitem, normalize_axis, reshape


def _float_array(x):
    """A plain list or tuple as an array; traced values and arrays unchanged."""
    return np.asarray(x, dtype=float) if isinstance(x, (list, tuple)) else x


# ---- average -------------------------------------------------------------------

def average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    a = _float_array(a)
    if weights is None:
        avg = np.mean(a, axis=axis, keepdims=keepdims)
        scale = np.full(shape_of(avg), math.prod(shape_of(a)) / math.prod(shape_of(avg)))
        return (avg, scale) if returned else avg
    w = _float_array(weights)
    shape, wshape = shape_of(a), shape_of(w)
    if wshape != shape:
        if axis is None:
            raise TypeError("Axis must be specified when shapes of a and weights differ.")
        if len(wshape) != 1 or not isinstance(axis, (int, np.integer)):
            raise TypeError("1D weights expected when shapes of a and weights differ.")
        if wshape[0] != shape[axis]:
            raise ValueError("Length of weights not compatible with specified axis.")
        axis = axis % len(shape)
        w = reshape(w, shape=tuple(n if i == axis else 1 for i, n in enumerate(shape)))
    scale = np.sum(broadcast_to(w, shape=shape) if shape_of(w) != shape else w,
                   axis=axis, keepdims=keepdims)
    avg = np.sum(a * w, axis=axis, keepdims=keepdims) / scale
    return (avg, scale) if returned else avg


register_numpy(np.average, average)


# ---- quantiles -----------------------------------------------------------------

def _on_last_axis(a, axis):
    """``a`` with the reduced axes merged into one last axis, and the shape a
    keepdims result has (the reduced axes kept with size 1)."""
    shape = shape_of(a)
    axes = tuple(ax % len(shape) for ax in normalize_axis(axis, len(shape)))
    kept = tuple(1 if i in axes else n for i, n in enumerate(shape))
    rest = [i for i in range(len(shape)) if i not in axes]
    a = np.transpose(a, rest + list(axes))
    return reshape(a, shape=tuple(shape[i] for i in rest) + (-1,)), kept


def _positions(q, n, method):
    """The sorted positions each level ``q`` reads, and the weight of the
    second one (traced when ``q`` is; None when only the first is read)."""
    pos = q * (n - 1)
    p = np.asarray(primal_value(pos), dtype=float)
    lo = np.clip(np.floor(p), 0, n - 1).astype(np.intp)
    hi = np.minimum(lo + 1, n - 1)
    if method == "linear":
        return lo, hi, pos - lo
    if method == "lower":
        return lo, lo, None
    if method == "higher":
        return np.ceil(p).astype(np.intp), None, None
    if method == "nearest":
        return np.around(p).astype(np.intp), None, None
    if method == "midpoint":
        return lo, np.ceil(p).astype(np.intp), 0.5
    raise NotImplementedError(f"np.quantile on traced values: method={method!r} is not "
                              "supported (use linear, lower, higher, nearest or midpoint)")


def quantile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
             keepdims=False, *, weights=None, interpolation=None):
    if out is not None or weights is not None or interpolation is not None:
        raise NotImplementedError("np.quantile on traced values: out=, weights= and "
                                  "interpolation= are not supported")
    a, q = _float_array(a), _float_array(q)
    qv = np.asarray(primal_value(q))
    if np.any((qv < 0) | (qv > 1)):
        raise ValueError("Quantiles must be in the range [0, 1]")
    flat, kept = _on_last_axis(a, axis)
    s = np.sort(flat, axis=-1)
    lo, hi, frac = _positions(q, shape_of(flat)[-1], method)
    res = getitem(s, index=(Ellipsis, lo))
    if frac is not None:
        res = res + frac * (getitem(s, index=(Ellipsis, hi)) - res)
    nq = len(qv.shape)
    if nq:  # the levels' axes first, as NumPy puts them
        res = np.moveaxis(res, tuple(range(-nq, 0)), tuple(range(nq)))
    if keepdims:
        res = reshape(res, shape=qv.shape + kept)
    return res


def percentile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
               keepdims=False, *, weights=None, interpolation=None):
    return quantile(a, _float_array(q) / 100, axis, out, overwrite_input, method, keepdims,
                    weights=weights, interpolation=interpolation)


def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    return quantile(a, 0.5, axis, out, overwrite_input, keepdims=keepdims)


register_numpy(np.quantile, quantile)
register_numpy(np.percentile, percentile)
register_numpy(np.median, median)


# ---- nan-ignoring reductions ------------------------------------------------------

def _check_plain_options(name, out=None, **options):
    if out is not None or any(v is not None for v in options.values()):
        raise NotImplementedError(f"np.{name} on traced values: out= and "
                                  f"{sorted(options)} are not supported")


def nansum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    _check_plain_options("nansum", out, initial=initial, where=where)
    return np.sum(np.where(np.isnan(a), 0.0, a), axis=axis, keepdims=keepdims)


def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
    _check_plain_options("nanmean", out, where=where)
    count = np.sum(~np.isnan(a), axis=axis, keepdims=keepdims)
    return nansum(a, axis=axis, keepdims=keepdims) / count


def _nan_extreme(reduce, fill, name):
    def nan_extreme(a, axis=None, out=None, keepdims=False, initial=None, where=None):
        _check_plain_options(name, out, initial=initial, where=where)
        missing = np.isnan(a)
        res = reduce(np.where(missing, fill, a), axis=axis, keepdims=keepdims)
        return np.where(np.all(missing, axis=axis, keepdims=keepdims), np.nan, res)
    nan_extreme.__name__ = name
    return nan_extreme


register_numpy(np.nansum, nansum)
register_numpy(np.nanmean, nanmean)
register_numpy(np.nanmax, _nan_extreme(np.max, -np.inf, "nanmax"))
register_numpy(np.nanmin, _nan_extreme(np.min, np.inf, "nanmin"))


# ---- searchsorted, digitize (non-differentiable) ------------------------------------

searchsorted_op = defnondiff(
    "searchsorted", lambda a, v, *, side: np.searchsorted(a, v, side=side),
    doc="Insertion indices: piecewise constant in a and v, not differentiated.")
digitize_op = defnondiff(
    "digitize", lambda x, bins, *, right: np.digitize(x, bins, right=right),
    doc="Bin indices: piecewise constant in x and bins, not differentiated.")


def searchsorted(a, v, side="left", sorter=None):
    if sorter is not None:
        a = np.take(a, sorter)
    return searchsorted_op(a, v, side=side)


register_numpy(np.searchsorted, searchsorted)
register_numpy(np.digitize, lambda x, bins, right=False: digitize_op(x, bins, right=right))


# ---- interp -----------------------------------------------------------------------

def interp(x, xp, fp, left=None, right=None, period=None):
    if period is not None:
        raise NotImplementedError("np.interp on traced values: period= is not supported")
    x, xp, fp = _float_array(x), _float_array(xp), _float_array(fp)
    xs, knots = np.asarray(primal_value(x)), np.asarray(primal_value(xp))
    if len(knots.shape) != 1 or shape_of(fp) != knots.shape:
        raise ValueError("fp and xp are not of the same length.")
    piece = np.clip(np.searchsorted(knots, xs, side="right") - 1, 0, max(len(knots) - 2, 0))
    nxt = np.minimum(piece + 1, len(knots) - 1)
    x0, x1 = getitem(xp, index=(piece,)), getitem(xp, index=(nxt,))
    f0, f1 = getitem(fp, index=(piece,)), getitem(fp, index=(nxt,))
    width = np.where(nxt == piece, 1.0, x1 - x0)
    res = f0 + (x - x0) * ((f1 - f0) / width)
    first, last = getitem(fp, index=(0,)), getitem(fp, index=(-1,))
    res = np.where(xs < knots[0], first if left is None else left, res)
    return np.where(xs > knots[-1], last if right is None else right, res)


register_numpy(np.interp, interp)


# ---- convolve, correlate, polyval, trapezoid, cumulative_sum --------------------------

def _full_convolution(a, v):
    """out[k] = sum_j a[j] v[k - j], as one product with a gathered matrix of v."""
    n, m = shape_of(a)[0], shape_of(v)[0]
    k = np.arange(n + m - 1)[:, None] - np.arange(n)[None, :]
    gather = np.where((k >= 0) & (k < m), k, m)  # m reads the appended zero
    padded = np.concatenate([v, np.zeros(1)])
    return np.sum(a * getitem(padded, index=(gather,)), axis=1)


def convolve(a, v, mode="full"):
    a, v = _float_array(a), _float_array(v)
    n, m = shape_of(a)[0] if shape_of(a) else 0, shape_of(v)[0] if shape_of(v) else 0
    if len(shape_of(a)) != 1 or len(shape_of(v)) != 1:
        raise ValueError("object too deep for desired array")
    if not n or not m:
        raise ValueError("a cannot be empty" if not n else "v cannot be empty")
    full = _full_convolution(a, v)
    if mode == "full":
        return full
    if mode == "same":
        start = (min(n, m) - 1) // 2
        return getitem(full, index=(slice(start, start + max(n, m)),))
    if mode == "valid":
        return getitem(full, index=(slice(min(n, m) - 1, max(n, m)),))
    raise ValueError(f"mode must be one of 'valid', 'same', or 'full' (got {mode!r})")


def correlate(a, v, mode="valid"):
    v = _float_array(v)
    if shape_of(v) and shape_of(_float_array(a)) and shape_of(v)[0] > shape_of(a)[0]:
        # NumPy swaps the operands and reverses the result
        return getitem(convolve(v, getitem(a, index=(slice(None, None, -1),)), mode),
                       index=(slice(None, None, -1),))
    return convolve(a, getitem(v, index=(slice(None, None, -1),)), mode)


register_numpy(np.convolve, convolve)
register_numpy(np.correlate, correlate)


def polyval(p, x):
    p, x = _float_array(p), _float_array(x)
    coefficients = [getitem(p, index=(i,)) for i in range(shape_of(p)[0])]
    y = coefficients[0] * np.ones(shape_of(x))
    for c in coefficients[1:]:  # Horner
        y = y * x + c
    return y


register_numpy(np.polyval, polyval)


def trapezoid(y, x=None, dx=1.0, axis=-1):
    y = _float_array(y)
    ndim = len(shape_of(y))
    if x is None:
        d = dx
    else:
        d = np.diff(_float_array(x), axis=axis if len(shape_of(x)) > 1 else -1)
        if len(shape_of(d)) == 1 and ndim > 1:
            d = reshape(d, shape=tuple(-1 if i == axis % ndim else 1 for i in range(ndim)))
    upper = getitem(y, index=axis_index(ndim, axis, slice(1, None)))
    lower = getitem(y, index=axis_index(ndim, axis, slice(None, -1)))
    return np.sum(d * (upper + lower) / 2.0, axis=axis)


register_numpy(np.trapezoid, trapezoid)


def cumulative_sum(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
    if out is not None:
        raise TypeError("cumulative_sum(..., out=...) cannot hold a traced value: "
                        "use the returned value instead of out=")
    ndim = len(shape_of(x))
    if axis is None:
        if ndim > 1:
            raise ValueError("For arrays which have more than one dimension ``axis`` "
                             "argument is required.")
        axis = 0
    res = np.cumsum(x, axis=axis)
    if include_initial:
        shape = tuple(1 if i == axis % ndim else n for i, n in enumerate(shape_of(x)))
        res = np.concatenate([np.zeros(shape), res], axis=axis)
    return res


register_numpy(np.cumulative_sum, cumulative_sum)
