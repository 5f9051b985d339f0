"""Which mode should differentiate this function? A cost model and a stopwatch.

For ``f: R^n -> R^m`` the Jacobian takes ``n`` forward directions (``jacfwd``)
or ``m`` reverse sweeps of one recorded tape (``jacrev``). :func:`compare`
records ``f`` once, reads the work off the tape, predicts the cheaper mode,
then runs both and measures them; for scalar functions it does the same for
Hessian-vector products in every composition.

The cost model
--------------
Machine independent: it counts, it never times. Each record of the tape is
one primitive; its floating-point operations are its op's ``flops`` rule
(declared with the op, ``defop(flops=...)``; :data:`FLOP_MODEL` collects them):

==============  ==========================================  ======================
family          ops                                         flops of one record
==============  ==========================================  ======================
elementwise     add, multiply, sin, tanh, where, ...         output size
matmul          matmul                                      ``2 * m * k * n``
einsum          einsum                                      2 per index-space point
reduction       sum, amax, amin, prod, cumsum,              input size
                logsumexp
shape/indexing  reshape, transpose, broadcast_to,           0
                concatenate, getitem, untake, ...
linalg          solve ``2/3 n^3 + 2 n^2 k``, det and        textbook estimates
                logabsdet ``2/3 n^3``, inv ``2 n^3``,
                cholesky ``n^3/3``, eigvalsh/eigvecs ``9 n^3``
==============  ==========================================  ======================

A derivative rule (JVP or VJP) applied to one argument of a record costs,
in the model, what the record itself costs; so with ``F`` the flops of the
tape, ``T`` the flops of one derivative direction (``F`` weighted by the
number of differentiated arguments of each record), ``ops`` the records and
``P`` the rule calls of one direction:

* forward  (``jacfwd``): ``passes * F + n * T`` flops, ``passes * (ops + P)`` calls
* reverse  (``jacrev``): ``F + m * T`` flops, ``ops + m * P`` calls

where forward pushes its ``n`` directions together in ``passes`` batched
passes (usually one). Every primitive call through Python costs
:data:`DISPATCH_FLOPS` flop-equivalents on top: that is why forward mode,
whose ``n`` directions share one pass, still wins somewhat past ``n = m``
when the arrays are small.
"""

import importlib.util
import math
import statistics
import time
import tracemalloc
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from .api import _record, jacfwd, jacrev, jvp, value_and_grad
from .api import default_chunk_size
from .registry import OPS, shape_of
from .reverse import Tape
from .tree import flatten

__all__ = ["compare", "Report", "ModeResult", "TapeCost", "tape_cost", "flops_of",
           "predict_jacobian_mode", "choose_jacobian_mode", "run_catalogue",
           "format_table", "FLOP_MODEL", "DISPATCH_FLOPS", "HVP_MODES"]

#: Flop-equivalents of one primitive call through Python (about 5 µs of
#: interpreter work at about 1 Gflop/s of NumPy throughput). A fixed model
#: constant, the same on every machine.
DISPATCH_FLOPS = 5000

#: HVP compositions compared for scalar functions, in tie-breaking order:
#: forward-over-reverse first, as it keeps no outer tape.
HVP_MODES = ("fwd-rev", "rev-rev", "rev-fwd", "fd")


def _size(x):
    return int(np.prod(shape_of(x)))


class _FlopModel(Mapping):
    """Op name -> its flops rule ``flops(out, *args, **params)`` (``Op.flops``),
    read live from the registry."""

    def __getitem__(self, name):
        return OPS[name].flops

    def __iter__(self):
        return iter(list(OPS))

    def __len__(self):
        return len(OPS)


#: Op name -> flops of one call, ``rule(out, *args, **params)``: each op
#: declares its own (``defop(flops=...)``); linear-algebra ops use the
#: textbook estimates for LU (solve, det), inversion, Cholesky and the
#: symmetric eigensolver.
FLOP_MODEL = _FlopModel()


def flops_of(record):
    """Floating-point operations of one tape record, by :data:`FLOP_MODEL`.

    Parameters
    ----------
    record : dualrev.reverse.Record
        ``(op, args, params, out, parents)``, as a tape yields them.

    Returns
    -------
    int

    See Also
    --------
    tape_cost

    Examples
    --------
    >>> import numpy as np
    >>> from dualrev.reverse import Tape
    >>> tape = Tape()
    >>> _ = tape.input(np.ones((2, 3))) @ np.ones((3, 4))
    >>> flops_of(tape.record(1))  # 2 * m * k * n
    48
    """
    op, args, params, out, _ = record
    return op.flops(out, *args, **params)


@dataclass
class TapeCost:
    """The work recorded on a tape.

    Attributes
    ----------
    ops : int
        Primitives recorded (records that depend on an input).
    flops : int
        Their floating-point operations, by :data:`FLOP_MODEL`.
    deriv_flops : int
        Flops of one derivative direction: each record's flops times its
        number of differentiated arguments.
    rule_calls : int
        Derivative rules called in one direction (the differentiated
        arguments of all records).
    by_op : dict
        Op name -> number of records.
    """

    ops: int = 0
    flops: int = 0
    deriv_flops: int = 0
    rule_calls: int = 0
    by_op: dict = field(default_factory=dict)


def tape_cost(tape):
    """Read the primitive count and the flops off a recorded tape.

    Parameters
    ----------
    tape : dualrev.reverse.Tape

    Returns
    -------
    TapeCost

    See Also
    --------
    flops_of, compare

    Examples
    --------
    >>> import numpy as np
    >>> from dualrev.reverse import Tape
    >>> tape = Tape()
    >>> x = tape.input(np.arange(10.0))
    >>> _ = np.sum(x * np.ones(10))    # multiply: 10 flops, sum: 10 flops
    >>> cost = tape_cost(tape)
    >>> cost.ops, cost.flops
    (2, 20)
    """
    cost = TapeCost()
    for record in tape:
        flops = flops_of(record)
        name = record.op.name
        cost.ops += 1
        cost.flops += flops
        cost.deriv_flops += flops * len(record.parents)
        cost.rule_calls += len(record.parents)
        cost.by_op[name] = cost.by_op.get(name, 0) + 1
    return cost


def forward_passes(n):
    """Batched passes ``jacfwd`` makes for ``n`` directions (its chunking)."""
    if n == 0:
        return 0
    chunk = default_chunk_size(n)
    return -(-n // chunk)


def jacobian_costs(cost, n, m):
    """Model cost (flop-equivalents) of ``{"fwd": ..., "rev": ...}``.

    Examples
    --------
    >>> c = TapeCost(ops=1, flops=10, deriv_flops=10, rule_calls=1)
    >>> costs = jacobian_costs(c, n=10, m=1)
    >>> costs["rev"] < costs["fwd"]
    True
    """
    passes = forward_passes(n)
    fwd = passes * cost.flops + n * cost.deriv_flops \
        + DISPATCH_FLOPS * passes * (cost.ops + cost.rule_calls)
    rev = cost.flops + m * cost.deriv_flops \
        + DISPATCH_FLOPS * (cost.ops + m * cost.rule_calls)
    return {"fwd": fwd, "rev": rev}


def predict_jacobian_mode(cost, n, m):
    """'fwd' or 'rev', whichever the cost model says is cheaper ('fwd' on ties).

    Parameters
    ----------
    cost : TapeCost
        The tape of ``f`` (see :func:`tape_cost`).
    n, m : int
        Input and output sizes.

    Returns
    -------
    str

    See Also
    --------
    choose_jacobian_mode, jacobian_costs

    Examples
    --------
    >>> c = TapeCost(ops=2, flops=2000, deriv_flops=2000, rule_calls=2)
    >>> predict_jacobian_mode(c, n=1, m=1000), predict_jacobian_mode(c, n=1000, m=1)
    ('fwd', 'rev')
    """
    costs = jacobian_costs(cost, n, m)
    return "fwd" if costs["fwd"] <= costs["rev"] else "rev"


def choose_jacobian_mode(f, args, kwargs=None, argnums=0):
    """Record ``f`` once and return the mode the cost model prefers.

    This is what ``dualrev.jacobian(f, mode="auto")`` uses.

    Parameters
    ----------
    f : callable
    args : tuple
        Positional arguments of ``f``.
    kwargs : dict, optional
    argnums : int or tuple of int
        The differentiated arguments.

    Returns
    -------
    str
        ``"fwd"`` or ``"rev"``.

    See Also
    --------
    predict_jacobian_mode

    Examples
    --------
    >>> import numpy as np
    >>> choose_jacobian_mode(lambda x: np.sum(x ** 2), (np.ones(1000),))
    'rev'
    """
    tape, nodes, leaves, treedef, out = _record(f, tuple(args), kwargs or {}, argnums)
    n = sum(_size(x) for x in leaves)
    m = sum(_size(o) for o in flatten(out)[0])
    return predict_jacobian_mode(tape_cost(tape), n, m)


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
        Model cost: flops plus :data:`DISPATCH_FLOPS` per primitive call.
    seconds : float
        Median wall time.
    time_ratio : float
        ``seconds`` over the median time of one plain evaluation of ``f``.
    peak_bytes : int
        Peak memory allocated during one run (tracemalloc).
    max_abs_diff : float
        Largest difference from the reference result (the other Jacobian
        mode, or forward-over-reverse for HVPs).
    """

    mode: str
    passes: int
    flops: int
    cost: int
    seconds: float = math.nan
    time_ratio: float = math.nan
    peak_bytes: int = 0
    max_abs_diff: float = math.nan


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
        Every HVP mode, for scalar ``f`` when :mod:`dualrev.hvp` is available.
    hvp_predicted, hvp_measured : str or None
        The cheaper exact HVP mode, by model and by stopwatch.
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


def _hvp_function():
    """``dualrev.hvp.hvp`` when that module exists, else None."""
    if importlib.util.find_spec("dualrev.hvp") is None:
        return None
    from .hvp import hvp
    return hvp


def _recorded(fn, x):
    """TapeCost of ``fn(x)`` recorded on a fresh tape."""
    tape = Tape()
    fn(tape.input(x))
    return tape_cost(tape)


def hvp_costs(f, x, v):
    """Model ``(passes, flops, cost)`` of each HVP mode of a scalar ``f``.

    The work of a gradient (``grad f``) and of a JVP (``jvp f``) is recorded
    on an outer tape and read off it: reverse-over-reverse records the
    gradient and sweeps it once; forward-over-reverse pushes one tangent
    through the gradient; reverse-over-forward records the JVP and sweeps it;
    finite differences evaluate two gradients.
    """
    grad_work = _recorded(lambda xn: value_and_grad(f)(xn)[1], x)
    jvp_work = _recorded(lambda xn: jvp(f, (xn,), (v,))[1], x)
    f_work = _recorded(f, x)

    def model(work, passes):  # passes: f-sized forward passes plus sweeps
        flops = work.flops + work.deriv_flops
        return passes, flops, flops + DISPATCH_FLOPS * (work.ops + work.rule_calls)
    grad_flops = f_work.flops + f_work.deriv_flops
    grad_calls = f_work.ops + f_work.rule_calls
    return {
        "fwd-rev": model(grad_work, 2),
        "rev-rev": model(grad_work, 4),
        "rev-fwd": model(jvp_work, 2),
        "fd": (4, 2 * grad_flops, 2 * (grad_flops + DISPATCH_FLOPS * grad_calls)),
    }


def _compare_hvps(report, f, x, f_seconds, budget):
    hvp = _hvp_function()
    if hvp is None or report.m != 1 or report.n == 0:
        return
    v = np.random.default_rng(0).standard_normal(shape_of(x)) if shape_of(x) else 1.0
    costs = hvp_costs(f, x, v)
    reference = hvp(f, x, v, "fwd-rev")
    for mode in HVP_MODES:
        passes, flops, cost = costs[mode]
        result = ModeResult(mode, passes, flops, cost)
        _measure(result, lambda mode=mode: hvp(f, x, v, mode), f_seconds, budget, reference)
        report.hvp.append(result)
    exact = [r for r in report.hvp if r.mode != "fd"]
    report.hvp_predicted = min(exact, key=lambda r: r.cost).mode
    report.hvp_measured = min(exact, key=lambda r: r.seconds).mode


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
        For scalar ``f``, also compare the HVP modes of :mod:`dualrev.hvp`
        (skipped when that module is not installed).
    budget : float
        Seconds of repeats per timing; the median is reported.
    note : str
        Free text carried into the report.

    Returns
    -------
    Report
        Tape counts, both Jacobians' model cost, time (also as a ratio to one
        evaluation of ``f``) and peak memory, the predicted and the measured
        winner, and how far the two Jacobians differ.

    See Also
    --------
    tape_cost, predict_jacobian_mode, dualrev.jacobian

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
    n, m = _size(x), _size(out)
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
    if hvp:
        _compare_hvps(report, f, x, f_seconds, budget)
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
                    "time fwd", "time rev", "mem fwd", "mem rev", "predicted", "measured")


def _jacobian_row(r):
    fwd, rev = r.mode("fwd"), r.mode("rev")
    return (r.name, str(r.n), str(r.m), str(fwd.passes), str(rev.passes), str(r.ops),
            _si(r.flops), f"{fwd.time_ratio:.3g}", f"{rev.time_ratio:.3g}",
            _si(fwd.peak_bytes) + "B", _si(rev.peak_bytes) + "B", r.predicted,
            r.measured + ("" if r.measured == r.predicted else " *"))


def _hvp_row(r):
    cells = [r.name, str(r.n)]
    for mode in HVP_MODES:
        res = r.mode(mode)
        cells.append(f"{res.time_ratio:.3g}")
    return tuple(cells) + (r.hvp_predicted, r.hvp_measured)


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
    predicted measured
    """
    text = _render(JACOBIAN_COLUMNS, [_jacobian_row(r) for r in reports])
    with_hvp = [r for r in reports if r.hvp]
    if with_hvp:
        columns = ("HVP (time / f)", "n") + HVP_MODES + ("predicted", "measured")
        text += "\n\n" + _render(columns, [_hvp_row(r) for r in with_hvp])
    return text
