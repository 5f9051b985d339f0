"""Regression tests of the hardening issue: each reproduces a reported call
that gave a silent wrong answer or an unclear error."""

import os
import warnings

import numpy as np
import pytest
from scipy.sparse.linalg import LinearOperator

import dualrev as dr
from dualrev.cli import main
from dualrev.comparison import ModeResult, Report, format_table
from dualrev.hessian_free import hessian_free
from dualrev.hvp import HVP_MODES
from dualrev.optimize import minimize
from dualrev.registry import NUMPY_FUNCTIONS, OPS
from dualrev.teaching import check_backprop


@pytest.fixture
def op_name(request):
    """A fresh op name, removed from the registry after the test."""
    name = f"hardening_{request.node.name}".replace("[", "_").replace("]", "")
    yield name
    OPS.pop(name, None)


# ---- 1. constant outputs get zero tangents ---------------------------------------

def test_jvp_of_a_constant_output_is_zeros():
    x, v = np.arange(3.0), np.ones(3)
    out, t = dr.jvp(lambda x: np.ones(3), (x,), (v,))
    assert isinstance(t, np.ndarray) and t.shape == (3,) and not t.any()
    _, t32 = dr.jvp(lambda x: np.ones(2, np.float32), (x,), (v,))
    assert t32.dtype == np.float32


def test_jvp_of_an_hvp_of_a_quadratic():
    A = np.array([[2.0, 1.0], [1.0, 3.0]])
    x, v = np.array([1.0, -1.0]), np.array([0.5, 2.0])
    out, t = dr.jvp(lambda x: dr.hvp(lambda y: 0.5 * y @ A @ y, x, v), (x,), (v,))
    np.testing.assert_allclose(out, A @ v)
    assert t.shape == (2,) and not t.any()   # H is constant in x


def test_constant_outputs_in_every_transformation():
    x = np.arange(3.0)
    assert not dr.jacfwd(lambda x: np.ones(2))(x).any()
    assert dr.jacrev(lambda x: np.ones(2))(x).shape == (2, 3)
    assert not dr.hessian(lambda x: np.sum(x))(x).any()
    assert dr.derivative(lambda t: np.ones(2))(0.5).shape == (2,)
    for mode in HVP_MODES:
        assert not dr.hvp(lambda x: np.sum(x), x, np.ones(3), mode=mode).any()


# ---- 2. escaped tracers ---------------------------------------------------------

def test_a_cached_inner_value_raises_instead_of_a_zero_gradient():
    cache = {}

    def f(x):
        if "y" not in cache:
            cache["y"] = 7.0 * x
        return cache["y"]
    assert dr.grad(f)(1.0) == 7.0
    with pytest.raises(dr.EscapedTracerError, match="stop_gradient"):
        dr.grad(f)(1.0)


def test_an_escaped_value_in_arithmetic_raises():
    stored = []

    def f(x):
        stored.append(x * 2.0)
        return np.sin(x)
    dr.grad(f)(1.0)
    with pytest.raises(dr.EscapedTracerError, match="finished reverse-mode"):
        dr.grad(lambda x: x * stored[0])(1.0)
    with pytest.raises(dr.EscapedTracerError):
        stored[0] + 1.0   # the cached pattern no longer grows a finished tape


def test_an_escaped_dual_raises_in_jvp():
    stored = []

    def f(x):
        if not stored:
            stored.append(np.sin(x))
        return stored[0] * 2.0
    out, t = dr.jvp(f, (0.5,), (1.0,))
    assert t == pytest.approx(2 * np.cos(0.5))
    with pytest.raises(dr.EscapedTracerError, match="forward-mode"):
        dr.jvp(f, (0.5,), (1.0,))


def test_vjp_fn_still_sweeps_after_vjp_returns():
    out, vjp_fn = dr.vjp(lambda x: x ** 2, np.array([1.0, 2.0]))
    np.testing.assert_allclose(vjp_fn(np.ones(2))[0], [2.0, 4.0])
    np.testing.assert_allclose(vjp_fn(np.array([1.0, 0.0]))[0], [2.0, 0.0])


def test_aux_comes_back_as_a_value():
    g, aux = dr.grad(lambda x: (x ** 2, x * 3.0), has_aux=True)(2.0)
    assert (g, aux) == (4.0, 6.0) and isinstance(aux, np.floating)


# ---- 3. outputs without a derivative --------------------------------------------

@pytest.mark.parametrize("returned", [None, "loss"], ids=["None", "str"])
def test_a_non_numeric_output_raises(returned):
    def f(x):
        np.sin(x)
        return returned
    for transform in (dr.grad, dr.jacfwd, dr.jacrev, dr.derivative):
        with pytest.raises(TypeError, match=type(returned).__name__):
            transform(f)(1.0)


def test_grad_of_a_bool_raises():
    with pytest.raises(TypeError, match="bool"):
        dr.grad(lambda x: x > 0)(1.0)
    with pytest.raises(TypeError, match="bool"):
        dr.grad(lambda x: bool(x > 0))(1.0)


def test_a_float_constant_keeps_its_zero_gradient():
    assert dr.grad(lambda x: 3.0)(1.0) == 0.0


def test_compare_function_returning_none_fails(tmp_path, capsys):
    path = tmp_path / "user_none.py"
    path.write_text("def f(x):\n    x * 2\n")
    assert main(["compare", "--function", f"{path}:f", "--shape", "3", "--no-hvp",
                 "--quick"]) == 2
    assert "NoneType" in capsys.readouterr().err


# ---- 4. np.matrix ---------------------------------------------------------------

def test_np_matrix_is_rejected():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        A = np.matrix([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(TypeError, match="numpy.matrix"):
        dr.grad(lambda A: (A * A)[0, 0])(A)
    with pytest.raises(TypeError, match="numpy.matrix"):
        dr.hvp_operator(lambda A: np.sum(A * A), A)


# ---- 5, 6. defop rules ----------------------------------------------------------

def test_defop_needs_one_rule_per_argument(op_name):
    with pytest.raises(ValueError, match="exactly one per argument"):
        dr.defop(op_name, np.multiply, nargs=2, jvp=lambda t, out, x, y: t * y,
                 vjp=lambda g, out, x, y: g * y)
    with pytest.raises(ValueError, match="exactly one per argument"):
        dr.defop(op_name, np.sin, jvp=(np.cos, np.cos), vjp=(np.cos, np.cos))
    op = dr.defop(op_name, np.multiply, nargs=2, jvp=(lambda t, out, x, y: t * y, None),
                  vjp=(lambda g, out, x, y: g * y, None))
    assert dr.grad(lambda x: op(x, 3.0))(2.0) == 3.0


def test_a_vjp_rule_of_the_wrong_shape_raises(op_name):
    op = dr.defop(op_name, lambda x: 2.0 * x, jvp=lambda t, out, x: 2.0 * t,
                  vjp=lambda g, out, x: np.sum(g) * 2.0)
    with pytest.raises(ValueError, match=f"{op_name}.*VJP.*shape \\(\\)"):
        dr.grad(lambda x: np.sum(op(x)))(np.ones(3))


def test_a_jvp_rule_of_the_wrong_shape_raises(op_name):
    op = dr.defop(op_name, lambda x: 2.0 * x, jvp=lambda t, out, x: np.sum(t) * 2.0,
                  vjp=lambda g, out, x: 2.0 * g)
    with pytest.raises(ValueError, match=f"{op_name}.*JVP"):
        dr.jacfwd(op)(np.ones(3))
    np.testing.assert_allclose(dr.jacrev(op)(np.ones(3)), 2.0 * np.eye(3))


# ---- 7. complex vectors on the Hessian operator ------------------------------------

def test_hvp_operator_applies_to_complex_vectors():
    A = np.array([[2.0, 1.0], [1.0, 3.0]])
    H = dr.hvp_operator(lambda x: 0.5 * x @ A @ x, np.zeros(2))
    v = np.array([1.0 + 2.0j, -1.0j])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(H @ v, A @ v)
        np.testing.assert_allclose(H.matmat(np.stack([v, 1j * v], axis=1)),
                                   A @ np.stack([v, 1j * v], axis=1))


# ---- 8. the finite-difference step ----------------------------------------------

def test_fd_step_is_scaled_along_v():
    def f(x):
        return np.sum(np.sin(x))
    x = np.array([0.3, 0.7, 1e6])
    v = np.array([1.0, -1.0, 0.0])
    exact = -np.sin(x) * v
    np.testing.assert_allclose(dr.hvp(f, x, v, mode="fd"), exact, rtol=1e-8, atol=1e-12)


def test_fd_with_a_non_finite_v_raises():
    with pytest.raises(ValueError, match="non-finite"):
        dr.hvp(lambda x: np.sum(x ** 3), np.ones(2), np.array([np.inf, 0.0]), mode="fd")


# ---- 9. dtypes ----------------------------------------------------------------

def _loss(x):
    return np.sum(x ** 3) + x[0] * x[1]


def test_float32_stays_float32_in_every_transformation():
    x = np.array([1.0, 2.0, 0.5], np.float32)
    v = np.ones(3, np.float32)
    assert dr.grad(_loss)(x).dtype == np.float32
    assert dr.jacfwd(np.sin)(x).dtype == np.float32
    assert dr.jacrev(np.sin)(x).dtype == np.float32
    for mode in ("fwd-rev", "rev-rev"):
        assert dr.hessian(_loss, mode=mode)(x).dtype == np.float32
    for mode in HVP_MODES:
        assert dr.hvp(_loss, x, v, mode=mode).dtype == np.float32, mode
        assert dr.hvp(_loss, x, np.ones(3), mode=mode).dtype == np.float32, mode
    H = dr.hvp_operator(_loss, x)
    assert H.dtype == np.float32 and (H @ v).dtype == np.float32
    assert H.matmat(np.eye(3, dtype=np.float32)).dtype == np.float32
    expected = np.diag(6.0 * x) + np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_allclose(dr.hessian(_loss)(x), expected, rtol=1e-6)


def test_minimize_keeps_float32():
    res = minimize(lambda x: np.sum((x - 1.5) ** 2), np.zeros(3, np.float32))
    assert res.x.dtype == np.float32
    np.testing.assert_allclose(res.x, 1.5, rtol=1e-5)


# ---- 10. empty arrays ---------------------------------------------------------------

def test_jacrev_of_an_empty_array():
    x = np.zeros(0)
    assert dr.jacrev(lambda x: 2.0 * x)(x).shape == (0, 0)
    assert dr.jacrev(lambda x: np.sum(x))(x).shape == (0,)
    assert dr.jacfwd(lambda x: 2.0 * x)(x).shape == (0, 0)


# ---- unclear errors ---------------------------------------------------------------

def test_has_aux_with_a_scalar_output():
    with pytest.raises(TypeError, match="has_aux=True.*pair"):
        dr.grad(lambda x: x ** 2, has_aux=True)(1.0)


def test_argnums_must_be_int():
    with pytest.raises(TypeError, match="argnums must be an int"):
        dr.grad(lambda x: x, argnums=0.0)(1.0)


def test_check_backprop_needs_a_mapping():
    with pytest.raises(TypeError, match="mapping"):
        check_backprop(lambda x: x * 2.0, (1.0,), np.array([2.0]))


def test_a_list_input_says_it_is_a_structure():
    with pytest.raises(TypeError, match="np.array"):
        dr.grad(lambda x: np.sum(x ** 2))([1.0, 2.0])


def test_minimize_dict_bounds_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"bounds\['w'\].*shape \(2,\)"):
        minimize(lambda p: np.sum(p["w"] ** 2), {"w": np.ones(3)}, method="L-BFGS-B",
                 bounds={"w": (np.zeros(2), None)})
    with pytest.raises(ValueError, match="pair"):
        minimize(lambda p: np.sum(p["w"] ** 2), {"w": np.ones(3)}, method="L-BFGS-B",
                 bounds={"w": (0.0, 1.0, 2.0)})


def test_round_and_divmod_of_traced_values():
    with pytest.raises(TypeError, match="np.round"):
        dr.grad(lambda x: round(x))(1.3)
    q, r = divmod(7.5, 2.0)
    assert dr.grad(lambda x: divmod(x, 2.0)[1])(7.5) == 1.0
    assert dr.value_and_grad(lambda x: sum(divmod(x, 2.0)))(7.5)[0] == q + r


def test_defop_name_must_be_a_string():
    with pytest.raises(TypeError, match="name"):
        dr.defop(123, np.sin, jvp=lambda t, out, x: t, vjp=lambda g, out, x: g)


def test_register_numpy_refuses_to_reroute_without_replace():
    original = NUMPY_FUNCTIONS[np.sin]
    with pytest.raises(ValueError, match="replace=True"):
        dr.register_numpy(np.sin, np.cos)
    dr.register_numpy(np.sin, np.cos, replace=True)
    try:
        assert NUMPY_FUNCTIONS[np.sin] is np.cos
    finally:
        dr.unregister_numpy(np.sin)
    assert NUMPY_FUNCTIONS[np.sin] is original


def test_defop_numpy_refuses_to_reroute(op_name):
    with pytest.raises(ValueError, match="replace=True"):
        dr.defop(op_name, np.sin, jvp=lambda t, out, x: t, vjp=lambda g, out, x: g,
                 numpy=np.sin)
    assert op_name not in OPS


def test_hessian_free_stops_on_a_nan_loss():
    nan_loss = lambda w: np.sum(w ** 2) * np.nan  # noqa: E731
    with pytest.raises(dr.NonFiniteError, match="loss value"):
        hessian_free(nan_loss, np.ones(2), maxiter=5)
    res = hessian_free(nan_loss, np.ones(2), maxiter=5, check_finite=False)
    assert not res.success and "NaN result encountered" in res.message


def test_hessian_free_with_an_exhausted_iterator():
    batches = iter([np.ones(2)])
    with pytest.raises(ValueError, match="ran out after 1 batch"):
        hessian_free(lambda w, b: np.sum((w - b) ** 2), np.zeros(2), batches, maxiter=3)


def test_hessian_free_maxiter_zero_returns_the_loss_at_params():
    res = hessian_free(lambda w: np.sum((w - 1.0) ** 2), np.zeros(2), maxiter=0)
    assert res.fun == 2.0 and res.nit == 0


def test_hessian_free_negative_damping():
    with pytest.raises(ValueError, match="damping"):
        hessian_free(lambda w: np.sum(w ** 2), np.ones(2), damping=-1.0)


# ---- the command line ----------------------------------------------------------------

def test_cli_without_a_command_exits_2(capsys):
    assert main([]) == 2
    assert "usage: dualrev" in capsys.readouterr().err


def test_cli_unknown_compare_option_prints_the_compare_usage(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["compare", "--bogus"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "usage: dualrev compare" in err and "--bogus" in err


def test_hvp_table_marks_a_mismatch():
    def report(predicted, measured):
        hvp = [ModeResult(m, 1, 1.0, 1.0, seconds=1.0) for m in HVP_MODES]
        rev = ModeResult("rev", 1, 1.0, 1.0, seconds=1.0)
        return Report(name="f", n=3, m=1, ops=1, flops=1, f_seconds=1.0,
                      jacobian=[ModeResult("fwd", 3, 1, 1, seconds=1.0), rev],
                      predicted="rev",
                      measured="rev", hvp=hvp, hvp_predicted=predicted,
                      hvp_measured=measured)
    def measured_cell(r):  # the row without its last two cells (compiled, staging)
        return format_table([r]).split("HVP")[1].splitlines()[-1].rsplit(None, 2)[0]
    assert measured_cell(report("fwd-rev", "rev-rev")).endswith("rev-rev *")
    assert not measured_cell(report("fwd-rev", "fwd-rev")).endswith("*")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_cli_json_to_an_unwritable_path_fails_before_the_run(tmp_path, capsys):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert main(["compare", "--json", str(folder / "out.json"), "--quick"]) == 2
    finally:
        folder.chmod(0o700)
    captured = capsys.readouterr()
    assert "cannot write" in captured.err and "compared" not in captured.err


def test_cli_json_into_a_missing_folder_fails_before_the_run(tmp_path, capsys):
    assert main(["compare", "--json", str(tmp_path / "no" / "out.json"), "--quick"]) == 2
    assert "compared" not in capsys.readouterr().err


def test_linear_operator_base_is_scipys():
    assert isinstance(dr.hvp_operator(lambda x: np.sum(x ** 2), np.ones(2)), LinearOperator)
