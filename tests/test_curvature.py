"""Curvature tools against dense Hessians, with their documented error bounds."""

import numpy as np
import pytest

import dualrev


def quartic(x, A):
    """A non-quadratic function with a full, indefinite Hessian."""
    return 0.5 * x @ A @ x + 0.25 * np.sum(x ** 4) - np.sum(np.sin(x[:-1] * x[1:]))


def problem(n=12, seed=0):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((n, n))
    return rng.standard_normal(n), (B + B.T) / 2


def dense(x, A):
    return dualrev.hessian(quartic)(x, A)


def test_exact_diagonal_is_the_dense_diagonal():
    x, A = problem()
    np.testing.assert_allclose(dualrev.hessian_diagonal(quartic, x, method="exact",
                                                        args=(A,)),
                               np.diag(dense(x, A)), rtol=1e-12, atol=1e-12)


def test_exact_diagonal_in_chunks_and_structures(monkeypatch):
    monkeypatch.setattr(dualrev.curvature, "_CHUNK_ENTRIES", 20)  # 5 columns a replay
    x = {"a": np.array([0.3, -0.2]), "b": np.array([[0.5, 1.0], [0.1, -0.7]])}

    def f(p):
        return np.sum(p["a"] ** 3) * np.sum(p["b"] ** 2) + np.sum(np.exp(p["b"]))
    d = dualrev.hessian_diagonal(f, x, method="exact")
    flat, unravel = dualrev.tree.ravel_pytree(x)
    H = dualrev.hessian(lambda v: f(unravel(v)))(flat)
    np.testing.assert_allclose(dualrev.tree.ravel_pytree(d)[0], np.diag(H), rtol=1e-12)
    assert d["b"].shape == (2, 2)


def test_hutchinson_diagonal_within_its_standard_error():
    x, A = problem()
    H = dense(x, A)
    k = 400
    standard_error = np.sqrt((np.sum(H ** 2, axis=1) - np.diag(H) ** 2) / k)
    d = dualrev.hessian_diagonal(quartic, x, n_probes=k, args=(A,), seed=3)
    assert np.all(np.abs(d - np.diag(H)) < 5 * standard_error)
    # and the error is real: not the exact diagonal
    assert np.max(np.abs(d - np.diag(H))) > 0.01 * np.max(standard_error)


def test_hutchinson_is_exact_for_a_diagonal_hessian():
    x = np.linspace(-1.0, 1.0, 7)
    d = dualrev.hessian_diagonal(lambda v: np.sum(np.cosh(v)), x, n_probes=1, seed=0)
    np.testing.assert_allclose(d, np.cosh(x), rtol=1e-13)


def test_hutchinson_probes_are_batched_in_chunks(monkeypatch):
    x, A = problem()
    full = dualrev.hessian_diagonal(quartic, x, n_probes=30, args=(A,), seed=1)
    monkeypatch.setattr(dualrev.curvature, "_CHUNK_ENTRIES", 12 * 7)
    chunked = dualrev.hessian_diagonal(quartic, x, n_probes=30, args=(A,), seed=1)
    np.testing.assert_allclose(chunked, full, rtol=1e-12)


@pytest.mark.parametrize("which", ["LA", "SA", "LM"])
def test_hessian_eigs_match_the_dense_eigendecomposition(which):
    x, A = problem()
    H = dense(x, A)
    values, vectors = dualrev.hessian_eigs(quartic, x, k=3, which=which, args=(A,))
    all_values = np.linalg.eigvalsh(H)
    expected = {"LA": all_values[-3:], "SA": all_values[:3],
                "LM": np.sort(all_values[np.argsort(np.abs(all_values))[-3:]])}[which]
    np.testing.assert_allclose(values, expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(H @ vectors, vectors * values, atol=1e-8)


def test_hessian_eigs_rejects_k_out_of_range():
    with pytest.raises(ValueError, match="k must satisfy"):
        dualrev.hessian_eigs(lambda v: np.sum(v ** 4), np.ones(3), k=3)
    with pytest.raises(ValueError, match="which"):
        dualrev.hessian_eigs(lambda v: np.sum(v ** 4), np.ones(3), which="BE")


def test_hutch_plus_plus_is_exact_for_low_rank():
    rng = np.random.default_rng(4)
    U = rng.standard_normal((30, 3))

    def f(x):
        return 0.5 * np.sum((x @ U) ** 2)   # H = U U^T, rank 3
    estimate = dualrev.hessian_trace(f, np.zeros(30), n_probes=9, seed=0)
    assert estimate == pytest.approx(np.sum(U ** 2), rel=1e-10)
    hutchinson = dualrev.hessian_trace(f, np.zeros(30), n_probes=9, method="hutchinson",
                                       seed=0)
    assert hutchinson != pytest.approx(np.sum(U ** 2), rel=1e-6)


def test_trace_estimates_within_their_error_bounds():
    x, A = problem(n=40, seed=5)
    H = dense(x, A)
    trace = np.trace(H)
    off = np.sum(H ** 2) - np.sum(np.diag(H) ** 2)
    k = 300
    hutchinson = dualrev.hessian_trace(quartic, x, n_probes=k, method="hutchinson",
                                       args=(A,), seed=2)
    assert abs(hutchinson - trace) < 5 * np.sqrt(2 * off / k)
    # Hutch++ with a sketch of 10 < n = 40 columns: its residual term has
    # variance 2 ||(I - QQ^T) H (I - QQ^T)||_F^2 / (k/3), at most 2 ||H||_F^2 / (k/3)
    k = 30
    plus = dualrev.hessian_trace(quartic, x, n_probes=k, args=(A,), seed=2)
    assert abs(plus - trace) < 5 * np.sqrt(2 * np.sum(H ** 2) / (k / 3))
    assert plus != pytest.approx(trace, rel=1e-8)


def test_trace_rejects_too_few_probes():
    with pytest.raises(ValueError, match="at least 3"):
        dualrev.hessian_trace(lambda v: np.sum(v ** 4), np.ones(3), n_probes=2)
    with pytest.raises(ValueError, match="method"):
        dualrev.hessian_trace(lambda v: np.sum(v ** 4), np.ones(3), method="guess")
