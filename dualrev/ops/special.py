"""scipy.special ufuncs: expit, logit, erf, erfc, log_expit, gammaln,
polygamma, xlogy and xlog1py.

``logsumexp``, ``softmax`` and ``log_softmax`` live in
:mod:`dualrev.ops.reductions`: SciPy's versions are plain Python functions
that NumPy never dispatches, so dualrev exposes its own
(``dualrev.logsumexp``...).
"""

import numpy as np
import scipy.special as sp

from ..registry import ELEMENTWISE, Teaching, defbinary, defop, defunary, register_numpy

TWO_OVER_SQRT_PI = 2.0 / np.sqrt(np.pi)

_UNARY = [
    # name, impl, deriv(x, out), what deriv reads (the tape keeps only that)
    ("expit", sp.expit, lambda x, out: out * (1 - out), "out"),
    ("logit", sp.logit, lambda x, out: 1 / (x * (1 - x)), "x"),
    ("erf", sp.erf, lambda x, out: TWO_OVER_SQRT_PI * np.exp(-x ** 2), "x"),
    ("erfc", sp.erfc, lambda x, out: -TWO_OVER_SQRT_PI * np.exp(-x ** 2), "x"),
    ("log_expit", sp.log_expit, lambda x, out: sp.expit(-x), "x"),
]

# In a fused loop body: scipy.special's expit formula, math's erf (the
# others end a fused run).
_LOOP = {"expit": "np.exp({0}) / (1.0 + np.exp({0})) if {0} < 0 else 1.0 / (1.0 + np.exp(-{0}))",
         "erf": "math.erf({0})", "erfc": "math.erfc({0})"}

_TEACHING = {"expit": Teaching(short="sig", display="sigmoid", local=("((1 - {o}) * {o})",),
                               gate="sigmoid: local gradient (1 - s) s",
                               fwd_gate="sigmoid: s' = (1 - s) s x'")}

for _name, _impl, _deriv, _reads in _UNARY:
    defunary(_name, _impl, _deriv, reads=_reads, numpy=_impl, teaching=_TEACHING.get(_name),
             loop=_LOOP.get(_name),
             doc=f"Elementwise scipy.special.{_name}.")


# ---- gamma family --------------------------------------------------------------

def polygamma_jvp(t, out, x, *, n):
    return t * polygamma(x, n=n + 1)


def polygamma_vjp(g, out, x, *, n):
    return g * polygamma(x, n=n + 1)


def _polygamma_impl(x, *, n):
    return sp.polygamma(n, x)


polygamma = defop("polygamma", _polygamma_impl, jvp=polygamma_jvp, vjp=polygamma_vjp,
                  flops=ELEMENTWISE,
                  doc="polygamma(x, n=n): the n-th derivative of digamma.")


def digamma(x):
    return polygamma(x, n=0)


register_numpy(sp.psi, digamma)  # scipy.special.digamma is the same ufunc


def gammaln_deriv(x, out):
    return digamma(x)


defunary("gammaln", sp.gammaln, gammaln_deriv, numpy=sp.gammaln,
         doc="log |Gamma(x)|; its derivative is digamma.")


# ---- x * log(y) ------------------------------------------------------------------

def xlogy_dx(x, y, out):
    # log(y) also where x == 0: xlogy(x, y) is linear in x.
    return np.log(y)


def xlogy_dy(x, y, out):
    # x / y, taken as 0 where x == 0 (xlogy(0, y) = 0 for every y).
    return x / np.where(x == 0, 1.0, y)


def xlog1py_dx(x, y, out):
    return np.log1p(y)


def xlog1py_dy(x, y, out):
    return x / np.where(x == 0, 1.0, 1 + y)


xlogy = defbinary("xlogy", sp.xlogy, xlogy_dx, xlogy_dy, numpy=sp.xlogy,
                  doc="x * log(y), 0 where x == 0; d/dx = log(y) there too.")
xlog1py = defbinary("xlog1py", sp.xlog1py, xlog1py_dx, xlog1py_dy, numpy=sp.xlog1py,
                    doc="x * log1p(y), 0 where x == 0; d/dx = log1p(y) there too.")
