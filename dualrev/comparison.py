"""Which mode should differentiate this function? A cost model and a stopwatch.

For ``f: R^n -> R^m`` the Jacobian takes ``n`` forward directions (``jacfwd``)
or ``m`` reverse sweeps of one recorded tape (``jacrev``). :func:`compare`
records ``f`` once, reads the work off the tape, predicts the cheaper mode,
then runs both and measures them; for scalar functions it does the same for
Hessian-vector products in every composition.

The cost model itself (what a tape costs, which mode it predicts) is
:mod:`dualrev.costmodel`; this module runs the modes and measures them, and
finds where they cross over a grid of sizes (:func:`crossovers`), for the
figure of ``dualrev compare --plot`` and for the docs' sentences on it.
"""

import importlib.util
import math
import statistics
import time
import tracemalloc
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from .api import grad, jacfwd, jacrev
from .compiled import compile
from .costmodel import TapeCost, forward_passes, jacobian_costs, predict_jacobian_mode, tape_cost
from .hvp import HVP_MODES, hvp_costs
from .hvp import hvp as hvp_product
from .registry import shape_of, size_of
from .reverse import Tape
from .tree import flatten

__all__ = ["compare", "Report", "ModeResult", "CompiledResult", "run_catalogue",
           "format_table", "crossover", "Crossover", "crossovers", "CROSSOVER_TOLERANCE"]


# ---- measuring -------------------------------------------------------------

def _seconds(fn, budget):
    """Median seconds of one call of ``fn``, from repeats within ``budget``.

    The first call warms up and is only used when it alone exceeds the budget.
    """
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    if first >= budget:
        return first
    number = max(1, int(1e-3 / max(first, 1e-9)))  # batch calls below a millisecond
    samples = []
    deadline = time.perf_counter() + budget
    while len(samples) < 3 or (time.perf_counter() < deadline and len(samples) < 25):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def _peak_bytes(fn):
    """Peak memory (bytes) allocated while ``fn`` runs, by tracemalloc."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@dataclass
class ModeResult:
    """One way of differentiating: its work, its time and its memory.

    Attributes
    ----------
    mode : str
        ``"fwd"``, ``"rev"`` or an HVP mode (``"fwd-rev"``...).
    passes : int
        Forward: directions pushed (``n``); reverse: sweeps (``m``) after one
        recording; HVP: passes over ``f``'s computation.
    flops : int
        Model flops of the whole computation.
    cost : int
        Model cost: flops plus :data:`~dualrev.costmodel.DISPATCH_FLOPS` per
        primitive call.
    seconds : float
        Median wall time.
    time_ratio : float
        ``seconds`` over the median time of one plain evaluation of ``f``.
    peak_bytes : int
        Peak memory allocated during one run (tracemalloc).
    max_abs_diff : float
        Largest difference from the reference result (the other Jacobian
        mode, or for HVPs the first exact mode of
        :data:`~dualrev.hvp.HVP_MODES`, forward over reverse).
    compiled_ratio : float
        The same mode staged by :func:`dualrev.compile`: time of one replay
        over one evaluation of ``f`` (measured for the predicted mode).
    staging_ratio : float
        Time of staging it (the first compiled call) over one evaluation of ``f``.
    """

    mode: str
    passes: int
    flops: int
    cost: int
    seconds: float = math.nan
    time_ratio: float = math.nan
    peak_bytes: int = 0
    max_abs_diff: float = math.nan
    compiled_ratio: float = math.nan
    staging_ratio: float = math.nan


@dataclass
class CompiledResult:
    """A scalar function's gradient run eagerly, compiled, or compiled and fused.

    Attributes
    ----------
    mode : str
        ``"eager"``, ``"compiled"`` (generated NumPy) or ``"compiled-numba"``
        (fused kernels; ``"fallback"`` in ``note`` when it ran on the default
        backend).
    seconds, time_ratio : float
        Median time of one call (a replay for the compiled modes), and over
        one evaluation of ``f``; NaN when the mode could not run.
    staging_seconds, compile_seconds : float
        The one-time costs, apart: staging (with the passes) and numba's
        compile time.
    max_abs_diff : float
        Largest difference from the eager gradient.
    note : str
    """

    mode: str
    seconds: float = math.nan
    time_ratio: float = math.nan
    staging_seconds: float = 0.0
    compile_seconds: float = 0.0
    max_abs_diff: float = math.nan
    note: str = ""


@dataclass
class Report:
    """The comparison of the modes on one function at one point.

    Attributes
    ----------
    name : str
    n, m : int
        Input and output sizes.
    ops, flops : int
        Primitives and flops on the tape of ``f`` (see :class:`TapeCost`).
    f_seconds : float
        Median time of one plain evaluation of ``f``.
    jacobian : list of ModeResult
        ``fwd`` and ``rev``.
    predicted, measured : str
        The cheaper Jacobian mode by the cost model, and by the stopwatch.
    hvp : list of ModeResult
        Every mode of :data:`dualrev.hvp.HVP_MODES`, for scalar ``f``.
    hvp_predicted, hvp_measured : str or None
        The cheaper exact HVP mode, by model and by stopwatch.
    compiled : list of CompiledResult
        For scalar ``f``: its gradient eager, compiled and compiled-numba
        (when numba is installed).
    note : str
    cost : TapeCost
    """

    name: str
    n: int
    m: int
    ops: int
    flops: int
    f_seconds: float
    jacobian: list
    predicted: str
    measured: str
    hvp: list = field(default_factory=list)
    hvp_predicted: str = None
    hvp_measured: str = None
    compiled: list = field(default_factory=list)
    note: str = ""
    cost: TapeCost = None

    def mode(self, name):
        """The :class:`ModeResult` named ``name``."""
        return next(r for r in self.jacobian + self.hvp if r.mode == name)

    def as_dict(self):
        """Plain data for JSON (see ``dualrev compare --json``)."""
        return asdict(self)


def _max_abs_diff(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def _measure(result, fn, f_seconds, budget, reference=None):
    value = fn()
    result.seconds = _seconds(fn, budget)
    result.time_ratio = result.seconds / f_seconds
    result.peak_bytes = _peak_bytes(fn)
    if reference is not None:
        result.max_abs_diff = _max_abs_diff(value, reference)
    return value


def _measure_compiled(result, fn, f_seconds, budget, x):
    """Stage ``fn`` (a derivative of ``f``, called at ``x``) and time its
    replays: when compiling pays, and what staging costs."""
    compiled = compile(fn)
    start = time.perf_counter()
    compiled(x)
    result.staging_ratio = (time.perf_counter() - start) / f_seconds
    result.compiled_ratio = _seconds(lambda: compiled(x), budget) / f_seconds


def _reference_hvp_mode():
    """The first exact mode of :data:`~dualrev.hvp.HVP_MODES`: the others' yardstick."""
    return next(name for name, mode in HVP_MODES.items() if mode.exact)


def _compare_hvps(report, f, x, f_seconds, budget):
    if report.m != 1 or report.n == 0:
        return
    v = np.random.default_rng(0).standard_normal(shape_of(x)) if shape_of(x) else 1.0
    costs = hvp_costs(f, x, v)
    reference = hvp_product(f, x, v, _reference_hvp_mode())
    for mode, (passes, flops, cost) in costs.items():
        result = ModeResult(mode, passes, flops, cost)
        _measure(result, lambda mode=mode: hvp_product(f, x, v, mode), f_seconds, budget,
                 reference)
        report.hvp.append(result)
    exact = [r for r in report.hvp if HVP_MODES[r.mode].exact]
    report.hvp_predicted = min(exact, key=lambda r: r.cost).mode
    report.hvp_measured = min(exact, key=lambda r: r.seconds).mode
    mode = report.hvp_predicted
    _measure_compiled(report.mode(mode), lambda x: hvp_product(f, x, v, mode), f_seconds,
                      budget, x)


def _compiled_modes():
    modes = {"compiled": "default"}
    if importlib.util.find_spec("numba") is not None:
        modes["compiled-numba"] = "numba"
    return modes


def _compare_compiled(report, f, x, f_seconds, budget):
    """Time ``grad(f)`` eagerly and replayed by each backend of :func:`compile`."""
    if report.m != 1:
        return
    eager = CompiledResult("eager")
    reference = grad(f)(x)
    eager.seconds = _seconds(lambda: grad(f)(x), budget)
    eager.time_ratio, eager.max_abs_diff = eager.seconds / f_seconds, 0.0
    report.compiled.append(eager)
    for mode, backend in _compiled_modes().items():
        result = CompiledResult(mode)
        report.compiled.append(result)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a fallback shows as one in the table
            try:
                compiled = compile(grad(f), backend=backend)
                compiled(x)  # stages
                value = compiled(x)  # numba compiles for array layouts met at run time
            except Exception as error:  # the function cannot be staged
                result.note = f"{type(error).__name__}: {error}".splitlines()[0]
                continue
        program = compiled.programs[0]
        result.staging_seconds = program.staging_seconds
        result.compile_seconds = program.compile_seconds
        if program.backend != backend:
            result.note = "fallback"
        result.seconds = _seconds(lambda: compiled(x), budget)
        result.time_ratio = result.seconds / f_seconds
        result.max_abs_diff = _max_abs_diff(value, reference)


def compare(f, x, *, name=None, hvp=True, budget=0.2, note=""):
    """Differentiate ``f`` at ``x`` in every mode; predict and measure the winner.

    Parameters
    ----------
    f : callable
        ``f(x)`` returning an array or a scalar, written with NumPy.
    x : float or ndarray
        The point; ``n = x.size``.
    name : str, optional
        Shown in tables; defaults to ``f.__name__``.
    hvp : bool
        For scalar ``f``, also compare every mode of
        :data:`dualrev.hvp.HVP_MODES`.
    budget : float
        Seconds of repeats per timing; the median is reported.
    note : str
        Free text carried into the report.

    Returns
    -------
    Report
        Tape counts, both Jacobians' model cost, time (also as a ratio to one
        evaluation of ``f``) and peak memory, the predicted and the measured
        winner, and how far the two Jacobians differ; for scalar ``f``,
        its gradient eager, compiled and compiled-numba.

    See Also
    --------
    dualrev.costmodel.tape_cost, dualrev.costmodel.predict_jacobian_mode, dualrev.jacobian

    Examples
    --------
    >>> import numpy as np
    >>> r = compare(lambda x: np.sum(x ** 2), np.ones(50), budget=0.01, hvp=False)
    >>> r.n, r.m, r.ops, r.predicted
    (50, 1, 2, 'rev')
    >>> r.mode("fwd").max_abs_diff < 1e-12
    True
    """
    x = np.asarray(x, np.float64) if not np.isscalar(x) else float(x)
    tape = Tape()
    out = f(tape.input(x))
    if len(flatten(out)[0]) != 1:
        raise TypeError("compare needs f to return one array or scalar, not "
                        f"{type(out).__name__}")
    cost = tape_cost(tape)
    n, m = size_of(x), size_of(out)
    f_seconds = _seconds(lambda: f(x), budget / 4)
    model = jacobian_costs(cost, n, m)
    fwd = ModeResult("fwd", n, forward_passes(n) * cost.flops + n * cost.deriv_flops,
                     model["fwd"])
    rev = ModeResult("rev", m, cost.flops + m * cost.deriv_flops, model["rev"])
    jac_rev = _measure(rev, lambda: jacrev(f)(x), f_seconds, budget)
    _measure(fwd, lambda: jacfwd(f)(x), f_seconds, budget, reference=jac_rev)
    rev.max_abs_diff = fwd.max_abs_diff
    report = Report(name or getattr(f, "__name__", "f"), n, m, cost.ops, cost.flops,
                    f_seconds, [fwd, rev], predict_jacobian_mode(cost, n, m),
                    "fwd" if fwd.seconds <= rev.seconds else "rev", note=note, cost=cost)
    _measure_compiled(report.mode(report.predicted),
                      jacfwd(f) if report.predicted == "fwd" else jacrev(f),
                      f_seconds, budget, x)
    if hvp:
        _compare_hvps(report, f, x, f_seconds, budget)
    _compare_compiled(report, f, x, f_seconds, budget)
    return report


# ---- the catalogue and its table ---------------------------------------------

def run_catalogue(quick=False, progress=None, hvp=True, budget=None):
    """Compare the modes on every example of :func:`dualrev.examples.catalogue`.

    Parameters
    ----------
    quick : bool
        Smaller sizes, shorter timings.
    progress : callable, optional
        ``progress(i, total, example)`` before each example.
    hvp : bool
        Also compare HVP modes on scalar examples.
    budget : float, optional
        Seconds of repeats per timing.

    Returns
    -------
    list of Report

    See Also
    --------
    compare, format_table
    """
    from .examples import catalogue
    examples = catalogue(quick)
    budget = budget if budget is not None else (0.05 if quick else 0.25)
    reports = []
    for i, ex in enumerate(examples):
        if progress is not None:
            progress(i, len(examples), ex)
        reports.append(compare(ex.f, ex.x, name=ex.name, hvp=hvp, budget=budget,
                               note=ex.note))
    return reports


def _si(value):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


JACOBIAN_COLUMNS = ("function", "n", "m", "fwd passes", "rev passes", "ops", "flops",
                    "time fwd", "time rev", "mem fwd", "mem rev", "predicted", "measured",
                    "compiled", "staging")


def _compiled_cells(result):
    """The compiled replay's and the staging's time over f, of the predicted mode."""
    return f"{result.compiled_ratio:.3g}", f"{result.staging_ratio:.3g}"


def _jacobian_row(r):
    fwd, rev = r.mode("fwd"), r.mode("rev")
    return (r.name, str(r.n), str(r.m), str(fwd.passes), str(rev.passes), str(r.ops),
            _si(r.flops), f"{fwd.time_ratio:.3g}", f"{rev.time_ratio:.3g}",
            _si(fwd.peak_bytes) + "B", _si(rev.peak_bytes) + "B", r.predicted,
            r.measured + ("" if r.measured == r.predicted else " *")) \
        + _compiled_cells(r.mode(r.predicted))


def _hvp_row(r):
    cells = [r.name, str(r.n)]
    for res in r.hvp:
        cells.append(f"{res.time_ratio:.3g}")
    return tuple(cells) + (r.hvp_predicted, r.hvp_measured
                           + ("" if r.hvp_measured == r.hvp_predicted else " *")) \
        + _compiled_cells(r.mode(r.hvp_predicted))


def _render(columns, rows):
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
    line = "  ".join("-" * w for w in widths)
    fmt = [row[0].ljust(widths[0]) + "  " + "  ".join(cell.rjust(w) for cell, w in
                                                     zip(row[1:], widths[1:]))
           for row in [columns] + rows]
    return "\n".join([fmt[0], line] + fmt[1:])


def format_table(reports):
    """The Jacobian table (and the HVP table, if any) as text.

    Times are ratios to one plain evaluation of ``f``; ``*`` marks a
    measured winner that differs from the predicted one.

    Examples
    --------
    >>> import numpy as np
    >>> r = compare(np.sin, np.ones(3), budget=0.01)
    >>> print(format_table([r]).splitlines()[0])  # doctest: +NORMALIZE_WHITESPACE
    function n m fwd passes rev passes ops flops time fwd time rev mem fwd mem rev
    predicted measured compiled staging
    """
    text = _render(JACOBIAN_COLUMNS, [_jacobian_row(r) for r in reports])
    with_compiled = [r for r in reports if r.compiled]
    if with_compiled:
        modes = tuple(res.mode for res in with_compiled[0].compiled)
        columns = ("gradient (time / f)", "n") + modes + ("staging s", "numba compile s")
        text += "\n\n" + _render(columns, [_compiled_row(r) for r in with_compiled])
    with_hvp = [r for r in reports if r.hvp]
    if with_hvp:
        modes = tuple(res.mode for res in with_hvp[0].hvp)
        columns = ("HVP (time / f)", "n") + modes + ("predicted", "measured", "compiled",
                                                     "staging")
        text += "\n\n" + _render(columns, [_hvp_row(r) for r in with_hvp])
    return text


# ---- where the modes cross -----------------------------------------------------

#: Two timings within this fraction of each other are a tie: timing noise
#: names no winner, so it can neither make nor place a crossover.
CROSSOVER_TOLERANCE = 0.15


def _step_misfit(d, side, split, first):
    """Weight of the points a step from ``first`` to ``-first`` at ``split`` gets wrong."""
    before = np.abs(d[:split][side[:split] == -first]).sum()
    after = np.abs(d[split:][side[split:] == first]).sum()
    return before + after


def crossover(ns, a, b, tolerance=CROSSOVER_TOLERANCE):
    """The ``n`` where the order of two costs changes, robust to timing noise.

    Two costs within ``tolerance`` of each other are a tie. At most one
    change of order (a step) is fitted to the rest: the split and direction
    that misplace the least total log-ratio, so a single noisy point neither
    makes a crossover nor moves it. The crossover is the first zero of the
    log-ratio, interpolated linearly in ``log n``, after the last point
    clearly on the step's first side.

    Parameters
    ----------
    ns : sequence of float
        Increasing input sizes.
    a, b : sequence of float
        Two positive costs (times) at each ``n``.
    tolerance : float
        Relative difference below which the two are tied.

    Returns
    -------
    float or None
        ``None`` when the order never clearly changes: one is cheaper (or
        they are tied) over the whole grid.

    See Also
    --------
    crossovers, dualrev.cli.plot_crossover

    Examples
    --------
    >>> round(crossover([1, 100], [1.0, 100.0], [10.0, 10.0]))
    10

    A near tie at the smallest size is noise, not a crossover:

    >>> ns = [2, 16, 128, 1024]
    >>> print(crossover(ns, [1.05, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]))
    None
    """
    d = np.log(np.asarray(a, float)) - np.log(np.asarray(b, float))
    ln = np.log(np.asarray(ns, float))
    tie = np.log1p(tolerance)
    side = np.where(d < -tie, -1, np.where(d > tie, 1, 0))
    if not (side == -1).any() or not (side == 1).any():
        return None
    # Splits 0 and len(d) are "no change of order", fitted like the others.
    fits = [(_step_misfit(d, side, split, first), split, first)
            for first in (-1, 1) for split in range(len(d) + 1)]
    _, split, first = min(fits, key=lambda fit: fit[0])
    before = np.flatnonzero(side[:split] == first)
    after = split + np.flatnonzero(side[split:] == -first)
    if not len(before) or not len(after):
        return None
    # The first zero of the piecewise-linear log-ratio after the last point
    # clearly on the first side (ties between are passed through, not skipped).
    hi = next(j for j in range(before[-1] + 1, after[0] + 1) if first * d[j] <= 0)
    lo = hi - 1
    t = d[lo] / (d[lo] - d[hi])
    return float(np.exp(ln[lo] + t * (ln[hi] - ln[lo])))


@dataclass
class Crossover:
    """Where forward and reverse mode cross on a grid of ``n`` at one ``m``.

    Attributes
    ----------
    name : str
    m : int
    ns : list of int
        The grid of input sizes.
    measured : float or None
        From the measured times (:func:`crossover`).
    model : float or None
        From the cost model: flops plus the per-call cost.
    flops : float or None
        From the model flops alone (about ``n = m``).
    first : str
        The mode measured faster at the smallest ``n``: ``"fwd"``, ``"rev"``,
        or ``"tie"``.
    last : str
        The same at the largest ``n``.
    """

    name: str
    m: int
    ns: list
    measured: float | None
    model: float | None
    flops: float | None
    first: str
    last: str

    def describe(self):
        """One sentence on the measured crossover, as the figure shows it.

        Examples
        --------
        >>> Crossover("f", 32, [16, 2048], 300.4, 120.0, 32.0, "fwd", "rev").describe()
        'the measured times cross at n ≈ 300 (n/m ≈ 9.4): forward mode is faster below, reverse mode above'
        """
        names = {"fwd": "forward mode", "rev": "reverse mode"}
        if self.measured is not None:
            return (f"the measured times cross at n ≈ {self.measured:.0f} "
                    f"(n/m ≈ {self.measured / self.m:.2g}): {names[self.first]} is faster "
                    f"below, {names[self.last]} above")
        span = f"n = {self.ns[0]} to {self.ns[-1]}"
        if self.first == self.last == "tie":
            return f"the measured times do not cross: the two modes are tied from {span}"
        winner = self.first if self.first != "tie" else self.last
        return f"the measured times do not cross: {names[winner]} is faster from {span}"


def _faster(fwd, rev, tolerance):
    if abs(math.log(fwd / rev)) <= math.log1p(tolerance):
        return "tie"
    return "fwd" if fwd < rev else "rev"


def crossovers(reports, tolerance=CROSSOVER_TOLERANCE):
    """The :class:`Crossover` of each ``m`` among ``reports`` (one function over a grid).

    The figure of ``dualrev compare --plot`` and the docs' sentences on it
    both come from here.

    Parameters
    ----------
    reports : list of Report
        As :func:`compare` returns them, at least two sizes ``n`` for each ``m``.
    tolerance : float
        See :func:`crossover`.

    Returns
    -------
    dict
        ``m -> Crossover``, by increasing ``m``.

    Raises
    ------
    ValueError
        If an ``m`` has fewer than two sizes ``n`` (nothing to cross).

    Examples
    --------
    >>> from dualrev.examples import make_tanh_layer
    >>> reports = [compare(make_tanh_layer(n, 4), np.ones(n), name="tanh(Ax)",
    ...                    hvp=False, budget=0.0) for n in (1, 4, 64)]
    >>> c = crossovers(reports)[4]
    >>> c.ns, round(c.flops)
    ([1, 4, 64], 4)
    """
    by_m = {}
    for r in sorted(reports, key=lambda r: (r.m, r.n)):
        by_m.setdefault(r.m, []).append(r)
    found = {}
    for m, grid in by_m.items():
        if len(grid) < 2:
            raise ValueError(f"crossovers: only n = {grid[0].n} at m = {m}; a crossover "
                             "needs at least two sizes n")
        ns = [r.n for r in grid]
        fwd = [r.mode("fwd").seconds for r in grid]
        rev = [r.mode("rev").seconds for r in grid]
        found[m] = Crossover(
            grid[0].name, m, ns, crossover(ns, fwd, rev, tolerance),
            crossover(ns, [r.mode("fwd").cost for r in grid],
                      [r.mode("rev").cost for r in grid], 0.0),
            crossover(ns, [r.mode("fwd").flops for r in grid],
                      [r.mode("rev").flops for r in grid], 0.0),
            _faster(fwd[0], rev[0], tolerance), _faster(fwd[-1], rev[-1], tolerance))
    return found


def _compiled_row(r):
    cells = [r.name, str(r.n)]
    for res in r.compiled:
        cells.append(f"{res.time_ratio:.3g}" + (" (fallback)" if res.note == "fallback"
                                                else ""))
    staged = [res for res in r.compiled if res.mode != "eager"]
    cells.append(f"{max((res.staging_seconds for res in staged), default=0.0):.3g}")
    cells.append(f"{sum(res.compile_seconds for res in staged):.3g}")
    return tuple(cells)
