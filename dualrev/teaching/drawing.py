"""Drawing an explanation as a circuit, in SVG, in pure Python.

The circuits of a lesson are small (a handful of gates), so a layered layout
is enough: a stage's column is its depth (the longest path from an input),
its row the order in which the forward pass computed it. Drawing it here,
rather than with Graphviz, keeps the pictures the same in the tests, the docs
build and a notebook, needs no system program, and puts the numbers where
cs231n's diagrams put them: the value flowing forward above a wire, the
gradient flowing back below it (in forward mode, the tangent term of one
pass). ``Explanation.to_dot`` still gives Graphviz's DOT for larger graphs.
"""

from html import escape

import numpy as np

from .stages import number_text, plain_value

CHAR = 7.3          # width of one character of the 12px monospace font
ROW = 40            # height given to one input port of a gate (its two labels)
GAP = 24            # space around the labels of a wire
VALUE, FLOW, INK = "#1a7f37", "#c0392b", "#222222"


def wire_text(v, digits):
    """A value on a wire: its numbers when few, else its shape."""
    a = np.asarray(plain_value(v))
    if a.size > 4:
        return "shape " + str(a.shape)
    return number_text(a, digits)


def _depths(stages, by_index):
    """Column of each stage: the longest path from an input; an input sits
    just left of the first column that reads it, so its wire is short."""
    depth = {}
    for s in stages:
        depth[s.index] = 1 + max((depth[p] for _, p in s.parents), default=-1)
    read_from = {}
    for s in stages:
        for _, p in s.parents:
            read_from[p] = min(read_from.get(p, depth[s.index]), depth[s.index])
    for s in stages:
        if s.kind == "input" and s.index in read_from:
            depth[s.index] = read_from[s.index] - 1
    return depth


def _tops(stages, depth, n_ports):
    """Top of each stage's box: the rightmost column in forward order, each
    column to its left placed where the gates it feeds read it, so that
    wires run as level as the boxes allow."""
    columns = {}
    for s in stages:
        columns.setdefault(depth[s.index], []).append(s)
    readers = {}
    for s in stages:
        for port, (_, p) in enumerate(s.parents):
            readers.setdefault(p, []).append((s, port))
    tops = {}

    def port_y(s, port):
        return tops[s.index] + (port + 0.5) * ROW

    for d in sorted(columns, reverse=True):
        wanted = {}
        for s in columns[d]:
            ys = [port_y(r, port) for r, port in readers.get(s.index, ()) if r.index in tops]
            wanted[s.index] = (sum(ys) / len(ys) - n_ports[s.index] * ROW / 2) if ys else None
        ordered = sorted(columns[d], key=lambda s: (wanted[s.index] is None,
                                                      wanted[s.index] or 0.0))
        y = 60.0
        for s in ordered:
            want = wanted[s.index]
            tops[s.index] = max(y, want if want is not None else y)
            y = tops[s.index] + n_ports[s.index] * ROW + ROW / 2
    return tops


def _gate_symbol(ex, s):
    if s.kind == "input":
        return s.name
    infix = s.teach("infix")
    if s.kind == "view":
        return s.name
    if infix and infix.count("{") == 2 and infix.startswith("{0} ") and \
            infix.endswith(" {1}"):
        return infix[4:-4]
    if infix == "-{0}":
        return "-"
    return s.label


def draw_circuit(ex, pass_index, digits):
    """The SVG text of the circuit of ``ex`` (see ``Explanation.svg``)."""
    stages = ex.stages
    edges = ex._pass_edges[pass_index] if pass_index < len(ex._pass_edges) else {}
    depth = _depths(stages, ex._by_index)
    n_ports = {s.index: max(1, len(s.parents)) for s in stages}
    value_text = {s.index: wire_text(s.out, digits) for s in stages}
    flow_text = {key: wire_text(v, digits) for key, v in edges.items()}
    if ex.mode == "fwd":  # a wire that carries no tangent in this pass carries 0
        flow_text = {(s.index, pos): flow_text.get((s.index, pos), "0")
                     for s in stages for pos, _ in s.parents}
    out = ex.output
    seed = _seed_text(ex, pass_index, digits)
    longest = max([len(t) for t in value_text.values()] + [len(t) for t in flow_text.values()]
                  + [len(seed)])
    wire = longest * CHAR + 2 * GAP
    symbol = {s.index: _gate_symbol(ex, s) for s in stages}
    box_w = max(len(t) for t in symbol.values()) * CHAR + 18
    column_w = box_w + wire
    tops = _tops(stages, depth, n_ports)
    height = max(tops[s.index] + n_ports[s.index] * ROW for s in stages) + ROW
    title = _title(ex, pass_index)
    width = max((max(depth.values()) + 1) * column_w + wire + 20, len(title) * CHAR + 20)
    place = {s.index: (10 + depth[s.index] * column_w + wire, tops[s.index],
                       n_ports[s.index] * ROW) for s in stages}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
             f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
             'font-family="monospace" font-size="12">',
             f'<text x="10" y="18" fill="{INK}">{escape(title)}</text>',
             f'<text x="10" y="36" xml:space="preserve"><tspan fill="{VALUE}">value above '
             f'the wire</tspan><tspan fill="{INK}">, </tspan><tspan fill="{FLOW}">'
             f'{"gradient" if ex.mode == "rev" else "tangent"} below</tspan></text>']
    for s in stages:
        x, top, h = place[s.index]
        for pos, p in s.parents:
            port = [q for q, _ in s.parents].index(pos)
            y = top + (port + 0.5) * h / len(s.parents)
            sx, stop, sh = place[p]
            sy = stop + sh / 2
            start = sx + box_w
            parts.append(f'<polyline points="{start:.1f},{sy:.1f} {x - wire + GAP / 2:.1f},'
                         f'{y:.1f} {x:.1f},{y:.1f}" fill="none" stroke="{INK}"/>')
            parts += _labels(x - wire + GAP / 2, x, y, value_text[p],
                             flow_text.get((s.index, pos)))
        parts.append(_node(s, x, top, h, box_w, symbol[s.index]))
    if out is not None:
        x, top, h = place[out.index]
        y = top + h / 2
        parts.append(f'<line x1="{x + box_w:.1f}" y1="{y:.1f}" x2="{x + box_w + wire:.1f}" '
                     f'y2="{y:.1f}" stroke="{INK}"/>')
        parts += _labels(x + box_w, x + box_w + wire, y, value_text[out.index], seed)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _seed_text(ex, pass_index, digits):
    out = ex.output
    if out is None:
        return ""
    if ex.mode == "rev":
        return wire_text(ex.adjoints.get(out.name, 0.0), digits)
    tangents = ex.tangents[pass_index] if pass_index < len(ex.tangents) else {}
    return wire_text(tangents.get(out.name, 0.0), digits)


def _title(ex, pass_index):
    if ex.mode == "rev":
        return "reverse mode: one backward sweep"
    titles = ex.pass_titles
    return titles[pass_index] if pass_index < len(titles) else "forward mode"


def _labels(x0, x1, y, above, below):
    mid = (x0 + x1) / 2
    parts = [f'<text x="{mid:.1f}" y="{y - 4:.1f}" text-anchor="middle" '
             f'fill="{VALUE}">{escape(above)}</text>']
    if below:
        parts.append(f'<text x="{mid:.1f}" y="{y + 14:.1f}" text-anchor="middle" '
                     f'fill="{FLOW}">{escape(below)}</text>')
    return parts


def _node(s, x, top, h, box_w, symbol):
    cx, cy = x + box_w / 2, top + h / 2
    if s.kind == "input":
        return (f'<text x="{x + box_w - 4:.1f}" y="{cy + 4:.1f}" text-anchor="end" '
                f'font-weight="bold" fill="{INK}">{escape(symbol)}</text>')
    name = "" if s.kind == "view" else (
        f'<text x="{cx:.1f}" y="{top - 4:.1f}" text-anchor="middle" fill="{INK}" '
        f'font-style="italic">{escape(s.name)}</text>')
    return (f'<rect x="{x:.1f}" y="{top:.1f}" width="{box_w:.1f}" height="{h:.1f}" rx="8" '
            f'fill="#f4f6fb" stroke="{INK}"/>'
            f'<text x="{cx:.1f}" y="{cy + 4:.1f}" text-anchor="middle" fill="{INK}">'
            f'{escape(symbol)}</text>' + name)
