"""Complex intermediates between real inputs and real losses (JAX's
convention, docs/conventions.rst): real values get real gradients."""

import numpy as np
import pytest

import dualrev
from dualrev.testing import check_grads


def test_a_real_value_mixed_with_a_complex_one_gets_a_real_gradient():
    # L = Re(x * exp(i y)) = x cos(y): dL/dx = cos(y), dL/dy = -x sin(y)
    x, y = np.array([0.5, -1.2]), np.array([0.3, 2.0])
    gx, gy = dualrev.grad(lambda x, y: np.sum(np.real(x * np.exp(1j * y))), (0, 1))(x, y)
    assert gx.dtype.kind == "f" and gy.dtype.kind == "f"
    np.testing.assert_allclose(gx, np.cos(y), rtol=1e-12)
    np.testing.assert_allclose(gy, -x * np.sin(y), rtol=1e-12)


def test_a_complex_constant_added_to_a_real_value_is_no_identity():
    # x + K with K complex: x's cotangent is the real part of the sum's, also
    # when the cotangents of a complex value are accumulated in a second sweep
    K, c = np.array([-1j, 2.0 - 1j]), 1.0 + 1.0j
    t = np.array([0.3, 1.1])
    g = dualrev.grad(lambda t: np.sum(np.real((K + t) * c)))(t)
    assert g.dtype.kind == "f"
    np.testing.assert_allclose(g, [1.0, 1.0], rtol=1e-15)

    def f(a):  # real(z)**2 + imag(z) with z = c a: f = a**2 + a, H = 2 I
        z = c * a
        return np.sum(np.real(z) ** 2) + np.sum(np.imag(z))
    for transform in (dualrev.jacrev, dualrev.jacfwd):
        np.testing.assert_allclose(transform(dualrev.grad(f))(t), 2.0 * np.eye(2),
                                   rtol=1e-15)
    check_grads(
        lambda a: (lambda z: np.sum(np.real(z) ** 2) + np.sum(np.imag(z)))(np.exp(1j * a)),
        (t,), order=2)


def test_python_complex_scalars_get_real_gradients_too():
    # 1j * y on a scalar is a Python complex, not a NumPy one
    g = dualrev.grad(lambda y: np.imag((2.0 + 1j * y) ** 2))(0.7)   # 4 y -> 4
    assert not np.iscomplexobj(g)
    assert float(g) == pytest.approx(4.0)


def test_the_half_spectrum_gradient_is_parseval():
    # sum(x**2) = sum over the full spectrum (ortho); rfft keeps the bins
    # 0 < k < n / 2 once for two, so they weigh 2
    x = np.random.default_rng(3).standard_normal(6)
    weights = np.array([1.0, 2.0, 2.0, 1.0])
    g = dualrev.grad(lambda x: np.sum(weights * np.abs(np.fft.rfft(x, norm="ortho")) ** 2))(x)
    np.testing.assert_allclose(g, 2 * x, rtol=1e-12)


def test_rfft_of_a_complex_value_is_refused():
    with pytest.raises(TypeError, match="must be real"):
        dualrev.grad(lambda x: np.sum(np.fft.rfft(x * 1j).real))(np.ones(4))


def test_complex_inputs_are_still_refused():
    with pytest.raises(TypeError, match="complex"):
        dualrev.grad(lambda z: np.abs(z))(1.0 + 2.0j)
