"""Jacobian and Gauss-Newton operators, least squares, non-finite checks."""

import numpy as np
import pytest
import scipy.optimize

import dualrev
from dualrev.compiled import kept_on
from dualrev.finite import NonFiniteError, first_nonfinite_op
from dualrev.optimize import ModelLoss, least_squares, minimize


def structured(p):
    return {"a": np.exp(p["x"]) * p["y"], "b": np.stack([p["y"] ** 2, np.sin(p["y"])])}


POINT = {"x": np.array([0.1, -0.4, 0.7]), "y": 1.3}


def dense_jacobian(f, x):
    flat, unravel = dualrev.tree.ravel_pytree(x)

    def on_flat(v):
        return np.concatenate([np.reshape(leaf, -1) for leaf in
                               dualrev.tree.flatten(f(unravel(v)))[0]])
    return dualrev.jacfwd(on_flat)(flat)


def test_jacobian_operator_products_match_the_dense_jacobian():
    J = dualrev.jacobian_operator(structured, POINT)
    dense = dense_jacobian(structured, POINT)
    rng = np.random.default_rng(0)
    v, u = rng.standard_normal(4), rng.standard_normal(5)
    assert J.shape == dense.shape == (5, 4)
    np.testing.assert_allclose(J @ v, dense @ v, rtol=1e-13)
    np.testing.assert_allclose(J.T @ u, dense.T @ u, rtol=1e-13)
    np.testing.assert_allclose(J.matmat(np.eye(4)), dense, rtol=1e-13)
    np.testing.assert_allclose(J.rmatmat(np.eye(5)), dense.T, rtol=1e-13)
    np.testing.assert_allclose(J.value, dualrev.tree.ravel_pytree(structured(POINT))[0])


def test_jacobian_operator_does_not_call_f_again():
    calls = []

    def f(x):
        calls.append(1)
        return np.tanh(x) * x[0]
    J = dualrev.jacobian_operator(f, np.array([0.3, 0.5]))
    J.matmat(np.eye(2)), J @ np.ones(2), J.T @ np.ones(2)
    assert len(calls) == 1


def test_gauss_newton_operator_of_a_residual_is_jt_j():
    A = np.random.default_rng(1).standard_normal((6, 3))

    def r(w):
        return np.tanh(A @ w) - 0.5
    w = np.array([0.2, -0.1, 0.4])
    G = dualrev.gauss_newton_operator(r, w)
    J = dualrev.jacfwd(r)(w)
    np.testing.assert_allclose(G.matmat(np.eye(3)), J.T @ J, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(G.grad, J.T @ r(w), rtol=1e-12)
    assert G.value == pytest.approx(0.5 * np.sum(r(w) ** 2))


def test_gauss_newton_operator_with_a_loss_and_a_penalty():
    X = np.random.default_rng(2).standard_normal((5, 2))

    def model(w, X):
        return np.exp(X @ w)

    def out_loss(out, X):
        return np.sum(np.log1p(out))

    def penalty(w):
        return 0.3 * np.sum(w ** 2)
    w = np.array([0.1, -0.2])
    G = dualrev.gauss_newton_operator(ModelLoss(model, out_loss, penalty), w, args=(X,))
    J = dualrev.jacfwd(model)(w, X)
    out = model(w, X)
    H_out = dualrev.hessian(out_loss)(out, X)
    expected = J.T @ H_out @ J + 0.6 * np.eye(2)
    np.testing.assert_allclose(G.matmat(np.eye(2)), expected, rtol=1e-12)
    full = ModelLoss(model, out_loss, penalty)
    np.testing.assert_allclose(G.grad, dualrev.grad(full)(w, X), rtol=1e-12)
    assert G.value == pytest.approx(float(full(w, X)))
    with pytest.raises(TypeError, match="loss=None"):
        dualrev.gauss_newton_operator(full, w, loss=out_loss, args=(X,))


def test_jacobian_auto_remembers_its_choice_per_structure():
    calls = []

    def f(x):
        calls.append(1)
        return np.sin(x[:1]) * x
    jac = dualrev.jacobian(f)
    jac(np.ones(3))
    first = len(calls)
    jac(np.full(3, 2.0))
    assert len(calls) - first == 1  # one forward pass: no new mode choice
    assert list(jac.chosen_modes.values()) == ["fwd"]
    jac(np.ones(4))
    assert len(jac.chosen_modes) == 2
    np.testing.assert_allclose(jac(np.ones(4)), dualrev.jacrev(f)(np.ones(4)))


# ---- least squares -----------------------------------------------------------------

T = np.linspace(0.0, 4.0, 80)
TRUE = {"amplitude": np.array([2.0, 0.5]), "rate": np.array([1.5, 0.2])}
Y = np.sum(TRUE["amplitude"][:, None] * np.exp(-TRUE["rate"][:, None] * T), axis=0)


def two_exponentials(p, t, y):
    return np.sum(p["amplitude"][:, None] * np.exp(-p["rate"][:, None] * t), axis=0) - y


def by_hand_jacobian(x, t, y):
    a, k = x[:2], x[2:]
    e = np.exp(-k[:, None] * t)
    return np.column_stack([e[0], e[1], -a[0] * t * e[0], -a[1] * t * e[1]])


START = {"amplitude": np.array([1.0, 1.0]), "rate": np.array([1.0, 0.1])}


@pytest.mark.parametrize("method,jac_mode,tr_solver", [
    ("trf", "auto", None), ("dogbox", "auto", None), ("lm", "auto", None),
    ("trf", "rev", None), ("trf", "auto", "lsmr"), ("dogbox", "operator", None)])
def test_least_squares_matches_scipy_with_the_hand_written_jacobian(method, jac_mode,
                                                                    tr_solver):
    res = least_squares(two_exponentials, START, args=(T, Y), method=method,
                        jac_mode=jac_mode, tr_solver=tr_solver)
    flat0 = dualrev.tree.ravel_pytree(START)[0]

    def flat_residual(x, t, y):
        return two_exponentials({"amplitude": x[:2], "rate": x[2:]}, t, y)
    expected = scipy.optimize.least_squares(flat_residual, flat0, args=(T, Y),
                                            jac=by_hand_jacobian, method=method,
                                            tr_solver=tr_solver)
    np.testing.assert_allclose(res.x_flat, expected.x, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(res.x["rate"], TRUE["rate"], rtol=1e-6)
    assert set(res.x) == set(START)
    assert res.jac_mode == ({"auto": "operator" if tr_solver == "lsmr" else "fwd"}
                            .get(jac_mode, jac_mode))


def test_least_squares_wide_problem_picks_reverse_mode():
    # one residual of many parameters: reverse mode is the cheap direction
    res = least_squares(lambda w: np.atleast_1d(np.sum((w - 1.0) ** 2)), np.zeros(50))
    assert res.jac_mode == "rev"


def test_least_squares_compile_keeps_the_staged_jacobian():
    first = least_squares(two_exponentials, START, args=(T, Y), compile=True)
    staged = kept_on(two_exponentials, "least_squares")
    again = least_squares(two_exponentials, START, args=(T, Y), compile=True)
    assert kept_on(two_exponentials, "least_squares") is staged and len(staged) == 2
    np.testing.assert_array_equal(first.x_flat, again.x_flat)
    eager = least_squares(two_exponentials, START, args=(T, Y))
    np.testing.assert_allclose(first.x_flat, eager.x_flat, rtol=1e-12)


def test_least_squares_refuses_a_jacobian_and_bad_modes():
    with pytest.raises(TypeError, match="jac"):
        least_squares(two_exponentials, START, args=(T, Y), jac=by_hand_jacobian)
    with pytest.raises(ValueError, match="jac_mode"):
        least_squares(two_exponentials, START, args=(T, Y), jac_mode="sideways")
    with pytest.raises(ValueError, match="lsmr"):
        least_squares(two_exponentials, START, args=(T, Y), method="lm",
                      jac_mode="operator")


# ---- non-finite values ------------------------------------------------------------

def test_first_nonfinite_op_finds_the_value_op_and_the_gradient_op():
    with np.errstate(all="ignore"):
        assert first_nonfinite_op(lambda x: np.sum(np.log(x)), np.array([1.0, -1.0])) \
            .startswith("log")
        where = first_nonfinite_op(lambda x: np.sum(np.sqrt(x)), np.array([1.0, 0.0]))
        assert "gradient" in where
        assert first_nonfinite_op(lambda x: np.sum(x ** 2), np.array([1.0, 0.0])) is None


@pytest.mark.parametrize("method", ["L-BFGS-B", "trust-ncg", "Newton-CG", "BFGS"])
def test_minimize_stops_on_a_nan_naming_the_iterate_and_op(method):
    def f(x):
        return np.sum(np.log(x)) + np.sum(x ** 2)
    with np.errstate(all="ignore"), pytest.raises(NonFiniteError, match="log") as info:
        minimize(f, np.array([1.0, 0.5]), method=method)
    assert np.any(info.value.iterate <= 0.0)
    assert "iterate x = [" in str(info.value)


def test_minimize_check_finite_false_lets_scipy_go_on():
    def f(x):
        return np.sum(np.log(x)) + np.sum(x ** 2)
    x0, options = np.array([1.0, 0.5]), {"maxfun": 20}
    with np.errstate(all="ignore"):
        res = minimize(f, x0, method="L-BFGS-B", check_finite=False, options=options)
        plain = scipy.optimize.minimize(f, x0, jac=lambda x: 1.0 / x + 2.0 * x,
                                        method="L-BFGS-B", options=options)
    assert np.isnan(res.fun)  # SciPy's own outcome, unchecked
    assert np.isnan(plain.fun) and not res.success
    assert (res.nfev, res.nit) == (plain.nfev, plain.nit) and res.nfev > options["maxfun"]


def test_least_squares_stops_on_a_nan_residual():
    with np.errstate(all="ignore"), pytest.raises(NonFiniteError, match="sqrt"):
        least_squares(lambda w: np.sqrt(w) - 3.0 + 0.0 * w, np.array([-1.0, 4.0]))


def test_operators_check_products():
    with np.errstate(all="ignore"):
        J = dualrev.jacobian_operator(lambda x: np.sqrt(x) * 0.0 + x, np.array([0.0, 1.0]))
        with pytest.raises(NonFiniteError, match="product"):
            J @ np.ones(2)
        unchecked = dualrev.jacobian_operator(lambda x: np.sqrt(x) * 0.0 + x,
                                              np.array([0.0, 1.0]), check_finite=False)
        assert np.isnan((unchecked @ np.ones(2))[0])


# ---- minimize: callback and float32 ----------------------------------------------

def test_minimize_callback_sees_the_structure_of_x0():
    seen = []

    def f(p):
        return np.sum((p["w"] - 1.0) ** 2) + (p["b"] + 2.0) ** 2
    minimize(f, {"w": np.zeros(2), "b": 0.0}, method="BFGS", callback=seen.append)
    assert seen and all(set(p) == {"w", "b"} and np.shape(p["w"]) == (2,) for p in seen)
    results = []
    minimize(f, {"w": np.zeros(2), "b": 0.0}, method="trust-ncg",
             callback=lambda intermediate_result: results.append(intermediate_result))
    assert set(results[-1].x) == {"w", "b"} and results[-1].x_flat.shape == (3,)


@pytest.mark.parametrize("method", ["BFGS", "trust-ncg"])
def test_minimize_evaluates_float32_parameters_in_float32(method):
    dtypes = set()

    def f(p):
        dtypes.add(np.asarray(dualrev.stop_gradient(p["w"])).dtype)
        return np.sum((p["w"] - 1.5) ** 2) + np.sum(p["w"] ** 4)
    res = minimize(f, {"w": np.zeros(3, np.float32)}, method=method)
    assert res.x["w"].dtype == np.float32
    assert dtypes == {np.dtype(np.float32)}
    w = res.x["w"].astype(np.float64)
    np.testing.assert_allclose(2 * (w - 1.5) + 4 * w ** 3, 0.0, atol=1e-4)


def test_finite_check_tells_huge_finite_values_from_inf():
    from dualrev.finite import require_finite
    require_finite("value", np.array([1e308, 1e308]), np.zeros(1))  # sum overflows, entries do not
    for bad in (np.array([1.0, np.nan]), np.array([-np.inf, np.inf]), np.float32(np.inf)):
        with pytest.raises(NonFiniteError, match="non-finite value"):
            require_finite("value", bad, np.zeros(1))


def test_gauss_newton_operator_names_the_op_of_a_non_finite_residual():
    with np.errstate(all="ignore"), pytest.raises(NonFiniteError, match="sqrt"):
        dualrev.gauss_newton_operator(lambda w: {"r": np.sqrt(w - 1.0) + w},
                                      np.array([0.5, 2.0]))
    # the output loss's own first non-finite op is named too
    with np.errstate(all="ignore"), pytest.raises(NonFiniteError, match="log"):
        dualrev.gauss_newton_operator(lambda w: w - 1.0, np.array([0.5, 2.0]),
                                      loss=lambda out: np.sum(np.log(out)))
