"""Teaching traces: the staged computation of a function, as written by hand.

cs231n's "Backpropagation, Intuitions" teaches backprop by *staging*: break
``f`` into small named steps, compute them forward, then walk them backward,
one line per local step, ``d<var> += local * upstream``. :func:`explain`
prints exactly that for any NumPy function, read off a recorded
:class:`~dualrev.reverse.Tape`: the values are the tape's records and every
local derivative comes from the registered op's own VJP (or JVP) rule.
:func:`check_backprop` compares a student's hand-written staged gradients with
it and points at the first wrong one.

Naming intermediates, in order of precedence:

1. ``names=``: a list of names for the stages in forward order, or a dict
   renaming generated names (``{"add1": "q"}``);
2. ``dualrev.explain.name(value, "sigy")`` inside ``f`` (returns ``value``,
   and does nothing outside :func:`explain`);
3. the local variable names of ``f`` itself (``sigy = ...`` names a stage
   ``sigy``), found when ``f`` returns;
4. generated names: the op's short name and the stage number (``mul1``).

The stage ``1 / (1 + np.exp(-y))`` (four primitives) is shown as one sigmoid
gate, like ``scipy.special.expit``, with the registered sigmoid rule
``(1 - s) s``; intermediates that are named are never merged.

The package holds one idea per module: :mod:`~dualrev.teaching.stages`
(cutting the tape into stages), :mod:`~dualrev.teaching.naming` (labels and
names), :mod:`~dualrev.teaching.render` (the printed sweeps, DOT and SVG) and
:mod:`~dualrev.teaching.check` (grading hand-written gradients). The functions
are also the top-level ``dualrev.explain`` and ``dualrev.check_backprop``.
"""

from .check import BackpropCheck, Mismatch, check_backprop
from .naming import name
from .render import Contribution, Explanation, explain
from .stages import Stage

__all__ = ["explain", "name", "check_backprop", "Explanation", "BackpropCheck", "Stage",
           "Contribution", "Mismatch"]

explain.name = name
