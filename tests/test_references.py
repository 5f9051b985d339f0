"""Hand-written reference derivatives in benchmarks/benchmarks/common.py
checked against central finite differences (NumPy only, no dualrev)."""

import sys
from pathlib import Path

import numpy as np
import pytest

_BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"
if str(_BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(_BENCH_DIR))

from benchmarks.common import (  # noqa: E402
    indexing_loop,
    indexing_loop_grad_by_hand,
    logistic_grad_by_hand,
    logistic_hessp_by_hand,
    logistic_loss,
    logistic_problem,
    mlp_loss,
    mlp_loss_grad_by_hand,
    mlp_problem,
    rng,
    rosen,
    rosen_der,
    rosen_hess,
    rosen_hess_prod,
    rosen_point,
    scalar_chain,
    scalar_chain_deriv_by_hand,
)

EPS = 1e-6


def central_diff(f, x, eps=EPS):
    """Central-difference gradient of a scalar (or vector) function of an array."""
    x = np.array(x, dtype=np.float64)
    f0 = np.asarray(f(x))
    out = np.zeros(x.shape + f0.shape)
    for idx in np.ndindex(x.shape):
        xp = x.copy()
        xm = x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        out[idx] = (np.asarray(f(xp)) - np.asarray(f(xm))) / (2 * eps)
    return out


def test_rng_is_seeded():
    assert np.array_equal(rng(3).standard_normal(5), rng(3).standard_normal(5))
    assert not np.array_equal(rng(3).standard_normal(5), rng(4).standard_normal(5))


def test_mlp_problem_shapes_and_dtypes():
    params, X, y = mlp_problem(batch=8, sizes=(6, 5, 3), seed=1)
    assert params["W1"].shape == (6, 5) and params["b1"].shape == (5,)
    assert params["W2"].shape == (5, 3) and params["b2"].shape == (3,)
    assert all(v.dtype == np.float64 for v in params.values())
    assert X.shape == (8, 6) and X.dtype == np.float64
    assert y.shape == (8,) and np.issubdtype(y.dtype, np.integer)
    assert y.min() >= 0 and y.max() < 3
    params2, X2, y2 = mlp_problem(batch=8, sizes=(6, 5, 3), seed=1)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert all(np.array_equal(params[k], params2[k]) for k in params)


def test_mlp_loss_matches_naive_softmax():
    params, X, y = mlp_problem(batch=8, sizes=(6, 5, 3), seed=1)
    h = np.tanh(X @ params["W1"] + params["b1"])
    logits = h @ params["W2"] + params["b2"]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    naive = -np.mean(np.log(p[np.arange(8), y]))
    np.testing.assert_allclose(mlp_loss(params, X, y), naive, rtol=1e-12)


def test_mlp_loss_stable_for_large_logits():
    params, X, y = mlp_problem(batch=8, sizes=(6, 5, 3), seed=1)
    params = dict(params, W2=1e4 * params["W2"])
    loss, grads = mlp_loss_grad_by_hand(params, X, y)
    assert np.isfinite(mlp_loss(params, X, y)) and np.isfinite(loss)
    assert all(np.all(np.isfinite(g)) for g in grads.values())


def test_mlp_grad_by_hand_matches_finite_differences():
    params, X, y = mlp_problem(batch=8, sizes=(6, 5, 3), seed=1)
    loss, grads = mlp_loss_grad_by_hand(params, X, y)
    np.testing.assert_allclose(loss, mlp_loss(params, X, y), rtol=1e-12)
    assert set(grads) == set(params)
    for key in params:
        def f(v, key=key):
            return mlp_loss(dict(params, **{key: v}), X, y)
        assert grads[key].shape == params[key].shape
        np.testing.assert_allclose(
            grads[key], central_diff(f, params[key]), rtol=1e-5, atol=1e-8,
            err_msg=key,
        )


def test_logistic_problem():
    A, b, lam = logistic_problem(n_samples=30, n_features=4, seed=2)
    assert A.shape == (30, 4) and A.dtype == np.float64
    assert b.shape == (30,) and set(np.unique(b)) <= {-1.0, 1.0}
    assert lam > 0


def test_logistic_loss_matches_naive_and_is_stable():
    A, b, lam = logistic_problem(n_samples=30, n_features=4, seed=2)
    w = rng(5).standard_normal(4)
    naive = np.mean(np.log1p(np.exp(-b * (A @ w)))) + lam / 2 * w @ w
    np.testing.assert_allclose(logistic_loss(w, A, b, lam), naive, rtol=1e-12)
    big = 1e3 * w
    assert np.isfinite(logistic_loss(big, A, b, lam))
    assert np.all(np.isfinite(logistic_grad_by_hand(big, A, b, lam)))


def test_logistic_grad_by_hand_matches_finite_differences():
    A, b, lam = logistic_problem(n_samples=30, n_features=4, seed=2)
    w = rng(5).standard_normal(4)
    g = logistic_grad_by_hand(w, A, b, lam)
    fd = central_diff(lambda v: logistic_loss(v, A, b, lam), w)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)


def test_logistic_hessp_by_hand_matches_finite_differences_of_grad():
    A, b, lam = logistic_problem(n_samples=30, n_features=4, seed=2)
    r = rng(5)
    w = r.standard_normal(4)
    p = r.standard_normal(4)
    hp = logistic_hessp_by_hand(w, p, A, b, lam)
    fd = (logistic_grad_by_hand(w + EPS * p, A, b, lam)
          - logistic_grad_by_hand(w - EPS * p, A, b, lam)) / (2 * EPS)
    np.testing.assert_allclose(hp, fd, rtol=1e-6, atol=1e-9)
    # and the full Hessian from differences of the gradient is symmetric
    H = central_diff(lambda v: logistic_grad_by_hand(v, A, b, lam), w)
    np.testing.assert_allclose(H, H.T, atol=1e-7)
    np.testing.assert_allclose(hp, H @ p, rtol=1e-6, atol=1e-9)


def test_rosen_reexports_and_point():
    x = rosen_point(6, seed=3)
    assert x.shape == (6,) and x.dtype == np.float64
    assert np.array_equal(x, rosen_point(6, seed=3))
    np.testing.assert_allclose(rosen_der(x), central_diff(rosen, x), rtol=1e-6)
    p = rng(4).standard_normal(6)
    np.testing.assert_allclose(rosen_hess_prod(x, p), rosen_hess(x) @ p, rtol=1e-12)


@pytest.mark.parametrize("x", [0.3, 0.7, -0.9])
def test_scalar_chain_deriv_by_hand(x):
    value, deriv = scalar_chain_deriv_by_hand(x, steps=50)
    np.testing.assert_allclose(value, scalar_chain(x, steps=50), rtol=1e-14)
    fd = (scalar_chain(x + EPS, steps=50) - scalar_chain(x - EPS, steps=50)) / (2 * EPS)
    np.testing.assert_allclose(deriv, fd, rtol=1e-5, atol=1e-8)


def test_indexing_loop_grad_by_hand():
    x = rng(6).standard_normal(7)
    np.testing.assert_allclose(indexing_loop(x), np.sum(np.sin(x) * x), rtol=1e-12)
    np.testing.assert_allclose(
        indexing_loop_grad_by_hand(x), central_diff(indexing_loop, x),
        rtol=1e-6, atol=1e-9,
    )
