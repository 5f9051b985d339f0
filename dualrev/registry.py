"""The one table of primitives.

Every primitive is an :class:`Op`: its NumPy implementation, one tangent (JVP)
rule and one cotangent (VJP) rule per differentiable argument, side by side.

Rule vocabulary, used by every rule in :mod:`dualrev.ops`:

``x, y, ...``  the op's array arguments (plain arrays or traced values)
``out``        the op's output
``t``          the tangent of one argument (may carry leading batch axes)
``g``          the cotangent of the output
``**params``   the op's static, non-differentiable parameters (axis, shape...)

A JVP rule is ``rule(t, out, *args, **params)`` and returns the tangent that
argument contributes to ``out``; a VJP rule is ``rule(g, out, *args, **params)``
and returns that argument's cotangent. Rules are written with NumPy calls and
operators on the values they receive, never on unwrapped data, so a rule
applied to traced values is itself traced: that is what makes every
derivative differentiable again.
"""

import dataclasses
import functools
import sys

import numpy as np

from .core import NO_PARAMS, Tracer, bind, new_level  # noqa: F401  (re-exported)

__all__ = ["Op", "Teaching", "defop", "defunary", "defbinary", "defnondiff",
           "register_numpy", "unregister_numpy", "OPS", "NUMPY_FUNCTIONS", "ELEMENTWISE",
           "REDUCTION", "NO_FLOPS", "cubic_flops", "default_flops"]

#: name -> Op, every registered primitive.
OPS = {}

#: NumPy/SciPy callable -> function of the same signature built from primitives.
NUMPY_FUNCTIONS = {}


# ---- what an op teaches and what it costs ------------------------------------

@dataclasses.dataclass(frozen=True)
class Teaching:
    """How :func:`dualrev.explain` shows an op; every field is optional.

    Templates name the op's arguments ``{0}``, ``{1}``..., its output ``{o}``,
    the upstream gradient ``{g}`` and an argument's tangent ``{t}``.

    Attributes
    ----------
    short : str
        Prefix of the names of its stages (``mul`` gives ``mul1``, ``mul2``).
    display : str
        The name shown for the op (``sigmoid`` for ``expit``).
    infix : str
        The expression of one stage (``"{0} * {1}"``).
    local : tuple of str
        Per argument, the local derivative ``d out / d arg`` of an
        elementwise op (``("{1}", "{0}")`` for multiply).
    rev, fwd : tuple of str
        Per argument, the contribution of a non-elementwise op in reverse
        mode (from ``{g}``) and forward mode (from ``{t}``).
    gate, fwd_gate : str
        One sentence on the pattern of its reverse and forward rules.
    """

    short: str = None
    display: str = None
    infix: str = None
    local: tuple = None
    rev: tuple = None
    fwd: tuple = None
    gate: str = None
    fwd_gate: str = None


def size_of(x):
    """Number of scalars in a plain or traced value (or shape placeholder)."""
    return int(np.prod(getattr(x, "shape", ())))


def default_flops(out, *args, **params):
    """Flops of an op that declares none: the output's size. An op keeping
    this default has not said what it costs (see :data:`ELEMENTWISE`)."""
    return size_of(out)


def elementwise_flops(out, *args, **params):
    """One flop per output element."""
    return size_of(out)


def reduction_flops(out, *args, **params):
    """One flop per element of the first argument."""
    return size_of(args[0])


def no_flops(out, *args, **params):
    """No arithmetic: shape and indexing ops only move data."""
    return 0


#: Flops rule of an elementwise op, declared: one flop per output element.
ELEMENTWISE = elementwise_flops
#: Flops rule of a reduction: one flop per input element.
REDUCTION = reduction_flops
#: Flops rule of an op that only moves data.
NO_FLOPS = no_flops


def cubic_flops(factor):
    """Flops rule ``factor * n**3`` per matrix of a square (batched) first argument.

    The textbook estimates: LU (solve, det) ``2/3``, inversion ``2``,
    Cholesky ``1/3``, the symmetric eigensolver ``9``.
    """
    def cubic(out, *args, **params):
        a = getattr(args[0], "shape", ())
        n = a[-1] if a else 1
        batch = size_of(args[0]) // max(n * n, 1)
        return int(factor * n ** 3 * max(batch, 1))
    cubic.__name__ = f"cubic_flops_{factor:.3g}"
    return cubic


def registered_op(name):
    """The op registered as ``name`` (how a registered :class:`Op` unpickles)."""
    return OPS[name]


class Op:
    """A primitive: implementation and derivative rules side by side.

    Calling an ``Op`` applies it to plain or traced values alike.

    Attributes
    ----------
    name : str
        Unique name in the registry.
    impl : callable
        ``impl(*arrays, **params)`` on plain NumPy values.
    jvps, vjps : tuple of callable or None, or None
        One rule per positional argument (``None`` where the argument is not
        differentiable); ``None`` for a non-differentiable op.
    saves : tuple of tuple, or None
        Per argument, which values its rules read (see :func:`defop`).
    identity : tuple of int
        Arguments whose rules are the identity when they have the output's
        shape (see :func:`defop`).
    vjp_add : Op or None
        The op that accumulates argument 0's cotangent into a buffer (see
        :func:`defop`).
    into : callable or None
        ``into(buffer, *args, **params)``: the op written into a buffer of
        the output's shape and dtype, which may be an argument (compiled
        programs reuse buffers through it).
    flops : callable
        ``flops(out, *args, **params)``: floating-point operations of one
        call, read from shapes only (``args`` and ``out`` may be arrays or
        shape-and-dtype placeholders). :func:`default_flops` (the output
        size) when the op declares none.
    teaching : Teaching or None
        How :func:`dualrev.explain` shows the op; None when it declares
        nothing (it is then shown under its name).
    loop : str or None
        The op in a fused loop body (the numba backend of
        :func:`dualrev.compile`): a scalar expression of its arguments
        ``{0}``, ``{1}``... (``"np.sin({0})"``, ``"{0} * {1}"``), equal to
        ``impl`` on scalars to 1e-14 relative. None: the op ends a fused run.
    """

    __slots__ = ("name", "impl", "jvps", "vjps", "vjp_add", "into", "saves", "drops",
                 "identity", "flops", "teaching", "loop", "doc")

    def __init__(self, name, impl, jvps, vjps, doc=None):
        self.name = name
        self.impl = impl
        self.jvps = jvps
        self.vjps = vjps
        # Optional op accumulating the cotangent of argument 0 into a buffer,
        # ``buffer = vjp_add(buffer, g, **params)``, run in place (its
        # ``into``) when the sweep owns the buffer: indexing uses it.
        self.vjp_add = None
        # Optional ``into(buffer, *args, **params)``: the op written into a
        # buffer of the output's shape and dtype, which may be an argument.
        # An op with this form returns new memory (never a view) when called.
        self.into = None
        # Per argument, the values its rules read (argument positions and
        # "out"); None reads everything. See ``defop(saves=...)``.
        self.saves = None
        # ``drops[mask]``: what a record drops when the arguments in the bit
        # mask are differentiated: (argument positions, whether "out").
        self.drops = None
        # Arguments whose rules are the identity when they have the output's
        # shape (x in x + c): a tape records nothing then. See defop(identity=).
        self.identity = ()
        self.flops = default_flops
        self.teaching = None
        self.loop = None
        self.doc = doc or getattr(impl, "__doc__", None)

    def __reduce_ex__(self, protocol):
        # A registered op pickles as its name (a program sent to a dask
        # worker finds the worker's own op); others pickle their fields.
        if OPS.get(self.name) is self:
            return registered_op, (self.name,)
        return object.__reduce_ex__(self, protocol)

    @property
    def differentiable(self):
        return self.vjps is not None

    __call__ = bind  # op(*args, **params) is bind(op, *args, **params)

    def __repr__(self):
        return f"<dualrev op {self.name}>"


class PerArgument:
    """Rules of a variadic op: ``rules[i]`` is ``factory(i)``, made once."""

    __slots__ = ("factory", "cache")

    def __init__(self, factory):
        self.factory = factory
        self.cache = {}

    def __getitem__(self, i):
        rule = self.cache.get(i)
        if rule is None:
            rule = self.cache[i] = self.factory(i)
        return rule


def _as_rules(rules, nargs, name, kind):
    if nargs is None:  # variadic: rules is a factory of the i-th rule
        return PerArgument(rules)
    if rules is None:
        return (None,) * nargs
    if callable(rules):
        rules = (rules,)
    rules = tuple(rules)
    if len(rules) != nargs:
        raise ValueError(f"op {name!r}: {len(rules)} {kind} rule(s) for nargs={nargs} "
                         "arguments; give exactly one per argument, writing None for "
                         "an argument that is not differentiable")
    return rules


def _registered_by_dualrev():
    """Whether the caller of defop (past this module's own helpers) is dualrev."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    return frame is not None and frame.f_globals.get("__name__", "").startswith("dualrev.")


def _checked_vjp(op, pos, rule):
    """``rule`` raising when its cotangent does not have argument ``pos``'s shape."""
    @functools.wraps(rule)
    def checked(g, out, *args, **params):
        c = rule(g, out, *args, **params)
        if shape_of(c) != shape_of(args[pos]):
            raise ValueError(f"op {op.name!r}: the VJP rule of argument {pos} returned "
                             f"shape {shape_of(c)} for an argument of shape "
                             f"{shape_of(args[pos])}; a cotangent has its argument's "
                             "shape (sum broadcast axes back with unbroadcast)")
        return c
    return checked


def _checked_jvp(op, pos, rule):
    """``rule`` raising when its tangent is not shaped like the output (after
    the batch axes that the argument's tangent carries)."""
    @functools.wraps(rule)
    def checked(t, out, *args, **params):
        c = rule(t, out, *args, **params)
        ts, xs = shape_of(t), shape_of(args[pos])
        expected = ts[:len(ts) - len(xs)] + shape_of(out)
        if shape_of(c) != expected:
            raise ValueError(f"op {op.name!r}: the JVP rule of argument {pos} returned "
                             f"shape {shape_of(c)} where the output's tangent has shape "
                             f"{expected} (batch axes, then the output's shape)")
        return c
    return checked


def _with_shape_checks(op):
    """Wrap the rules of an op registered outside dualrev with shape checks
    (dualrev's own rules are tested by the registry-parametrised tests, and
    run unchecked on the hot path)."""
    op.vjps = tuple(r if r is None else _checked_vjp(op, i, r) for i, r in enumerate(op.vjps))
    op.jvps = tuple(r if r is None else _checked_jvp(op, i, r) for i, r in enumerate(op.jvps))


def _linear_jvp(op, argnum):
    def linear_jvp(t, out, *args, **params):
        args = list(args)
        args[argnum] = t
        return bind(op, *args, **params)
    linear_jvp.__name__ = f"{op.name}_linear_jvp_{argnum}"
    return linear_jvp


def _drop_table(saves):
    """For each set of differentiated arguments (as a bit mask), what none of
    their rules read: the argument positions, and whether the output."""
    table = []
    for mask in range(1 << len(saves)):
        read = set().union(*(s for i, s in enumerate(saves) if mask >> i & 1))
        table.append((tuple(k for k in range(len(saves)) if k not in read), "out" not in read))
    return tuple(table)


def defop(name, impl, *, nargs=1, jvp=None, vjp=None, linear=(),
          saves=None, identity=(), vjp_add=None, flops=None, teaching=None,
          loop=None, numpy=(), doc=None, replace=False):
    """Register a differentiable primitive.

    Parameters
    ----------
    name : str
        Unique name of the op.
    impl : callable
        ``impl(*arrays, **params)`` computing the op on plain NumPy values.
    nargs : int or None
        Number of positional (array) arguments; ``None`` for a variadic op,
        whose ``jvp`` and ``vjp`` are then factories ``rule = factory(i)``.
    jvp, vjp : callable or sequence of callable
        One rule per positional argument, ``None`` where an argument is not
        differentiable. ``jvp`` rules are ``rule(t, out, *args, **params)``;
        ``vjp`` rules are ``rule(g, out, *args, **params)``. Both must be
        written with NumPy calls on the values they receive (never on
        unwrapped data) so that they can be differentiated again.
    linear : sequence of int
        Arguments in which the op is linear: their JVP rule is the op applied
        to the tangent, and need not be given.
    saves : sequence of sequence, optional
        For each argument, the values that its two rules read beyond shapes
        and dtypes: argument positions and ``"out"``. A tape record keeps
        only what the rules of its differentiated arguments read; the other
        values are kept as shape and dtype only, so intermediates no rule
        needs are freed as soon as the user's code drops them. ``None`` (the
        default) keeps every value.
    identity : sequence of int
        Arguments whose JVP and VJP rules are the identity whenever the
        argument has the output's shape (``x`` in ``x + c``). When such an
        argument is the only one traced on a tape, the tape records nothing:
        the output shares the argument's cotangent slot.
    vjp_add : Op, optional
        An op ``vjp_add(buffer, g, **params)`` (with the op's params) that
        returns ``buffer`` plus the cotangent of argument 0 for the output
        cotangent ``g``, with an ``into`` form that adds in place: a sweep
        then accumulates into a buffer it owns without materialising the
        cotangent (indexing uses it to stay O(size of g)).
    flops : callable, optional
        ``flops(out, *args, **params)``: floating-point operations of one
        call, computed from shapes only (the cost model,
        :mod:`dualrev.costmodel`, reads it). Default :func:`default_flops`,
        the output size; an elementwise op says so with
        :data:`ELEMENTWISE`.
    teaching : Teaching, optional
        How :func:`dualrev.explain` shows the op.
    loop : str, optional
        The op as a scalar expression of its arguments ``{0}``, ``{1}``...
        in a fused loop body (``"np.sin({0})"``), for the numba backend of
        :func:`dualrev.compile`; it must equal ``impl`` on scalars to 1e-14
        relative. Without it the op runs as a NumPy call between fused loops.
    numpy : callable or sequence of callable
        NumPy or SciPy functions (or ufuncs) that this op implements directly,
        with the same signature.
    doc : str, optional
        Docstring of the op.
    replace : bool
        Allow ``numpy`` to re-route functions that are already routed (see
        :func:`register_numpy`).

    Returns
    -------
    Op
        The registered op; call it like a NumPy function.

    Examples
    --------
    A new op in a few lines: it then works in every mode, at every depth.

    >>> import numpy as np, dualrev
    >>> cube = dualrev.defop(
    ...     "cube_example", lambda x: x ** 3,
    ...     jvp=lambda t, out, x: t * 3 * x ** 2,
    ...     vjp=lambda g, out, x: g * 3 * x ** 2)
    >>> float(dualrev.grad(cube)(2.0))
    12.0
    >>> float(dualrev.grad(dualrev.grad(cube))(2.0))
    12.0
    """
    _check_new_name(name)
    if not callable(impl):
        raise TypeError(f"op {name!r}: impl must be callable, not {type(impl).__name__}")
    op = Op(name, impl, None, None, doc)
    if saves is not None:
        op.saves = tuple(tuple(s) for s in saves)
        op.drops = _drop_table(op.saves)
    op.identity = tuple(identity)
    op.vjp_add = vjp_add
    op.loop = loop
    _describe(op, flops, teaching)
    op.vjps = _as_rules(vjp, nargs, name, "VJP")
    op.jvps = _as_rules(jvp, nargs, name, "JVP")
    if linear:
        jvps = list(op.jvps)
        for i in linear:
            jvps[i] = _linear_jvp(op, i)
        op.jvps = tuple(jvps)
    missing = [i for i in range(nargs or 0)
               if (op.jvps[i] is None) != (op.vjps[i] is None)]
    if missing:
        raise ValueError(f"op {name!r}: argument(s) {missing} have a JVP rule "
                         "but no VJP rule, or the reverse")
    if nargs is not None and not _registered_by_dualrev():
        _with_shape_checks(op)
    register_numpy(numpy, op, replace=replace)
    OPS[name] = op
    return op


def _check_new_name(name):
    if not isinstance(name, str) or not name:
        raise TypeError(f"an op's name must be a non-empty str, not {name!r}")
    if name in OPS:
        raise ValueError(f"an op named {name!r} is already registered")


def _describe(op, flops, teaching):
    if flops is not None:
        op.flops = flops
    if teaching is not None and not isinstance(teaching, Teaching):
        raise TypeError(f"op {op.name!r}: teaching= must be a dualrev.registry.Teaching, "
                        f"not {type(teaching).__name__}")
    op.teaching = teaching


def defnondiff(name, impl, *, flops=ELEMENTWISE, loop=None, numpy=(), doc=None,
               replace=False):
    """Register a non-differentiable primitive (comparison, floor, argmax...).

    Its output never carries a derivative: traced inputs are read for their
    values only. Use this only where the derivative is zero or undefined
    almost everywhere.

    Parameters
    ----------
    name : str
        Unique name of the op.
    impl : callable
        ``impl(*arrays, **params)`` computing the op on plain NumPy values.
    flops : callable
        As in :func:`defop`; :data:`ELEMENTWISE` by default (comparisons,
        rounding).
    loop : str, optional
        As in :func:`defop`: the op in a fused loop body.
    numpy : callable or sequence of callable
        NumPy or SciPy functions (or ufuncs) that this op implements directly.
    doc : str, optional
        Docstring of the op.
    replace : bool
        As in :func:`defop`.

    Returns
    -------
    Op
        The registered op; on traced inputs it returns a plain (constant)
        value.

    See Also
    --------
    defop : a differentiable primitive.
    dualrev.stop_gradient : treat one value as a constant.

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> is_big = dualrev.defnondiff("is_big_example", lambda x: x > 10)
    >>> bool(is_big(11.0))
    True
    >>> dualrev.grad(lambda x: x * is_big(x))(11.0)   # the mask is a constant
    np.float64(1.0)
    """
    _check_new_name(name)
    op = Op(name, impl, None, None, doc)
    op.loop = loop
    _describe(op, flops, None)
    register_numpy(numpy, op, replace=replace)
    OPS[name] = op
    return op


#: NumPy callable -> the routings it had before each ``replace=True`` (undo stack).
_REPLACED = {}


def register_numpy(functions, implementation, *, replace=False):
    """Route NumPy/SciPy callables to ``implementation`` on traced values.

    The registration is global: from then on, the NumPy function called on a
    traced value (by ``__array_function__`` or ``__array_ufunc__``) runs
    ``implementation``, which is differentiated through the registered ops it
    calls: no derivative rule to write. On plain arrays NumPy is untouched.

    Parameters
    ----------
    functions : callable or sequence of callable
        NumPy functions, ufuncs or SciPy functions.
    implementation : callable
        Same signature as the NumPy function, built from registered ops.
    replace : bool
        A function that is already routed (dualrev's own rule, or an
        earlier registration) raises a ValueError, since the new route would
        apply to the whole process; ``replace=True`` re-routes it, and
        :func:`unregister_numpy` restores the previous route.

    Returns
    -------
    callable
        ``implementation``, unchanged.

    See Also
    --------
    defop : a new primitive, with its own derivative rules (when a
        composite would be unstable or slow).
    defunary, defbinary

    Examples
    --------
    dualrev has no rule for ``np.sinc``; a composite of ``sin`` and division
    gives it one (valid away from 0):

    >>> import numpy as np, dualrev
    >>> dualrev.grad(np.sinc)(0.5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    dualrev.numpy_dispatch.UnsupportedFunctionError: numpy.sinc has no differentiation rule...
    >>> def sinc(x):
    ...     return np.sin(np.pi * x) / (np.pi * x)
    >>> _ = dualrev.register_numpy(np.sinc, sinc)
    >>> d = dualrev.grad(np.sinc)(0.5)      # (cos(pi x) - sinc(x)) / x
    >>> bool(np.isclose(d, -4 / np.pi))
    True
    >>> dualrev.unregister_numpy(np.sinc)   # keep this example local
    """
    functions = (functions,) if callable(functions) else tuple(functions)
    routed = [f for f in functions if f in NUMPY_FUNCTIONS]
    if routed and not replace:
        names = ", ".join(getattr(f, "__name__", repr(f)) for f in routed)
        raise ValueError(f"{names} already has a dualrev route "
                         f"({NUMPY_FUNCTIONS[routed[0]]!r}); re-routing it would change "
                         "it for the whole process: pass replace=True to do so "
                         "(dualrev.unregister_numpy undoes it)")
    for f in functions:
        if f in NUMPY_FUNCTIONS:
            _REPLACED.setdefault(f, []).append(NUMPY_FUNCTIONS[f])
        NUMPY_FUNCTIONS[f] = implementation
    return implementation


def unregister_numpy(functions):
    """Undo the last :func:`register_numpy` of each of ``functions``: the
    route it replaced comes back, or the function has no route again.

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> _ = dualrev.register_numpy(np.sinc, lambda x: np.sin(np.pi * x) / (np.pi * x))
    >>> dualrev.unregister_numpy(np.sinc)
    >>> np.sinc in dualrev.registry.NUMPY_FUNCTIONS
    False
    """
    for f in (functions,) if callable(functions) else tuple(functions):
        if f not in NUMPY_FUNCTIONS:
            raise ValueError(f"{getattr(f, '__name__', f)!r} has no dualrev route to undo")
        previous = _REPLACED.get(f)
        if previous:
            NUMPY_FUNCTIONS[f] = previous.pop()
        else:
            del NUMPY_FUNCTIONS[f]


# ---- shortcuts -------------------------------------------------------------

def unbroadcast(g, shape):
    """Sum the cotangent ``g`` back to ``shape`` (undo NumPy broadcasting).

    Leading axes of ``g`` beyond ``len(shape)`` and axes where ``shape`` has
    size 1 are summed. This is the one place broadcasting is undone.
    """
    gshape = getattr(g, "shape", ())
    if gshape == shape:
        return g
    lead = len(gshape) - len(shape)
    kept = tuple(i for i, n in enumerate(shape) if n == 1 and gshape[lead + i] != 1)
    if lead:
        g = add_reduce(g, axis=tuple(range(lead)), keepdims=False)
    if kept:
        g = add_reduce(g, axis=kept, keepdims=True)
    return g


def add_reduce(x, *, axis, keepdims):
    """np.add.reduce (np.sum without its Python-level wrapper), through np.sum
    for arrays that only implement the dispatch protocols (a dask array has
    no ufunc.reduce)."""
    if isinstance(x, np.ndarray):
        return np.add.reduce(x, axis=axis, keepdims=keepdims)
    return np.sum(x, axis=axis, keepdims=keepdims)


def primal_value(x):
    """The plain value under every level of tracing, read as a constant.

    What a rule reads this way cannot change its derivative, and under
    :func:`dualrev.compile` the program stays valid only while the value
    does: a staged value is read with a guard. For shapes and dtypes use
    :func:`shape_of` and :func:`dtype_of`, which read no value.
    """
    while isinstance(x, Tracer):
        if x.staged:
            return x._trace.concrete(x)
        x = x.value
    return x


def strip_derivatives(x):
    """``x`` without its derivatives: the plain value, or under
    :func:`dualrev.compile` the staged value (whose computation is recorded)."""
    while isinstance(x, Tracer) and not x.staged:
        x = x.value
    return x


def dtype_of(x):
    """dtype of a plain or traced value (Python scalars as NumPy sees them)."""
    return x.dtype if isinstance(x, Tracer) else np.result_type(x)


def shape_of(x):
    """Shape of a plain or traced value (Python scalars have shape ``()``)."""
    return getattr(x, "shape", ())


def fit_tangent(t, x, out):
    """Broadcast the tangent ``t`` of argument ``x`` to the shape of ``out``.

    ``t`` may carry leading batch axes (several directions at once); those are
    kept in front.
    """
    xs, os_ = getattr(x, "shape", ()), getattr(out, "shape", ())
    if xs == os_:
        return t
    ts = shape_of(t)
    batch = ts[:len(ts) - len(xs)]
    return np.broadcast_to(promote_tangent(t, x, len(os_)), batch + os_)


def promote_tangent(t, x, ndim):
    """The tangent ``t`` of ``x`` with size-1 axes inserted after its batch
    axes, so that it broadcasts like a value of rank ``ndim``."""
    ts, xs = shape_of(t), shape_of(x)
    nb = len(ts) - len(xs)
    if nb and ndim > len(xs):
        t = np.reshape(t, ts[:nb] + (1,) * (ndim - len(xs)) + xs)
    return t


def defunary(name, impl, deriv, *, reads=("x", "out"), flops=ELEMENTWISE, teaching=None,
             loop=None, numpy=(), doc=None):
    """Register an elementwise op ``out = impl(x)`` from its local derivative.

    Both rules follow from the local derivative: ``jvp = t * deriv`` and
    ``vjp = g * deriv``.

    Parameters
    ----------
    name : str
        Unique name of the op.
    impl : callable
        ``impl(x)`` computing the op elementwise on plain NumPy values.
    deriv : callable
        ``deriv(x, out)`` returns ``d out / d x`` elementwise, written with
        NumPy calls on the values it gets (so that it can be differentiated
        again).
    reads : str or sequence of str
        Which of ``"x"`` and ``"out"`` ``deriv`` reads; the tape keeps only
        those (``exp`` needs only ``"out"``).
    flops : callable
        As in :func:`defop`; :data:`ELEMENTWISE` by default.
    teaching : Teaching, optional
        As in :func:`defop`; its ``local`` is the text of ``deriv``.
    loop : str, optional
        As in :func:`defop`: the op in a fused loop body (``"np.sin({0})"``).
    numpy : callable or sequence of callable
        NumPy or SciPy functions (or ufuncs) that this op implements directly.
    doc : str, optional
        Docstring of the op.

    Returns
    -------
    Op
        The registered op; call it like a NumPy function.

    See Also
    --------
    defop : the general form.
    defbinary : the same for a broadcasting op of two arguments.

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> sin2 = dualrev.defunary("sin2_example", lambda x: np.sin(2 * x),
    ...                         lambda x, out: 2 * np.cos(2 * x), reads="x")
    >>> float(dualrev.grad(sin2)(0.0))
    2.0
    >>> float(dualrev.grad(dualrev.grad(sin2))(np.pi / 4))   # -4 sin(2 x)
    -4.0
    """
    def jvp(t, out, x):
        return t * deriv(x, out)

    def vjp(g, out, x):
        return g * deriv(x, out)

    jvp.__name__, vjp.__name__ = f"{name}_jvp", f"{name}_vjp"
    saves = (tuple(0 if r == "x" else "out" for r in ((reads,) if isinstance(reads, str)
                                                       else reads)),)
    return defop(name, impl, nargs=1, jvp=jvp, vjp=vjp, saves=saves, flops=flops,
                 teaching=teaching, loop=loop, numpy=numpy, doc=doc)


def defbinary(name, impl, dx, dy, *, saves=None, flops=ELEMENTWISE, teaching=None,
              loop=None, numpy=(), doc=None):
    """Register a broadcasting elementwise op ``out = impl(x, y)``.

    The rules multiply the local partial derivatives with the tangent or
    cotangent; broadcasting is undone by :func:`unbroadcast` and tangents are
    fitted by :func:`fit_tangent`, so the partials are written as if ``x``
    and ``y`` had one shape.

    Parameters
    ----------
    name : str
        Unique name of the op.
    impl : callable
        ``impl(x, y)`` computing the op on plain NumPy values, broadcasting.
    dx, dy : callable or None
        ``dx(x, y, out)`` and ``dy(x, y, out)`` return ``d out / d x`` and
        ``d out / d y`` elementwise, written with NumPy calls on the values
        they get; ``None`` for an argument that is not differentiable.
    saves : sequence of sequence, optional
        As in :func:`defop`: per argument, the values its rules read.
    flops : callable
        As in :func:`defop`; :data:`ELEMENTWISE` by default.
    teaching : Teaching, optional
        As in :func:`defop`; its ``local`` is the text of ``dx`` and ``dy``.
    loop : str, optional
        As in :func:`defop`: the op in a fused loop body (``"{0} * {1}"``).
    numpy : callable or sequence of callable
        NumPy or SciPy functions (or ufuncs) that this op implements directly.
    doc : str, optional
        Docstring of the op.

    Returns
    -------
    Op
        The registered op; call it like a NumPy function.

    See Also
    --------
    defop : the general form.
    defunary : the same for an elementwise op of one argument.

    Examples
    --------
    ``out = x y**2``; a scalar ``x`` broadcast against ``y`` gets the summed
    cotangent:

    >>> import numpy as np, dualrev
    >>> x_y2 = dualrev.defbinary("x_y2_example", lambda x, y: x * y ** 2,
    ...                          lambda x, y, out: y ** 2,
    ...                          lambda x, y, out: 2 * x * y)
    >>> dualrev.grad(lambda x, y: np.sum(x_y2(x, y)), argnums=(0, 1))(
    ...     2.0, np.array([1.0, 3.0]))
    (np.float64(10.0), array([ 4., 12.]))
    """
    def make(local, pos):
        if local is None:
            return None, None

        def jvp(t, out, x, y):
            return fit_tangent(t, (x, y)[pos], out) * local(x, y, out)

        def vjp(g, out, x, y):
            c = g * local(x, y, out)
            shape = getattr((x, y)[pos], "shape", ())
            return c if getattr(c, "shape", ()) == shape else unbroadcast(c, shape)

        jvp.__name__ = f"{name}_jvp_{'xy'[pos]}"
        vjp.__name__ = f"{name}_vjp_{'xy'[pos]}"
        return jvp, vjp

    (jx, vx), (jy, vy) = make(dx, 0), make(dy, 1)
    return defop(name, impl, nargs=2, jvp=(jx, jy), vjp=(vx, vy),
                 saves=saves, flops=flops, teaching=teaching, loop=loop, numpy=numpy,
                 doc=doc)
