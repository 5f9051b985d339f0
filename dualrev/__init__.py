"""dualrev: forward and reverse automatic differentiation of plain NumPy code.

Write ordinary NumPy (``np.sin(x)``, ``x @ W``, ``x.sum()``, ``x[1:]``) and
differentiate it in either direction; compose the directions for
Hessian-vector products.
"""

from . import ops  # noqa: F401  (first: fills the registry, gives traced values methods)
from .api import (choose_mode, derivative, grad, jacfwd, jacobian, jacrev, jvp,
                  stop_gradient, value_and_grad, vjp)
from .hvp import HVPOperator, HVPProgram, hessian, hvp, hvp_operator, value_grad_hvp
from .finite import NonFiniteError
from .operators import gauss_newton_operator, jacobian_operator
from .curvature import hessian_diagonal, hessian_eigs, hessian_trace
from .comparison import compare
from .teaching import check_backprop, explain
from .numpy_dispatch import UnsupportedFunctionError
from . import optimize
from .compiled import compile
from . import codegen as _codegen
from .ops.reductions import log_softmax, logsumexp, softmax
from .core import EscapedTracerError
from .registry import (OPS, defbinary, defnondiff, defop, defunary, register_numpy,
                       unregister_numpy)

__version__ = "0.1.0"

_codegen.BUILTIN.update(OPS)  # generated source spells out only these op names

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "jacfwd", "jacrev", "jacobian",
           "choose_mode", "derivative", "stop_gradient", "defop", "defunary",
           "defbinary", "defnondiff", "register_numpy", "unregister_numpy", "OPS",
           "EscapedTracerError",
           "UnsupportedFunctionError", "logsumexp", "softmax", "log_softmax",
           "hvp", "hvp_operator", "value_grad_hvp", "hessian", "HVPOperator", "HVPProgram",
           "explain", "check_backprop", "optimize", "compare", "compile",
           "NonFiniteError", "jacobian_operator", "gauss_newton_operator",
           "hessian_diagonal", "hessian_eigs", "hessian_trace"]
