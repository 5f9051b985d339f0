"""dualrev.optimize: the SciPy adapter, its caching, and Hessian-free."""

import importlib.util
import itertools
import pathlib
import types

import numpy as np
import pytest
import scipy.optimize
from scipy.optimize import NonlinearConstraint
from scipy.special import expit, log_expit

import dualrev
from dualrev import optimize
from dualrev.optimize import ModelLoss, hessian_free, minimize


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosen_start(n, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 2.0, n)


def logistic_problem(n_samples=300, n_features=8, seed=1):
    r = np.random.default_rng(seed)
    A = r.standard_normal((n_samples, n_features))
    z = A @ r.standard_normal(n_features) + 0.5 * r.standard_normal(n_samples)
    return A, np.where(z >= 0.0, 1.0, -1.0), 1e-2


def logistic_loss(w, A, b, lam):
    return -np.sum(log_expit(b * (A @ w))) / A.shape[0] + 0.5 * lam * np.sum(w * w)


def logistic_grad(w, A, b, lam):
    return A.T @ (-b * expit(-b * (A @ w))) / A.shape[0] + lam * w


def logistic_hessp(w, p, A, b, lam):
    z = A @ w
    return A.T @ (expit(z) * expit(-z) * (A @ p)) / A.shape[0] + lam * p


# ---- minimize ------------------------------------------------------------------

TIGHT = {"newton-cg": {"xtol": 1e-10}, "trust-ncg": {"gtol": 1e-8},
         "trust-krylov": {"gtol": 1e-8}, "trust-constr": {"gtol": 1e-10, "xtol": 1e-12}}


@pytest.mark.parametrize("method", optimize.HESSP_METHODS)
def test_rosenbrock_100_converges_with_every_hessp_method(method):
    res = minimize(rosen, rosen_start(100), method=method, options=TIGHT[method])
    assert res.success
    np.testing.assert_allclose(res.x, np.ones(100), atol=1e-6)


@pytest.mark.parametrize("method", ["trust-ncg", "trust-exact"])
def test_forward_over_reverse_products(method):
    res = minimize(rosen, rosen_start(20), method=method, hvp_mode="fwd-rev",
                   options={"gtol": 1e-10})
    np.testing.assert_allclose(res.x, np.ones(20), atol=1e-8)


@pytest.mark.parametrize("method", ["trust-exact", "BFGS", "L-BFGS-B", "CG", "TNC",
                                    "Nelder-Mead"])
def test_rosenbrock_small_with_other_methods(method):
    options = {"maxiter": 20000, "xatol": 1e-10, "fatol": 1e-14} \
        if method == "Nelder-Mead" else {}
    res = minimize(rosen, rosen_start(3), method=method, tol=1e-12, options=options)
    np.testing.assert_allclose(res.x, np.ones(3), atol=1e-4)


@pytest.mark.parametrize("method", ["Newton-CG", "trust-ncg", "trust-krylov", "dogleg",
                                    "trust-exact", "L-BFGS-B", "BFGS"])
def test_logistic_regression_matches_hand_written_derivatives(method):
    A, b, lam = logistic_problem()
    args = (A, b, lam)
    w0 = np.zeros(A.shape[1])
    hand = {"jac": logistic_grad}
    if method in optimize.HESSP_METHODS:
        hand["hessp"] = logistic_hessp
    elif method in optimize.HESS_METHODS:
        hand["hess"] = lambda w, *a: np.column_stack(
            [logistic_hessp(w, e, *a) for e in np.eye(w.size)])
    options = {"xtol": 1e-12} if method == "Newton-CG" else {"gtol": 1e-12}
    if method == "L-BFGS-B":
        options["ftol"] = 1e-15
    ref = scipy.optimize.minimize(logistic_loss, w0, args=args, method=method,
                                  options=options, **hand)
    res = minimize(logistic_loss, w0, args=args, method=method, options=options)
    np.testing.assert_allclose(res.x, ref.x, atol=1e-6)
    assert np.max(np.abs(logistic_grad(res.x, *args))) < 1e-7


def _counting_fun():
    """``rosen`` that records the value of every point it is called at."""
    points = []

    def fun(x):
        points.append(dualrev.stop_gradient(x).tobytes())
        return rosen(x)
    return fun, points


@pytest.mark.parametrize("method", ["Newton-CG", "trust-ncg", "trust-krylov"])
def test_each_point_recorded_once_and_operator_built_once(method, monkeypatch):
    builds = []

    def counting_operator(f, x, mode="rev-rev", args=()):
        builds.append(np.array(x).tobytes())
        return dualrev.hvp_operator(f, x, mode, args=args)
    monkeypatch.setattr(optimize, "hvp_operator", counting_operator)
    fun, points = _counting_fun()
    res = minimize(fun, rosen_start(20), method=method)
    assert len(points) == len(set(points)), "a point was evaluated twice"
    assert len(builds) == len(set(builds)) == len(points)
    assert res.nhev > 2 * len(builds)  # many products per recorded point
    assert res.nit < len(builds) + 1


@pytest.mark.parametrize("method", ["BFGS", "L-BFGS-B"])
def test_gradient_methods_evaluate_each_point_once(method, monkeypatch):
    monkeypatch.setattr(optimize, "hvp_operator", None)  # never needed here
    fun, points = _counting_fun()
    minimize(fun, rosen_start(5), method=method)
    assert len(points) == len(set(points))


def test_nested_parameters_round_trip():
    target = {"layers": [np.arange(6.0).reshape(2, 3), np.array([-1.0])],
              "scale": 2.5, "pair": (np.ones(2), np.zeros((1, 2)))}
    x0 = {"layers": [np.zeros((2, 3)), np.zeros(1)], "scale": 0.0,
          "pair": (np.zeros(2), np.ones((1, 2)))}
    flat_target, _ = dualrev.tree.ravel_pytree(target)

    def distance(p):
        return sum(np.sum((a - b) ** 2) for a, b in zip(dualrev.tree.flatten(p)[0],
                                                        dualrev.tree.flatten(target)[0]))
    res = minimize(distance, x0, method="trust-ncg")
    assert set(res.x) == {"layers", "scale", "pair"}
    assert isinstance(res.x["layers"], list) and isinstance(res.x["pair"], tuple)
    for got, want in zip(dualrev.tree.flatten(res.x)[0], dualrev.tree.flatten(target)[0]):
        assert np.shape(got) == np.shape(want)
        np.testing.assert_allclose(got, want, atol=1e-8)
    np.testing.assert_allclose(res.x_flat, flat_target, atol=1e-8)


def test_bounds_with_l_bfgs_b():
    res = minimize(lambda x: np.sum((x - 2.0) ** 2), np.zeros(3), method="L-BFGS-B",
                   bounds=[(0.0, 1.0), (-1.0, 3.0), (2.5, 4.0)])
    np.testing.assert_allclose(res.x, [1.0, 2.0, 2.5], atol=1e-7)


def _disc_constraint_seen():
    """``x0^2 + x1^2``, noting whether dualrev traced it (its Jacobian)."""
    seen = {"traced": False}

    def disc(x):
        seen["traced"] |= isinstance(x, dualrev.registry.Tracer)
        return x[0] ** 2 + x[1] ** 2
    return disc, seen


def _far_corner(x):
    return (x[0] - 2.0) ** 2 + (x[1] - 2.0) ** 2


def test_trust_constr_with_nonlinear_constraint():
    disc, seen = _disc_constraint_seen()
    res = minimize(_far_corner, np.zeros(2), method="trust-constr",
                   constraints=NonlinearConstraint(disc, -np.inf, 1.0),
                   options={"gtol": 1e-12, "xtol": 1e-12, "barrier_tol": 1e-12})
    np.testing.assert_allclose(res.x, np.full(2, np.sqrt(0.5)), atol=1e-5)
    assert seen["traced"]
    weighted_hessian = optimize.constraint_hessian(disc, lambda x: x)(res.x_flat, [3.0])
    np.testing.assert_allclose(weighted_hessian @ np.eye(2), 6.0 * np.eye(2))


def test_slsqp_with_dict_constraint():
    disc, seen = _disc_constraint_seen()
    res = minimize(_far_corner, np.zeros(2), method="SLSQP",
                   constraints=[{"type": "ineq", "fun": lambda x: 1.0 - disc(x)}])
    np.testing.assert_allclose(res.x, np.full(2, np.sqrt(0.5)), atol=1e-6)
    assert seen["traced"]


def test_supplying_a_derivative_is_refused():
    with pytest.raises(TypeError, match="jac"):
        minimize(rosen, np.zeros(3), jac=scipy.optimize.rosen_der)


# ---- jac / hessp / hess for direct SciPy use ------------------------------------

def test_callables_agree_with_scipy_rosenbrock_derivatives():
    x = np.random.default_rng(3).uniform(-2.0, 2.0, 7)
    p = np.random.default_rng(4).standard_normal(7)
    np.testing.assert_allclose(optimize.jac(rosen)(x), scipy.optimize.rosen_der(x),
                               rtol=1e-12)
    for mode in ("rev-rev", "fwd-rev"):
        np.testing.assert_allclose(optimize.hessp(rosen, mode)(x, p),
                                   scipy.optimize.rosen_hess_prod(x, p), rtol=1e-12)
    np.testing.assert_allclose(optimize.hess(rosen)(x), scipy.optimize.rosen_hess(x),
                               rtol=1e-12)


def test_callables_pass_scipy_args_through():
    A, b, lam = logistic_problem(50, 4)
    w, p = np.full(4, 0.3), np.arange(4.0)
    np.testing.assert_allclose(optimize.jac(logistic_loss)(w, A, b, lam),
                               logistic_grad(w, A, b, lam), rtol=1e-12)
    np.testing.assert_allclose(optimize.hessp(logistic_loss)(w, p, A, b, lam),
                               logistic_hessp(w, p, A, b, lam), rtol=1e-12)


# ---- Hessian-free ---------------------------------------------------------------------

def mlp_problem(n=96, sizes=(6, 12, 3), seed=0):
    r = np.random.default_rng(seed)
    n_in, n_hidden, n_out = sizes
    params = {"W1": r.standard_normal((n_in, n_hidden)) / np.sqrt(n_in),
              "b1": np.zeros(n_hidden),
              "W2": r.standard_normal((n_hidden, n_out)) / np.sqrt(n_hidden),
              "b2": np.zeros(n_out)}
    X = r.standard_normal((n, n_in))
    y = np.argmax(X[:, :n_out] + 0.3 * r.standard_normal((n, n_out)), axis=1)
    return params, (X, np.eye(n_out)[y])


def mlp(params, batch):
    X, _ = batch
    return np.tanh(X @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]


def cross_entropy(logits, batch):
    _, Y = batch
    return -np.sum(Y * dualrev.log_softmax(logits, axis=1)) / Y.shape[0]


MLP_LOSS = ModelLoss(mlp, cross_entropy)


@pytest.mark.parametrize("damping", [0.0, -1.0, float("nan")])
def test_hessian_free_needs_a_positive_damping(damping):
    with pytest.raises(ValueError, match="damping must be a positive number"):
        hessian_free(lambda w: np.sum(-w ** 2 + w ** 4), np.array([0.1, 0.2]),
                     damping=damping)


@pytest.mark.parametrize("curvature", ["hessian", "gauss-newton"])
def test_hessian_free_trains_the_mlp(curvature):
    params, batch = mlp_problem()
    start = float(MLP_LOSS(params, batch))
    assert start > 0.9  # about log(3) before training
    res = hessian_free(MLP_LOSS, params, [batch], maxiter=15, curvature=curvature)
    assert res.fun < 0.2, res.history
    assert res.nit == len(res.history) <= 15
    assert float(MLP_LOSS(res.params, batch)) == pytest.approx(res.fun)
    assert set(res.params) == set(params)
    assert all(h["cg_iterations"] >= 1 for h in res.history)


def test_gauss_newton_product_is_j_transpose_h_j():
    params, batch = mlp_problem(n=10, sizes=(3, 4, 2))
    flat, unravel = dualrev.tree.ravel_pytree(params)
    v = np.random.default_rng(5).standard_normal(flat.size)
    curvature = dualrev.gauss_newton_operator(MLP_LOSS, params, args=(batch,))
    J = dualrev.jacfwd(lambda f: mlp(unravel(f), batch))(flat).reshape(-1, flat.size)
    logits = mlp(params, batch)
    H_out = dualrev.hessian(lambda o: cross_entropy(o.reshape(logits.shape), batch))(
        logits.ravel())
    np.testing.assert_allclose(curvature.matvec(v), J.T @ (H_out @ (J @ v)), rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(curvature.grad, dualrev.tree.ravel_pytree(
        dualrev.grad(MLP_LOSS)(params, batch))[0], rtol=1e-12)
    assert v @ curvature.matvec(v) >= 0.0


def test_hessian_free_callback_sees_each_step_and_can_stop():
    params, batch = mlp_problem()
    steps = []

    def callback(step):
        steps.append(step)
        return step["iteration"] == 2
    res = hessian_free(MLP_LOSS, params, lambda k: batch, callback=callback, maxiter=10)
    assert [s["iteration"] for s in steps] == [0, 1, 2] and res.nit == 3
    assert {"loss", "grad_norm", "cg_iterations", "damping", "rho", "time",
            "params"} <= set(steps[0])
    losses = [s["loss"] for s in steps]
    assert losses == sorted(losses, reverse=True)


def test_hessian_free_verbose_prints_one_line_per_iteration(capsys):
    hessian_free(lambda w: np.sum((w - 1.0) ** 2), np.zeros(2), maxiter=2, verbose=True,
                 gtol=0.0)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "loss" in lines[0] and "lambda" in lines[0]


def test_hessian_free_leaves_a_maximum_under_negative_curvature():
    # cos has negative curvature near 0; the minima nearest 0.1 are at pi.
    res = hessian_free(lambda w: np.sum(np.cos(w)), np.full(2, 0.1), damping=0.1,
                       maxiter=30, gtol=1e-10)
    np.testing.assert_allclose(res.params, np.full(2, np.pi), atol=1e-8)
    assert res.history[0]["cg_iterations"] == 0  # the gradient step was taken
    assert res.history[0]["loss"] < 2.0 * np.cos(0.1)


def test_hessian_free_consumes_one_batch_per_iteration_from_an_iterator():
    params, batch = mlp_problem()
    drawn = []

    def stream():
        while True:
            drawn.append(len(drawn))
            yield batch
    res = hessian_free(MLP_LOSS, params, stream(), maxiter=4, gtol=0.0)
    assert res.nit == 4 and len(drawn) == 4


def test_gauss_newton_needs_a_split_loss():
    with pytest.raises(TypeError, match="ModelLoss"):
        hessian_free(rosen, np.zeros(2), curvature="gauss-newton")


# ---- the runnable examples ---------------------------------------------------------

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def _load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, kwargs", [("logistic_regression", {}),
                                          ("rosenbrock", {"n": 500})])
def test_examples_run(name, kwargs, capsys):
    _load_example(name).main(**kwargs)
    out = capsys.readouterr().out
    assert "nhev" in out or "nit" in out


def test_mlp_example_reaches_a_low_loss(capsys, tmp_path):
    example = _load_example("mlp_hessian_free")
    example.main(str(tmp_path / "curves.png"))
    out = capsys.readouterr().out
    final = out.split("after")[-1]
    assert "accuracy 1.000" in final.splitlines()[1]  # the Hessian-free line


def test_bounds_by_name_for_dict_parameters():
    def f(p):
        return (p["z"] - 1) ** 2 + (p["a"] + 1) ** 2 + np.sum((p["w"] - 3) ** 2)
    res = minimize(f, {"z": 0.0, "a": 0.0, "w": np.zeros(2)}, method="L-BFGS-B",
                   bounds={"z": (0.5, 0.6), "w": (0.0, np.array([1.0, 5.0]))})
    assert res.x["z"] == pytest.approx(0.6) and res.x["a"] == pytest.approx(-1.0)
    np.testing.assert_allclose(res.x["w"], [1.0, 3.0], atol=1e-6)
    assert np.ndim(res.x["z"]) == 0 and not isinstance(res.x["z"], np.ndarray)
    with pytest.raises(ValueError, match="zz"):
        minimize(f, {"z": 0.0, "a": 0.0, "w": np.zeros(2)}, method="L-BFGS-B",
                 bounds={"zz": (0, 1)})


# ---- hessian_free: Martens' additions ------------------------------------------------

def mlp_example_losses(params, batch):
    """The per-example terms whose sum is MLP_LOSS."""
    _, Y = batch
    return -np.sum(Y * dualrev.log_softmax(mlp(params, batch), axis=1), axis=1) / Y.shape[0]


def test_martens_diagonal_is_the_sum_of_squared_per_example_gradients():
    params, (X, Y) = mlp_problem(n=6, sizes=(3, 4, 2))
    per_example = [dualrev.tree.ravel_pytree(dualrev.grad(MLP_LOSS)(
        params, (X[i:i + 1], Y[i:i + 1])))[0] / 6 for i in range(6)]
    expected = (np.sum(np.square(per_example), axis=0) + 0.5) ** 0.75
    np.testing.assert_allclose(
        dualrev.hessian_free.martens_diagonal(mlp_example_losses, params, (X, Y),
                                              damping=0.5), expected, rtol=1e-10)


def test_hessian_free_with_martens_preconditioner_trains_the_mlp():
    params, batch = mlp_problem()
    res = hessian_free(MLP_LOSS, params, [batch], maxiter=15, curvature="gauss-newton",
                       preconditioner="martens", example_losses=mlp_example_losses)
    assert res.fun < 0.2, res.history
    with pytest.raises(TypeError, match="example_losses"):
        hessian_free(MLP_LOSS, params, [batch], preconditioner="martens")


def test_hessian_free_preconditioner_callable_is_applied():
    c = np.array([1.0, 10.0, 100.0])
    target = np.array([1.0, -2.0, 3.0])

    def f(w):
        return np.sum(c * (w - target) ** 2)   # H = diag(2 c)

    def exact(x, batch, damping):
        return 2.0 * c + damping               # M = the damped curvature itself
    plain = hessian_free(f, np.zeros(3), maxiter=30)
    res = hessian_free(f, np.zeros(3), maxiter=30, preconditioner=exact)
    # from zero, preconditioned CG solves M d = -g in its first step
    assert res.history[0]["cg_iterations"] == 1 < 3 <= plain.history[0]["cg_iterations"]
    assert sum(h["cg_iterations"] for h in res.history) \
        < sum(h["cg_iterations"] for h in plain.history)
    np.testing.assert_allclose(res.params, target, atol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        hessian_free(lambda w: np.sum(w ** 2), np.ones(2), maxiter=1,
                     preconditioner=lambda x, b, d: -np.ones(2))


def test_hessian_free_counts_evaluations():
    params, batch = mlp_problem()
    res = hessian_free(MLP_LOSS, params, [batch], maxiter=4, curvature="gauss-newton",
                       gtol=0.0)
    assert res.ngev == res.nit == 4
    assert res.nhev >= sum(h["cg_iterations"] for h in res.history)
    assert res.nfev >= 2 * res.nit   # one value with each gradient, one per trial step


def test_hessian_free_backtracks_over_cg_iterates():
    params, batch = mlp_problem()
    res = hessian_free(MLP_LOSS, params, [batch], maxiter=10, curvature="hessian",
                       damping=1e-4, cg_maxiter=100)
    steps = [(h["cg_step"], h["cg_iterations"]) for h in res.history]
    assert all(step <= it for step, it in steps)
    assert any(step < it for step, it in steps), steps  # an earlier iterate was chosen
    off = hessian_free(MLP_LOSS, params, [batch], maxiter=10, curvature="hessian",
                       damping=1e-4, cg_maxiter=100, backtrack_cg=False)
    assert all(h["cg_step"] == h["cg_iterations"] for h in off.history)


def test_hessian_free_separate_curvature_batch():
    params, (X, Y) = mlp_problem()
    small = (X[:40], Y[:40])
    seen = []

    def curvature_batches(k):
        seen.append(k)
        return small
    res = hessian_free(MLP_LOSS, params, [(X, Y)], maxiter=12, curvature="gauss-newton",
                       curvature_batches=curvature_batches)
    assert seen == list(range(res.nit))
    assert res.fun < 0.3
    assert res.fun == pytest.approx(float(MLP_LOSS(res.params, (X, Y))))


def test_hessian_free_stops_on_ftol_and_time(monkeypatch):
    res = hessian_free(lambda w: np.sum((w - 1.0) ** 2) + 0.1 * np.sum(w ** 4), np.zeros(3),
                       maxiter=100, ftol=1e-3, gtol=0.0)
    assert res.success and "ftol" in res.message and res.nit < 100
    # A clock that advances one second per reading: read at the start, then
    # once per iteration, so iteration k ends at k + 1 seconds.
    clock = types.SimpleNamespace(perf_counter=itertools.count(0.0).__next__)
    monkeypatch.setattr("dualrev.hessian_free.time", clock)
    params, batch = mlp_problem()
    res = hessian_free(MLP_LOSS, params, [batch], maxiter=1000, max_time=2.5, gtol=0.0)
    assert res.success and "max_time" in res.message
    assert res.nit == 3
    assert [h["time"] for h in res.history] == [1.0, 2.0, 3.0]


def test_gauss_newton_with_l2_penalty_reaches_the_penalised_minimum():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.1 * rng.standard_normal(30)
    lam = 2.0
    loss = ModelLoss(lambda w, batch: batch[0] @ w,
                     lambda out, batch: 0.5 * np.sum((out - batch[1]) ** 2),
                     penalty=lambda w: 0.5 * lam * np.sum(w ** 2))
    res = hessian_free(loss, np.zeros(4), [(X, y)], maxiter=20, curvature="gauss-newton",
                       damping=1e-3)
    ridge = np.linalg.solve(X.T @ X + lam * np.eye(4), X.T @ y)
    np.testing.assert_allclose(res.params, ridge, rtol=1e-6)


def test_hessian_free_stops_on_a_non_finite_loss():
    from dualrev.finite import NonFiniteError
    with np.errstate(all="ignore"), pytest.raises(NonFiniteError, match="log"):
        hessian_free(lambda w: np.sum(np.log(w)) + np.sum(w ** 2), np.array([-1.0, 1.0]),
                     maxiter=3)
