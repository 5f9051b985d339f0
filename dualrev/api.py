"""The transformations: grad, vjp, jvp, jacobians, derivative.

Each one starts a trace (a :class:`~dualrev.reverse.Tape` or a
:class:`~dualrev.forward.ForwardTrace`), wraps the selected arguments as
traced values, runs the user's function, and reads the result off.
"""

import numbers

import numpy as np

from .core import check_not_escaped, close
from .costmodel import default_chunk_size, predict_jacobian_mode, tape_cost
from .forward import ForwardTrace
from .lazy import computed, guard_materialization, is_lazy, lazy_float
from .numpy_dispatch import TracedArray
from .registry import Op, Tracer, dtype_of, shape_of, strip_derivatives
from .reverse import Tape
from .tree import flatten, unflatten

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "jacfwd", "jacrev", "jacobian",
           "derivative", "stop_gradient"]


# ---- inputs ----------------------------------------------------------------

def as_float(x, where="argument"):
    """``x`` as a differentiable float value, or a TypeError naming ``where``."""
    if isinstance(x, np.matrix):
        raise TypeError(f"{where} is a numpy.matrix, whose * and ** are matrix "
                        "products: dualrev differentiates ndarray semantics only. Pass "
                        "np.asarray(x) and write matrix products with @")
    if isinstance(x, Tracer) and x.staged:  # under dualrev.compile: as its value would be
        return x if as_float(x.value, where) is x.value else _TO_FLOAT64(x)
    if isinstance(x, np.ndarray):
        kind = x.dtype.kind
        if kind == "f":
            return x
        if kind in "iu":
            return x.astype(np.float64)
        raise TypeError(f"{where} has dtype {x.dtype}; dualrev differentiates real "
                        "floating-point arrays only")
    if isinstance(x, (Tracer, np.floating)):
        return x
    if isinstance(x, float):
        return np.float64(x)  # NumPy semantics: x / 0 is inf with a warning
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{where} is a bool; dualrev differentiates real "
                        "floating-point values (pass a float)")
    if isinstance(x, numbers.Integral):
        return np.float64(x)
    if isinstance(x, (complex, np.complexfloating)):
        raise TypeError(f"{where} is complex; dualrev differentiates real "
                        "floating-point values only")
    if isinstance(x, (list, tuple)):
        raise TypeError(f"{where} is a {type(x).__name__} inside a leaf position")
    if is_lazy(x):
        return lazy_float(x, where)
    raise TypeError(f"{where} has type {type(x).__name__}; dualrev differentiates "
                    "floats, NumPy float arrays, and tuples/lists/dicts of them")


#: An integer input, converted as :func:`as_float` converts it (recorded
#: when staged, so that a compiled program converts it at each call).
_TO_FLOAT64 = Op("to_float64", lambda x: np.asarray(x, np.float64)[()], None, None)


def argnums_tuple(argnums, nargs):
    """``(positions, multiple)``: ``argnums`` checked against ``nargs`` arguments."""
    multiple = not _is_int(argnums)
    try:
        nums = tuple(argnums) if multiple else (argnums,)
    except TypeError:
        nums = (argnums,)
    for n in nums:
        if not _is_int(n):
            raise TypeError(f"argnums must be an int or a tuple of ints, not "
                            f"{argnums!r}")
        if not -nargs <= n < nargs:
            raise ValueError(f"argnums={argnums!r} but the function was called with "
                             f"{nargs} positional argument(s)")
    return tuple(n % nargs for n in nums), multiple


def _is_int(n):
    return isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_))


LIST_HINT = ("note: a Python list argument is treated as a structure of scalars (its "
             "gradient is a list of scalars), not as an array: pass np.array(...) to "
             "use it as one")


def _call(f, args, kwargs, nums):
    """``f(*args, **kwargs)``; a TypeError says so when a differentiated
    argument is a Python list (a structure of scalars, not an array)."""
    try:
        return f(*args, **kwargs)
    except TypeError as error:
        if any(isinstance(args[n], list) for n in nums):
            error.add_note(LIST_HINT)
        raise


def checked_output(out, loss=False):
    """``out`` after checking that each leaf is a value a derivative can be
    read from: not None or a string (a forgotten ``return``), nor for a
    scalar ``loss`` a bool (a comparison), and not a traced value of a
    finished transformation."""
    rejected = (str, bytes, bool, np.bool_) if loss else (str, bytes)
    for leaf in flatten(out)[0]:
        check_not_escaped(leaf)
        if leaf is None or isinstance(leaf, rejected):
            hint = " (a missing return statement?)" if leaf is None else ""
            raise TypeError(f"the function returned {leaf!r} of type {type(leaf).__name__}"
                            f"{hint}: it has no derivative; return a float or a float "
                            "array")
    return out


def _float_leaves(tree, what):
    leaves, treedef = flatten(tree)
    return [as_float(x, f"{what}, leaf {i}" if len(leaves) > 1 else what)
            for i, x in enumerate(leaves)], treedef


def _select(args, argnums):
    """Flattened differentiable leaves of the selected arguments."""
    nums, multiple = argnums_tuple(argnums, len(args))
    selected = tuple(args[n] for n in nums) if multiple else args[nums[0]]
    leaves, treedef = _float_leaves(selected, f"argument {nums[0] if not multiple else nums}")
    return nums, multiple, leaves, treedef


def _substitute(args, nums, multiple, treedef, traced_leaves):
    rebuilt = unflatten(treedef, traced_leaves)
    args = list(args)
    for k, n in enumerate(nums):
        args[n] = rebuilt[k] if multiple else rebuilt
    return args


def _value_at(trace, x):
    """The value of ``x`` one level below ``trace`` (x itself if constant there)."""
    if isinstance(x, TracedArray) and x._trace is trace:
        return x.value
    return x


FLOAT64 = np.dtype(np.float64)


def float_dtype(*values):
    """The floating dtype of ``values`` (float64 when none is floating): the
    dtype a derivative of them is computed and returned in."""
    dtype = np.result_type(*[dtype_of(v) for v in values]) if values else FLOAT64
    return dtype if dtype.kind in "fc" else FLOAT64


def _values_at(trace, tree):
    """``tree`` with ``trace``'s derivative dropped from every leaf: auxiliary
    outputs leave the transformation as values (its trace is then closed)."""
    leaves, treedef = flatten(tree)
    return unflatten(treedef, [_value_at(trace, leaf) for leaf in leaves])


def _zeros_like(x):
    dtype = float_dtype(x)
    return np.zeros(shape_of(x), dtype) if shape_of(x) else dtype.type(0.0)


# ---- reverse mode ------------------------------------------------------------

def record(f, args, kwargs, argnums):
    """Run ``f`` on a new tape: (tape, input nodes, input leaves, structure, output)."""
    nums, multiple, leaves, treedef = _select(args, argnums)
    tape = Tape()
    nodes = [tape.input(x) for x in leaves]
    try:
        out = _call(f, _substitute(args, nums, multiple, treedef, nodes), kwargs, nums)
    except BaseException:
        close(tape)
        raise
    return tape, nodes, leaves, treedef, out


def _pull(tape, nodes, leaves, seeds, release=False):
    """Cotangents of the input nodes for ``seeds`` (index -> cotangent)."""
    if not seeds:
        return [_zeros_like(x) for x in leaves]
    cts = tape.backward(seeds, [n.index for n in nodes], release)
    return [_zeros_like(x) if c is None else c for c, x in zip(cts, leaves)]


def _check_scalar(out, has_aux):
    if isinstance(out, (tuple, list, dict)):
        hint = "" if has_aux else (" If f returns (loss, aux), pass has_aux=True.")
        raise TypeError(
            f"grad requires a function with a scalar output, but it returned a "
            f"{type(out).__name__}.{hint} For several outputs use dualrev.jacrev "
            "or dualrev.vjp")
    if shape_of(out) != ():
        raise TypeError(
            f"grad requires a function with a scalar output, but it returned shape "
            f"{shape_of(out)}: use dualrev.jacrev for the full Jacobian, or "
            "dualrev.vjp for vector-Jacobian products")


def _split_aux(out, who):
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        what = (f"a {type(out).__name__} of length {len(out)}"
                if isinstance(out, (tuple, list)) else f"a {type(out).__name__}")
        raise TypeError(f"{who}(..., has_aux=True) needs a function returning a pair "
                        f"(output, aux), but it returned {what}; without auxiliary "
                        "data, drop has_aux=True")
    return out


def value_and_grad(f, argnums=0, has_aux=False):
    """A function returning ``(f(*args), grad f(*args))``, by reverse mode.

    Parameters
    ----------
    f : callable
        Returns a scalar (shape ``()``); or ``(scalar, aux)`` if ``has_aux``.
    argnums : int or tuple of int
        Which positional arguments to differentiate.
    has_aux : bool
        ``f`` returns a pair whose second item is passed through (as values,
        without this transformation's derivative).

    Returns
    -------
    callable
        ``(value, gradient)`` or ``((value, aux), gradient)``; the gradient has
        the structure of the selected argument(s).

    See Also
    --------
    grad, vjp, jacrev

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> dualrev.value_and_grad(lambda x: np.sum(x ** 2))(np.array([1.0, 2.0]))
    (np.float64(5.0), array([2., 4.]))
    """
    def value_and_grad_f(*args, **kwargs):
        tape, nodes, leaves, treedef, out = record(f, args, kwargs, argnums)
        try:
            if has_aux:
                out, aux = _split_aux(out, "grad")
            _check_scalar(out, has_aux)
            checked_output(out, loss=True)
            index = tape.index_of(out)
            seeds = {} if index is None else {index: np.ones((), np.result_type(out.primal))[()]}
            grads = unflatten(treedef, _pull(tape, nodes, leaves, seeds, release=True))
            value = _value_at(tape, out)
        finally:
            close(tape)
        return ((value, _values_at(tape, aux)) if has_aux else value), grads
    value_and_grad_f.__name__ = f"value_and_grad({getattr(f, '__name__', 'f')})"
    return computed(value_and_grad_f, argnums)


def grad(f, argnums=0, has_aux=False):
    """The gradient of a scalar function, by reverse mode.

    Parameters
    ----------
    f : callable
        Returns a scalar (shape ``()``); or ``(scalar, aux)`` if ``has_aux``.
    argnums : int or tuple of int
        Which positional arguments to differentiate. Arguments may be floats,
        float arrays, or nested tuples/lists/dicts of them.
    has_aux : bool
        ``f`` returns ``(scalar, aux)``; the gradient function then returns
        ``(gradient, aux)``, ``aux`` without this transformation's derivative.

    Returns
    -------
    callable
        Same arguments as ``f``; returns the gradient in the structure of the
        selected argument(s).

    See Also
    --------
    value_and_grad, jacrev, vjp, hvp

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> dualrev.grad(lambda x, y, z: (x + y) * z, argnums=(0, 1, 2))(-2.0, 5.0, -4.0)
    (np.float64(-4.0), np.float64(-4.0), np.float64(3.0))
    >>> bool(dualrev.grad(dualrev.grad(np.sin))(0.5) == -np.sin(0.5))
    True
    """
    vg = value_and_grad(f, argnums, has_aux)

    def grad_f(*args, **kwargs):
        value, g = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g
    grad_f.__name__ = f"grad({getattr(f, '__name__', 'f')})"
    return grad_f


def vjp(f, *primals, has_aux=False):
    """Evaluate ``f`` and return a function pulling cotangents back through it.

    The tape is recorded once; the returned ``vjp_fn`` sweeps it on every
    call, so many cotangents cost one recording.

    Parameters
    ----------
    f : callable
        A function of the positional ``primals``.
    *primals
        Points to differentiate at (floats, arrays, nested structures).
    has_aux : bool
        ``f`` returns ``(out, aux)``.

    Returns
    -------
    out : value of ``f(*primals)``
    vjp_fn : callable
        ``vjp_fn(cotangent)`` with ``cotangent`` shaped like ``out`` returns a
        tuple of cotangents, one per primal, each shaped like it.
    aux : only if ``has_aux``

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> W = np.arange(6.0).reshape(2, 3)
    >>> out, vjp_fn = dualrev.vjp(lambda x: W @ x, np.ones(3))
    >>> vjp_fn(np.array([1.0, 0.0]))
    (array([0., 1., 2.]),)
    """
    with guard_materialization():
        tape, nodes, leaves, treedef, out = record(
            f, primals, {}, tuple(range(len(primals))))
    try:
        if has_aux:
            out, aux = _split_aux(out, "vjp")
        out_leaves, out_def = flatten(checked_output(out))
    finally:
        close(tape)  # vjp_fn still sweeps it; nothing more is recorded on it
    out_index = [tape.index_of(o) for o in out_leaves]

    def vjp_fn(cotangent):
        ct_leaves, ct_def = flatten(cotangent)
        if len(ct_leaves) != len(out_leaves):
            raise ValueError("the cotangent must have the structure of the output")
        seeds = {}
        for i, c, o in zip(out_index, ct_leaves, out_leaves):
            if i is None:
                continue
            if shape_of(c) != shape_of(o):
                raise ValueError(f"cotangent of shape {shape_of(c)} for an output of "
                                 f"shape {shape_of(o)}")
            seeds[i] = c if i not in seeds else seeds[i] + c
        with guard_materialization():
            return tuple(unflatten(treedef, _pull(tape, nodes, leaves, seeds)))

    value = unflatten(out_def, [_value_at(tape, o) for o in out_leaves])
    return (value, vjp_fn, _values_at(tape, aux)) if has_aux else (value, vjp_fn)


# ---- forward mode ------------------------------------------------------------

def jvp(f, primals, tangents, has_aux=False):
    """Evaluate ``f`` and its directional derivative, by forward mode.

    Parameters
    ----------
    f : callable
    primals : tuple
        The positional arguments of ``f``.
    tangents : tuple
        One tangent per primal, with the same structure and shapes.

    Returns
    -------
    out, tangent_out
        ``f(*primals)`` and ``J v``, both in the structure of the output.

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> dualrev.jvp(np.sin, (0.0,), (2.0,))
    (np.float64(0.0), np.float64(2.0))
    """
    primals, tangents = tuple(primals), tuple(tangents)
    leaves, treedef = _float_leaves(primals, "primal")
    t_leaves, t_def = flatten(tangents)
    if len(t_leaves) != len(leaves):
        raise ValueError("tangents must have the structure of primals")
    for x, t in zip(leaves, t_leaves):
        if shape_of(t) != shape_of(x):
            raise ValueError(f"tangent of shape {shape_of(t)} for a primal of "
                             f"shape {shape_of(x)}")
    with guard_materialization():
        out = _push(f, primals, tuple(range(len(primals))), [as_float(t, "tangent")
                                                             for t in t_leaves])
    if has_aux:
        raise NotImplementedError("jvp(has_aux=True) is not supported")
    return out


def _push(f, args, argnums, tangent_leaves, kwargs=None):
    """Run ``f`` with dual inputs; return (out, tangent_out) structures."""
    nums, multiple, leaves, treedef = _select(args, argnums)
    trace = ForwardTrace()
    duals = [trace.dual(x, t) for x, t in zip(leaves, tangent_leaves)]
    try:
        out = _call(f, _substitute(args, nums, multiple, treedef, duals), kwargs or {},
                    nums)
        out_leaves, out_def = flatten(checked_output(out))
    finally:
        close(trace)
    primal, tangent = [], []
    for o in out_leaves:
        p, t = trace.unpack(o)
        primal.append(p)
        # A constant output has a zero tangent (of its shape and dtype).
        tangent.append(_zeros_like(p) if t is None else t)
    return unflatten(out_def, primal), unflatten(out_def, tangent)


def derivative(f):
    """The derivative of a function of one scalar, by forward mode.

    One forward pass gives the derivative of every output: the cheap
    direction for scalar-in, vector-out functions (a trajectory).

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> dualrev.derivative(lambda t: np.stack([np.cos(t), np.sin(t)]))(0.5)
    array([-0.47942554,  0.87758256])
    """
    def derivative_f(x, *args, **kwargs):
        if shape_of(x) != ():
            raise TypeError(f"derivative takes a scalar input, got shape {shape_of(x)}: "
                            "use jvp or jacfwd")
        x = as_float(x, "argument 0")
        out, t = _push(f, (x,) + args, 0, [np.float64(1.0)], kwargs)
        return t
    derivative_f.__name__ = f"derivative({getattr(f, '__name__', 'f')})"
    return derivative_f


# ---- Jacobians -----------------------------------------------------------------

def _assemble(out_leaves, out_def, in_leaves, in_def, multiple, block):
    """Jacobian blocks ``block(i, j)`` (shape out_i + in_j) in nested structure."""
    def row(i):
        cols = [block(i, j) for j in range(len(in_leaves))]
        return unflatten(in_def, cols)
    return unflatten(out_def, [row(i) for i in range(len(out_leaves))])


def jacfwd(f, argnums=0, chunk_size=None):
    """The Jacobian by forward mode: one batched pass per chunk of inputs.

    All n input directions are pushed together as tangents with a leading
    batch axis (in chunks of ``chunk_size`` directions to bound memory), so
    forward mode costs one pass per input direction but one Python pass per
    chunk. Cheap when inputs are few and outputs many.

    Parameters
    ----------
    f : callable
    argnums : int or tuple of int
    chunk_size : int, optional
        Directions per pass; by default all, up to about 4M tangent entries.

    Returns
    -------
    callable
        Returns the Jacobian with shape ``out.shape + x.shape`` (nested as
        output structure of input structure for structured arguments).

    See Also
    --------
    jacrev, jacobian

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> dualrev.jacfwd(lambda x: x[:2] * x[1:])(np.array([1.0, 2.0, 3.0]))
    array([[2., 1., 0.],
           [0., 3., 2.]])
    """
    def jacfwd_f(*args, **kwargs):
        nums, multiple, leaves, treedef = _select(args, argnums)
        sizes = [int(np.prod(shape_of(x))) for x in leaves]
        n = sum(sizes)
        chunk = chunk_size or default_chunk_size(n)
        offsets = np.cumsum([0] + sizes)
        dtype = float_dtype(*leaves)  # the Jacobian keeps the inputs' dtype
        blocks = None
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            basis = np.zeros((stop - start, n), dtype)  # directions start..stop-1 only
            basis[np.arange(stop - start), np.arange(start, stop)] = 1.0
            tangents = [basis[:, offsets[j]:offsets[j + 1]].reshape((stop - start,) + shape_of(x))
                        for j, x in enumerate(leaves)]
            out, tangent = _push(f, args, argnums, tangents, kwargs)
            out_leaves, out_def = flatten(out)
            t_leaves = flatten(tangent)[0]
            part = [np.broadcast_to(t, (stop - start,) + shape_of(o)) for o, t in
                    zip(out_leaves, t_leaves)]
            blocks = part if blocks is None else [np.concatenate([b, p]) for b, p in
                                                  zip(blocks, part)]
        if n == 0:
            out_leaves, out_def = flatten(checked_output(f(*args, **kwargs)))
            blocks = [np.zeros((0,) + shape_of(o), dtype) for o in out_leaves]

        def block(i, j):
            b = blocks[i][offsets[j]:offsets[j + 1]]  # (n_j, *out_i)
            out_shape = shape_of(out_leaves[i])
            b = np.moveaxis(b, 0, -1) if out_shape else b
            return np.reshape(b, out_shape + shape_of(leaves[j]))
        return _assemble(out_leaves, out_def, leaves, treedef, multiple, block)
    jacfwd_f.__name__ = f"jacfwd({getattr(f, '__name__', 'f')})"
    return computed(jacfwd_f, argnums)


def jacrev(f, argnums=0):
    """The Jacobian by reverse mode: one recording, one sweep per output.

    Cheap when outputs are few and inputs many.

    Returns
    -------
    callable
        Returns the Jacobian with shape ``out.shape + x.shape``.

    See Also
    --------
    jacfwd, jacobian

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> dualrev.jacrev(lambda x: x[:2] * x[1:])(np.array([1.0, 2.0, 3.0]))
    array([[2., 1., 0.],
           [0., 3., 2.]])
    """
    def jacrev_f(*args, **kwargs):
        tape, nodes, leaves, treedef, out = record(f, args, kwargs, argnums)
        try:
            _, multiple = argnums_tuple(argnums, len(args))
            out_leaves, out_def = flatten(checked_output(out))
            rows = [_jacrev_rows(tape, nodes, leaves, o) for o in out_leaves]
        finally:
            close(tape)

        def block(i, j):
            return np.reshape(rows[i][j], shape_of(out_leaves[i]) + shape_of(leaves[j]))
        return _assemble(out_leaves, out_def, leaves, treedef, multiple, block)
    jacrev_f.__name__ = f"jacrev({getattr(f, '__name__', 'f')})"
    return computed(jacrev_f, argnums)


def _jacrev_rows(tape, nodes, leaves, o):
    """Per input leaf, the cotangents of the output leaf ``o``'s elements, stacked."""
    index = tape.index_of(o)
    size = int(np.prod(shape_of(o)))
    dtype = float_dtype(o, *leaves)
    if index is None or size == 0:
        return [np.zeros((size,) + shape_of(x), float_dtype(x, o)) for x in leaves]
    per_input = [[] for _ in leaves]
    for seed in np.eye(size, dtype=dtype):
        seed = seed.reshape(shape_of(o)) if shape_of(o) else seed[0]
        for j, c in enumerate(_pull(tape, nodes, leaves, {index: seed})):
            per_input[j].append(c)
    # np.stack, not assignment into an array: the cotangents may be
    # traced by an enclosing transformation (jacfwd(jacrev(f))).
    return [np.stack(cs) for cs in per_input]


def jacobian(f, argnums=0, mode="auto"):
    """The Jacobian, by the cheaper mode unless ``mode`` says which.

    Forward mode costs one pass per input element, reverse mode one sweep per
    output element (after one recording), so ``mode="auto"`` records ``f``
    once for the output size and lets :func:`choose_mode` pick. The choice is
    remembered per input structure and shapes: later calls with inputs of
    the same structure and shapes go straight to the chosen mode, without
    recording ``f`` again (the returned function's ``chosen_modes`` dict
    shows what was picked).

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> jac = dualrev.jacobian(np.sin)
    >>> jac(np.zeros(2))
    array([[1., 0.],
           [0., 1.]])
    >>> list(jac.chosen_modes.values())
    ['fwd']
    """
    if mode not in ("auto", "fwd", "rev"):
        raise ValueError(f"mode must be 'auto', 'fwd' or 'rev', not {mode!r}")
    chosen_modes = {}

    def jacobian_f(*args, **kwargs):
        chosen = mode
        if mode == "auto":
            key = _structure_key(args, argnums, kwargs)
            chosen = chosen_modes.get(key)
            if chosen is None:
                chosen = chosen_modes[key] = choose_mode(f, args, kwargs, argnums)
        if chosen == "fwd":
            return jacfwd(f, argnums)(*args, **kwargs)
        return jacrev(f, argnums)(*args, **kwargs)
    jacobian_f.chosen_modes = chosen_modes
    jacobian_f.__name__ = f"jacobian({getattr(f, '__name__', 'f')})"
    return jacobian_f


def _structure_key(args, argnums, kwargs):
    """What the mode choice depends on: structure and shapes of the arguments."""
    leaves, treedef = flatten((args, kwargs))
    return (repr(treedef), argnums if isinstance(argnums, int) else tuple(argnums),
            tuple(getattr(x, "shape", type(x).__name__) for x in leaves))


def choose_mode(f, args, kwargs=None, argnums=0):
    """Record ``f`` once and return the Jacobian mode the cost model prefers.

    Forward when ``n <= m``, and also past that while the per-primitive cost
    of ``m`` reverse sweeps outweighs the extra flops (see
    :mod:`dualrev.costmodel`). This is what ``jacobian(f, mode="auto")`` uses.

    Parameters
    ----------
    f : callable
    args : tuple
        Positional arguments of ``f``.
    kwargs : dict, optional
    argnums : int or tuple of int
        The differentiated arguments.

    Returns
    -------
    str
        ``"fwd"`` or ``"rev"``.

    See Also
    --------
    jacobian, dualrev.costmodel.predict_jacobian_mode

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> dualrev.choose_mode(lambda x: np.sum(x ** 2), (np.ones(1000),))
    'rev'
    """
    tape, nodes, leaves, treedef, out = record(f, tuple(args), kwargs or {}, argnums)
    close(tape)
    n = sum(int(np.prod(shape_of(x))) for x in leaves)
    m = sum(int(np.prod(shape_of(o))) for o in flatten(out)[0])
    return predict_jacobian_mode(tape_cost(tape), n, m)


def stop_gradient(x):
    """The value of ``x`` with every derivative dropped (a constant).

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> float(dualrev.grad(lambda x: x * dualrev.stop_gradient(x))(3.0))
    3.0
    """
    return strip_derivatives(x)
