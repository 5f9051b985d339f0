"""The numba backend of dualrev.compile: fused kernels against NumPy and eager."""

import subprocess
import sys
import textwrap
import warnings
import zlib

import numpy as np
import pytest

import dualrev
from dualrev.examples import rosen
from dualrev.registry import OPS, Op

pytest.importorskip("numba", reason="the numba backend needs the extra dualrev[jit]")

from dualrev import numba_backend  # noqa: E402

STRUCTURAL = ("getitem", "untake", "index_add", "sum")
LOOP_OPS = sorted(name for name, op in OPS.items()
                  if op.loop is not None and name not in STRUCTURAL)
SHAPES = [((3, 4), (4,)), ((3, 1), (1, 4)), ((), ()), ((5,), ())]


@pytest.fixture(autouse=True)
def kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DUALREV_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "numba"))


def _arguments(name, shapes, salt):
    rng = np.random.default_rng(zlib.crc32(f"{name}{shapes}{salt}".encode()))
    low, high = (1.1, 2.0) if name == "arccosh" else (0.1, 0.9)
    args = [rng.uniform(low, high, s) for s in shapes]
    if name == "where":
        return [args[0] > 0.5, args[1], rng.uniform(low, high, shapes[1])]
    return args


def _arity(name):
    """One VJP rule per input; a comparison or rounding op has no rules but
    is the NumPy ufunc of its name."""
    op = OPS[name]
    return len(op.vjps) if op.vjps is not None else getattr(np, name).nin


def _assert_close(got, want, rtol):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, rtol=rtol, atol=0)
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shapes", SHAPES, ids=str)
@pytest.mark.parametrize("name", LOOP_OPS)
def test_every_loop_expression_equals_numpy(name, shapes, monkeypatch):
    monkeypatch.setattr(numba_backend, "MIN_SCALAR_RUN", 1)  # 0-d runs fused too
    op = OPS[name]
    shapes = (shapes + (shapes[-1],))[:_arity(name)]
    compiled = dualrev.compile(lambda *a: op(*a), backend="numba")
    for salt in ("staging point", "second point"):
        args = _arguments(name, shapes, salt)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback
            got = compiled(*args)
        _assert_close(got, op.impl(*args), rtol=1e-14)
    (program,) = compiled.programs
    assert program.backend == "numba" and len(program.kernels) == 1


@pytest.mark.parametrize("name", [n for n in LOOP_OPS if _arity(n) == 1])
def test_interpreted_scalar_runs_equal_numpy(name, monkeypatch):
    monkeypatch.setattr(numba_backend, "INTERPRET_MIN", 1)
    monkeypatch.setattr(numba_backend, "MIN_SCALAR_RUN", 1)
    op = OPS[name]
    compiled = dualrev.compile(lambda x: op(x), backend="numba")
    for salt in ("staging point", "second point"):
        (x,) = _arguments(name, ((),), salt)
        x = np.float64(x)
        want = op.impl(x)
        got = compiled(x)
        assert type(got) is type(want)
        _assert_close(got, want, rtol=1e-14)
    assert compiled.programs[0].kernels == []  # instructions, not a kernel


def logistic(w, X, y):
    z = X @ w
    return np.mean(np.logaddexp(0.0, z) - y * z) + 0.5e-2 * np.sum(w * w)


def mlp(W1, W2, X, labels):
    h = np.tanh(X @ W1)
    s = h @ W2
    m = np.max(s, axis=1, keepdims=True)
    log_p = s - m - np.log(np.sum(np.exp(s - m), axis=1, keepdims=True))
    return -np.mean(np.sum(log_p * labels, axis=1))


def _problems():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1.0, 2.0, 50)
    X, y = rng.standard_normal((30, 6)), (rng.uniform(size=30) > 0.5).astype(float)
    w = rng.standard_normal(6)
    W1, W2 = 0.3 * rng.standard_normal((6, 8)), 0.3 * rng.standard_normal((8, 3))
    labels = np.eye(3)[rng.integers(0, 3, 30)]
    return {
        "rosenbrock": (rosen, (x,), lambda a: (a[0] + 0.25,)),
        "logistic": (lambda w: logistic(w, X, y), (w,), lambda a: (a[0] - 0.5,)),
        "mlp": (lambda W1: mlp(W1, W2, X, labels), (W1,), lambda a: (a[0] * 1.5,)),
    }


@pytest.mark.parametrize("problem", ["rosenbrock", "logistic", "mlp"])
def test_fused_gradient_and_hvp_equal_eager(problem):
    f, args, move = _problems()[problem]
    grad = dualrev.compile(dualrev.grad(f), backend="numba")
    hvp = dualrev.compile(lambda x, v: dualrev.hvp(f, x, v), backend="numba")
    v = np.cos(np.arange(args[0].size)).reshape(args[0].shape)
    for point in (args, move(args)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            g, h = grad(*point), hvp(point[0], v)
        np.testing.assert_allclose(g, dualrev.grad(f)(*point), rtol=1e-12, atol=0)
        np.testing.assert_allclose(h, dualrev.hvp(f, point[0], v), rtol=1e-12,
                                   atol=1e-12 * np.max(np.abs(h)))
    assert grad.programs[0].backend == "numba" and grad.programs[0].kernels


def test_rosenbrock_gradient_is_one_kernel_without_copies():
    grad = dualrev.compile(dualrev.grad(rosen), backend="numba")
    grad(np.linspace(0.0, 1.0, 20))
    (program,) = grad.programs
    (kernel,) = program.kernels
    assert "for i0 in range(1, 19):" in kernel  # x[1:] and x[:-1] as offsets, peeled
    assert "if " not in kernel
    assert isinstance(program.compile_seconds, float) and program.compile_seconds >= 0.0


def test_guards_end_runs_and_are_checked():
    def f(x):
        y = np.sin(x) * 2.0 + x
        if np.sum(y) > 0:
            return np.sum(y * y)
        return np.sum(np.exp(y))

    compiled = dualrev.compile(dualrev.grad(f), backend="numba")
    for x in (np.linspace(0.1, 1.0, 7), np.linspace(-3.0, -2.0, 7)):
        np.testing.assert_allclose(compiled(x), dualrev.grad(f)(x), rtol=1e-12)
    assert len(compiled.programs) == 2 and compiled.restages == 1


def _unjittable_op():
    op = Op("not_for_numba", np.sin, None, None)
    op.loop = "np.sin({0}).no_such_attribute"  # Python would run it, numba cannot
    return op


def test_a_kernel_numba_cannot_compile_falls_back_with_one_warning():
    op = _unjittable_op()

    def f(x):
        return op(x * 2.0) + 1.0

    compiled = dualrev.compile(f, backend="numba")
    x = np.linspace(0.0, 1.0, 9)
    with pytest.warns(RuntimeWarning, match="not_for_numba") as caught:
        out = compiled(x)
    assert len(caught) == 1
    np.testing.assert_array_equal(out, np.sin(x * 2.0) + 1.0)
    assert compiled.programs[0].backend == "default"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(compiled(x + 1), np.sin((x + 1) * 2.0) + 1.0)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        dualrev.compile(np.sin, backend="jax")


def test_without_numba_the_error_names_the_extra():
    script = textwrap.dedent("""
        import sys
        sys.modules["numba"] = None
        import numpy as np, dualrev
        try:
            dualrev.compile(np.sin, backend="numba")
        except ImportError as error:
            print("ImportError:", error)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)
    assert "ImportError:" in result.stdout and "dualrev[jit]" in result.stdout
