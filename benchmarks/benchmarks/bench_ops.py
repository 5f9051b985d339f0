"""Every registered primitive: one reverse (VJP) and one forward (JVP) pass.

Each differentiable op in ``dualrev.OPS`` is benchmarked on a small input
(64 elements or an 8 x 8 matrix), called through the op itself, so the
figures are the per-op cost of recording, sweeping and pushing a tangent.
Like numpy's ``bench_ufunc.py``, importing this module fails when a
registered differentiable op has no entry in :data:`INPUTS`: a new op must
come with its benchmark input.
"""

import numpy as np

import dualrev

from .common import rng

N = 64
SIDE = 8


def _vec(low=-2.0, high=2.0, seed=0):
    return rng(seed).uniform(low, high, N)


def _spd(seed=0):
    a = rng(seed).standard_normal((SIDE, SIDE))
    return a @ a.T + SIDE * np.eye(SIDE)


def _unary(low=-2.0, high=2.0, **params):
    return lambda: ([_vec(low, high)], params, 0)


def _binary(low=-2.0, high=2.0, low_y=None, high_y=None):
    low_y = low if low_y is None else low_y
    high_y = high if high_y is None else high_y
    return lambda: ([_vec(low, high), _vec(low_y, high_y, seed=1)], {}, 0)


def _matrix(**params):
    return lambda: ([rng(0).standard_normal((SIDE, SIDE))], params, 0)


_POSITIVE = dict(low=0.5, high=2.0)
_INSIDE_UNIT = dict(low=-0.9, high=0.9)

#: op name -> builder of ``(args, params, argnum)``: the op is applied to
#: ``args`` with ``params`` and differentiated in ``args[argnum]``.
INPUTS = {
    "add": _binary(), "subtract": _binary(), "multiply": _binary(),
    "divide": _binary(low_y=0.5, high_y=2.0), "power": _binary(**_POSITIVE),
    "remainder": _binary(low_y=0.5, high_y=2.0), "maximum": _binary(),
    "minimum": _binary(), "fmax": _binary(), "fmin": _binary(),
    "arctan2": _binary(), "hypot": _binary(), "logaddexp": _binary(),
    "logaddexp2": _binary(), "copysign": _binary(),
    "xlogy": _binary(**_POSITIVE), "xlog1py": _binary(**_POSITIVE),
    "where": lambda: ([_vec() > 0, _vec(), _vec(seed=1)], {}, 1),
    "negative": _unary(), "abs": _unary(), "exp": _unary(), "expm1": _unary(),
    "exp2": _unary(), "log": _unary(**_POSITIVE), "log1p": _unary(**_POSITIVE),
    "log2": _unary(**_POSITIVE), "log10": _unary(**_POSITIVE),
    "sqrt": _unary(**_POSITIVE), "cbrt": _unary(**_POSITIVE), "square": _unary(),
    "reciprocal": _unary(**_POSITIVE), "sin": _unary(), "cos": _unary(),
    "tan": _unary(-1.0, 1.0), "arcsin": _unary(**_INSIDE_UNIT),
    "arccos": _unary(**_INSIDE_UNIT), "arctan": _unary(), "sinh": _unary(),
    "cosh": _unary(), "tanh": _unary(), "arcsinh": _unary(),
    "arccosh": _unary(1.5, 3.0), "arctanh": _unary(**_INSIDE_UNIT),
    "expit": _unary(), "logit": _unary(0.1, 0.9), "erf": _unary(), "erfc": _unary(),
    "log_expit": _unary(), "gammaln": _unary(**_POSITIVE),
    "polygamma": _unary(0.5, 2.0, n=1),
    "reshape": _unary(shape=(SIDE, SIDE)),
    "transpose": _matrix(axes=(1, 0)),
    "broadcast_to": _unary(shape=(4, N)),
    "concatenate": lambda: ([_vec(), _vec(seed=1)], {"axis": -1}, 0),
    "getitem": _unary(index=(slice(1, None, 2),)),
    "untake": lambda: ([_vec()], {"index": (slice(0, 2 * N, 2),), "shape": (2 * N,)}, 0),
    "matmul": lambda: ([rng(0).standard_normal((SIDE, SIDE)),
                        rng(1).standard_normal((SIDE, SIDE))], {}, 0),
    "einsum": lambda: ([rng(0).standard_normal((SIDE, SIDE)),
                        rng(1).standard_normal((SIDE, SIDE))],
                       {"inputs": ("ij", "jk"), "output": "ik"}, 0),
    "sum": _unary(axis=(-1,), keepdims=False), "amax": _unary(axis=(-1,), keepdims=False),
    "amin": _unary(axis=(-1,), keepdims=False),
    "prod": _unary(0.5, 1.5, axis=(-1,), keepdims=False),
    "cumsum": _unary(axis=-1), "cumprod": _unary(0.5, 1.5, axis=-1),
    "logsumexp": _unary(axis=(-1,), keepdims=False),
    "inv": lambda: ([_spd()], {}, 0), "det": lambda: ([_spd()], {}, 0),
    "logabsdet": lambda: ([_spd()], {}, 0), "cholesky": lambda: ([_spd()], {}, 0),
    "solve": lambda: ([_spd(), rng(1).standard_normal((SIDE, 1))], {}, 0),
    "eigvalsh": lambda: ([_spd()], {"UPLO": "L"}, 0),
    "eigvecs": lambda: ([_spd()], {"UPLO": "L"}, 0),
}


def differentiable_ops():
    """Names of the registered ops that have derivative rules."""
    return sorted(name for name, op in dualrev.OPS.items()
                  if op.differentiable and not name.endswith("_example"))


_missing = [name for name in differentiable_ops() if name not in INPUTS]
if _missing:
    raise RuntimeError(f"bench_ops.INPUTS has no benchmark input for the registered "
                       f"op(s) {_missing}: add one")


class Ops:
    """VJP (record + one sweep) and JVP (one forward pass) of each primitive."""

    params = [differentiable_ops()]
    param_names = ["op"]

    def setup(self, name):
        op = dualrev.OPS[name]
        args, params, k = INPUTS[name]()
        self.x = args[k]

        def apply(x):
            return op(*args[:k], x, *args[k + 1:], **params)
        self.apply = apply
        out = apply(self.x)
        self.cotangent = np.ones(np.shape(out))
        self.tangent = np.ones(np.shape(self.x))

    def time_vjp(self, name):
        _, vjp_fn = dualrev.vjp(self.apply, self.x)
        vjp_fn(self.cotangent)

    def time_jvp(self, name):
        dualrev.jvp(self.apply, (self.x,), (self.tangent,))
