"""One axis normaliser for every op: out-of-range axes raise NumPy's AxisError
(never wrap around silently), negative and repeated axes mean what NumPy says."""

import numpy as np
import pytest

import dualrev


@pytest.mark.parametrize("func", [lambda x: np.flip(x, 2), lambda x: np.roll(x, 1, axis=-3),
                                  lambda x: np.sum(x, axis=2), lambda x: np.max(x, axis=(0, 5))])
def test_an_out_of_range_axis_raises_axis_error(func):
    with pytest.raises(np.exceptions.AxisError):
        dualrev.grad(lambda x: np.sum(func(x)))(np.ones((2, 3)))


def test_roll_over_repeated_and_negative_axes_matches_numpy():
    x = np.arange(12.0).reshape(3, 4)
    weights = np.random.default_rng(0).standard_normal((3, 4))

    def f(x):
        return np.sum(np.roll(x, (1, 2, 1), axis=(0, -1, 0)) * weights)

    assert f(x) == pytest.approx(float(np.sum(np.roll(x, (2, 2), axis=(0, 1)) * weights)))
    # roll is a permutation: the gradient is the weights rolled back.
    np.testing.assert_array_equal(dualrev.grad(f)(x), np.roll(weights, (-2, -2), axis=(0, 1)))
