#!/usr/bin/env bash
# Run every asv benchmark once (--quick) in the current Python environment,
# without saving results. asv exits non-zero when a benchmark module fails to
# import (1) or a benchmark raises (2); skipped benchmarks (NotImplementedError
# in setup, e.g. a peer library that is not installed) do not fail the run.
# Extra arguments go to `asv run`, e.g. `.ci/asv_quick.sh -b bench_tape`.
set -euo pipefail
# One BLAS thread: on a small shared machine a threaded BLAS under contention
# makes a 2 ms matmul take 40 ms.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
cd "$(dirname "$0")/../benchmarks"
asv machine --yes > /dev/null
asv run --python=same --quick --show-stderr --dry-run "$@"
