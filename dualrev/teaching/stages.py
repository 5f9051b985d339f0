"""Stages: the tape of a function cut into the steps a person would write.

Each record of a recorded :class:`~dualrev.reverse.Tape` is one stage, except
that ``1 / (1 + np.exp(-y))`` (four primitives) is merged into one sigmoid
gate with the registered sigmoid rule. Also the number formatting shared by
the printing and the checking.
"""

import numpy as np

from ..numpy_dispatch import TracedArray
from ..registry import OPS, Tracer, shape_of


SIGMOID = OPS["expit"]



DISPLAY = {"expit": "sigmoid", "amax": "max", "amin": "min"}



# Local derivative d out / d arg of elementwise ops, in the names of the stage:
# {0}, {1} are the arguments, {o} the output.
LOCAL = {
    "add": ("1", "1"), "subtract": ("1", "-1"), "multiply": ("{1}", "{0}"),
    "divide": ("(1 / {1})", "(-{0} / {1}**2)"),
    "power": ("({1} * {0}**({1} - 1))", "({o} * log({0}))"),
    "negative": ("-1",), "maximum": ("({0} > {1})", "({0} <= {1})"),
    "minimum": ("({0} < {1})", "({0} >= {1})"),
    "exp": ("{o}",), "log": ("(1 / {0})",), "log1p": ("(1 / (1 + {0}))",),
    "expm1": ("({o} + 1)",), "sqrt": ("(0.5 / {o})",), "square": ("(2 * {0})",),
    "reciprocal": ("(-{o}**2)",), "abs": ("sign({0})",), "sin": ("cos({0})",),
    "cos": ("-sin({0})",), "tan": ("(1 + {o}**2)",), "tanh": ("(1 - {o}**2)",),
    "sinh": ("cosh({0})",), "cosh": ("sinh({0})",), "arctan": ("(1 / (1 + {0}**2))",),
    "expit": ("((1 - {o}) * {o})",),
}



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



def is_basic_index(index):
    return isinstance(index, tuple) and all(
        isinstance(i, (int, np.integer, slice)) and not isinstance(i, bool)
        or i is Ellipsis for i in index)



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
        return DISPLAY.get(self.op.name, self.op.name)

    def rule(self, mode, pos):
        return (self.op.vjps if mode == "rev" else self.op.jvps)[pos]

    def elementwise(self, pos):
        """Is the derivative in argument ``pos`` a plain elementwise factor?"""
        op = self.op
        rule = op.vjps[pos]
        known = op.name in LOCAL or getattr(rule, "__name__", "") in (
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
    if records[denom] is None or records[denom][0].name != "add":
        return None
    add_parents = records[denom][4]
    const_pos = 1 - add_parents[0][0] if len(add_parents) == 1 else None
    e = _match(records, uses, pinned, denom, "add", const_pos)
    neg = _match(records, uses, pinned, e, "exp", None)
    return _match(records, uses, pinned, neg, "negative", None)



def find_stages(tape, inputs, pinned):
    """Stages in forward order; merged sigmoid chains become one stage."""
    records = tape.records
    uses = {}
    for r in records:
        for _, p in (r[4] if r is not None else ()):
            uses[p] = uses.get(p, 0) + 1
    stages, absorbed = [], set()
    for i in range(len(records) - 1, -1, -1):
        r = records[i]
        if r is None or i in absorbed:
            continue
        x = _sigmoid_input(records, uses, pinned, i)
        if x is not None:
            chain = records[i][4][0][1]
            absorbed.update({chain, records[chain][4][0][1],
                             records[records[chain][4][0][1]][4][0][1]})
            stage = Stage(i, SIGMOID, [records[x][3] if records[x] else inputs[x]],
                          {}, r[3], [(0, x)],
                          written=constant_text(r[1][0]) + " / (1 + exp(-{0}))")
        else:
            op, vals, params, out, parents = r
            kind = "view" if op.name == "getitem" and is_basic_index(params.get("index")) \
                else "op"
            stage = Stage(i, op, vals, params, out, parents, kind)
        stages.append(stage)
    return stages[::-1]
