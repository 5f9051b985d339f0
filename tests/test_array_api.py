"""The array API namespace of traced values, against the standard and SciPy.

SciPy reads SCIPY_ARRAY_API once, when it is first imported (and dualrev
imports SciPy), so the SciPy checks run in a fresh interpreter.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dualrev
from dualrev import array_api as xp
from dualrev.testing import check_grads

strict = pytest.importorskip("array_api_strict", reason="needs the 'dev' extra (array-api-strict)")

ROOT = Path(__file__).resolve().parents[1]
DOCS_PAGE = ROOT / "docs" / "scipy-array-api.rst"


def _run(script, array_api):
    env = {k: v for k, v in os.environ.items() if k != "SCIPY_ARRAY_API"}
    if array_api:
        env["SCIPY_ARRAY_API"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)


SCIPY_FUNCTIONS = """
import numpy as np, scipy.optimize as so, scipy.special as sp
import dualrev
from dualrev.testing import check_grads
from dualrev.optimize import minimize

rng = np.random.default_rng(0)
x = rng.uniform(-1.5, 1.5, 7)
check_grads(so.rosen, (x,))
np.testing.assert_allclose(dualrev.grad(so.rosen)(x), so.rosen_der(x), rtol=1e-12)

a, b = rng.normal(size=(3, 4)), rng.uniform(0.5, 2.0, (3, 4))
lse = lambda a, b: sp.logsumexp(a, b=b, axis=1)
np.testing.assert_allclose(lse(a, b), np.log(np.sum(b * np.exp(a), axis=1)), rtol=1e-12)
check_grads(lse, (a, b))
check_grads(lambda a: sp.logsumexp(a, axis=0, keepdims=True), (a,))
check_grads(lambda a: sp.softmax(a, axis=1), (a,))
check_grads(lambda a: sp.log_softmax(a, axis=0), (a,))
np.testing.assert_allclose(dualrev.jacfwd(lambda a: sp.softmax(a))(x),
                           dualrev.jacrev(lambda a: sp.softmax(a))(x), atol=1e-14)

res = minimize(so.rosen, np.zeros(10), method="Newton-CG", options={"xtol": 1e-10})
np.testing.assert_allclose(res.x, np.ones(10), atol=1e-6)
print("all passed")
"""


def test_scipy_array_api_functions_differentiate():
    run = _run(SCIPY_FUNCTIONS, array_api=True)
    assert run.returncode == 0 and "all passed" in run.stdout, run.stderr


def test_without_scipy_array_api_the_error_names_the_variable():
    run = _run("import numpy as np, scipy.optimize as so, dualrev\n"
               "dualrev.grad(so.rosen)(np.zeros(3))", array_api=False)
    assert run.returncode != 0
    assert "TypeError: A traced value" in run.stderr, run.stderr
    assert "SCIPY_ARRAY_API=1" in run.stderr
    assert "before SciPy is first imported" in run.stderr


# ---- the namespace against the standard --------------------------------------
def _standard_names(module, defined_in="array_api_strict"):
    """The standard's names in an array-api-strict module: the functions defined
    in ``defined_in``, constants and data types (not its helpers, flags or
    typing imports)."""
    names = set()
    for name in dir(module):
        obj = getattr(module, name)
        if name.startswith("_") or "flags" in name or isinstance(obj, type(np)):
            continue
        if callable(obj) and not isinstance(obj, type):
            if getattr(obj, "__module__", "").startswith(defined_in) \
                    and "requires" not in name:
                names.add(name)
        elif defined_in == "array_api_strict" and (
                isinstance(obj, (float, type(None))) or type(obj).__name__ == "DType"):
            names.add(name)
    return names


def _documented_unsupported():
    text = DOCS_PAGE.read_text()
    section = text.split("Not supported")[1]
    return set(re.findall(r"``(?:linalg\.|fft\.)?(\w+)``", section))


def test_standard_names_are_known():
    assert {"sum", "exp", "asarray", "pi", "float64", "where"} <= _standard_names(strict)


@pytest.mark.parametrize("module, defined_in, ours",
                         [(strict, "array_api_strict", xp),
                          (strict.linalg, "array_api_strict._linalg", xp.linalg),
                          (strict.fft, "array_api_strict._fft", xp.fft)],
                         ids=["main", "linalg", "fft"])
def test_namespace_has_every_standard_name_or_documents_it(module, defined_in, ours):
    missing = {n for n in _standard_names(module, defined_in) if not hasattr(ours, n)}
    assert missing <= _documented_unsupported(), sorted(missing - _documented_unsupported())


def test_fft_has_the_one_dimensional_transforms():
    transforms = {"fft", "ifft", "rfft", "irfft"}
    assert all(callable(getattr(xp.fft, n, None)) for n in transforms)
    assert not transforms & _documented_unsupported()


def test_documented_unsupported_matches_the_module():
    assert set(xp.UNSUPPORTED) | set(xp.UNSUPPORTED_LINALG) | set(xp.UNSUPPORTED_FFT) \
        == _documented_unsupported()


# ---- values match array-api-strict; derivatives pass the checks --------------
rng = np.random.default_rng(1)
M = rng.normal(size=(3, 4))
SQUARE = rng.normal(size=(3, 3))
SPD = SQUARE @ SQUARE.T + 3 * np.eye(3)
REAL_SPECTRUM = np.diag([1.0, 2.5, 4.0]) + 0.1 * SQUARE  # not symmetric, distinct eigenvalues
TALL = rng.normal(size=(4, 3))
UNIT = rng.uniform(-0.9, 0.9, (3, 4))
ABOVE_ONE = rng.uniform(1.1, 3.0, (3, 4))
POS = rng.uniform(0.2, 2.0, (3, 4))

# name -> (arguments, keyword arguments, differentiable): False, True (in the
# first argument), the position of the differentiated argument, or
# "symmetric" (the first argument, along symmetric directions)
CASES = {
    **{n: ((M,), {}, True) for n in
       "abs asinh atan cos cosh exp expm1 negative positive sin sinh square tan tanh".split()},
    **{n: ((UNIT,), {}, True) for n in "acos asin atanh".split()},
    "acosh": ((ABOVE_ONE,), {}, True),
    **{n: ((POS,), {}, True) for n in "log log10 log1p log2 reciprocal sqrt".split()},
    **{n: ((M, POS), {}, True) for n in
       "add atan2 divide hypot logaddexp maximum minimum multiply subtract".split()},
    "pow": ((POS, M), {}, True),
    **{n: ((M,), {}, False) for n in
       "ceil floor trunc round sign signbit isfinite isinf isnan".split()},
    **{n: ((M, POS), {}, False) for n in
       "equal not_equal less less_equal greater greater_equal".split()},
    **{n: ((M,), {"axis": 1}, True) for n in "sum prod mean max min".split()},
    "std": ((M,), {"axis": 0, "correction": 1}, True),
    "var": ((M,), {"axis": None, "correction": 1}, True),
    "cumulative_sum": ((M,), {"axis": 1, "include_initial": True}, True),
    "cumulative_prod": ((M,), {"axis": 0}, True),
    "diff": ((M,), {"axis": 1, "prepend": POS[:, :1]}, True),
    "clip": ((M,), {"min": -0.5, "max": 0.5}, True),
    "reshape": ((M, (4, 3)), {}, True),
    "flip": ((M,), {"axis": 0}, True),
    "roll": ((M, 2), {"axis": 1}, True),
    "moveaxis": ((M, 0, 1), {}, True),
    "permute_dims": ((M, (1, 0)), {}, True),
    "matrix_transpose": ((M,), {}, True),
    "expand_dims": ((M,), {"axis": 1}, True),
    "squeeze": ((M[:1],), {"axis": 0}, True),
    "broadcast_to": ((M[:1], (3, 4)), {}, True),
    "tile": ((M, (2, 1)), {}, True),
    "repeat": ((M, 2), {"axis": 1}, True),
    "take": ((M, np.array([2, 0, 2])), {"axis": 1}, True),
    "take_along_axis": ((M, np.argsort(M, axis=1)), {"axis": 1}, True),
    "concat": (([M, POS],), {"axis": 0}, True),
    "stack": (([M, POS],), {"axis": 1}, True),
    "unstack": ((M,), {"axis": 1}, True),
    "where": ((M > 0, M, POS), {}, 1),
    "matmul": ((M, M.T), {}, True),
    "tensordot": ((M, POS), {"axes": ([0, 1], [0, 1])}, True),
    "vecdot": ((M, POS), {}, True),
    "copysign": ((POS, M), {}, False),
    "argmax": ((M,), {"axis": 1}, False),
    "argsort": ((M,), {"axis": 1}, False),
    "sort": ((M,), {"axis": 1, "descending": True}, True),
    "tril": ((M,), {"k": 1}, True),
    "triu": ((M,), {"k": -1}, True),
    "broadcast_arrays": ((M[:1], POS), {}, False),
    "conj": ((M,), {}, True),
    "real": ((M,), {}, True),
    "imag": ((M + 2j * POS,), {}, False),  # the standard's imag takes complex values only
}
LINALG_CASES = {
    "cholesky": ((SPD,), {}, "symmetric"),
    "det": ((SQUARE,), {}, True),
    "inv": ((SQUARE,), {}, True),
    "solve": ((SQUARE, M), {}, True),
    "eigvalsh": ((SPD,), {}, "symmetric"),
    "trace": ((SQUARE,), {"offset": 1}, True),
    "diagonal": ((M,), {}, True),
    "outer": ((M[0], POS[1]), {}, True),
    "vector_norm": ((M,), {"axis": 1}, True),
    "matrix_norm": ((SQUARE,), {}, True),
    "cross": ((M[:, :3], POS[:, 1:]), {"axis": -1}, True),
    "eig": ((REAL_SPECTRUM,), {}, True),
    "eigvals": ((REAL_SPECTRUM,), {}, True),
    "matrix_power": ((SQUARE, 3), {}, True),
    "pinv": ((TALL,), {}, True),
    "qr": ((TALL,), {}, True),
    "svd": ((TALL,), {"full_matrices": False}, True),
    "svdvals": ((TALL,), {}, True),
}


def _to_strict(a):
    if isinstance(a, list):
        return [_to_strict(b) for b in a]
    return strict.asarray(a) if isinstance(a, np.ndarray) else a


def _as_numpy(out):
    if isinstance(out, tuple):
        return [np.asarray(o) for o in out]
    return np.asarray(out)


def _check(ours, theirs, args, kwargs, differentiable):
    strict_kwargs = {k: _to_strict(v) for k, v in kwargs.items()}
    expected = _as_numpy(theirs(*[_to_strict(a) for a in args], **strict_kwargs))
    got = _as_numpy(ours(*args, **kwargs))
    pairs = zip(got, expected, strict=True) if isinstance(expected, list) else [(got, expected)]
    for value, strict_value in pairs:  # results of several arrays (svd) compared one by one
        np.testing.assert_allclose(value, strict_value, rtol=1e-12, atol=1e-12)
    if differentiable is False:
        return
    k = differentiable if type(differentiable) is int else 0

    def f(x):
        if differentiable == "symmetric":
            x = (x + x.T) / 2
        return ours(*args[:k], x, *args[k + 1:], **kwargs)
    if isinstance(args[k], list):
        check_grads(lambda *xs: ours(list(xs), *args[1:], **kwargs), tuple(args[k]))
    else:
        check_grads(f, (args[k],))


@pytest.mark.parametrize("name", sorted(CASES))
def test_function_matches_array_api_strict(name):
    _check(getattr(xp, name), getattr(strict, name), *CASES[name])


@pytest.mark.parametrize("name", sorted(LINALG_CASES))
def test_linalg_function_matches_array_api_strict(name):
    _check(getattr(xp.linalg, name), getattr(strict.linalg, name), *LINALG_CASES[name])


def test_every_supported_elementwise_function_has_a_case():
    functions = {n for n in _standard_names(strict) if hasattr(xp, n)
                 and callable(getattr(xp, n)) and not isinstance(getattr(xp, n), type)}
    creation = {"arange", "asarray", "astype", "empty", "empty_like", "eye", "full",
                "full_like", "linspace", "ones", "ones_like", "zeros", "zeros_like",
                "broadcast_shapes", "can_cast", "finfo", "iinfo", "isdtype", "result_type",
                "all", "any", "count_nonzero", "nonzero", "searchsorted", "argmin",
                "logical_and", "logical_not", "logical_or", "logical_xor", "remainder",
                "floor_divide"}
    assert functions - creation - set(CASES) == set()


# ---- in-place updates (SciPy's xpx.at) ---------------------------------------
def test_item_assignment_on_a_copy_differentiates():
    def f(x):
        y = xp.asarray(x, copy=True)
        y[1:3] = x[:2] ** 2
        y[np.array([0, 0])] = 5.0 * x[3]
        return y
    x = rng.normal(size=5)
    expected = x.copy()
    expected[1:3] = x[:2] ** 2
    expected[0] = 5.0 * x[3]
    np.testing.assert_allclose(f(x), expected)
    check_grads(f, (x,))


def test_item_assignment_on_a_differentiated_input_raises():
    def f(x):
        x[0] = 1.0
        return x
    with pytest.raises(TypeError, match="differentiated input"):
        dualrev.grad(lambda x: f(x).sum())(np.ones(3))


def test_namespace_of_a_traced_value():
    seen = []
    dualrev.grad(lambda x: seen.append(x.__array_namespace__()) or x.sum())(np.ones(2))
    assert seen == [xp]


# ---- linalg and fft: the namespace differentiates as NumPy's functions do ----
def _real_loss(out):
    """A real scalar of every array in ``out`` (complex ones included)."""
    parts = out if isinstance(out, tuple) else (out,)
    return sum(np.sum(np.real(p) ** 2) + 0.5 * np.sum(np.imag(p) ** 2) for p in parts)


# name -> (the namespace's call, NumPy's call, the point)
NUMPY_EQUIVALENTS = {
    "linalg.cross": (lambda a: xp.linalg.cross(a, POS[:, 1:]),
                     lambda a: np.cross(a, POS[:, 1:]), M[:, :3]),
    "linalg.eig": (xp.linalg.eig, np.linalg.eig, REAL_SPECTRUM),
    "linalg.eigvals": (xp.linalg.eigvals, np.linalg.eigvals, REAL_SPECTRUM),
    "linalg.matrix_power": (lambda a: xp.linalg.matrix_power(a, -2),
                            lambda a: np.linalg.matrix_power(a, -2), SQUARE),
    "linalg.pinv": (lambda a: xp.linalg.pinv(a, rtol=1e-3),
                    lambda a: np.linalg.pinv(a, rtol=1e-3), TALL),
    "linalg.qr": (lambda a: xp.linalg.qr(a, mode="complete"),
                  lambda a: np.linalg.qr(a, mode="complete"), SQUARE),
    "linalg.svd": (lambda a: xp.linalg.svd(a, full_matrices=False),
                   lambda a: np.linalg.svd(a, full_matrices=False), TALL),
    "linalg.svdvals": (xp.linalg.svdvals, np.linalg.svdvals, TALL),
    "fft.fft": (lambda a: xp.fft.fft(a, n=6, axis=0, norm="ortho"),
                lambda a: np.fft.fft(a, n=6, axis=0, norm="ortho"), M),
    "fft.ifft": (lambda a: xp.fft.ifft(a, axis=1, norm="forward"),
                 lambda a: np.fft.ifft(a, axis=1, norm="forward"), M),
    "fft.rfft": (lambda a: xp.fft.rfft(a, n=5), lambda a: np.fft.rfft(a, n=5), M),
    "fft.irfft": (lambda a: xp.fft.irfft(xp.fft.rfft(a), n=4, axis=-1),
                  lambda a: np.fft.irfft(np.fft.rfft(a), n=4, axis=-1), M),
}


@pytest.mark.parametrize("name", sorted(NUMPY_EQUIVALENTS))
def test_linalg_and_fft_differentiate_as_numpy(name):
    ours, numpys, x = NUMPY_EQUIVALENTS[name]
    expected = dualrev.grad(lambda a: _real_loss(numpys(a)))(x)
    assert np.any(expected != 0)
    np.testing.assert_allclose(dualrev.grad(lambda a: _real_loss(ours(a)))(x), expected,
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dualrev.jacfwd(lambda a: _real_loss(ours(a)))(x), expected,
                               rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", sorted(n for n in NUMPY_EQUIVALENTS if n.startswith("fft.")))
def test_fft_transforms_pass_the_derivative_checks(name):
    ours, _, x = NUMPY_EQUIVALENTS[name]
    check_grads(lambda a: _real_loss(ours(a)), (x,))
