"""The README's Python example runs as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks
    for code in blocks:
        namespace = {}
        exec(compile(code, str(README), "exec"), namespace)
    assert namespace["grads"]["W"].shape == (3, 2)
    assert namespace["Hv"].shape == (3, 2)
