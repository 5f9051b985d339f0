"""Checking a student's staged gradients against :func:`~dualrev.teaching.explain`."""

import collections.abc
import itertools

import numpy as np

from .render import explain, reverse_line
from .stages import number_text, plain_value


class Mismatch:
    """The first wrong gradient: ``name`` in the trace, the student's ``key``,
    ``got``, ``expected``, the expected steps ``lines`` and a ``hint``."""

    __slots__ = ("name", "key", "got", "expected", "lines", "hint")

    def __init__(self, name, key, got, expected, lines, hint):
        self.name, self.key, self.got, self.expected = name, key, got, expected
        self.lines, self.hint = lines, hint

    def __str__(self):
        called = "" if self.key == f"d{self.name}" else f" ({self.key})"
        text = [f"d{self.name}{called} is wrong: you have {number_text(self.got)}, "
                f"expected {number_text(self.expected)}"]
        text += [f"  expected steps: {line}" for line in self.lines]
        if self.hint:
            text.append(f"  hint: {self.hint}")
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



def _student_key(key, known, out_name):
    """The trace name a student's key refers to: dx, grad_x, dfdx or x."""
    for prefix in ("grad_", f"d{out_name}d", "d", ""):
        if key.startswith(prefix) and key[len(prefix):] in known:
            return key[len(prefix):]
    return None



def _close(a, b, rtol, atol):
    a, b = np.asarray(plain_value(a), float), np.asarray(plain_value(b), float)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol))



def _hint(ex, target, got, rtol, atol):
    """Why ``got`` may be wrong: a lost fork, or the wrong upstream gradient."""
    parts = [c for c in ex.contributions if c.target.name == target]
    n = len(parts)
    if 1 < n <= 10:
        for size in range(n - 1, 0, -1):
            for subset in itertools.combinations(range(n), size):
                total = sum(parts[k].value for k in subset)
                if not _close(got, total, rtol, atol):
                    continue
                if subset == tuple(range(n - size, n)):
                    c = parts[n - size]
                    return (f"this is only the last {size} of {n} contributions: the "
                            f"line for '{c.stage.name} = {ex._expression(c.stage)}' "
                            f"sets 'd{target} = ...' where 'd{target} += ...' belongs "
                            f"({target} is used {n} times, and a fork adds the gradients)")
                missing = ", ".join(parts[k].stage.name for k in range(n)
                                    if k not in subset)
                return (f"the contribution through {missing} is missing: a value used "
                        "several times gets the sum of the gradients of every use")
    for c in parts:
        if c.local is None or np.ndim(plain_value(c.local)) != 0:
            continue
        for other, value in ex.adjoints.items():
            if other != c.stage.name and np.ndim(plain_value(value)) == 0 and \
                    _close(got, c.local * value, rtol, atol) and \
                    not _close(value, c.upstream, rtol, atol):
                return (f"the local gradient is right ({ex._local_text(c.stage, c.pos)}"
                        f" = {number_text(c.local)}) but it multiplies d{other} instead of "
                        f"d{c.stage.name}: the upstream gradient of a gate is the "
                        f"gradient of its own output, {c.stage.name}")
    return None



def check_backprop(f, args, manual, *, names=None, rtol=1e-7, atol=1e-12):
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
    names : optional
        As in :func:`explain`.
    rtol, atol : float
        Tolerances of the comparison.

    Returns
    -------
    BackpropCheck
        ``.ok``; ``.first_error`` (None, or the first wrong gradient in the
        order a backward sweep completes them, with the expected value, the
        expected steps and a hint); ``str()`` says it in words.

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
      expected steps: dy = 1 * dq = 1.0 * -4.0 = -4.0
    """
    if not isinstance(manual, collections.abc.Mapping):
        raise TypeError(f"manual must be a mapping from names to your gradients, e.g. "
                        f"{{'dx': ..., 'dq': ...}}, not a {type(manual).__name__}")
    args = args if isinstance(args, tuple) else (args,)
    ex = explain(f, *args, names=names)
    order = [s.name for s in reversed(ex.stages) if s.kind != "input"]
    order += [s.name for s in ex.stages if s.kind == "input"]
    out_name = ex.output.name if ex.output is not None else "f"
    wanted = {}
    for key, value in manual.items():
        target = _student_key(key, set(order), out_name)
        if target is None:
            raise ValueError(f"{key!r} names nothing in the trace; its gradients are "
                             + ", ".join(f"d{n}" for n in dict.fromkeys(order)))
        wanted[target] = (key, value)
    checked = []
    for target in dict.fromkeys(order):
        if target not in wanted:
            continue
        expected = ex.adjoints.get(target, 0.0)
        key, got = wanted[target]
        if not _close(got, expected, rtol, atol):
            lines = [reverse_line(ex, c.stage, c.pos, c.target, c.local, c.upstream,
                               c.value, c.first, 2).split("   # fork")[0]
                     for c in ex.contributions if c.target.name == target]
            return BackpropCheck(checked, Mismatch(
                target, key, got, expected, lines, _hint(ex, target, got, rtol, atol)), ex)
        checked.append(target)
    return BackpropCheck(checked, None, ex)
