"""The ``dualrev`` command.

``dualrev compare`` differentiates a catalogue of functions (or yours) in
forward and reverse mode, predicts the cheaper mode from the recorded tape,
measures both, and prints up to three tables (the Jacobian; for scalar
functions the gradient eager and compiled; the Hessian-vector product,
unless ``--no-hvp``)::

    dualrev compare                      # the built-in catalogue (seconds)
    dualrev compare --quick              # smaller sizes, shorter timings
    dualrev compare --list               # what the catalogue contains
    dualrev compare --function mymod:f --shape 100
    dualrev compare --json out.json --plot crossover.png

``--function`` takes ``module:name`` (importable from the current directory)
or ``path/to/file.py:name``; ``f`` is called on a seeded standard normal
array of ``--shape`` (comma-separated, e.g. ``10,3``; ``""`` for a scalar).

The Jacobian table: ``fwd passes`` is the number of forward directions
(``n``, pushed together in batched passes), ``rev passes`` the number of
reverse sweeps (``m``, after one recording), ``ops`` and ``flops`` are read
off the tape of ``f`` (see :mod:`dualrev.costmodel` for the model), times
are medians as ratios to one plain evaluation of ``f``, memory is the peak
allocated during one run, ``predicted`` and ``measured`` name the cheaper
mode by the cost model and by the stopwatch, and ``*`` marks a measured
winner that differs from the predicted one. ``compiled`` is the predicted
mode staged by :func:`dualrev.compile`, the time of one replay over one
evaluation of ``f``; ``staging`` the time of its first call (staging,
once) over one evaluation of ``f``.

The gradient table (scalar functions only): ``grad(f)`` as times over one
evaluation of ``f``, ``eager``, ``compiled`` (generated NumPy) and
``compiled-numba`` (with numba installed; ``(fallback)`` when it ran on the
default backend), then ``staging s``, the longest staging in seconds, and
``numba compile s``, numba's compile time in seconds.

The HVP table (scalar functions only): the time over one evaluation of
``f`` of each HVP mode (``fwd-rev, rev-rev, rev-fwd, fd``), the cheaper
exact mode ``predicted`` and ``measured``, and ``compiled`` and
``staging`` as in the Jacobian table, for the predicted HVP mode.

JSON fields (``--json``)
------------------------
``dualrev_version``, ``quick`` (bool), ``dispatch_flops`` (the model
constant), ``total_seconds``, and ``functions``: one object per function with

``name, n, m, ops, flops, f_seconds, predicted, measured, note``
    as in the table (``predicted``/``measured`` are ``"fwd"`` or ``"rev"``);
``jacobian``
    two objects, ``mode`` ``"fwd"`` and ``"rev"``, each with ``passes,
    flops, cost, seconds, time_ratio, peak_bytes, max_abs_diff,
    compiled_ratio, staging_ratio`` (the last two are the table's
    ``compiled`` and ``staging``, measured for the predicted mode only,
    ``null`` for the other);
``hvp``
    the same objects for the HVP modes (``fwd-rev, rev-rev, rev-fwd, fd``)
    of scalar functions, else ``[]`` (``compiled_ratio`` and
    ``staging_ratio`` measured for ``hvp_predicted`` only);
    ``hvp_predicted``, ``hvp_measured``;
``compiled``
    for scalar functions, the gradient ``eager``, ``compiled`` and
    ``compiled-numba`` (with numba installed), each with ``seconds,
    time_ratio, staging_seconds, compile_seconds, max_abs_diff, note``
    (``note`` is ``"fallback"`` when compiled-numba ran on the default
    backend, or the error when the gradient could not be staged);
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

__all__ = ["main", "plot_crossover"]


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
    parser.compare = cmp  # its usage is shown for its own unknown options
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
        0 on success, 2 on a usage error (no command included) or a bad
        ``--function``.

    Examples
    --------
    >>> main(["compare", "--list"])  # doctest: +ELLIPSIS
    trajectory ...
    0
    """
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command != "compare":
        parser.print_help(sys.stderr)
        return 2
    if unknown:
        parser.compare.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.plot and args.function:
        parser.compare.error("--plot draws the catalogue's tanh(Ax) grid; drop --function")
    try:
        if args.json:
            _check_writable(args.json)
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
          "differs from the cost model's; compiled = the predicted mode staged by "
          "dualrev.compile, one replay; staging = its first call (staged once)")
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


def _check_writable(path):
    """Fail before a long run if ``path`` cannot be written."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(folder) \
            or not os.access(path if os.path.exists(path) else folder, os.W_OK):
        raise CommandError(f"--json {path}: cannot write there (no such folder, a "
                           "folder, or no write permission)")


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


def plot_crossover(reports, path, model=False):
    """Plot Jacobian time against ``n`` for forward and reverse mode; save a PNG.

    One panel per number of outputs ``m`` (two panels a row), each with the
    measured times of ``jacfwd`` and ``jacrev``, the measured crossover
    (solid line; see :func:`dualrev.comparison.crossover`: timings within
    noise of each other name no winner), the cost model's (dashed) and
    ``n = m`` (dotted); a panel without a measured crossover says which
    mode was faster. With ``model=True`` each measured panel has, next to it,
    the machine-independent one: the cost model's passes and flops of both
    modes, which cross at ``n = m``, and its cost with the per-call overhead.
    This is the figure of ``dualrev compare --plot``, drawn from the
    catalogue's ``tanh(A x)`` grid.

    Parameters
    ----------
    reports : list of dualrev.comparison.Report
        One function over a grid of input sizes ``n``, at one or more output
        sizes ``m`` (as :func:`dualrev.comparison.compare` returns them).
    path : str or path-like
        Where to write the PNG.
    model : bool
        Add the cost model's panel beside each measured one.

    Returns
    -------
    dict
        ``m -> (measured, model)``: the crossover ``n`` of each panel,
        ``None`` where one mode is cheaper over the whole grid (the
        ``measured`` and ``model`` of :func:`dualrev.comparison.crossovers`).

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If an ``m`` has fewer than two sizes ``n``.

    See Also
    --------
    dualrev.comparison.crossovers : the crossovers drawn.
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

    from .comparison import crossovers
    found = crossovers(reports)
    by_m = {}
    for r in sorted(reports, key=lambda r: (r.m, r.n)):
        by_m.setdefault(r.m, []).append(r)
    panels = [(m, kind) for m in by_m for kind in (("time", "model") if model else ("time",))]
    cols = min(len(panels), 2)
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, squeeze=False,
                             figsize=(6.4, 4.2) if cols == 1 else (5.2 * cols, 4.0 * rows))
    for ax, (m, kind) in zip(axes.flat, panels):
        draw = _plot_panel if kind == "time" else _plot_model_panel
        draw(ax, by_m[m], found[m])
    for ax in axes.flat[len(panels):]:
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return {m: (c.measured, c.model) for m, c in found.items()}


def _mark_crossovers(ax, found, measured=True):
    if measured and found.measured:
        ax.axvline(found.measured, color="k",
                   label=f"measured crossover n≈{found.measured:.0f}")
    if found.model:
        ax.axvline(found.model, color="k", ls="--", label=f"cost model n≈{found.model:.0f}")
    ax.axvline(found.m, color="0.6", ls=":", label=f"n = m = {found.m}")


def _plot_panel(ax, grid, found):
    """Forward and reverse time against ``n`` at one ``m``, and where they cross."""
    ns, m = [r.n for r in grid], found.m
    ax.loglog(ns, [r.mode("fwd").seconds * 1e3 for r in grid], "o-", label="forward (jacfwd)")
    ax.loglog(ns, [r.mode("rev").seconds * 1e3 for r in grid], "s-", label="reverse (jacrev)")
    _mark_crossovers(ax, found)
    if found.measured is None:
        ax.text(0.03, 0.03, found.describe().replace(": ", ":\n", 1), fontsize=8,
                transform=ax.transAxes)
    ax.set_xlabel("n (inputs)")
    ax.set_ylabel("Jacobian time (ms)")
    ax.set_title(f"{grid[0].name}: R^n -> R^{m}, measured")
    ax.legend(fontsize=8, loc="upper left")


def _plot_model_panel(ax, grid, found):
    """The cost model at one ``m``: passes and flops (machine independent)."""
    ns, m = [r.n for r in grid], found.m
    ax.loglog(ns, [r.mode("fwd").flops for r in grid], "o-",
              label="forward flops (n directions)")
    ax.loglog(ns, [r.mode("rev").flops for r in grid], "s-", label=f"reverse flops ({m} sweeps)")
    ax.loglog(ns, [r.mode("fwd").cost for r in grid], "o--", color="C0", alpha=0.5,
              label="forward + per-call cost")
    ax.loglog(ns, [r.mode("rev").cost for r in grid], "s--", color="C1", alpha=0.5,
              label="reverse + per-call cost")
    _mark_crossovers(ax, found, measured=False)
    if found.flops:
        ax.axvline(found.flops, color="C2", ls="-.", label=f"flops cross n≈{found.flops:.0f}")
    ax.set_xlabel("n (inputs)")
    ax.set_ylabel("model flops (flop-equivalents)")
    ax.set_title(f"R^n -> R^{m}: cost model (no clock)")
    ax.legend(fontsize=7, loc="upper left")


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
