"""The documentation's examples run: the Sphinx doctest build, warnings as errors."""

import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("sphinx")

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def test_docs_examples_execute(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "doctest", str(DOCS),
         str(tmp_path / "doctest"), "-d", str(tmp_path / "doctrees")],
        capture_output=True, text=True, timeout=300)
    report = (tmp_path / "doctest" / "output.txt")
    summary = report.read_text() if report.exists() else ""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " 0 failures in tests" in summary


def test_docs_build_without_warnings(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", str(DOCS),
         str(tmp_path / "html"), "-d", str(tmp_path / "doctrees")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "html" / "index.html").exists()
