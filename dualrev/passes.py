"""Rewrites of a staged :class:`~dualrev.staging.Program`, each result-preserving.

Each pass returns a new program and leaves its argument unchanged:

- :func:`remove_identities`: ``x * 1``, ``1 * x``, ``x / 1``, ``x - 0``,
  ``x + (-0.0)`` become ``x`` when the output has ``x``'s shape and dtype
  (the cases that are exact for every ``x``, signed zeros and NaNs included;
  ``x + 0.0`` is not one: it turns ``-0.0`` into ``0.0``).
- :func:`fold_constants`: an equation whose inputs are all immutable
  constants (numbers, NumPy scalars) runs once, now, and becomes a constant.
  Work on constants that the user's Python did outside any traced value
  already ran once, at staging; this pass catches what other passes expose.
- :func:`eliminate_common_subexpressions`: a second equation with the same
  op, inputs and parameters as an earlier one reuses its output.
- :func:`eliminate_dead_code`: equations that no output and no guard needs.

:func:`optimize` runs the first three in one sweep (:func:`rewrite`), then
dead code. Buffer reuse (writing an output
into the buffer of an input that dies there) is the backends' business: it
depends on how values are stored, not on what is computed.
"""

import operator

import numpy as np

from .staging import Const, Equation, Guard, Program, Var

__all__ = ["optimize", "rewrite", "split", "remove_identities", "fold_constants",
           "eliminate_common_subexpressions", "eliminate_dead_code"]

_IMMUTABLE = (int, float, complex, bool, np.generic)


def rewrite(program, rules):
    """One forward sweep over ``program``: each equation, its inputs renamed
    by the rewrites so far, goes to each rule in turn; a rule returns the
    reference (a :class:`Var` or :class:`Const`) the equation's output equals,
    and the equation is dropped, or None to keep it."""
    mapping = {}
    body = []
    for item in program.body:
        if isinstance(item, Equation):
            ins = item.ins
            if mapping and any(r in mapping for r in ins):
                ins = tuple(mapping.get(r, r) for r in ins)
                item = Equation(item.op, ins, item.params, item.out)
            for rule in rules:
                same = rule(item)
                if same is not None:
                    mapping[item.out] = same
                    break
            else:
                body.append(item)
        else:
            target = mapping.get(item.var, item.var)
            if isinstance(target, Const):  # a guard on a constant always holds
                continue
            if target is not item.var:
                item = Guard(target, item.kind, item.expected)
            body.append(item)
    outputs = [mapping.get(r, r) for r in program.outputs]
    return Program(program.inputs, body, outputs)


def _is_const(ref, value):
    return isinstance(ref, Const) and isinstance(ref.value, _IMMUTABLE) \
        and not isinstance(ref.value, (bool, np.bool_)) and ref.value == value


def identity(eqn):
    """``x * 1``, ``x / 1``, ``x - 0``, ``x + (-0.0)`` are ``x`` (same aval)."""
    impl, ins = eqn.op.impl, eqn.ins
    if impl not in _ARITHMETIC or len(ins) != 2 or eqn.params:
        return None
    x, y = ins
    if impl is operator.mul:
        kept = x if _is_const(y, 1) else y if _is_const(x, 1) else None
    elif impl is operator.truediv:
        kept = x if _is_const(y, 1) else None
    elif impl is operator.sub:
        kept = x if _is_const(y, 0) else None
    else:
        negative_zero = [_is_const(r, 0) and np.signbit(r.value) for r in (x, y)]
        kept = x if negative_zero[1] else y if negative_zero[0] else None
    if isinstance(kept, Var) and kept.aval[1:] == eqn.out.aval[1:]:
        return kept
    return None


_ARITHMETIC = {operator.add, operator.sub, operator.mul, operator.truediv}


def constant(eqn):
    """An equation on immutable constants only runs now, once."""
    if eqn.ins and all(isinstance(r, Const) and isinstance(r.value, _IMMUTABLE)
                       for r in eqn.ins):
        return Const(eqn.op.impl(*(r.value for r in eqn.ins), **eqn.params))
    return None


def _frozen(v):
    """A hashable key for a parameter value (slices and arrays included)."""
    if isinstance(v, (tuple, list)):
        return (type(v),) + tuple(_frozen(i) for i in v)
    if isinstance(v, slice):
        return (slice, _frozen(v.start), _frozen(v.stop), _frozen(v.step))
    if isinstance(v, dict):
        return (dict,) + tuple((k, _frozen(v[k])) for k in sorted(v))
    try:
        hash(v)
    except TypeError:
        return ("id", id(v))
    return (type(v), v)


def common_subexpression():
    """A rule that maps an equation to an earlier one with the same op,
    inputs (constants by identity) and parameters."""
    seen = {}

    def rule(eqn):
        key = (eqn.op, eqn.ins, _frozen(eqn.params) if eqn.params else ())
        earlier = seen.get(key)
        if earlier is None:
            seen[key] = eqn.out
        return earlier
    return rule


def remove_identities(program):
    return rewrite(program, [identity])


def fold_constants(program):
    return rewrite(program, [constant])


def eliminate_common_subexpressions(program):
    return rewrite(program, [common_subexpression()])


def eliminate_dead_code(program):
    needed = {r for r in program.outputs if isinstance(r, Var)}
    body = []
    for item in reversed(program.body):
        if isinstance(item, Guard):
            needed.add(item.var)
        elif item.out in needed:
            needed.update(r for r in item.ins if isinstance(r, Var))
        else:
            continue
        body.append(item)
    body.reverse()
    return Program(program.inputs, body, program.outputs)


def optimize(program):
    """Identities, constant folding and common subexpressions in one sweep,
    then dead code."""
    program = rewrite(program, [identity, constant, common_subexpression()])
    return eliminate_dead_code(program)


def split(program, varying):
    """Split ``program`` into the part that depends on the inputs at the
    positions in ``varying`` and the part that does not.

    Returns ``(fixed, varying_part)``: ``fixed`` takes the other inputs and
    returns the values that the varying part reads of it (the residuals);
    ``varying_part`` takes those residuals followed by the varying inputs and
    returns the program's outputs. An HVP operator is this split of
    ``(x, v) -> H(x) v`` in ``v``: everything that only ``x`` determines runs
    once per point, each product runs the rest.
    """
    moving = {program.inputs[k] for k in varying}
    fixed_body, moving_body = [], []
    for item in program.body:
        reads = item.ins if isinstance(item, Equation) else (item.var,)
        if any(r in moving for r in reads):
            if isinstance(item, Equation):
                moving.add(item.out)
            moving_body.append(item)
        else:
            fixed_body.append(item)
    residuals = []
    seen = set()
    for item in moving_body:
        for r in (item.ins if isinstance(item, Equation) else (item.var,)):
            if isinstance(r, Var) and r not in moving and r not in seen:
                seen.add(r)
                residuals.append(r)
    for r in program.outputs:
        if isinstance(r, Var) and r not in moving and r not in seen:
            seen.add(r)
            residuals.append(r)
    fixed_inputs = [v for k, v in enumerate(program.inputs) if k not in varying]
    moving_inputs = [program.inputs[k] for k in varying]
    fixed = eliminate_dead_code(Program(fixed_inputs, fixed_body, residuals))
    return fixed, Program(residuals + moving_inputs, moving_body, program.outputs)
