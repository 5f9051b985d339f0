"""Compiled programs over dask data (``dualrev.chunked``; extra ``dualrev[dask]``).

A map-reduce over the data's rows runs as one task per chunk: its results
must equal the eager NumPy ones, in one graph execution per call, with no
task holding more than a chunk. Programs that are not a map-reduce over rows
fall back to a replay over the dask arrays, with the reason, and still give
the eager results.
"""

import pickle

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="needs the optional extra dualrev[dask]")
dask = pytest.importorskip("dask", reason="needs the optional extra dualrev[dask]")
from dask.callbacks import Callback  # noqa: E402

import dualrev  # noqa: E402
from dualrev.chunked import columns_as_stack, matmul_as_gemm  # noqa: E402
from dualrev.lazy import LazyEvaluationError  # noqa: E402
from dualrev.tree import flatten  # noqa: E402

ROWS, CHUNK, FEATURES, CLASSES = 403, 50, 5, 3  # a last chunk of 3 rows


@pytest.fixture(autouse=True)
def synchronous_scheduler():
    with dask.config.set(scheduler="synchronous"):
        yield


class Executions(Callback):
    """Counts graph executions, and the largest array any task returned."""

    def __init__(self):
        super().__init__()
        self.count = 0
        self.largest = 0

    def _start(self, dsk):
        self.count += 1

    def _posttask(self, key, result, dsk, state, worker_id):
        for leaf in result if isinstance(result, (list, tuple)) else (result,):
            self.largest = max(self.largest, getattr(leaf, "nbytes", 0))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((ROWS, FEATURES))
    labels = rng.integers(0, CLASSES, ROWS)
    Y = np.eye(CLASSES)[labels]
    y = (labels == 0).astype(float)
    lazy = [da.from_array(a, chunks=(CHUNK,) + a.shape[1:]) for a in (X, y, Y)]
    return lazy, [X, y, Y]


def logistic(w, X, y, Y):
    z = X @ w
    return np.sum(np.logaddexp(0.0, z) - y * z) / X.shape[0] + 0.05 * np.sum(w * w)


def least_squares(w, X, y, Y):
    return 0.5 * np.sum((X @ w - y) ** 2) + np.sum(w ** 4)


def columns(w, X, y, Y):
    z = X[:, :3] @ w[:3] + X[:, 3] * w[3] ** 2 + np.exp(w[4]) * X[:, 4]
    return np.mean(np.where(z > 0, z, 0.1 * z) ** 2)


def softmax_mlp(p, X, y, Y):
    h = np.tanh(X @ p["W1"] + p["b1"])
    logits = h @ p["W2"]
    shifted = logits - np.max(logits, axis=1, keepdims=True)
    logp = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    return -np.mean(np.sum(Y * logp, axis=1)) + 1e-3 * np.sum(p["W1"] ** 2)


rng = np.random.default_rng(1)
POINTS = {
    "logistic": (logistic, rng.standard_normal(FEATURES)),
    "least_squares": (least_squares, rng.standard_normal(FEATURES)),
    "columns": (columns, rng.standard_normal(FEATURES)),
    "softmax_mlp": (softmax_mlp, {"W1": rng.standard_normal((FEATURES, 4)),
                                  "b1": rng.standard_normal(4),
                                  "W2": rng.standard_normal((4, CLASSES))}),
}

DERIVATIVES = {
    "value_and_grad": lambda f: dualrev.value_and_grad(f),
    "hvp": lambda f: lambda x, *a: dualrev.hvp(f, x, x, args=a),
    "hessian": lambda f: dualrev.hessian(f),
}


def assert_trees_close(actual, expected):
    for a, e in zip(flatten(actual)[0], flatten(expected)[0], strict=True):
        assert isinstance(a, (np.ndarray, np.generic, float)), "results come back as NumPy"
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("derivative", sorted(DERIVATIVES))
@pytest.mark.parametrize("name", sorted(POINTS))
def test_map_reduce_runs_one_task_per_chunk(name, derivative, data):
    (lazy, plain), (f, x) = data, POINTS[name]
    compiled = dualrev.compile(DERIVATIVES[derivative](f))
    expected = DERIVATIVES[derivative](f)(x, *plain)
    assert_trees_close(compiled(x, *lazy), expected)  # stages, then runs it
    program, = compiled.programs
    assert program.kind == "chunked", program.reason
    with Executions() as executions:
        again = compiled(x, *lazy)
    assert_trees_close(again, expected)
    assert executions.count == 1
    assert executions.largest <= CHUNK * FEATURES * 8 * 4  # no task holds the data


NOT_MAP_REDUCE = {
    "a norm of the residuals": (lambda w, X, y, Y: np.linalg.norm(X @ w - y), "second pass"),
    "a second pass": (lambda w, X, y, Y: np.sum(((X - np.mean(X, axis=0)) @ w) ** 2),
                      "second pass"),
    "cumsum over rows": (lambda w, X, y, Y: np.sum(np.cumsum(X @ w) ** 2),
                         "'cumsum' is not known to treat the rows"),
    "max over rows": (lambda w, X, y, Y: np.max(X @ w) + np.sum(w ** 2),
                      "'amax' reduces over the rows"),
    "a constant as long as the data": (
        lambda w, X, y, Y: np.sum(np.linspace(0.0, 1.0, ROWS) * (X @ w) ** 2),
        "constant array as long as the data"),
}


@pytest.mark.parametrize("name", sorted(NOT_MAP_REDUCE))
def test_other_programs_replay_over_the_dask_arrays(name, data):
    lazy, plain = data
    f, reason = NOT_MAP_REDUCE[name]
    w = np.linspace(-1.0, 1.0, FEATURES)
    compiled = dualrev.compile(dualrev.value_and_grad(f))
    expected = dualrev.value_and_grad(f)(w, *plain)
    assert_trees_close(compiled(w, *lazy), expected)
    program, = compiled.programs
    assert program.kind == "lazy" and reason in program.reason
    with Executions() as executions:
        assert_trees_close(compiled(w, *lazy), expected)
    assert executions.count == 1


def test_derivative_with_respect_to_the_data_stays_lazy(data):
    lazy, plain = data
    w = np.ones(FEATURES)
    compiled = dualrev.compile(dualrev.grad(logistic, argnums=1))
    g = compiled(w, *lazy)
    assert isinstance(g, da.Array) and "as long as the data" in compiled.programs[0].reason
    np.testing.assert_allclose(g.compute(), dualrev.grad(logistic, argnums=1)(w, *plain),
                               rtol=1e-12)


def test_python_reading_the_data_raises(data):
    lazy, _ = data

    def branching(w, X, y, Y):
        return logistic(w, X, y, Y) if np.sum(X @ w) > 0 else np.sum(w)

    with Executions() as executions, pytest.raises(LazyEvaluationError, match="bool"):
        dualrev.compile(dualrev.grad(branching))(np.ones(FEATURES), *lazy)
    assert executions.count == 0


def test_branches_on_the_parameters_stage_one_program_each(data):
    lazy, plain = data

    def branching(w, X, y, Y):
        scale = w[0] ** 2 if w[0] > 0 else -w[0]
        return scale * logistic(w, X, y, Y)

    compiled = dualrev.compile(dualrev.value_and_grad(branching))
    for sign in (1.0, -1.0, 1.0):
        w = sign * np.linspace(0.5, 1.0, FEATURES)
        assert_trees_close(compiled(w, *lazy), dualrev.value_and_grad(branching)(w, *plain))
    assert [p.kind for p in compiled.programs] == ["chunked", "chunked"]


def test_chunk_kernels_pickle_as_programs(data):
    lazy, plain = data
    compiled = dualrev.compile(dualrev.grad(logistic))
    compiled(np.ones(FEATURES), *lazy)
    program, = compiled.programs
    kernel = program.kernel(CHUNK)
    carried = program._before(np.ones(FEATURES))
    rows = [a[:CHUNK] for a in plain]
    copy = pickle.loads(pickle.dumps(kernel))
    for got, want in zip(copy(list(carried), *rows), kernel(list(carried), *rows),
                         strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("a_shape, b_shape", [
    ((4, 3), (2, 3, 5)), ((4, 3), (2, 6, 3, 1)), ((2, 4, 3), (3, 5)),
    ((7, 4, 3), (3, 1)), ((4, 3), (3, 5)), ((3,), (3, 2))])
def test_matmul_as_gemm_is_matmul(a_shape, b_shape):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    np.testing.assert_allclose(matmul_as_gemm(a, b), np.matmul(a, b), rtol=1e-13)


def test_columns_as_stack_is_the_product_with_unit_columns():
    a = np.random.default_rng(5).standard_normal((6, 4))
    np.testing.assert_array_equal(columns_as_stack(a), a @ np.eye(4)[:, :, None])


def test_operator_takes_the_hessian_from_the_pass_of_the_gradient(data):
    lazy, plain = data
    f, w = POINTS["logistic"]
    program = dualrev.HVPProgram(f)
    program.operator(w, args=lazy)  # stages
    with Executions() as executions:
        H = program.operator(w, args=lazy)
        product = H @ np.ones(FEATURES)
        columns = H.matmat(np.eye(FEATURES))
    assert executions.count == 1  # value, gradient and Hessian; products read no data
    expected = dualrev.hessian(f)(w, *plain)
    np.testing.assert_allclose(H.matrix, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(columns, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(product, expected @ np.ones(FEATURES), rtol=1e-10)
    value, grad = dualrev.value_and_grad(f)(w, *plain)
    np.testing.assert_allclose([H.value, *H.grad], [value, *grad], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", ["Newton-CG", "trust-exact", "trust-krylov"])
def test_second_order_fits_take_one_pass_per_point(method, data):
    lazy, plain = data
    f = POINTS["logistic"][0]
    expected = dualrev.optimize.minimize(f, np.zeros(FEATURES), args=plain, method=method)
    with Executions() as executions:
        res = dualrev.optimize.minimize(f, np.zeros(FEATURES), args=lazy, method=method)
    np.testing.assert_allclose(res.x, expected.x, rtol=1e-8, atol=1e-10)
    assert executions.count <= res.nfev  # Hessian (products) from the same passes


def test_a_program_fixed_in_the_data_runs_whole_at_each_call(data):
    lazy, plain = data
    f, w = POINTS["logistic"]
    products = dualrev.compile(lambda w, v, X, y, Y: dualrev.hvp(f, w, v, args=(X, y, Y)),
                               varying_argnums=1)
    fixed = products.fix(w, *lazy)
    for v in (np.ones(FEATURES), np.arange(FEATURES, dtype=float)):
        with Executions() as executions:
            product = fixed(v)
        assert executions.count == 1
        np.testing.assert_allclose(product, dualrev.hvp(f, w, v, args=plain), rtol=1e-10)
    assert fixed.fixed_values(np.ones(FEATURES)) is None  # nothing runs apart
