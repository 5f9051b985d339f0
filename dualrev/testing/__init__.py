"""Checking derivatives: finite differences, the dot-product test, op specs.

:func:`check_grads` is what dualrev's own tests use on every op, and what a
user runs on a new op before trusting it. :mod:`dualrev.testing.op_specs`
holds one spec per registered op (what to call, on which shapes, where),
as PyTorch ships its OpInfo: the test suite and the benchmarks read them
from there (``from dualrev.testing.op_specs import SPECS``).
"""

import numpy as np

from ..api import jvp, vjp
from ..tree import flatten, unflatten

__all__ = ["check_grads"]


def _vdot(a, b):
    la, lb = flatten(a)[0], flatten(b)[0]
    return sum(float(np.sum(np.asarray(x) * np.asarray(y))) for x, y in zip(la, lb))


def _random_like(tree, rng):
    leaves, treedef = flatten(tree)
    return unflatten(treedef, [rng.standard_normal(np.shape(x)) if np.shape(x)
                               else float(rng.standard_normal()) for x in leaves])


def _axpy(a, x, y):
    """a * x + y, leaf by leaf."""
    lx, treedef = flatten(x)
    ly = flatten(y)[0]
    return unflatten(treedef, [a * xi + yi for xi, yi in zip(lx, ly)])


def _assert_close(a, b, rtol, atol, what):
    la, lb = flatten(a)[0], flatten(b)[0]
    for x, y in zip(la, lb):
        x, y = np.asarray(x, float), np.asarray(y, float)
        if not np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True):
            err = np.max(np.abs(x - y)) if x.size else 0.0
            raise AssertionError(f"{what}: mismatch (max abs error {err:.3g})\n"
                                 f"  got      {x!r}\n  expected {y!r}")


def check_jvp(f, args, eps=1e-5, rtol=1e-6, atol=1e-6, rng=None):
    """Forward mode against central differences along a random direction."""
    rng = rng or np.random.default_rng(0)
    v = _random_like(args, rng)
    _, tangent = jvp(f, args, v)
    plus = f(*_axpy(eps, v, args))
    minus = f(*_axpy(-eps, v, args))
    fd = _axpy(-1.0 / (2 * eps), minus, _axpy(1.0 / (2 * eps), plus, _tree_of_zeros(plus)))
    tangent = _fill_none(tangent, plus)
    _assert_close(tangent, fd, rtol, atol, "JVP vs central differences")


def check_vjp(f, args, rtol=1e-6, atol=1e-6, rng=None):
    """Reverse mode against forward mode: <u, J v> == <J^T u, v>."""
    rng = rng or np.random.default_rng(1)
    v = _random_like(args, rng)
    out, tangent = jvp(f, args, v)
    u = _random_like(out, rng)
    _, vjp_fn = vjp(f, *args)
    cotangent = vjp_fn(u)
    lhs = _vdot(u, _fill_none(tangent, out))
    rhs = _vdot(cotangent, v)
    scale = max(1.0, abs(lhs), abs(rhs))
    if not abs(lhs - rhs) <= atol + rtol * scale:
        raise AssertionError(f"dot-product test: <u, J v> = {lhs!r} but "
                             f"<J^T u, v> = {rhs!r}")


def _tree_of_zeros(tree):
    leaves, treedef = flatten(tree)
    return unflatten(treedef, [np.zeros(np.shape(x)) for x in leaves])


def _fill_none(tangent, like):
    lt, treedef = flatten(tangent)
    ll = flatten(like)[0]
    return unflatten(treedef, [np.zeros(np.shape(y)) if t is None else t
                               for t, y in zip(lt, ll)])


def check_grads(f, args, order=2, modes=("fwd", "rev"), eps=1e-5, rtol=1e-6, atol=1e-6,
                rng=None):
    """Check the derivatives of ``f`` at ``args`` up to ``order``.

    ``"fwd"`` checks the JVP against central differences along a random
    direction; ``"rev"`` checks the VJP against the JVP with the dot-product
    test ``<u, J v> == <J^T u, v>``. For ``order > 1`` the same checks run
    on the derivative functions themselves (the JVP along a fixed direction,
    the VJP with a fixed cotangent), so every composition of modes is
    exercised.

    Parameters
    ----------
    f : callable
        A function of the positional ``args`` (floats, arrays, structures).
    args : tuple
        The point to check at.
    order : int
        Highest order of derivative to check.
    modes : sequence of {"fwd", "rev"}
    eps : float
        Central-difference step.
    rtol, atol : float
        Tolerances.

    Raises
    ------
    AssertionError
        Naming the check that failed and the mismatch.

    Examples
    --------
    >>> import numpy as np
    >>> from dualrev.testing import check_grads
    >>> check_grads(lambda x: np.sin(x) * x, (np.array([0.5, 1.5]),), order=2)
    """
    args = tuple(args)
    rng = rng or np.random.default_rng(0)
    if "fwd" in modes:
        check_jvp(f, args, eps, rtol, atol, rng)
    if "rev" in modes:
        check_vjp(f, args, rtol, atol, rng)
    if order > 1:
        v = _random_like(args, rng)
        out = f(*args)
        u = _random_like(out, rng)
        if "fwd" in modes:
            def f_jvp(*xs):
                return _fill_none(jvp(f, xs, v)[1], out)
            check_grads(f_jvp, args, order - 1, modes, eps, rtol, atol, rng)
        if "rev" in modes:
            def f_vjp(*xs):
                return vjp(f, *xs)[1](u)
            check_grads(f_vjp, args, order - 1, modes, eps, rtol, atol, rng)
