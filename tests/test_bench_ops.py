"""benchmarks/benchmarks/bench_ops.py refuses to import when a registered op
has no spec to benchmark it with, differentiable or not."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

IMPORT = "import benchmarks.bench_ops as b; print(len(b.Ops.params[0]), len(b.NondiffOps.params[0]))"

REGISTER = {
    "differentiable": "dualrev.defunary('zz_unbenchmarked', np.sin, lambda x, out: np.cos(x))",
    "non-differentiable": "dualrev.defnondiff('zz_unbenchmarked', np.floor)",
}


def _import_bench_ops(register=""):
    script = f"import numpy as np, dualrev\n{register}\n{IMPORT}"
    return subprocess.run([sys.executable, "-c", script], cwd=BENCHMARKS,
                          capture_output=True, text=True)


def test_every_registered_op_has_a_benchmark():
    done = _import_bench_ops()
    assert done.returncode == 0, done.stderr
    n_diff, n_nondiff = map(int, done.stdout.split())
    assert n_diff > 0 and n_nondiff > 0


@pytest.mark.parametrize("kind", sorted(REGISTER))
def test_an_op_without_a_spec_fails_the_import(kind):
    done = _import_bench_ops(REGISTER[kind])
    assert done.returncode != 0
    assert "RuntimeError" in done.stderr and "zz_unbenchmarked" in done.stderr
