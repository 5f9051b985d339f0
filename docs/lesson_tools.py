"""Sphinx helpers of the lessons: circuits drawn at build time, formulas that
need no network, and code that fits a page.

* ``.. circuit::`` runs its content (Python ending in an expression whose
  value is a :class:`dualrev.teaching.Explanation`) and puts the drawing,
  ``Explanation.svg()``, inline in the page: drawn from the code, at build time.
* Formulas (``:math:``, ``.. math::``) are rendered as HTML text with Unicode
  symbols, sub- and superscripts: no MathJax, so no CDN and no LaTeX. A
  command this renderer does not know is a build warning (an error under
  ``-W``): a formula that would need a TeX engine or the network.
* A code line over :data:`WIDTH` characters on a lesson is a build warning.
"""

import html
import re

import numpy as np
from docutils import nodes
from docutils.parsers.rst import Directive, directives
from sphinx.util import logging

import dualrev

WIDTH = 88
#: The lessons: pages whose code lines must fit the page.
LESSONS = ("backprop-intuitions", "forward-vs-reverse", "hessian-vector-products",
           "jacobians")
logger = logging.getLogger(__name__)


# ---- circuits ---------------------------------------------------------------------

class Circuit(Directive):
    """``.. circuit::`` with Python code; its last line is the explanation drawn."""

    has_content = True
    option_spec = {"pass": directives.nonnegative_int, "digits": directives.nonnegative_int}

    def run(self):
        lines = [line for line in self.content if line.strip()]
        namespace = {"np": np, "dualrev": dualrev}
        exec("\n".join(lines[:-1]), namespace)  # the page's own example code
        ex = eval(lines[-1], namespace)
        svg = ex.svg(self.options.get("pass", 0), self.options.get("digits"))
        svg = svg[svg.index("<svg"):]
        return [nodes.raw("", f'<div class="circuit" style="overflow-x:auto">{svg}</div>',
                          format="html")]


# ---- formulas, offline ----------------------------------------------------------------

SYMBOLS = {
    "partial": "∂", "cdot": "·", "times": "×", "in": "∈", "langle": "⟨", "rangle": "⟩",
    "ldots": "…", "cdots": "⋯", "to": "→", "mapsto": "↦", "rightarrow": "→",
    "nabla": "∇", "sum": "∑", "approx": "≈", "le": "≤", "ge": "≥", "leq": "≤",
    "geq": "≥", "ne": "≠", "infty": "∞", "alpha": "α", "beta": "β", "gamma": "γ",
    "delta": "δ", "epsilon": "ε", "lambda": "λ", "mu": "μ", "sigma": "σ", "theta": "θ",
    "pi": "π", "Delta": "Δ", "Sigma": "Σ", "top": "ᵀ",
    "lim": "lim", "max": "max", "min": "min", "cos": "cos", "sin": "sin", "tanh": "tanh",
    "exp": "exp", "log": "log",
    "qquad": "\u2003\u2003", "quad": "\u2003", ",": "\u2009", ";": "\u2005", ":": "\u2005",
    " ": " ", "{": "{", "}": "}", "\\": "<br/>",
    "left": "", "right": "", "Big": "", "big": "", "Bigg": "", "bigg": "",
}
ARGUMENT_COMMANDS = {"mathrm", "operatorname", "text", "mathbf", "mathit", "mathbb",
                     "frac", "dfrac", "tfrac", "bar", "hat", "tilde", "sqrt"}
DOUBLE_STRUCK = {"R": "ℝ", "C": "ℂ", "N": "ℕ", "Z": "ℤ"}
TOKEN = re.compile(r"\\([A-Za-z]+)\s*|\\(.)|([{}^_])|([^\\{}^_]+)")


class UnknownCommand(Exception):
    pass


def _tokens(latex):
    return [(word or char, special, text)
            for word, char, special, text in (m.groups() for m in TOKEN.finditer(latex))]


def _group(tokens, k):
    """The HTML of the argument starting at ``tokens[k]``, and the next index."""
    command, special, text = tokens[k]
    if special == "{":
        depth, j = 1, k + 1
        while depth:
            if tokens[j][1] == "{":
                depth += 1
            elif tokens[j][1] == "}":
                depth -= 1
            j += 1
        return _render(tokens[k + 1:j - 1]), j
    if text is not None:  # one character; the rest stays
        first, rest = text[0], text[1:]
        if rest:
            tokens.insert(k + 1, (None, None, rest))
        return html.escape(first), k + 1
    return _render([tokens[k]]), k + 1


def _render(tokens):
    out, k = [], 0
    tokens = list(tokens)
    while k < len(tokens):
        command, special, text = tokens[k]
        if text is not None:
            out.append(html.escape(text))
            k += 1
        elif special in ("^", "_"):
            arg, k = _group(tokens, k + 1)
            tag = "sup" if special == "^" else "sub"
            out.append("ᵀ" if special == "^" and arg == "T" else f"<{tag}>{arg}</{tag}>")
        elif special in ("{", "}"):
            arg, k = _group(tokens, k) if special == "{" else ("", k + 1)
            out.append(arg)
        elif command in ARGUMENT_COMMANDS:
            arg, k = _group(tokens, k + 1)
            if command in ("frac", "dfrac", "tfrac"):
                den, k = _group(tokens, k)
                out.append(f"{_paren(arg)}/{_paren(den)}")
            elif command == "mathbb":
                out.append(DOUBLE_STRUCK.get(arg, arg))
            elif command == "bar":
                out.append(arg + "\u0304")
            elif command == "hat":
                out.append(arg + "\u0302")
            elif command == "tilde":
                out.append(arg + "\u0303")
            elif command == "sqrt":
                out.append(f"√{_paren(arg)}")
            else:
                out.append(f'<span style="font-style:normal">{arg}</span>')
        elif command in SYMBOLS:
            out.append(SYMBOLS[command])
            k += 1
        else:
            raise UnknownCommand(command)
    return "".join(out)


def _paren(text):
    plain = re.sub(r"<[^>]+>", "", text)
    return text if len(plain) <= 1 or re.fullmatch(r"[\w∂∇·]+", plain) else f"({text})"


def latex_to_html(latex):
    """A formula as HTML text (raises UnknownCommand for what it cannot show)."""
    return _render(_tokens(latex.strip()))


def _math_html(translator, node, block):
    latex = node.astext()
    try:
        body = latex_to_html(latex)
    except UnknownCommand as error:
        logger.warning(f"formula needs LaTeX or the network: unknown command "
                       f"\\{error} in {latex!r}", location=node)
        body = html.escape(latex)
    tag = "div" if block else "span"
    style = "text-align:center;margin:0.8em 0" if block else ""
    translator.body.append(f'<{tag} class="math" style="font-family:serif;'
                           f'font-style:italic;{style}">{body}</{tag}>')
    raise nodes.SkipNode


def visit_inline_math(translator, node):
    _math_html(translator, node, block=False)


def visit_block_math(translator, node):
    _math_html(translator, node, block=True)


# ---- page checks ----------------------------------------------------------------------

def check_code_width(app, doctree, docname):
    """A code line of a lesson wider than the page is a build warning."""
    if docname not in LESSONS:
        return
    for block in doctree.findall(lambda n: isinstance(n, (nodes.literal_block,
                                                          nodes.doctest_block))):
        for line in block.astext().splitlines():
            if len(line) > WIDTH:
                logger.warning(f"a code line of {len(line)} characters (the page holds "
                               f"{WIDTH}): {line[:60]}...", location=block)


def check_no_network(app, pagename, templatename, context, doctree):
    """No page loads a script from the network (a CDN)."""
    for script in context.get("script_files", []):
        if "://" in str(script):
            logger.warning(f"{pagename}: loads {script} from the network")


def setup(app):
    app.add_directive("circuit", Circuit)
    app.add_html_math_renderer("unicode", (visit_inline_math, None),
                               (visit_block_math, None))
    app.connect("doctree-resolved", check_code_width)
    app.connect("html-page-context", check_no_network)
    return {"parallel_read_safe": True}
