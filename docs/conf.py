"""Sphinx configuration of the dualrev documentation.

Build: ``sphinx-build -W -b html docs docs/_build/html``; run every example:
``sphinx-build -W -b doctest docs docs/_build/doctest``.
"""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import dualrev  # noqa: E402

project = "dualrev"
author = "the dualrev authors"
copyright = "the dualrev authors"
release = dualrev.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
]

exclude_patterns = ["_build"]
root_doc = "index"
html_theme = "alabaster"
html_static_path = []

# NumPy-style docstrings.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_default_options = {"undoc-members": False}

# Examples are ``.. doctest::`` blocks on the pages; the docstrings' own
# examples are run by ``python -m pytest --doctest-modules dualrev``.
doctest_test_doctest_blocks = ""
doctest_global_setup = """
import numpy as np
import dualrev
"""
