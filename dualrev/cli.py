"""The ``dualrev`` command.

``dualrev compare`` differentiates a catalogue of functions (or yours) in
forward and reverse mode, predicts the cheaper mode from the recorded tape,
measures both, and prints one table::

    dualrev compare                      # the built-in catalogue (seconds)
    dualrev compare --quick              # smaller sizes, shorter timings
    dualrev compare --list               # what the catalogue contains
    dualrev compare --function mymod:f --shape 100
    dualrev compare --json out.json --plot crossover.png

``--function`` takes ``module:name`` (importable from the current directory)
or ``path/to/file.py:name``; ``f`` is called on a seeded standard normal
array of ``--shape`` (comma-separated, e.g. ``10,3``; ``""`` for a scalar).

Columns: ``fwd passes`` is the number of forward directions (``n``, pushed
together in batched passes), ``rev passes`` the number of reverse sweeps
(``m``, after one recording), ``ops`` and ``flops`` are read off the tape of
``f`` (see :mod:`dualrev.costmodel` for the model), times are medians as
ratios to one plain evaluation of ``f``, memory is the peak allocated during
one run, and ``*`` marks a measured winner that differs from the predicted
one.

JSON fields (``--json``)
------------------------
``dualrev_version``, ``quick`` (bool), ``dispatch_flops`` (the model
constant), ``total_seconds``, and ``functions``: one object per function with

``name, n, m, ops, flops, f_seconds, predicted, measured, note``
    as in the table (``predicted``/``measured`` are ``"fwd"`` or ``"rev"``);
``jacobian``
    two objects, ``mode`` ``"fwd"`` and ``"rev"``, each with ``passes,
    flops, cost, seconds, time_ratio, peak_bytes, max_abs_diff``;
``hvp``
    the same objects for the HVP modes (``fwd-rev, rev-rev, rev-fwd, fd``)
    of scalar functions, else ``[]``; ``hvp_predicted``, ``hvp_measured``;
``compiled``
    for scalar functions, the gradient ``eager``, ``compiled`` and
    ``compiled-numba`` (with numba installed), each with ``seconds,
    time_ratio, staging_seconds, compile_seconds, max_abs_diff, note``;
``cost``
    ``ops, flops, deriv_flops, rule_calls, by_op`` of the tape of ``f``.

Exit status: 0 on success, 2 on a usage error or a ``--function`` that
cannot be loaded or differentiated (one line on stderr, no traceback).
"""

import argparse
import importlib
import importlib.util
import json
import math
import os
import sys
import time

import numpy as np

__all__ = ["main", "plot_crossover", "crossover"]


class CommandError(Exception):
    """A problem to report on one line, with exit status 2."""


def _parser():
    parser = argparse.ArgumentParser(
        prog="dualrev", description="Forward and reverse mode differentiation of NumPy "
                                    "code: which mode to use, and why.")
    commands = parser.add_subparsers(dest="command", metavar="command")
    cmp = commands.add_parser(
        "compare", help="compare forward and reverse mode on a catalogue or your function",
        description="Predict (from the recorded tape) and measure the cheaper "
                    "differentiation mode; print a table.")
    cmp.add_argument("--function", metavar="MODULE:F",
                     help="your function, as module:name or path/file.py:name")
    cmp.add_argument("--shape", default="10",
                     help="shape of the input to --function, e.g. 100 or 10,3 (default 10)")
    cmp.add_argument("--quick", action="store_true", help="smaller sizes, shorter timings")
    cmp.add_argument("--no-hvp", action="store_true",
                     help="skip the Hessian-vector product comparison")
    cmp.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    cmp.add_argument("--plot", metavar="PNG",
                     help="plot time against n for both modes, one panel per m "
                          "(needs matplotlib)")
    cmp.add_argument("--list", action="store_true", help="list the catalogue and exit")
    return parser


def main(argv=None):
    """Run the ``dualrev`` command; return its exit status.

    Parameters
    ----------
    argv : list of str, optional
        Arguments after the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        0 on success, 2 on a usage error or a bad ``--function``.

    Examples
    --------
    >>> main(["compare", "--list"])  # doctest: +ELLIPSIS
    trajectory ...
    0
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "compare":
        parser.print_help()
        return 0
    if args.plot and args.function:
        parser.error("--plot draws the catalogue's tanh(Ax) grid; drop --function")
    try:
        return _compare_command(args)
    except CommandError as exc:
        print(f"dualrev compare: error: {exc}", file=sys.stderr)
        return 2


def _compare_command(args):
    from .examples import catalogue
    if args.list:
        for ex in catalogue(args.quick):
            print(f"{ex.name:14s} {np.size(ex.x):5d} -> {_out_size(ex):<5d} {ex.note}")
        return 0
    start = time.perf_counter()
    if args.function:
        reports = [_compare_user_function(args.function, args.shape, not args.no_hvp,
                                          args.quick)]
    else:
        from .comparison import run_catalogue
        reports = run_catalogue(quick=args.quick, progress=_progress, hvp=not args.no_hvp)
    total = time.perf_counter() - start
    _progress_done(len(reports), total)
    from .comparison import format_table
    print(format_table(reports))
    print("\ntimes: median, as a ratio to one evaluation of f; fwd passes = n directions "
          "(batched), rev passes = m sweeps after one recording; * = measured winner "
          "differs from the cost model's")
    if args.json:
        _write_json(args.json, reports, args.quick, total)
    if args.plot:
        _write_plot(args.plot, reports)
    return 0


def _out_size(example):
    return int(np.size(example.f(example.x)))


# ---- progress on stderr ---------------------------------------------------------

def _progress(i, total, example):
    line = f"[{i + 1:2d}/{total}] {example.name} n={np.size(example.x)}"
    if sys.stderr.isatty():
        print(f"\r{line:60s}", end="", file=sys.stderr, flush=True)
    else:
        print(line, file=sys.stderr, flush=True)


def _progress_done(count, seconds):
    end = "\r" if sys.stderr.isatty() else ""
    print(f"{end}compared {count} function(s) in {seconds:.1f} s".ljust(60),
          file=sys.stderr, flush=True)


# ---- a user's function ------------------------------------------------------------

def load_function(spec):
    """The callable named by ``module:name`` or ``path/file.py:name``."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise CommandError(f"--function must look like module:name or file.py:name, "
                           f"not {spec!r}")
    try:
        module = _import(module_name)
    except Exception as exc:  # a user's module may fail in any way at import
        raise CommandError(f"cannot import {module_name!r}: {_one_line(exc)}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise CommandError(f"{module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise CommandError(f"{spec!r} is a {type(obj).__name__}, not a function")
    return obj


def _import(module_name):
    if module_name.endswith(".py"):
        if not os.path.isfile(module_name):
            raise FileNotFoundError(f"no file {module_name}")
        name = os.path.splitext(os.path.basename(module_name))[0]
        spec = importlib.util.spec_from_file_location(name, module_name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return importlib.import_module(module_name)


def parse_shape(text):
    """``"10,3"`` -> ``(10, 3)``; ``""`` -> ``()``."""
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        raise CommandError(f"--shape must be integers separated by commas, not {text!r}") \
            from None
    if any(s < 0 for s in shape):
        raise CommandError(f"--shape must not be negative: {text!r}")
    return shape


def _compare_user_function(spec, shape_text, hvp, quick):
    from .comparison import compare
    f = load_function(spec)
    shape = parse_shape(shape_text)
    x = np.random.default_rng(0).standard_normal(shape) if shape else 0.5
    print(f"[ 1/1] {spec} at shape {shape}", file=sys.stderr, flush=True)
    try:
        return compare(f, x, name=spec.rpartition(":")[2], hvp=hvp,
                       budget=0.05 if quick else 0.25)
    except Exception as exc:  # the user's code, or an op dualrev lacks
        raise CommandError(f"{spec} failed at an input of shape {shape}: "
                           f"{type(exc).__name__}: {_one_line(exc)}") from None


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


# ---- outputs ----------------------------------------------------------------------

def _finite(obj):
    """``obj`` with NaN and infinities replaced by None (strict JSON)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.generic):
        return _finite(obj.item())
    return obj


def _write_json(path, reports, quick, total):
    from . import __version__
    from .costmodel import DISPATCH_FLOPS
    data = {"dualrev_version": __version__, "quick": quick,
            "dispatch_flops": DISPATCH_FLOPS, "total_seconds": total,
            "functions": [r.as_dict() for r in reports]}
    try:
        with open(path, "w") as fh:
            json.dump(_finite(data), fh, indent=1)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}") from None


def crossover(ns, a, b):
    """The ``n`` where ``a`` stops being below ``b``, interpolated in log-log.

    Parameters
    ----------
    ns : sequence of float
        Increasing input sizes.
    a, b : sequence of float
        Two positive costs (times) at each ``n``.

    Returns
    -------
    float or None
        The first ``n`` where ``a - b`` changes sign, interpolated linearly in
        ``log n`` between the two grid points around it; ``None`` when the
        order never changes.

    See Also
    --------
    plot_crossover

    Examples
    --------
    >>> round(crossover([1, 100], [1.0, 100.0], [10.0, 10.0]))
    10
    """
    la, lb, ln = np.log(a), np.log(b), np.log(ns)
    d = la - lb
    for i in range(len(d) - 1):
        if (d[i] < 0) != (d[i + 1] < 0):
            t = d[i] / (d[i] - d[i + 1])
            return float(np.exp(ln[i] + t * (ln[i + 1] - ln[i])))
    return None


def plot_crossover(reports, path):
    """Plot Jacobian time against ``n`` for forward and reverse mode; save a PNG.

    One panel per number of outputs ``m`` (two panels a row), each with the measured times of
    ``jacfwd`` and ``jacrev``, the measured crossover (solid line,
    interpolated in log-log between grid points), the cost model's
    (dashed) and ``n = m`` (dotted). This is the figure of
    ``dualrev compare --plot``, drawn from the catalogue's ``tanh(A x)``
    grid.

    Parameters
    ----------
    reports : list of dualrev.comparison.Report
        One function over a grid of input sizes ``n``, at one or more output
        sizes ``m`` (as :func:`dualrev.comparison.compare` returns them).
    path : str or path-like
        Where to write the PNG.

    Returns
    -------
    dict
        ``m -> (measured, model)``: the crossover ``n`` of each panel,
        ``None`` where one mode is cheaper over the whole grid.

    Raises
    ------
    ImportError
        If matplotlib is not installed.

    See Also
    --------
    crossover : the interpolation of each crossover.
    dualrev.comparison.compare, dualrev.comparison.run_catalogue

    Examples
    --------
    >>> import os, tempfile
    >>> from dualrev.comparison import compare
    >>> from dualrev.examples import make_tanh_layer
    >>> reports = [compare(make_tanh_layer(n, m), np.ones(n), name="tanh(Ax)",
    ...                    hvp=False, budget=0.0) for m in (2, 8) for n in (1, 4, 16)]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "crossover.png")
    ...     crossovers = plot_crossover(reports, path)
    ...     written = os.path.getsize(path) > 0
    >>> sorted(crossovers), written
    ([2, 8], True)
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    by_m = {}
    for r in sorted(reports, key=lambda r: (r.m, r.n)):
        by_m.setdefault(r.m, []).append(r)
    cols = min(len(by_m), 2)
    rows = math.ceil(len(by_m) / cols)
    fig, axes = plt.subplots(rows, cols, squeeze=False,
                             figsize=(6.4, 4.2) if cols == 1 else (5.2 * cols, 4.0 * rows))
    crossovers = {m: _plot_panel(ax, grid) for ax, (m, grid) in zip(axes.flat, by_m.items())}
    for ax in axes.flat[len(by_m):]:
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return crossovers


def _plot_panel(ax, grid):
    """Forward and reverse time against ``n`` at one ``m``; its two crossovers."""
    from .costmodel import jacobian_costs
    ns, m = [r.n for r in grid], grid[0].m
    fwd = [r.mode("fwd").seconds * 1e3 for r in grid]
    rev = [r.mode("rev").seconds * 1e3 for r in grid]
    model = [jacobian_costs(r.cost, r.n, r.m) for r in grid]
    ax.loglog(ns, fwd, "o-", label="forward (jacfwd)")
    ax.loglog(ns, rev, "s-", label="reverse (jacrev)")
    measured = crossover(ns, fwd, rev)
    predicted = crossover(ns, [c["fwd"] for c in model], [c["rev"] for c in model])
    if measured:
        ax.axvline(measured, color="k", label=f"measured crossover n≈{measured:.0f}")
    if predicted:
        ax.axvline(predicted, color="k", ls="--", label=f"cost model n≈{predicted:.0f}")
    ax.axvline(m, color="0.6", ls=":", label=f"n = m = {m}")
    ax.set_xlabel("n (inputs)")
    ax.set_ylabel("Jacobian time (ms)")
    ax.set_title(f"{grid[0].name}: R^n -> R^{m}")
    ax.legend(fontsize=8)
    return measured, predicted


def _write_plot(path, reports):
    """``--plot``: the catalogue's tanh(Ax) grid, or one line on why not."""
    try:
        plot_crossover([r for r in reports if r.name == "tanh(Ax)"], path)
    except ImportError:
        print("dualrev compare: --plot needs matplotlib (pip install 'dualrev[plot]'); "
              "no plot written", file=sys.stderr)
        return
    print(f"plot written to {path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
