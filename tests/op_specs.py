"""One spec per registered op, as data: what to call, on which shapes, where.

A :class:`Spec` names an op of ``dualrev.OPS`` and gives a function of
arrays written in plain NumPy (it reaches the op through NumPy dispatch or
an operator), the shape cases to try, and the domain each argument is drawn
from. ``tests/test_ops.py`` expands the specs into tests: derivative checks
in both modes up to second order, the forward value against NumPy/SciPy on
plain arrays, and ``jacfwd == jacrev``. An op may have several specs (one
per calling convention); a new op needs at least one, or the meta-test fails.
"""

from dataclasses import dataclass

import numpy as np
import scipy.special as sp

import dualrev

# ---- domains: each maps a standard-normal draw into the region an argument needs

def REAL(z):
    return z


def POSITIVE(z):
    return np.abs(z) + 0.5


def NONZERO(z):
    return np.where(z >= 0, 1.0, -1.0) * (np.abs(z) + 0.3)


def OPEN_UNIT(z):
    """Inside (-0.8, 0.8): arcsin, arccos, arctanh."""
    return 0.8 * np.tanh(z)


def PROBABILITY(z):
    """Inside (0.1, 0.9): logit."""
    return 0.5 + 0.4 * np.tanh(z)


def ABOVE_ONE(z):
    return np.abs(z) + 1.2


def NEAR_ONE(z):
    """Inside (0.95, 1.05): a divisor for remainder away from its jumps."""
    return 1.0 + 0.05 * np.tanh(z)


def AWAY_FROM_INTEGERS(z):
    """Inside (2.3, 2.7): x / y stays between two integers for y near 1."""
    return 2.5 + 0.2 * np.tanh(z)


def WELL_CONDITIONED(z):
    """A matrix (or stack) near the identity."""
    return 0.3 * z + np.eye(z.shape[-1])


def BOOLEAN(z):
    return z > 0


def INTEGER(z):
    return np.round(3 * z).astype(np.int64)


@dataclass(frozen=True)
class Spec:
    """How to exercise one op.

    Attributes
    ----------
    op : str
        Key in ``dualrev.OPS``.
    fn : callable
        A function of arrays in plain NumPy; it must reach ``op``.
    shapes : tuple of tuple of shape
        The cases: one shape per positional argument of ``fn``.
    domains : tuple of callable
        One per argument, mapping a standard-normal draw into its domain
        (a single callable is used for every argument).
    reference : callable or None
        The NumPy/SciPy function to compare values with, called on plain
        arrays; ``fn`` itself when None (``fn`` is plain NumPy code).
    differentiable : bool
        False for the ops declared non-differentiable: value check only.
    label : str
        Tells the specs of one op apart in test ids.
    rtol : float
        Tolerance of the derivative checks.
    order : int
        Highest derivative order checked.
    """

    op: str
    fn: object
    shapes: tuple
    domains: object = REAL
    reference: object = None
    differentiable: bool = True
    label: str = ""
    rtol: float = 1e-6
    order: int = 2

    @property
    def name(self):
        return f"{self.op}-{self.label}" if self.label else self.op

    def draw(self, shapes, rng):
        """Arguments for one shape case: Python floats for shape ()."""
        domains = self.domains if isinstance(self.domains, tuple) else (self.domains,) * len(shapes)
        args = []
        for shape, domain in zip(shapes, domains):
            value = domain(rng.standard_normal(shape))
            args.append(value.item() if shape == () and value.dtype.kind == "f" else value)
        return tuple(args)

    def expected(self, *args):
        return (self.reference or self.fn)(*args)


def swap(a):
    """Matrix transpose of a stack, in plain NumPy."""
    return np.swapaxes(a, -1, -2)


def spd(a):
    """A symmetric positive definite matrix (stack) made from any square one."""
    return a @ swap(a) + 3 * np.eye(a.shape[-1])


UNARY_SHAPES = (((),), ((3,),), ((2, 3),))
BINARY_SHAPES = (((), ()), ((3,), (3,)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 2)))
MATRIX = (((2, 3),),)
SQUARE = (((3, 3),), ((2, 3, 3),))

# name, domain (elementwise unary ufuncs called as np.<name> / sp.<name>)
_UNARY = [
    ("abs", np.abs, NONZERO), ("exp", np.exp, REAL), ("expm1", np.expm1, REAL),
    ("exp2", np.exp2, REAL), ("log", np.log, POSITIVE), ("log1p", np.log1p, POSITIVE),
    ("log2", np.log2, POSITIVE), ("log10", np.log10, POSITIVE), ("sqrt", np.sqrt, POSITIVE),
    ("cbrt", np.cbrt, NONZERO), ("square", np.square, REAL),
    ("reciprocal", np.reciprocal, NONZERO), ("sin", np.sin, REAL), ("cos", np.cos, REAL),
    ("tan", np.tan, OPEN_UNIT), ("arcsin", np.arcsin, OPEN_UNIT),
    ("arccos", np.arccos, OPEN_UNIT), ("arctan", np.arctan, REAL),
    ("sinh", np.sinh, REAL), ("cosh", np.cosh, REAL), ("tanh", np.tanh, REAL),
    ("arcsinh", np.arcsinh, REAL), ("arccosh", np.arccosh, ABOVE_ONE),
    ("arctanh", np.arctanh, OPEN_UNIT), ("negative", np.negative, REAL),
    ("expit", sp.expit, REAL), ("logit", sp.logit, PROBABILITY), ("erf", sp.erf, REAL),
    ("erfc", sp.erfc, REAL), ("log_expit", sp.log_expit, REAL),
    ("gammaln", sp.gammaln, POSITIVE), ("polygamma", sp.digamma, POSITIVE),
]

_BINARY = [
    ("add", np.add, (REAL, REAL)), ("subtract", np.subtract, (REAL, REAL)),
    ("multiply", np.multiply, (REAL, REAL)), ("divide", np.divide, (REAL, NONZERO)),
    ("power", np.power, (POSITIVE, REAL)),
    ("remainder", np.remainder, (AWAY_FROM_INTEGERS, NEAR_ONE)),
    ("maximum", np.maximum, (REAL, REAL)), ("minimum", np.minimum, (REAL, REAL)),
    ("fmax", np.fmax, (REAL, REAL)), ("fmin", np.fmin, (REAL, REAL)),
    ("arctan2", np.arctan2, (REAL, NONZERO)), ("hypot", np.hypot, (NONZERO, REAL)),
    ("logaddexp", np.logaddexp, (REAL, REAL)), ("logaddexp2", np.logaddexp2, (REAL, REAL)),
    ("copysign", np.copysign, (NONZERO, NONZERO)), ("xlogy", sp.xlogy, (REAL, POSITIVE)),
    ("xlog1py", sp.xlog1py, (REAL, POSITIVE)),
]

_NONDIFF = [
    # name, function, domains, shapes
    ("greater", np.greater, REAL, BINARY_SHAPES), ("greater_equal", np.greater_equal, REAL,
                                                   BINARY_SHAPES),
    ("less", np.less, REAL, BINARY_SHAPES), ("less_equal", np.less_equal, REAL, BINARY_SHAPES),
    ("equal", np.equal, INTEGER, BINARY_SHAPES), ("not_equal", np.not_equal, INTEGER,
                                                  BINARY_SHAPES),
    ("logical_and", np.logical_and, INTEGER, BINARY_SHAPES),
    ("logical_or", np.logical_or, INTEGER, BINARY_SHAPES),
    ("logical_xor", np.logical_xor, INTEGER, BINARY_SHAPES),
    ("logical_not", np.logical_not, INTEGER, UNARY_SHAPES),
    ("isnan", np.isnan, REAL, UNARY_SHAPES), ("isinf", np.isinf, REAL, UNARY_SHAPES),
    ("isfinite", np.isfinite, REAL, UNARY_SHAPES), ("signbit", np.signbit, REAL, UNARY_SHAPES),
    ("sign", np.sign, REAL, UNARY_SHAPES), ("floor", np.floor, REAL, UNARY_SHAPES),
    ("ceil", np.ceil, REAL, UNARY_SHAPES), ("trunc", np.trunc, REAL, UNARY_SHAPES),
    ("rint", np.rint, REAL, UNARY_SHAPES),
    ("floor_divide", np.floor_divide, (REAL, NONZERO), BINARY_SHAPES),
    # Only ever reached with boolean or integer arrays, never with traced floats.
    ("bitwise_and", np.bitwise_and, BOOLEAN, BINARY_SHAPES),
    ("bitwise_or", np.bitwise_or, BOOLEAN, BINARY_SHAPES),
    ("invert", np.invert, BOOLEAN, UNARY_SHAPES),
    ("det_sign", lambda a: np.linalg.slogdet(a)[0], REAL, SQUARE),
]


def _reductions():
    specs = []
    for op, func in [("sum", np.sum), ("amax", np.max), ("amin", np.min), ("prod", np.prod)]:
        specs += [
            Spec(op, func, UNARY_SHAPES, label="all"),
            Spec(op, lambda x, func=func: func(x, axis=0), (((3,),), ((2, 3),)), label="axis0"),
            Spec(op, lambda x, func=func: func(x, axis=-1, keepdims=True), MATRIX,
                 label="keepdims"),
            Spec(op, lambda x, func=func: func(x, axis=(0, 2)), (((2, 2, 3),),),
                 label="two-axes"),
        ]
    specs += [
        Spec("sum", np.mean, MATRIX, label="mean"),
        Spec("sum", lambda x: np.var(x, axis=1, ddof=1), MATRIX, label="var"),
        Spec("sum", lambda x: np.std(x, axis=0), MATRIX, label="std"),
        Spec("sum", lambda x: x.sum(axis=1), MATRIX, label="method"),
        Spec("prod", lambda x: np.prod(x * np.array([1.0, 0.0, 1.0])), (((3,),),),
             label="with-zero"),
        Spec("cumsum", np.cumsum, UNARY_SHAPES[1:], label="flat"),
        Spec("cumsum", lambda x: np.cumsum(x, axis=0), MATRIX, label="axis0"),
        Spec("multiply", lambda x: np.cumprod(x, axis=1), (((2, 5),),), label="cumprod"),
        Spec("multiply", lambda x: np.cumprod(x * np.array([1.0, 0.0, 1.0, 0.0])),
             (((4,),),), label="cumprod-with-zeros"),
        Spec("logsumexp", dualrev.logsumexp, UNARY_SHAPES[1:], reference=sp.logsumexp),
        Spec("logsumexp", lambda x: dualrev.logsumexp(x, axis=1, keepdims=True), MATRIX,
             reference=lambda x: sp.logsumexp(x, axis=1, keepdims=True), label="keepdims"),
        Spec("logsumexp", lambda x: dualrev.softmax(x, axis=-1), MATRIX,
             reference=lambda x: sp.softmax(x, axis=-1), label="softmax"),
        Spec("logsumexp", lambda x: dualrev.log_softmax(x, axis=0), MATRIX,
             reference=lambda x: sp.log_softmax(x, axis=0), label="log_softmax"),
    ]
    return specs


def _shape_ops():
    return [
        Spec("reshape", lambda x: np.reshape(x, (3, 2)), MATRIX),
        Spec("reshape", lambda x: x.ravel(), MATRIX, label="ravel"),
        Spec("reshape", lambda x: np.expand_dims(x, (0, 2)), MATRIX, label="expand_dims"),
        Spec("reshape", lambda x: np.squeeze(x, 1), (((2, 1, 3),),), label="squeeze"),
        Spec("transpose", np.transpose, (((2, 3),), ((2, 3, 4),))),
        Spec("transpose", lambda x: np.moveaxis(x, 0, -1), (((2, 3, 4),),), label="moveaxis"),
        Spec("transpose", lambda x: x.T, MATRIX, label="T"),
        Spec("broadcast_to", lambda x: np.broadcast_to(x, (2, 2, 3)), (((3,),), ((2, 1),))),
        Spec("concatenate", lambda x, y: np.concatenate([x, y], axis=1),
             (((2, 3), (2, 1)),)),
        Spec("concatenate", lambda x, y: np.stack([x, y]), (((3,), (3,)), ((), ())),
             label="stack"),
        Spec("concatenate", lambda x, y: np.hstack([x, y]), (((2,), (3,)),), label="hstack"),
        Spec("concatenate", lambda x: np.diff(x, axis=0, prepend=0.0, append=x[:1]), MATRIX,
             label="diff-prepend-append"),
        Spec("getitem", lambda x: x[1:, ::2], MATRIX, label="slices"),
        Spec("getitem", lambda x: x[np.array([0, 2, 0])], (((3,),),), label="repeated"),
        Spec("getitem", lambda x: x[x > 0], (((2, 3),),), label="mask"),
        Spec("getitem", lambda x: x[..., 1, None], (((2, 3),),), label="int-None"),
        Spec("getitem", lambda x: np.flip(x), (((3,),), ((2, 3),)), label="flip"),
        Spec("getitem", lambda x: np.flip(x, 1), MATRIX, label="flip-axis"),
        Spec("getitem", lambda x: np.roll(x, 1, axis=1), MATRIX, label="roll"),
        Spec("getitem", lambda x: np.roll(x, (1, -1), axis=(0, 1)), MATRIX,
             label="roll-axes"),
        Spec("getitem", lambda x: np.roll(x, 4), MATRIX, label="roll-flat"),
        Spec("getitem", lambda x: np.split(x, 3, axis=1)[1], MATRIX, label="split"),
        Spec("index_add", lambda b, g: dualrev.OPS["index_add"](b, g, index=(slice(1, None),)),
             (((3,), (2,)), ((2, 3), (1, 3))), label="slice"),
        Spec("index_add", lambda b, g: dualrev.OPS["index_add"](
            b, g, index=(np.array([0, 2, 0]),)), (((3,), (3,)),), label="repeated",
             reference=lambda b, g: b + np.bincount([0, 2, 0], g, 3)),
        Spec("getitem", lambda x: np.array_split(x, 2, axis=1)[0], MATRIX,
             label="array_split"),
        Spec("getitem", lambda x: np.hsplit(x, [1])[1], MATRIX, label="hsplit"),
        Spec("getitem", lambda x: np.pad(x, ((1, 0), (2, 1)), mode="edge"), MATRIX,
             label="pad-edge"),
        Spec("getitem", lambda x: np.pad(x, 2, mode="reflect"), (((3,),),),
             label="pad-reflect"),
        Spec("getitem", lambda x: np.pad(x, 1, mode="wrap"), MATRIX, label="pad-wrap"),
        Spec("getitem", lambda x: np.repeat(x, 2), (((3,),), ((2, 3),)), label="repeat"),
        Spec("getitem", lambda x: np.repeat(x, [1, 0, 2], axis=1), MATRIX,
             label="repeat-counts"),
        Spec("getitem", lambda x: np.diff(x, n=2), (((4,),), ((2, 4),)), label="diff"),
        Spec("untake", np.diag, (((3,),),), label="diag"),
        Spec("untake", lambda x: np.pad(x, ((1, 2), (0, 1)), constant_values=1.5), MATRIX,
             label="pad-constant"),
        Spec("broadcast_to", lambda x: np.tile(x, (2, 1, 2)), MATRIX, label="tile"),
        Spec("broadcast_to", lambda x: np.tile(x, 2), (((3,),),), label="tile-int"),
        Spec("where", lambda c, x, y: np.where(c > 0, x, y), (((2, 3), (2, 3), (3,)),
                                                            ((3,), (), (3,)))),
        Spec("maximum", lambda x: np.clip(x, -0.5, 0.5), (((3,),),), label="clip"),
    ]


def _linalg():
    return [
        Spec("matmul", np.matmul, (((2, 3), (3, 2)), ((3,), (3, 2)), ((2, 3), (3,)),
                                   ((2, 2, 3), (3, 2)))),
        Spec("matmul", np.dot, (((3,), (3,)),), label="dot"),
        Spec("multiply", np.outer, (((3,), (2,)),), label="outer"),
        Spec("matmul", lambda a, b: np.tensordot(a, b, axes=([1, 2], [0, 1])),
             (((2, 3, 2), (3, 2, 2)),), label="tensordot"),
        Spec("matmul", np.inner, (((2, 3), (3,)),), label="inner"),
        Spec("getitem", np.trace, (((3, 3),),), label="trace"),
        Spec("einsum", lambda a, b: np.einsum("ij,jk->ik", a, b), (((2, 3), (3, 2)),),
             label="matmul"),
        Spec("einsum", lambda a, b: np.einsum("ij,j->i", a, b), (((2, 3), (3,)),),
             label="matvec"),
        Spec("einsum", lambda a, b: np.einsum("i,i->", a, b), (((3,), (3,)),), label="dot"),
        Spec("einsum", lambda a, b: np.einsum("bij,bjk->bik", a, b),
             (((2, 2, 3), (2, 3, 2)),), label="batched"),
        Spec("einsum", lambda a: np.einsum("ij->ji", a), MATRIX, label="transpose"),
        Spec("einsum", lambda a: np.einsum("ii->", a), (((3, 3),),), label="trace"),
        Spec("einsum", lambda a: np.einsum("ii->i", a), (((3, 3),),), label="diagonal"),
        Spec("einsum", lambda a: np.einsum("ij->", a), MATRIX, label="sum"),
        Spec("einsum", lambda a, b: np.einsum("i,j->ij", a, b), (((3,), (2,)),),
             label="outer"),
        Spec("einsum", lambda a, b: np.einsum("ij,k", a, b), (((2, 3), (2,)),),
             label="implicit-summed-by-one"),
        Spec("einsum", lambda a, b: np.einsum("ii,i->", a, b), (((3, 3), (3,)),),
             label="diagonal-dot"),
        Spec("einsum", lambda a, b, c: np.einsum("ij,jk,k->i", a, b, c),
             (((2, 3), (3, 2), (2,)),), label="three"),
        Spec("inv", np.linalg.inv, SQUARE, domains=WELL_CONDITIONED),
        Spec("solve", np.linalg.solve, (((3, 3), (3,)), ((3, 3), (3, 2)),
                                        ((2, 3, 3), (3,)), ((2, 3, 3), (2, 3, 2))),
             domains=(WELL_CONDITIONED, REAL)),
        Spec("det", np.linalg.det, SQUARE, domains=WELL_CONDITIONED),
        Spec("logabsdet", lambda a: np.linalg.slogdet(a)[1], SQUARE,
             domains=WELL_CONDITIONED, label="slogdet"),
        Spec("cholesky", lambda a: np.linalg.cholesky(spd(a)), SQUARE),
        Spec("cholesky", lambda a: np.linalg.cholesky(spd(a), upper=True), (((3, 3),),),
             label="upper"),
        Spec("eigvalsh", lambda a: np.linalg.eigvalsh(a + swap(a)), SQUARE),
        Spec("eigvalsh", lambda a: np.linalg.eigh(a + swap(a))[0], (((3, 3),),),
             label="eigh"),
        # Eigenvectors are defined up to sign: compare sign-free products.
        Spec("eigvecs", lambda a: (lambda v: v * v[..., :1, :])(np.linalg.eigh(a + swap(a))[1]),
             SQUARE, rtol=1e-5),
        Spec("eigvecs", lambda a: (lambda v: v * v[..., :1, :])(
            np.linalg.eigh(a + swap(a), UPLO="U").eigenvectors), (((3, 3),),), label="upper",
            rtol=1e-5),
    ] + [
        Spec("sqrt", lambda x, ord=ord, axis=axis, keepdims=keepdims: np.linalg.norm(
            x, ord=ord, axis=axis, keepdims=keepdims), shapes, label=f"norm-{label}")
        for ord, axis, keepdims, shapes, label in [
            (None, None, False, UNARY_SHAPES, "default"),
            (2, None, False, (((3,),),), "2"),
            (None, 1, True, MATRIX, "axis-keepdims"),
            ("fro", None, False, MATRIX, "fro"),
            (None, (1, 2), False, (((2, 2, 3),),), "matrix-axes"),
        ]
    ] + [
        Spec("abs", lambda x: np.linalg.norm(x, 1), (((3,),),), domains=NONZERO,
             label="norm-1"),
        Spec("amax", lambda x: np.linalg.norm(x, np.inf, axis=0), MATRIX, label="norm-inf"),
    ]


SPECS = (
    [Spec(op, func, UNARY_SHAPES, domains=domain) for op, func, domain in _UNARY]
    + [Spec(op, func, BINARY_SHAPES, domains=domains) for op, func, domains in _BINARY]
    + [Spec(op, func, shapes, domains=domains, differentiable=False)
       for op, func, domains, shapes in _NONDIFF]
    + _reductions() + _shape_ops() + _linalg()
)
