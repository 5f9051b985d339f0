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
- :func:`uniform_constants`: a constant array of equal entries in an
  elementwise op becomes a scalar of its dtype (the seed of a sum's gradient).
- :func:`fold_negations`: negations move into constants or cancel, exactly
  (``(-x) * c`` is ``x * (-c)``, ``a + (-b)`` is ``a - b``).
- :func:`eliminate_common_subexpressions`: a second equation with the same
  op, inputs and parameters as an earlier one reuses its output.
- :func:`eliminate_dead_code`: equations that no output and no guard needs.

:func:`optimize` runs the first five in one sweep (:func:`rewrite`), then
dead code. Buffer reuse (writing an output
into the buffer of an input that dies there) is the backends' business: it
depends on how values are stored, not on what is computed.
"""

import operator

import numpy as np

from .lazy import is_lazy
from .registry import OPS as _OPS
from .staging import Const, Equation, Guard, Program, Var

__all__ = ["optimize", "rewrite", "split", "remove_identities", "fold_constants",
           "eliminate_common_subexpressions", "fold_negations", "uniform_constants", "eliminate_dead_code"]

_IMMUTABLE = (int, float, complex, bool, np.generic)


def rewrite(program, rules):
    """One forward sweep over ``program``: each equation, its inputs renamed
    by the rewrites so far, goes to each rule in turn, with the equations
    kept so far by output (``made``). A rule returns None to keep the
    equation, the reference (a :class:`Var` or :class:`Const`) the
    equation's output equals, to drop it, or an equation to put in its place
    (same output)."""
    mapping = {}
    made = {}
    body = []
    for item in program.body:
        if isinstance(item, Equation):
            ins = item.ins
            if mapping and any(r in mapping for r in ins):
                ins = tuple(mapping.get(r, r) for r in ins)
                item = Equation(item.op, ins, item.params, item.out)
            for rule in rules:
                same = rule(item, made)
                if same is None:
                    continue
                if not isinstance(same, Equation):
                    mapping[item.out] = same
                    break
                item = same
            else:
                made[item.out] = item
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


def identity(eqn, made):
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


def constant(eqn, made):
    """An equation on immutable constants only runs now, once (unless it makes
    a dask array: that stays an equation, which runs chunk by chunk)."""
    if eqn.ins and all(isinstance(r, Const) and isinstance(r.value, _IMMUTABLE)
                       for r in eqn.ins):
        value = eqn.op.impl(*(r.value for r in eqn.ins), **eqn.params)
        return None if is_lazy(value) else Const(value)
    return None


def _real_scalar(ref):
    value = getattr(ref, "value", None) if isinstance(ref, Const) else None
    return isinstance(value, (int, float, np.integer, np.floating)) \
        and not isinstance(value, bool)


def _negated_const(eqn):
    """``eqn`` (``x * c``, ``c * x`` or ``x / c``) with ``c`` negated, or None."""
    x, y = eqn.ins
    if _real_scalar(y):
        return (x, Const(-y.value))
    if _real_scalar(x) and eqn.op.impl is operator.mul:
        return (Const(-x.value), y)
    return None


def uniform_constant(eqn, made):
    """An elementwise op's constant array input whose entries are all equal
    (a seed broadcast by ``sum``'s rule, ``2 * ones``) becomes a NumPy scalar
    of its dtype, when the other inputs alone give the output's shape: the
    same values (NumPy scalars promote as arrays do), one pass less over
    memory, and the scalar rules (:func:`negation`) apply. Only where the
    other inputs are in C order: with a scalar, the result would take the
    layout of a transposed input, and a later sum would add in another order."""
    impl = eqn.op.impl
    elementwise = impl in _NEGATABLE if not isinstance(impl, np.ufunc) \
        else impl.signature is None  # not a generalized ufunc (matmul)
    if eqn.params or not elementwise or \
            not all(r.c_order for r in eqn.ins if isinstance(r, Var)):
        return None
    ins = list(eqn.ins)
    changed = False
    for k, r in enumerate(ins):
        if isinstance(r, Const) and isinstance(r.value, np.ndarray) and r.value.size:
            others = [o.aval[1] for o in ins if isinstance(o, Var)]
            others += [np.shape(o.value) for j, o in enumerate(ins)
                       if isinstance(o, Const) and j != k]
            if np.broadcast_shapes(*others) == eqn.out.aval[1] and _uniform(r.value):
                ins[k] = Const(r.value.dtype.type(r.value.flat[0]))
                changed = True
    return Equation(eqn.op, tuple(ins), {}, eqn.out) if changed else None


def _uniform(a):
    return not any(a.strides) or bool(np.all(a == a.flat[0]))


def negation(eqn, made):
    """Negations move into constants or cancel, exactly (IEEE rounding is
    symmetric, and ``a - b`` is ``a + (-b)``): ``-(-x)`` is ``x``; ``(-x) * c``,
    ``-(x * c)`` are ``x * (-c)`` (so too with ``/``); ``a + (-b)`` is ``a - b``
    and ``a - (-b)`` is ``a + b``. Each saves a pass over an array. Floating
    results only: on unsigned integers ``-c`` does not exist."""
    impl, ins = eqn.op.impl, eqn.ins
    if impl not in _NEGATABLE or eqn.params or not _floating(eqn.out):
        return None
    sources = [made.get(r) if isinstance(r, Var) else None for r in ins]
    negated = [s is not None and s.op.impl is operator.neg for s in sources]
    if impl is operator.neg:
        src = sources[0]
        if negated[0]:
            return src.ins[0]
        if src is not None and src.op.impl in (operator.mul, operator.truediv) \
                and not src.params:
            ins = _negated_const(src)
            return None if ins is None else Equation(src.op, ins, {}, eqn.out)
        return None
    if impl in (operator.mul, operator.truediv):
        for k, other in ((0, 1), (1, 0)):
            if negated[k] and _real_scalar(ins[other]) and (k == 0 or impl is operator.mul):
                new = [None, None]
                new[k], new[other] = sources[k].ins[0], Const(-ins[other].value)
                return Equation(eqn.op, tuple(new), {}, eqn.out)
        return None
    if negated[1]:  # a + (-b), a - (-b)
        op = _OPS["subtract"] if impl is operator.add else _OPS["add"]
        return Equation(op, (ins[0], sources[1].ins[0]), {}, eqn.out)
    return None


_NEGATABLE = {operator.neg, operator.mul, operator.truediv, operator.add, operator.sub}


def _floating(var):
    kind, _, dtype = var.aval
    return np.dtype(dtype).kind in "fc" if dtype is not None else kind in (float, complex)


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

    def rule(eqn, made):
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


def uniform_constants(program):
    return rewrite(program, [uniform_constant])


def fold_negations(program):
    return rewrite(program, [negation])


def optimize(program):
    """Uniform constants, identities, negations, constant folding and common
    subexpressions in one sweep, then dead code."""
    program = rewrite(program, [uniform_constant, identity, negation, constant,
                                common_subexpression()])
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
