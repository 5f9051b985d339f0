"""Naming the stages: labels from ``name(...)``, ``f``'s locals, or generated.

``name(value, label)`` inside ``f`` stores a label in a context variable
while :func:`~dualrev.teaching.explain` runs; a profile hook reads ``f``'s
local variables when it returns; stages left unnamed get the op's short name
and a number (``mul1``).
"""

import contextvars
import inspect
import itertools
import linecache
import math
import os
import re
import sys
import traceback

from ..api import as_float
from ..registry import Tracer
from ..reverse import Tape
from ..tree import flatten, unflatten
from .stages import SHORT, Stage, index_text


_LABELS = contextvars.ContextVar("dualrev_explain_labels", default=None)


def name(value, label):
    """Name an intermediate value for :func:`explain`; returns ``value``.

    Outside :func:`explain` this does nothing, so ``f`` runs unchanged under
    every other transformation. Also reachable as ``dualrev.explain.name``.

    Parameters
    ----------
    value : array_like
        A value computed inside the function being explained.
    label : str
        Its name in the trace (``"sigy"`` gives the lines ``sigy = ...`` and
        ``dsigy = ...``).

    Returns
    -------
    value
        The argument, unchanged.

    See Also
    --------
    explain

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> def f(x, y, z):
    ...     return dualrev.explain.name(x + y, "q") * z
    >>> print(dualrev.explain(f, -2.0, 5.0, -4.0).forward_lines[-2])
    q = x + y = 3.0
    """
    labels = _LABELS.get()
    if labels is not None:
        labels.append((value, label))
    return value


def _on_tape(value, tape):
    while isinstance(value, Tracer):
        if value._trace is tape:
            return value.index
        value = getattr(value, "value", None)
    return None


def _run_capturing_locals(f, args):
    """``f(*args)`` and the local variables of its outermost frame at return."""
    code = getattr(inspect.unwrap(f), "__code__", None)
    found = {}

    def hook(frame, event, arg):
        if event == "return" and frame.f_code is code:
            found.clear()
            found.update(frame.f_locals)

    previous = sys.getprofile()
    sys.setprofile(hook if code is not None else previous)
    try:
        out = f(*args)
    except TypeError as error:
        call = _math_call(error)
        if call is None:
            raise
        raise TypeError(
            f"math.{call}() works on plain Python floats only, so it cannot carry a "
            f"derivative: write np.{_NUMPY_NAME.get(call, call)}(...) instead (same "
            "value, and explain can stage it)") from error
    finally:
        sys.setprofile(previous)
    return out, found


_NUMPY_NAME = {"pow": "power", "fabs": "abs", "atan2": "arctan2", "asin": "arcsin",
               "acos": "arccos", "atan": "arctan", "asinh": "arcsinh",
               "acosh": "arccosh", "atanh": "arctanh"}
_MATH_CALL = re.compile(r"\bmath\.(\w+)\s*\(")


def _math_call(error):
    """The ``math`` function that user code called when ``error`` was raised:
    read on its source line, else among the names its code uses."""
    user = [(frame, line) for frame, line in traceback.walk_tb(error.__traceback__)
            if not frame.f_code.co_filename.startswith(_PACKAGE)]
    if not user:
        return None
    frame, lineno = user[-1]
    found = _MATH_CALL.findall(linecache.getline(frame.f_code.co_filename, lineno))
    if found:
        return found[0]
    names = frame.f_code.co_names
    called = [n for n in names if n in _MATH_FUNCTIONS] if "math" in names else []
    return called[0] if len(called) == 1 else None


_MATH_FUNCTIONS = frozenset(n for n in dir(math) if callable(getattr(math, n)))


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _input_names(f, args):
    try:
        params = [p.name for p in inspect.signature(f).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    params += [f"x{k}" for k in range(len(params), len(args))]
    return params[:len(args)]


def record_function(f, args):
    """Run ``f`` on a fresh tape: (tape, input stages, out, labels)."""
    tape = Tape(keep_all=True)
    inputs, traced = [], []
    for pname, arg in zip(_input_names(f, args), args):
        leaves, treedef = flatten(arg)
        nodes = []
        for k, leaf in enumerate(leaves):
            node = tape.input(as_float(leaf, f"argument {pname!r}"))
            stage = Stage(node.index, None, (), {}, node.value, [], "input")
            stage.name = pname if treedef is None else f"{pname}[{k}]"
            inputs.append(stage)
            nodes.append(node)
        traced.append(unflatten(treedef, nodes))
    labelled = []
    token = _LABELS.set(labelled)
    try:
        out, local_vars = _run_capturing_locals(f, traced)
    finally:
        _LABELS.reset(token)
    labels = {}
    for var, value in local_vars.items():
        i = _on_tape(value, tape)
        if i is not None and not var.startswith("_"):
            labels.setdefault(i, var)
    for value, label in labelled:
        i = _on_tape(value, tape)
        if i is not None:
            labels[i] = label
    return tape, inputs, out, labels


def assign_names(stages, inputs, labels, out_index, names):
    by_index = {s.index: s for s in inputs}
    counter = itertools.count(1)
    for s in stages:
        by_index[s.index] = s
        if s.index in labels:
            s.name = labels[s.index]
        elif s.kind == "view" and by_index.get(s.parents[0][1]) is not None:
            s.name = by_index[s.parents[0][1]].name + index_text(s.params["index"])
        elif s.index == out_index:
            s.name = "f"
        else:
            s.name = f"{SHORT.get(s.op.name, s.op.name)}{next(counter)}"
    shown = [s for s in stages if s.kind == "op"]
    if isinstance(names, dict):
        current = {s.name: s for s in inputs + stages}
        unknown = set(names) - set(current)
        if unknown:
            raise ValueError(f"names: {sorted(unknown)} are not in the trace; its "
                             f"names are {list(current)}")
        for old, new in names.items():
            current[old].name = new
    elif names is not None:
        if len(names) > len(shown):
            raise ValueError(f"names: {len(names)} names for {len(shown)} stages")
        for s, new in zip(shown, names):
            if new is not None:
                s.name = new
    _make_unique(inputs + stages)
    return by_index


def _make_unique(stages):
    taken = set()
    for s in stages:
        if s.kind == "view" and s.name in taken:
            continue  # two reads of the same slot x[0] are the same variable
        base, k = s.name, 2
        while s.name in taken:
            s.name, k = f"{base}_{k}", k + 1
        taken.add(s.name)
