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

import itertools

import numpy as np

__all__ = ["Op", "defop", "defunary", "defbinary", "defnondiff",
           "register_numpy", "OPS", "NUMPY_FUNCTIONS"]

#: name -> Op, every registered primitive.
OPS = {}

#: NumPy/SciPy callable -> function of the same signature built from primitives.
NUMPY_FUNCTIONS = {}

#: The params of an op called without any: shared, never mutated.
NO_PARAMS = {}


def bind(op, *args, **params):
    """Apply ``op``: the highest-level trace among ``args`` processes it."""
    trace = None
    for a in args:
        if isinstance(a, Tracer):
            t = a._trace
            if trace is None or t.level > trace.level:
                trace = t
    if trace is None:
        return op.impl(*args, **params)
    return trace.process(op, args, params)


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
    """

    __slots__ = ("name", "impl", "jvps", "vjps", "vjp_add", "into", "saves", "drops",
                 "identity", "doc")

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
        self.doc = doc or getattr(impl, "__doc__", None)

    @property
    def differentiable(self):
        return self.vjps is not None

    __call__ = bind  # op(*args, **params) is bind(op, *args, **params)

    def __repr__(self):
        return f"<dualrev op {self.name}>"


class Tracer:
    """Base of the traced values of every transformation (see numpy_dispatch).

    ``staged`` is true for the values of a staging trace (:mod:`dualrev.staging`):
    they carry no derivative, only a record of how they were computed.
    """

    __slots__ = ("_trace",)
    staged = False


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


def _as_rules(rules, nargs):
    if nargs is None:  # variadic: rules is a factory of the i-th rule
        return PerArgument(rules)
    if rules is None:
        return (None,) * nargs
    if callable(rules):
        rules = (rules,)
    rules = tuple(rules) + (None,) * (nargs - len(rules))
    return rules


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
          saves=None, identity=(), numpy=(), doc=None):
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
    numpy : callable or sequence of callable
        NumPy or SciPy functions (or ufuncs) that this op implements directly,
        with the same signature.
    doc : str, optional
        Docstring of the op.

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
    if name in OPS:
        raise ValueError(f"an op named {name!r} is already registered")
    op = Op(name, impl, None, None, doc)
    if saves is not None:
        op.saves = tuple(tuple(s) for s in saves)
        op.drops = _drop_table(op.saves)
    op.identity = tuple(identity)
    op.vjps = _as_rules(vjp, nargs)
    op.jvps = _as_rules(jvp, nargs)
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
    OPS[name] = op
    register_numpy(numpy, op)
    return op


def defnondiff(name, impl, *, numpy=(), doc=None):
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
    numpy : callable or sequence of callable
        NumPy or SciPy functions (or ufuncs) that this op implements directly.
    doc : str, optional
        Docstring of the op.

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
    if name in OPS:
        raise ValueError(f"an op named {name!r} is already registered")
    op = Op(name, impl, None, None, doc)
    OPS[name] = op
    register_numpy(numpy, op)
    return op


def register_numpy(functions, implementation):
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
    >>> del dualrev.registry.NUMPY_FUNCTIONS[np.sinc]   # keep this example local
    """
    if callable(functions):
        functions = (functions,)
    for f in functions:
        NUMPY_FUNCTIONS[f] = implementation
    return implementation


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
    # np.add.reduce is np.sum without its Python-level wrapper.
    if lead:
        g = np.add.reduce(g, axis=tuple(range(lead)))
    if kept:
        g = np.add.reduce(g, axis=kept, keepdims=True)
    return g


def primal_value(x):
    """The plain value under every level of tracing (a constant)."""
    while isinstance(x, Tracer):
        x = x.value
    return x


def strip_derivatives(x):
    """``x`` without its derivatives: the plain value, or under
    :func:`dualrev.compile` the staged value (whose computation is recorded)."""
    while isinstance(x, Tracer) and not x.staged:
        x = x.value
    return x


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


def defunary(name, impl, deriv, *, reads=("x", "out"), numpy=(), doc=None):
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
    return defop(name, impl, nargs=1, jvp=jvp, vjp=vjp, saves=saves, numpy=numpy, doc=doc)


def defbinary(name, impl, dx, dy, *, saves=None, numpy=(), doc=None):
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
                 saves=saves, numpy=numpy, doc=doc)


_level_counter = itertools.count(1)


def new_level():
    """A fresh trace level, higher than every level handed out before.

    A transformation that starts inside another one always starts later, so
    its level is higher: ``bind`` lets the innermost transformation process
    an op first, and a tracer only answers to its own level, which keeps
    nested derivatives apart (no perturbation confusion).
    """
    return next(_level_counter)
