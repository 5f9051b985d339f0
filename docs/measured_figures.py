"""Figures of dualrev that the documentation measures while it is built.

The pages call these functions from ``.. plot::`` directives
(:mod:`matplotlib.sphinxext.plot_directive`), so no image is committed and
none needs a manual step. Each figure comes from code that already exists:

* the forward/reverse crossover: :func:`dualrev.comparison.compare` on the
  ``tanh(A x)`` grid of :func:`dualrev.examples.catalogue` at ``m = 32``,
  drawn by :func:`dualrev.cli.plot_crossover` (the figure of
  ``dualrev compare --plot``) with the cost model's panel beside it;
* the benchmark plots: ``benchmarks/plot_results.py`` on the newest saved
  asv run, or, when there is none, gradient costs measured here on the
  fixtures of ``benchmarks/benchmarks/common.py``;
* the HVP costs: ``rosen_ratios`` of ``benchmarks/benchmarks/bench_hvp.py``.

The two tools write PNG files; :func:`show_png` puts such a file in a figure
pixel for pixel, for the plot directive to save.

What a page says about a figure comes from the same measurement: the
``.. measured:: name`` directive (registered by :func:`setup`) puts the reST
that ``name()`` returns on the page, and the measurements are cached for the
build, so the crossover and the cheapest HVP mode stated in the text are
those the figures draw.
"""

import contextlib
import datetime
import functools
import io
import os
import pathlib
import platform
import sys
import tempfile
import timeit

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from docutils import nodes  # noqa: E402
from docutils.parsers.rst import Directive  # noqa: E402
from docutils.statemachine import StringList  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
#: Where asv saves results; the environment variable DUALREV_ASV_RESULTS
#: names another directory (an empty one shows what a fresh checkout gets).
ASV_RESULTS = pathlib.Path(os.environ.get("DUALREV_ASV_RESULTS",
                                          BENCHMARKS / ".asv" / "results"))

# plot_results.py and the asv package ``benchmarks`` live in benchmarks/.
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

#: Resolution of the PNGs that ``dualrev compare --plot`` and plot_results.py
#: write, and of the PNGs the docs build saves (``plot_formats`` in conf.py).
PNG_DPI = 120


def build_machine():
    """One line saying where and when the build-time figures were measured."""
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}, NumPy {np.__version__}, "
            f"{datetime.date.today().isoformat()}")


def show_png(image):
    """A figure that shows ``image`` (an RGB(A) array) pixel for pixel at PNG_DPI."""
    height, width = image.shape[:2]
    fig = plt.figure(figsize=(width / PNG_DPI, height / PNG_DPI), dpi=PNG_DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(image, interpolation="none")
    ax.set_axis_off()
    return fig


# ---- forward or reverse: the measured crossover -------------------------------------

@functools.cache
def tanh_grid(m=32, budget=0.05):
    """:func:`dualrev.comparison.compare` on the catalogue's ``tanh(A x)`` grid at ``m``.

    Measured once per build: the figure and the sentences about it read the
    same reports. ``budget`` is the seconds of repeats per timing; the grid
    at ``m = 32`` takes about a second.
    """
    from dualrev.comparison import compare
    from dualrev.examples import catalogue

    grid = [ex for ex in catalogue() if ex.group == f"tanh(Ax), m={m}"]
    return tuple(compare(ex.f, ex.x, name=ex.name, hvp=False, budget=budget) for ex in grid)


def jacobian_crossover(m=32):
    """The figure of ``dualrev compare --plot`` with its cost-model panel, at ``m``.

    :func:`dualrev.cli.plot_crossover` draws :func:`tanh_grid`: the measured
    times on the left, the cost model's flops (no clock) on the right.
    """
    from dualrev.cli import plot_crossover

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "crossover.png")
        plot_crossover(list(tanh_grid(m)), path, model=True)
        return show_png(plt.imread(path))


def crossover_text(m=32):
    """What the crossover figure shows, in words: the same crossovers it draws."""
    from dualrev.comparison import crossovers

    found = crossovers(list(tanh_grid(m)))[m]
    model = (f"the cost model's, per-call cost included, lies at n ≈ {found.model:.0f}"
             if found.model is not None else
             "the cost model predicts one mode over the whole grid")
    flops = (f"its flops alone cross at n ≈ {found.flops:.0f}"
             if found.flops is not None else "its flops alone do not cross on the grid")
    return (f"**On this build** (m = {m}, n = {found.ns[0]} to {found.ns[-1]}), "
            f"{found.describe()}; {model}; and {flops}, where theory puts the crossover "
            f"(n = m = {m}: n directions against m sweeps of the same size).")


def _ratio(value):
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


#: The contrast of the forward-vs-reverse page: one input and 200 outputs,
#: and the reverse: 200 inputs and one output.
CONTRAST_SIZE = 200


def contrast_reports(budget=0.05):
    """``compare`` on ``t -> sin(k t)`` (1 -> 200) and ``x -> sum(sin(x))`` (200 -> 1)."""
    from dualrev.comparison import compare

    k = np.arange(1.0, CONTRAST_SIZE + 1.0)
    return (compare(lambda t: np.sin(k * t), np.ones(1), name="sin(k t)", hvp=False,
                    budget=budget),
            compare(lambda x: np.sum(np.sin(x)), np.ones(CONTRAST_SIZE),
                    name="sum(sin(x))", hvp=False, budget=budget))


def contrast_table():
    """The 1 -> 200 and 200 -> 1 contrast as a reST table, measured now."""
    names = {"fwd": "forward", "rev": "reverse"}
    rows = [("function", "n → m", "forward directions", "reverse sweeps",
             "model flops fwd / rev", "time fwd / f", "time rev / f", "faster")]
    for r in contrast_reports():
        fwd, rev = r.mode("fwd"), r.mode("rev")
        rows.append((f"``{r.name}``", f"{r.n} → {r.m}", str(fwd.passes), str(rev.passes),
                     f"{fwd.flops:,} / {rev.flops:,}", _ratio(fwd.time_ratio),
                     _ratio(rev.time_ratio), names[r.measured]))
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in rows:
        lines += [f"   * - {row[0]}"] + [f"     - {cell}" for cell in row[1:]]
    return "\n".join(lines)


# ---- benchmarks: saved asv results, or a measurement now --------------------------------

@functools.cache
def asv_plots():
    """The PNGs plot_results.py draws from the newest asv run, and what it reported.

    Returns
    -------
    images : tuple of ndarray
        One per plot, by file name; empty when there are no asv results
        (a fresh checkout) or none that plot_results.py plots.
    report : str
        plot_results.py's line on stderr (the commit and the number of
        benchmarks, or why there is nothing).
    """
    import plot_results

    log = io.StringIO()
    with tempfile.TemporaryDirectory() as out:
        with contextlib.redirect_stderr(log), contextlib.redirect_stdout(io.StringIO()):
            try:
                plot_results.main(["--results", str(ASV_RESULTS), "--out", out])
            except SystemExit:  # load_results exits when it finds no result file
                pass
        images = tuple(plt.imread(os.path.join(out, name))
                       for name in sorted(os.listdir(out)) if name.endswith(".png"))
    lines = log.getvalue().strip().splitlines()
    return images, lines[-1] if lines else ""


def benchmark_plots_source():
    """The sentence telling the reader which plots the benchmarks page shows."""
    images, report = asv_plots()
    where = _shown_path(ASV_RESULTS)
    if images:
        return (f"The plots below are the latest asv results: "
                f"``benchmarks/plot_results.py`` drew them from the newest run saved in "
                f"``{where}`` (it reports ``{report}``); asv measured "
                f"them, not this build of the docs.")
    return (f"There were no asv results in ``{where}`` when these "
            f"pages were built, so the plot below was measured during the docs build "
            f"instead, on {build_machine()}: a small stand-in for the asv plots.")


def _shown_path(path):
    """``path`` relative to the repository when it is inside it."""
    path = path.resolve()
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def _best_seconds(costs, repeat):
    """``{name: best of repeat single runs}``, the runs interleaved round by round."""
    best = {name: np.inf for name in costs}
    for _ in range(repeat):
        for name, fn in costs.items():
            best[name] = min(best[name], timeit.timeit(fn, number=1))
    return best


def gradient_ratios(repeat=5):
    """Gradient time over ``f`` time, by dualrev and by hand, on three workloads.

    The workloads and hand-written gradients are the asv suite's fixtures
    (``benchmarks/benchmarks/common.py``).

    Returns
    -------
    dict
        ``{workload: (dualrev grad / f, hand-written grad / f)}``.
    """
    import dualrev
    from benchmarks.common import (mlp_loss, mlp_loss_grad_by_hand, mlp_problem,
                                   rosen_der, rosen_point, scalar_chain,
                                   scalar_chain_deriv_by_hand)
    from dualrev.examples import rosen

    params, X, y = mlp_problem()
    x = rosen_point(100_000)
    workloads = {
        "scalar chain\n(6,000 tiny ops)": (
            lambda: scalar_chain(0.3), lambda: dualrev.grad(scalar_chain)(0.3),
            lambda: scalar_chain_deriv_by_hand(0.3)),
        "MLP loss\n(784-256-10, batch 128)": (
            lambda: mlp_loss(params, X, y), lambda: dualrev.grad(mlp_loss)(params, X, y),
            lambda: mlp_loss_grad_by_hand(params, X, y)),
        "Rosenbrock\n(n = 100,000)": (
            lambda: rosen(x), lambda: dualrev.grad(rosen)(x), lambda: rosen_der(x)),
    }
    costs = {(name, i): fn for name, fns in workloads.items() for i, fn in enumerate(fns)}
    seconds = _best_seconds(costs, repeat)
    return {name: (seconds[name, 1] / seconds[name, 0], seconds[name, 2] / seconds[name, 0])
            for name in workloads}


def gradient_ratio_figure(repeat=5):
    """Bar chart of :func:`gradient_ratios`, measured now."""
    ratios = gradient_ratios(repeat)
    names = list(ratios)
    xs = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for offset, column, label in ((-0.2, 0, "dualrev.grad"),
                                  (0.2, 1, "hand-written gradient")):
        bars = ax.bar(xs + offset, [ratios[n][column] for n in names], 0.4, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(xs, names, fontsize=8)
    ax.set_ylabel("gradient time / time of f")
    ax.set_title("Cost of one gradient (measured while building the docs)", fontsize=10)
    ax.legend(fontsize=8)
    ax.margins(y=0.15)
    fig.tight_layout()
    return fig


def benchmark_figures():
    """The asv plots when there are results, else the gradient costs measured now."""
    images, _ = asv_plots()
    if images:
        return [show_png(image) for image in images]
    return [gradient_ratio_figure()]


# ---- Hessian-vector products ---------------------------------------------------------------

#: (legend, bars of ``rosen_ratios``): what the HVP figure shows, group by group.
HVP_GROUPS = (
    ("one gradient", ("grad",)),
    ("hvp(f, x, v, mode): record and product", ("hvp rev-rev", "hvp fwd-rev",
                                                "hvp rev-fwd", "hvp fd")),
    ("hvp_operator, built beforehand: one matvec", ("matvec rev-rev", "matvec fwd-rev")),
    ("hand-written (SciPy)", ("rosen_der", "rosen_hess_prod")),
)


#: Processes per cost, and runs in each, of the HVP figure's timings.
HVP_ROUNDS, HVP_RUNS = 3, 15


@functools.cache
def hvp_ratios(n=10_000):
    """``rosen_ratios`` of ``bench_hvp.py``, measured once per build: the
    figure and the sentence on the cheapest mode read the same numbers."""
    from benchmarks.bench_hvp import rosen_ratios

    return rosen_ratios(n=n, rounds=HVP_ROUNDS, runs=HVP_RUNS)


def cheapest_hvp(ratios):
    """``(mode, ratio)`` of the cheapest exact one-shot product among ``ratios``."""
    from dualrev.hvp import HVP_MODES

    shots = {name.split()[1]: ratio for name, (_, ratio) in ratios.items()
             if name.startswith("hvp ") and HVP_MODES[name.split()[1]].exact}
    mode = min(shots, key=shots.get)
    return mode, shots[mode]


def hvp_text(n=10_000):
    """Which HVP mode this build measured cheapest, from the figure's numbers."""
    ratios = hvp_ratios(n)
    mode, ratio = cheapest_hvp(ratios)
    matvec = min((name for name in ratios if name.startswith("matvec ")),
                 key=lambda name: ratios[name][1])
    return (f"**On this build** the cheapest exact ``hvp(f, x, v, mode)`` was "
            f"``mode=\"{mode}\"``, at {ratio:.2f} × f (recording included); one product "
            f"of an operator recorded beforehand cost {ratios[matvec][1]:.2f} × f "
            f"(``{matvec}``).")


def hvp_figure(n=10_000):
    """Bar chart of the HVP modes' cost on Rosenbrock at ``n``, as multiples of ``f``."""
    ratios = hvp_ratios(n)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ticks, tick_labels, y = [], [], 0.0
    for label, names in HVP_GROUPS:
        ys = y + np.arange(len(names))
        bars = ax.barh(ys, [ratios[name][1] for name in names], label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=8, padding=2)
        ticks += list(ys)
        tick_labels += names
        y += len(names) + 0.5
    ax.set_yticks(ticks, tick_labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("time / time of one evaluation of f (best of %d runs)"
                  % (HVP_ROUNDS * HVP_RUNS))
    ax.set_title(f"Rosenbrock, n = {n:,}: Hessian-vector products\n"
                 f"(measured while building the docs)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.margins(x=0.12)
    fig.tight_layout()
    return fig


# ---- measured text -------------------------------------------------------------------------

class Measured(Directive):
    """``.. measured:: name``: the reST that ``name()`` of this module returns.

    A sentence or table about a figure comes from the same (cached)
    measurement as the figure, so the page says what its figure shows.
    """

    required_arguments = 1

    def run(self):
        text = globals()[self.arguments[0]]()
        container = nodes.container()
        self.state.nested_parse(StringList(text.splitlines(), source="measured_figures"),
                                self.content_offset, container)
        return container.children


def setup(app):
    app.add_directive("measured", Measured)
    return {"parallel_read_safe": True}
