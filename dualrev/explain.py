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
"""

import contextvars
import inspect
import itertools
import shutil
import subprocess
import sys
from collections.abc import Mapping

import numpy as np

from .api import as_float
from .numpy_dispatch import TracedArray
from .ops.shape import is_basic_index
from .registry import OPS, Tracer, shape_of
from .reverse import Tape
from .tree import flatten, unflatten

__all__ = ["explain", "name", "check_backprop", "Explanation", "BackpropCheck"]

_LABELS = contextvars.ContextVar("dualrev_explain_labels", default=None)

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


# ---- formatting ------------------------------------------------------------------

def _plain(v):
    return v.primal if isinstance(v, TracedArray) else v


def _num(v, digits=None):
    """A value as text: full precision (round-trip) unless ``digits`` is given."""
    a = np.asarray(_plain(v))
    if a.dtype == bool:
        a = a.astype(float)
    if a.size > 8:
        return f"<array of shape {a.shape}>"
    if a.ndim == 0:
        x = float(a) + 0.0  # no -0.0
        return repr(x) if digits is None else f"{x:.{digits}g}"
    return "[" + ", ".join(_num(row, digits) for row in a) + "]"


def _const(v):
    """A constant argument as text: ints stay ints, as the user wrote them."""
    v = _plain(v)
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(int(v))
    return _num(v)


def _index_text(index):
    def one(i):
        if isinstance(i, slice):
            parts = ["" if p is None else str(p) for p in (i.start, i.stop, i.step)]
            return ":".join(parts[:2] if i.step is None else parts)
        return "..." if i is Ellipsis else str(i)
    return "[" + ", ".join(one(i) for i in index) + "]"


# ---- stages --------------------------------------------------------------------

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


def _stages(tape, inputs, pinned):
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
        if x is not None:
            add = _only_parent(r)
            exp = _only_parent(records[add])
            absorbed.update({add, exp, _only_parent(records[exp])})
            stage = Stage(i, SIGMOID, [records[x].out if records[x] else inputs[x]],
                          {}, r.out, [(0, x)],
                          written=_const(r.args[0]) + " / (1 + exp(-{0}))")
        else:
            op, vals, params, out, parents = r
            kind = "view" if op.name == "getitem" and is_basic_index(params.get("index")) \
                else "op"
            stage = Stage(i, op, vals, params, out, parents, kind)
        stages.append(stage)
    return stages[::-1]


# ---- recording and naming --------------------------------------------------------

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
    finally:
        sys.setprofile(previous)
    return out, found


def _input_names(f, args):
    try:
        params = [p.name for p in inspect.signature(f).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    params += [f"x{k}" for k in range(len(params), len(args))]
    return params[:len(args)]


def _record_explained(f, args):
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


def _assign_names(stages, inputs, labels, out_index, names):
    by_index = {s.index: s for s in inputs}
    counter = itertools.count(1)
    for s in stages:
        by_index[s.index] = s
        if s.index in labels:
            s.name = labels[s.index]
        elif s.kind == "view" and by_index.get(s.parents[0][1]) is not None:
            s.name = by_index[s.parents[0][1]].name + _index_text(s.params["index"])
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


# ---- the explanation -------------------------------------------------------------

class Contribution:
    """One local step: ``target`` receives ``value`` through ``stage``."""

    __slots__ = ("stage", "pos", "target", "local", "upstream", "value", "first")

    def __init__(self, stage, pos, target, local, upstream, value, first):
        self.stage, self.pos, self.target = stage, pos, target
        self.local, self.upstream, self.value, self.first = local, upstream, value, first


class Explanation:
    """The staged computation of one function at one point.

    ``str()`` gives the forward pass and the backward (or tangent) pass, one
    line per local step. Attributes: ``value`` (the output), ``mode``,
    ``stages`` (inputs first, then the steps in forward order),
    ``gradients`` (input name -> gradient, reverse mode), ``adjoints``
    (every name -> its total gradient, reverse mode), ``tangents`` (one dict
    name -> tangent per forward pass), ``contributions`` and the text parts
    ``forward_lines`` and ``backward_lines``.
    """

    def __init__(self, mode, value, stages, by_index, output, forward_lines):
        self.mode = mode
        self.value = value
        self.stages = stages
        self._by_index = by_index
        self.output = output
        self.forward_lines = forward_lines
        self.backward_lines = []
        self.contributions = []
        self.adjoints = {}
        self.gradients = {}
        self.tangents = []
        self._edges = {}

    def __str__(self):
        head = ("forward pass (values, left to right)" if self.mode == "rev"
                else "primal values, left to right")
        return "\n".join([head] + ["  " + s for s in self.forward_lines] + [""]
                         + self.backward_lines)

    __repr__ = __str__

    def to_dot(self):
        """The graph in Graphviz DOT: values, and gradients or tangents, on the nodes.

        Edges carry what flows along them in the derivative pass: the
        gradient contribution (reverse mode, drawn right to left) or the
        tangent term (forward mode).
        """
        total = self.adjoints if self.mode == "rev" else (
            self.tangents[0] if self.tangents else {})
        mark = "d{}" if self.mode == "rev" else "{}'"
        lines = ["digraph explain {", "  rankdir=LR;",
                 '  node [shape=box, fontname="monospace"];']
        for s in self.stages:
            text = s.name if s.kind != "op" else f"{s.name} = {self._expression(s)}"
            label = [text, f"value {_num(s.out, 6)}"]
            if s.name in total:
                label.append(f"{mark.format(s.name)} = {_num(total[s.name], 6)}")
            shape = ", shape=ellipse" if s.kind == "input" else ""
            lines.append(f'  n{s.index} [label="{_dot_escape(label)}"{shape}];')
        for s in self.stages:
            for pos, p in s.parents:
                flow = self._edges.get((s.index, pos))
                extra = "" if flow is None else \
                    f' [label="{_dot_escape([_num(flow, 4)])}", fontcolor=red]'
                lines.append(f"  n{p} -> n{s.index}{extra};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_svg(self, path):
        """Render :meth:`to_dot` to an SVG file with Graphviz's ``dot`` program.

        Raises
        ------
        RuntimeError
            If the ``dot`` program is not installed, saying how to get it.
        """
        dot = shutil.which("dot")
        if dot is None:
            raise RuntimeError(
                "Graphviz's `dot` program was not found on PATH, so no SVG can be "
                "drawn. Install Graphviz (apt-get install graphviz, brew install "
                "graphviz, conda install graphviz), or paste the text of "
                ".to_dot() into any Graphviz viewer.")
        subprocess.run([dot, "-Tsvg", "-o", str(path)], input=self.to_dot(),
                       text=True, check=True, capture_output=True)
        return path

    # ---- text helpers ----
    def _arg(self, s, pos):
        for q, p in s.parents:
            if q == pos:
                return self._by_index[p].name
        return _const(s.vals[pos])

    def _args(self, s):
        return [self._arg(s, k) for k in range(len(s.vals))]

    def _expression(self, s):
        args = self._args(s)
        template = INFIX.get(s.op.name)
        if s.op.name == "getitem":
            return args[0] + _index_text(s.params["index"]) if is_basic_index(
                s.params["index"]) else f"{args[0]}[...]"
        if template is not None and len(args) == template.count("{"):
            return template.format(*args)
        extra = [f"{k}={v!r}" for k, v in s.params.items() if v not in (None, False)]
        return f"{s.label}({', '.join(args + extra)})"

    def _local_text(self, s, pos):
        args = self._args(s)
        if s.op.name == "power" and pos == 0 and not any(q == 1 for q, _ in s.parents):
            c = _plain(s.vals[1])
            c = int(c) if float(c).is_integer() else float(c)
            return f"(2 * {args[0]})" if c == 2 else f"({c} * {args[0]}**{c - 1})"
        template = LOCAL.get(s.op.name)
        if template is not None and pos < len(template):
            return template[pos].format(*args, o=s.name)
        return f"d{s.name}/d{args[pos]}"

    def _formula(self, s, pos, flow):
        table = REV_FORMULA if self.mode == "rev" else FWD_FORMULA
        template = table.get(s.op.name)
        args = self._args(s)
        if template is not None and pos < len(template):
            idx = _index_text(s.params["index"]) if "index" in s.params and \
                is_basic_index(s.params["index"]) else ""
            return template[pos].format(*args, g=flow, t=flow, idx=idx)
        rule = "vjp" if self.mode == "rev" else "jvp"
        return f"{s.op.name}_{rule}({flow})"


def _dot_escape(parts):
    return "\\n".join(p.replace("\\", "\\\\").replace('"', '\\"') for p in parts)


def _forward_lines(ex, stages):
    lines = []
    for s in stages:
        if s.kind == "input":
            lines.append(f"{s.name} = {_num(s.out)}")
        elif s.kind == "op":
            text = f"{s.name} = {ex._expression(s)} = {_num(s.out)}"
            if s.written:
                text += f"   # written {s.written.format(*ex._args(s))}"
            lines.append(text)
    return lines


def _gate_comment(ex, s):
    pattern = PATTERN.get(s.op.name, (f"{s.label}: local gradient",
                                      f"{s.label}: local derivative times tangent"))
    return f"# {s.name} = {ex._expression(s)}: {pattern[0 if ex.mode == 'rev' else 1]}"


def _backward(ex, stages, out_index, seed):
    """The reverse sweep over the stages, every step from the op's VJP rule."""
    by_index = ex._by_index
    uses = {}
    for s in stages:
        for _, p in s.parents:
            uses[by_index[p].name] = uses.get(by_index[p].name, 0) + 1
    adj = {out_index: seed}
    seen = set()
    out_name = by_index[out_index].name
    lines = [f"backward pass (reverse mode): one sweep, last stage first, "
             f"from d{out_name} = {_num(seed)}"]
    for s in reversed(stages):
        g = adj.get(s.index)
        if g is None or not s.parents:
            continue
        if s.kind == "op":
            lines.append("  " + _gate_comment(ex, s))
        for pos, p in s.parents:
            c = s.rule("rev", pos)(g, s.out, *s.vals, **s.params)
            target = by_index[p]
            first = target.name not in seen
            seen.add(target.name)
            adj[p] = c if p not in adj else adj[p] + c
            local = s.local(pos) if s.elementwise(pos) else None
            ex.contributions.append(Contribution(s, pos, target, local, g, c, first))
            ex._edges[(s.index, pos)] = c
            if s.kind == "op":
                lines.append("  " + _rev_line(ex, s, pos, target, local, g, c, first,
                                              uses[target.name]))
    ex.adjoints = {}
    for s in stages:
        if s.index not in adj:
            continue
        if s.kind == "view" and s.name in ex.adjoints:  # the same slot read twice
            ex.adjoints[s.name] = ex.adjoints[s.name] + adj[s.index]
        else:
            ex.adjoints[s.name] = adj[s.index]
    inputs = [s for s in stages if s.kind == "input"]
    ex.gradients = {s.name: adj.get(s.index, np.zeros_like(s.out)) for s in inputs}
    ex.adjoints.update(ex.gradients)
    lines.append("")
    lines.append("gradients")
    lines += [f"  d{n} = {_num(v)}" for n, v in ex.gradients.items()]
    ex.backward_lines = lines


def _rev_line(ex, s, pos, target, local, g, c, first, n_uses):
    lhs = f"d{target.name} {'=' if first else '+='}"
    up = f"d{s.name}"
    if local is not None:
        text = (f"{lhs} {ex._local_text(s, pos)} * {up} = "
                f"{_num(local)} * {_num(g)} = {_num(c)}")
    else:
        text = f"{lhs} {ex._formula(s, pos, up)} = {_num(c)}"
    if not first:
        text += f"   # fork: {target.name} is used {n_uses} times, its gradients add"
    return text


def _forward_pass(ex, stages, seeds, title):
    """One tangent pass over the stages, every step from the op's JVP rule."""
    by_index = ex._by_index
    tan = dict(seeds)
    lines = [title]
    for s in stages:
        if s.kind == "input":
            t = tan.get(s.index)
            lines.append(f"  {s.name}' = {_num(0.0 if t is None else t)}")
            continue
        terms = []
        for pos, p in s.parents:
            t = tan.get(p)
            if t is None:
                continue
            c = s.rule("fwd", pos)(t, s.out, *s.vals, **s.params)
            ex._edges[(s.index, pos)] = c
            terms.append((pos, by_index[p], t, c))
        if not terms:
            continue
        total = terms[0][3]
        for term in terms[1:]:
            total = total + term[3]
        tan[s.index] = total
        if s.kind == "op":
            lines.append("  " + _gate_comment(ex, s))
            lines.append("  " + _fwd_line(ex, s, terms, total))
    tangents = {s.name: tan[s.index] for s in stages if s.index in tan}
    return lines, tangents


def _fwd_line(ex, s, terms, total):
    symbols, numbers = [], []
    for pos, parent, t, c in terms:
        if s.elementwise(pos):
            symbols.append(f"{ex._local_text(s, pos)} * {parent.name}'")
            numbers.append(f"{_num(s.local(pos))} * {_num(t)}")
        else:
            symbols.append(ex._formula(s, pos, f"{parent.name}'"))
            numbers.append(_num(c))
    text = f"{s.name}' = {' + '.join(symbols)}"
    if len(terms) > 1 or s.elementwise(terms[0][0]):
        text += f" = {' + '.join(numbers)}"
    return text + f" = {_num(total)}"


def _fwd_seeds(inputs, seed):
    """Tangent passes: (title, {index: tangent}) for each."""
    if seed is None:
        return [(f"tangent pass {k + 1} of {len(inputs)} (forward mode): "
                 f"seed {s.name}' = 1, every other input' = 0",
                 {s.index: np.ones_like(s.out)[()]}) for k, s in enumerate(inputs)]
    seed = seed if isinstance(seed, tuple) else (seed,)
    leaves = [leaf for t in seed for leaf in flatten(t)[0]]
    if len(leaves) != len(inputs):
        raise ValueError(f"seed: {len(leaves)} tangents for {len(inputs)} inputs")
    return [("tangent pass (forward mode) along the given seed",
             {s.index: np.asarray(as_float(t), dtype=float).reshape(np.shape(s.out))[()]
              for s, t in zip(inputs, leaves)})]


def explain(f, *args, names=None, mode="rev", seed=None):
    """Stage ``f(*args)`` the way cs231n writes backprop by hand.

    The forward pass lists every intermediate with its value; the backward
    pass (``mode="rev"``) walks them in reverse, one line per local step,
    ``d<var> = local * upstream = value`` for the first contribution and
    ``+=`` for every further one (a value used twice: a fork adds), with the
    gate pattern named (add distributes, multiply swaps, max routes, sigmoid
    ``(1 - s) s``). ``mode="fwd"`` shows tangents ``v'`` flowing left to
    right instead, one pass per input. Everything is read off a recorded
    :class:`~dualrev.reverse.Tape`; each local value comes from the op's
    registered VJP or JVP rule.

    Parameters
    ----------
    f : callable
        Plain NumPy code of its positional arguments (floats, arrays, or
        tuples/lists/dicts of them).
    *args
        The point.
    names : sequence of str, or dict, optional
        Names of the stages in forward order (``None`` entries keep the
        default), or a dict renaming default names (``{"add1": "q"}``).
        Default: names given by :func:`dualrev.explain.name <name>` inside
        ``f``, else ``f``'s own local variable names, else generated names
        such as ``mul1``; the output is ``f`` unless named.
    mode : {"rev", "fwd"}
        Backward sweep of gradients, or forward passes of tangents.
    seed : array_like or tuple, optional
        ``"rev"``: the upstream gradient of the output (default 1; required
        for a non-scalar output). ``"fwd"``: the tangent of every input (a
        tuple, one per argument) for a single pass; default one pass per
        input with tangent 1 (all ones for an array).

    Returns
    -------
    Explanation
        ``str()`` is the staged text; ``.gradients``, ``.adjoints``,
        ``.tangents``; ``.to_dot()`` and ``.to_svg(path)`` draw the graph.

    See Also
    --------
    check_backprop, name, dualrev.grad

    Examples
    --------
    cs231n's first example, f(x, y, z) = (x + y) z at (-2, 5, -4):

    >>> import dualrev
    >>> def f(x, y, z):
    ...     q = x + y
    ...     return q * z
    >>> print(dualrev.explain(f, -2.0, 5.0, -4.0))
    forward pass (values, left to right)
      x = -2.0
      y = 5.0
      z = -4.0
      q = x + y = 3.0
      f = q * z = -12.0
    <BLANKLINE>
    backward pass (reverse mode): one sweep, last stage first, from df = 1.0
      # f = q * z: multiply swaps: each input gets the other input times the gradient
      dq = z * df = -4.0 * 1.0 = -4.0
      dz = q * df = 3.0 * 1.0 = 3.0
      # q = x + y: add distributes: both inputs get the gradient unchanged
      dx = 1 * dq = 1.0 * -4.0 = -4.0
      dy = 1 * dq = 1.0 * -4.0 = -4.0
    <BLANKLINE>
    gradients
      dx = -4.0
      dy = -4.0
      dz = 3.0
    """
    if mode not in ("rev", "fwd"):
        raise ValueError(f"mode must be 'rev' or 'fwd', not {mode!r}")
    tape, inputs, out, labels = _record_explained(f, args)
    if isinstance(out, (tuple, list, dict)):
        raise TypeError("explain needs a function returning one array or scalar")
    out_index = tape.index_of(out)
    pinned = set(labels) | ({out_index} if out_index is not None else set())
    stages = _stages(tape, {s.index: s.out for s in inputs}, pinned)
    if out_index is not None and all(s.index != out_index for s in inputs + stages):
        raise ValueError("the output is not a stage of the trace")
    by_index = _assign_names(stages, inputs, labels, out_index, names)
    all_stages = inputs + stages
    ex = Explanation(mode, _plain(out), all_stages, by_index,
                     by_index.get(out_index), [])
    ex.forward_lines = _forward_lines(ex, all_stages)
    if out_index is None:
        ex.backward_lines = ["the output does not depend on the inputs: "
                             "every derivative is 0"]
        ex.gradients = {s.name: np.zeros_like(s.out) for s in inputs}
        return ex
    if mode == "rev":
        _backward(ex, all_stages, out_index, _rev_seed(out, seed))
        return ex
    for title, seeds in _fwd_seeds(inputs, seed):
        lines, tangents = _forward_pass(ex, all_stages, seeds, title)
        ex.tangents.append(tangents)
        ex.backward_lines += lines + [
            f"  => {ex.output.name}' = {_num(tangents.get(ex.output.name, 0.0))}", ""]
    ex.backward_lines.pop()
    return ex


def _rev_seed(out, seed):
    shape = shape_of(out)
    if seed is None:
        if shape != ():
            raise ValueError(
                f"f returns shape {shape}: pass seed=<the upstream gradient dL/d(out), "
                f"shape {shape}>, e.g. explain(f, x, seed=np.ones({shape}))")
        return np.float64(1.0)
    seed = np.asarray(seed, dtype=float)
    if seed.shape != shape:
        raise ValueError(f"seed has shape {seed.shape}, the output has shape {shape}")
    return seed[()]


explain.name = name


# ---- checking a student's staged gradients -------------------------------------

class Mismatch:
    """The first wrong gradient: ``name`` in the trace, the student's ``key``,
    ``got``, ``expected``, the expected steps ``lines`` and a ``hint``."""

    __slots__ = ("name", "key", "got", "expected", "lines", "hint")

    def __init__(self, name, key, got, expected, lines, hint):
        self.name, self.key, self.got, self.expected = name, key, got, expected
        self.lines, self.hint = lines, hint

    def __str__(self):
        called = "" if self.key == f"d{self.name}" else f" ({self.key})"
        text = [f"d{self.name}{called} is wrong: you have {_num(self.got)}, "
                f"expected {_num(self.expected)}"]
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
    a, b = np.asarray(_plain(a), float), np.asarray(_plain(b), float)
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
        if c.local is None or np.ndim(_plain(c.local)) != 0:
            continue
        for other, value in ex.adjoints.items():
            if other != c.stage.name and np.ndim(_plain(value)) == 0 and \
                    _close(got, c.local * value, rtol, atol) and \
                    not _close(value, c.upstream, rtol, atol):
                return (f"the local gradient is right ({ex._local_text(c.stage, c.pos)}"
                        f" = {_num(c.local)}) but it multiplies d{other} instead of "
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
            lines = [_rev_line(ex, c.stage, c.pos, c.target, c.local, c.upstream,
                               c.value, c.first, 2).split("   # fork")[0]
                     for c in ex.contributions if c.target.name == target]
            return BackpropCheck(checked, Mismatch(
                target, key, got, expected, lines, _hint(ex, target, got, rtol, atol)), ex)
        checked.append(target)
    return BackpropCheck(checked, None, ex)
