"""Where forward and reverse mode cross: found on noisy timings, drawn as
found, and stated by the docs as drawn.

Synthetic timings have a crossover known in closed form: forward mode's time
``c n^2`` against reverse mode's constant ``c N^2`` cross at ``n = N``, a
straight line in log-log, so interpolating between grid points finds it
exactly when there is no noise.
"""

import pathlib

import numpy as np
import pytest

import dualrev.cli
import dualrev.comparison
from dualrev.comparison import Crossover, ModeResult, Report, crossover, crossovers
from dualrev.costmodel import TapeCost, jacobian_costs

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
GRID = [2, 16, 32, 64, 128, 256, 512, 1024, 2048]
TRUE_CROSSOVER = 300.0


def quadratic_against_constant(ns, noise=0.0, seed=0):
    """Forward ``n^2``, reverse ``300^2`` (seconds, scaled), with lognormal noise."""
    rng = np.random.default_rng(seed)
    ns = np.asarray(ns, float)
    fwd = 1e-9 * ns ** 2 * np.exp(noise * rng.standard_normal(len(ns)))
    rev = 1e-9 * TRUE_CROSSOVER ** 2 * np.exp(noise * rng.standard_normal(len(ns)))
    return fwd, rev


def bracket(ns, value):
    """The two grid points around ``value``."""
    k = np.searchsorted(ns, value)
    return ns[k - 1], ns[k]


# ---- crossover: robust to noise -------------------------------------------------

def test_noiseless_power_laws_cross_where_they_meet():
    fwd, rev = quadratic_against_constant(GRID)
    assert crossover(GRID, fwd, rev) == pytest.approx(TRUE_CROSSOVER)
    assert crossover(GRID, rev, fwd) == pytest.approx(TRUE_CROSSOVER)


@pytest.mark.parametrize("seed", range(20))
def test_noisy_timings_cross_between_the_grid_points_around_the_truth(seed):
    fwd, rev = quadratic_against_constant(GRID, noise=0.1, seed=seed)
    lo, hi = bracket(GRID, TRUE_CROSSOVER)
    assert lo <= crossover(GRID, fwd, rev) <= hi


def test_a_near_tie_at_the_smallest_n_is_no_crossover():
    # Forward just behind at n = 2 (noise), well ahead from 16 on, behind
    # from 512: the first change of sign is near n = 3, the crossover is not.
    fwd, rev = quadratic_against_constant(GRID)
    fwd[0] = rev[0] * 1.08
    assert np.sign(np.log(fwd[0] / rev[0])) != np.sign(np.log(fwd[1] / rev[1]))
    assert crossover(GRID, fwd, rev) == pytest.approx(TRUE_CROSSOVER)


def test_one_outlier_neither_makes_nor_moves_the_crossover():
    fwd, rev = quadratic_against_constant(GRID)
    fwd[2] = rev[2] * 2.0  # a clear, isolated inversion at n = 32
    assert crossover(GRID, fwd, rev) == pytest.approx(TRUE_CROSSOVER)
    always_ahead = np.full(len(GRID), 1.0)
    behind = np.full(len(GRID), 10.0)
    behind[4] = 0.5
    # One point the other way among nine is an outlier, not two crossovers.
    assert crossover(GRID, always_ahead, behind) is None


def test_no_crossover_when_one_mode_wins_or_they_tie_throughout():
    rng = np.random.default_rng(1)
    base = np.linspace(1.0, 2.0, len(GRID))
    noisy = base * np.exp(0.05 * rng.standard_normal(len(GRID)))
    assert crossover(GRID, noisy, base) is None            # ties: noise only
    assert crossover(GRID, noisy, 3 * base) is None         # forward ahead throughout
    assert crossover(GRID, 3 * base, noisy) is None         # reverse ahead throughout


# ---- crossovers of reports, and the figure that draws them ------------------------

def synthetic_report(n, m, fwd_seconds, rev_seconds, name="tanh(Ax)"):
    """A Report as compare returns it, with the cost of ``tanh(A x)`` at (n, m)."""
    cost = TapeCost(ops=2, flops=2 * m * n + m, deriv_flops=2 * m * n + m, rule_calls=2)
    model = jacobian_costs(cost, n, m)
    fwd = ModeResult("fwd", n, cost.flops + n * cost.deriv_flops, model["fwd"],
                     seconds=fwd_seconds)
    rev = ModeResult("rev", m, cost.flops + m * cost.deriv_flops, model["rev"],
                     seconds=rev_seconds)
    winner = "fwd" if fwd_seconds <= rev_seconds else "rev"
    return Report(name, n, m, cost.ops, cost.flops, 1e-6, [fwd, rev], winner, winner,
                  cost=cost)


def synthetic_grid(m=32, noise=0.0, seed=0):
    fwd, rev = quadratic_against_constant(GRID, noise, seed)
    return [synthetic_report(n, m, a, b) for n, a, b in zip(GRID, fwd, rev)]


def test_crossovers_read_time_model_and_flops_from_the_reports():
    found = crossovers(synthetic_grid(m=32))[32]
    assert found.ns == GRID
    assert found.measured == pytest.approx(TRUE_CROSSOVER)
    # Model flops n (2mn + m) against m (2mn + m): equal at n = m, on the grid.
    assert found.flops == pytest.approx(32)
    model = [jacobian_costs(r.cost, r.n, 32) for r in synthetic_grid(m=32)]
    lo = max(n for n, c in zip(GRID, model) if c["fwd"] <= c["rev"])
    hi = min(n for n, c in zip(GRID, model) if c["fwd"] > c["rev"])
    assert lo <= found.model <= hi
    assert (found.first, found.last) == ("fwd", "rev")


def test_crossovers_refuse_a_single_size():
    with pytest.raises(ValueError, match="at least two sizes"):
        crossovers([synthetic_report(16, 8, 1.0, 2.0)])


def test_describe_says_which_mode_wins_where():
    assert "cross at n ≈ 300" in Crossover("f", 32, GRID, 300.2, 100.0, 32.0, "fwd",
                                           "rev").describe()
    no_cross = Crossover("f", 32, GRID, None, None, 32.0, "fwd", "fwd").describe()
    assert "do not cross" in no_cross and "forward mode is faster from n = 2 to 2048" \
        in no_cross
    assert "tied" in Crossover("f", 32, GRID, None, None, None, "tie", "tie").describe()


@pytest.mark.parametrize("model", [False, True], ids=["measured", "with model panel"])
def test_plot_crossover_draws_what_crossovers_finds(tmp_path, model):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt
    reports = synthetic_grid(m=32, noise=0.1) + synthetic_grid(m=8, noise=0.1, seed=3)
    path = tmp_path / "crossover.png"
    drawn = dualrev.cli.plot_crossover(reports, path, model=model)
    found = crossovers(reports)
    assert drawn == {m: (c.measured, c.model) for m, c in found.items()}
    height, width = plt.imread(path).shape[:2]
    assert width > height  # two panels a row: measured (and model) side by side


# ---- the docs state what their figures show ------------------------------------------

@pytest.fixture
def measured_figures(monkeypatch):
    pytest.importorskip("matplotlib")
    pytest.importorskip("docutils")
    monkeypatch.syspath_prepend(str(DOCS))
    import measured_figures
    measured_figures.tanh_grid.cache_clear()
    yield measured_figures  # tests replace what it measures: measure nothing twice
    measured_figures.tanh_grid.cache_clear()


def test_page_states_the_crossover_its_figure_draws_from_one_measurement(
        measured_figures, monkeypatch):
    calls = []

    def timed(f, x, *, name=None, hvp=True, budget=0.2, note=""):
        n = int(np.size(x))
        calls.append(n)
        fwd, rev = quadratic_against_constant([n])
        return synthetic_report(n, 32, fwd[0], rev[0], name)

    original, drawn = dualrev.cli.plot_crossover, []

    def plot(reports, path, model=False):
        drawn.append(original(reports, path, model))
        return drawn[-1]

    monkeypatch.setattr(dualrev.comparison, "compare", timed)
    monkeypatch.setattr(dualrev.cli, "plot_crossover", plot)

    text = measured_figures.crossover_text(32)
    measured_figures.jacobian_crossover(32)
    grid = sorted(calls)
    assert len(calls) == len(set(calls))  # measured once for text and figure
    measured, _ = drawn[0][32]
    assert measured == pytest.approx(TRUE_CROSSOVER)
    assert f"cross at n ≈ {measured:.0f}" in text and "n ≈ 300" in text
    assert f"n = {grid[0]} to {grid[-1]}" in text
    assert "flops alone cross at n ≈ 32" in text


def test_page_names_the_cheapest_exact_hvp_mode_of_its_figure(measured_figures,
                                                              monkeypatch):
    ratios = {name: (ratio * 1e-3, ratio) for name, ratio in (
        ("f", 1.0), ("grad", 3.0), ("hvp rev-rev", 6.0), ("hvp fwd-rev", 8.0),
        ("hvp rev-fwd", 7.0), ("hvp fd", 2.0), ("matvec rev-rev", 4.0),
        ("matvec fwd-rev", 5.0), ("rosen_der", 1.0), ("rosen_hess_prod", 1.0))}
    monkeypatch.setattr(measured_figures, "hvp_ratios", lambda n=10_000: ratios)
    text = measured_figures.hvp_text()
    # fd is cheaper still but not exact: the cheapest exact mode is rev-rev.
    assert 'mode="rev-rev"``, at 6.00 × f' in text
    assert "cost 4.00 × f (``matvec rev-rev``)" in text
    # The figure draws the same numbers: its bar for that mode is the
    # shortest of the exact one-shot products.
    fig = measured_figures.hvp_figure()
    ax = fig.axes[0]
    bars = {label.get_text(): patch.get_width()
            for label, patch in zip(ax.get_yticklabels(), ax.patches)}
    exact = {name: width for name, width in bars.items()
             if name in ("hvp rev-rev", "hvp fwd-rev", "hvp rev-fwd")}
    assert min(exact, key=exact.get) == "hvp rev-rev" and exact["hvp rev-rev"] == 6.0
    import matplotlib.pyplot as plt
    plt.close(fig)
