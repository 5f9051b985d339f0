"""Complex intermediates (real, imag, conj) and np.fft.

Inputs and losses are real; values in between may be complex. The cotangent
of a complex value ``z = x + i y`` is ``c = dL/dx - i dL/dy`` (JAX's
convention), so that ``dL = Re(sum(c * dz))``: the VJP of a holomorphic op
is its transpose, with no conjugation, which is what every rule in the
registry already computes. Where a real value meets a complex one (``x * z``)
the backward sweep keeps the real part of the cotangent it sends to the real
value. ``np.real``, ``np.imag`` and ``np.conj`` of a real value are the value,
zeros and the value, and record nothing.

The DFT is linear and its matrix is symmetric, so the VJP of ``fft`` is
``fft`` of the cotangent (the same for ``ifft``); ``rfft`` and ``irfft`` keep
half a spectrum, and their rules zero-pad, or weigh the bins that stand for
two conjugate ones twice.
"""

import numpy as np

from ..registry import ELEMENTWISE, NO_FLOPS, defop, dtype_of, register_numpy, shape_of
from .shape import axis_index, getitem, normalize_axis


def is_complex(x):
    """Whether a plain or traced value has a complex dtype."""
    return dtype_of(x).kind == "c"


# ---- real, imag, conj ----------------------------------------------------------

real = defop("real", np.real, linear=(0,), vjp=lambda g, out, z: g, saves=((),),
             flops=NO_FLOPS, doc="Real part of a complex value; its cotangent is the output's.")
imag = defop("imag", np.imag, linear=(0,), vjp=lambda g, out, z: -1j * g, saves=((),),
             flops=NO_FLOPS,
             doc="Imaginary part of a complex value; cotangent -i g (dL = Re(c dz)).")
conj = defop("conj", np.conjugate, linear=(0,), vjp=lambda g, out, z: np.conj(g),
             saves=((),), flops=ELEMENTWISE,
             doc="Complex conjugate; the cotangent is conjugated.")


def np_real(val):
    return real(val) if is_complex(val) else val


def np_imag(val):
    return imag(val) if is_complex(val) else np.zeros(shape_of(val))


def np_conj(x, /, out=None, **kwargs):
    if out is not None or kwargs:
        raise NotImplementedError("np.conj on traced values: out= and ufunc options are "
                                  "not supported")
    return conj(x) if is_complex(x) else x


register_numpy(np.real, np_real)
register_numpy(np.imag, np_imag)
register_numpy(np.conjugate, np_conj)


# ---- fft, ifft, rfft, irfft ------------------------------------------------------

def _pad_to(x, n, axis):
    """``x`` cut or zero-padded to length ``n`` along ``axis``."""
    ndim = len(shape_of(x))
    m = shape_of(x)[axis]
    if m > n:
        return getitem(x, index=axis_index(ndim, axis, slice(0, n)))
    if m < n:
        widths = [(0, 0)] * ndim
        widths[axis % ndim] = (0, n - m)
        return np.pad(x, widths)
    return x


def fft_flops(out, x, *, axis, **params):
    """5 n log2 n per transform of length n along ``axis`` (radix-2 count)."""
    n = max(shape_of(out)[axis], shape_of(x)[axis], 2)
    return int(5 * n * np.log2(n)) * (int(np.prod(shape_of(out))) // shape_of(out)[axis] or 1)


fft = defop("fft", lambda x, *, axis, norm: np.fft.fft(x, axis=axis, norm=norm),
            linear=(0,), vjp=lambda g, out, x, *, axis, norm: fft(g, axis=axis, norm=norm),
            saves=((),), flops=fft_flops,
            doc="Discrete Fourier transform along one axis; the DFT matrix is symmetric, "
                "so the VJP is the transform itself.")
ifft = defop("ifft", lambda x, *, axis, norm: np.fft.ifft(x, axis=axis, norm=norm),
             linear=(0,), vjp=lambda g, out, x, *, axis, norm: ifft(g, axis=axis, norm=norm),
             saves=((),), flops=fft_flops, doc="Inverse DFT along one axis; its VJP is itself.")


def rfft_vjp(g, out, x, *, axis, norm):
    # The transpose of "the first n // 2 + 1 rows of the DFT": the DFT of g
    # zero-padded to n (the sweep keeps the real part: x is real).
    return fft(_pad_to(g, shape_of(x)[axis], axis), axis=axis, norm=norm)


rfft = defop("rfft", lambda x, *, axis, norm: np.fft.rfft(x, axis=axis, norm=norm),
             linear=(0,), vjp=rfft_vjp, saves=((0,),), flops=fft_flops,
             doc="DFT of a real signal along one axis, the n // 2 + 1 first bins.")


def _twice_weights(n, m, axis):
    """Bins 0 < k < n / 2 stand for themselves and their conjugates: weight 2."""
    k = np.arange(m)
    w = np.where((k > 0) & (2 * k < n), 2.0, 1.0)
    return w.reshape((m,) + (1,) * (-axis - 1))  # axis is negative


def irfft_vjp(g, out, x, *, n, axis, norm):
    # <g, irfft(dX)> = Re(sum(w * ifft(g)[:m] * dX)): the cotangent of X.
    m, ndim = shape_of(x)[axis], len(shape_of(x))
    spectrum = getitem(ifft(g, axis=axis, norm=norm),
                       index=axis_index(ndim, axis, slice(0, m)))
    return spectrum * _twice_weights(n, m, axis)


irfft = defop("irfft", lambda x, *, n, axis, norm: np.fft.irfft(x, n, axis=axis, norm=norm),
              linear=(0,), vjp=irfft_vjp, saves=((0,),), flops=fft_flops,
              doc="Real signal of length n from its n // 2 + 1 first DFT bins "
                  "(the imaginary parts of bin 0 and of bin n / 2 are ignored).")


def _check_norm(norm):
    if norm not in (None, "backward", "ortho", "forward"):
        raise ValueError(f'Invalid norm value {norm}; should be "backward", "ortho" or '
                         '"forward".')
    return norm or "backward"


def _transform(op):
    def transform(a, n=None, axis=-1, norm=None, out=None):
        if out is not None:
            raise TypeError(f"np.fft.{op.name}(..., out=...) cannot hold a traced value")
        # negative: unchanged by leading batch axes of tangents
        (axis,) = normalize_axis(axis, len(shape_of(a)))
        if n is not None:
            a = _pad_to(a, n, axis)
        if op is rfft and is_complex(a):
            raise TypeError("np.fft.rfft on traced values: the input must be real")
        return op(a, axis=axis, norm=_check_norm(norm))
    transform.__name__ = op.name
    return transform


def np_irfft(a, n=None, axis=-1, norm=None, out=None):
    if out is not None:
        raise TypeError("np.fft.irfft(..., out=...) cannot hold a traced value")
    (axis,) = normalize_axis(axis, len(shape_of(a)))
    n = 2 * (shape_of(a)[axis] - 1) if n is None else n
    return irfft(_pad_to(a, n // 2 + 1, axis), n=n, axis=axis, norm=_check_norm(norm))


register_numpy(np.fft.fft, _transform(fft))
register_numpy(np.fft.ifft, _transform(ifft))
register_numpy(np.fft.rfft, _transform(rfft))
register_numpy(np.fft.irfft, np_irfft)
