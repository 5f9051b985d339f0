"""np.linalg: inv, solve, det, slogdet, cholesky, eigh, eigvalsh and norm.

Every function works on stacks of matrices (leading batch axes). The rules
use matmul and ``solve`` (never an explicit inverse where a solve does), so
they can be differentiated again.

``cholesky``, ``eigh`` and ``eigvalsh`` read one triangle of a matrix that
is taken to be symmetric: their derivatives are with respect to symmetric
perturbations (a tangent is symmetrized, ``(t + t.T) / 2``, and gradients
come out symmetric). The derivative of the eigenvectors also needs distinct
eigenvalues: where two coincide it uses 0 for that pair's coefficient, as
np.linalg.svd and np.linalg.eig do (see ``decompositions``).
"""

import collections

import numpy as np

from ..registry import cubic_flops, defnondiff, defop, register_numpy, shape_of, unbroadcast
from .linalg import promote_to_output, mT
from .shape import normalize_axis, reshape

SlogdetResult = collections.namedtuple("SlogdetResult", ["sign", "logabsdet"])
EighResult = collections.namedtuple("EighResult", ["eigenvalues", "eigenvectors"])


#: Flops of an LU factorisation (det, slogdet); the symmetric eigensolver.
LU_FLOPS = cubic_flops(2 / 3)
EIGH_FLOPS = cubic_flops(9)


def solve_flops(out, a, b):
    """LU of ``a`` (2/3 n**3) and two triangular solves per right-hand side."""
    n = shape_of(a)[-1]
    rhs = int(np.prod(shape_of(b))) // max(n, 1)
    return int(2 / 3 * n ** 3 + 2 * n * n * rhs)


def _with_matrix_axes(x):
    """``x`` of shape ``s`` reshaped to ``s + (1, 1)``."""
    return reshape(x, shape=shape_of(x) + (1, 1))


def _trace(x):
    return np.trace(x, axis1=-2, axis2=-1)


def sym(t):
    """The symmetric part of a matrix (stack): derivatives for symmetric perturbations."""
    return (t + mT(t)) / 2


# ---- inv, solve ----------------------------------------------------------------

def inv_jvp(t, out, a):
    return -(out @ t @ out)


def inv_vjp(g, out, a):
    return -(mT(out) @ g @ mT(out))


inv = defop("inv", np.linalg.inv, flops=cubic_flops(2),
            jvp=inv_jvp, vjp=inv_vjp, numpy=np.linalg.inv,
            doc="Matrix inverse: d inv = -inv @ da @ inv.")


def solve_jvp_a(t, out, a, b):
    return -solve(a, promote_to_output(t, a, out) @ out)


def solve_jvp_b(t, out, a, b):
    return solve(a, promote_to_output(t, b, out))


def solve_vjp_a(g, out, a, b):
    return unbroadcast(-(solve(mT(a), g) @ mT(out)), shape_of(a))


def solve_vjp_b(g, out, a, b):
    return unbroadcast(solve(mT(a), g), shape_of(b))


solve = defop("solve", np.linalg.solve, nargs=2, flops=solve_flops,
              jvp=(solve_jvp_a, solve_jvp_b),
              vjp=(solve_vjp_a, solve_vjp_b),
              doc="x with a @ x = b, b a stack of matrices. d/db = solve(a.T, g), "
                  "d/da = -solve(a.T, g) @ x.T.")


def np_solve(a, b):
    if len(shape_of(b)) == 1:  # a vector right-hand side
        x = solve(a, reshape(b, shape=shape_of(b) + (1,)))
        return reshape(x, shape=shape_of(x)[:-1])
    return solve(a, b)


register_numpy(np.linalg.solve, np_solve)


# ---- det, slogdet ----------------------------------------------------------------

def det_jvp(t, out, a):
    return out * _trace(solve(a, t))


def det_vjp(g, out, a):
    return _with_matrix_axes(g * out) * mT(inv(a))


det = defop("det", np.linalg.det, flops=LU_FLOPS,
            jvp=det_jvp, vjp=det_vjp, numpy=np.linalg.det,
            doc="Determinant: d det = det * trace(solve(a, da)); NaN/inf at a "
                "singular matrix.")


def logabsdet_jvp(t, out, a):
    return _trace(solve(a, t))


def logabsdet_vjp(g, out, a):
    return _with_matrix_axes(g) * mT(inv(a))


logabsdet = defop("logabsdet", lambda a: np.linalg.slogdet(a)[1],
                  flops=LU_FLOPS,
                  jvp=logabsdet_jvp, vjp=logabsdet_vjp,
                  doc="log |det a|, the second output of slogdet: d = trace(solve(a, da)).")
det_sign = defnondiff("det_sign", lambda a: np.linalg.slogdet(a)[0], flops=LU_FLOPS,
                      doc="The sign of det a, the first output of slogdet: "
                          "piecewise constant, not differentiated.")


def slogdet(a):
    return SlogdetResult(det_sign(a), logabsdet(a))


register_numpy(np.linalg.slogdet, slogdet)


# ---- cholesky ------------------------------------------------------------------

def _lower_half_diagonal(n):
    """The mask of Phi: strictly lower triangle 1, diagonal 1/2."""
    return np.tril(np.ones((n, n)), -1) + 0.5 * np.eye(n)


def cholesky_jvp(t, out, a):
    # dL = L Phi(L^-1 dA L^-T) for the symmetrized dA.
    y = solve(out, sym(t))
    x = mT(solve(out, mT(y)))
    return out @ (x * _lower_half_diagonal(shape_of(a)[-1]))


def cholesky_vjp(g, out, a):
    # The adjoint of cholesky_jvp: sym(L^-T (Phi o (L^T g)) L^-1).
    p = (mT(out) @ g) * _lower_half_diagonal(shape_of(a)[-1])
    y = solve(mT(out), p)
    return sym(mT(solve(mT(out), mT(y))))


cholesky = defop("cholesky", np.linalg.cholesky, flops=cubic_flops(1 / 3),
                 jvp=cholesky_jvp, vjp=cholesky_vjp,
                 doc="Lower Cholesky factor L of a symmetric positive definite a; "
                     "derivatives for symmetric perturbations.")


def np_cholesky(a, /, *, upper=False):
    factor = cholesky(a)
    return mT(factor) if upper else factor


register_numpy(np.linalg.cholesky, np_cholesky)


# ---- eigh, eigvalsh ------------------------------------------------------------

def eigvalsh_jvp(t, out, a, *, UPLO):
    # dw_k = v_k^T dA v_k
    v = eigvecs(a, UPLO=UPLO)
    return np.sum(v * (sym(t) @ v), axis=-2)


def eigvalsh_vjp(g, out, a, *, UPLO):
    # V diag(g) V^T
    v = eigvecs(a, UPLO=UPLO)
    return (v * np.expand_dims(g, -2)) @ mT(v)


eigvalsh = defop("eigvalsh", lambda a, *, UPLO: np.linalg.eigvalsh(a, UPLO),
                  flops=EIGH_FLOPS,
                 jvp=eigvalsh_jvp, vjp=eigvalsh_vjp,
                 doc="Eigenvalues of a symmetric matrix, ascending; "
                     "derivatives for symmetric perturbations.")


def inverse_gaps(w):
    """F[i, j] = 1 / (w[j] - w[i]); 0 on the diagonal and where w[i] == w[j].

    The ties are found by a recorded comparison, not by reading ``w``: under
    :func:`dualrev.compile` the program stays valid for every input."""
    gaps = np.expand_dims(w, -2) - np.expand_dims(w, -1)
    tie = gaps == 0
    return np.where(tie, 0.0, 1 / np.where(tie, 1.0, gaps))


def eigvecs_jvp(t, out, a, *, UPLO):
    # dV = V (F o (V^T dA V))
    f = inverse_gaps(eigvalsh(a, UPLO=UPLO))
    return out @ (f * (mT(out) @ sym(t) @ out))


def eigvecs_vjp(g, out, a, *, UPLO):
    # The adjoint of eigvecs_jvp: sym(V (F o (V^T g)) V^T).
    f = inverse_gaps(eigvalsh(a, UPLO=UPLO))
    return sym(out @ (f * (mT(out) @ g)) @ mT(out))


eigvecs = defop("eigvecs", lambda a, *, UPLO: np.linalg.eigh(a, UPLO)[1],
                 flops=EIGH_FLOPS,
                jvp=eigvecs_jvp, vjp=eigvecs_vjp,
                doc="Eigenvectors of a symmetric matrix (the columns), the second "
                    "output of eigh; see the module docstring for repeated eigenvalues.")


def _check_uplo(UPLO):
    if UPLO not in ("L", "U"):
        raise ValueError("UPLO argument must be 'L' or 'U'")
    return UPLO


def eigh(a, UPLO="L"):
    UPLO = _check_uplo(UPLO)
    return EighResult(eigvalsh(a, UPLO=UPLO), eigvecs(a, UPLO=UPLO))


def np_eigvalsh(a, UPLO="L"):
    return eigvalsh(a, UPLO=_check_uplo(UPLO))


register_numpy(np.linalg.eigh, eigh)
register_numpy(np.linalg.eigvalsh, np_eigvalsh)


# ---- norm ------------------------------------------------------------------------

def _euclidean(x, axis, keepdims):
    """sqrt(sum(x**2)) with gradient 0 (not NaN) where it is 0."""
    s = np.sum(x * x, axis=axis, keepdims=keepdims)
    positive = s > 0
    return np.where(positive, np.sqrt(np.where(positive, s, 1.0)), 0.0)


def _vector_norm(x, ord, axis, keepdims):
    if ord is None or ord == 2:
        return _euclidean(x, axis, keepdims)
    if ord == 1:
        return np.sum(np.abs(x), axis=axis, keepdims=keepdims)
    if ord == np.inf:
        return np.max(np.abs(x), axis=axis, keepdims=keepdims)
    if ord == -np.inf:
        return np.min(np.abs(x), axis=axis, keepdims=keepdims)
    raise NotImplementedError(f"np.linalg.norm on traced values: vector ord={ord!r} is not "
                              "supported (use None, 1, 2, inf or -inf)")


def norm(x, ord=None, axis=None, keepdims=False):
    ndim = len(shape_of(x))
    if axis is None and ord is None:
        return _euclidean(x, normalize_axis(None, ndim), keepdims)
    if axis is None:
        if ndim not in (1, 2):
            raise ValueError("Improper number of dimensions to norm.")
        axis = tuple(range(ndim))
    axis = normalize_axis(axis, ndim)
    if len(axis) == 1:
        return _vector_norm(x, ord, axis, keepdims)
    if len(axis) == 2 and ord in (None, "fro"):
        return _euclidean(x, axis, keepdims)
    raise NotImplementedError(f"np.linalg.norm on traced values: ord={ord!r} over axes "
                              f"{axis} is not supported (matrix norms: None or 'fro')")


register_numpy(np.linalg.norm, norm)
