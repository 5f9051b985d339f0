"""The mode comparison: tape counts by hand, predictions against theory,
both Jacobians against each other, and the ``dualrev compare`` command."""

import json
import subprocess
import sys

import numpy as np
import pytest

from dualrev.cli import plot_crossover
from dualrev.comparison import compare
from dualrev.costmodel import (TapeCost, flops_of, jacobian_costs, predict_jacobian_mode,
                               tape_cost)
from dualrev.examples import catalogue, make_tanh_layer
from dualrev.reverse import Tape


def recorded_cost(f, x):
    tape = Tape()
    f(tape.input(x))
    return tape_cost(tape)


# ---- counts read off the tape, against hand counts ------------------------------

def test_sum_of_product_counts_two_ops_and_twenty_flops():
    y = np.arange(10.0)
    cost = recorded_cost(lambda x: np.sum(x * y), np.ones(10))
    # multiply: 10 output elements; sum: 10 input elements
    assert (cost.ops, cost.flops) == (2, 10 + 10)
    # one differentiated argument each (y is a constant)
    assert (cost.rule_calls, cost.deriv_flops) == (2, 20)
    assert cost.by_op == {"multiply": 1, "sum": 1}


def test_matmul_counts_two_m_k_n():
    W = np.ones((3, 4))
    cost = recorded_cost(lambda x: np.tanh(x @ W), np.ones((5, 3)))
    # matmul 2*5*3*4 = 120, tanh on a 5x4 output = 20
    assert (cost.ops, cost.flops) == (2, 120 + 20)


def test_shape_ops_cost_nothing_and_both_arguments_count_as_parents():
    cost = recorded_cost(lambda x: np.reshape(x[1:], (3, 1)) * x[:3].reshape(3, 1),
                         np.ones(4))
    # getitem, reshape, getitem, reshape: 0 flops; multiply of two traced 3x1: 3
    assert cost.flops == 3
    assert cost.ops == 5
    assert cost.deriv_flops == 3 * 2  # both arguments of the multiply are traced
    multiply = next(r for r in _records(lambda x: x * x, np.ones(3)))
    assert flops_of(multiply) == 3


def _records(f, x):
    tape = Tape()
    f(tape.input(x))
    return [r for r in tape.records if r is not None]


def test_constants_leave_no_record():
    cost = recorded_cost(lambda x: x * np.sin(np.ones(3)), np.ones(3))
    assert cost.ops == 1  # only the multiply depends on x


# ---- predictions against theory ------------------------------------------------

@pytest.mark.parametrize("n, m, expected", [(1, 1000, "fwd"), (5, 500, "fwd"),
                                            (1000, 1, "rev"), (2000, 4, "rev")])
def test_predicted_mode_follows_n_against_m(n, m, expected):
    f = make_tanh_layer(n, m)
    assert predict_jacobian_mode(recorded_cost(f, np.ones(n)), n, m) == expected


def test_forward_wins_ties_and_when_inputs_are_fewer():
    cost = TapeCost(ops=3, flops=300, deriv_flops=300, rule_calls=3)
    for n in (1, 10, 100):
        assert predict_jacobian_mode(cost, n, n) == "fwd"
        assert predict_jacobian_mode(cost, n, 10 * n) == "fwd"


@pytest.fixture(scope="module")
def quick_reports():
    return {(ex.name, int(np.size(ex.x))): compare(ex.f, ex.x, name=ex.name, hvp=False,
                                                  budget=0.0)
            for ex in catalogue(quick=True)}


def test_catalogue_predictions_match_theory(quick_reports):
    for (name, n), r in quick_reports.items():
        if r.n * 8 <= r.m:
            assert r.predicted == "fwd", name
        if r.n >= 8 * r.m:
            assert r.predicted == "rev", name
    by_name = {name: r for (name, _), r in quick_reports.items()}
    assert by_name["trajectory"].predicted == "fwd"
    assert by_name["logistic loss"].predicted == "rev"
    assert by_name["mlp loss"].predicted == "rev"


def _tanh_grid_predictions(quick):
    """m -> [(n, predicted mode)] over the catalogue's tanh(Ax) grid, by n."""
    grid = {}
    for ex in catalogue(quick=quick):
        if ex.group.startswith("tanh(Ax)"):
            n, cost = int(np.size(ex.x)), recorded_cost(ex.f, ex.x)
            m = int(np.size(ex.f(ex.x)))
            grid.setdefault(m, []).append((n, predict_jacobian_mode(cost, n, m)))
    return {m: sorted(points) for m, points in grid.items()}


@pytest.mark.parametrize("quick", [True, False], ids=["quick", "full"])
def test_tanh_grid_shows_the_predicted_crossover_moving_with_m(quick):
    grid = _tanh_grid_predictions(quick)
    assert len(grid) >= 3
    first_rev = {}
    for m, points in grid.items():
        modes = [mode for _, mode in points]
        # Forward for the fewest inputs, reverse for the most: the crossover is
        # inside the grid, and the prediction switches there once.
        assert modes[0] == "fwd" and modes[-1] == "rev", (m, points)
        assert modes == sorted(modes), (m, points)   # "fwd" < "rev"
        # With no more inputs than outputs forward mode also makes fewer
        # calls, so the model never prefers reverse there.
        assert all(mode == "fwd" for n, mode in points if n <= m), (m, points)
        first_rev[m] = next(n for n, mode in points if mode == "rev")
    ms = sorted(first_rev)
    assert [first_rev[m] for m in ms] == sorted(first_rev[m] for m in ms)
    assert first_rev[ms[-1]] > first_rev[ms[0]]


def test_plot_crossover_draws_one_panel_per_m(quick_reports, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt
    tanh = [r for r in quick_reports.values() if r.name == "tanh(Ax)"]
    path = tmp_path / "crossover.png"
    crossovers = plot_crossover(tanh, path)
    assert sorted(crossovers) == sorted({r.m for r in tanh})
    assert plt.imread(path).ndim == 3
    for m, (measured, model) in crossovers.items():
        grid = sorted((r for r in tanh if r.m == m), key=lambda r: r.n)
        costs = [jacobian_costs(r.cost, r.n, m) for r in grid]
        # The model's crossover lies between its last forward and first
        # reverse prediction on the grid.
        last_fwd = max(r.n for r, c in zip(grid, costs) if c["fwd"] <= c["rev"])
        first_rev = min(r.n for r, c in zip(grid, costs) if c["fwd"] > c["rev"])
        assert last_fwd <= model <= first_rev, (m, model)
        assert measured is None or grid[0].n <= measured <= grid[-1].n


def test_catalogue_jacobians_agree_between_modes(quick_reports):
    for key, r in quick_reports.items():
        fwd, rev = r.mode("fwd"), r.mode("rev")
        assert fwd.max_abs_diff <= 1e-10 * max(1.0, r.flops), key
        assert fwd.passes == r.n and rev.passes == r.m
        assert fwd.seconds > 0 and rev.seconds > 0 and fwd.peak_bytes > 0


def test_compare_checks_jacobian_against_a_known_one():
    # d/dx sin(x) = diag(cos x): compare's two modes must both find it
    x = np.linspace(0.1, 1.0, 4)
    r = compare(np.sin, x, budget=0.0)
    assert r.mode("fwd").max_abs_diff < 1e-14
    assert (r.n, r.m, r.ops, r.flops) == (4, 4, 1, 4)


def test_hvp_modes_agree_on_rosenbrock():
    pytest.importorskip("dualrev.hvp")
    from dualrev.examples import rosen
    x = np.array([0.3, -0.5, 1.2, 0.8])
    r = compare(rosen, x, budget=0.0)
    assert {h.mode for h in r.hvp} == {"fwd-rev", "rev-rev", "rev-fwd", "fd"}
    for h in r.hvp:
        assert h.max_abs_diff < (1e-3 if h.mode == "fd" else 1e-10), h.mode
    assert r.hvp_predicted in {"fwd-rev", "rev-rev", "rev-fwd"}


# ---- the command -----------------------------------------------------------------

def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "dualrev.cli", "compare", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "out.json"
    return run_cli("--quick", "--json", str(out), "--plot", str(out.with_suffix(".png"))), out


def test_quick_command_prints_the_table(quick_run):
    proc, _ = quick_run
    assert proc.returncode == 0, proc.stderr
    header = proc.stdout.splitlines()[0].split()
    for column in ("function", "n", "m", "ops", "flops", "predicted", "measured"):
        assert column in header
    for name in ("trajectory", "logistic loss", "tanh(Ax)", "rosenbrock", "mlp loss"):
        assert name in proc.stdout
    assert "compared" in proc.stderr  # progress goes to stderr


def test_quick_command_writes_the_plot(quick_run):
    pytest.importorskip("matplotlib")
    proc, out = quick_run
    assert "plot written to" in proc.stderr
    assert out.with_suffix(".png").stat().st_size > 0


def test_json_has_the_documented_fields(quick_run):
    _, path = quick_run
    data = json.loads(path.read_text())
    assert {"dualrev_version", "quick", "dispatch_flops", "total_seconds",
            "functions"} <= set(data)
    row = data["functions"][0]
    assert {"name", "n", "m", "ops", "flops", "f_seconds", "predicted", "measured",
            "jacobian", "hvp", "hvp_predicted", "hvp_measured", "note", "cost"} <= set(row)
    assert [j["mode"] for j in row["jacobian"]] == ["fwd", "rev"]
    assert {"passes", "flops", "cost", "seconds", "time_ratio", "peak_bytes",
            "max_abs_diff"} <= set(row["jacobian"][0])
    assert {"ops", "flops", "deriv_flops", "rule_calls", "by_op"} <= set(row["cost"])
    assert row["predicted"] in ("fwd", "rev")


@pytest.mark.parametrize("spec", ["no_such_module_xyz:f", "numpy:no_such_function",
                                  "missing-colon", "numpy:pi"])
def test_bad_function_is_one_line_and_exit_two(spec):
    proc = run_cli("--function", spec)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and proc.stderr.strip().splitlines()[-1] == errors[0]


def test_user_function_from_a_file(tmp_path):
    (tmp_path / "mine.py").write_text("import numpy as np\n"
                                      "def f(x):\n    return np.sum(np.sin(x) ** 2)\n")
    proc = run_cli("--function", "mine.py:f", "--shape", "40", "--no-hvp", "--json",
                   "o.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    row = json.loads((tmp_path / "o.json").read_text())["functions"][0]
    assert (row["n"], row["m"], row["ops"], row["predicted"]) == (40, 1, 3, "rev")


def test_function_that_raises_is_one_line(tmp_path):
    (tmp_path / "bad.py").write_text("def f(x):\n    raise ValueError('no\\ngood')\n")
    proc = run_cli("--function", "bad.py:f", "--shape", "3,3", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith("ValueError: no good")
