"""Elementwise NumPy ufuncs, each defined by its local derivative(s).

Unary: ``deriv(x, out)`` is ``d out / d x``; :func:`~dualrev.registry.defunary`
turns it into both the JVP (``t * deriv``) and the VJP (``g * deriv``);
``abs``, which also takes complex values (``d|z| = Re(conj(z) dz) / |z|``),
has its own two rules.
Binary: :func:`~dualrev.registry.defbinary` does the same with the two
partial derivatives and undoes broadcasting.

Non-differentiable points follow one convention, the same in both modes:
``abs'(0) = 0``, ``sqrt'(0) = inf`` with NumPy's divide-by-zero warning
(never an exception), and ``hypot`` has gradient 0 at the origin, like
``norm``.
"""

import numpy as np

from ..registry import ELEMENTWISE, Teaching, defbinary, defop, defunary

FLOAT64 = np.dtype(np.float64)
LN2 = np.log(2.0)
LN10 = np.log(10.0)

_UNARY = [
    # name, impl, deriv(x, out), what deriv reads (the tape keeps only that),
    # deriv as explain's text ({0} the argument, {o} the output; None: unnamed)
    ("exp", np.exp, lambda x, out: out, "out", "{o}"),
    ("expm1", np.expm1, lambda x, out: out + 1, "out", "({o} + 1)"),
    ("exp2", np.exp2, lambda x, out: out * LN2, "out", None),
    ("log", np.log, lambda x, out: 1 / x, "x", "(1 / {0})"),
    ("log1p", np.log1p, lambda x, out: 1 / (1 + x), "x", "(1 / (1 + {0}))"),
    ("log2", np.log2, lambda x, out: 1 / (x * LN2), "x", None),
    ("log10", np.log10, lambda x, out: 1 / (x * LN10), "x", None),
    ("sqrt", np.sqrt, lambda x, out: 0.5 / out, "out", "(0.5 / {o})"),
    ("cbrt", np.cbrt, lambda x, out: 1 / (3 * out ** 2), "out", None),
    ("square", np.square, lambda x, out: 2 * x, "x", "(2 * {0})"),
    ("reciprocal", np.reciprocal, lambda x, out: -out ** 2, "out", "(-{o}**2)"),
    ("sin", np.sin, lambda x, out: np.cos(x), "x", "cos({0})"),
    ("cos", np.cos, lambda x, out: -np.sin(x), "x", "-sin({0})"),
    ("tan", np.tan, lambda x, out: 1 + out ** 2, "out", "(1 + {o}**2)"),
    ("arcsin", np.arcsin, lambda x, out: 1 / np.sqrt(1 - x ** 2), "x", None),
    ("arccos", np.arccos, lambda x, out: -1 / np.sqrt(1 - x ** 2), "x", None),
    ("arctan", np.arctan, lambda x, out: 1 / (1 + x ** 2), "x", "(1 / (1 + {0}**2))"),
    ("sinh", np.sinh, lambda x, out: np.cosh(x), "x", "cosh({0})"),
    ("cosh", np.cosh, lambda x, out: np.sinh(x), "x", "sinh({0})"),
    ("tanh", np.tanh, lambda x, out: 1 - out ** 2, "out", "(1 - {o}**2)"),
    ("arcsinh", np.arcsinh, lambda x, out: 1 / np.sqrt(x ** 2 + 1), "x", None),
    ("arccosh", np.arccosh, lambda x, out: 1 / np.sqrt(x ** 2 - 1), "x", None),
    ("arctanh", np.arctanh, lambda x, out: 1 / (1 - x ** 2), "x", None),
]

_SHORT = {"reciprocal": "inv"}  # explain's stage names: inv1, inv2...

# The op in a fused loop body (the numba backend): the same ufunc on a scalar.
_LOOP = {"square": "{0} * {0}", "reciprocal": "1.0 / {0}"}

for _name, _impl, _deriv, _reads, _local in _UNARY:
    defunary(_name, _impl, _deriv, reads=_reads, numpy=_impl,
             loop=_LOOP.get(_name, f"np.{_impl.__name__}({{0}})"),
             teaching=Teaching(short=_SHORT.get(_name), local=(_local,)) if _local else None,
             doc=f"Elementwise {_name}; d/dx is the registry's local derivative.")


def _abs_deriv(x, out):
    """conj(x) / |x| (0 at 0); for real x, sign(x)."""
    if not isinstance(x, complex) and getattr(x, "dtype", FLOAT64).kind != "c":
        return np.sign(x)
    zero = x == 0
    return np.where(zero, 0.0, np.conj(x) / np.abs(np.where(zero, 1.0, x)))


def abs_jvp(t, out, x):
    # d|x| = Re(conj(x) / |x| dx): the real part matters for complex x only
    return np.real(t * _abs_deriv(x, out))


def abs_vjp(g, out, x):
    return g * _abs_deriv(x, out)


defop("abs", np.abs, jvp=abs_jvp, vjp=abs_vjp, saves=((0,),), numpy=np.abs,
      loop="abs({0})", flops=ELEMENTWISE, teaching=Teaching(local=("sign({0})",)),
      doc="Elementwise absolute value (modulus of a complex value); abs'(0) = 0.")


# ---- binary ------------------------------------------------------------------

def _nonzero(x):
    """x where it is not 0, else 1: a divisor that is safe at the origin."""
    return np.where(x == 0, 1.0, x)


def arctan2_dy(y, x, out):
    return x / (x * x + y * y)


def arctan2_dx(y, x, out):
    return -y / (x * x + y * y)


def hypot_dx(x, y, out):
    # x / out, taken as 0 at the origin (the convention of norm).
    return x / _nonzero(out)


def hypot_dy(x, y, out):
    return y / _nonzero(out)


def logaddexp_dx(x, y, out):
    # exp(x) / (exp(x) + exp(y)), without overflow at any |x|.
    return np.exp(x - out)


def logaddexp_dy(x, y, out):
    return np.exp(y - out)


def logaddexp2_dx(x, y, out):
    return np.exp2(x - out)


def logaddexp2_dy(x, y, out):
    return np.exp2(y - out)


def copysign_dx(x, y, out):
    # copysign(x, y) = |x| * (-1 if signbit(y) else 1); abs'(0) = 0.
    return np.sign(x) * np.where(np.signbit(y), -1.0, 1.0)


arctan2 = defbinary("arctan2", np.arctan2, arctan2_dy, arctan2_dx, numpy=np.arctan2,
                    loop="np.arctan2({0}, {1})",
                    doc="arctan2(y, x): d/dy = x / (x^2 + y^2), d/dx = -y / (x^2 + y^2).")
hypot = defbinary("hypot", np.hypot, hypot_dx, hypot_dy, numpy=np.hypot,
                  loop="np.hypot({0}, {1})",
                  doc="sqrt(x^2 + y^2): d/dx = x / out, taken as 0 at the origin.")
logaddexp = defbinary("logaddexp", np.logaddexp, logaddexp_dx, logaddexp_dy,
                      numpy=np.logaddexp, loop="np.logaddexp({0}, {1})",
                      doc="log(exp(x) + exp(y)), stable at any |x|; "
                          "logaddexp(0, x) is the softplus.")
logaddexp2 = defbinary("logaddexp2", np.logaddexp2, logaddexp2_dx, logaddexp2_dy,
                       numpy=np.logaddexp2, loop="np.logaddexp2({0}, {1})",
                       doc="log2(2**x + 2**y), stable at any |x|.")
copysign = defbinary("copysign", np.copysign, copysign_dx, None, numpy=np.copysign,
                     loop="np.copysign({0}, {1})",
                     doc="|x| with the sign of y; not differentiated in y "
                         "(piecewise constant), abs'(0) = 0 in x.")
