"""Printing an explanation: the forward lines, the reverse and forward sweeps
(one line per local step), and the DOT/SVG export of the staged graph.
"""

import textwrap

import numpy as np

from ..api import as_float
from ..registry import shape_of
from ..tree import flatten
from .naming import assign_names, record_function
from .drawing import draw_circuit
from .stages import (constant_text, find_stages, index_text, is_basic_index, number_text,
                     plain_value)

#: The longest line :func:`explain` prints (a page of the docs, PEP 8's 88).
WIDTH = 88


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

    def __init__(self, mode, value, stages, by_index, output, forward_lines, digits=None,
                 width=WIDTH):
        self.mode = mode
        self.digits = digits
        self.width = width
        self.pass_titles = []
        self._pass_edges = []
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

    def __str__(self):
        head = ("forward pass (values, left to right)" if self.mode == "rev"
                else "primal values, left to right")
        forward = [part for s in self.forward_lines for part in fit("  " + s, self.width)]
        return "\n".join([head] + forward + [""] + self.backward_lines)

    __repr__ = __str__

    def to_dot(self):
        """The graph in Graphviz DOT: values, and gradients or tangents, on the nodes.

        Edges carry what flows along them in the derivative pass: the
        gradient contribution (reverse mode, drawn right to left) or the
        tangent term of the first forward pass.
        """
        total = self.adjoints if self.mode == "rev" else (
            self.tangents[0] if self.tangents else {})
        edges = self._pass_edges[0] if self._pass_edges else {}
        mark = "d{}" if self.mode == "rev" else "{}'"
        lines = ["digraph explain {", "  rankdir=LR;",
                 '  node [shape=box, fontname="monospace"];']
        for s in self.stages:
            text = s.name if s.kind != "op" else f"{s.name} = {self._expression(s)}"
            label = [text, f"value {number_text(s.out, 6)}"]
            if s.name in total:
                label.append(f"{mark.format(s.name)} = {number_text(total[s.name], 6)}")
            shape = ", shape=ellipse" if s.kind == "input" else ""
            lines.append(f'  n{s.index} [label="{_dot_escape(label)}"{shape}];')
        for s in self.stages:
            for pos, p in s.parents:
                flow = edges.get((s.index, pos))
                extra = "" if flow is None else \
                    f' [label="{_dot_escape([number_text(flow, 4)])}", fontcolor=red]'
                lines.append(f"  n{p} -> n{s.index}{extra};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def svg(self, pass_index=0, digits=None):
        """The circuit as SVG text, drawn in pure Python (no Graphviz needed).

        cs231n's style: gates left to right, each wire with the value flowing
        forward above it and, below it, the gradient flowing back along it
        (reverse mode) or the tangent term of forward pass ``pass_index``
        (forward mode: one pass per figure). ``digits`` (default: the
        explanation's, else 4) sets the significant digits shown.
        """
        if digits is None:
            digits = self.digits if self.digits is not None else 4
        return draw_circuit(self, pass_index, digits)

    def to_svg(self, path=None, pass_index=0, digits=None):
        """:meth:`svg`, written to ``path`` when one is given; returns the SVG text."""
        text = self.svg(pass_index, digits)
        if path is not None:
            with open(path, "w", encoding="utf-8") as out:
                out.write(text)
        return text

    def _repr_svg_(self):
        return self.svg()

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"image/svg+xml": self.svg(), "text/plain": str(self)}

    # ---- text helpers ----
    def num(self, v):
        return number_text(v, self.digits)

    def _arg(self, s, pos):
        for q, p in s.parents:
            if q == pos:
                return self._by_index[p].name
        return constant_text(s.vals[pos])

    def _args(self, s):
        return [self._arg(s, k) for k in range(len(s.vals))]

    def _expression(self, s):
        args = self._args(s)
        template = s.teach("infix")
        if s.op.name == "getitem":
            return args[0] + index_text(s.params["index"]) if is_basic_index(
                s.params["index"]) else f"{args[0]}[...]"
        if template is not None and len(args) == template.count("{"):
            return template.format(*args)
        extra = [f"{k}={v!r}" for k, v in s.params.items() if v not in (None, False)]
        return f"{s.label}({', '.join(args + extra)})"

    def _local_text(self, s, pos):
        args = self._args(s)
        if s.op.name == "power" and pos == 0 and not any(q == 1 for q, _ in s.parents):
            c = plain_value(s.vals[1])
            c = int(c) if float(c).is_integer() else float(c)
            return f"(2 * {args[0]})" if c == 2 else f"({c} * {args[0]}**{c - 1})"
        template = s.teach("local")
        if template is not None and pos < len(template):
            return template[pos].format(*args, o=s.name)
        return f"d{s.name}/d{args[pos]}"

    def _formula(self, s, pos, flow):
        template = s.teach("rev" if self.mode == "rev" else "fwd")
        args = self._args(s)
        if template is not None and pos < len(template):
            idx = index_text(s.params["index"]) if "index" in s.params and \
                is_basic_index(s.params["index"]) else ""
            return template[pos].format(*args, g=flow, t=flow, idx=idx, o=s.name)
        if self.mode == "rev":  # the chain rule, in the notes' words
            return f"(d{s.name}/d{args[pos]})^T {flow}"
        return f"(d{s.name}/d{args[pos]}) {flow}"


def _dot_escape(parts):
    return "\\n".join(p.replace("\\", "\\\\").replace('"', '\\"') for p in parts)


def fit(line, width=WIDTH):
    """``line`` as lines of at most ``width`` characters where it can be cut:
    a comment wraps as a comment, a chain ``a = b = c`` breaks before ``=``."""
    if len(line) <= width:
        return [line]
    indent = line[:len(line) - len(line.lstrip())]
    body = line.lstrip()
    if body.startswith("#"):
        return textwrap.wrap(body[1:].strip(), width, initial_indent=indent + "# ",
                             subsequent_indent=indent + "#   ", break_long_words=False,
                             break_on_hyphens=False)
    parts = body.split(" = ")
    lines, current = [], indent + parts[0]
    for part in parts[1:]:
        piece = " = " + part
        if len(current) + len(piece) <= width:
            current += piece
        else:
            lines.append(current)
            current = indent + "    =" + piece[2:]
    return lines + [current]


def _forward_lines(ex, stages):
    lines = []
    for s in stages:
        if s.kind == "input":
            lines.append(f"{s.name} = {ex.num(s.out)}")
        elif s.kind == "op":
            lines.append(f"{s.name} = {ex._expression(s)} = {ex.num(s.out)}")
            if s.written:
                lines.append(f"  # written {s.written.format(*ex._args(s))}")
    return lines


def _gate_comment(ex, s):
    pattern = s.teach("gate" if ex.mode == "rev" else "fwd_gate")
    if pattern is None:
        pattern = (f"{s.label}: local gradient" if ex.mode == "rev"
                   else f"{s.label}: local derivative times tangent")
    return f"# {s.name} = {ex._expression(s)}: {pattern}"


def _add(ex, lines, text):
    lines.extend(fit("  " + text, ex.width))


def _backward(ex, stages, out_index, seed):
    """The reverse sweep over the stages, every step from the op's VJP rule."""
    by_index = ex._by_index
    uses = {}
    for s in stages:
        for _, p in s.parents:
            uses[by_index[p].name] = uses.get(by_index[p].name, 0) + 1
    adj = {out_index: seed}
    seen = set()
    edges = {}
    out_name = by_index[out_index].name
    head = "backward pass (reverse mode): one sweep, last stage first,"
    start = f"from d{out_name} = {ex.num(seed)}"
    lines = [f"{head} {start}"] if len(head) + len(start) < ex.width else \
        [head] + fit("  " + start, ex.width)
    for s in reversed(stages):
        g = adj.get(s.index)
        if g is None or not s.parents:
            continue
        if s.kind == "op":
            _add(ex, lines, _gate_comment(ex, s))
        for pos, p in s.parents:
            c = s.rule("rev", pos)(g, s.out, *s.vals, **s.params)
            target = by_index[p]
            first = target.name not in seen
            seen.add(target.name)
            adj[p] = c if p not in adj else adj[p] + c
            local = s.local(pos) if s.elementwise(pos) else None
            ex.contributions.append(Contribution(s, pos, target, local, g, c, first))
            edges[(s.index, pos)] = c
            if s.kind == "op":
                if not first:
                    _add(ex, lines, f"# fork: {target.name} is used {uses[target.name]} "
                                    "times, its gradients add")
                _add(ex, lines, reverse_line(ex, s, pos, target, local, g, c, first))
    ex._pass_edges = [edges]
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
    for n, v in ex.gradients.items():
        _add(ex, lines, f"d{n} = {ex.num(v)}")
    ex.backward_lines = lines


def reverse_line(ex, s, pos, target, local, g, c, first):
    """One local step of the backward sweep, ``dx = local * dout = ...``."""
    lhs = f"d{target.name} {'=' if first else '+='}"
    up = f"d{s.name}"
    if local is not None:
        return (f"{lhs} {ex._local_text(s, pos)} * {up} = "
                f"{ex.num(local)} * {ex.num(g)} = {ex.num(c)}")
    return f"{lhs} {ex._formula(s, pos, up)} = {ex.num(c)}"


def _forward_pass(ex, stages, seeds, title):
    """One tangent pass over the stages, every step from the op's JVP rule."""
    by_index = ex._by_index
    tan = dict(seeds)
    edges = {}
    lines = fit(title, ex.width)
    for s in stages:
        if s.kind == "input":
            t = tan.get(s.index)
            _add(ex, lines, f"{s.name}' = {ex.num(np.zeros_like(s.out) if t is None else t)}")
            continue
        terms = []
        for pos, p in s.parents:
            t = tan.get(p)
            if t is None:
                continue
            c = s.rule("fwd", pos)(t, s.out, *s.vals, **s.params)
            edges[(s.index, pos)] = c
            terms.append((pos, by_index[p], t, c))
        if not terms:
            continue
        total = terms[0][3]
        for term in terms[1:]:
            total = total + term[3]
        tan[s.index] = total
        if s.kind == "op":
            _add(ex, lines, _gate_comment(ex, s))
            _add(ex, lines, _fwd_line(ex, s, terms, total))
    ex._pass_edges.append(edges)
    tangents = {s.name: tan[s.index] for s in stages if s.index in tan}
    return lines, tangents


def _fwd_line(ex, s, terms, total):
    symbols, numbers = [], []
    for pos, parent, t, c in terms:
        if s.elementwise(pos):
            symbols.append(f"{ex._local_text(s, pos)} * {parent.name}'")
            numbers.append(f"{ex.num(s.local(pos))} * {ex.num(t)}")
        else:
            symbols.append(ex._formula(s, pos, f"{parent.name}'"))
            numbers.append(ex.num(c))
    text = f"{s.name}' = {' + '.join(symbols)}"
    if len(terms) > 1 or s.elementwise(terms[0][0]):
        text += f" = {' + '.join(numbers)}"
    return text + f" = {ex.num(total)}"


def _unit_seeds(inputs):
    """One seed per scalar input: (label, {index: tangent})."""
    for s in inputs:
        shape = np.shape(s.out)
        if shape == ():
            yield s.name, {s.index: np.float64(1.0)}
            continue
        for k in np.ndindex(shape):
            unit = np.zeros(shape)
            unit[k] = 1.0
            yield s.name + "[" + ", ".join(map(str, k)) + "]", {s.index: unit}


def _fwd_seeds(inputs, seed):
    """Tangent passes: (title, {index: tangent}) for each."""
    if seed is None:
        units = list(_unit_seeds(inputs))
        return [(f"tangent pass {k + 1} of {len(units)} (forward mode): "
                 f"seed {label}' = 1, every other input' = 0", seeds)
                for k, (label, seeds) in enumerate(units)]
    seed = seed if isinstance(seed, tuple) else (seed,)
    leaves = [leaf for t in seed for leaf in flatten(t)[0]]
    if len(leaves) != len(inputs):
        raise ValueError(f"seed: {len(leaves)} tangents for {len(inputs)} inputs")
    return [("tangent pass (forward mode) along the given seed",
             {s.index: np.asarray(as_float(t), dtype=float).reshape(np.shape(s.out))[()]
              for s, t in zip(inputs, leaves)})]


def explain(f, *args, names=None, mode="rev", seed=None, digits=None, width=WIDTH):
    """Stage ``f(*args)`` the way cs231n writes backprop by hand.

    The forward pass lists every intermediate with its value; the backward
    pass (``mode="rev"``) walks them in reverse, one line per local step,
    ``d<var> = local * upstream = value`` for the first contribution and
    ``+=`` for every further one (a value used twice: a fork adds), with the
    gate pattern named (add distributes, multiply swaps, max routes, sigmoid
    ``(1 - s) s``). ``mode="fwd"`` shows tangents ``v'`` flowing left to
    right instead, one pass per scalar input. Everything is read off a recorded
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
        scalar input (each element of an array input in turn), seeded 1.
    digits : int, optional
        Significant digits of the printed numbers; default: every digit
        (the shortest text that reads back as the same float).
    width : int
        The longest printed line: comments wrap, and a chain ``a = b = c``
        continues on the next line before an ``=`` (default 88).

    Returns
    -------
    Explanation
        ``str()`` is the staged text; ``.gradients``, ``.adjoints``,
        ``.tangents``; ``.svg()`` draws the circuit (pure Python, values
        above the wires and gradients below), also shown by notebooks;
        ``.to_dot()`` gives Graphviz DOT.

    Raises
    ------
    TypeError
        If ``f`` calls ``math.exp`` (or another ``math`` function) on a
        traced value: the message names the NumPy function to use.

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
    tape, inputs, out, labels = record_function(f, args)
    if isinstance(out, (tuple, list, dict)):
        raise TypeError("explain needs a function returning one array or scalar")
    out_index = tape.index_of(out)
    pinned = set(labels) | ({out_index} if out_index is not None else set())
    stages = find_stages(tape, {s.index: s.out for s in inputs}, pinned)
    if out_index is not None and all(s.index != out_index for s in inputs + stages):
        raise ValueError("the output is not a stage of the trace")
    by_index = assign_names(stages, inputs, labels, out_index, names)
    all_stages = inputs + stages
    ex = Explanation(mode, plain_value(out), all_stages, by_index,
                     by_index.get(out_index), [], digits, width)
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
        ex.pass_titles.append(title)
        ex.backward_lines += lines + fit(
            f"  => {ex.output.name}' = {ex.num(tangents.get(ex.output.name, 0.0))}",
            width) + [""]
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
