"""Checking a student's staged gradients against :func:`~dualrev.teaching.explain`."""

import collections.abc
import itertools
import re
import textwrap

import numpy as np

from .render import WIDTH, explain, fit, reverse_line
from .stages import number_text, plain_value


class Mismatch:
    """The first wrong gradient: ``name`` in the trace, the student's ``key``,
    ``got``, ``expected``, the expected steps ``lines`` and the ``hints``
    (each a fact about ``got``; ``hint`` joins them)."""

    __slots__ = ("name", "key", "got", "expected", "lines", "hints")

    def __init__(self, name, key, got, expected, lines, hints):
        self.name, self.key, self.got, self.expected = name, key, got, expected
        self.lines, self.hints = lines, hints

    @property
    def hint(self):
        return " / ".join(self.hints) if self.hints else None

    def __str__(self):
        called = "" if self.key == f"d{self.name}" else f" ({self.key})"
        text = fit(f"d{self.name}{called} is wrong: you have {_text(self.got)}, "
                   f"expected {_text(self.expected)}")
        for line in self.lines:
            text += fit(f"  expected: {line}")
        for hint in self.hints:
            text += textwrap.wrap("hint: " + hint, WIDTH, initial_indent="  ",
                                  subsequent_indent="    ", break_long_words=False)
        return "\n".join(text)


class BackpropCheck:
    """Result of :func:`check_backprop`: ``ok``, ``first_error``, ``checked``."""

    def __init__(self, checked, first_error, explanation):
        self.checked = checked
        self.first_error = first_error
        self.explanation = explanation

    @property
    def ok(self):
        return self.first_error is None

    def __bool__(self):
        return self.ok

    def __str__(self):
        if self.ok:
            return (f"all {len(self.checked)} gradients match: "
                    + ", ".join(f"d{n}" for n in self.checked))
        return str(self.first_error)

    __repr__ = __str__



def _text(v):
    return number_text(v, 6) if np.size(plain_value(v)) > 1 else number_text(v)


def _student_key(key, known, out_name):
    """The trace name a student's key refers to: dx, grad_x, dfdx or x."""
    for prefix in ("grad_", f"d{out_name}d", "d", ""):
        if key.startswith(prefix) and key[len(prefix):] in known:
            return key[len(prefix):]
    return None


def _array(v):
    return np.asarray(plain_value(v), dtype=float)


def _close(a, b, rtol, atol):
    a, b = _array(a), _array(b)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol))


def _zero(v, atol):
    return bool(np.all(np.abs(_array(v)) <= atol))


def _fork_hint(ex, target, parts, got, tol):
    """A lost ``+=``: ``got`` is the sum of some of the contributions only."""
    n = len(parts)
    if not 1 < n <= 10:
        return None
    for size in range(n - 1, 0, -1):
        for subset in itertools.combinations(range(n), size):
            left_out = [parts[k] for k in range(n) if k not in subset]
            if all(_zero(c.value, tol[1]) for c in left_out) or \
                    not _close(got, sum(parts[k].value for k in subset), *tol):
                continue
            if subset == tuple(range(n - size, n)):
                c = parts[n - size]
                return (f"this is only the last {size} of {n} contributions: the line "
                        f"for '{c.stage.name} = {ex._expression(c.stage)}' sets "
                        f"'d{target} = ...' where 'd{target} += ...' belongs ({target} "
                        f"is used {n} times, and a fork adds the gradients)")
            missing = ", ".join(c.stage.name for c in left_out)
            return (f"the contribution through {missing} is missing: a value used "
                    "several times gets the sum of the gradients of every use")
    return None


def _term_hints(ex, c, term, tol):
    """Facts about ``term``, the student's version of contribution ``c``."""
    if _close(term, c.value, *tol):
        return []
    hints = []
    up = f"d{c.stage.name}"
    if not _zero(c.value, tol[1]) and _close(term, -c.value, *tol):
        hints.append("it has the right size but the wrong sign: a minus sign is lost "
                     f"or added (the step is {_formula_of(ex, c)})")
    if c.local is not None:
        local_text = ex._local_text(c.stage, c.pos)
        if _close(term, c.local, *tol) and not _close(c.upstream, 1.0, *tol):
            hints.append(f"it is the local gradient alone ({local_text} = "
                         f"{_text(c.local)}): multiply it by the upstream gradient "
                         f"{up} = {_text(c.upstream)}")
        if _close(term, c.upstream, *tol) and not _close(np.abs(_array(c.local)), 1.0,
                                                          *tol):
            hints.append(f"it is the upstream gradient {up} alone: multiply it by the "
                         f"local gradient {local_text} = {_text(c.local)}")
        hints += _swapped_local(ex, c, term, tol)
        hints += _wrong_upstream(ex, c, term, tol)
    elif c.stage.op.name in ("matmul", "dot"):
        hints += _matmul_hints(ex, c, term, tol)
    return hints


def _formula_of(ex, c):
    """The step of ``c`` as a formula, ``dx = y * dq``."""
    lhs = f"d{c.target.name} {'=' if c.first else '+='}"
    up = f"d{c.stage.name}"
    if c.local is not None:
        return f"{lhs} {ex._local_text(c.stage, c.pos)} * {up}"
    return f"{lhs} {ex._formula(c.stage, c.pos, up)}"


def _swapped_local(ex, c, term, tol):
    """The other input's local gradient times the right upstream gradient."""
    s = c.stage
    hints = []
    for q in range(len(s.vals)):
        if q == c.pos or not s.elementwise(q):
            continue
        other = s.local(q) * c.upstream
        if _close(term, other, *tol) and not _close(np.abs(_array(other)),
                                                    np.abs(_array(c.value)), *tol):
            pattern = s.teach("gate") or f"{s.label}: local gradient"
            hints.append(f"it is the contribution of the other input, {ex._arg(s, q)} "
                         f"({ex._local_text(s, q)} * d{s.name}); {pattern}")
    return hints


def _wrong_upstream(ex, c, term, tol):
    """The right local gradient times the gradient of another stage."""
    found = []
    for other, value in ex.adjoints.items():
        if other in (c.target.name, c.stage.name) or _zero(value, tol[1]) or \
                _close(value, 1.0, *tol) or \
                np.shape(plain_value(value)) != np.shape(plain_value(c.upstream)) or \
                _close(value, c.upstream, *tol):
            continue
        if _close(term, c.local * value, *tol):
            found.append(other)
    if len(found) != 1:
        return []
    return [f"the local gradient is right ({ex._local_text(c.stage, c.pos)} = "
            f"{_text(c.local)}) but it multiplies d{found[0]} instead of d{c.stage.name}: "
            f"the upstream gradient of a gate is the gradient of its own output, "
            f"{c.stage.name}"]


def _matmul_hints(ex, c, term, tol):
    """A matrix product with the wrong transposes, or a transposed result."""
    s = c.stage
    other_pos = 1 - c.pos
    operand = (ex._arg(s, other_pos), _array(s.vals[other_pos]))
    upstream = (f"d{s.name}", _array(c.upstream))
    term = _array(term)
    if operand[1].ndim != 2 or upstream[1].ndim != 2:
        return []
    named = []
    for (n1, m1), (n2, m2) in ((upstream, operand), (operand, upstream)):
        for t1, t2 in itertools.product(("", ".T"), repeat=2):
            a, b = (m1.T if t1 else m1), (m2.T if t2 else m2)
            if a.shape[1] == b.shape[0]:
                named.append((f"{n1}{t1} @ {n2}{t2}", a @ b))
    right = _formula_of(ex, c).split(" = ", 1)[-1]
    shape = np.shape(plain_value(c.value))
    for text, value in named:
        if _close(term, value, *tol):
            transposed = " (the transpose of the right one)" if \
                _close(term.T, c.value, *tol) else ""
            return [f"your value is {text}{transposed}; the product is {right}: "
                    f"d{c.target.name} has the shape of {c.target.name}, {shape}, and "
                    f"the shapes tell which factor is transposed"]
    return []


def _location_hint(got, expected):
    """Where an array answer is furthest off."""
    got, expected = _array(got), _array(expected)
    if got.shape != expected.shape:
        transposed = " (the transpose's shape)" if got.shape == expected.T.shape else ""
        return (f"your array has shape {got.shape}{transposed}; the gradient has the "
                f"shape of its variable, {expected.shape}")
    if got.ndim == 0:
        return None
    diff = np.abs(got - expected)
    where = np.unravel_index(int(np.argmax(diff)), diff.shape)
    index = "[" + ", ".join(str(int(k)) for k in where) + "]"
    return (f"the largest difference is {number_text(diff[where], 6)}, at index {index} "
            f"(you have {number_text(got[where], 6)}, expected "
            f"{number_text(expected[where], 6)}); {int(np.sum(diff > 0))} of {diff.size} "
            "entries differ")


def _hints(ex, target, got, expected, tol):
    """Facts about a wrong ``got``: only those that its numbers establish."""
    location = _location_hint(got, expected)
    parts = [c for c in ex.contributions if c.target.name == target]
    if _array(got).shape != _array(expected).shape:
        facts = _term_hints(ex, parts[0], got, tol) if len(parts) == 1 else []
        return facts + [location]
    fork = _fork_hint(ex, target, parts, got, tol)
    hints = [fork] if fork else []
    if not fork and len(parts) == 1:
        hints = _term_hints(ex, parts[0], got, tol)
    elif not fork and parts:
        total = sum(c.value for c in parts)
        found = []
        for c in parts:
            term = _array(got) - _array(total - c.value)
            facts = _term_hints(ex, c, term, tol)
            if facts:
                found.append((c, term, facts))
        if len(found) == 1:
            c, term, facts = found[0]
            hints = [f"the other contributions are right; the one through "
                     f"'{c.stage.name} = {ex._expression(c.stage)}' "
                     f"({_formula_of(ex, c)}) should be {_text(c.value)}, yours is "
                     f"{_text(term)}: " + facts[0]] + facts[1:]
    return hints + ([location] if location else [])


def _completion_order(ex):
    """Names in the order the backward sweep completes their gradients."""
    last = {}
    for k, c in enumerate(ex.contributions):
        last[c.target.name] = k
    out = [ex.output.name] if ex.output is not None else []
    return out + sorted((n for n in last if n not in out), key=last.get) + \
        [s.name for s in ex.stages if s.name not in last and s.name not in out]


_LEAF = re.compile(r"^(.+)\[(\d+)\]$")


def _list_inputs(ex):
    """Arguments passed as lists: name -> the names of their elements."""
    groups = {}
    for s in ex.stages:
        m = _LEAF.match(s.name) if s.kind == "input" else None
        if m:
            groups.setdefault(m.group(1), []).append(s.name)
    return groups


def check_backprop(f, args, manual, *, names=None, seed=None, rtol=1e-7, atol=1e-12):
    """Check hand-written staged gradients against the tape, in backward order.

    Parameters
    ----------
    f : callable
        The function, written in stages (its local variable names, or
        :func:`dualrev.explain.name <name>`, name the intermediates).
    args : tuple
        The point (a single non-tuple value is taken as one argument).
    manual : mapping
        The student's gradients, name -> value; keys may be ``"dx"``,
        ``"grad_x"``, ``"dfdx"`` (``f`` the output's name) or ``"x"``, for
        inputs and intermediates alike.
        A list argument (``w = [2, -3, -3]``, as the notes write it) may be
        checked whole (``"dw": [...]``) or by element (``"dw[0]"``).
    names : optional
        As in :func:`explain`.
    seed : array_like, optional
        The upstream gradient of the output (the notes' "gradient on D from
        above"); default 1 for a scalar output.
    rtol, atol : float
        Tolerances of the comparison.

    Returns
    -------
    BackpropCheck
        ``.ok``; ``.first_error`` (None, or the first wrong gradient in the
        order a backward sweep completes them, with the expected value, the
        expected steps and hints); ``str()`` says it in words. A hint is
        only given when the numbers establish it: a lost ``+=``, a missing
        contribution, which ``+=`` term is wrong, a lost sign, a local
        gradient without its upstream gradient (or the reverse), the other
        input's local gradient, another stage's gradient as the upstream one,
        a matrix product with the wrong transposes, and, for arrays, the
        largest difference and where it is.

    Raises
    ------
    ValueError
        If a key names nothing in the trace (the message lists the names).

    See Also
    --------
    explain

    Examples
    --------
    >>> import dualrev
    >>> def f(x, y, z):
    ...     q = x + y
    ...     return q * z
    >>> print(dualrev.check_backprop(f, (-2.0, 5.0, -4.0),
    ...                              {"dq": -4.0, "dz": 3.0, "dx": -4.0, "dy": 4.0}))
    dy is wrong: you have 4.0, expected -4.0
      expected: dy = 1 * dq = 1.0 * -4.0 = -4.0
      hint: it has the right size but the wrong sign: a minus sign is lost or added (the
        step is dy = 1 * dq)
    """
    if not isinstance(manual, collections.abc.Mapping):
        raise TypeError(f"manual must be a mapping from names to your gradients, e.g. "
                        f"{{'dx': ..., 'dq': ...}}, not a {type(manual).__name__}")
    args = args if isinstance(args, tuple) else (args,)
    ex = explain(f, *args, names=names, seed=seed)
    order = _completion_order(ex)
    groups = _list_inputs(ex)
    position = {n: k for k, n in enumerate(order)}
    for group, leaves in groups.items():
        position[group] = max(position[leaf] for leaf in leaves)
    out_name = ex.output.name if ex.output is not None else "f"
    wanted = {}
    for key, value in manual.items():
        target = _student_key(key, set(position), out_name)
        if target is None:
            raise ValueError(f"{key!r} names nothing in the trace; its gradients are "
                             + ", ".join(f"d{n}" for n in position))
        wanted[target] = (key, value)
    tol = (rtol, atol)
    checked = []
    for target in sorted(wanted, key=position.get):
        key, got = wanted[target]
        leaves = groups.get(target, [target])
        expected = np.array([_array(ex.adjoints.get(n, 0.0)) for n in leaves]) \
            if target in groups else ex.adjoints.get(target, 0.0)
        if not _close(got, expected, *tol):
            lines = [reverse_line(ex, c.stage, c.pos, c.target, c.local, c.upstream,
                                  c.value, c.first)
                     for c in ex.contributions if c.target.name in leaves]
            hints = [] if target in groups else _hints(ex, target, got, expected, tol)
            if target in groups:
                hints = [h for h in [_location_hint(got, expected)] if h]
            return BackpropCheck(checked, Mismatch(target, key, got, expected, lines,
                                                   hints), ex)
        checked.append(target)
    return BackpropCheck(checked, None, ex)
