"""The documentation builds with warnings as errors, its examples run, and the
figures it measures at build time are on its pages.

The benchmarks page shows the plots of ``benchmarks/plot_results.py`` when
asv results exist and a plot measured during the build when they do not;
both cases are built here, from a small asv result file written by the test
and from an empty results directory (``DUALREV_ASV_RESULTS``).
"""

import json
import os
import pathlib
import re
import struct
import subprocess
import sys
from html import unescape

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("matplotlib")

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
MEASURED_PAGES = ("forward-vs-reverse", "hessian-vector-products", "benchmarks")


def sphinx(builder, out, asv_results=None):
    env = dict(os.environ)
    if asv_results is not None:
        env["DUALREV_ASV_RESULTS"] = str(asv_results)
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-q", "-b", builder, str(DOCS),
         str(out / builder), "-d", str(out / "doctrees")],
        capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out / builder


def images_on(html_dir, page):
    """The PNG files the built ``page`` shows, as (width, height)."""
    html = (html_dir / f"{page}.html").read_text()
    sizes = []
    for src in re.findall(r'<img [^>]*src="([^"]+\.png)"', html):
        data = (html_dir / src).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", src
        sizes.append(struct.unpack(">II", data[16:24]))
    return sizes


def text_of(html_dir, page):
    return " ".join(re.sub(r"<[^>]+>", " ", (html_dir / f"{page}.html").read_text()).split())


def write_asv_result(results_dir):
    """One asv result file holding the benchmarks of two of plot_results.py's plots."""
    run = {
        "commit_hash": "0123abcd" * 5, "date": 1, "result_columns": ["result", "params"],
        "results": {
            "bench_tape.MLPLoss.time_loss": [[0.002], []],
            "bench_tape.MLPLoss.time_grad": [[0.005], []],
            "bench_tape.MLPLoss.time_grad_by_hand": [[0.004], []],
            "bench_tape.TapeOverhead.track_grad_us_per_primitive":
                [[4.0, 6.0], [["'scalar_chain'", "'indexing_loop'"]]],
        },
    }
    machine = results_dir / "testmachine"
    machine.mkdir(parents=True)
    (machine / "0123abcd-python.json").write_text(json.dumps(run))


@pytest.fixture(scope="module")
def html_without_asv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fresh")
    (tmp / "no-results").mkdir()
    return sphinx("html", tmp, asv_results=tmp / "no-results")


@pytest.fixture(scope="module")
def html_with_asv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("asv")
    write_asv_result(tmp / "results")
    return sphinx("html", tmp, asv_results=tmp / "results")


def test_docs_examples_execute(tmp_path):
    out = sphinx("doctest", tmp_path)
    assert " 0 failures in tests" in (out / "output.txt").read_text()


def test_fresh_checkout_builds_without_warnings(html_without_asv):
    assert (html_without_asv / "index.html").exists()


@pytest.mark.parametrize("page", MEASURED_PAGES)
def test_measured_pages_show_one_readable_figure(html_without_asv, page):
    sizes = images_on(html_without_asv, page)
    assert len(sizes) == 1
    width, height = sizes[0]
    assert width >= 500 and height >= 300
    assert "CPUs" in text_of(html_without_asv, page)  # says where it was measured


def test_benchmarks_page_without_asv_results_says_it_measured(html_without_asv):
    text = text_of(html_without_asv, "benchmarks")
    assert "There were no asv results" in text
    assert "measured during the docs build" in text


def test_benchmarks_page_shows_plot_results_of_saved_asv_run(html_with_asv):
    text = text_of(html_with_asv, "benchmarks")
    assert "The plots below are the latest asv results" in text
    assert "commit 0123abcd" in text
    # plot_results.py draws mlp_loss.png and tape_overhead.png from this run
    # and skips the plots whose benchmarks have no result.
    assert len(images_on(html_with_asv, "benchmarks")) == 2


def test_lessons_draw_circuits_and_load_nothing_from_the_network(html_without_asv):
    page = (html_without_asv / "backprop-intuitions.html").read_text()
    assert page.count("<svg") >= 4 and "value above the wire" in page
    for html in html_without_asv.glob("*.html"):
        text = html.read_text().lower()
        assert "mathjax" not in text and "cdn." not in text, html.name


def test_formulas_render_offline_and_unknown_ones_are_refused():
    sys.path.insert(0, str(DOCS))
    try:
        import lesson_tools
    finally:
        sys.path.remove(str(DOCS))
    assert lesson_tools.latex_to_html(r"\partial f / \partial x") == "∂f / ∂x"
    assert lesson_tools.latex_to_html(r"\frac{dL}{dx} = w^T") == "dL/dx = wᵀ"
    with pytest.raises(lesson_tools.UnknownCommand):
        lesson_tools.latex_to_html(r"\begin{bmatrix}1\end{bmatrix}")


def test_a_lesson_code_line_over_88_characters_fails_the_build(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(
        "import sys\nsys.path.insert(0, %r)\nextensions = ['lesson_tools']\n"
        "html_math_renderer = 'unicode'\n" % str(DOCS))
    (src / "backprop-intuitions.rst").write_text(
        "Lesson\n======\n\n::\n\n   " + "x" * 89 + "\n")
    (src / "index.rst").write_text("Index\n=====\n\n.. toctree::\n\n   backprop-intuitions\n")
    result = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html",
                             str(src), str(tmp_path / "out")], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0 and "a code line of 89 characters" in result.stderr


def test_forward_vs_reverse_page_draws_passes_and_states_what_it_measured(
        html_without_asv):
    from dualrev.examples import TANH_GRID_N
    page = (html_without_asv / "forward-vs-reverse.html").read_text()
    # (x + y) z: two forward passes and the reverse sweep; the array input:
    # one forward pass and the reverse sweep.
    assert page.count("<svg") >= 5
    text = unescape(text_of(html_without_asv, "forward-vs-reverse"))
    assert "tangent pass 3 of 3 (forward mode): seed x[2]' = 1" in text
    assert "1 → 200" in text and "200 → 1" in text  # the contrast table
    stated = re.search(rf"On this build \(m = 32, n = {TANH_GRID_N[0]} to "
                       rf"{TANH_GRID_N[-1]}\), the measured times "
                       r"(cross at n ≈ (\d+)|do not cross)", text)
    assert stated, "the page states no measured crossover"
    if stated.group(2):
        assert TANH_GRID_N[0] <= int(stated.group(2)) <= TANH_GRID_N[-1]
    flops = re.search(r"flops alone cross at n ≈ (\d+)", text)
    assert flops and abs(int(flops.group(1)) - 32) <= 4  # n = m, up to interpolation


def test_hvp_page_draws_the_recorded_tape_and_names_the_measured_cheapest_mode(
        html_without_asv):
    from dualrev.hvp import HVP_MODES
    page = (html_without_asv / "hessian-vector-products.html").read_text()
    assert page.count("<svg") >= 2
    text = unescape(text_of(html_without_asv, "hessian-vector-products"))
    stated = re.search(r'the cheapest exact hvp\(f, x, v, mode\) was mode="([a-z-]+)"',
                       text)
    assert stated and HVP_MODES[stated.group(1)].exact
    assert "usually the cheapest" not in text
