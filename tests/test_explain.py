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


def test_to_svg_without_graphviz_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="install graphviz"):
        explain(fxyz, 1.0, 2.0, 3.0).to_svg(tmp_path / "g.svg")


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
