"""Numerical stability and the conventions at singular points, in both modes.

At ``|x| = 1000`` the stable ops give finite values and finite first and
second derivatives with no overflow on the way (NumPy is told to raise on
overflow and invalid operations); at the points where a derivative is not
defined, forward and reverse mode follow the same documented convention.
"""

import warnings

import numpy as np
import pytest
import scipy.special as sp

import dualrev

BIG = np.array([1000.0, -1000.0, 0.0])
MODES = {"fwd": dualrev.jacfwd, "rev": dualrev.jacrev}
# Second derivatives: forward over forward, and reverse over reverse.
OUTER_OF_GRADIENT = {"fwd": lambda f: dualrev.jacfwd(dualrev.jacfwd(f)),
                     "rev": lambda f: dualrev.jacrev(dualrev.grad(f))}


def weights_like(y):
    return np.linspace(0.5, 1.5, np.size(y)).reshape(np.shape(y))


def hessian_of_weighted_sum(f, x, mode):
    weights = weights_like(f(x))
    return OUTER_OF_GRADIENT[mode](lambda x: np.sum(f(x) * weights))(x)


def softplus(x):
    return np.logaddexp(0.0, x)


# name -> (function, expected value at BIG, expected Jacobian at BIG), both closed form:
# e^-1000 underflows to exactly 0, so every entry is 0, 1, 0.5 or a log.
STABLE = {
    "expit": (sp.expit, [1.0, 0.0, 0.5], np.diag([0.0, 0.0, 0.25])),
    "softplus": (softplus, [1000.0, 0.0, np.log(2.0)], np.diag([1.0, 0.0, 0.5])),
    "log_expit": (sp.log_expit, [0.0, -1000.0, -np.log(2.0)], np.diag([0.0, 1.0, 0.5])),
    "logsumexp": (dualrev.logsumexp, 1000.0, [1.0, 0.0, 0.0]),
    "softmax": (dualrev.softmax, [1.0, 0.0, 0.0], np.zeros((3, 3))),
    "log_softmax": (dualrev.log_softmax, [0.0, -2000.0, -1000.0],
                    np.eye(3) - np.array([[1.0, 0.0, 0.0]])),
}


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("name", sorted(STABLE))
def test_finite_values_and_derivatives_at_large_inputs(name, mode):
    f, value, jacobian = STABLE[name]
    jac = MODES[mode]
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np.testing.assert_allclose(f(BIG), value, atol=1e-300)
        np.testing.assert_allclose(jac(f)(BIG), jacobian, atol=1e-300)
        second = hessian_of_weighted_sum(f, BIG, mode)
    assert np.all(np.isfinite(second))


@pytest.mark.parametrize("mode", sorted(MODES))
def test_second_derivative_of_softplus_at_large_inputs_is_expit_prime(mode):
    hessian = hessian_of_weighted_sum(softplus, BIG, mode)
    expit_prime = np.array([0.0, 0.0, 0.25])
    np.testing.assert_allclose(hessian, np.diag(weights_like(BIG) * expit_prime), atol=1e-300)


@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_scipy_logsumexp_on_traced_values_raises_and_names_dualrevs(mode):
    # SciPy's logsumexp is a plain Python function: NumPy never dispatches it,
    # so it converts its input. That must be an error, never a silent number.
    for scipy_function in (sp.logsumexp, sp.softmax, sp.log_softmax):
        with pytest.raises(TypeError, match=r"SCIPY_ARRAY_API=1 .*dualrev\.logsumexp"):
            MODES[mode](lambda x: scipy_function(x))(np.array([1.0, 2.0]))


# ---- conventions at singular points, the same in both modes --------------------

DIFFS = {"fwd": dualrev.derivative, "rev": dualrev.grad}


@pytest.mark.parametrize("mode", sorted(DIFFS))
def test_where_trap_gives_nan_in_both_modes(mode):
    diff = DIFFS[mode]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        trap = diff(lambda x: np.where(x > 0, np.sqrt(x), 0.0))(0.0)
        mirrored = diff(lambda x: np.where(x <= 0, 0.0, np.sqrt(x)))(0.0)
    assert np.isnan(trap) and np.isnan(mirrored)
    assert diff(lambda x: np.where(x > 0, np.sqrt(np.where(x > 0, x, 1.0)), 0.0))(0.0) == 0.0
    assert diff(lambda x: np.where(x > 0, np.sqrt(np.where(x > 0, x, 1.0)), 0.0))(4.0) == 0.25


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("ord_axis", [(None, None), (2, None), (1, None), (np.inf, None),
                                      ("fro", None), (None, 1)],
                         ids=["default", "2", "1", "inf", "fro", "axis"])
def test_norm_at_zero_has_gradient_zero(mode, ord_axis):
    ord, axis = ord_axis
    x = np.zeros((2, 2)) if ord == "fro" or axis is not None else np.zeros(3)
    jac = MODES[mode]
    with np.errstate(divide="raise", invalid="raise"):
        first = jac(lambda x: np.linalg.norm(x, ord=ord, axis=axis))(x)
        second = hessian_of_weighted_sum(lambda x: np.linalg.norm(x, ord=ord, axis=axis), x,
                                         mode)
    assert np.all(first == 0.0) and np.all(np.isfinite(second))


@pytest.mark.parametrize("mode", sorted(MODES))
def test_norm_and_hypot_away_from_zero(mode):
    x = np.array([3.0, -4.0])
    jac = MODES[mode]
    np.testing.assert_allclose(jac(np.linalg.norm)(x), x / 5.0, rtol=1e-15)
    np.testing.assert_allclose(jac(lambda x: np.hypot(x[0], x[1]))(x), x / 5.0, rtol=1e-15)
    np.testing.assert_array_equal(jac(lambda x: np.hypot(x[0], x[1]))(np.zeros(2)), [0.0, 0.0])


@pytest.mark.parametrize("mode", sorted(DIFFS))
def test_xlogy_at_zero(mode):
    # xlogy(0, y) = 0 for every y, and it is linear in x: d/dx = log(y) there too.
    diff = DIFFS[mode]
    assert diff(lambda x: sp.xlogy(x, 2.0))(0.0) == np.log(2.0)
    assert diff(lambda y: sp.xlogy(0.0, y))(2.0) == 0.0
    assert diff(lambda y: sp.xlogy(0.0, y))(0.0) == 0.0
    with np.errstate(divide="ignore"):
        assert diff(lambda x: sp.xlogy(x, 0.0))(0.0) == -np.inf


@pytest.mark.parametrize("mode", sorted(MODES))
def test_products_with_zeros_are_exact_to_second_order(mode):
    # d^2 prod(x) / dx_i dx_j is the product of the others: no division by x.
    x = np.array([0.0, 2.0, 3.0, 0.5])
    jac = MODES[mode]
    hessian = OUTER_OF_GRADIENT[mode](np.prod)(x)
    expected = np.array([[np.prod(np.delete(x, [i, j])) if i != j else 0.0
                          for j in range(4)] for i in range(4)])
    np.testing.assert_allclose(hessian, expected, rtol=1e-15)
    np.testing.assert_allclose(jac(np.cumprod)(x)[-1], [3.0, 0.0, 0.0, 0.0], rtol=1e-15)
