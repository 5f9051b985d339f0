"""What every transformation promises, independent of any one op."""

import threading
import warnings

import numpy as np
import pytest
import scipy.special

import dualrev as dr
from dualrev.testing import check_grads

RNG = np.random.default_rng(0)


# ---- gradients flow where they should ---------------------------------------------

def test_unused_input_gets_zero_gradient():
    g = dr.grad(lambda x, y: np.sum(x ** 2), argnums=(0, 1))(np.ones(3), np.ones((2, 2)))
    np.testing.assert_array_equal(g[0], 2 * np.ones(3))
    np.testing.assert_array_equal(g[1], np.zeros((2, 2)))
    assert dr.grad(lambda x: 3.0)(1.0) == 0.0


def test_broadcasting_sums_back():
    x, b = RNG.standard_normal((4, 3)), RNG.standard_normal(3)
    gx, gb = dr.grad(lambda x, b: np.sum((x + b) * b), argnums=(0, 1))(x, b)
    assert gx.shape == x.shape and gb.shape == b.shape
    np.testing.assert_allclose(gx, np.broadcast_to(b, x.shape))
    np.testing.assert_allclose(gb, np.sum(x, axis=0) + 2 * 4 * b)


def test_reused_value_accumulates():
    # the copy gate: x feeds three uses, each contributes
    assert dr.grad(lambda x: x * x + x)(3.0) == 7.0
    assert dr.grad(lambda x: np.sin(x) * np.sin(x))(0.3) == pytest.approx(np.sin(0.6))


def test_long_chain_has_no_recursion_limit():
    def chain(x):
        acc = x
        for _ in range(1_000_000):
            acc = acc + x
        return acc
    assert dr.grad(chain)(1.0) == 1_000_001.0


def test_indexing_repeated_indices_accumulate():
    x = np.arange(4.0)
    g = dr.grad(lambda x: np.sum(x[np.array([0, 0, 3])]))(x)
    np.testing.assert_array_equal(g, [2.0, 0.0, 0.0, 1.0])
    g = dr.grad(lambda x: x[1] * x[1] + x[2])(x)
    np.testing.assert_array_equal(g, [0.0, 2.0, 1.0, 0.0])


# ---- arguments and structures ----------------------------------------------------

def test_argnums_and_nested_structures():
    params = {"W": RNG.standard_normal((3, 2)), "b": [np.zeros(2), 1.5]}
    x = RNG.standard_normal(3)

    def loss(params, x):
        W, (b, s) = params["W"], params["b"]
        return np.sum(np.tanh(x @ W + b)) * s

    g = dr.grad(loss)(params, x)
    assert set(g) == {"W", "b"} and isinstance(g["b"], list)
    assert g["W"].shape == (3, 2) and g["b"][0].shape == (2,)
    check_grads(loss, (params, x), order=1)
    gx = dr.grad(loss, argnums=1)(params, x)
    assert gx.shape == (3,)


def test_integer_inputs_are_differentiated_as_float64():
    assert dr.grad(lambda x: x ** 3)(2) == 12.0
    g = dr.grad(lambda x: np.sum(x * x))(np.arange(3))
    assert g.dtype == np.float64
    np.testing.assert_array_equal(g, [0.0, 2.0, 4.0])


def test_has_aux_and_value_and_grad():
    (value, aux), g = dr.value_and_grad(lambda x: (x ** 2, "aux"), has_aux=True)(3.0)
    assert (value, aux, g) == (9.0, "aux", 6.0)
    g, aux = dr.grad(lambda x: (np.sin(x), x), has_aux=True)(0.0)
    assert g == 1.0 and aux == 0.0


@pytest.mark.parametrize("other", [2.0, np.float64(2.0), np.array(2.0), np.full(3, 2.0)],
                         ids=["float", "float64", "0d", "array"])
def test_mixed_operands_in_either_order(other):
    x = np.array([0.5, 1.5, 2.5])
    for f in (lambda x: x * other, lambda x: other * x, lambda x: other - x,
              lambda x: x / other, lambda x: other / x, lambda x: other ** x,
              lambda x: np.maximum(other, x), lambda x: np.add(other, x)):
        check_grads(lambda x: np.sum(f(x)), (x,), order=1)


def test_control_flow_reads_primal_values():
    def newton_sqrt(a):
        x = a
        while abs(x * x - a) > 1e-12:
            x = 0.5 * (x + a / x)
        return x if x > 0 else -x
    assert dr.grad(newton_sqrt)(4.0) == pytest.approx(0.25)
    assert dr.grad(lambda x: x if x > 0 else -x)(-2.0) == -1.0


# ---- modes agree, nest, and do not confuse perturbations ---------------------------

def test_jacobians_agree_and_chunking_is_invisible():
    A = RNG.standard_normal((5, 4))
    f = lambda x: np.tanh(A @ x) * x[0]  # noqa: E731
    x = RNG.standard_normal(4)
    J = dr.jacrev(f)(x)
    np.testing.assert_allclose(dr.jacfwd(f)(x), J, rtol=1e-12)
    np.testing.assert_allclose(dr.jacfwd(f, chunk_size=3)(x), J, rtol=1e-12)
    np.testing.assert_allclose(dr.jacobian(f)(x), J, rtol=1e-12)
    assert dr.choose_mode(f, (x,), {}) == "fwd"
    assert dr.choose_mode(lambda x: np.sum(x), (x,), {}) == "rev"


def test_vjp_function_can_be_reused():
    W = RNG.standard_normal((3, 4))
    out, vjp_fn = dr.vjp(lambda x: W @ x, np.ones(4))
    for u in np.eye(3):
        np.testing.assert_allclose(vjp_fn(u)[0], W.T @ u)


@pytest.mark.parametrize("outer", ["fwd", "rev"])
@pytest.mark.parametrize("inner", ["fwd", "rev"])
def test_no_perturbation_confusion(outer, inner):
    # d/dx [x * d/dy (x + y)] = 1 at every x
    d = {"fwd": dr.derivative, "rev": dr.grad}
    f = lambda x: x * d[inner](lambda y: x + y)(1.0)  # noqa: E731
    for x in (0.0, 3.0, -2.5):
        assert d[outer](f)(x) == 1.0


def test_third_derivative_through_mixed_nesting():
    f = lambda x: np.sin(x) * x  # noqa: E731
    exact = lambda x: -3 * np.sin(x) - x * np.cos(x)  # noqa: E731
    for a, b, c in [(dr.grad, dr.grad, dr.grad), (dr.derivative, dr.grad, dr.derivative),
                    (dr.grad, dr.derivative, dr.derivative)]:
        assert a(b(c(f)))(0.7) == pytest.approx(exact(0.7), rel=1e-12)


def test_threads_differentiate_independently():
    results, errors = {}, []

    def work(k):
        try:
            f = (lambda x: np.sum(np.sin(x) * k)) if k % 2 else (lambda x: np.sum(x ** k))
            x = np.linspace(0.1, 1.0, 50)
            for _ in range(30):
                g = dr.grad(f)(x)
            results[k] = (g, np.cos(x) * k if k % 2 else k * x ** (k - 1))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2, 8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for g, expected in results.values():
        np.testing.assert_allclose(g, expected, rtol=1e-12)


# ---- the cs231n examples, with their published numbers ---------------------------

def test_cs231n_add_multiply():
    assert dr.grad(lambda x, y, z: (x + y) * z, argnums=(0, 1, 2))(-2.0, 5.0, -4.0) == \
        (-4.0, -4.0, 3.0)


def test_cs231n_sigmoid_neuron():
    def neuron(w, x):
        dot = w[0] * x[0] + w[1] * x[1] + w[2]
        return 1.0 / (1 + np.exp(-dot))
    dw, dx = dr.grad(neuron, argnums=(0, 1))(np.array([2.0, -3.0, -3.0]), np.array([-1.0, -2.0]))
    np.testing.assert_allclose(dx, [0.3932238664829637, -0.5898357997244456], rtol=1e-15)
    np.testing.assert_allclose(dw, [-0.19661193324148185, -0.3932238664829637,
                                    0.19661193324148185], rtol=1e-15)
    dw2 = dr.grad(lambda w, x: scipy.special.expit(w[:2] @ x + w[2]))(
        np.array([2.0, -3.0, -3.0]), np.array([-1.0, -2.0]))
    np.testing.assert_allclose(dw2, dw, rtol=1e-15)


def test_cs231n_staged_example_matches_hand_backprop():
    def f(x, y):
        sigy = 1.0 / (1 + np.exp(-y))
        num = x + sigy
        sigx = 1.0 / (1 + np.exp(-x))
        den = sigx + (x + y) ** 2
        return num / den

    x, y = 3.0, -4.0
    # the notes' staged backprop, step by step
    sigy = 1.0 / (1 + np.exp(-y)); num = x + sigy; sigx = 1.0 / (1 + np.exp(-x))  # noqa: E702
    xpy = x + y; den = sigx + xpy ** 2; invden = 1.0 / den  # noqa: E702
    dnum, dinvden = invden, num
    dden = (-1.0 / den ** 2) * dinvden
    dxpy = 2 * xpy * dden
    dx = dxpy + (1 - sigx) * sigx * dden + dnum
    dy = dxpy + (1 - sigy) * sigy * dnum
    gx, gy = dr.grad(f, argnums=(0, 1))(x, y)
    assert gx == pytest.approx(dx, rel=1e-14) and gy == pytest.approx(dy, rel=1e-14)


def test_cs231n_matrix_multiply_gradients():
    W, X = RNG.random((5, 10)), RNG.random((10, 3))
    dD = RNG.random((5, 3))
    _, vjp_fn = dr.vjp(lambda W, X: W @ X, W, X)
    dW, dX = vjp_fn(dD)
    np.testing.assert_allclose(dW, dD @ X.T, rtol=1e-14)
    np.testing.assert_allclose(dX, W.T @ dD, rtol=1e-14)


# ---- conventions at non-differentiable points, the same in both modes ------------

@pytest.mark.parametrize("diff", [dr.grad, dr.derivative], ids=["rev", "fwd"])
def test_conventions_at_kinks(diff):
    assert diff(np.abs)(0.0) == 0.0
    assert diff(lambda x: np.maximum(x, 0.0))(0.0) == 0.0
    assert diff(lambda x: np.maximum(x, 0.0))(1e-300) == 1.0
    assert diff(lambda x: np.linalg.norm(np.stack([x, x])))(0.0) == 0.0


def test_ties_split_evenly_in_reductions():
    x = np.array([1.0, 3.0, 3.0, 2.0])
    for diff in ("fwd", "rev"):
        J = (dr.jacfwd if diff == "fwd" else dr.jacrev)(np.max)(x)
        np.testing.assert_array_equal(J, [0.0, 0.5, 0.5, 0.0])
        J = (dr.jacfwd if diff == "fwd" else dr.jacrev)(np.min)(x)
        np.testing.assert_array_equal(J, [1.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("diff", [dr.grad, dr.derivative], ids=["rev", "fwd"])
@pytest.mark.parametrize("x", [0.0, np.float64(0.0)], ids=["float", "float64"])
def test_sqrt_at_zero_is_inf_with_numpy_warning(diff, x):
    with pytest.warns(RuntimeWarning):
        assert diff(np.sqrt)(x) == np.inf


def test_sqrt_at_zero_on_arrays():
    x = np.array([0.0, 4.0])
    with pytest.warns(RuntimeWarning):
        g = dr.grad(lambda x: np.sum(np.sqrt(x)))(x)
    np.testing.assert_array_equal(g, [np.inf, 0.25])
    with pytest.warns(RuntimeWarning):
        _, t = dr.jvp(np.sqrt, (x,), (np.array([1.0, 1.0]),))
    np.testing.assert_array_equal(t, [np.inf, 0.25])


def test_where_nan_trap_and_safe_recipe():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        trap = dr.grad(lambda x: np.where(x > 0, np.sqrt(x), 0.0))(0.0)
    assert np.isnan(trap)  # 0 * inf from the branch that was not taken
    safe = dr.grad(lambda x: np.where(x > 0, np.sqrt(np.where(x > 0, x, 1.0)), 0.0))(0.0)
    assert safe == 0.0


# ---- bad input: a clear error, never a silent wrong number -----------------------

def test_unsupported_function_names_itself_and_the_registration_api():
    with pytest.raises(NotImplementedError, match=r"numpy\.fft\.hfft.*defop.*register_numpy"):
        dr.grad(lambda x: np.sum(np.fft.hfft(x).real))(np.ones(4))
    with pytest.raises(NotImplementedError, match=r"numpy\.heaviside.*dualrev\.defop"):
        dr.grad(lambda x: np.sum(np.heaviside(x, 0.5)))(np.ones(4))
    assert issubclass(dr.UnsupportedFunctionError, NotImplementedError)


def test_grad_of_non_scalar_says_use_jacrev_or_vjp():
    with pytest.raises(TypeError, match=r"scalar output.*jacrev.*vjp"):
        dr.grad(np.sin)(np.ones(3))


def test_writing_traced_value_into_plain_array():
    def f(x):
        a = np.zeros(3)
        a[0] = x
        return np.sum(a)
    with pytest.raises(TypeError, match=r"np\.stack"):
        dr.grad(f)(1.0)


@pytest.mark.parametrize("bad", [
    lambda x: float(x), lambda x: np.asarray(x), lambda x: np.array(x),
    lambda x: np.sin(x, out=np.zeros(())), lambda x: np.sum(x, out=np.zeros(())),
    lambda x: int(x), lambda x: __import__("math").sin(x)],
    ids=["float", "asarray", "array", "ufunc-out", "sum-out", "int", "math.sin"])
def test_conversions_that_would_drop_derivatives_raise(bad):
    with pytest.raises(TypeError, match=r"out=|derivative"):
        dr.grad(bad)(1.0)


def test_assigning_into_a_differentiated_input_raises_naming_the_copy():
    def f(x):
        x[0] = 1.0
        return np.sum(x)
    with pytest.raises(TypeError, match=r"differentiated input.*copy=True"):
        dr.grad(f)(np.ones(2))


@pytest.mark.parametrize("arg, word", [(1 + 2j, "complex"), ("a", "str"),
                                       (np.array(["a"]), "dtype"), (object(), "object"),
                                       (np.ones(2, complex), "complex")])
def test_non_real_inputs_raise_type_error_naming_the_argument(arg, word):
    with pytest.raises(TypeError, match=rf"argument 0.*{word}"):
        dr.grad(lambda x: x)(arg)


def test_tape_keeps_only_what_rules_read():
    import gc
    import weakref
    refs = []

    def f(x):
        a = x * 2.0          # multiply's rule for x reads only the constant
        b = np.exp(a)        # exp's rule reads its output, not a
        refs.append(weakref.ref(a.value))
        return np.sum(b)

    x = np.linspace(0.0, 1.0, 5)
    _, vjp_fn = dr.vjp(f, x)
    gc.collect()
    assert refs[0]() is None  # the intermediate a was freed while the tape lives
    np.testing.assert_allclose(vjp_fn(1.0)[0], 2 * np.exp(2 * x))


def test_a_released_sweep_spends_the_tape_and_frees_what_it_saved():
    import weakref
    from dualrev.reverse import Tape
    tape = Tape()
    x = tape.input(np.linspace(0.0, 1.0, 5))
    y = np.exp(x)                      # exp's record keeps its output
    saved = weakref.ref(y.value)
    out = np.sum(y)
    del y
    kept = tape.backward({out.index: 1.0}, [x.index])
    assert saved() is not None         # a plain sweep leaves the tape whole
    spent = tape.backward({out.index: 1.0}, [x.index], release=True)
    assert saved() is None and all(r is None for r in tape.records)
    np.testing.assert_array_equal(spent[0], kept[0])


def test_adding_a_constant_records_nothing_and_shares_the_cotangent():
    from dualrev.reverse import Tape
    x = np.array([1.0, 2.0, 3.0])
    tape = Tape()
    node = tape.input(x)
    shifted = node + 1.0 - np.ones(3)          # x + c and x - c: identity rules
    assert shifted.index == node.index and tape.records == [None]
    keep_all = Tape(keep_all=True)             # explain() still sees every op
    keep_all.input(x) + 1.0
    assert [r[0].name for r in keep_all.records[1:]] == ["add"]
    assert dr.grad(lambda x: x + 1.0)(2.0) == 1.0
    u, w = np.array([1.0, -2.0, 0.5]), np.array([3.0, 1.0, 1.0])
    out, pull = dr.vjp(lambda x: (x + 1.0, x - 2.0, 2.0 - x), x)
    np.testing.assert_array_equal(pull((u, w, w))[0], u)   # u + w - w
    widened = dr.grad(lambda x: np.sum((x + np.ones((2, 3))) ** 2))(x)  # broadcast: recorded
    np.testing.assert_allclose(widened, 4 * (x + 1))
    cube = lambda x: np.sum((x + 1.0) ** 3)   # noqa: E731
    for mode in ("rev-rev", "fwd-rev"):        # a sweep and a forward replay
        np.testing.assert_allclose(dr.hvp_operator(cube, x, mode=mode) @ u, 6 * (x + 1) * u)


@pytest.mark.parametrize("x", [1.5, np.linspace(0.5, 1.5, 4)], ids=["scalar", "array"])
def test_one_traced_argument_records_as_the_general_path(x):
    from dualrev.reverse import Tape
    from dualrev.registry import NO_PARAMS, OPS
    calls = [("multiply", 0, 2.0), ("subtract", 1, 2.0), ("power", 0, 3.0),
             ("divide", 1, 1.0), ("sin", 0, None), ("add", 0, 0.5)]
    for name, k, c in calls:
        fast, general = Tape(), Tape()
        nodes = fast.input(x), general.input(x)
        args = [(n,) if c is None else ((n, c) if k == 0 else (c, n)) for n in nodes]
        a = fast.process_one(OPS[name], args[0], k)
        b = general.process(OPS[name], args[1], NO_PARAMS)
        assert a.index == b.index and len(fast.records) == len(general.records)
        for ra, rb in zip(fast.records[1:], general.records[1:]):
            assert (ra[0], ra[4], [type(v) for v in ra[1]], type(ra[3])) == \
                (rb[0], rb[4], [type(v) for v in rb[1]], type(rb[3]))
        np.testing.assert_array_equal(a.value, b.value)


def test_grad_of_a_tuple_says_has_aux():
    with pytest.raises(TypeError, match=r"returned a tuple.*has_aux=True"):
        dr.grad(lambda x: (np.sum(x ** 2), "aux"))(np.ones(3))
    with pytest.raises(TypeError, match=r"returned a list.*jacrev"):
        dr.value_and_grad(lambda x: [np.sum(x)])(np.ones(2))


@pytest.mark.parametrize("f", [lambda x: np.mean(x, where=x > 1),
                               lambda x: np.max(x, initial=10.0),
                               lambda x: np.sum(x, initial=1.0)],
                         ids=["mean-where", "max-initial", "sum-initial"])
def test_unimplemented_reduction_options_raise(f):
    with pytest.raises(NotImplementedError, match=r"where|initial"):
        dr.grad(f)(np.array([1.0, 2.0, 3.0]))


@pytest.mark.parametrize("axis", [2, -3, (0, 2)])
def test_reduction_axis_out_of_bounds_raises_like_numpy(axis):
    x = np.ones((2, 3))
    with pytest.raises(np.exceptions.AxisError):
        np.sum(x, axis=axis)
    with pytest.raises(np.exceptions.AxisError):
        dr.grad(lambda x: np.sum(np.max(x, axis=axis)))(x)


@pytest.mark.parametrize("f", [
    lambda x: np.sort(x) * np.arange(4.0),
    lambda x: x.repeat(2) * np.arange(8.0),
    lambda x: x.take([0, 0, 3]),
    lambda x: np.take_along_axis(x, np.argsort(x), axis=0) * np.arange(4.0),
    lambda x: x * np.zeros_like(x) + np.ones_like(x) * x + np.copy(x) + x.real,
], ids=["sort", "repeat", "take", "take_along_axis", "like-copy-real"])
def test_array_methods_and_helpers(f):
    check_grads(f, (np.array([3.0, 1.0, 2.0, 5.0]),), order=2)


def test_sorting_routes_cotangents_to_where_elements_came_from():
    g = dr.grad(lambda x: np.sort(x)[-1])(np.array([3.0, 1.0, 5.0, 2.0]))
    np.testing.assert_array_equal(g, [0.0, 0.0, 1.0, 0.0])


def test_primal_only_helpers_and_conversions():
    x = np.array([0.4, 1.6])
    assert dr.grad(lambda x: np.sum(x * np.round(x)) if x.all() else 0.0)(x).tolist() == [0.0, 2.0]
    with pytest.raises(TypeError, match="derivative"):
        dr.grad(lambda x: x.item())(1.0)
    with pytest.raises(TypeError, match=r"np\.sort"):
        dr.grad(lambda x: x.sort())(x)


def test_unsupported_scipy_ufunc_is_named_as_scipy():
    import scipy.special
    with pytest.raises(NotImplementedError, match=r"scipy\.special\.gamma"):
        dr.grad(scipy.special.gamma)(1.5)


def test_jacfwd_chunks_do_not_build_the_full_identity():
    import tracemalloc
    f = lambda x: np.sum(x ** 2)  # noqa: E731
    x = np.ones(3000)
    tracemalloc.start()
    J = dr.jacfwd(f, chunk_size=100)(x)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_array_equal(J, 2 * x)
    assert peak < 20e6  # a full 3000 x 3000 identity alone would be 72 MB
