"""The README's Python example runs as written."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def _blocks():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks
    return blocks


def _needs_dask(code):
    return re.search(r"^\s*(import|from) dask\b", code, re.M) is not None


def _run(blocks):
    """The blocks run in order in one namespace, as a reader runs them."""
    namespace = {}
    for code in blocks:
        exec(compile(code, str(README), "exec"), namespace)
    return namespace


def test_readme_example_runs():
    """Every block but the dask one runs without the optional extra."""
    ns = _run([code for code in _blocks() if not _needs_dask(code)])
    assert ns["grads"]["W"].shape == (3, 2)
    assert ns["Hv"].shape == (3, 2)
    staged = ns["dloss"](ns["params"], ns["x"], ns["y"])
    eager = ns["dualrev"].grad(ns["loss"])(ns["params"], ns["x"], ns["y"])
    assert all(ns["np"].array_equal(staged[k], eager[k]) for k in eager)
    assert ns["res"].success


def test_readme_dask_example_runs():
    """Data larger than memory: the compiled derivative over dask, one task per chunk."""
    blocks = _blocks()
    assert sum(map(_needs_dask, blocks)) == 1
    pytest.importorskip("dask", reason="needs the optional extra dualrev[dask]")
    ns = _run(blocks)
    assert ns["value_and_grad"].programs[0].kind == "chunked"
    X = ns["X"].compute()
    eager = ns["dualrev"].grad(lambda w: ns["np"].mean(ns["np"].logaddexp(0.0, X @ w)))
    ns["np"].testing.assert_allclose(ns["g"], eager(ns["w"]), rtol=1e-12)
