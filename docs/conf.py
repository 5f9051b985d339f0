"""Sphinx configuration of the dualrev documentation.

Build: ``sphinx-build -W -b html docs docs/_build/html``; run every example:
``sphinx-build -W -b doctest docs docs/_build/doctest``.

Some figures are measured during the build (``.. plot::`` directives calling
``docs/measured_figures.py``); the pages that hold them are read again, and
so measured again, on every build.
"""

import pathlib
import sys

DOCS = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))
sys.path.insert(0, str(DOCS))

import dualrev  # noqa: E402
import measured_figures  # noqa: E402  (sets the Agg backend)

project = "dualrev"
author = "the dualrev authors"
copyright = "the dualrev authors"
release = dualrev.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "matplotlib.sphinxext.plot_directive",
    "lesson_tools",  # circuits drawn at build time, offline formulas, page width
    "measured_figures",  # ".. measured::": text from the figures' own measurements
]

# Formulas as HTML text with Unicode symbols (lesson_tools): no MathJax, no CDN,
# no LaTeX; a formula it cannot show fails the build.
html_math_renderer = "unicode"

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

# Figures measured at build time: one PNG each, at the resolution of the PNGs
# that dualrev's tools write (so those are shown pixel for pixel), no links to
# the plotting code or to other formats.
plot_formats = [("png", measured_figures.PNG_DPI)]
plot_html_show_formats = False
plot_html_show_source_link = False
plot_include_source = False

rst_epilog = f"""
.. |build-machine| replace:: {measured_figures.build_machine()}
.. |benchmark-plots-source| replace:: {measured_figures.benchmark_plots_source()}
"""

#: Pages with figures measured at build time.
MEASURED_PAGES = ("forward-vs-reverse", "hessian-vector-products", "benchmarks")


def _measure_again(app, env, added, changed, removed):
    """Read the measured pages on every build, even when their source is unchanged."""
    return [page for page in MEASURED_PAGES if page in env.found_docs]


def setup(app):
    app.connect("env-get-outdated", _measure_again)
