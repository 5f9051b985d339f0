"""examples/out_of_core_logistic.py at a tiny size (the ``dualrev[dask]`` extra).

The example's own check (out-of-core pipeline against the in-memory fit of the
same rows) must pass, its full fit must match a NumPy fit of the same data,
computed here independently, and it must report every worker's peak memory.
"""

import importlib.util
import pathlib

import numpy as np
import pytest

dask = pytest.importorskip("dask", reason="needs the optional extra dualrev[dask]")
pytest.importorskip("dask.array", reason="needs the optional extra dualrev[dask]")
pytest.importorskip("distributed", reason="needs the optional extra dualrev[dask]")

PATH = pathlib.Path(__file__).resolve().parents[1] / "examples" / "out_of_core_logistic.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("out_of_core_logistic", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chunks_are_seeded_and_the_subset_is_the_first_rows(example):
    with dask.config.set(scheduler="synchronous"):
        small = dask.compute(*example.lazy_data(600, 200))
        large = dask.compute(*example.lazy_data(1000, 200))
    np.testing.assert_array_equal(small[0], large[0][:600])
    np.testing.assert_array_equal(small[1], large[1][:600])
    assert set(np.unique(large[1])) == {0.0, 1.0}
    assert not np.array_equal(large[0][:200], large[0][200:400])


def test_rows_must_fill_whole_chunks(example):
    with pytest.raises(ValueError, match="multiple of chunk_rows"):
        example.lazy_data(1000, 300)


def test_example_runs_at_a_tiny_size(example, capsys):
    gap, res, peaks, limit = example.main(
        ["--rows", "4000", "--chunk-rows", "500", "--check-rows", "1000",
         "--workers", "2", "--memory-limit", "300MB"])
    assert gap <= 1e-6
    with dask.config.set(scheduler="synchronous"):
        X, y = dask.compute(*example.lazy_data(4000, 500))
    expected = example.fit(X, y)
    np.testing.assert_allclose(res.x, expected.x, rtol=0, atol=1e-6)
    assert len(peaks) == 2 and all(0 < peak < limit for peak in peaks.values())
    assert "passes over the data" in capsys.readouterr().out
