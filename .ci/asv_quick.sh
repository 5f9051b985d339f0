#!/usr/bin/env bash
# Run every asv benchmark once (--quick) in the current Python environment,
# without saving results. asv exits non-zero when a benchmark module fails to
# import (1) or a benchmark raises (2); skipped benchmarks (NotImplementedError
# in setup, e.g. a peer library that is not installed) do not fail the run.
# Extra arguments go to `asv run`, e.g. `.ci/asv_quick.sh -b bench_tape`.
set -euo pipefail
cd "$(dirname "$0")/../benchmarks"
asv machine --yes > /dev/null
asv run --python=same --quick --show-stderr --dry-run "$@"
