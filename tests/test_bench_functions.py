"""benchmarks/benchmarks/bench_functions.py times every spec of the coverage
block of dualrev/testing/op_specs.py: each one sets up and runs once."""

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

SCRIPT = """
import benchmarks.bench_functions as b
from dualrev.testing.op_specs import COVERAGE_SPECS
bench = b.Functions()
for name in bench.params[0]:
    bench.setup(name)
    bench.time_vjp(name)
    bench.time_jvp(name)
print(len(bench.params[0]), sum(spec.differentiable for spec in COVERAGE_SPECS))
"""


def test_every_coverage_spec_is_benchmarked_and_runs():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=BENCHMARKS,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    benchmarked, differentiable = map(int, done.stdout.split())
    assert benchmarked == differentiable > 0
