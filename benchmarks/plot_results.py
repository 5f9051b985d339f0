"""Turn saved asv results into the PNG plots the docs show.

Run the suite with results saved, then plot (from the repository root)::

    cd benchmarks
    asv machine --yes
    OPENBLAS_NUM_THREADS=1 asv run --python=same --set-commit-hash $(git rev-parse HEAD)
    cd ..
    python benchmarks/plot_results.py                # newest result file
    python benchmarks/plot_results.py --out docs/_static/benchmarks --commit 1a2b3c4

One BLAS thread keeps the numbers stable on a small shared machine (a
threaded BLAS under contention can make a 2 ms matmul take 40 ms).

Plots (each skipped when its benchmark has no result):

``jacobian_crossover.png``  time of ``jacfwd`` and ``jacrev`` against n, per m
``tape_overhead.png``       microseconds per primitive: gradient and plain call
``mlp_loss.png``            MLP loss, its dualrev gradient, the hand-written one
``peers.png``               the same gradients in dualrev, autograd, JAX, PyTorch
``ops.png``                 VJP and JVP time of every primitive

Needs matplotlib (``pip install 'dualrev[plot]'``).
"""

import argparse
import glob
import itertools
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def load_results(results_dir, commit=None):
    """The newest asv result file (or the newest for ``commit``) as
    ``{benchmark: (params, values)}``, values in itertools.product order."""
    files = [f for f in glob.glob(os.path.join(results_dir, "*", "*.json"))
             if os.path.basename(f) != "machine.json"]
    runs = []
    for path in files:
        with open(path) as fh:
            data = json.load(fh)
        if "results" in data and (commit is None or data.get("commit_hash", "").startswith(commit)):
            runs.append(data)
    if not runs:
        sys.exit(f"plot_results: no asv results in {results_dir}"
                 + (f" for commit {commit}" if commit else "")
                 + ": run `asv run --python=same --set-commit-hash $(git rev-parse HEAD)` first")
    data = max(runs, key=lambda d: d.get("date", 0))
    columns = data.get("result_columns", ["result", "params"])
    out = {}
    for name, row in data["results"].items():
        if isinstance(row, dict):
            row = [row.get(c) for c in columns]
        fields = dict(zip(columns, row))
        params = [[_unquote(p) for p in ps] for ps in (fields.get("params") or [])]
        values = fields.get("result")
        if values is None:
            continue
        out[name] = (params, [math.nan if v is None else v for v in values])
    print(f"plot_results: commit {data.get('commit_hash', '?')[:8]}, "
          f"{len(out)} benchmarks", file=sys.stderr)
    return out


def _unquote(p):
    return p[1:-1] if len(p) >= 2 and p[0] == p[-1] and p[0] in "'\"" else p


def table(results, name):
    """``{param tuple: value}`` of one benchmark, or None when it has no result."""
    if name not in results:
        return None
    params, values = results[name]
    keys = list(itertools.product(*params)) if params else [()]
    return dict(zip(keys, values))


def plot_jacobian(results, plt, out):
    t = table(results, "bench_jacobian.JacobianCrossover.time_jacobian")
    if t is None:
        return None
    ns = sorted({int(k[0]) for k in t})
    ms = sorted({int(k[1]) for k in t})
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for color, m in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], ms):
        for mode, style in (("fwd", "o-"), ("rev", "s--")):
            ys = [t.get((str(n), str(m), mode), math.nan) * 1e3 for n in ns]
            ax.loglog(ns, ys, style, color=color, label=f"{mode}, m = {m}")
    ax.set_xlabel("n (inputs)")
    ax.set_ylabel("Jacobian time (ms)")
    ax.set_title("tanh(A x): jacfwd (solid) against jacrev (dashed)")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, plt, out, "jacobian_crossover.png")


def plot_tape(results, plt, out):
    grad = table(results, "bench_tape.TapeOverhead.track_grad_us_per_primitive")
    plain = table(results, "bench_tape.TapeOverhead.track_f_us_per_primitive")
    if grad is None:
        return None
    workloads = [k[0] for k in grad]
    fig, ax = plt.subplots(figsize=(5.4, 3.6))
    xs = range(len(workloads))
    ax.bar([x - 0.2 for x in xs], [grad[(w,)] for w in workloads], 0.4, label="grad")
    if plain is not None:
        ax.bar([x + 0.2 for x in xs], [plain.get((w,), math.nan) for w in workloads], 0.4,
               label="f alone (NumPy)")
    ax.set_xticks(list(xs), workloads)
    ax.set_ylabel("µs per primitive")
    ax.set_title("Tape overhead on tiny ops")
    ax.legend()
    return _save(fig, plt, out, "tape_overhead.png")


def plot_mlp(results, plt, out):
    names = ["time_loss", "time_grad", "time_grad_by_hand"]
    values = [table(results, f"bench_tape.MLPLoss.{n}") for n in names]
    if any(v is None for v in values):
        return None
    fig, ax = plt.subplots(figsize=(5.4, 3.6))
    ax.bar(["loss", "dualrev grad", "hand-written grad"], [v[()] * 1e3 for v in values])
    ax.set_ylabel("ms")
    ax.set_title("MLP loss (batch 128, 784-256-10)")
    return _save(fig, plt, out, "mlp_loss.png")


def plot_peers(results, plt, out):
    t = table(results, "bench_peers.Peers.time_grad")
    if t is None:
        return None
    libraries = list(dict.fromkeys(k[0] for k in t))
    workloads = list(dict.fromkeys(k[1] for k in t))
    width = 0.8 / len(libraries)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, lib in enumerate(libraries):
        ys = [t[(lib, w)] * 1e3 for w in workloads]
        ax.bar([j + (i - (len(libraries) - 1) / 2) * width for j in range(len(workloads))],
               ys, width, label=lib)
    ax.set_xticks(range(len(workloads)), workloads)
    ax.set_yscale("log")
    ax.set_ylabel("gradient time (ms), log scale")
    ax.set_title("One gradient, eager, in each library (missing: not installed)")
    ax.legend(fontsize=8)
    return _save(fig, plt, out, "peers.png")


def plot_ops(results, plt, out):
    vjp = table(results, "bench_ops.Ops.time_vjp")
    jvp = table(results, "bench_ops.Ops.time_jvp")
    if vjp is None or jvp is None:
        return None
    ops = sorted(k[0] for k in vjp)
    fig, ax = plt.subplots(figsize=(6.4, 0.16 * len(ops) + 1))
    ys = range(len(ops))
    ax.barh([y - 0.2 for y in ys], [vjp[(o,)] * 1e6 for o in ops], 0.4, label="VJP")
    ax.barh([y + 0.2 for y in ys], [jvp.get((o,), math.nan) * 1e6 for o in ops], 0.4,
            label="JVP")
    ax.set_yticks(list(ys), ops, fontsize=6)
    ax.set_xlabel("µs (64 elements or 8 x 8)")
    ax.legend()
    return _save(fig, plt, out, "ops.png")


def _save(fig, plt, out, name):
    path = os.path.join(out, name)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=os.path.join(HERE, ".asv", "results"),
                        help="asv results directory (default benchmarks/.asv/results)")
    parser.add_argument("--out", default=os.path.join(HERE, "..", "docs", "_static",
                                                      "benchmarks"),
                        help="where to write the PNGs (default docs/_static/benchmarks)")
    parser.add_argument("--commit", help="plot this commit's results (a hash prefix)")
    args = parser.parse_args(argv)
    try:
        import matplotlib
    except ImportError:
        print("plot_results: needs matplotlib (pip install 'dualrev[plot]')", file=sys.stderr)
        return 1
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    results = load_results(args.results, args.commit)
    os.makedirs(args.out, exist_ok=True)
    written = [p for plot in (plot_jacobian, plot_tape, plot_mlp, plot_peers, plot_ops)
               if (p := plot(results, plt, args.out))]
    for path in written:
        print(os.path.relpath(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
