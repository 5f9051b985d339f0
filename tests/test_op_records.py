"""Meta-tests: every fact about an op lives in its record.

Each registered op states what one call costs (``Op.flops``) and how
:func:`dualrev.explain` teaches it (``Op.teaching``), or is listed here as
knowingly left to the default. The tables that read those facts
(``costmodel.FLOP_MODEL``, ``teaching.LOCAL``...) are views of the registry.
"""

import string

import numpy as np
import pytest

import dualrev
from dualrev.registry import OPS, Teaching, default_flops
from dualrev.reverse import Dropped, Tape
from dualrev.testing.op_specs import SPECS

from dualrev import costmodel as compare
from dualrev.teaching import stages as explain

#: Ops whose flops rule is knowingly the default (the output size). Empty:
#: every op declares its cost; an op added here must say why.
DEFAULT_FLOPS = frozenset()

#: Differentiable ops that explain shows under their own name, with the
#: generic gate sentence ("<op>: local gradient") and their derivative
#: evaluated numerically: no teaching text on purpose.
PLAIN_TEACHING = frozenset({
    "arccos", "arccosh", "arcsin", "arcsinh", "arctan2", "arctanh", "cbrt",
    "cholesky", "concatenate", "copysign", "cumsum", "det", "eigvalsh", "eigvecs", "einsum",
    "erf", "erfc", "exp2", "fmax", "fmin", "gammaln", "hypot", "inv", "log10", "log2",
    "log_expit", "logabsdet", "logaddexp", "logaddexp2", "logit", "logsumexp", "polygamma",
    "prod", "remainder", "solve", "where", "xlog1py",
    "xlogy",
    # decompositions, FFT and complex parts
    "svdvals", "svd_u", "svd_vh", "qr_q", "qr_r", "eigvals_general", "eigvecs_general",
    "pinv", "real", "imag", "conj", "fft", "ifft", "rfft", "irfft",
    # how a sweep accumulates indexing cotangents (never in a user's function)
    "index_add"})


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_declares_its_flops_or_is_knowingly_defaulted(name):
    declared = OPS[name].flops is not default_flops
    assert declared != (name in DEFAULT_FLOPS), (
        f"op {name!r}: declare defop(flops=...) (ELEMENTWISE, REDUCTION, NO_FLOPS, a rule), "
        "or list it in DEFAULT_FLOPS" if not declared
        else f"op {name!r} declares its flops: remove it from DEFAULT_FLOPS")


@pytest.mark.parametrize("name", sorted(n for n, op in OPS.items() if op.differentiable))
def test_every_op_declares_its_teaching_text_or_is_knowingly_plain(name):
    declared = OPS[name].teaching is not None
    assert declared != (name in PLAIN_TEACHING), (
        f"op {name!r}: declare defop(teaching=Teaching(...)) or list it in PLAIN_TEACHING"
        if not declared else f"op {name!r} declares teaching text: remove it from "
        "PLAIN_TEACHING")


def test_allow_lists_name_only_registered_ops():
    assert (DEFAULT_FLOPS | PLAIN_TEACHING) <= set(OPS)


def _template_fields(template):
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


@pytest.mark.parametrize("name", sorted(n for n, op in OPS.items() if op.teaching))
def test_teaching_templates_name_only_arguments_output_gradient_and_tangent(name):
    op = OPS[name]
    nargs = len(op.vjps) if isinstance(op.vjps, tuple) else None
    teaching = op.teaching
    assert isinstance(teaching, Teaching)
    for field in ("local", "rev", "fwd"):
        per_arg = getattr(teaching, field)
        if per_arg is None:
            continue
        assert isinstance(per_arg, tuple) and (nargs is None or len(per_arg) == nargs), (
            f"{name}.teaching.{field}: one template per argument")
        for template in per_arg:
            allowed = {str(i) for i in range(nargs or 0)} | {"o", "g", "t", "idx"}
            assert _template_fields(template) <= allowed, template
    if teaching.infix is not None:
        assert _template_fields(teaching.infix) <= {str(i) for i in range(nargs or 0)}


def test_explain_tables_are_views_of_the_op_records():
    tables = {"short": explain.SHORT, "display": explain.DISPLAY, "infix": explain.INFIX,
              "local": explain.LOCAL, "rev": explain.REV_FORMULA, "fwd": explain.FWD_FORMULA}
    for name, op in OPS.items():
        for field, table in tables.items():
            expected = getattr(op.teaching, field) if op.teaching else None
            assert table.get(name) == expected, (name, field)
        gate = op.teaching.gate if op.teaching else None
        assert explain.PATTERN.get(name, (None,))[0] == gate
    assert set(explain.LOCAL) <= set(OPS) and set(explain.PATTERN) <= set(OPS)


def test_flop_model_names_only_registered_ops():
    assert set(compare.FLOP_MODEL) == set(OPS)
    for name, op in OPS.items():
        assert compare.FLOP_MODEL[name] is op.flops


def _spec_records():
    """The records of one tape per differentiable spec, on its largest shapes,
    keeping every value (``keep_all``), so the flops can be read both from
    the values and from shape-only placeholders."""
    for spec in SPECS:
        if not spec.differentiable:
            continue
        shapes = max(spec.shapes, key=lambda s: sum(map(len, s)))
        args = spec.draw(shapes, np.random.default_rng(0))
        tape = Tape(keep_all=True)
        spec.fn(*[tape.input(a) for a in args])
        yield spec.name, list(tape)


@pytest.mark.parametrize("name, records", list(_spec_records()))
def test_flops_rules_read_shapes_only(name, records):
    assert records, f"spec {name} recorded nothing"
    for record in records:
        op, args, params, out, _ = record
        flops = op.flops(out, *args, **params)
        shape_only = op.flops(Dropped(out), *[Dropped(a) if np.ndim(a) else a for a in args],
                              **params)
        assert flops == shape_only, (op.name, flops, shape_only)
        assert isinstance(flops, (int, np.integer)) and flops >= 0, (op.name, flops)


def test_flops_of_matmul_and_elementwise_follow_their_rules():
    tape = Tape()
    a, b = tape.input(np.ones((2, 3))), tape.input(np.ones((3, 4)))
    np.sin(a @ b)
    matmul, sin = list(tape)
    assert compare.flops_of(matmul) == 2 * 2 * 3 * 4   # multiply-add per term
    assert compare.flops_of(sin) == 2 * 4               # one per output element


def test_a_new_op_declares_its_cost_and_teaching_text_in_one_place():
    cube = dualrev.defop("cube_record_test", lambda x: x ** 3,
                         jvp=lambda t, out, x: t * 3 * x ** 2,
                         vjp=lambda g, out, x: g * 3 * x ** 2,
                         flops=lambda out, x: 2 * out.size,
                         teaching=Teaching(short="cube", local=("(3 * {0}**2)",)))
    try:
        tape = Tape()
        cube(tape.input(np.ones(5)))
        assert compare.tape_cost(tape).flops == 10
        assert explain.LOCAL["cube_record_test"] == ("(3 * {0}**2)",)
        assert explain.SHORT["cube_record_test"] == "cube"
    finally:
        del OPS["cube_record_test"]


def test_teaching_must_be_a_teaching_record():
    with pytest.raises(TypeError, match="Teaching"):
        dualrev.defop("bad_teaching_test", np.negative, jvp=lambda t, out, x: -t,
                      vjp=lambda g, out, x: -g, teaching={"short": "bad"})
    assert "bad_teaching_test" not in OPS
