"""Every registered op, checked from its spec in dualrev/testing/op_specs.py.

For each shape case of each spec: derivatives in both modes up to second
order (forward against central differences, reverse against forward by the
dot-product test, and the same on the derivative functions), the value
against NumPy/SciPy called on plain arrays, and ``jacfwd == jacrev``.
Property tests then draw random broadcast-compatible shapes.
"""

import json
import subprocess
import sys
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import dualrev
from dualrev.core import Tracer
from dualrev.reverse import Tape
from dualrev.testing import check_grads
from dualrev.tree import flatten
from dualrev.testing.op_specs import BINARY_SHAPES, SPECS

CASES = [pytest.param(spec, shapes, id=f"{spec.name}-{'-'.join(map(str, shapes))}")
         for spec in SPECS for shapes in spec.shapes]
DIFFERENTIABLE = [case for case in CASES if case.values[0].differentiable]


def draw(spec, shapes):
    """The arguments of one case, from a generator seeded by the case itself."""
    seed = zlib.crc32(f"{spec.name}{shapes}".encode())
    return spec.draw(shapes, np.random.default_rng(seed))


def assert_trees_close(actual, expected, rtol=1e-10, atol=1e-12):
    for a, e in zip(flatten(actual)[0], flatten(expected)[0], strict=True):
        np.testing.assert_allclose(np.asarray(a, float), np.asarray(e, float),
                                   rtol=rtol, atol=atol)


# ---- the registry is covered ------------------------------------------------------

def test_every_registered_op_has_a_spec():
    # The ops the package itself registers, read in a fresh interpreter so that
    # ops registered by other tests or doctests do not count.
    script = "import json, dualrev; print(json.dumps(sorted(dualrev.OPS)))"
    names = json.loads(subprocess.run([sys.executable, "-c", script], check=True,
                                      capture_output=True, text=True).stdout)
    missing = sorted(set(names) - {spec.op for spec in SPECS})
    assert not missing, f"ops without a spec in dualrev/testing/op_specs.py: {missing}"
    unknown = sorted({spec.op for spec in SPECS} - set(names))
    assert not unknown, f"specs naming ops that are not registered: {unknown}"


@pytest.mark.parametrize("spec, shapes", DIFFERENTIABLE)
def test_spec_reaches_its_op(spec, shapes):
    tape = Tape()
    spec.fn(*(tape.input(a) for a in draw(spec, shapes)))
    recorded = {record[0].name for record in tape.records if record is not None}
    assert spec.op in recorded, f"{spec.name} never applies {spec.op}; it applies {recorded}"


def test_nondifferentiable_specs_name_nondifferentiable_ops():
    for spec in SPECS:
        assert dualrev.OPS[spec.op].differentiable == spec.differentiable, spec.name


# ---- per case ------------------------------------------------------------------------

@pytest.mark.parametrize("spec, shapes", DIFFERENTIABLE)
def test_derivatives_both_modes(spec, shapes):
    check_grads(spec.fn, draw(spec, shapes), order=spec.order, modes=("fwd", "rev"),
                rtol=spec.rtol, atol=spec.rtol)


@pytest.mark.parametrize("spec, shapes", CASES)
def test_value_matches_numpy(spec, shapes):
    args = draw(spec, shapes)
    expected = spec.expected(*args)
    if any(np.asarray(a).dtype == bool for a in args):
        # Boolean-only ops never see a traced float: apply the op itself.
        assert_trees_close(dualrev.OPS[spec.op](*args), expected)
        return
    zeros = tuple(np.zeros_like(a) if np.shape(a) else 0.0 for a in args)
    out_fwd, tangent = dualrev.jvp(spec.fn, args, zeros)
    out_rev, _ = dualrev.vjp(spec.fn, *args)
    assert_trees_close(out_fwd, expected)
    assert_trees_close(out_rev, expected)
    if not spec.differentiable:
        # a constant output: a plain zero tangent, no traced value
        assert all(not isinstance(t, Tracer) and not np.any(t)
                   for t in flatten(tangent)[0]), "a derivative leaked"


@pytest.mark.parametrize("spec, shapes", DIFFERENTIABLE)
def test_jacfwd_equals_jacrev(spec, shapes):
    args = draw(spec, shapes)
    argnums = tuple(range(len(args)))
    assert_trees_close(dualrev.jacfwd(spec.fn, argnums)(*args),
                       dualrev.jacrev(spec.fn, argnums)(*args))


@pytest.mark.parametrize("spec, shapes", DIFFERENTIABLE)
def test_hessians_agree_across_mode_compositions(spec, shapes):
    # Forward over forward pushes batched tangents through rules that are
    # themselves traced; reverse over reverse sweeps a recorded backward pass.
    args = draw(spec, shapes)
    weights = np.random.default_rng(1).standard_normal(np.shape(spec.expected(*args)))
    argnums = tuple(range(len(args)))

    def weighted_sum(*xs):
        return np.sum(spec.fn(*xs) * weights)

    rev_rev = dualrev.jacrev(dualrev.grad(weighted_sum, argnums), argnums)(*args)
    assert_trees_close(dualrev.jacfwd(dualrev.jacfwd(weighted_sum, argnums), argnums)(*args),
                       rev_rev, rtol=1e-8, atol=1e-10)
    assert_trees_close(dualrev.jacfwd(dualrev.grad(weighted_sum, argnums), argnums)(*args),
                       rev_rev, rtol=1e-8, atol=1e-10)


# ---- properties over random shapes -----------------------------------------------

PROPERTY_SETTINGS = settings(max_examples=15, deadline=None, derandomize=True)
# The differentiable broadcasting binary ops: their specs use the binary shape cases.
BINARY_SPECS = {spec.op: spec for spec in SPECS
                if spec.differentiable and spec.shapes == BINARY_SHAPES}


@PROPERTY_SETTINGS
@given(op=st.sampled_from(sorted(BINARY_SPECS)),
       shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3),
       seed=st.integers(0, 2**32 - 1))
def test_binary_ops_on_broadcast_shapes(op, shapes, seed):
    spec = BINARY_SPECS[op]
    x, y = spec.draw(shapes.input_shapes, np.random.default_rng(seed))
    weights = np.random.default_rng(seed + 1).standard_normal(shapes.result_shape)

    def loss(x, y):
        return np.sum(spec.fn(x, y) * weights)

    gx, gy = dualrev.grad(loss, argnums=(0, 1))(x, y)
    assert np.shape(gx) == np.shape(x) and np.shape(gy) == np.shape(y)
    check_grads(spec.fn, (x, y), order=1, modes=("fwd", "rev"))


REDUCTIONS = {"sum": np.sum, "max": np.max, "prod": np.prod, "mean": np.mean,
              "logsumexp": dualrev.logsumexp}


@st.composite
def shape_and_axis(draw_):
    shape = tuple(draw_(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    axes = draw_(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1),
                           st.sets(st.integers(0, len(shape) - 1), min_size=1).map(tuple)))
    return shape, axes


@PROPERTY_SETTINGS
@given(name=st.sampled_from(sorted(REDUCTIONS)), case=shape_and_axis(),
       keepdims=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_reductions_over_any_axes(name, case, keepdims, seed):
    shape, axis = case
    x = np.random.default_rng(seed).standard_normal(shape)

    def reduce(x):
        return REDUCTIONS[name](x, axis=axis, keepdims=keepdims)

    jac = dualrev.jacrev(reduce)(x)
    assert jac.shape == np.shape(reduce(x)) + x.shape
    np.testing.assert_allclose(dualrev.jacfwd(reduce)(x), jac, rtol=1e-10, atol=1e-12)
    check_grads(reduce, (x,), order=1, modes=("fwd", "rev"))


@PROPERTY_SETTINGS
@given(dims=st.lists(st.integers(1, 3), min_size=4, max_size=4),
       batch=st.sampled_from([(), (2,)]), seed=st.integers(0, 2**32 - 1))
def test_einsum_agrees_with_matmul(dims, batch, seed):
    n, k, m, _ = dims
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(batch + (n, k)), rng.standard_normal(batch + (k, m))
    sub = "zij,zjk->zik" if batch else "ij,jk->ik"
    ga = dualrev.grad(lambda a, b: np.sum(np.sin(np.einsum(sub, a, b))), (0, 1))(a, b)
    gm = dualrev.grad(lambda a, b: np.sum(np.sin(a @ b)), (0, 1))(a, b)
    assert_trees_close(ga, gm)
    check_grads(lambda a, b: np.einsum(sub, a, b), (a, b), order=1)


# ---- what is not supported says so -------------------------------------------------

A = np.arange(1.0, 5.0).reshape(2, 2)
UNSUPPORTED = {
    "einsum-size-one-broadcast": (lambda a: np.einsum("ij,ij->", a, a[:1]), A,
                                  r"broadcasting"),
    "svd-full-non-square": (lambda a: np.linalg.svd(a[:1])[0], A, r"full_matrices=False"),
    "qr-wide": (lambda a: np.linalg.qr(a[:1]).R, A, r"wide"),
    "eig-complex-spectrum": (lambda a: np.linalg.eigvals(a - a.T), A, r"complex"),
    "quantile-method": (lambda a: np.quantile(a, 0.5, method="weibull"), A, r"weibull"),
    "pad-linear-ramp": (lambda a: np.pad(a, 1, mode="linear_ramp"), A, r"linear_ramp"),
    "logsumexp-scale": (lambda a: dualrev.logsumexp(a, b=a), A, r"b=None"),
}


@pytest.mark.parametrize("jac", [dualrev.jacfwd, dualrev.jacrev], ids=["fwd", "rev"])
@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_variants_raise_not_implemented(name, jac):
    f, x, message = UNSUPPORTED[name]
    with pytest.raises(NotImplementedError, match=message):
        jac(f)(x)


# ---- under dualrev.compile -----------------------------------------------------------

def test_compiled_gradient_of_an_indexed_float32_input_stays_float32():
    def f(x):
        return np.sum(x[1:] * x[:2]) + np.sum(x[np.array([0, 0, 2])] ** 2)

    x = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    eager = dualrev.grad(f)(x)
    compiled = dualrev.compile(dualrev.grad(f))
    for _ in range(2):  # staged, then replayed
        g = compiled(x)
        assert g.dtype == np.float32
        np.testing.assert_array_equal(g, eager)


def _cubed_left_singular_vectors(a):
    return np.sum(np.linalg.svd(a)[0] ** 3)


def test_singular_vector_rules_read_no_values_so_one_program_serves_every_input():
    eager = dualrev.grad(_cubed_left_singular_vectors)
    compiled = dualrev.compile(eager)
    rng = np.random.default_rng(0)
    for a in [rng.standard_normal((3, 3)) for _ in range(3)] + [np.eye(3)]:
        np.testing.assert_array_equal(compiled(a), eager(a))
    assert len(compiled.programs) == 1
    # Three equal singular values: every pair's coefficient is 0, so nothing
    # reaches the vectors' gradient, eagerly and compiled alike.
    np.testing.assert_array_equal(compiled(np.eye(3)), np.zeros((3, 3)))
    check_grads(_cubed_left_singular_vectors, (rng.standard_normal((3, 3)),), order=2)


SORTER = np.array([3, 1, 0, 2])
READ_NO_VALUES = {
    "nanmean": lambda a: np.sum(np.nanmean(a, axis=1) ** 2),
    "nanmax": lambda a: np.sum(np.nanmax(a, axis=1) ** 2),
    "nanmin": lambda a: np.sum(np.nanmin(a[:2], axis=0) ** 2),
    "norm-ord-0": lambda a: np.linalg.norm(a[1], ord=0) * np.sum(a[1] ** 2),
    "searchsorted-sorter": lambda a: np.sum(
        np.searchsorted(a[1], np.array([0.0, 0.5]), sorter=SORTER) * a[0, 0]),
}


@pytest.mark.parametrize("name", sorted(READ_NO_VALUES))
def test_composites_read_no_values_so_one_program_serves_every_input(name):
    eager = dualrev.grad(READ_NO_VALUES[name])
    compiled = dualrev.compile(eager)
    rng = np.random.default_rng(0)
    for _ in range(3):  # NaNs and a zero in the same places, other values new
        a = rng.standard_normal((3, 4))
        a[0, 1], a[1, 3], a[2, :] = np.nan, 0.0, np.nan
        with np.errstate(invalid="ignore"):  # the mean of the all-NaN row
            np.testing.assert_array_equal(compiled(a), eager(a))
    assert len(compiled.programs) == 1


# ---- np.linalg.svd(hermitian=True): derivatives for symmetric perturbations -------

HERMITIAN_SVD_PARTS = {
    "U": lambda r: r.U * r.U[:1],  # sign-free: each column times its first entry
    "S": lambda r: r.S,
    "Vh": lambda r: r.Vh * r.Vh[:, :1],
}


@pytest.mark.parametrize("part", sorted(HERMITIAN_SVD_PARTS))
def test_hermitian_svd_follows_eigh_on_symmetric_perturbations(part):
    # NumPy reads one triangle; like eigh, the derivative is the one of the
    # function of the symmetric part, so the gradient is symmetric.
    rng = np.random.default_rng(2)
    a = rng.standard_normal((4, 4))
    a, t = a + a.T, rng.standard_normal((4, 4))
    weights = rng.standard_normal(np.shape(HERMITIAN_SVD_PARTS[part](np.linalg.svd(a))))

    def loss(a):
        return np.sum(weights * HERMITIAN_SVD_PARTS[part](np.linalg.svd(a, hermitian=True)))

    def loss_of_symmetric_part(b):
        return loss((b + b.T) / 2)

    g = dualrev.grad(loss)(a)
    assert_trees_close(g, dualrev.grad(loss_of_symmetric_part)(a))
    assert_trees_close(g, g.T)
    assert_trees_close(dualrev.jvp(loss, (a,), (t,))[1],
                       dualrev.jvp(loss_of_symmetric_part, (a,), (t,))[1])
    # Fed a symmetric matrix (as the eigh specs are), both modes to second order.
    check_grads(lambda b: HERMITIAN_SVD_PARTS[part](np.linalg.svd(b + b.T, hermitian=True)),
                (rng.standard_normal((3, 3)),), order=2, rtol=1e-5, atol=1e-5)
