"""explain and check_backprop on the examples of cs231n's backprop notes.

Expected numbers come from the notes (printed there) or from the notes' own
hand-staged code, run here with ``math`` as an independent computation.
"""

import math
import re
import shutil
import subprocess

import numpy as np
import pytest
import scipy.special

import dualrev
from dualrev.teaching import explain

NOTES_DX = [0.3932238664829637, -0.5898357997244456]
NOTES_DW = [-0.19661193324148185, -0.3932238664829637, 0.19661193324148185]


def fxyz(x, y, z):
    q = x + y
    return q * z


def neuron(w, x):
    dot = w[0] * x[0] + w[1] * x[1] + w[2]
    return 1.0 / (1 + np.exp(-dot))


def staged(x, y):
    sigy = 1.0 / (1 + np.exp(-y))
    num = x + sigy
    sigx = 1.0 / (1 + np.exp(-x))
    xpy = x + y
    xpysqr = xpy ** 2
    den = sigx + xpysqr
    invden = 1.0 / den
    f = num * invden
    return f


def staged_by_hand(x=3, y=-4, plus_equals=True):
    """cs231n's staged forward and backward code, verbatim but for the switch."""
    sigy = 1.0 / (1 + math.exp(-y))
    num = x + sigy
    sigx = 1.0 / (1 + math.exp(-x))
    xpy = x + y
    xpysqr = xpy ** 2
    den = sigx + xpysqr
    invden = 1.0 / den
    dnum = invden
    dinvden = num
    dden = (-1.0 / (den ** 2)) * dinvden
    dsigx = (1) * dden
    dxpysqr = (1) * dden
    dxpy = (2 * xpy) * dxpysqr
    dx = (1) * dxpy
    dy = (1) * dxpy
    if plus_equals:
        dx += ((1 - sigx) * sigx) * dsigx
    else:  # the mistake the notes warn about ("Notice += !!")
        dx = ((1 - sigx) * sigx) * dsigx
    dx += (1) * dnum
    dsigy = (1) * dnum
    dy += ((1 - sigy) * sigy) * dsigy
    return dict(dnum=dnum, dinvden=dinvden, dden=dden, dsigx=dsigx, dxpysqr=dxpysqr,
                dxpy=dxpy, dx=dx, dy=dy, dsigy=dsigy)


def neuron_scalars(w0, x0, w1, x1, w2):
    s0 = w0 * x0
    s1 = w1 * x1
    s2 = s0 + s1
    s3 = s2 + w2
    L = scipy.special.expit(s3)
    return L


def neuron_by_hand(w0=2.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0, correct=True):
    """The student's flat backward pass of the seed notes (003)."""
    L = 1 / (1 + math.exp(-(w0 * x0 + w1 * x1 + w2)))
    grad_L = 1.0
    grad_s3 = grad_L * (1 - L) * L
    grad_w2 = grad_s3
    grad_s2 = grad_s3
    grad_s0 = grad_s2
    grad_s1 = grad_s2
    grad_w1 = grad_s1 * x1
    grad_x1 = grad_s1 * w1
    grad_w0 = grad_s0 * x0
    grad_x0 = grad_s0 * w0 if correct else grad_w0 * w0  # the seed's slip
    return dict(grad_L=grad_L, grad_s3=grad_s3, grad_w2=grad_w2, grad_s2=grad_s2,
                grad_s0=grad_s0, grad_s1=grad_s1, grad_w1=grad_w1, grad_x1=grad_x1,
                grad_w0=grad_w0, grad_x0=grad_x0)


# ---- explain ---------------------------------------------------------------------

def test_chain_rule_example_lines_and_numbers():
    text = str(explain(fxyz, -2.0, 5.0, -4.0))
    assert "q = x + y = 3.0" in text
    assert "f = q * z = -12.0" in text
    assert "dq = z * df = -4.0 * 1.0 = -4.0" in text
    assert "dz = q * df = 3.0 * 1.0 = 3.0" in text
    assert "dx = 1 * dq = 1.0 * -4.0 = -4.0" in text
    assert "dy = 1 * dq = 1.0 * -4.0 = -4.0" in text
    assert "multiply swaps" in text and "add distributes" in text


def test_neuron_reproduces_the_notes_digits():
    ex = explain(neuron, np.array([2.0, -3.0, -3.0]), np.array([-1.0, -2.0]))
    text = str(ex)
    assert "dx = " + repr(NOTES_DX).replace("'", "") in text
    assert "dw = " + repr(NOTES_DW) in text
    assert ex.gradients["x"].tolist() == NOTES_DX
    assert ex.gradients["w"].tolist() == NOTES_DW
    assert "f = sigmoid(dot)" in text and "written 1.0 / (1 + exp(-dot))" in text
    assert "ddot = ((1 - f) * f) * df" in text
    assert "dx[0] = w[0] * dmul1 = 2.0 * 0.19661193324148185 = 0.3932238664829637" in text


def test_staged_fraction_names_order_and_values():
    ex = explain(staged, 3.0, -4.0)
    names = [s.name for s in ex.stages if s.kind == "op"]
    assert names == ["sigy", "num", "sigx", "xpy", "xpysqr", "den", "invden", "f"]
    by_hand = staged_by_hand()
    for key, value in by_hand.items():
        assert ex.adjoints[key[1:]] == pytest.approx(value, rel=1e-14)
    text = "\n".join(ex.backward_lines[:ex.backward_lines.index("gradients")])
    # cs231n's order of the backward lines, with += exactly where a value is reused
    lhs = re.findall(r"^  (d\w+ \+?=) ", text, flags=re.M)
    assert lhs == ["dnum =", "dinvden =", "dden =", "dsigx =", "dxpysqr =", "dxpy =",
                   "dx =", "dy =", "dx +=", "dx +=", "dsigy =", "dy +="]
    assert "dden = (-1.0 / den**2) * dinvden" in text
    assert "dxpy = (2 * xpy) * dxpysqr" in text
    assert "dx += ((1 - sigx) * sigx) * dsigx" in text
    assert "fork: x is used 3 times" in text


def test_sigmoid_written_as_expit_or_by_hand_are_the_same_gate():
    by_hand = explain(lambda s3: 1 / (1 + np.exp(-s3)), 1.0)
    expit = explain(lambda s3: scipy.special.expit(s3), 1.0)
    assert by_hand.gradients == expit.gradients
    assert "sigmoid: local gradient (1 - s) s" in str(expit)


def test_named_intermediates_are_never_merged():
    def f(y):
        e = np.exp(-y)
        return 1 / (1 + e)
    text = str(explain(f, -4.0))
    assert "e = exp(" in text and "sigmoid" not in text


def test_generated_names_and_the_ways_to_name():
    f = lambda x: np.sin(x * x)  # noqa: E731  (a lambda has no local names)
    assert [s.name for s in explain(f, 0.5).stages] == ["x", "mul1", "f"]
    assert "q = x * x" in str(explain(f, 0.5, names={"mul1": "q"}))
    assert "sq = x * x" in str(explain(f, 0.5, names=["sq", "out"]))

    def g(x):
        return np.sin(dualrev.explain.name(x * x, "xx"))
    assert "xx = x * x" in str(explain(g, 0.5))
    assert float(dualrev.grad(g)(0.5)) == pytest.approx(2 * 0.5 * np.cos(0.25))
    with pytest.raises(ValueError, match="not in the trace"):
        explain(f, 0.5, names={"nope": "q"})


def test_forward_mode_one_pass_per_input():
    ex = explain(fxyz, -2.0, 5.0, -4.0, mode="fwd")
    assert [t["f"] for t in ex.tangents] == [-4.0, -4.0, 3.0]
    text = str(ex)
    assert "tangent pass 3 of 3" in text
    assert "f' = q * z' = 3.0 * 1.0 = 3.0" in text


def test_forward_mode_along_a_seed_matches_jvp():
    x, y = 3.0, -4.0
    ex = explain(staged, x, y, mode="fwd", seed=(0.5, 2.0))
    _, expected = dualrev.jvp(staged, (x, y), (0.5, 2.0))
    assert ex.tangents[0]["f"] == pytest.approx(float(expected), rel=1e-14)


def test_relu_vjp_with_an_upstream_gradient():
    ex = explain(lambda x: np.maximum(x, 0.0), np.array([1.0, -2.0, 3.0, -3.0]),
                 seed=[4.0, -1.0, 5.0, 9.0])
    assert ex.gradients["x"].tolist() == [4.0, 0.0, 5.0, 0.0]
    text = str(ex)
    assert "max routes" in text
    assert "dx = (x > 0.0) * df = [1.0, 0.0, 1.0, 0.0] * [4.0, -1.0, 5.0, 9.0]" in text
    with pytest.raises(ValueError, match="seed"):
        explain(lambda x: np.maximum(x, 0.0), np.ones(4))


def test_matmul_lines_give_the_shape_rules():
    rng = np.random.default_rng(0)
    W, X = rng.random((5, 10)), rng.random((10, 3))
    dD = rng.random((5, 3))
    ex = explain(lambda W, X: W @ X, W, X, seed=dD)
    assert np.allclose(ex.gradients["W"], dD @ X.T)
    assert np.allclose(ex.gradients["X"], W.T @ dD)
    text = str(ex)
    assert "dW = df @ X.T" in text and "dX = W.T @ df" in text


def test_recorded_backward_tape_of_an_hvp():
    v = np.array([1.0, 0.0])

    def directional_grad(x):
        return dualrev.grad(lambda x: np.sum(np.sin(x) * x))(x) @ v
    ex = explain(directional_grad, np.array([0.3, 0.7]))
    x = np.array([0.3, 0.7])
    hess_diag = 2 * np.cos(x) - x * np.sin(x)  # d2/dx2 of sin(x) x
    assert np.allclose(ex.gradients["x"], hess_diag * v)
    assert len(ex.stages) > 6  # the inner backward sweep is on the outer tape


def _dot_structure_ok(text):
    nodes = set(re.findall(r"^  (n\d+) \[", text, flags=re.M))
    edges = re.findall(r"^  (n\d+) -> (n\d+)", text, flags=re.M)
    return (text.startswith("digraph") and text.count("{") == text.count("}")
            and edges and all(a in nodes and b in nodes for a, b in edges))


@pytest.mark.parametrize("mode", ["rev", "fwd"])
def test_dot_output_parses(mode, tmp_path):
    ex = explain(staged, 3.0, -4.0, mode=mode)
    text = ex.to_dot()
    assert _dot_structure_ok(text)
    assert "dx = 2.05957" in text if mode == "rev" else "f' = " in text
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tsvg"], input=text, text=True, check=True,
                       capture_output=True)
        assert "<svg" in (ex.to_svg(tmp_path / "g.svg")).read_text()


def test_drawing_needs_no_graphviz_and_shows_one_forward_pass(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    ex = explain(fxyz, -2.0, 5.0, -4.0, mode="fwd")
    svg = ex.to_svg(tmp_path / "g.svg", pass_index=2)
    assert (tmp_path / "g.svg").read_text() == svg
    assert "tangent pass 3 of 3" in svg and "seed z&#x27; = 1" in svg
    # pass 3 seeds z: the tangent on the wire from z is 1 * q = 3, on x's wire 0
    assert _wire_labels(svg)["flow"] == ["0", "0", "0", "3", "3"]


def _wire_labels(svg):
    values = re.findall(r'fill="#1a7f37">([^<]*)</text>', svg)
    flows = re.findall(r'fill="#c0392b">([^<]*)</text>', svg)
    return {"value": values, "flow": flows}


NOTES_W = np.random.default_rng(5).random((5, 10))
NOTES_X = np.random.default_rng(6).random((10, 3))
NOTES_DD = np.random.default_rng(7).random((5, 3))


def product(W, X):
    D = W.dot(X)
    return D


SEED_EXAMPLES = {
    "circuit": (fxyz, (-2.0, 5.0, -4.0), {}, ["-2", "5", "-4", "3", "-12"], ["-4", "3"]),
    "neuron": (neuron, (np.array([2.0, -3.0, -3.0]), np.array([-1.0, -2.0])), {},
               ["0.7311"], ["0.3932", "-0.5898", "-0.1966", "0.1966"]),
    "staged": (staged, (3.0, -4.0), {}, ["1.546", "0.01799", "0.9526", "1.953"],
               ["0.5121", "3.018", "-0.7916", "1.583", "-0.03576", "0.009046"]),
    "gates": (lambda x, y, z, w: 2 * (x * y + np.maximum(z, w)), (3.0, -4.0, 2.0, -1.0),
              {}, ["-12", "-10", "-20"], ["-8", "6", "2", "0"]),
    "relu": (lambda x: np.maximum(x, 0.0), (np.array([1.0, -2.0, 3.0, -3.0]),),
             {"seed": [4.0, -1.0, 5.0, 9.0]}, ["[1, 0, 3, 0]"], ["[4, 0, 5, 0]"]),
    "matmul": (product, (NOTES_W, NOTES_X), {"seed": NOTES_DD},
               ["shape (5, 10)", "shape (10, 3)", "shape (5, 3)"],
               ["shape (5, 10)", "shape (10, 3)"]),
}


@pytest.mark.parametrize("example", sorted(SEED_EXAMPLES))
def test_seed_examples_as_text_and_drawing_at_the_given_digits(example):
    f, args, kwargs, values, flows = SEED_EXAMPLES[example]
    ex = explain(f, *args, digits=4, **kwargs)
    text = str(ex)
    assert all(len(line) <= 88 for line in text.splitlines())
    labels = _wire_labels(ex.svg())
    assert ex._repr_svg_() == ex.svg()
    assert ex._repr_mimebundle_()["text/plain"] == text
    for v in values:
        assert v in labels["value"], (v, labels["value"])
    for g in flows:
        assert g in labels["flow"], (g, labels["flow"])
    if example != "matmul":  # every printed number has 4 significant digits at most
        numbers = re.findall(r"\d+\.\d+(?:e[-+]\d+)?", text)
        assert all(_significant(n) <= 4 for n in numbers), numbers


def _significant(number):
    mantissa = number.split("e")[0].replace(".", "").lstrip("0")
    return len(mantissa)


def test_digits_default_keeps_every_digit_and_lines_fit():
    text = str(explain(staged, 3.0, -4.0))
    sigx = 1.0 / (1 + math.exp(-3.0))  # the notes' forward pass, by hand
    local, dsigx = (1 - sigx) * sigx, staged_by_hand()["dsigx"]
    assert f"dx += ((1 - sigx) * sigx) * dsigx = {local!r} * {dsigx!r}" in text
    assert f"\n      = {local * dsigx!r}\n" in text
    assert "  # fork: x is used 3 times, its gradients add\n  dx += 1 * dnum" in text
    assert max(len(line) for line in text.splitlines()) <= 88


def test_np_dot_of_a_vector_is_one_dot_stage_and_no_internal_names():
    w, x = np.array([[2.0, -3.0], [1.0, 0.5]]), np.array([-1.0, -2.0])
    g = np.array([1.0, 2.0])
    ex = explain(lambda w, x: np.dot(w, x), w, x, seed=g)
    assert [s.name for s in ex.stages if s.kind == "op"] == ["f"]
    text = str(ex)
    assert "f = np.dot(w, x)" in text
    assert "dw = np.outer(df, x)" in text and "dx = w.T @ df" in text
    assert np.allclose(ex.gradients["w"], np.outer(g, x))
    assert np.allclose(ex.gradients["x"], w.T @ g)
    fwd = explain(lambda w, x: np.dot(w, x), w[0], x, mode="fwd")
    assert len(fwd.tangents) == 4  # one pass per scalar input
    assert [t["f"] for t in fwd.tangents] == [-1.0, -2.0, 2.0, -3.0]
    for f, args in [(lambda w, x: np.dot(w, x), (w, x)),
                    (lambda x: np.sum(x.reshape(2, 2).T * x[::-1].reshape(2, 2)),
                     (np.arange(4.0),))]:
        kw = {"seed": g} if f(*args).shape else {}
        text = str(explain(f, *args, **kw)) + str(explain(f, *args, mode="fwd"))
        assert not re.search(r"_vjp|_jvp|untake|reshape_vjp", text), text


def student_exp(x):
    return 1.0 / (1 + math.exp(-x))


def student_log(x):
    return math.log(x) * 2


def student_sqrt(x):
    return math.sqrt(x) + x


@pytest.mark.parametrize("f, fn", [(student_exp, "exp"), (student_log, "log"),
                                   (student_sqrt, "sqrt")])
def test_math_functions_on_a_traced_value_point_to_numpy(f, fn):
    with pytest.raises(TypeError, match=rf"math\.{fn}\(\) works on plain Python floats"
                                        rf" only.*np\.{fn}\("):
        explain(f, 2.0)
    with pytest.raises(TypeError, match=rf"np\.{fn}\("):
        dualrev.check_backprop(f, 2.0, {"dx": 1.0})


# ---- check_backprop --------------------------------------------------------------

def test_check_backprop_passes_the_notes_staged_code():
    result = dualrev.check_backprop(staged, (3.0, -4.0), staged_by_hand())
    assert result.ok and result.first_error is None
    assert str(result).startswith("all 9 gradients match")


def test_check_backprop_catches_equals_where_plus_equals_belongs():
    result = dualrev.check_backprop(staged, (3.0, -4.0), staged_by_hand(plus_equals=False))
    assert not result.ok
    err = result.first_error
    assert err.name == "x"
    assert err.expected == pytest.approx(staged_by_hand()["dx"], rel=1e-14)
    assert "'dx = ...' where 'dx += ...' belongs" in str(result)


def test_check_backprop_catches_the_wrong_upstream_gradient():
    args = (2.0, -1.0, -3.0, -2.0, -3.0)
    assert dualrev.check_backprop(neuron_scalars, args, neuron_by_hand()).ok
    result = dualrev.check_backprop(neuron_scalars, args, neuron_by_hand(correct=False))
    err = result.first_error
    assert (err.name, err.key) == ("x0", "grad_x0")
    assert err.expected == pytest.approx(NOTES_DX[0], rel=1e-15)
    assert "multiplies dw0 instead of ds0" in str(result)
    assert "dx0 = w0 * ds0 = 2.0 * 0.19661193324148185 = 0.3932238664829637" in str(result)


def test_check_backprop_reports_in_backward_order_and_rejects_unknown_names():
    wrong = dict(staged_by_hand(), dnum=0.0, dy=0.0)
    assert dualrev.check_backprop(staged, (3.0, -4.0), wrong).first_error.name == "num"
    with pytest.raises(ValueError, match="dsigy"):
        dualrev.check_backprop(staged, (3.0, -4.0), {"dsigma": 1.0})


# ---- check_backprop: every hint, with a mistake that triggers it and a near miss ----

def gates(x, y, z, w):
    xy = x * y
    zw = np.maximum(z, w)
    s = xy + zw
    return 2 * s


GATES_AT = (3.0, -4.0, 2.0, -1.0)  # dxy = dzw = 2, dx = -8, dy = 6, dz = 2, dw = 0


def difference(x, y):
    d = x - y
    return d * d


def hints(f, args, manual, **kwargs):
    result = dualrev.check_backprop(f, args, manual, **kwargs)
    assert not result.ok
    return result.first_error.hints


def test_regression_a_lost_minus_sign_is_not_a_wrong_upstream_gradient():
    # at (3, 1): d = 2, dd = 4, dx = 4, dy = -4; the student drops the minus of dy
    found = hints(difference, (3.0, 1.0), {"dd": 4.0, "dx": 4.0, "dy": 4.0})
    assert len(found) == 1 and "the wrong sign" in found[0]
    assert "dy = -1 * dd" in found[0]
    near = hints(difference, (3.0, 1.0), {"dy": 4.5})
    assert not any("sign" in h or "multiplies" in h for h in near)


def test_regression_a_max_routed_to_the_wrong_input_is_said_so():
    found = hints(gates, GATES_AT, {"dz": 0.0, "dw": 2.0})
    assert len(found) == 1 and "multiplies" not in found[0]
    assert "the other input, w" in found[0] and "max routes" in found[0]
    assert hints(gates, GATES_AT, {"dz": 0.5}) == []


def test_hint_the_last_contributions_only_and_a_missing_one():
    ex = explain(staged, 3.0, -4.0)
    parts = [c.value for c in ex.contributions if c.target.name == "x"]
    found = hints(staged, (3.0, -4.0), {"dx": parts[1] + parts[2]})
    assert "'dx = ...' where 'dx += ...' belongs" in found[0]
    found = hints(staged, (3.0, -4.0), {"dx": parts[0] + parts[2]})
    assert "the contribution through sigx is missing" in found[0]
    near = hints(staged, (3.0, -4.0), {"dx": parts[1] + parts[2] + 0.3})
    assert not any("contribution" in h for h in near)


def test_hint_which_plus_equals_term_is_wrong():
    ex = explain(staged, 3.0, -4.0)
    c = [c for c in ex.contributions if c.target.name == "x" and c.stage.name == "sigx"][0]
    total = ex.gradients["x"]
    found = hints(staged, (3.0, -4.0), {"dx": total - c.value + c.local})
    assert found[0].startswith("the other contributions are right; the one through "
                               "'sigx = sigmoid(x)'")
    assert "yours is 0.04517665973" in found[0]  # the local gradient 0.045176659730912
    assert "the local gradient alone" in found[0]
    assert hints(staged, (3.0, -4.0), {"dx": total - c.value + 0.123}) == []


def test_hint_local_gradient_alone_and_upstream_alone():
    found = hints(gates, GATES_AT, {"dx": -4.0})
    assert found == ["it is the local gradient alone (y = -4.0): multiply it by the "
                     "upstream gradient dxy = 2.0"]
    found = hints(gates, GATES_AT, {"dx": 2.0})
    assert found == ["it is the upstream gradient dxy alone: multiply it by the local "
                     "gradient y = -4.0"]
    assert hints(gates, GATES_AT, {"dx": -6.0}) == []


def test_hint_the_other_inputs_local_gradient():
    found = hints(gates, GATES_AT, {"dx": 6.0})  # x * dxy: the multiply gate not swapped
    assert found == ["it is the contribution of the other input, y (x * dxy); multiply "
                     "swaps: each input gets the other input times the gradient"]
    assert hints(gates, GATES_AT, {"dx": 6.5}) == []


def test_hint_the_wrong_upstream_gradient_only_when_it_is_one_other_nonzero_stage():
    args = (2.0, -1.0, -3.0, -2.0, -3.0)
    found = hints(neuron_scalars, args, neuron_by_hand(correct=False))
    assert any("multiplies dw0 instead of ds0" in h for h in found)
    # dz = 0 would be "1 * dw", but dw is 0: no such hint (the max regression above)
    assert not any("multiplies" in h for h in hints(gates, GATES_AT, {"dz": 0.0}))


def test_hints_for_matrix_products_name_the_candidate_product():
    W, X, dD = NOTES_W, NOTES_X, NOTES_DD
    found = hints(product, (W, X), {"dW": X @ dD.T}, seed=dD)
    assert "your value is X @ dD.T (the transpose of the right one); the product is " \
           "dD @ X.T" in found[0]
    assert "your array has shape (10, 5)" in found[1]
    found = hints(product, (W, X), {"dX": dD.T @ W}, seed=dD)
    assert "your value is dD.T @ W" in found[0] and "W.T @ dD" in found[0]
    near = hints(product, (W, X), {"dW": 1.01 * (dD @ X.T)}, seed=dD)
    assert len(near) == 1 and near[0].startswith("the largest difference is")


def test_hint_array_mismatch_says_where():
    x = np.array([1.0, -2.0, 3.0, -3.0])
    seed = [4.0, -1.0, 5.0, 9.0]
    found = hints(lambda x: np.maximum(x, 0.0), x, {"dx": [4.0, 0.0, 5.0, 9.0]}, seed=seed)
    assert found[-1] == ("the largest difference is 9, at index [3] (you have 9, expected "
                         "0); 1 of 4 entries differ")
    scalar = hints(gates, GATES_AT, {"dx": -6.0})
    assert not any("largest difference" in h for h in scalar)


def test_check_backprop_takes_the_notes_lists_and_an_upstream_seed():
    def neuron_lists(w, x):
        dot = w[0] * x[0] + w[1] * x[1] + w[2]
        f = 1.0 / (1 + np.exp(-dot))
        return f
    w, x = [2, -3, -3], [-1, -2]
    assert dualrev.check_backprop(neuron_lists, (w, x), {"dx": NOTES_DX, "dw": NOTES_DW}).ok
    wrong = dualrev.check_backprop(neuron_lists, (w, x), {"dx": [NOTES_DX[0], 0.5]})
    assert wrong.first_error.name == "x" and "at index [1]" in str(wrong)
    W, X, dD = NOTES_W, NOTES_X, NOTES_DD
    assert dualrev.check_backprop(product, (W, X), {"dW": dD @ X.T, "dX": W.T @ dD},
                                  seed=dD).ok


def test_check_backprop_follows_the_sweep_order():
    result = dualrev.check_backprop(staged, (3.0, -4.0), staged_by_hand())
    assert result.checked == ["num", "invden", "den", "sigx", "xpysqr", "xpy", "x",
                              "sigy", "y"]
