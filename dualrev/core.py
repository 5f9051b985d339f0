"""The trace core: traced values, levels, and ``bind``.

Every transformation (forward, reverse) is a *trace* with a ``level`` and a
``process(op, args, params)`` method; its values are :class:`Tracer`
instances. ``bind`` hands an op to the innermost trace among its arguments.
This module knows nothing of any particular op.
"""

import itertools

__all__ = ["Tracer", "bind", "new_level", "NO_PARAMS"]

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
