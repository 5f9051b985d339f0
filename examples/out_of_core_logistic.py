"""L2 logistic regression by Newton-CG on data larger than the cluster's memory.

The data are generated lazily, chunk by chunk: chunk ``i`` of ``X`` and
``y`` comes from ``np.random.default_rng([seed, i])``, so the whole array is
never materialized anywhere, and the first rows are the same whatever the
total size. A ``dask.distributed.LocalCluster`` (worker processes, a memory
limit per worker) runs every pass over the data; the loss is the plain NumPy
one used in memory, and ``dualrev.optimize.minimize`` gives SciPy's Newton-CG
the value, the gradient and the Hessian (its products then read no data) at
each point from one pass: a compiled program, one task per chunk.

1. Check: the same out-of-core pipeline on the first ``--check-rows`` rows
   gives the coefficients (to 1e-6) of the in-memory NumPy fit of those rows.
2. Fit: the full data, by default 4.5 x the total worker memory limit; prints
   the passes over the data, the time and each worker's peak memory (from the
   workers' own system monitor), against its limit.

Run: python examples/out_of_core_logistic.py [--rows N] [--memory-limit 400MB]
"""

import argparse
import time

import numpy as np

from dualrev.optimize import minimize

FEATURES = 20
LAM = 1e-3
OPTIONS = {"xtol": 1e-10}


def chunk_of(block, seed, chunk_rows):
    """Rows ``[X | y]`` of chunk ``block``: standard normal features, 0/1 labels
    of a logistic model, drawn from a generator seeded by ``(seed, block)``."""
    rng = np.random.default_rng([seed, block])
    X = rng.standard_normal((chunk_rows, FEATURES))
    w_true = np.linspace(-1.0, 1.0, FEATURES)
    y = (X @ w_true + rng.logistic(size=chunk_rows) > 0).astype(np.float64)
    return np.column_stack([X, y])


def lazy_data(rows, chunk_rows, seed=0):
    """``(X, y)`` as dask arrays of ``rows`` rows, each chunk generated on demand."""
    import dask.array as da
    if rows % chunk_rows:
        raise ValueError(f"rows ({rows}) must be a multiple of chunk_rows ({chunk_rows})")
    blocks = rows // chunk_rows

    def generate(block_id=None):
        return chunk_of(block_id[0], seed, chunk_rows)
    Xy = da.map_blocks(generate, chunks=((chunk_rows,) * blocks, (FEATURES + 1,)),
                       dtype=np.float64)
    return Xy[:, :FEATURES], Xy[:, FEATURES]


def loss(w, X, y):
    """Mean logistic loss plus (LAM / 2) ||w||^2: plain NumPy, any array type."""
    z = X @ w
    return np.sum(np.logaddexp(0.0, z) - y * z) / X.shape[0] + 0.5 * LAM * np.sum(w * w)


def fit(X, y):
    return minimize(loss, np.zeros(FEATURES), args=(X, y), method="Newton-CG",
                    options=OPTIONS)


def counting_passes(cluster):
    """A scheduler plugin whose ``count`` is the number of graphs ``cluster``'s
    scheduler received: one per ``dask.compute``, one pass over the data."""
    from distributed.diagnostics.plugin import SchedulerPlugin

    class Passes(SchedulerPlugin):
        count = 0

        def update_graph(self, scheduler, **kwargs):
            self.count += 1
    passes = Passes()
    cluster.scheduler.add_plugin(passes)  # the scheduler runs in this process
    return passes


def peak_memory(client):
    """Each worker's peak resident memory, in bytes, from its system monitor."""
    def peak(dask_worker):
        return max(dask_worker.monitor.quantities["memory"])
    return client.run(peak)


def check_against_in_memory(check_rows, chunk_rows):
    """Largest coefficient difference between the out-of-core pipeline on the
    first ``check_rows`` rows and the in-memory NumPy fit of the same rows."""
    import dask
    X, y = lazy_data(check_rows, chunk_rows)
    in_memory = fit(*dask.compute(X, y))
    out_of_core = fit(X, y)
    return np.max(np.abs(out_of_core.x - in_memory.x))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None,
                        help="rows of the full data (default: 4.5 x the total worker "
                             "memory limit)")
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--check-rows", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="400MB", help="per worker")
    opts = parser.parse_args(argv)

    from dask.distributed import Client, LocalCluster
    from dask.utils import format_bytes, parse_bytes
    limit = parse_bytes(opts.memory_limit)
    row_bytes = 8 * (FEATURES + 1)
    rows = opts.rows or -(-int(4.5 * opts.workers * limit) // (row_bytes * opts.chunk_rows)) \
        * opts.chunk_rows

    with LocalCluster(n_workers=opts.workers, threads_per_worker=1, processes=True,
                      memory_limit=opts.memory_limit, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        print(f"LocalCluster: {opts.workers} worker processes, "
              f"{format_bytes(limit)} memory limit each")
        gap = check_against_in_memory(opts.check_rows, opts.chunk_rows)
        print(f"check, {opts.check_rows} rows: out-of-core and in-memory coefficients "
              f"differ by {gap:.1e}")
        X, y = lazy_data(rows, opts.chunk_rows)
        size = rows * row_bytes
        print(f"fit: {rows} x {FEATURES} (+ labels), {format_bytes(size)}, "
              f"{size / (opts.workers * limit):.1f} x the total worker memory limit")
        start = time.perf_counter()
        passes = counting_passes(cluster)
        res = fit(X, y)
        seconds = time.perf_counter() - start
        print(f"Newton-CG: {res.nit} iterations, {res.nfev} values and gradients, "
              f"{res.nhev} Hessian-vector products, {passes.count} passes over the data "
              f"({passes.count / res.nit:.1f} per iteration), {seconds:.1f} s")
        print(f"coefficients: {np.array2string(res.x[:5], precision=4)} ...")
        peaks = peak_memory(client)
        for worker, peak in sorted(peaks.items()):
            print(f"peak memory {worker}: {format_bytes(peak)} "
                  f"({peak / limit:.0%} of its limit)")
    return gap, res, peaks, limit


if __name__ == "__main__":
    main()
