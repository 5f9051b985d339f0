"""np.linalg decompositions and matrix functions: svd, qr, eig/eigvals (real
spectrum), pinv, lstsq, matrix_power; np.kron, np.cross, np.triu, np.tril.

SVD, QR, eig and pinv are primitives (their derivatives need the factors);
each factor is its own op, so a loss that reads only one of them records only
that one. The rest are composites of existing ops.

Repeated values. The derivative of singular vectors (eigenvectors) involves
``1 / (s_j**2 - s_i**2)`` (``1 / (w_j - w_i)``), undefined where two values
coincide: the vectors are not unique there and have no derivative. dualrev
uses 0 for the coefficient of an exactly repeated pair, so the result is
finite (the derivative along the perturbations that keep the two values
apart) rather than inf/NaN; the derivatives of symmetric functions of the
values (their sum, the nuclear norm) stay exact. See docs/conventions.rst.

``np.linalg.svd(a, hermitian=True)`` reads one triangle of ``a``: as for
eigh, its derivatives are for symmetric perturbations (symmetrized tangents,
symmetric gradients).
"""

import collections

import numpy as np

from ..registry import cubic_flops, defop, primal_value, register_numpy, shape_of
from .linalg import mT, np_matmul
from . import numpy_linalg
from .numpy_linalg import inverse_gaps, solve, sym
from .shape import broadcast_to, concatenate, getitem, reshape

SVDResult = collections.namedtuple("SVDResult", ["U", "S", "Vh"])
QRResult = collections.namedtuple("QRResult", ["Q", "R"])
EigResult = collections.namedtuple("EigResult", ["eigenvalues", "eigenvectors"])
LstsqResult = collections.namedtuple("LstsqResult", ["x", "residuals", "rank", "s"])


def _row(s):
    """A vector (stack) as a row: broadcasts over the columns' entries."""
    return np.expand_dims(s, -2)


def _column(s):
    return np.expand_dims(s, -1)


def _right_solve(x, r):
    """x @ inv(r)."""
    return mT(solve(mT(r), mT(x)))


# ---- triu, tril ------------------------------------------------------------------

def _triangle(lower):
    def triangle(m, k=0):
        shape = shape_of(m)
        if len(shape) == 1:  # NumPy repeats a vector into a square matrix
            m = broadcast_to(m, shape=shape * 2)
            shape = shape * 2
        n, p = shape[-2:]
        keep = np.tri(n, p, k, dtype=bool) if lower else ~np.tri(n, p, k - 1, dtype=bool)
        return np.where(keep, m, 0.0)
    triangle.__name__ = "tril" if lower else "triu"
    return triangle


tril = register_numpy(np.tril, _triangle(True))
triu = register_numpy(np.triu, _triangle(False))


# ---- svd -------------------------------------------------------------------------

def _svd_factors(a, hermitian):
    return np.linalg.svd(a, full_matrices=False, hermitian=hermitian)


def _symmetric_if(hermitian, m):
    """With ``hermitian=True`` NumPy reads one triangle of a matrix taken to be
    symmetric: as for eigh, tangents are symmetrized and gradients come out
    symmetric (derivatives for symmetric perturbations)."""
    return sym(m) if hermitian else m


def svdvals_jvp(t, out, a, *, hermitian):
    # ds_k = u_k^T da v_k
    u, vh = svd_u(a, hermitian=hermitian), svd_vh(a, hermitian=hermitian)
    return np.sum(u * (_symmetric_if(hermitian, t) @ mT(vh)), axis=-2)


def svdvals_vjp(g, out, a, *, hermitian):
    # U diag(g) Vh
    u, vh = svd_u(a, hermitian=hermitian), svd_vh(a, hermitian=hermitian)
    return _symmetric_if(hermitian, (u * _row(g)) @ vh)


svdvals = defop("svdvals", lambda a, *, hermitian: np.linalg.svd(
    a, compute_uv=False, hermitian=hermitian), jvp=svdvals_jvp, vjp=svdvals_vjp,
    flops=cubic_flops(9),
    doc="Singular values, descending: ds_k = u_k^T da v_k.")


def svd_u_jvp(t, out, a, *, hermitian):
    # dU = U (F o (P S + S P^T)) + (I - U U^T) da V S^-1, with P = U^T da V and
    # F[i, j] = 1 / (s_j^2 - s_i^2).
    s, v = svdvals(a, hermitian=hermitian), mT(svd_vh(a, hermitian=hermitian))
    tv = _symmetric_if(hermitian, t) @ v
    p = mT(out) @ tv
    f = inverse_gaps(s * s)
    return out @ (f * (p * _row(s) + _column(s) * mT(p))) + (tv - out @ p) / _row(s)


def svd_u_vjp(g, out, a, *, hermitian):
    # The adjoint: U ((M + M^T) S) V^T + (I - U U^T) g S^-1 V^T, M = F o (U^T g).
    s, vh = svdvals(a, hermitian=hermitian), svd_vh(a, hermitian=hermitian)
    utg = mT(out) @ g
    m = inverse_gaps(s * s) * utg
    return _symmetric_if(hermitian,
                         (out @ ((m + mT(m)) * _row(s)) + (g - out @ utg) / _row(s)) @ vh)


svd_u = defop("svd_u", lambda a, *, hermitian: _svd_factors(a, hermitian)[0],
              jvp=svd_u_jvp, vjp=svd_u_vjp,
              flops=cubic_flops(9),
              doc="Left singular vectors U (thin SVD, columns); see the module "
                  "docstring for repeated singular values.")


def svd_vh_jvp(t, out, a, *, hermitian):
    # dV = V (F o (S P + P^T S)) + (I - V V^T) da^T U S^-1; the op returns Vh.
    s, u = svdvals(a, hermitian=hermitian), svd_u(a, hermitian=hermitian)
    v = mT(out)
    tu = mT(_symmetric_if(hermitian, t)) @ u
    p = mT(tu) @ v
    f = inverse_gaps(s * s)
    return mT(v @ (f * (_column(s) * p + mT(p) * _row(s))) + (tu - v @ mT(p)) / _row(s))


def svd_vh_vjp(g, out, a, *, hermitian):
    # The adjoint: U (S (N + N^T)) V^T + U S^-1 g_V^T (I - V V^T), N = F o (V^T g_V).
    s, u = svdvals(a, hermitian=hermitian), svd_u(a, hermitian=hermitian)
    gvt = g  # g_V^T, since the op returns Vh = V^T
    n = inverse_gaps(s * s) * (out @ mT(gvt))
    return _symmetric_if(hermitian, u @ ((_column(s) * (n + mT(n))) @ out
                                         + (gvt - (gvt @ mT(out)) @ out) / _column(s)))


svd_vh = defop("svd_vh", lambda a, *, hermitian: _svd_factors(a, hermitian)[2],
               jvp=svd_vh_jvp, vjp=svd_vh_vjp,
               flops=cubic_flops(9),
               doc="Right singular vectors Vh (thin SVD, rows); see the module "
                   "docstring for repeated singular values.")


def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    if not compute_uv:
        return svdvals(a, hermitian=hermitian)
    m, n = shape_of(a)[-2:]
    if full_matrices and m != n:
        raise NotImplementedError(
            "np.linalg.svd on traced values: full_matrices=True on a non-square matrix "
            "adds singular vectors that are not unique, so they have no derivative; "
            "pass full_matrices=False")
    return SVDResult(svd_u(a, hermitian=hermitian), svdvals(a, hermitian=hermitian),
                     svd_vh(a, hermitian=hermitian))


register_numpy(np.linalg.svd, svd)
register_numpy(np.linalg.svdvals, lambda x, /: svdvals(x, hermitian=False))


# ---- qr --------------------------------------------------------------------------

def _copyltu(m):
    """The symmetric matrix with m's lower triangle."""
    return tril(m) + mT(tril(m, -1))


def _qr_differentials(t, q, r):
    """(dQ, dR) of the reduced QR for da = t: with C = Q^T t R^-1 and
    Omega = tril(C, -1) - tril(C, -1)^T, dR = (C - Omega) R and
    dQ = t R^-1 - Q (C - Omega)."""
    tr = _right_solve(t, r)
    c = mT(q) @ tr
    lower = tril(c, -1)
    upper_part = c - lower + mT(lower)
    return tr - q @ upper_part, upper_part @ r


def _check_tall(a):
    m, n = shape_of(a)[-2:]
    if m < n:
        raise NotImplementedError("np.linalg.qr on traced values: a wide matrix (more "
                                  "columns than rows) is not supported")


def qr_q_vjp(g, out, a):
    # (g + Q copyltu(-g^T Q)) R^-T
    r = qr_r(a)
    return mT(solve(r, mT(g + out @ _copyltu(-(mT(g) @ out)))))


def qr_r_vjp(g, out, a):
    # Q copyltu(R g^T) R^-T
    q = qr_q(a)
    return mT(solve(out, mT(q @ _copyltu(out @ mT(g)))))


qr_q = defop("qr_q", lambda a: np.linalg.qr(a)[0],
             jvp=lambda t, out, a: _qr_differentials(t, out, qr_r(a))[0], vjp=qr_q_vjp,
             flops=cubic_flops(4 / 3),
             doc="Q of the reduced QR of a tall matrix (full column rank).")
qr_r = defop("qr_r", lambda a: np.linalg.qr(a)[1],
             jvp=lambda t, out, a: _qr_differentials(t, qr_q(a), out)[1], vjp=qr_r_vjp,
             flops=cubic_flops(4 / 3),
             doc="R of the reduced QR of a tall matrix (full column rank).")


def qr(a, mode="reduced"):
    _check_tall(a)
    m, n = shape_of(a)[-2:]
    if mode == "r":
        return qr_r(a)
    if mode == "reduced" or (mode == "complete" and m == n):
        return QRResult(qr_q(a), qr_r(a))
    raise NotImplementedError(f"np.linalg.qr on traced values: mode={mode!r} is not "
                              "supported (use 'reduced' or 'r')")


register_numpy(np.linalg.qr, qr)


# ---- eig, eigvals (real spectrum) ----------------------------------------------

def _eig_real(a):
    w, v = np.linalg.eig(a)
    if np.iscomplexobj(w):
        raise NotImplementedError("np.linalg.eig on traced values: the matrix has complex "
                                  "eigenvalues; only a real spectrum is supported")
    return w, v


def eigvals_jvp(t, out, a):
    # dw_k = (V^-1 da V)_kk
    v = eigvecs_general(a)
    return np.sum(mT(solve(v, t)) * v, axis=-2)


def eigvals_vjp(g, out, a):
    # V^-T diag(g) V^T
    v = eigvecs_general(a)
    return solve(mT(v), _column(g) * mT(v))


eigvals_general = defop("eigvals_general", lambda a: _eig_real(a)[0],
                        jvp=eigvals_jvp, vjp=eigvals_vjp,
                        flops=cubic_flops(25),
                        doc="Eigenvalues of a general matrix with a real spectrum.")


def eigvecs_general_jvp(t, out, a):
    # dV = V (F o (V^-1 da V)), then each column kept at unit norm.
    f = inverse_gaps(eigvals_general(a))
    w = out @ (f * solve(out, t @ out))
    return w - out * np.sum(out * w, axis=-2, keepdims=True)


def eigvecs_general_vjp(g, out, a):
    # The adjoint: V^-T (F o (V^T g')) V^T, g' = g - V diag(V^T g).
    f = inverse_gaps(eigvals_general(a))
    g = g - out * np.sum(out * g, axis=-2, keepdims=True)
    return solve(mT(out), (f * (mT(out) @ g)) @ mT(out))


eigvecs_general = defop("eigvecs_general", lambda a: _eig_real(a)[1],
                        jvp=eigvecs_general_jvp, vjp=eigvecs_general_vjp,
                        flops=cubic_flops(25),
                        doc="Unit eigenvectors (columns) of a general matrix with a real "
                            "spectrum; see the module docstring for repeated eigenvalues.")

register_numpy(np.linalg.eig, lambda a: EigResult(eigvals_general(a), eigvecs_general(a)))
register_numpy(np.linalg.eigvals, lambda a: eigvals_general(a))


# ---- pinv, lstsq -----------------------------------------------------------------

def pinv_jvp(t, out, a, *, rcond):
    # Golub & Pereyra, at constant rank:
    # dA+ = -A+ dA A+ + A+ A+^T dA^T (I - A A+) + (I - A+ A) dA^T A+^T A+
    tt = mT(t)
    return (-(out @ t @ out) + out @ (mT(out) @ tt - (mT(out) @ tt @ a) @ out)
            + (tt - out @ (a @ tt)) @ (mT(out) @ out))


def pinv_vjp(g, out, a, *, rcond):
    # The adjoint: -A+^T g A+^T + (I - A A+) g^T A+ A+^T + A+^T A+ g^T (I - A+ A)
    gt = mT(g)
    return (-(mT(out) @ g @ mT(out)) + (gt - a @ (out @ gt)) @ (out @ mT(out))
            + (mT(out) @ out) @ (gt - (gt @ out) @ a))


pinv = defop("pinv", lambda a, *, rcond: np.linalg.pinv(a, rcond=rcond),
             jvp=pinv_jvp, vjp=pinv_vjp, flops=cubic_flops(11),
             doc="Moore-Penrose pseudo-inverse; the derivative holds where the rank is "
                 "locally constant.")


_NOT_GIVEN = object()


def np_pinv(a, rcond=None, hermitian=False, *, rtol=_NOT_GIVEN):
    if rcond is None:  # NumPy's defaults
        if rtol is _NOT_GIVEN:
            rcond = 1e-15
        else:
            rcond = max(shape_of(a)[-2:]) * np.finfo(float).eps if rtol is None else rtol
    elif rtol is not _NOT_GIVEN:
        raise ValueError("`rtol` and `rcond` can't be both set.")
    if np.ndim(rcond):
        raise NotImplementedError("np.linalg.pinv on traced values: rcond must be a scalar")
    return pinv(a, rcond=float(rcond))


register_numpy(np.linalg.pinv, np_pinv)


def lstsq(a, b, rcond=None):
    m, n = shape_of(a)
    rcond = np.finfo(float).eps * max(m, n) if rcond is None else rcond
    s = svdvals(a, hermitian=False)
    singular = np.asarray(primal_value(s))
    rank = int(np.sum(singular > rcond * singular.max())) if singular.size else 0
    x = np_matmul(np_pinv(a, rcond=rcond), b)
    if rank == n and m > n:
        r = b - np_matmul(a, x)
        residuals = np.sum(r * r, axis=0)
        if len(shape_of(b)) == 1:
            residuals = reshape(residuals, shape=(1,))
    else:
        residuals = np.zeros((0,))
    return LstsqResult(x, residuals, rank, s)


register_numpy(np.linalg.lstsq, lstsq)


# ---- matrix_power, kron, cross ------------------------------------------------

def matrix_power(a, n):
    if not isinstance(n, (int, np.integer)):
        raise TypeError("exponent must be an integer")
    shape = shape_of(a)
    if n == 0:
        return np.broadcast_to(np.eye(shape[-1]), shape).copy()  # a constant
    if n < 0:
        a, n = np.linalg.inv(a), -n
    result = None
    while n:  # binary exponentiation, as NumPy does
        if n & 1:
            result = a if result is None else result @ a
        n >>= 1
        if n:
            a = a @ a
    return result


register_numpy(np.linalg.matrix_power, matrix_power)


def kron(a, b):
    sa, sb = shape_of(a), shape_of(b)
    ndim = max(len(sa), len(sb))
    sa, sb = (1,) * (ndim - len(sa)) + sa, (1,) * (ndim - len(sb)) + sb
    # a's axes interleaved with size-1 axes, b's the other way round
    a2 = reshape(a, shape=tuple(x for n in sa for x in (n, 1)))
    b2 = reshape(b, shape=tuple(x for n in sb for x in (1, n)))
    return reshape(a2 * b2, shape=tuple(p * q for p, q in zip(sa, sb)))


register_numpy(np.kron, kron)


def _component(x, i):
    return getitem(x, index=(Ellipsis, i))


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = np.moveaxis(a, axisa, -1), np.moveaxis(b, axisb, -1)
    na, nb = shape_of(a)[-1], shape_of(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError("incompatible dimensions for cross product\n"
                         "(dimension must be 2 or 3)")
    if na == nb == 2:
        return _component(a, 0) * _component(b, 1) - _component(a, 1) * _component(b, 0)
    ax, ay = _component(a, 0), _component(a, 1)
    bx, by = _component(b, 0), _component(b, 1)
    az = _component(a, 2) if na == 3 else 0.0
    bz = _component(b, 2) if nb == 3 else 0.0
    parts = [ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx]
    shape = np.broadcast_shapes(*(shape_of(p) for p in parts))
    parts = [reshape(broadcast_to(p, shape=shape) if shape_of(p) != shape else p,
                     shape=shape + (1,)) for p in parts]
    return np.moveaxis(concatenate(*parts, axis=-1), -1, axisc)


register_numpy(np.cross, cross)


# ---- norm: every ord ---------------------------------------------------------------

def _matrix_norm(x, ord):
    """The norm of the matrices on the last two axes of ``x``."""
    if ord in (None, "fro"):
        return numpy_linalg.norm(x, None, axis=(-2, -1))
    if ord == "nuc":
        return np.sum(svdvals(x, hermitian=False), axis=-1)
    if ord in (2, -2):
        return (np.max if ord == 2 else np.min)(svdvals(x, hermitian=False), axis=-1)
    if ord in (1, -1, np.inf, -np.inf):
        summed_axis = -2 if ord in (1, -1) else -1  # column sums for 1, row sums for inf
        pick = np.max if ord > 0 else np.min
        return pick(np.sum(np.abs(x), axis=summed_axis), axis=-1)
    raise ValueError("Invalid norm order for matrices.")


def _vector_norm(x, ord, axis, keepdims):
    if ord in (None, 1, 2, np.inf, -np.inf):
        return numpy_linalg.norm(x, ord, axis=axis, keepdims=keepdims)
    if isinstance(ord, str):
        raise ValueError(f"Invalid norm order '{ord}' for vectors")
    if ord == 0:  # the count of nonzero entries: piecewise constant
        return np.sum(np.where(x != 0, 1.0, 0.0), axis=axis, keepdims=keepdims)
    return np.sum(np.abs(x) ** ord, axis=axis, keepdims=keepdims) ** (1.0 / ord)


def norm(x, ord=None, axis=None, keepdims=False):
    ndim = len(shape_of(x))
    if axis is None:
        if ord is None:
            return numpy_linalg.norm(x, None, None, keepdims)
        if ndim not in (1, 2):
            raise ValueError("Improper number of dimensions to norm.")
        axis = tuple(range(ndim))
    axes = tuple(a % ndim for a in ((axis,) if isinstance(axis, (int, np.integer)) else axis))
    if len(axes) == 1:
        return _vector_norm(x, ord, axes, keepdims)
    if len(axes) != 2 or axes[0] == axes[1]:
        raise ValueError("Improper number of dimensions to norm.")
    res = _matrix_norm(np.moveaxis(x, axes, (-2, -1)), ord)
    return np.expand_dims(res, tuple(sorted(axes))) if keepdims else res


# Replaces the Frobenius-and-vector norm of numpy_linalg: every ord of NumPy.
register_numpy(np.linalg.norm, norm, replace=True)
register_numpy(np.linalg.matrix_norm,
               lambda x, /, *, keepdims=False, ord="fro": norm(x, ord, (-2, -1), keepdims))


def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
    if axis is None:
        res = _vector_norm(np.ravel(x), ord, 0, False)
        return np.reshape(res, (1,) * len(shape_of(x))) if keepdims else res
    return _vector_norm(x, ord, axis, keepdims)


register_numpy(np.linalg.vector_norm, vector_norm)
