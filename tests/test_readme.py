"""The README's Python example runs as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_runs():
    """The Python blocks run in order in one namespace, as a reader runs them."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks
    namespace = {}
    for code in blocks:
        exec(compile(code, str(README), "exec"), namespace)
    assert namespace["grads"]["W"].shape == (3, 2)
    assert namespace["Hv"].shape == (3, 2)
    ns = namespace
    staged = ns["dloss"](ns["params"], ns["x"], ns["y"])
    eager = ns["dualrev"].grad(ns["loss"])(ns["params"], ns["x"], ns["y"])
    assert all(ns["np"].array_equal(staged[k], eager[k]) for k in eager)
    assert ns["res"].success
    # data larger than memory: the compiled derivative over dask, one task per chunk
    assert ns["value_and_grad"].programs[0].kind == "chunked"
    X = ns["X"].compute()
    eager = ns["dualrev"].grad(lambda w: ns["np"].mean(ns["np"].logaddexp(0.0, X @ w)))
    ns["np"].testing.assert_allclose(ns["g"], eager(ns["w"]), rtol=1e-12)
