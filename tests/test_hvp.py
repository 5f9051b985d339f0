"""Hessian-vector products: every mode, the SciPy operator, full Hessians."""

import gc
import tracemalloc
import weakref

import numpy as np
import pytest
import scipy.special as sp
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import rosen_hess, rosen_hess_prod
from scipy.sparse.linalg import cg, eigsh, minres

import dualrev
from dualrev.hvp import HVP_MODES, OPERATOR_MODES, GradRecording
from dualrev.tree import flatten, ravel_pytree

EXACT_MODES = ("rev-rev", "fwd-rev", "rev-fwd")


def rosen(x):
    """scipy.optimize.rosen, written in plain NumPy (SciPy's converts its input)."""
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2.0) ** 2.0 + (1 - x[:-1]) ** 2.0)


def close(a, b, rtol):
    """Relative agreement measured against the largest entry of ``b``."""
    scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
    assert_allclose(a, b, rtol=0, atol=rtol * scale)


def rosen_case(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-2.0, 2.0, n), rng.standard_normal(n)


# ---- Rosenbrock against SciPy's hand-written derivatives -------------------------

@pytest.mark.parametrize("n", [2, 10, 1000])
@pytest.mark.parametrize("mode", HVP_MODES)
def test_rosen_hvp_matches_scipy(n, mode):
    x, v = rosen_case(n)
    rtol = 1e-6 if mode == "fd" else 1e-13
    close(dualrev.hvp(rosen, x, v, mode=mode), rosen_hess_prod(x, v), rtol)


@pytest.mark.parametrize("n", [2, 10, 1000])
@pytest.mark.parametrize("mode", OPERATOR_MODES)
def test_rosen_operator_matches_scipy(n, mode):
    x, v = rosen_case(n)
    H = dualrev.hvp_operator(rosen, x, mode=mode)
    assert H.shape == (n, n) and H.dtype == np.float64
    close(H @ v, rosen_hess_prod(x, v), 1e-13)
    close(H.matvec(2 * v), rosen_hess_prod(x, 2 * v), 1e-13)  # swept again
    assert H.value == pytest.approx(rosen(x), rel=1e-15)


@pytest.mark.parametrize("n", [2, 10, 1000])
@pytest.mark.parametrize("mode", ["fwd-rev", "rev-rev"])
def test_rosen_hessian_matches_scipy(n, mode):
    x, _ = rosen_case(n)
    close(dualrev.hessian(rosen, mode=mode)(x), rosen_hess(x), 1e-13)


@pytest.mark.parametrize("mode", OPERATOR_MODES)
def test_operator_matmat_is_the_hessian_in_one_pass(mode, monkeypatch):
    x, _ = rosen_case(7)
    H = dualrev.hvp_operator(rosen, x, mode=mode)
    recording = type(H._recording)
    passes = []
    for name in ("forward", "reverse"):
        sweep = getattr(recording, name)
        monkeypatch.setattr(recording, name, lambda self, *a, sweep=sweep, name=name, **k:
                            passes.append(name) or sweep(self, *a, **k))
    close(H @ np.eye(7), rosen_hess(x), 1e-13)
    close(H.matmat(np.eye(7)[:, :3]), rosen_hess(x)[:, :3], 1e-13)
    close(H.T @ np.eye(7), rosen_hess(x), 1e-13)
    assert passes == ["forward"] * 3   # one batched replay per matmat, not one per column
    H @ np.ones(7)
    assert passes[-1] == {"rev-rev": "reverse", "fwd-rev": "forward"}[mode]


# ---- exact results -------------------------------------------------------------

@pytest.mark.parametrize("mode", ["fwd-rev", "rev-rev"])
def test_quadratic_hessian_is_symmetric_part_exactly(mode):
    rng = np.random.default_rng(3)
    A = rng.integers(-5, 6, (6, 6)).astype(float)   # not symmetric
    b = rng.integers(-5, 6, 6).astype(float)
    x = rng.standard_normal(6)

    def quadratic(x):
        return 0.5 * x @ A @ x + b @ x
    assert_array_equal(dualrev.hessian(quadratic, mode=mode)(x), (A + A.T) / 2)
    assert_array_equal(dualrev.hvp_operator(quadratic, x, mode=mode) @ np.eye(6),
                       (A + A.T) / 2)


@pytest.mark.parametrize("mode", HVP_MODES)
def test_quadratic_hvp(mode):
    rng = np.random.default_rng(4)
    A = rng.integers(-5, 6, (5, 5)).astype(float)
    x, v = rng.standard_normal(5), rng.integers(-3, 4, 5).astype(float)
    rtol = 1e-9 if mode == "fd" else 1e-15
    close(dualrev.hvp(lambda x: 0.5 * x @ A @ x, x, v, mode=mode), (A + A.T) / 2 @ v, rtol)


# ---- symmetry and agreement over the op families ----------------------------------

W = np.array([0.3, -1.2, 0.7, 2.0, -0.4])
M = np.arange(25.0).reshape(5, 5) / 25 - 0.3


def case(ops, f, low=0.2, high=0.8):
    return pytest.param(f, low, high, ops, id="-".join(ops))


# Each case names the differentiable ops it exercises (checked below); the
# point is drawn from [low, high), inside every op's domain and away from kinks.
CASES = [
    case(["sin", "cos", "tan"], lambda x: np.sum(W * np.sin(x) * np.cos(x) + np.tan(x) ** 2)),
    case(["sinh", "cosh", "tanh"], lambda x: np.sum(np.sinh(x) * np.cosh(W * x) + np.tanh(x) ** 3)),
    case(["arcsin", "arccos", "arctan"],
         lambda x: np.sum(np.arcsin(x) * np.arccos(x) + W * np.arctan(x) ** 2)),
    case(["arcsinh", "arccosh", "arctanh"],
         lambda x: np.sum(np.arcsinh(x) * np.arccosh(1 + x) + np.arctanh(x) ** 2)),
    case(["exp", "exp2", "expm1"], lambda x: np.sum(np.exp(W * x) * np.exp2(x) + np.expm1(x) ** 2)),
    case(["log", "log2", "log10", "log1p"],
         lambda x: np.sum(np.log(x) * np.log2(1 + x) + np.log10(x) ** 2 * np.log1p(x))),
    case(["sqrt", "cbrt", "square", "reciprocal"],
         lambda x: np.sum(np.sqrt(x) * np.cbrt(x) + np.square(x) * np.reciprocal(1 + x))),
    case(["expit", "logit", "log_expit"],
         lambda x: np.sum(sp.expit(W * x) * sp.logit(x) + sp.log_expit(x) ** 2)),
    case(["erf", "erfc", "gammaln", "polygamma"],
         lambda x: np.sum(sp.erf(x) * sp.erfc(W * x) + sp.gammaln(1 + x) ** 2)),
    case(["power", "divide"], lambda x: np.sum(x ** x[::-1] + x ** 3 / (1 + x[0] * x))),
    case(["multiply", "subtract", "negative", "add"],
         lambda x: np.sum((x - W * x ** 2) * (x + W * x) * -x)),
    case(["abs", "maximum", "minimum"],
         lambda x: np.sum(np.abs(x - 0.5 + 1e-3 * W) * x + np.maximum(x, 0.5 + 1e-3 * W) ** 2
                          * np.minimum(x ** 2, 0.45 + 1e-3 * W))),
    case(["fmax", "fmin", "where"],
         lambda x: np.sum(np.fmax(x, 0.45 + 1e-3 * W) ** 3 + np.fmin(x * x, 0.5 + 1e-3 * W)
                          * np.where(W > 0, x ** 2, np.sin(x)))),
    case(["matmul", "transpose"], lambda x: (x @ M @ x) ** 2 + np.sum((M.T @ x) * x ** 3)),
    case(["reshape", "transpose"],
         lambda x: np.sum(np.sin(np.reshape(x[:4], (2, 2)).T) * np.reshape(x[1:], (2, 2)))),
    case(["sum", "prod"], lambda x: np.prod(x) * np.sum(x ** 2, keepdims=True)[0]),
    case(["cumsum", "cumprod"], lambda x: np.sum(np.cumsum(x) ** 2 * np.cumprod(x + 0.5))),
    case(["logsumexp", "amax", "amin"],
         lambda x: dualrev.logsumexp(3 * x * W) + np.max(x * x + W) * np.min(np.exp(x) - W)),
    case(["getitem", "untake"],
         lambda x: np.sum(x[1:] * x[:-1] ** 2) + np.sum(x[np.array([0, 3, 3, 1])] ** 3)),
    case(["concatenate", "broadcast_to"],
         lambda x: np.sum(np.concatenate([x, x ** 2]) ** 2) * np.sum(np.broadcast_to(x, (3, 5)) ** 3)),
    case(["remainder", "mean", "var"],
         lambda x: np.sum(np.remainder(3 * x, 1.3) ** 2) + np.mean(x ** 3) * np.var(x)),
]


def recorded_ops(f, x):
    """Ops on the recorded backward tape of ``f``: its forward and backward ops."""
    tape = GradRecording(f, x).tape
    return {record[0].name for record in tape.records if record is not None}


@pytest.mark.parametrize("f, low, high, ops", CASES)
def test_case_exercises_its_ops(f, low, high, ops):
    primitives = set(ops) & set(dualrev.OPS)   # composites record their primitives
    assert primitives <= recorded_ops(f, np.linspace(low, high, 5))


def hessian_of_case(f, x):
    H = dualrev.hessian(f)(x)
    assert_allclose(H, H.T, rtol=1e-10, atol=1e-12)
    return H


@pytest.mark.parametrize("f, low, high, ops", CASES)
def test_modes_agree_and_are_symmetric(f, low, high, ops):
    rng = np.random.default_rng(5)
    x = rng.uniform(low, high, 5)
    u, v = rng.standard_normal(5), rng.standard_normal(5)
    Hv = {mode: dualrev.hvp(f, x, v, mode=mode) for mode in HVP_MODES}
    Hu = dualrev.hvp(f, x, u)
    for mode in EXACT_MODES:
        close(Hv[mode], Hv["rev-rev"], 1e-10)
    close(Hv["fd"], Hv["rev-rev"], 1e-5)        # an independent check
    assert u @ Hv["rev-rev"] == pytest.approx(v @ Hu, rel=1e-10, abs=1e-12)
    H = hessian_of_case(f, x)
    close(H @ v, Hv["rev-rev"], 1e-10)
    for mode in OPERATOR_MODES:
        close(dualrev.hvp_operator(f, x, mode=mode) @ v, Hv["rev-rev"], 1e-10)


def spec_cases():
    """One case per differentiable spec of dualrev.testing: its largest shapes."""
    from dualrev.testing.op_specs import SPECS
    return [pytest.param(spec, max(spec.shapes, key=lambda shapes: sum(map(len, shapes))),
                         id=spec.name) for spec in SPECS if spec.differentiable]


def scalar_of_spec(spec, args):
    """``x -> sum(cos(leaf) * weights)`` over the op's output, ``x`` its float arguments."""
    floats = [i for i, a in enumerate(args) if np.asarray(a).dtype.kind == "f"]

    def scalar(x):
        full = list(args)
        for i, xi in zip(floats, x):
            full[i] = xi
        leaves = flatten(spec.fn(*full))[0]
        return sum(np.sum(np.cos(leaf) * np.linspace(0.5, 1.5, np.size(leaf)).reshape(np.shape(leaf)))
                   for leaf in leaves)
    return scalar, tuple(args[i] for i in floats)


@pytest.mark.parametrize("spec, shapes", spec_cases())
def test_registry_ops_modes_agree_and_are_symmetric(spec, shapes):
    rng = np.random.default_rng(10)
    scalar, x = scalar_of_spec(spec, spec.draw(shapes, rng))
    flat, unravel = ravel_pytree(x)
    u, v = unravel(rng.standard_normal(flat.size)), unravel(rng.standard_normal(flat.size))
    Hv = {mode: ravel_pytree(dualrev.hvp(scalar, x, v, mode=mode))[0] for mode in HVP_MODES}
    Hu = ravel_pytree(dualrev.hvp(scalar, x, u))[0]
    for mode in EXACT_MODES:
        close(Hv[mode], Hv["rev-rev"], 1e-10)
    close(Hv["fd"], Hv["rev-rev"], 1e-4)
    uf, vf = ravel_pytree(u)[0], ravel_pytree(v)[0]
    assert uf @ Hv["rev-rev"] == pytest.approx(vf @ Hu, rel=1e-9, abs=1e-10)
    for mode in OPERATOR_MODES:
        close(dualrev.hvp_operator(scalar, x, mode=mode) @ vf, Hv["rev-rev"], 1e-10)


def test_polygamma_in_the_hessian():
    # d^2/dx^2 gammaln(x) = polygamma(1, x): the gradient's rule is recorded.
    x = np.array([0.5, 1.5, 4.0])
    close(dualrev.hessian(lambda x: np.sum(sp.gammaln(x)))(x), np.diag(sp.polygamma(1, x)), 1e-13)


# ---- structures, args, value_grad_hvp -------------------------------------------

def mlp_like(params, X):
    h = np.tanh(X @ params["W"] + params["b"])
    return np.sum(h ** 2) + 0.1 * np.sum(params["W"] ** 2)


@pytest.fixture
def tree_problem():
    rng = np.random.default_rng(6)
    params = {"W": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    X = rng.standard_normal((4, 3))
    return params, X


@pytest.mark.parametrize("mode", HVP_MODES)
def test_structured_hvp(tree_problem, mode):
    params, X = tree_problem
    flat, unravel = ravel_pytree(params)
    v = unravel(np.random.default_rng(7).standard_normal(flat.size))
    full = dualrev.hessian(lambda p: mlp_like(unravel(p), X))(flat)
    Hv = dualrev.hvp(mlp_like, params, v, mode=mode, args=(X,))
    assert set(Hv) == {"W", "b"} and Hv["W"].shape == (3, 2)
    close(ravel_pytree(Hv)[0], full @ ravel_pytree(v)[0], 1e-5 if mode == "fd" else 1e-12)


@pytest.mark.parametrize("mode", OPERATOR_MODES)
def test_structured_operator(tree_problem, mode):
    params, X = tree_problem
    flat, unravel = ravel_pytree(params)
    H = dualrev.hvp_operator(mlp_like, params, mode=mode, args=(X,))
    full = dualrev.hessian(lambda p: mlp_like(unravel(p), X))(flat)
    close(H @ np.eye(flat.size), full, 1e-12)
    value, g = dualrev.value_and_grad(mlp_like)(params, X)
    assert H.value == pytest.approx(float(value), rel=1e-15)
    close(H.grad, ravel_pytree(g)[0], 1e-15)
    assert H.unravel(H.grad)["W"].shape == (3, 2)


def test_value_grad_hvp_matches_separate_calls(tree_problem):
    params, X = tree_problem
    v = {"W": np.ones((3, 2)), "b": np.array([1.0, -1.0])}
    value, g, Hv = dualrev.value_grad_hvp(mlp_like, params, v, args=(X,))
    value_ref, g_ref = dualrev.value_and_grad(mlp_like)(params, X)
    Hv_ref = dualrev.hvp(mlp_like, params, v, mode="fwd-rev", args=(X,))
    assert isinstance(value, float) and value == pytest.approx(float(value_ref), rel=1e-15)
    for key in params:
        close(g[key], g_ref[key], 1e-15)
        close(Hv[key], Hv_ref[key], 1e-12)


def test_scalar_argument():
    assert float(dualrev.hvp(lambda x: x ** 4, 2.0, 1.5)) == pytest.approx(48 * 1.5)
    assert float(dualrev.hvp(lambda x: x ** 4, 2.0, 1.5, mode="rev-fwd")) == pytest.approx(72.0)


@pytest.mark.parametrize("mode", HVP_MODES)
def test_leaf_without_curvature_gets_zeros(mode):
    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0, 5.0])
    Hv = dualrev.hvp(lambda t: np.sum(t[0] ** 3) + np.sum(t[1]), (x, y), (x, y), mode=mode)
    close(Hv[0], 6 * x * x, 1e-6 if mode == "fd" else 1e-15)
    assert_allclose(Hv[1], np.zeros(3), atol=1e-6 if mode == "fd" else 0)


def test_function_independent_of_x_has_zero_hessian():
    H = dualrev.hvp_operator(lambda x, c: np.sum(c ** 2), np.ones(3), args=(np.ones(2),))
    assert_array_equal(H @ np.ones(3), np.zeros(3))
    assert_array_equal(dualrev.hvp(lambda x: np.sum(x), np.ones(3), np.ones(3)), np.zeros(3))


def test_bad_arguments_raise():
    x = np.ones(3)
    with pytest.raises(ValueError, match="mode"):
        dualrev.hvp(rosen, x, x, mode="rev")
    with pytest.raises(ValueError, match="mode"):
        dualrev.hvp_operator(rosen, x, mode="fd")
    with pytest.raises(ValueError, match="shape"):
        dualrev.hvp(rosen, x, np.ones(2))


# ---- higher order ----------------------------------------------------------------

@pytest.mark.parametrize("mode", EXACT_MODES)
def test_gradient_of_hvp_is_the_third_derivative(mode):
    # f = sum(x^4 + x0 * x^3): grad_x u.(H v) = T[u, v, .], T by hand.
    x = np.array([0.5, -1.0, 2.0])
    u, v = np.array([1.0, 2.0, -1.0]), np.array([0.5, 1.0, 3.0])

    def f(x):
        return np.sum(x ** 4) + x[0] * np.sum(x ** 3)

    def third(x):
        # sum x^4: 24 x_i on the diagonal. x0 * x0^3 = x0^4: 24 x0 more at
        # (0, 0, 0). x0 * x_i^3 (i > 0): 6 x0 at (i, i, i), 6 x_i at each
        # permutation of (0, i, i).
        T = np.zeros((3, 3, 3))
        T[0, 0, 0] = 48 * x[0]
        for i in (1, 2):
            T[i, i, i] = 24 * x[i] + 6 * x[0]
            T[0, i, i] = T[i, 0, i] = T[i, i, 0] = 6 * x[i]
        return T
    expected = np.einsum("ijk,i,j->k", third(x), u, v)
    got = dualrev.grad(lambda x: u @ dualrev.hvp(f, x, v, mode=mode))(x)
    close(got, expected, 1e-13)
    via_hessian = dualrev.jacfwd(lambda x: dualrev.hvp(f, x, v, mode=mode))(x)
    close(via_hessian.T @ u, expected, 1e-13)


# ---- SciPy solvers ---------------------------------------------------------------

def convex_loss(w, A, y):
    return -np.sum(sp.log_expit(y * (A @ w))) + 0.5 * np.sum(w ** 2)


@pytest.fixture
def convex_problem():
    rng = np.random.default_rng(8)
    A = rng.standard_normal((40, 8))
    y = np.sign(rng.standard_normal(40))
    return rng.standard_normal(8), A, y


@pytest.mark.parametrize("mode", OPERATOR_MODES)
def test_cg_and_minres_solve_newton_system(convex_problem, mode):
    w, A, y = convex_problem
    H = dualrev.hvp_operator(convex_loss, w, mode=mode, args=(A, y))
    full = dualrev.hessian(convex_loss)(w, A, y)
    b = -H.grad
    for solver in (cg, minres):
        step, info = solver(H, b, rtol=1e-12)
        assert info == 0
        close(step, np.linalg.solve(full, b), 1e-8)


def test_eigsh_top_eigenvalue():
    x, _ = rosen_case(30, seed=9)
    H = dualrev.hvp_operator(rosen, x)
    top = eigsh(H, k=1, which="LA", return_eigenvectors=False)[0]
    assert top == pytest.approx(np.linalg.eigvalsh(rosen_hess(x))[-1], rel=1e-9)
    assert top == pytest.approx(np.linalg.eigvalsh(dualrev.hessian(rosen)(x))[-1], rel=1e-9)


def test_matvec_does_not_call_f_again():
    calls = []

    def counted(x):
        calls.append(1)
        return rosen(x)
    x, v = rosen_case(20)
    for mode in OPERATOR_MODES:
        calls.clear()
        H = dualrev.hvp_operator(counted, x, mode=mode)
        assert len(calls) == 1
        for _ in range(5):
            H @ v
        H @ np.ones((20, 3))
        cg(H, v, maxiter=5)
        assert len(calls) == 1


# ---- memory ---------------------------------------------------------------------

@pytest.mark.parametrize("mode", OPERATOR_MODES)
def test_releasing_the_operator_frees_its_tape(mode):
    x, v = rosen_case(50)
    enabled = gc.isenabled()
    gc.disable()   # freed by reference counting alone: no cycle holds the tape
    try:
        H = dualrev.hvp_operator(rosen, x, mode=mode)
        H @ v
        tape = weakref.ref(H._recording.tape)
        assert tape() is not None
        del H
        assert tape() is None
    finally:
        if enabled:
            gc.enable()


def test_many_hvp_calls_keep_memory_flat():
    x, v = rosen_case(20)

    def batch(mode):
        for _ in range(250):
            dualrev.hvp(rosen, x, v, mode=mode)

    for mode in HVP_MODES:
        batch(mode)   # warm caches before measuring
    tracemalloc.start()
    try:
        for mode in HVP_MODES:
            batch(mode)
        gc.collect()
        first = tracemalloc.get_traced_memory()[0]
        for mode in HVP_MODES:
            batch(mode)
        gc.collect()
        second = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert second - first < 20_000   # 1,000 more products: no per-call leak


def weighted_cubes(x, a, b):
    return a * np.sum(x ** 3) + b


def weighted_cubes_hvp(x, a, vx, va):
    """By hand: H_xx = diag(6 a x), H_xa = 3 x^2, H_aa = 0."""
    return 6 * a * x * vx + 3 * x ** 2 * va, np.sum(3 * x ** 2 * vx)


@pytest.mark.parametrize("mode", HVP_MODES)
def test_hvp_argnums_selects_among_x_and_args_as_grad_does(mode):
    x, vx = np.array([1.0, 2.0]), np.array([1.0, -1.0])
    tol = 1e-6 if mode == "fd" else 1e-12
    expected_x, _ = weighted_cubes_hvp(x, 2.0, vx, 0.0)
    np.testing.assert_allclose(dualrev.hvp(weighted_cubes, x, vx, mode=mode, args=(2.0, 5.0)),
                               expected_x, rtol=tol)
    got = dualrev.hvp(weighted_cubes, x, (vx, 0.5), mode=mode, args=(2.0, 5.0),
                      argnums=(0, 1))
    for g, e in zip(got, weighted_cubes_hvp(x, 2.0, vx, 0.5)):
        np.testing.assert_allclose(g, e, rtol=tol)


@pytest.mark.parametrize("mode", OPERATOR_MODES)
def test_operator_and_value_grad_hvp_take_the_same_argnums(mode):
    x, vx = np.array([1.0, 2.0]), np.array([1.0, -1.0])
    H = dualrev.hvp_operator(weighted_cubes, x, mode=mode, args=(2.0, 5.0), argnums=(1, 0))
    # The point is (a, x): flattened as [a, x0, x1].
    ha, hx = weighted_cubes_hvp(x, 2.0, vx, 0.5)[::-1]
    np.testing.assert_allclose(H @ np.concatenate([[0.5], vx]), np.concatenate([[ha], hx]),
                               rtol=1e-12)
    value, g, Hv = dualrev.value_grad_hvp(weighted_cubes, x, vx, args=(2.0, 5.0))
    assert value == pytest.approx(2.0 * 9 + 5.0)
    np.testing.assert_allclose(g, 2.0 * 3 * x ** 2, rtol=1e-12)
    np.testing.assert_allclose(Hv, weighted_cubes_hvp(x, 2.0, vx, 0.0)[0], rtol=1e-12)


@pytest.mark.parametrize("call", [
    lambda f, **k: dualrev.hvp(f, 2.0, 1.0, **k),
    lambda f, **k: dualrev.hvp_operator(f, 2.0, **k),
    lambda f, **k: dualrev.value_grad_hvp(f, 2.0, 1.0, **k),
])
def test_the_old_argnums_meaning_raises_and_says_what_to_write(call):
    f = lambda a, x: a * x ** 3  # noqa: E731  (x second: the old argnums=1)
    with pytest.raises(ValueError, match=r"argnums=1 does not select x.*f\(x, \*args\)"
                                         r".*hvp\(lambda x, a: f\(a, x\)"):
        call(f, argnums=1, args=(0.5,))
    with pytest.raises(ValueError, match=r"argnums=3.*2 positional argument"):
        call(f, argnums=3, args=(0.5,))
    # The rewrite the message suggests: d2/dx2 (a x^3) = 6 a x = 6 at x = 2.
    H = dualrev.hessian(lambda x, a: f(a, x))(2.0, 0.5)
    assert float(H) == pytest.approx(6.0)


def test_argnums_is_keyword_only():
    with pytest.raises(TypeError):
        dualrev.hvp(lambda x: x ** 3, 2.0, 1.0, "rev-rev", 0)


# ---- the table of modes ------------------------------------------------------------

def test_a_new_entry_in_the_mode_table_is_all_a_mode_needs(monkeypatch):
    """hvp, hvp_operator, hessian and compare all read HVP_MODES."""
    from dualrev.comparison import compare, format_table
    from dualrev.costmodel import forward_over_reverse_cost
    from dualrev.hvp import HVP_MODES, HVPMode, forward_over_reverse

    calls = []

    def counted_product(*args):
        calls.append("product")
        return forward_over_reverse(*args)

    def counted_sweep(recording, v_leaves):
        calls.append("sweep")
        return recording.forward(v_leaves)

    entry = HVPMode(counted_product, counted_sweep, dualrev.jacfwd, forward_over_reverse_cost)
    monkeypatch.setitem(HVP_MODES, "counted", entry)
    f = lambda x: np.sum(np.sin(x) * x ** 2)  # noqa: E731
    x, v = np.array([0.3, -1.2, 2.0]), np.array([1.0, 0.5, -2.0])
    H = dualrev.hessian(f, mode="rev-rev")(x)

    np.testing.assert_allclose(dualrev.hvp(f, x, v, mode="counted"), H @ v, rtol=1e-12)
    np.testing.assert_allclose(dualrev.hvp_operator(f, x, mode="counted") @ v, H @ v,
                               rtol=1e-12)
    np.testing.assert_allclose(dualrev.hessian(f, mode="counted")(x), H, rtol=1e-12)
    assert calls == ["product", "sweep"]
    report = compare(f, x, budget=0.001)
    assert [r.mode for r in report.hvp] == list(HVP_MODES)
    assert report.mode("counted").max_abs_diff < 1e-12
    assert "counted" in format_table([report]).splitlines()[-3]


def test_a_mode_without_a_sweep_or_hessian_is_refused_there():
    assert "rev-fwd" in HVP_MODES
    with pytest.raises(ValueError, match="mode must be one of .*'fwd-rev'.*not 'rev-fwd'"):
        dualrev.hvp_operator(lambda x: np.sum(x ** 3), np.ones(2), mode="rev-fwd")
    with pytest.raises(ValueError, match="not 'fd'"):
        dualrev.hessian(lambda x: np.sum(x ** 3), mode="fd")
    assert set(OPERATOR_MODES) == {"rev-rev", "fwd-rev"}  # as hvp_operator documents
