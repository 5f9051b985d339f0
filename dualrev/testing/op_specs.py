"""One spec per registered op, as data: what to call, on which shapes, where.

A :class:`Spec` names an op of ``dualrev.OPS`` and gives a function of
arrays written in plain NumPy (it reaches the op through NumPy dispatch or
an operator), the shape cases to try, and the domain each argument is drawn
from. dualrev's ``tests/test_ops.py`` expands the specs into tests: derivative checks
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
             (((3,), (2,)), ((2, 3), (1, 3))), label="slice",
             reference=lambda b, g: np.concatenate([b[:1], b[1:] + g])),
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


# =====================================================================================
# Coverage of the NumPy that real code uses: decompositions, statistics, FFT and more.
# =====================================================================================

def DISTINCT_REAL_SPECTRUM(z):
    """A matrix (or stack) near diag(1, 2, ..., n): real, well separated eigenvalues."""
    return np.diag(np.arange(1.0, z.shape[-1] + 1)) + 0.1 * z


def FULL_COLUMN_RANK(z):
    """A matrix (or stack) near the identity's first columns: well conditioned."""
    return 0.3 * z + np.eye(*z.shape[-2:])


def _signless_columns(v):
    """Columns times their first entry: the same for v and for v with flipped columns."""
    return v * v[..., :1, :]


TALL_WIDE_SQUARE = (((3, 2),), ((2, 3),), ((3, 3),), ((2, 3, 2),))


def _decompositions():
    return [
        Spec("svdvals", lambda a: np.linalg.svd(a, compute_uv=False), TALL_WIDE_SQUARE),
        Spec("svdvals", np.linalg.svdvals, (((3, 2),),), label="svdvals"),
        Spec("svdvals", lambda a: np.linalg.svd(a)[1], (((3, 3),),), label="full"),
        Spec("svd_u", lambda a: _signless_columns(np.linalg.svd(a, full_matrices=False)[0]),
             TALL_WIDE_SQUARE, rtol=1e-5),
        Spec("svd_vh", lambda a: _signless_columns(
            swap(np.linalg.svd(a, full_matrices=False).Vh)), TALL_WIDE_SQUARE, rtol=1e-5),
        Spec("svd_u", lambda a: (lambda r: r.U * r.S @ r.Vh)(np.linalg.svd(a)), (((3, 3),),),
             label="reconstruct", rtol=1e-5),
        # hermitian=True reads one triangle: fed a symmetric matrix, as eigh is.
        Spec("svd_u", lambda a: _signless_columns(np.linalg.svd(a + swap(a), hermitian=True).U),
             SQUARE, label="hermitian", rtol=1e-5),
        Spec("svd_vh", lambda a: _signless_columns(
            swap(np.linalg.svd(a + swap(a), hermitian=True).Vh)), SQUARE, label="hermitian",
            rtol=1e-5),
        Spec("svdvals", lambda a: np.linalg.svd(a + swap(a), hermitian=True, compute_uv=False),
             SQUARE, label="hermitian"),
        Spec("qr_q", lambda a: np.linalg.qr(a)[0], (((3, 2),), ((3, 3),), ((2, 3, 2),)),
             domains=FULL_COLUMN_RANK, rtol=1e-5),
        Spec("qr_r", lambda a: np.linalg.qr(a).R, (((3, 2),), ((3, 3),), ((2, 3, 2),)),
             domains=FULL_COLUMN_RANK, rtol=1e-5),
        Spec("qr_r", lambda a: np.linalg.qr(a, mode="r"), (((3, 2),),), label="mode-r",
             domains=FULL_COLUMN_RANK, rtol=1e-5),
        Spec("eigvals_general", np.linalg.eigvals, SQUARE, domains=DISTINCT_REAL_SPECTRUM),
        Spec("eigvals_general", lambda a: np.linalg.eig(a).eigenvalues, (((3, 3),),),
             domains=DISTINCT_REAL_SPECTRUM, label="eig"),
        Spec("eigvecs_general", lambda a: _signless_columns(np.linalg.eig(a)[1]), SQUARE,
             domains=DISTINCT_REAL_SPECTRUM, rtol=1e-5),
        Spec("pinv", np.linalg.pinv, (((3, 2),), ((2, 3),), ((3, 3),)), rtol=1e-5),
        Spec("pinv", lambda a, b: np.linalg.lstsq(a, b)[0], (((3, 2), (3,)), ((3, 2), (3, 2)),
                                                           ((2, 3), (2,))), label="lstsq",
             rtol=1e-5),
        Spec("pinv", lambda a, b: np.linalg.lstsq(a, b)[1], (((4, 2), (4,)),),
             label="lstsq-residuals", rtol=1e-5),
        Spec("matmul", lambda a: np.linalg.matrix_power(a, 3), SQUARE, label="matrix_power"),
        Spec("inv", lambda a: np.linalg.matrix_power(a, -2), (((3, 3),),),
             domains=WELL_CONDITIONED, label="matrix_power-negative"),
        Spec("multiply", np.kron, (((2, 3), (2, 2)), ((3,), (2,)), ((2,), (2, 3))),
             label="kron"),
        Spec("multiply", np.cross, (((3,), (3,)), ((2, 3), (3,)), ((2, 1, 3), (2, 3))),
             label="cross"),
        Spec("multiply", lambda a, b: np.cross(a, b, axis=0), (((3, 2), (3, 2)),),
             label="cross-axis"),
        Spec("where", np.triu, (((3, 3),), ((2, 3, 4),)), label="triu"),
        Spec("where", lambda a: np.tril(a, -1), (((3, 4),), ((3,),)), label="tril"),
    ]



def _with_nans(x):
    """x with NaN where it is above 0.8 (built in the traced code itself)."""
    return np.where(x > 0.8, np.nan, x)


KNOTS = np.array([-1.0, -0.2, 0.5, 1.5])


def _statistics():
    return [
        Spec("divide", lambda a, w: np.average(a, weights=w), (((3,), (3,)), ((2, 3), (2, 3))),
             domains=(REAL, POSITIVE), label="average"),
        Spec("divide", lambda a, w: np.average(a, axis=1, weights=w, keepdims=True),
             (((2, 3), (3,)),), domains=(REAL, POSITIVE), label="average-axis"),
        Spec("divide", lambda a, w: np.average(a, axis=0, weights=w, returned=True)[0],
             (((2, 3), (2,)),), domains=(REAL, POSITIVE), label="average-returned"),
        Spec("getitem", np.median, (((5,),), ((4,),), ((2, 3),)), label="median"),
        Spec("getitem", lambda a: np.median(a, axis=0, keepdims=True), (((4, 3),),),
             label="median-axis"),
        Spec("getitem", lambda a, q: np.quantile(a, q), (((5,), ()), ((2, 4), (3,))),
             domains=(REAL, PROBABILITY), label="quantile"),
        Spec("getitem", lambda a: np.quantile(a, [0.3, 0.75], axis=(0, 2)), (((2, 3, 2),),),
             label="quantile-axes"),
        Spec("getitem", lambda a: np.percentile(a, 40.0, axis=1), (((2, 5),),),
             label="percentile"),
    ] + [
        Spec("getitem", lambda a, method=method: np.quantile(a, [0.15, 0.6], method=method),
             (((6,),),), label=f"quantile-{method}")
        for method in ("lower", "higher", "nearest", "midpoint")
    ] + [
        Spec("where", lambda a: np.nansum(_with_nans(a)), UNARY_SHAPES[1:], label="nansum"),
        Spec("where", lambda a: np.nanmean(_with_nans(a), axis=0), (((3, 4),),),
             label="nanmean"),
        Spec("where", lambda a: np.nanmax(_with_nans(a), axis=1), (((3, 4),),),
             label="nanmax"),
        Spec("where", lambda a: np.nanmin(_with_nans(a)), (((3, 4),),), label="nanmin"),
        Spec("searchsorted", lambda v: np.searchsorted(KNOTS, v), UNARY_SHAPES,
             differentiable=False),
        Spec("searchsorted", lambda a, v: np.searchsorted(np.sort(a), v, side="right"),
             (((4,), (3,)),), differentiable=False, label="traced-a"),
        Spec("digitize", lambda x: np.digitize(x, KNOTS), UNARY_SHAPES, differentiable=False),
        Spec("digitize", lambda x: np.digitize(x, KNOTS, right=True), (((3,),),),
             differentiable=False, label="right"),
        Spec("getitem", lambda x, fp: np.interp(x, KNOTS, fp), (((), (4,)), ((5,), (4,))),
             label="interp"),
        Spec("getitem", lambda x, xp: np.interp(x, np.sort(xp), [0.0, 1.0, -1.0]),
             (((4,), (3,)),), label="interp-xp"),
        Spec("where", lambda x: np.interp(x, KNOTS, np.array([1.0, 2.0, 0.5, 3.0]),
                                            left=-2.0, right=5.0), (((6,),),),
             label="interp-left-right"),
        Spec("getitem", np.convolve, (((4,), (3,)), ((2,), (5,))), label="convolve"),
    ] + [
        Spec("getitem", lambda a, v, mode=mode, f=f: f(a, v, mode=mode),
             (((5,), (3,)), ((3,), (4,))), label=f"{f.__name__}-{mode}")
        for f in (np.convolve, np.correlate) for mode in ("full", "same", "valid")
    ] + [
        Spec("getitem", np.polyval, (((3,), ()), ((4,), (2, 3)), ((1,), (2,))),
             label="polyval"),
        Spec("getitem", np.trapezoid, (((4,),), ((2, 3),)), label="trapezoid"),
        Spec("getitem", lambda y, x: np.trapezoid(y, x), (((4,), (4,)), ((2, 3), (3,))),
             label="trapezoid-x"),
        Spec("getitem", lambda y: np.trapezoid(y, dx=0.5, axis=0), (((3, 2),),),
             label="trapezoid-axis"),
        Spec("cumsum", np.cumulative_sum, (((4,),),), label="cumulative_sum"),
        Spec("cumsum", lambda x: np.cumulative_sum(x, axis=1, include_initial=True),
             (((2, 3),),), label="cumulative_sum-initial"),
    ]



def _norms():
    vector = [
        Spec("power", lambda x, ord=ord: np.linalg.norm(x, ord), (((4,),),),
             domains=NONZERO, label=f"norm-vector-{ord}")
        for ord in (3, 0.5, -1, -2.5)
    ] + [
        Spec("power", lambda x: np.linalg.norm(x, 3, axis=1, keepdims=True), MATRIX,
             domains=NONZERO, label="norm-vector-3-axis"),
        Spec("power", lambda x: np.linalg.vector_norm(x, ord=3), MATRIX, domains=NONZERO,
             label="vector_norm"),
        Spec("amin", lambda x: np.linalg.norm(x[0], -np.inf) * np.linalg.norm(x[1], 0),
             MATRIX, domains=NONZERO, label="norm-vector-0"),
    ]
    matrix = [
        Spec(op, lambda x, ord=ord: np.linalg.norm(x, ord), (((3, 2),), ((2, 3),)),
             domains=NONZERO, label=f"norm-matrix-{ord}", rtol=1e-5)
        for op, ord in (("svdvals", "nuc"), ("svdvals", 2), ("svdvals", -2), ("amax", 1),
                        ("amin", -1), ("amax", np.inf), ("amin", -np.inf))
    ] + [
        Spec("svdvals", lambda x: np.linalg.norm(x, "nuc", axis=(2, 0), keepdims=True),
             (((3, 2, 2),),), label="norm-matrix-axes", rtol=1e-5),
        Spec("svdvals", lambda x: np.linalg.matrix_norm(x, ord=2), (((2, 3, 2),),),
             label="matrix_norm", rtol=1e-5),
    ]
    return vector + matrix



def _einsum_forms():
    return [
        Spec("einsum", lambda a, b: np.einsum("...ij,...jk->...ik", a, b),
             (((2, 2, 3), (2, 3, 2)), ((2, 3), (3, 2)), ((2, 2, 3), (3, 2))),
             label="ellipsis"),
        Spec("einsum", lambda a, b: np.einsum("...ij,...jk", a, b), (((2, 2, 3), (3, 2)),),
             label="ellipsis-implicit"),
        Spec("einsum", lambda a: np.einsum("i...->...", a), (((3, 2, 2),), ((3,),)),
             label="ellipsis-sum"),
        Spec("einsum", lambda a: np.einsum("...ii->...i", a), (((2, 3, 3),),),
             label="ellipsis-diagonal"),
        Spec("einsum", lambda a, b: np.einsum(a, [0, 1], b, [1, 2], [0, 2]),
             (((2, 3), (3, 2)),), label="sublist"),
        Spec("einsum", lambda a, b: np.einsum(a, [0, 1], b, [1]), (((2, 3), (3,)),),
             label="sublist-implicit"),
        Spec("einsum", lambda a, b: np.einsum(a, [Ellipsis, 0, 1], b, [1, 2],
                                              [Ellipsis, 0, 2]), (((2, 2, 3), (3, 2)),),
             label="sublist-ellipsis"),
    ]



def _spectra():
    """Complex intermediates: each spec's value is real, as losses are."""
    def parts(z):
        return np.concatenate([z.real, np.imag(z)], axis=-1)

    return [
        Spec("fft", lambda x: parts(np.fft.fft(x)), (((4,),), ((2, 5),))),
        Spec("fft", lambda x: parts(np.fft.fft(x, n=6, axis=0, norm="ortho")), (((4, 2),),),
             label="n-axis-ortho"),
        Spec("fft", lambda x: parts(np.fft.fft(x, n=3, norm="forward")), (((5,),),),
             label="n-truncated"),
        Spec("ifft", lambda x: parts(np.fft.ifft(x * np.exp(1j * x))), (((4,),), ((2, 3),))),
        Spec("rfft", lambda x: parts(np.fft.rfft(x)), (((4,),), ((2, 5),))),
        Spec("rfft", lambda x: parts(np.fft.rfft(x, n=6, axis=0, norm="ortho")),
             (((5, 2),),), label="n-axis-ortho"),
        Spec("irfft", lambda x, y: np.fft.irfft(x + 1j * y), (((3,), (3,)), ((2, 4), (2, 4)))),
        Spec("irfft", lambda x, y: np.fft.irfft(x + 1j * y, n=5, axis=0, norm="forward"),
             (((3, 2), (3, 2)),), label="n-odd-axis"),
        Spec("irfft", lambda x: np.fft.irfft(np.fft.rfft(x) * np.arange(3.0)), (((4,),),),
             label="filter"),
        Spec("real", lambda x, y: np.real((x + 1j * y) ** 2), BINARY_SHAPES[:3]),
        Spec("real", lambda x, y: (x * np.exp(1j * y)).real, (((3,), (3,)),),
             label="attribute"),
        Spec("imag", lambda x, y: np.imag((x + 1j * y) ** 2), BINARY_SHAPES[:3]),
        Spec("imag", lambda x, y: np.exp(1j * x * y).imag, (((3,), (3,)),),
             label="attribute"),
        Spec("conj", lambda x, y: np.real(np.conj(x + 1j * y) * np.exp(1j * y)),
             (((3,), (3,)),)),
        Spec("conj", lambda x, y: np.imag((x + 1j * y).conj() * (y - 1j * x)), (((3,), (3,)),),
             label="method"),
        Spec("abs", lambda x, y: np.abs(x + 1j * y), (((3,), (3,)), ((2, 3), (3,))),
             domains=NONZERO, label="complex"),
        Spec("abs", lambda x: np.abs(np.fft.fft(x)), (((4,),),), label="spectrum"),
        Spec("add", lambda x: np.real(x) + np.imag(x) + np.conj(x), (((3,),),),
             label="complex-parts-of-real"),
    ]


#: The specs of this block, also benchmarked one by one (benchmarks/bench_functions.py).
COVERAGE_SPECS = _decompositions() + _statistics() + _norms() + _einsum_forms() + _spectra()
SPECS += COVERAGE_SPECS
