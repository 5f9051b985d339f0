"""Unary elementwise functions, each defined by its local derivative.

``deriv(x, out)`` is ``d out / d x``; :func:`~dualrev.registry.defunary`
turns it into both the JVP (``t * deriv``) and the VJP (``g * deriv``).
Non-differentiable points follow one convention: ``abs'(0) = 0``, and
``sqrt'(0) = inf`` with NumPy's divide-by-zero warning.
"""

import numpy as np
import scipy.special as sp

from ..registry import defop, defunary

LN2 = np.log(2.0)
LN10 = np.log(10.0)
TWO_OVER_SQRT_PI = 2.0 / np.sqrt(np.pi)

_UNARY = [
    # name, impl, deriv(x, out)
    ("abs", np.abs, lambda x, out: np.sign(x)),
    ("exp", np.exp, lambda x, out: out),
    ("expm1", np.expm1, lambda x, out: out + 1),
    ("exp2", np.exp2, lambda x, out: out * LN2),
    ("log", np.log, lambda x, out: 1 / x),
    ("log1p", np.log1p, lambda x, out: 1 / (1 + x)),
    ("log2", np.log2, lambda x, out: 1 / (x * LN2)),
    ("log10", np.log10, lambda x, out: 1 / (x * LN10)),
    ("sqrt", np.sqrt, lambda x, out: 0.5 / out),
    ("cbrt", np.cbrt, lambda x, out: 1 / (3 * out ** 2)),
    ("square", np.square, lambda x, out: 2 * x),
    ("reciprocal", np.reciprocal, lambda x, out: -out ** 2),
    ("sin", np.sin, lambda x, out: np.cos(x)),
    ("cos", np.cos, lambda x, out: -np.sin(x)),
    ("tan", np.tan, lambda x, out: 1 + out ** 2),
    ("arcsin", np.arcsin, lambda x, out: 1 / np.sqrt(1 - x ** 2)),
    ("arccos", np.arccos, lambda x, out: -1 / np.sqrt(1 - x ** 2)),
    ("arctan", np.arctan, lambda x, out: 1 / (1 + x ** 2)),
    ("sinh", np.sinh, lambda x, out: np.cosh(x)),
    ("cosh", np.cosh, lambda x, out: np.sinh(x)),
    ("tanh", np.tanh, lambda x, out: 1 - out ** 2),
    ("arcsinh", np.arcsinh, lambda x, out: 1 / np.sqrt(x ** 2 + 1)),
    ("arccosh", np.arccosh, lambda x, out: 1 / np.sqrt(x ** 2 - 1)),
    ("arctanh", np.arctanh, lambda x, out: 1 / (1 - x ** 2)),
    ("expit", sp.expit, lambda x, out: out * (1 - out)),
    ("logit", sp.logit, lambda x, out: 1 / (x * (1 - x))),
    ("erf", sp.erf, lambda x, out: TWO_OVER_SQRT_PI * np.exp(-x ** 2)),
    ("erfc", sp.erfc, lambda x, out: -TWO_OVER_SQRT_PI * np.exp(-x ** 2)),
    ("log_expit", sp.log_expit, lambda x, out: sp.expit(-x)),
]

for _name, _impl, _deriv in _UNARY:
    defunary(_name, _impl, _deriv, numpy=_impl,
             doc=f"Elementwise {_name}; d/dx is the registry's local derivative.")

_ALIASES = {np.absolute: "abs", np.fabs: "abs", np.positive: None}


def polygamma_vjp(g, out, x, *, n):
    return g * polygamma(x, n=n + 1)


def polygamma_jvp(t, out, x, *, n):
    return t * polygamma(x, n=n + 1)


def _polygamma_impl(x, *, n):
    return sp.polygamma(n, x)


polygamma = defop("polygamma", _polygamma_impl, jvp=polygamma_jvp, vjp=polygamma_vjp,
                  doc="polygamma(x, n=n): the n-th derivative of digamma.")


def gammaln_deriv(x, out):
    return polygamma(x, n=0)


defunary("gammaln", sp.gammaln, gammaln_deriv, numpy=sp.gammaln,
         doc="log |Gamma(x)|; its derivative is digamma.")
