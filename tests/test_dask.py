"""Derivatives of plain NumPy code over dask arrays (the ``dualrev[dask]`` extra).

The registry's op specs run again with small multi-chunk dask inputs and
must match the NumPy results; the user's story (small NumPy parameters, dask
data) is checked for results and for graph executions per call, eager and
compiled (one task per chunk of rows); bad input raises naming the problem;
two tests run on a real LocalCluster.
"""

import io
import pickle
import subprocess
import sys
import zlib

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="needs the optional extra dualrev[dask]")
dask = pytest.importorskip("dask", reason="needs the optional extra dualrev[dask]")
import cloudpickle  # noqa: E402  (a dependency of dask)
from dask.callbacks import Callback  # noqa: E402

import dualrev  # noqa: E402
from dualrev.chunked import columns_as_stack, matmul_as_gemm  # noqa: E402
from dualrev.lazy import LazyEvaluationError  # noqa: E402
from dualrev.optimize import minimize  # noqa: E402
from dualrev.registry import OPS  # noqa: E402
from dualrev.testing.op_specs import SPECS  # noqa: E402
from dualrev.tree import flatten  # noqa: E402


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


class _ArrayFinder(cloudpickle.Pickler):
    """Pickles a graph as the scheduler would ship it, keeping the size of the
    largest NumPy array met (a literal, in a task, a tuple or a closure)."""

    largest = 0

    def reducer_override(self, obj):
        if isinstance(obj, np.ndarray):
            self.largest = max(self.largest, obj.size)
        return super().reducer_override(obj)


def largest_embedded_array(dsk):
    """Size of the largest NumPy array embedded in the graph ``dsk``."""
    finder = _ArrayFinder(io.BytesIO())
    finder.dump(dict(dsk))
    return finder.largest


class EmbeddedArrays(Callback):
    """The largest NumPy array embedded in any graph executed."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def _start(self, dsk):
        self.largest = max(self.largest, largest_embedded_array(dsk))


def chunked(a):
    """``a`` as a dask array of about two chunks per axis (floats stay floats)."""
    if np.ndim(a) == 0:
        return a
    return da.from_array(a, chunks=tuple(max(1, (n + 1) // 2) for n in np.shape(a)))


def assert_trees_close(actual, expected):
    for a, e in zip(flatten(actual)[0], flatten(expected)[0], strict=True):
        np.testing.assert_allclose(np.asarray(a, float), np.asarray(e, float),
                                   rtol=1e-9, atol=1e-11)


# ---- every op, with dask values ----------------------------------------------------

#: Specs that do not run lazily on multi-chunk dask arrays: spec name -> the op
#: their LazyEvaluationError names (None: a NumPy function dask lacks, named).
NOT_LAZY = {
    'det_sign': 'det_sign',
    'searchsorted': 'searchsorted',
    'searchsorted-traced-a': None,
    'reshape': 'reshape',
    'getitem-mask': 'multiply',
    'getitem-trace': 'getitem',
    'inv': 'inv',
    'solve': 'solve',
    'det': 'det',
    'logabsdet-slogdet': 'det_sign',
    'cholesky': 'cholesky',
    'cholesky-upper': 'cholesky',
    'eigvalsh': 'eigvalsh',
    'eigvalsh-eigh': 'eigvalsh',
    'eigvecs': 'eigvalsh',
    'eigvecs-upper': 'eigvalsh',
    'svdvals': 'svdvals',
    'svdvals-svdvals': 'svdvals',
    'svdvals-full': 'svd_u',
    'svd_u': 'svd_u',
    'svd_vh': 'svd_u',
    'svd_u-reconstruct': 'svd_u',
    'svd_u-hermitian': 'svd_u',
    'svd_vh-hermitian': 'svd_u',
    'svdvals-hermitian': 'svdvals',
    'qr_q': 'qr_q',
    'qr_r': 'qr_q',
    'qr_r-mode-r': 'qr_r',
    'eigvals_general': 'eigvals_general',
    'eigvals_general-eig': 'eigvals_general',
    'eigvecs_general': 'eigvals_general',
    'pinv': 'pinv',
    'pinv-lstsq': 'svdvals',
    'pinv-lstsq-residuals': 'svdvals',
    'inv-matrix_power-negative': 'inv',
    'getitem-median': None,
    'getitem-median-axis': None,
    'getitem-quantile': None,
    'getitem-quantile-axes': None,
    'getitem-percentile': None,
    'getitem-quantile-lower': None,
    'getitem-quantile-higher': None,
    'getitem-quantile-nearest': None,
    'getitem-quantile-midpoint': None,
    'getitem-interp-xp': None,
    'getitem-convolve': 'getitem',
    'getitem-convolve-full': 'getitem',
    'getitem-convolve-same': 'getitem',
    'getitem-convolve-valid': 'getitem',
    'getitem-correlate-full': 'getitem',
    'getitem-correlate-same': 'getitem',
    'getitem-correlate-valid': 'getitem',
    'svdvals-norm-matrix-nuc': 'svdvals',
    'svdvals-norm-matrix-2': 'svdvals',
    'svdvals-norm-matrix--2': 'svdvals',
    'svdvals-norm-matrix-axes': 'svdvals',
    'svdvals-matrix_norm': 'svdvals',
    'fft': 'fft',
    'ifft': 'ifft',
    'rfft': 'rfft',
    'irfft': 'irfft',
    'irfft-n-odd-axis': 'irfft',
    'irfft-filter': 'rfft',
    'abs-spectrum': 'fft',
    # their gradients for dask data are not lazy (grad alone raises too)
    'untake-diag': 'getitem',
    'rfft-n-axis-ortho': 'fft',
}
#: Specs that still compute a dask value inside the traced function (SciPy's
#: array-API conversions, np.interp's knots): not lazy yet, known. Their cases
#: with a 0-d first argument do not compute inside and pass.
COMPUTES_INSIDE = {'gammaln', 'getitem-interp', 'logsumexp', 'logsumexp-keepdims',
                   'logsumexp-log_softmax', 'logsumexp-softmax', 'polygamma',
                   'where-interp-left-right'}
_COMPUTES_INSIDE = pytest.mark.xfail(strict=True, raises=AssertionError,
                                     reason="computes a dask value inside f")


def _computes_inside(spec, shapes):
    return spec.name in COMPUTES_INSIDE and shapes[0] != ()


CASES = [pytest.param(spec, shapes, id=f"{spec.name}-{'-'.join(map(str, shapes))}",
                      marks=[_COMPUTES_INSIDE] if _computes_inside(spec, shapes) else [])
         for spec in SPECS for shapes in spec.shapes]


def draw(spec, shapes):
    seed = zlib.crc32(f"{spec.name}{shapes}".encode())
    return spec.draw(shapes, np.random.default_rng(seed))


def derivatives(spec, args, lift):
    """Value, a VJP, a JVP and a forward-over-reverse second derivative of
    ``spec.fn`` at ``args`` made lazy by ``lift`` (identity for NumPy)."""
    out = spec.fn(*args)
    weights = np.random.default_rng(1).standard_normal(np.shape(out))
    tangents = tuple(lift(np.ones(np.shape(a))) if np.ndim(a) else 1.0 for a in args)
    lifted = tuple(lift(a) for a in args)
    argnums = tuple(range(len(args)))

    def weighted(*xs):
        return np.sum(spec.fn(*xs) * weights)

    value, pull = dualrev.vjp(spec.fn, *lifted)
    second = dualrev.jvp(dualrev.grad(weighted, argnums), lifted, tangents)[1]
    return value, pull(weights), dualrev.jvp(spec.fn, lifted, tangents)[1], second


@pytest.mark.parametrize("spec, shapes", CASES)
def test_op_on_dask_values_matches_numpy(spec, shapes):
    args = draw(spec, shapes)
    if any(np.asarray(a).dtype == bool for a in args):
        run = lambda lift: dualrev.OPS[spec.op](*(lift(a) for a in args))  # noqa: E731
    elif not spec.differentiable:
        run = lambda lift: dualrev.jvp(  # noqa: E731
            spec.fn, tuple(lift(a) for a in args),
            tuple(lift(np.zeros(np.shape(a))) if np.ndim(a) else 0.0 for a in args))[0]
    else:
        run = lambda lift: derivatives(spec, args, lift)  # noqa: E731
    if spec.name in NOT_LAZY and any(np.ndim(a) for a in args):
        op = NOT_LAZY[spec.name]
        with pytest.raises(LazyEvaluationError, match=f"the op '{op}'" if op else "numpy"):
            dask.compute(run(chunked))
        return
    expected = run(lambda a: a)
    with Executions() as executions:
        actual = dask.compute(run(chunked))[0]
    assert executions.count <= 1, "a value was computed inside the traced function"
    assert_trees_close(actual, expected)


# ---- the user's story: small NumPy parameters, dask data ------------------------------

def logistic_loss(w, X, y):
    z = X @ w
    return np.sum(np.logaddexp(0.0, z) - y * z) / X.shape[0] + 0.05 * np.sum(w ** 2)


@pytest.fixture(scope="module")
def data():
    X = da.random.default_rng(0).standard_normal((400, 20), chunks=(50, 20))
    y = (da.random.default_rng(1).random(400, chunks=50) < 0.5).astype(float)
    return (X, y), dask.compute(X, y)


W = np.random.default_rng(2).standard_normal(20) * 0.1
V = np.random.default_rng(3).standard_normal(20)

STORY = {
    "value_and_grad": lambda X, y: dualrev.value_and_grad(logistic_loss)(W, X, y),
    "grad": lambda X, y: dualrev.grad(logistic_loss)(W, X, y),
    "hvp": lambda X, y: dualrev.hvp(logistic_loss, W, V, args=(X, y)),
    "hvp-fwd-rev": lambda X, y: dualrev.hvp(logistic_loss, W, V, "fwd-rev", args=(X, y)),
    "hessian": lambda X, y: dualrev.hessian(logistic_loss)(W, X, y),
    "jacfwd": lambda X, y: dualrev.jacfwd(logistic_loss)(W, X, y),
    "jacrev": lambda X, y: dualrev.jacrev(logistic_loss)(W, X, y),
    "hvp_operator-matvec": lambda X, y: dualrev.hvp_operator(
        logistic_loss, W, args=(X, y)).matvec(V),
}
#: Graph executions (passes over the data) each call may take.
PASSES = {name: 1 for name in STORY}
PASSES["hvp_operator-matvec"] = 2  # value and gradient at W, then the product


@pytest.mark.parametrize("name", sorted(STORY))
def test_story_matches_numpy_in_one_pass(name, data):
    (X, y), (Xn, yn) = data
    with Executions() as executions:
        result = STORY[name](X, y)
    assert executions.count == PASSES[name]
    assert all(isinstance(leaf, (np.ndarray, np.generic, float))
               for leaf in flatten(result)[0]), "derivatives come back as NumPy"
    assert_trees_close(result, STORY[name](Xn, yn))
    # no task ever held more than one chunk of X (and its small products)
    assert executions.largest <= 50 * 20 * 8


@pytest.mark.parametrize("method", ["Newton-CG", "trust-ncg", "trust-krylov", "L-BFGS-B"])
def test_minimize_on_dask_data(method, data):
    (X, y), (Xn, yn) = data
    with Executions() as executions:
        res = minimize(logistic_loss, np.zeros(20), args=(X, y), method=method)
    expected = minimize(logistic_loss, np.zeros(20), args=(Xn, yn), method=method)
    np.testing.assert_allclose(res.x, expected.x, rtol=1e-9, atol=1e-12)
    # one pass per point (value and gradient together) and one per Hessian product
    assert 0 < executions.count <= res.nfev + res.get("nhev", 0)


@pytest.fixture(scope="module")
def long_data():
    """Data longer than any array dualrev may embed in a graph (the 20 x 20
    identity of ``matmat``): 2000 rows in 8 chunks."""
    X = da.random.default_rng(0).standard_normal((2000, 20), chunks=(250, 20))
    y = (da.random.default_rng(1).random(2000, chunks=250) < 0.5).astype(float)
    return X, y


SECOND_ORDER = {
    "hvp_operator-matvec": lambda X, y: dualrev.hvp_operator(
        logistic_loss, W, args=(X, y)) @ V,
    "hvp_operator-matmat": lambda X, y: dualrev.hvp_operator(
        logistic_loss, W, args=(X, y)).matmat(np.eye(20)),
    "hvp_operator-fwd-rev-matvec": lambda X, y: dualrev.hvp_operator(
        logistic_loss, W, "fwd-rev", args=(X, y)) @ V,
    "hvp": lambda X, y: dualrev.hvp(logistic_loss, W, V, args=(X, y)),
    "hvp-fwd-rev": lambda X, y: dualrev.hvp(logistic_loss, W, V, "fwd-rev", args=(X, y)),
    "hessian": lambda X, y: dualrev.hessian(logistic_loss)(W, X, y),
    "hessian-rev-rev": lambda X, y: dualrev.hessian(logistic_loss, mode="rev-rev")(W, X, y),
    **{method: lambda X, y, method=method: minimize(
        logistic_loss, np.zeros(20), args=(X, y), method=method)
       for method in ["Newton-CG", "trust-ncg", "trust-krylov"]},
}


@pytest.mark.parametrize("name", sorted(SECOND_ORDER))
def test_second_derivatives_embed_no_array_as_long_as_the_data(name, long_data):
    X, y = long_data
    with Executions() as executions, EmbeddedArrays() as embedded:
        SECOND_ORDER[name](X, y)
    assert executions.count > 0
    # a NumPy array as long as the data would be shipped whole with each graph
    assert embedded.largest < X.shape[0]


def test_persisted_data_gives_the_same_fit(data):
    (X, y), _ = data
    Xp, yp = dask.persist(X, y)
    res = minimize(logistic_loss, np.zeros(20), args=(Xp, yp), method="Newton-CG")
    again = minimize(logistic_loss, np.zeros(20), args=(X, y), method="Newton-CG")
    np.testing.assert_allclose(res.x, again.x, rtol=1e-12)


def test_derivative_with_respect_to_dask_data_stays_lazy(data):
    (X, y), (Xn, yn) = data
    g = dualrev.grad(logistic_loss, argnums=1)(W, X, y)
    assert isinstance(g, da.Array)
    np.testing.assert_allclose(g.compute(), dualrev.grad(logistic_loss, argnums=1)(W, Xn, yn),
                               rtol=1e-12)


# ---- bad input -----------------------------------------------------------------------

def test_float_of_a_traced_loss_raises(data):
    (X, y), _ = data

    def forced(w, X, y):
        return float(logistic_loss(w, X, y)) * w[0]

    with Executions() as executions, pytest.raises(TypeError, match="float"):
        dualrev.grad(forced)(W, X, y)
    assert executions.count == 0


def test_misaligned_data_raises_naming_the_shapes(data):
    (X, y), _ = data
    with pytest.raises(LazyEvaluationError, match="'matmul'.*[Cc]hunks"):
        dualrev.grad(logistic_loss)(np.zeros(21), X, y)


def test_op_that_cannot_stay_lazy_names_the_op(data):
    (X, y), _ = data

    def with_eigh(w, X, y):
        return logistic_loss(w, X, y) + np.sum(np.linalg.eigvalsh(X[:20] * w))

    with Executions() as executions, pytest.raises(LazyEvaluationError, match="'eigvalsh'"):
        dualrev.grad(with_eigh)(W, X, y)
    assert executions.count == 0


# ---- compiled: one task per chunk of rows (dualrev.chunked) ---------------------------
#
# A map-reduce over the data's rows runs as one task per chunk: its results
# must equal the eager NumPy ones, in one graph execution per call, with no
# task holding more than a chunk. Programs that are not a map-reduce over rows
# fall back to a replay over the dask arrays, with the reason, and still give
# the eager results.

ROWS, CHUNK, FEATURES, CLASSES = 403, 50, 5, 3  # a last chunk of 3 rows


@pytest.fixture(scope="module")
def rows_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((ROWS, FEATURES))
    labels = rng.integers(0, CLASSES, ROWS)
    Y = np.eye(CLASSES)[labels]
    y = (labels == 0).astype(float)
    lazy = [da.from_array(a, chunks=(CHUNK,) + a.shape[1:]) for a in (X, y, Y)]
    return lazy, [X, y, Y]


def logistic(w, X, y, Y):
    """:func:`logistic_loss` with the signature these losses share."""
    return logistic_loss(w, X, y)


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


def assert_numpy_trees_close(actual, expected):
    for a, e in zip(flatten(actual)[0], flatten(expected)[0], strict=True):
        assert isinstance(a, (np.ndarray, np.generic, float)), "results come back as NumPy"
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("derivative", sorted(DERIVATIVES))
@pytest.mark.parametrize("name", sorted(POINTS))
def test_map_reduce_runs_one_task_per_chunk(name, derivative, rows_data):
    (lazy, plain), (f, x) = rows_data, POINTS[name]
    compiled = dualrev.compile(DERIVATIVES[derivative](f))
    expected = DERIVATIVES[derivative](f)(x, *plain)
    assert_numpy_trees_close(compiled(x, *lazy), expected)  # stages, then runs it
    program, = compiled.programs
    assert program.kind == "chunked" and program.passes == 1, program.reason
    with Executions() as executions:
        again = compiled(x, *lazy)
    assert_numpy_trees_close(again, expected)
    assert executions.count == 1
    assert executions.largest <= CHUNK * FEATURES * 8 * 4  # no task holds the data


def test_data_chunked_otherwise_is_rechunked_to_the_rows_of_the_first(rows_data):
    (X, y, Y), plain = rows_data
    f, w = POINTS["logistic"]
    compiled = dualrev.compile(dualrev.value_and_grad(f))
    odd = (X.rechunk((CHUNK, 2)), y.rechunk(70), Y.rechunk((30, 1)))
    assert_numpy_trees_close(compiled(w, *odd), dualrev.value_and_grad(f)(w, *plain))
    assert compiled.programs[0].kind == "chunked"


@pytest.mark.parametrize("derivative", sorted(DERIVATIVES))
def test_chunk_kernels_run_in_threads(derivative, rows_data):
    """Tasks of one kernel run at once in the threaded scheduler (each thread
    with its own buffers)."""
    lazy, plain = rows_data
    f, p = POINTS["softmax_mlp"]
    compiled = dualrev.compile(DERIVATIVES[derivative](f))
    expected = DERIVATIVES[derivative](f)(p, *plain)
    with dask.config.set(scheduler="threads", num_workers=4):
        for _ in range(3):
            assert_numpy_trees_close(compiled(p, *lazy), expected)


#: Losses whose gradient reads a reduction over rows on the rows: the loss and
#: the passes over the data its value and gradient take.
SEVERAL_PASSES = {
    "a norm of the residuals": (lambda w, X, y, Y: np.linalg.norm(X @ w - y), 2),
    "centred columns": (
        lambda w, X, y, Y: np.sum(((X - np.mean(X, axis=0)) @ w) ** 2), 2),
    # the rows that reach the max, then their count (ties share the gradient)
    "max over rows": (
        lambda w, X, y, Y: np.max(X @ w) - np.min(X @ w) + np.sum(w ** 2), 3),
}


def replayed(f, rows_data):
    """The program of ``compile(value_and_grad(f))`` over the dask rows, and
    the graph executions of its second call; both calls give eager results."""
    lazy, plain = rows_data
    w = np.linspace(-1.0, 1.0, FEATURES)
    compiled = dualrev.compile(dualrev.value_and_grad(f))
    expected = dualrev.value_and_grad(f)(w, *plain)
    assert_numpy_trees_close(compiled(w, *lazy), expected)
    with Executions() as executions:
        assert_numpy_trees_close(compiled(w, *lazy), expected)
    program, = compiled.programs
    return program, executions


@pytest.mark.parametrize("name", sorted(SEVERAL_PASSES))
def test_reductions_read_by_the_rows_wait_for_the_next_pass(name, rows_data):
    f, passes = SEVERAL_PASSES[name]
    program, executions = replayed(f, rows_data)
    assert program.kind == "chunked" and program.passes == passes
    assert executions.count == passes
    assert executions.largest <= CHUNK * FEATURES * 8 * 4


NOT_MAP_REDUCE = {
    "cumsum over rows": (lambda w, X, y, Y: np.sum(np.cumsum(X @ w) ** 2),
                         "'cumsum' is not known to treat the rows"),
    "product over rows": (lambda w, X, y, Y: np.prod(np.tanh(X @ w)) + np.sum(w ** 2),
                          "'prod' reduces over the rows"),
    "a constant as long as the data": (
        lambda w, X, y, Y: np.sum(np.linspace(0.0, 1.0, ROWS) * (X @ w) ** 2),
        "constant array as long as the data"),
}


@pytest.mark.parametrize("name", sorted(NOT_MAP_REDUCE))
def test_other_programs_replay_over_the_dask_arrays(name, rows_data):
    f, reason = NOT_MAP_REDUCE[name]
    program, executions = replayed(f, rows_data)
    assert program.kind == "lazy" and reason in program.reason
    assert executions.count == 1


def test_derivative_with_respect_to_the_data_stays_lazy(rows_data):
    lazy, plain = rows_data
    w = np.ones(FEATURES)
    compiled = dualrev.compile(dualrev.grad(logistic, argnums=1))
    g = compiled(w, *lazy)
    assert isinstance(g, da.Array) and "as long as the data" in compiled.programs[0].reason
    np.testing.assert_allclose(g.compute(), dualrev.grad(logistic, argnums=1)(w, *plain),
                               rtol=1e-12)


def test_python_reading_the_data_raises(rows_data):
    lazy, _ = rows_data

    def branching(w, X, y, Y):
        return logistic(w, X, y, Y) if np.sum(X @ w) > 0 else np.sum(w)

    with Executions() as executions, pytest.raises(LazyEvaluationError, match="bool"):
        dualrev.compile(dualrev.grad(branching))(np.ones(FEATURES), *lazy)
    assert executions.count == 0


def test_branches_on_the_parameters_stage_one_program_each(rows_data):
    lazy, plain = rows_data

    def branching(w, X, y, Y):
        scale = w[0] ** 2 if w[0] > 0 else -w[0]
        return scale * logistic(w, X, y, Y)

    compiled = dualrev.compile(dualrev.value_and_grad(branching))
    for sign in (1.0, -1.0, 1.0):
        w = sign * np.linspace(0.5, 1.0, FEATURES)
        assert_numpy_trees_close(compiled(w, *lazy), dualrev.value_and_grad(branching)(w, *plain))
    assert [p.kind for p in compiled.programs] == ["chunked", "chunked"]


def test_chunk_kernels_pickle_as_programs(rows_data):
    lazy, plain = rows_data
    compiled = dualrev.compile(dualrev.grad(logistic))
    compiled(np.ones(FEATURES), *lazy)
    program, = compiled.programs
    kernel = program.kernel(0, CHUNK)
    _, made, _, before = program._before
    known = dict(zip(made, before(np.ones(FEATURES))))
    carried = [known[v] for v in program._passes[0][0]]
    rows = [a[:CHUNK] for a in plain]
    copy = pickle.loads(pickle.dumps(kernel))
    for got, want in zip(copy(list(carried), *rows), kernel(list(carried), *rows),
                         strict=True):
        np.testing.assert_array_equal(got, want)
    assert pickle.loads(pickle.dumps(kernel)) is copy  # a process keeps its kernels
    registered = {e.op for e in copy.program.equations} & set(OPS.values())
    assert registered, "registered ops unpickle as the registry's own"


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


def test_operator_takes_the_hessian_from_the_pass_of_the_gradient(rows_data):
    lazy, plain = rows_data
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


@pytest.mark.parametrize("mode", ["rev-rev", "fwd-rev"])
def test_operator_with_many_parameters_takes_a_pass_per_product(mode, rows_data):
    lazy, plain = rows_data
    f = POINTS["softmax_mlp"][0]
    rng = np.random.default_rng(6)
    p = {"W1": rng.standard_normal((FEATURES, 12)), "b1": rng.standard_normal(12),
         "W2": rng.standard_normal((12, CLASSES))}  # 108 parameters: no whole Hessian
    program = dualrev.HVPProgram(f, mode)
    v = dualrev.tree.ravel_pytree(p)[0][::-1].copy()
    program.operator(p, args=lazy) @ v  # stages
    with Executions() as executions:
        H = program.operator(p, args=lazy)
        product = H @ v
    assert executions.count == 2 and H.matrix is None  # value and gradient, product
    expected = dualrev.hvp(f, p, H.unravel(v), args=plain)
    np.testing.assert_allclose(product, dualrev.tree.ravel_pytree(expected)[0],
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", ["Newton-CG", "trust-exact", "trust-krylov"])
def test_second_order_fits_take_one_pass_per_point(method, rows_data):
    lazy, plain = rows_data
    f = POINTS["logistic"][0]
    expected = dualrev.optimize.minimize(f, np.zeros(FEATURES), args=plain, method=method)
    with Executions() as executions:
        res = dualrev.optimize.minimize(f, np.zeros(FEATURES), args=lazy, method=method)
    np.testing.assert_allclose(res.x, expected.x, rtol=1e-8, atol=1e-10)
    assert executions.count <= res.nfev  # Hessian (products) from the same passes


def test_a_program_fixed_in_the_data_runs_whole_at_each_call(rows_data):
    lazy, plain = rows_data
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


# ---- dualrev itself never imports dask -------------------------------------------------

def test_import_dualrev_does_not_import_dask():
    script = ("import sys, numpy as np, dualrev; dualrev.grad(lambda x: np.sum(x ** 2))"
              "(np.ones(2)); print('dask' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                         text=True).stdout
    assert out.strip() == "False"


# ---- a real cluster ------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster_client():
    distributed = pytest.importorskip("distributed",
                                      reason="needs the optional extra dualrev[dask]")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  memory_limit="300MB", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def test_newton_cg_on_a_local_cluster(cluster_client, data):
    (X, y), (Xn, yn) = data
    with dask.config.set(scheduler=cluster_client):
        Xp, yp = dask.persist(X, y)
        res = minimize(logistic_loss, np.zeros(20), args=(Xp, yp), method="Newton-CG")
    expected = minimize(logistic_loss, np.zeros(20), args=(Xn, yn), method="Newton-CG")
    np.testing.assert_allclose(res.x, expected.x, rtol=1e-9, atol=1e-12)


def test_compiled_chunk_programs_run_on_the_workers(cluster_client, data):
    (X, y), (Xn, yn) = data
    value_and_grad = dualrev.compile(dualrev.value_and_grad(logistic_loss))
    with dask.config.set(scheduler=cluster_client):
        for _ in range(2):  # the second pass finds the kernels the workers made
            result = value_and_grad(W, X, y)
    assert value_and_grad.programs[0].kind == "chunked"
    assert_trees_close(result, dualrev.value_and_grad(logistic_loss)(W, Xn, yn))
