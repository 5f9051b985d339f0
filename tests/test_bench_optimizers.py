"""The end-to-end optimizer benchmarks: every derivative source solves the same
problem to the same answer, the hand-written least-squares Jacobian is right,
and a missing peer is skipped with a message naming the extra."""

import sys
from pathlib import Path

import numpy as np
import pytest

_BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"
if str(_BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(_BENCH_DIR))

from benchmarks import bench_least_squares as lsq  # noqa: E402
from benchmarks import bench_optimizer_peers as peers  # noqa: E402


def test_hand_written_exp_fit_jacobian_matches_central_differences():
    t, y = lsq.exp_fit_problem(m=50)
    p = np.array([1.2, 0.8, 0.7, 0.3, 0.1])
    h = 1e-6
    columns = [(lsq.residual(p + h * e, t, y) - lsq.residual(p - h * e, t, y)) / (2 * h)
               for e in np.eye(5)]
    np.testing.assert_allclose(lsq.jacobian_by_hand(p, t, y), np.column_stack(columns),
                               rtol=1e-7, atol=1e-9)


def test_missing_peer_is_skipped_naming_the_extra():
    with pytest.raises(NotImplementedError, match=r"pip install dualrev\[peers\]"):
        peers.require_peer("a_peer_that_is_not_installed")


@pytest.mark.parametrize("problem", peers.PROBLEMS)
@pytest.mark.parametrize("source", ["dualrev", "autograd"])
def test_each_source_solves_to_the_hand_written_answer(source, problem):
    if source == "autograd" and problem == "least_squares_exp_fit":
        pytest.skip("autograd's jacobian takes seconds here (one sweep per residual)")
    try:
        result = peers.solver(source, problem)()
    except NotImplementedError as error:
        pytest.skip(str(error))
    floor = peers.solver("by_hand", problem)()
    np.testing.assert_allclose(result.x, floor.x, rtol=1e-6, atol=1e-8)
