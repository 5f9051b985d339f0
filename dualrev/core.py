"""The trace core: traced values, levels, and ``bind``.

Every transformation (forward, reverse) is a *trace* with a ``level`` and a
``process(op, args, params)`` method; its values are :class:`Tracer`
instances. ``bind`` hands an op to the innermost trace among its arguments.
This module knows nothing of any particular op.
"""

import itertools

__all__ = ["Tracer", "bind", "new_level", "close", "NO_PARAMS", "EscapedTracerError"]

#: The params of an op called without any: shared, never mutated.
NO_PARAMS = {}


def bind(op, *args, **params):
    """Apply ``op``: the highest-level trace among ``args`` processes it."""
    trace = None
    for a in args:
        if isinstance(a, Tracer):
            t = a._trace
            if trace is None or t.level > trace.level:
                trace = t
    if trace is None:
        return op.impl(*args, **params)
    return trace.process(op, args, params)


class Tracer:
    """Base of the traced values of every transformation (see numpy_dispatch).

    ``staged`` is true for the values of a staging trace (:mod:`dualrev.staging`):
    they carry no derivative, only a record of how they were computed.
    """

    __slots__ = ("_trace",)
    staged = False


_level_counter = itertools.count(1)


def new_level():
    """A fresh trace level, higher than every level handed out before.

    A transformation that starts inside another one always starts later, so
    its level is higher: ``bind`` lets the innermost transformation process
    an op first, and a tracer only answers to its own level, which keeps
    nested derivatives apart (no perturbation confusion).
    """
    return next(_level_counter)


class EscapedTracerError(TypeError):
    """A traced value was used after its transformation had finished.

    A value computed inside ``grad``, ``jvp``... carries that run's
    derivative; kept outside (a cache, a global) and used after the run, it
    would give a silently wrong derivative, so every op on it raises this.

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> kept = []
    >>> g = dualrev.grad(lambda x: kept.append(x * 7.0) or np.sin(x))(0.0)
    >>> kept[0] + 1.0  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    dualrev.core.EscapedTracerError: add: a traced value of a finished reverse-mode...
    """


def escaped_tracer_message(what):
    return (
        f"a traced value of a finished {what} was used after that transformation "
        "returned: it was stored outside the differentiated function (a cache, a "
        "global, a list or dict in a closure) and reused later. Its derivative "
        "belonged to that finished run, so using it would give a silently wrong "
        "result. Return the value from the function instead (has_aux=True passes "
        "extra outputs through grad), or store dualrev.stop_gradient(value), a "
        "plain value without derivative.")


class ClosedTrace:
    """Mixin of a finished trace (see :func:`close`): any op on its values raises.

    A closed trace keeps its records, so a tape can still be swept (the
    ``vjp_fn`` of :func:`dualrev.vjp`); only new operations on its values fail.
    """

    __slots__ = ()
    closed = True

    def process(self, op, args, params):
        raise EscapedTracerError(f"{op.name}: " + escaped_tracer_message(self.kind))

    def process_one(self, op, args, k):
        return self.process(op, args, params=NO_PARAMS)


def close(trace):
    """Mark ``trace`` finished: its values then raise :class:`EscapedTracerError`
    when an op meets them. The class of the trace is swapped for its closed
    form (``type(trace).Closed``), so the traces that run pay nothing for the
    check; ``trace.closed`` says which it is."""
    trace.__class__ = type(trace).Closed
    return trace


def check_not_escaped(x):
    """Raise :class:`EscapedTracerError` if ``x`` is a value of a closed trace."""
    if isinstance(x, Tracer) and getattr(x._trace, "closed", False):
        raise EscapedTracerError(escaped_tracer_message(x._trace.kind))
