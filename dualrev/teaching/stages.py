"""Stages: the tape of a function cut into the steps a person would write.

Each record of a recorded :class:`~dualrev.reverse.Tape` is one stage, except
that ``1 / (1 + np.exp(-y))`` (four primitives) is merged into one sigmoid
gate with the registered sigmoid rule. Also the number formatting shared by
the printing and the checking.
"""

from collections.abc import Mapping

import numpy as np

from ..numpy_dispatch import TracedArray
from ..ops.shape import is_basic_index
from ..registry import OPS, Teaching, Tracer, shape_of


SIGMOID = OPS["expit"]


class _TeachingTable(Mapping):
    """Op name -> one field of its :class:`~dualrev.registry.Teaching`, for
    the ops that declare it; read live from the registry."""

    def __init__(self, field):
        self.field = field

    def __getitem__(self, name):
        op = OPS.get(name)
        value = getattr(op.teaching, self.field) if op is not None and op.teaching else None
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self):
        return (name for name, op in list(OPS.items())
                if op.teaching is not None and getattr(op.teaching, self.field) is not None)

    def __len__(self):
        return sum(1 for _ in self)


class _PatternTable(Mapping):
    """Op name -> (reverse-mode gate pattern, forward-mode rule), read live."""

    def __getitem__(self, name):
        op = OPS.get(name)
        if op is None or op.teaching is None or op.teaching.gate is None:
            raise KeyError(name)
        return op.teaching.gate, op.teaching.fwd_gate

    def __iter__(self):
        return iter(_GATE)

    def __len__(self):
        return len(_GATE)


# The teaching text each op declares (defop(teaching=...)), by field.
SHORT = _TeachingTable("short")
DISPLAY = _TeachingTable("display")
INFIX = _TeachingTable("infix")
# Local derivative d out / d arg of elementwise ops, in the names of the stage:
# {0}, {1} are the arguments, {o} the output.
LOCAL = _TeachingTable("local")
# Contributions of ops that are not elementwise: {g} is the upstream gradient
# (reverse mode), {t} the argument's tangent (forward mode).
REV_FORMULA = _TeachingTable("rev")
FWD_FORMULA = _TeachingTable("fwd")
_GATE = _TeachingTable("gate")
PATTERN = _PatternTable()  # op -> (reverse-mode gate pattern, forward-mode rule)


def plain_value(v):
    return v.primal if isinstance(v, TracedArray) else v


def number_text(v, digits=None):
    """A value as text: full precision (round-trip) unless ``digits`` is given."""
    a = np.asarray(plain_value(v))
    if a.dtype == bool:
        a = a.astype(float)
    if a.size > 8:
        return f"<array of shape {a.shape}>"
    if a.ndim == 0:
        x = float(a) + 0.0  # no -0.0
        return repr(x) if digits is None else f"{x:.{digits}g}"
    return "[" + ", ".join(number_text(row, digits) for row in a) + "]"


def constant_text(v):
    """A constant argument as text: ints stay ints, as the user wrote them."""
    v = plain_value(v)
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(int(v))
    return number_text(v)


def index_text(index):
    def one(i):
        if isinstance(i, slice):
            parts = ["" if p is None else str(p) for p in (i.start, i.stop, i.step)]
            return ":".join(parts[:2] if i.step is None else parts)
        return "..." if i is Ellipsis else str(i)
    return "[" + ", ".join(one(i) for i in index) + "]"


class Stage:
    """One named step: a tape record (or a merged sigmoid), or an input."""

    __slots__ = ("index", "op", "vals", "params", "out", "parents", "name",
                 "kind", "written")

    def __init__(self, index, op, vals, params, out, parents, kind="op", written=None):
        self.index = index
        self.op = op
        self.vals = vals
        self.params = params
        self.out = out
        self.parents = parents
        self.kind = kind          # "input", "op" or "view" (x[0]: named after x)
        self.written = written    # how the user wrote a merged stage
        self.name = None

    @property
    def label(self):
        return self.teach("display") or self.op.name

    def teach(self, field):
        """One field of the op's teaching text, or None."""
        teaching = self.op.teaching
        return None if teaching is None else getattr(teaching, field)

    def rule(self, mode, pos):
        return (self.op.vjps if mode == "rev" else self.op.jvps)[pos]

    def elementwise(self, pos):
        """Is the derivative in argument ``pos`` a plain elementwise factor?"""
        op = self.op
        rule = op.vjps[pos]
        known = self.teach("local") is not None or getattr(rule, "__name__", "") in (
            f"{op.name}_vjp", f"{op.name}_vjp_x", f"{op.name}_vjp_y")
        return known and shape_of(self.vals[pos]) == shape_of(self.out)

    def local(self, pos):
        """The local derivative's value, from the op's own VJP rule."""
        ones = np.ones(shape_of(self.out))
        return self.op.vjps[pos](ones[()] if ones.ndim == 0 else ones,
                                 self.out, *self.vals, **self.params)


def _match(records, uses, pinned, i, opname, const_pos):
    """Record ``i`` if it is ``opname`` with the constant 1 at ``const_pos``."""
    if i is None or records[i] is None or i in pinned or uses.get(i, 0) != 1:
        return None
    op, vals, params, out, parents = records[i]
    if op.name != opname or len(parents) != 1:
        return None
    if const_pos is not None:
        c = vals[const_pos]
        if isinstance(c, Tracer) or np.ndim(c) != 0 or c != 1:
            return None
    return parents[0][1]


def _sigmoid_input(records, uses, pinned, i):
    """The tape index of x if record ``i`` ends ``1 / (1 + exp(-x))``, else None."""
    op, vals, params, out, parents = records[i]
    if op.name != "divide" or len(parents) != 1 or parents[0][0] != 1:
        return None
    c = vals[0]
    if isinstance(c, Tracer) or np.ndim(c) != 0 or c != 1:
        return None
    denom = parents[0][1]
    if records[denom] is None or records[denom].op.name != "add":
        return None
    add_parents = records[denom].parents
    const_pos = 1 - add_parents[0][0] if len(add_parents) == 1 else None
    e = _match(records, uses, pinned, denom, "add", const_pos)
    neg = _match(records, uses, pinned, e, "exp", None)
    return _match(records, uses, pinned, neg, "negative", None)


def _only_parent(record):
    """The tape index of the one differentiated argument of ``record``."""
    return record.parents[0][1]


def find_stages(tape, inputs, pinned):
    """Stages in forward order; merged sigmoid chains become one stage."""
    records = [None] * len(tape.records)  # index -> Record, None for an input
    uses = {}
    for i, r in tape.items():
        records[i] = r
        for _, p in r.parents:
            uses[p] = uses.get(p, 0) + 1
    stages, absorbed = [], set()
    for i in range(len(records) - 1, -1, -1):
        r = records[i]
        if r is None or i in absorbed:
            continue
        x = _sigmoid_input(records, uses, pinned, i)
        dot = None if x is not None else _vector_dot(records, uses, pinned, inputs, i)
        if dot is not None:
            op, args, parents, merged = dot
            absorbed.update(merged)
            stage = Stage(i, op, args, {}, r.out, parents)
        elif x is not None:
            add = _only_parent(r)
            exp = _only_parent(records[add])
            absorbed.update({add, exp, _only_parent(records[exp])})
            stage = Stage(i, SIGMOID, [records[x].out if records[x] else inputs[x]],
                          {}, r.out, [(0, x)],
                          written=constant_text(r.args[0]) + " / (1 + exp(-{0}))")
        else:
            op, vals, params, out, parents = r
            kind = "view" if op.name == "getitem" and is_basic_index(params.get("index")) \
                else "op"
            stage = Stage(i, op, vals, params, out, parents, kind)
        stages.append(stage)
    return stages[::-1]


# ---- np.dot of a vector: reshape, matmul, reshape on the tape, one stage here ----

_DOT_TEXT = {  # (ndim of a, ndim of b) -> reverse and forward templates
    (1, 1): (("{g} * {1}", "{g} * {0}"), ("{t} @ {1}", "{0} @ {t}")),
    (2, 1): (("np.outer({g}, {1})", "{0}.T @ {g}"), ("{t} @ {1}", "{0} @ {t}")),
    (1, 2): (("{1} @ {g}", "np.outer({0}, {g})"), ("{t} @ {1}", "{0} @ {t}")),
}


class DotOp:
    """``np.dot(a, b)`` with a vector operand, taught as one gate.

    The tape holds it as reshape, matmul, reshape; the rules chain the three
    records' own rules, so every number still comes from the registry.
    """

    name = "dot"
    differentiable = True

    def __init__(self, matmul_record, shapes):
        self.matmul = matmul_record
        self.shapes = shapes
        rev, fwd = _DOT_TEXT[tuple(len(sh) for sh in shapes)]
        self.teaching = Teaching(
            short="dot", display="np.dot", infix="np.dot({0}, {1})", rev=rev, fwd=fwd,
            gate="dot: each operand's gradient is the other operand times the gradient",
            fwd_gate="dot: a' . b + a . b'")
        self.vjps = (self._vjp(0), self._vjp(1))
        self.jvps = (self._jvp(0), self._jvp(1))

    def _vjp(self, pos):
        m = self.matmul

        def dot_gradient(g, out, *args):
            c = m.op.vjps[pos](np.reshape(g, shape_of(m.out)), m.out, *m.args, **m.params)
            return np.reshape(c, self.shapes[pos])
        return dot_gradient

    def _jvp(self, pos):
        m = self.matmul

        def dot_tangent(t, out, *args):
            t = np.reshape(t, shape_of(m.args[pos]))
            return np.reshape(m.op.jvps[pos](t, m.out, *m.args, **m.params),
                              shape_of(out))
        return dot_tangent


def _vector_operands(matrix_shape, out_shape):
    """Which operands of a 2-D matmul were vectors, from the shape it is
    reshaped to; None when the shapes do not tell."""
    if len(matrix_shape) != 2:
        return None
    lost = len(matrix_shape) - len(out_shape)
    rows, cols = matrix_shape
    if lost == 2:
        return True, True
    if lost == 1 and rows == 1 and cols != 1 and out_shape == (cols,):
        return True, False
    if lost == 1 and cols == 1 and rows != 1 and out_shape == (rows,):
        return False, True
    return None


def _vector_dot(records, uses, pinned, inputs, i):
    """``(DotOp, args, parents)`` if record ``i`` ends ``np.dot`` of a vector."""
    r = records[i]
    if r.op.name != "reshape" or len(r.parents) != 1:
        return None
    m_index = r.parents[0][1]
    m = records[m_index]
    if m is None or m.op.name != "matmul" or m_index in pinned or uses.get(m_index) != 1:
        return None
    vector = _vector_operands(shape_of(m.out), shape_of(r.out))
    if vector is None:
        return None
    args, parents, absorbed = [], [], [m_index]
    for pos in range(2):
        parent = dict(m.parents).get(pos)
        source = records[parent] if parent is not None else None
        if not vector[pos]:
            args.append(m.args[pos])
            if parent is not None:
                parents.append((pos, parent))
        elif parent is None:  # a constant vector, reshaped to a matrix
            args.append(np.reshape(m.args[pos], -1))
        elif source is not None and source.op.name == "reshape" and \
                parent not in pinned and uses.get(parent) == 1 and \
                len(shape_of(source.args[0])) == 1:
            grand = source.parents[0][1]
            args.append(records[grand].out if records[grand] else inputs[grand])
            parents.append((pos, grand))
            absorbed.append(parent)
        else:
            return None
    shapes = tuple(shape_of(a) for a in args)
    if tuple(len(sh) for sh in shapes) not in _DOT_TEXT:
        return None
    return DotOp(m, shapes), args, parents, absorbed
