"""Curvature tools: the Hessian's diagonal, extreme eigenpairs and trace.

All three work on the Hessian as an :class:`~dualrev.hvp.HVPOperator`:
``grad f`` is recorded once, and a block of ``k`` probe vectors is pushed
through the recording as one batched forward replay
(``HVPOperator.matmat``), in chunks bounding memory, never as ``k``
separate sweeps.

Error behaviour (``H`` the Hessian, ``k`` probes):

* :func:`hessian_diagonal`, ``method="hutchinson"``: with Rademacher probes
  ``z``, ``z * (H z)`` has mean ``diag(H)`` and, entry ``i``, variance
  ``sum_{j != i} H_ij^2``; the estimate's standard error is
  ``sqrt(sum_{j != i} H_ij^2 / k)``, zero for a diagonal ``H``.
  ``method="exact"`` pushes all ``n`` unit vectors (for small ``n``).
* :func:`hessian_trace`: Hutchinson's estimate has variance
  ``2 sum_{i != j} H_ij^2 / k``; Hutch++ (Meyer et al. 2021) spends a third
  of the probes on a sketch ``Q`` of the range of ``H``, takes
  ``tr(Q^T H Q)`` exactly and Hutchinson on the rest: exact when the rank
  of ``H`` is at most ``k / 3``, and for a positive semi-definite ``H``
  within ``(1 +- eps) tr(H)`` with high probability at ``k = O(1 / eps)``.
* :func:`hessian_eigs`: ARPACK's Lanczos (``scipy.sparse.linalg.eigsh``)
  to relative accuracy ``tol`` (machine precision by default).
"""

import numpy as np
import scipy.linalg
import scipy.sparse.linalg

from .hvp import hvp_operator

__all__ = ["hessian_diagonal", "hessian_eigs", "hessian_trace", "DIAGONAL_METHODS",
           "TRACE_METHODS"]

#: The methods of :func:`hessian_diagonal`.
DIAGONAL_METHODS = ("hutchinson", "exact")

#: The methods of :func:`hessian_trace`.
TRACE_METHODS = ("hutch++", "hutchinson")

#: Probe entries pushed through the recording per batched replay at most.
_CHUNK_ENTRIES = 2 ** 22


def _chunk(n, k):
    """Columns of ``n`` entries in one batched replay, of ``k`` wanted."""
    return max(1, min(k, _CHUNK_ENTRIES // max(n, 1)))


def _chunked_products(H, V):
    """``H @ V`` by batched replays of at most ``_CHUNK_ENTRIES`` tangent entries."""
    n, k = V.shape
    chunk = _chunk(n, k)
    return np.concatenate([H.matmat(V[:, s:s + chunk]) for s in range(0, k, chunk)]
                          or [np.zeros((n, 0))], axis=1)


def _rademacher(rng, n, k):
    return rng.choice(np.array([-1.0, 1.0]), size=(n, k))


def hessian_diagonal(f, x, n_probes=100, method="hutchinson", *, args=(), seed=None,
                     hvp_mode="rev-rev"):
    """The diagonal of the Hessian of ``f`` at ``x``, estimated or exact.

    Parameters
    ----------
    f : callable
        ``f(x, *args)`` returns a scalar.
    x : array or nested dict/list/tuple of arrays
        The point.
    n_probes : int
        Rademacher probes of Hutchinson's estimator.
    method : {"hutchinson", "exact"}
        ``"hutchinson"``: ``mean_k z_k * (H z_k)``, unbiased, standard error
        ``sqrt(sum_{j != i} H_ij^2 / n_probes)`` at entry ``i`` (see the
        module docstring). ``"exact"``: ``H`` applied to every unit vector,
        in batched replays: ``n`` products, for small ``n``.
    args : tuple
        Further arguments of ``f``.
    seed : None, int or numpy.random.Generator
        The probes' random source.
    hvp_mode : {"rev-rev", "fwd-rev"}
        See :func:`~dualrev.hvp.hvp_operator` (batched products use the
        forward replay in both).

    Returns
    -------
    array or structure
        The diagonal, in the structure of ``x``.

    See Also
    --------
    hessian_trace, hessian_eigs, dualrev.hvp_operator

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> f = lambda x: np.sum(x ** 3) + x[0] * x[1]     # diag(H) = 6 x
    >>> dualrev.hessian_diagonal(f, np.array([1.0, 2.0]), method="exact")
    array([ 6., 12.])
    >>> d = dualrev.hessian_diagonal(f, np.array([1.0, 2.0]), n_probes=400, seed=0)
    >>> bool(np.all(np.abs(d - [6.0, 12.0]) < 5 * np.sqrt(1.0 / 400)))
    True
    """
    if method not in DIAGONAL_METHODS:
        raise ValueError(f"method must be one of {DIAGONAL_METHODS}, not {method!r}")
    H = hvp_operator(f, x, hvp_mode, args=tuple(args))
    n = H.shape[0]
    if method == "exact":
        diagonal = np.empty(n)
        chunk = _chunk(n, n)
        for s in range(0, n, chunk):
            block = np.eye(n, min(chunk, n - s), -s)
            diagonal[s:s + block.shape[1]] = np.diagonal(H.matmat(block)[s:s + block.shape[1]])
        return H.unravel(diagonal)
    if int(n_probes) < 1:
        raise ValueError(f"n_probes must be at least 1, not {n_probes!r}")
    Z = _rademacher(np.random.default_rng(seed), n, int(n_probes))
    return H.unravel(np.mean(Z * _chunked_products(H, Z), axis=1))


def hessian_trace(f, x, n_probes=99, method="hutch++", *, args=(), seed=None,
                  hvp_mode="rev-rev"):
    """The trace of the Hessian of ``f`` at ``x`` by Hutch++ or Hutchinson.

    Parameters
    ----------
    f : callable
        ``f(x, *args)`` returns a scalar.
    x : array or nested dict/list/tuple of arrays
    n_probes : int
        Hessian-vector products spent in all (Hutch++ needs at least 3).
    method : {"hutch++", "hutchinson"}
        ``"hutch++"``: ``k/3`` products sketch the range ``Q`` of ``H``,
        ``k/3`` give ``tr(Q^T H Q)`` exactly, ``k/3`` estimate the trace of
        the rest by Hutchinson; exact when ``rank(H) <= k/3``.
        ``"hutchinson"``: ``mean z.(H z)`` over ``k`` Rademacher probes,
        variance ``2 sum_{i != j} H_ij^2 / k``.
    args : tuple
    seed : None, int or numpy.random.Generator
    hvp_mode : {"rev-rev", "fwd-rev"}

    Returns
    -------
    float
        The estimate of ``tr(H)``.

    See Also
    --------
    hessian_diagonal, hessian_eigs

    References
    ----------
    R. A. Meyer, C. Musco, C. Musco, D. P. Woodruff, "Hutch++: Optimal
    stochastic trace estimation", SOSA 2021.

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> u = np.arange(1.0, 7.0)
    >>> f = lambda x: 0.5 * (u @ x) ** 2 + np.sum(x)   # H = u u^T, rank 1
    >>> round(dualrev.hessian_trace(f, np.zeros(6), n_probes=6, seed=0), 8), float(u @ u)
    (91.0, 91.0)
    """
    if method not in TRACE_METHODS:
        raise ValueError(f"method must be one of {TRACE_METHODS}, not {method!r}")
    minimum = 3 if method == "hutch++" else 1
    if int(n_probes) < minimum:
        raise ValueError(f"n_probes must be at least {minimum} for {method}, not {n_probes!r}")
    H = hvp_operator(f, x, hvp_mode, args=tuple(args))
    rng = np.random.default_rng(seed)
    n, k = H.shape[0], int(n_probes)
    if method == "hutchinson":
        Z = _rademacher(rng, n, k)
        return float(np.sum(Z * _chunked_products(H, Z)) / k)
    third = k // 3
    Q = scipy.linalg.orth(_chunked_products(H, _rademacher(rng, n, third)))
    sketched = float(np.trace(Q.T @ _chunked_products(H, Q))) if Q.size else 0.0
    rest = k - third - Q.shape[1]
    G = _rademacher(rng, n, rest)
    G = G - Q @ (Q.T @ G)
    return sketched + (float(np.sum(G * _chunked_products(H, G)) / rest) if rest else 0.0)


def hessian_eigs(f, x, k=1, which="LA", *, args=(), tol=0.0, return_eigenvectors=True,
                 hvp_mode="rev-rev"):
    """The ``k`` largest or smallest eigenpairs of the Hessian of ``f`` at ``x``.

    Lanczos (``scipy.sparse.linalg.eigsh``) on the
    :class:`~dualrev.hvp.HVPOperator`: ``grad f`` recorded once, one
    product per Lanczos step, the Hessian never formed.

    Parameters
    ----------
    f : callable
        ``f(x, *args)`` returns a scalar.
    x : array or nested dict/list/tuple of arrays
    k : int
        Eigenpairs wanted, ``1 <= k < n`` (for ``k >= n`` form the Hessian
        with :func:`dualrev.hessian`).
    which : {"LA", "SA", "LM", "SM"}
        Largest / smallest algebraic, largest / smallest magnitude
        (``"SM"`` converges slowly: prefer ``"SA"`` on a known sign).
    args : tuple
    tol : float
        Relative accuracy of the eigenvalues (0: machine precision).
    return_eigenvectors : bool
    hvp_mode : {"rev-rev", "fwd-rev"}

    Returns
    -------
    eigenvalues : ndarray, shape (k,)
        Ascending.
    eigenvectors : ndarray, shape (n, k)
        Columns over the flattened ``x`` (only if ``return_eigenvectors``).

    See Also
    --------
    hessian_trace, hessian_diagonal, dualrev.hvp_operator

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> f = lambda x: 0.5 * x @ np.diag([1.0, 2.0, 3.0, 4.0]) @ x
    >>> np.round(dualrev.hessian_eigs(f, np.ones(4), k=2, return_eigenvectors=False), 10)
    array([3., 4.])
    >>> np.round(dualrev.hessian_eigs(f, np.ones(4), k=1, which="SA")[0], 10)
    array([1.])
    """
    if which not in ("LA", "SA", "LM", "SM"):
        raise ValueError(f"which must be 'LA', 'SA', 'LM' or 'SM', not {which!r}")
    H = hvp_operator(f, x, hvp_mode, args=tuple(args))
    n = H.shape[0]
    if not 1 <= int(k) < n:
        raise ValueError(f"k must satisfy 1 <= k < n = {n} (got {k!r}); for all "
                         "eigenvalues form the Hessian with dualrev.hessian")
    v0 = np.random.default_rng(0).standard_normal(n)
    out = scipy.sparse.linalg.eigsh(H, int(k), which=which, tol=tol, v0=v0,
                                    return_eigenvectors=return_eigenvectors)
    if not return_eigenvectors:
        return np.sort(out)
    values, vectors = out
    order = np.argsort(values)
    return values[order], vectors[:, order]
