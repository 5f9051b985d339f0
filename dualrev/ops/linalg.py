"""Products: ``matmul`` and ``einsum`` primitives, the NumPy products built on them.

``matmul`` works on stacks of matrices (ndim >= 2, broadcasting batch axes);
vectors are reshaped to matrices around it, and ``dot``, ``vdot``, ``inner``,
``outer``, ``tensordot``, ``trace``, ``diagonal`` and ``diag`` are built from
matmul, reshapes and indexing, so they need no rules of their own.
``einsum`` is its own primitive, whose rules are einsums with permuted
subscripts.
"""

import string

import numpy as np

from ..registry import Teaching, defop, promote_tangent, register_numpy, shape_of, unbroadcast
from .shape import broadcast_to, getitem, np_transpose, ravel, reshape, untake


def mT(x):
    """Swap the last two axes (matrix transpose of a stack; x.ndim >= 2)."""
    return x.swapaxes(-1, -2)


def promote_to_output(t, x, out):
    """The tangent ``t`` of ``x``, with axes inserted after its batch axes so
    that it broadcasts against the output ``out`` (see ``promote_tangent``)."""
    return promote_tangent(t, x, len(shape_of(out)))


def matmul_jvp_a(t, out, a, b):
    return promote_to_output(t, a, out) @ b


def matmul_jvp_b(t, out, a, b):
    return a @ promote_to_output(t, b, out)


def matmul_vjp_a(g, out, a, b):
    return unbroadcast(g @ mT(b), shape_of(a))


def matmul_vjp_b(g, out, a, b):
    return unbroadcast(mT(a) @ g, shape_of(b))


def matmul_flops(out, a, b):
    """Two flops (a multiply and an add) per output element and summed index."""
    return 2 * int(np.prod(shape_of(out))) * shape_of(a)[-1]


matmul = defop(
    "matmul", np.matmul, nargs=2, jvp=(matmul_jvp_a, matmul_jvp_b),
    vjp=(matmul_vjp_a, matmul_vjp_b), saves=((1,), (0,)), flops=matmul_flops,
    teaching=Teaching(short="matmul", infix="{0} @ {1}",
                      rev=("{g} @ {1}.T", "{0}.T @ {g}"), fwd=("{t} @ {1}", "{0} @ {t}"),
                      gate="matmul: dA = dout @ B.T, dB = A.T @ dout (the shapes tell which)",
                      fwd_gate="matmul: A' @ B + A @ B'"),
    doc="Stacked matrix product (both operands ndim >= 2). "
        "d/da = g @ b.T and d/db = a.T @ g.")


def np_matmul(a, b, /, out=None, **kwargs):
    if out is not None:
        raise TypeError("matmul(..., out=...) cannot hold a traced value: "
                        "use the returned value instead of out=")
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        raise ValueError("matmul: input operand does not have enough dimensions")
    if len(sa) >= 2 and len(sb) >= 2:
        return matmul(a, b)
    a2 = reshape(a, shape=(1,) + sa) if len(sa) == 1 else a
    b2 = reshape(b, shape=sb + (1,)) if len(sb) == 1 else b
    res = matmul(a2, b2)
    rs = shape_of(res)
    drop = (len(rs) - 2 if len(sa) == 1 else None, len(rs) - 1 if len(sb) == 1 else None)
    return reshape(res, shape=tuple(n for i, n in enumerate(rs) if i not in drop))


def dot(a, b, out=None):
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        return a * b
    if len(sa) <= 2 and len(sb) <= 2:
        return np_matmul(a, b, out=out)
    return tensordot(a, b, axes=([-1], [-2 if len(sb) >= 2 else -1]))


def vdot(a, b):
    return np.sum(ravel(a) * ravel(b))


def inner(a, b):
    if not shape_of(a) or not shape_of(b):
        return a * b
    return tensordot(a, b, axes=([-1], [-1]))


def outer(a, b, out=None):
    a, b = ravel(a), ravel(b)
    return reshape(a, shape=shape_of(a) + (1,)) * reshape(b, shape=(1,) + shape_of(b))


def tensordot(a, b, axes=2):
    """Contract ``a`` and ``b`` over ``axes`` with one matmul."""
    sa, sb = shape_of(a), shape_of(b)
    if isinstance(axes, (int, np.integer)):
        axes_a, axes_b = list(range(len(sa) - axes, len(sa))), list(range(axes))
    else:
        axes_a, axes_b = ([axes[0]] if isinstance(axes[0], (int, np.integer)) else axes[0],
                          [axes[1]] if isinstance(axes[1], (int, np.integer)) else axes[1])
    axes_a = [ax % len(sa) for ax in axes_a]
    axes_b = [ax % len(sb) for ax in axes_b]
    free_a = [i for i in range(len(sa)) if i not in axes_a]
    free_b = [i for i in range(len(sb)) if i not in axes_b]
    k = int(np.prod([sa[i] for i in axes_a]))
    m = int(np.prod([sa[i] for i in free_a]))
    n = int(np.prod([sb[i] for i in free_b]))
    a2 = reshape(np_transpose(a, free_a + axes_a), shape=(m, k))
    b2 = reshape(np_transpose(b, axes_b + free_b), shape=(k, n))
    out_shape = tuple(sa[i] for i in free_a) + tuple(sb[i] for i in free_b)
    return reshape(matmul(a2, b2), shape=out_shape)


def _diag_index(shape, offset):
    n, m = shape[-2], shape[-1]
    rows = np.arange(max(0, -offset), min(n, m - offset))
    return rows, rows + offset


def diagonal(a, offset=0, axis1=0, axis2=1):
    a = np.moveaxis(a, (axis1, axis2), (-2, -1))
    rows, cols = _diag_index(shape_of(a), offset)
    return getitem(a, index=(slice(None),) * (len(shape_of(a)) - 2) + (rows, cols))


def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    return np.sum(diagonal(a, offset, axis1, axis2), axis=-1)


def diag(v, k=0):
    s = shape_of(v)
    if len(s) == 2:
        return diagonal(v, k)
    if len(s) != 1:
        raise ValueError("Input must be 1- or 2-d.")
    n = s[0] + abs(k)
    rows, cols = _diag_index((n, n), k)
    return untake(v, index=(rows, cols), shape=(n, n))


register_numpy(np.matmul, np_matmul)
register_numpy(np.dot, dot)
register_numpy(np.vdot, vdot)
register_numpy(np.inner, inner)
register_numpy(np.outer, outer)
register_numpy(np.tensordot, tensordot)
register_numpy(np.diagonal, diagonal)
register_numpy(np.trace, trace)
register_numpy(np.diag, diag)


# ---- einsum ------------------------------------------------------------------

def _einsum_impl(*xs, inputs, output):
    return np.einsum(",".join(inputs) + "->" + output, *xs, optimize=len(xs) > 2)


def _fresh_letters(used, count):
    """``count`` subscript letters that do not occur in the strings ``used``."""
    taken = set("".join(used))
    fresh = [c for c in string.ascii_letters if c not in taken][:count]
    if len(fresh) < count:
        raise NotImplementedError("einsum: no subscript letters left for the batch axes")
    return "".join(fresh)


def _einsum_jvp(i):
    def einsum_jvp(t, out, *xs, inputs, output):
        # Linear in each operand: the same einsum with the tangent in place i;
        # a tangent's leading batch axes get fresh letters kept in front.
        extra = len(shape_of(t)) - len(inputs[i])
        if extra:
            batch = _fresh_letters(inputs + (output,), extra)
            inputs = inputs[:i] + (batch + inputs[i],) + inputs[i + 1:]
            output = batch + output
        return einsum(*xs[:i], t, *xs[i + 1:], inputs=inputs, output=output)
    return einsum_jvp


def _einsum_vjp(i):
    def einsum_vjp(g, out, *xs, inputs, output):
        # The cotangent contracted with the other operands, onto operand i's
        # letters; letters only operand i has (summed away by it alone) are
        # broadcast back, repeated letters (a diagonal) are put back on it.
        target = inputs[i]
        sizes = dict(zip(target, shape_of(xs[i])))
        others = [j for j in range(len(xs)) if j != i]
        available = set(output).union(*(inputs[j] for j in others))
        unique = "".join(dict.fromkeys(target))
        kept = "".join(c for c in unique if c in available)
        ct = einsum(g, *(xs[j] for j in others),
                    inputs=(output,) + tuple(inputs[j] for j in others), output=kept)
        if kept != unique:
            ct = reshape(ct, shape=tuple(sizes[c] if c in available else 1 for c in unique))
            ct = broadcast_to(ct, shape=tuple(sizes[c] for c in unique))
        if unique != target:
            ct = _onto_diagonal(ct, unique, target, sizes)
        return ct
    return einsum_vjp


def _onto_diagonal(ct, unique, target, sizes):
    """Spread ``ct`` (letters ``unique``) onto the repeated letters of ``target``,
    e.g. a vector ``i`` onto the diagonal of a matrix ``ii``."""
    fresh = iter(_fresh_letters((target,), len(target) - len(unique)))
    renamed, deltas, seen = [], [], set()
    for c in target:
        if c in seen:
            f = next(fresh)
            renamed.append(f)
            deltas.append(c + f)
        else:
            seen.add(c)
            renamed.append(c)
    eyes = [np.eye(sizes[d[0]]) for d in deltas]
    return einsum(ct, *eyes, inputs=(unique,) + tuple(deltas), output="".join(renamed))


def einsum_flops(out, *operands, inputs, output):
    """Two flops per point of the full index space, as a two-operand contraction."""
    sizes = {}
    for letters, x in zip(inputs, operands):
        sizes.update(zip(letters, shape_of(x)))
    return 2 * int(np.prod(list(sizes.values()) or [1]))


einsum = defop("einsum", _einsum_impl, nargs=None, jvp=_einsum_jvp, vjp=_einsum_vjp,
               flops=einsum_flops,
               doc="np.einsum with explicit subscripts (an ellipsis is given letters "
                   "first; no broadcasting of size-1 letters). Its rules are einsums "
                   "with permuted subscripts.")


def _sublist_subscripts(operands):
    """The subscripts string and arrays of the interleaved form
    ``einsum(a, [0, 1], b, [1, 2], [0, 2])``."""
    def letters(sublist):
        return "".join("..." if s is Ellipsis else string.ascii_letters[s] for s in sublist)
    arrays, sublists = operands[0::2], operands[1::2]
    if len(operands) % 2:  # the last element is the output sublist
        arrays, output = arrays[:-1], "->" + letters(operands[-1])
    else:
        output = ""
    return ",".join(letters(s) for s in sublists) + output, list(arrays)


def _expand_ellipsis(inputs, output, arrays):
    """Subscripts with each '...' replaced by letters for the axes it covers
    (right-aligned across operands, as NumPy broadcasts them)."""
    covered = [len(shape_of(x)) - len(sub.replace("...", "")) if "..." in sub else 0
               for sub, x in zip(inputs, arrays)]
    batch = _fresh_letters(inputs + ((output or ""),), max(covered, default=0))
    inputs = tuple(sub.replace("...", batch[len(batch) - n:] if n else "")
                   for sub, n in zip(inputs, covered))
    if output is None:  # implicit mode: the ellipsis axes first
        lhs = "".join(inputs)
        return inputs, batch + "".join(sorted(c for c in set(lhs) if c not in batch
                                              and lhs.count(c) == 1))
    return inputs, output.replace("...", batch)


def _parse_einsum(subscripts, arrays):
    """(inputs, output) subscripts of an einsum call, checked against ``arrays``."""
    spec = subscripts.replace(" ", "")
    if "->" in spec:
        lhs, output = spec.split("->")
    else:
        lhs, output = spec, None
    inputs = tuple(lhs.split(","))
    if len(inputs) != len(arrays):
        raise ValueError(f"einsum: {len(inputs)} subscripts for {len(arrays)} operands")
    if "." in spec:
        inputs, output = _expand_ellipsis(inputs, output, arrays)
    elif output is None:  # implicit mode: letters seen once, in alphabetical order
        output = "".join(sorted(c for c in set(lhs) if c.isalpha() and lhs.count(c) == 1))
    sizes = {}
    for sub, x in zip(inputs, arrays):
        if len(sub) != len(shape_of(x)):
            raise ValueError(f"einsum: subscripts {sub!r} for an operand of shape {shape_of(x)}")
        for c, n in zip(sub, shape_of(x)):
            if sizes.setdefault(c, n) != n:
                raise NotImplementedError(
                    f"einsum: letter {c!r} has sizes {sizes[c]} and {n}; broadcasting "
                    "size-1 axes is not supported on traced values")
    if len(set(output)) != len(output) or not set(output) <= set("".join(inputs)):
        raise ValueError(f"einsum: invalid output subscripts {output!r}")
    return inputs, output


def np_einsum(*operands, out=None, optimize=False, **kwargs):
    if out is not None:
        raise TypeError("einsum(..., out=...) cannot hold a traced value: "
                        "use the returned value instead of out=")
    if kwargs:
        raise NotImplementedError(f"einsum: option(s) {sorted(kwargs)} are not supported "
                                  "on traced values")
    if isinstance(operands[0], str):
        subscripts, *arrays = operands
    else:
        subscripts, arrays = _sublist_subscripts(operands)
    inputs, output = _parse_einsum(subscripts, arrays)
    return einsum(*arrays, inputs=inputs, output=output)


register_numpy(np.einsum, np_einsum)
