"""Hessian-vector products, an HVP operator for SciPy, and full Hessians.

Four ways to get ``H v`` for a scalar ``f`` (``H`` its Hessian at ``x``):

``"rev-rev"``
    Reverse over reverse. ``grad f`` runs while an outer
    :class:`~dualrev.reverse.Tape` records, so the inner backward sweep is
    itself on the outer tape (the *recorded backward tape*). Seeding that
    tape with ``v`` at the gradient nodes and sweeping it once gives ``H v``
    (``grad(lambda x: vdot(grad(f)(x), v))(x)``, without the ``vdot``).
``"fwd-rev"``
    Forward over reverse: dual numbers pushed through the backward sweep,
    ``jvp(grad(f), (x,), (v,))``. Nothing is kept once the product is out.
``"rev-fwd"``
    Reverse over forward: the gradient of the directional derivative
    ``x -> jvp(f, (x,), (v,))[1]``.
``"fd"``
    Central difference of two gradients (see :func:`hvp` for the step).

:func:`hvp_operator` records ``grad f`` once and answers every ``H v`` with
one more sweep (or one forward replay) of that recording: the form an
iterative solver (CG, MINRES, Lanczos) wants.

Each mode is one entry of :data:`HVP_MODES` (its one-shot product, its
operator sweep, its full-Hessian transformation, its cost-model entry):
:func:`hvp`, :func:`hvp_operator`, :func:`hessian` and
:func:`dualrev.compare` read their modes from that table alone.
"""

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from scipy.sparse.linalg import LinearOperator

from . import costmodel
from .compiled import compile
from .api import (argnums_tuple, as_float, float_dtype, grad, jacfwd, jacrev, jvp,
                  stop_gradient, value_and_grad)
from .lazy import (compute_leaves, computed, computed_results, guard_materialization,
                   is_lazy)
from .registry import Tracer, shape_of
from .reverse import Tape
from .tree import flatten, ravel_pytree, split_flat, unflatten

__all__ = ["hvp", "hvp_operator", "value_grad_hvp", "hessian", "HVPOperator", "HVP_MODES",
           "HVPMode", "hvp_costs"]


def _check_mode(mode, allowed):
    if mode not in allowed:
        raise ValueError(f"mode must be one of {tuple(allowed)}, not {mode!r}")


def _leaves_like(x_leaves, v, what="v"):
    """The leaves of ``v``, checked against the leaves of ``x``."""
    v_leaves = flatten(v)[0]
    if len(v_leaves) != len(x_leaves):
        raise ValueError(f"{what} must have the structure of x: {len(v_leaves)} "
                         f"leaves for {len(x_leaves)}")
    for xl, vl in zip(x_leaves, v_leaves):
        if shape_of(vl) != shape_of(xl):
            raise ValueError(f"{what} has a leaf of shape {shape_of(vl)} where x has "
                             f"shape {shape_of(xl)}")
    # a plain v is taken in x's dtype: the product keeps the dtype of x
    return [vl if isinstance(vl, Tracer) else np.asarray(vl, float_dtype(xl))[()]
            for vl, xl in zip((as_float(vl, what) for vl in v_leaves), x_leaves)]


def _zeros(x):
    dtype = float_dtype(x)
    return np.zeros(shape_of(x), dtype) if shape_of(x) else dtype.type(0.0)


# ---- one recording of grad f -------------------------------------------------

class GradRecording:
    """``grad f`` at ``x`` recorded once on an outer tape, swept many times.

    ``tape`` holds the recorded backward sweep of ``f``; ``inputs`` are the
    tape positions of the leaves of ``x`` and ``grad_index`` those of the
    leaves of the gradient (``None`` for a leaf that does not depend on
    ``x``, whose Hessian rows are zero).
    """

    __slots__ = ("tape", "inputs", "grad_index", "x_leaves", "treedef", "value",
                 "grad_leaves", "_replay")
    matrix = None  # the whole Hessian is never formed

    def __init__(self, f, x, args=()):
        x_leaves, self.treedef = flatten(x)
        self.x_leaves = [as_float(leaf, "x") for leaf in x_leaves]
        self.tape = Tape()
        nodes = [self.tape.input(leaf) for leaf in self.x_leaves]
        value, g = value_and_grad(f)(unflatten(self.treedef, nodes), *args)
        self.inputs = [node.index for node in nodes]
        g_leaves = flatten(g)[0]
        self.grad_index = [self.tape.index_of(gl) for gl in g_leaves]
        self.value = self._recorded_value(value)
        self.grad_leaves = [self._recorded_value(gl) for gl in g_leaves]
        self._replay = None

    def _recorded_value(self, y):
        """``y`` with this tape's derivative dropped (its recorded value)."""
        return y.value if self.tape.index_of(y) is not None else y

    def reverse(self, v_leaves, release=False):
        """``H v`` by one reverse sweep seeded with ``v`` at the gradient.

        ``release=True`` spends the recording (see :meth:`~dualrev.reverse.Tape.backward`):
        for a one-shot product, whose recording is not swept again.
        """
        seeds = {}
        for i, vl in zip(self.grad_index, v_leaves):
            if i is not None:
                seeds[i] = vl if i not in seeds else seeds[i] + vl
        if not seeds:
            return [_zeros(x) for x in self.x_leaves]
        cts = self.tape.backward(seeds, self.inputs, release)
        return [_zeros(x) if c is None else c for c, x in zip(cts, self.x_leaves)]

    def forward(self, v_leaves, batch=()):
        """``H v`` by one forward replay with tangent ``v`` at the inputs.

        ``batch`` is the shape of leading batch axes carried by ``v``.
        """
        wanted = [i for i in self.grad_index if i is not None]
        if wanted and self._replay is None:
            self._replay = self.tape.pruned(wanted)
        tans = self._replay.forward(dict(zip(self.inputs, v_leaves)), wanted) if wanted else []
        by_index = dict(zip(wanted, tans))
        return [np.zeros(batch + shape_of(x), float_dtype(x)) if by_index.get(i) is None
                else np.broadcast_to(by_index[i], batch + shape_of(x))
                for i, x in zip(self.grad_index, self.x_leaves)]

    def product(self, v_leaves, mode):
        """``H v`` by the operator sweep of ``mode`` (see :data:`HVP_MODES`)."""
        return HVP_MODES[mode].sweep(self, v_leaves)


# ---- one-shot products ---------------------------------------------------------

def _fd_step(x_leaves, v_leaves):
    """Step ``h`` of the central difference along ``v`` (see :func:`hvp`): a
    Python float, so the step keeps the dtype of ``x``."""
    x_scale, v_scale = 1.0, 0.0
    for x, v in zip(x_leaves, v_leaves):
        x, v = stop_gradient(x), stop_gradient(v)
        moved = np.where(v != 0, np.abs(x), 0.0)  # only the entries v moves count
        x_scale = max(x_scale, float(np.max(moved, initial=0.0)))
        v_scale = max(v_scale, float(np.max(np.abs(v), initial=0.0)))
    if not np.isfinite(v_scale):
        raise ValueError("hvp(mode='fd'): v has a non-finite entry (inf or nan); a "
                         "finite-difference step along it is undefined")
    eps = float(np.finfo(float_dtype(*x_leaves)).eps)
    return eps ** (1 / 3) * x_scale / v_scale if v_scale else 0.0


def _leaf_function(f, treedef, args):
    def f_of_leaves(*leaves):
        return f(unflatten(treedef, leaves), *args)
    return f_of_leaves


def reverse_over_reverse(f, x_leaves, treedef, v_leaves, args):
    """``H v`` by one reverse sweep of a recording of ``grad f``, then released."""
    return GradRecording(f, unflatten(treedef, x_leaves), args).reverse(v_leaves,
                                                                       release=True)


def forward_over_reverse(f, x_leaves, treedef, v_leaves, args):
    """``H v`` as ``jvp(grad f, x, v)``: dual numbers through the backward sweep."""
    nums = tuple(range(len(x_leaves)))
    tangents = jvp(grad(_leaf_function(f, treedef, args), nums), x_leaves, v_leaves)[1]
    # None: that gradient leaf is constant in x (zero Hessian rows).
    return [_zeros(x) if t is None else t for t, x in zip(tangents, x_leaves)]


def reverse_over_forward(f, x_leaves, treedef, v_leaves, args):
    """``H v`` as the gradient of the directional derivative ``jvp(f, x, v)``."""
    f_of_leaves = _leaf_function(f, treedef, args)

    def directional(*leaves):
        return jvp(f_of_leaves, leaves, v_leaves)[1]
    return list(grad(directional, tuple(range(len(x_leaves))))(*x_leaves))


def finite_difference(f, x_leaves, treedef, v_leaves, args):
    """``H v`` as a central difference of two gradients (step: :func:`_fd_step`)."""
    h = _fd_step(x_leaves, v_leaves)
    if h == 0.0:
        return [_zeros(x) for x in x_leaves]
    grad_f = grad(_leaf_function(f, treedef, args), tuple(range(len(x_leaves))))
    steps = [h * v for v in v_leaves]
    plus = grad_f(*[x + s for x, s in zip(x_leaves, steps)])
    minus = grad_f(*[x - s for x, s in zip(x_leaves, steps)])
    return [(p - m) * (0.5 / h) for p, m in zip(plus, minus)]


def reverse_sweep(recording, v_leaves):
    """``H v`` from a kept recording: one reverse sweep seeded with ``v``."""
    return recording.reverse(v_leaves)


def forward_sweep(recording, v_leaves):
    """``H v`` from a kept recording: one forward replay with tangent ``v``."""
    return recording.forward(v_leaves)


# ---- the table of modes ----------------------------------------------------------

@dataclass(frozen=True)
class HVPMode:
    """One way of computing ``H v``: an entry of :data:`HVP_MODES`.

    Attributes
    ----------
    product : callable
        The one-shot product, ``product(f, x_leaves, treedef, v_leaves, args)``
        returning the leaves of ``H v`` (what :func:`hvp` runs).
    sweep : callable or None
        ``sweep(recording, v_leaves)``: ``H v`` from a :class:`GradRecording`
        that is kept (what :func:`hvp_operator` runs); None for a mode that
        cannot reuse a recording.
    hessian : callable or None
        The Jacobian transformation that turns ``grad f`` into the full
        Hessian in this mode (``jacfwd`` or ``jacrev``); None if :func:`hessian`
        does not offer the mode.
    cost : callable
        The cost-model entry, ``cost(work)`` with a
        :class:`~dualrev.costmodel.HVPWork`, returning ``(passes, flops, cost)``.
    exact : bool
        Agrees with the others to rounding (False for finite differences);
        only exact modes compete for :func:`dualrev.compare`'s winner.
    """

    product: Callable
    sweep: Optional[Callable]
    hessian: Optional[Callable]
    cost: Callable
    exact: bool = True


#: Every HVP mode by name, in tie-breaking order (forward-over-reverse first:
#: it keeps no outer tape). :func:`hvp`, :func:`hvp_operator`, :func:`hessian`
#: and :func:`dualrev.compare` all read their modes from this one table.
HVP_MODES = {
    "fwd-rev": HVPMode(forward_over_reverse, forward_sweep, jacfwd,
                       costmodel.forward_over_reverse_cost),
    "rev-rev": HVPMode(reverse_over_reverse, reverse_sweep, jacrev,
                       costmodel.reverse_over_reverse_cost),
    "rev-fwd": HVPMode(reverse_over_forward, None, None,
                       costmodel.reverse_over_forward_cost),
    "fd": HVPMode(finite_difference, None, None, costmodel.finite_difference_cost,
                  exact=False),
}


def operator_modes():
    """The modes of :data:`HVP_MODES` that :func:`hvp_operator` offers."""
    return tuple(name for name, mode in HVP_MODES.items() if mode.sweep is not None)


def hessian_modes():
    """The modes of :data:`HVP_MODES` that :func:`hessian` offers."""
    return tuple(name for name, mode in HVP_MODES.items() if mode.hessian is not None)


#: The modes of :func:`hvp_operator` (those that reuse one recording), as the
#: table defines them at import.
OPERATOR_MODES = operator_modes()


def _recorded_cost(fn, x):
    """TapeCost of ``fn(x)`` recorded on a fresh tape."""
    tape = Tape()
    fn(tape.input(x))
    return costmodel.tape_cost(tape)


def hvp_costs(f, x, v):
    """Model ``(passes, flops, cost)`` of each mode of :data:`HVP_MODES`.

    The work of ``f``, of its gradient and of its JVP along ``v`` is
    recorded on outer tapes and read off them; each mode's cost-model entry
    turns that work into its cost.

    Examples
    --------
    >>> import numpy as np
    >>> costs = hvp_costs(lambda x: np.sum(x ** 3), np.ones(4), np.ones(4))
    >>> sorted(costs) == sorted(HVP_MODES)
    True
    """
    work = costmodel.HVPWork(f=_recorded_cost(f, x),
                             grad=_recorded_cost(lambda xn: value_and_grad(f)(xn)[1], x),
                             jvp=_recorded_cost(lambda xn: jvp(f, (xn,), (v,))[1], x))
    return {name: mode.cost(work) for name, mode in HVP_MODES.items()}


# ---- argnums -----------------------------------------------------------------------

def _selected(f, x, args, argnums):
    """``(g, point, rest)``: ``f`` as a function ``g(point, *rest)`` of the
    arguments ``argnums`` selects among ``(x, *args)``.

    ``argnums`` has :func:`~dualrev.grad`'s meaning over ``f(x, *args)`` and
    must select ``x`` (position 0): the point is ``x``, or the tuple of the
    selected arguments.
    """
    args = tuple(args)
    if isinstance(argnums, (int, np.integer)) and argnums == 0:
        return f, x, args
    full = (x,) + args
    nums, multiple = argnums_tuple(argnums, len(full))
    if 0 not in nums:
        raise ValueError(
            f"argnums={argnums!r} does not select x: f is called as f(x, *args) and "
            f"argnums selects which of those arguments are differentiated, as in "
            f"dualrev.grad, so it must include 0 (x). It no longer gives the position "
            f"of x among args: for f(a, x) write hvp(lambda x, a: f(a, x), x, v, "
            f"args=(a,))")
    if not multiple:
        return f, x, args
    rest = tuple(a for i, a in enumerate(full) if i not in nums)

    def f_of_selected(point, *rest_args):
        call = list(rest_args)
        for i, value in sorted(zip(nums, point), key=lambda pair: pair[0]):
            call.insert(i, value)
        return f(*call)
    return f_of_selected, tuple(full[i] for i in nums), rest


def hvp(f, x, v, mode="rev-rev", *, args=(), argnums=0):
    """The Hessian of a scalar function at ``x`` times a vector ``v``.

    Parameters
    ----------
    f : callable
        ``f(x, *args)`` returns a scalar.
    x : float, array or nested tuple/list/dict of them
        The point; may itself be traced (an HVP can be differentiated again).
    v : same structure and shapes as ``x``
        The vector.
    mode : {"rev-rev", "fwd-rev", "rev-fwd", "fd"}
        ``"rev-rev"``: record ``grad f`` on an outer tape (the backward sweep
        is itself recorded), then one outer reverse sweep seeded with ``v``
        at the gradient. ``"fwd-rev"``: dual numbers through the backward
        sweep, ``jvp(grad f, x, v)``; keeps no second tape, so it needs the
        least memory. ``"rev-fwd"``: ``grad`` of ``x -> jvp(f, x, v)[1]``.
        The three agree to rounding. ``"fd"``: central difference
        ``(grad f(x + h v) - grad f(x - h v)) / (2 h)`` with
        ``h = eps**(1/3) * max(1, max|x_i| over the i where v_i != 0) /
        max|v|`` (``eps`` of ``x``'s dtype; a non-finite ``v`` raises a
        ValueError): the truncation error
        is ``h**2 / 6`` times the third directional derivative of ``grad f``
        and the rounding error about ``eps * |grad f| / h``, both of relative
        size about ``eps**(2/3)`` (about 4e-11) for a well-scaled ``f``.
    args : tuple
        The other positional arguments of ``f``: it is called ``f(x, *args)``.
    argnums : int or tuple of int
        Which of ``f(x, *args)``'s positional arguments are differentiated,
        as in :func:`~dualrev.grad`; must include ``0`` (``x``). With a tuple,
        the point is the tuple of the selected arguments, and ``v`` and the
        result have its structure: ``hvp(f, x, (vx, va), args=(a,),
        argnums=(0, 1))`` is the Hessian in ``(x, a)`` times ``(vx, va)``.
        (It is not the position of ``x`` among ``args``: that older meaning
        raises a ValueError saying what to write.)

    Returns
    -------
    Hv : same structure and shapes as ``x``

    See Also
    --------
    hvp_operator : many products from one recording.
    value_grad_hvp, hessian

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> f = lambda x: x[0] ** 2 * x[1]          # H = [[2 x1, 2 x0], [2 x0, 0]]
    >>> dualrev.hvp(f, np.array([1.0, 3.0]), np.array([1.0, 0.0]))
    array([6., 2.])
    >>> dualrev.hvp(f, np.array([1.0, 3.0]), np.array([1.0, 0.0]), mode="fwd-rev")
    array([6., 2.])
    >>> dualrev.hvp(lambda x, c: c * x ** 3, 2.0, 1.0, args=(0.5,))
    np.float64(6.0)
    >>> dualrev.hvp(lambda x, c: c * x ** 3, 2.0, (1.0, 0.0), args=(0.5,), argnums=(0, 1))
    (np.float64(6.0), np.float64(12.0))
    """
    _check_mode(mode, HVP_MODES)
    f, x, args = _selected(f, x, args, argnums)
    x_leaves, treedef = flatten(x)
    x_leaves = [as_float(leaf, "x") for leaf in x_leaves]
    v_leaves = _leaves_like(x_leaves, v)
    with guard_materialization():
        product = HVP_MODES[mode].product(f, x_leaves, treedef, v_leaves, args)
    return computed_results(unflatten(treedef, product), x, (v, args))


def value_grad_hvp(f, x, v, *, args=(), argnums=0):
    """``f(x)``, its gradient and ``H v``, all from one recording of ``grad f``.

    What a Newton-type optimiser needs per step: one pass records
    ``grad f`` on an outer tape (giving the value and the gradient), one
    reverse sweep of that recording gives ``H v``.

    Parameters
    ----------
    f : callable
        ``f(x, *args)`` returns a scalar.
    x : array or nested structure of arrays
    v : same structure as ``x``
    args : tuple
        Further arguments of ``f``: it is called ``f(x, *args)``.
    argnums : int or tuple of int
        Which of ``f(x, *args)``'s arguments are differentiated; must include
        ``0`` (see :func:`hvp`).

    Returns
    -------
    value : float
    grad : same structure as ``x``
    Hv : same structure as ``x``

    See Also
    --------
    hvp, hvp_operator

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> value, g, Hv = dualrev.value_grad_hvp(lambda x: np.sum(x ** 3),
    ...                                       np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    >>> float(value), g, Hv
    (9.0, array([ 3., 12.]), array([ 6., 12.]))
    """
    f, x, args = _selected(f, x, args, argnums)
    recording = GradRecording(f, x, args)
    v_leaves = _leaves_like(recording.x_leaves, v)
    treedef = recording.treedef
    return (float(recording.value), unflatten(treedef, recording.grad_leaves),
            unflatten(treedef, recording.reverse(v_leaves, release=True)))


class CompiledRecording:
    """What :class:`HVPOperator` reads of a :class:`GradRecording`, from an
    :class:`HVPProgram`: the value and gradient from the part of the program
    that only ``x`` determines (run once), each product from the rest."""

    matrix = None  # the whole Hessian is never formed

    def __init__(self, program, x, args):
        _, point, _ = _selected(program.f, x, args, program.argnums)
        x_leaves, self.treedef = flatten(point)
        self.x_leaves = [as_float(leaf, "x") for leaf in x_leaves]
        self._fixed = program.compiled.fix(x, *args)
        # the kind of vectors HVPOperator passes (0-d arrays for scalar leaves)
        value, grad_leaves, _ = self._fixed.fixed_values(
            unflatten(self.treedef, [np.zeros(shape_of(leaf)) for leaf in self.x_leaves]))
        self.value, self.grad_leaves = value, grad_leaves

    def product(self, v_leaves, mode):
        return self._fixed(unflatten(self.treedef, list(v_leaves)))[2]

    def forward(self, v_leaves, batch):
        columns = [self.product([leaf[k, ...] for leaf in v_leaves], None)
                   for k in range(batch[0])]
        return [np.stack([c[j] for c in columns]) for j in range(len(v_leaves))]


#: Up to this many parameters, an operator over dask data computes the whole
#: Hessian with the value and gradient, in one pass over the data (batched
#: forward-over-reverse); its products then read no data. Beyond it, each
#: product is one pass.
DENSE_HESSIAN_MAX = 64


class LazyDataRecording:
    """What :class:`HVPOperator` reads, from an :class:`HVPProgram` called
    with dask data: the value, the gradient and, for at most
    :data:`DENSE_HESSIAN_MAX` parameters, the whole Hessian from one pass
    over the data; otherwise each product is one pass."""

    def __init__(self, program, x, args):
        _, point, _ = _selected(program.f, x, args, program.argnums)
        x_leaves, self.treedef = flatten(point)
        self.x_leaves = [as_float(leaf, "x") for leaf in x_leaves]
        self.program, self.x, self.args = program, x, args
        self.matrix = None
        sizes = [int(np.prod(shape_of(leaf))) for leaf in self.x_leaves]
        if sum(sizes) <= DENSE_HESSIAN_MAX:
            self.value, self.grad_leaves, blocks = program.dense(x, *args)
            k = len(sizes)  # blocks: the Hessian's (i, j) blocks, row by row
            self.matrix = np.block([[np.reshape(blocks[i * k + j], (sizes[i], sizes[j]))
                                      for j in range(k)] for i in range(k)])
        else:
            self.value, self.grad_leaves = program.value_and_grad(x, *args)

    def _shaped(self, flat, batch=()):
        return split_flat(flat, [shape_of(leaf) for leaf in self.x_leaves], batch)

    def product(self, v_leaves, mode):
        if self.matrix is None:
            v = unflatten(self.treedef, list(v_leaves))
            return flatten(self.program.products(self.x, v, *self.args))[0]
        flat = np.concatenate([np.ravel(leaf) for leaf in v_leaves])
        return self._shaped(self.matrix @ flat)

    def forward(self, v_leaves, batch):
        if self.matrix is None:
            columns = [self.product([leaf[k, ...] for leaf in v_leaves], None)
                       for k in range(batch[0])]
            return [np.stack([c[j] for c in columns]) for j in range(len(v_leaves))]
        V = np.concatenate([np.reshape(leaf, batch + (-1,)) for leaf in v_leaves], axis=1)
        return self._shaped(V @ self.matrix, batch)


class HVPProgram:
    """Value, gradient and Hessian-vector products of ``f``, staged by
    :func:`dualrev.compile` once and replayed at every point.

    The staged program is split in ``v``: at a point, what ``x`` alone
    determines (the value, the gradient, the recorded sweep's saved values)
    runs once; each product runs the rest, as generated NumPy code with no
    tracing. A Newton-type loop keeps one ``HVPProgram`` and asks it for an
    operator at each iterate.

    With dask arrays among ``args`` (the data), every program runs as one
    task per chunk of rows (:mod:`dualrev.chunked`), and an operator with at
    most :data:`DENSE_HESSIAN_MAX` parameters takes the whole Hessian from
    the same pass over the data as the value and gradient.

    Parameters
    ----------
    f : callable
        ``f(x, *args)`` returns a scalar.
    mode : str
        A mode of :data:`HVP_MODES` with an operator sweep.
    argnums : int or tuple of int
        As in :func:`hvp`.

    See Also
    --------
    hvp_operator, dualrev.compile

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> program = dualrev.HVPProgram(lambda x: np.sum(x ** 4))
    >>> H = program.operator(np.array([1.0, 2.0]))
    >>> H @ np.array([1.0, 1.0]), H.grad
    (array([12., 48.]), array([ 4., 32.]))
    >>> program.operator(np.array([3.0, 1.0])) @ np.array([1.0, 0.0])  # no new staging
    array([108.,   0.])
    >>> len(program.compiled.programs)
    1
    """

    def __init__(self, f, mode="rev-rev", *, argnums=0):
        _check_mode(mode, operator_modes())
        self.f, self.mode, self.argnums = f, mode, argnums

        def value_grad_product(x, v, *args):
            g, point, rest = _selected(self.f, x, args, self.argnums)
            recording = GradRecording(g, point, rest)
            return (recording.value, recording.grad_leaves,
                    recording.product(flatten(v)[0], self.mode))

        def value_grad_hessian(x, *args):
            g, point, rest = _selected(self.f, x, args, self.argnums)
            value, gradient = value_and_grad(g)(point, *rest)
            return value, flatten(gradient)[0], flatten(hessian(g)(point, *rest))[0]

        def products(x, v, *args):
            g, point, rest = _selected(self.f, x, args, self.argnums)
            return hvp(g, point, v, self.mode, args=rest)

        def value_and_gradient(x, *args):
            g, point, rest = _selected(self.f, x, args, self.argnums)
            value, gradient = value_and_grad(g)(point, *rest)
            return value, flatten(gradient)[0]

        self.compiled = compile(value_grad_product, varying_argnums=1)
        self.dense = compile(value_grad_hessian)
        self.products = compile(products)
        self.value_and_grad = compile(value_and_gradient)

    def operator(self, x, *, args=()):
        """The Hessian at ``x`` as an :class:`HVPOperator` (compiled products)."""
        flat, unravel = ravel_pytree(x)
        lazy = any(is_lazy(leaf) for leaf in flatten(args)[0])
        recording = (LazyDataRecording if lazy else CompiledRecording)(self, x, args)
        return HVPOperator(recording, self.mode, unravel, flat.size)


# ---- the operator --------------------------------------------------------------

class HVPOperator(LinearOperator):
    """The Hessian of ``f`` at ``x`` as a SciPy ``LinearOperator``.

    Built by :func:`hvp_operator`. Square ``n x n`` over the flattened
    ``x``, symmetric, with the floating dtype of ``x`` (float64 for integer
    input). ``grad f`` is recorded once, at construction;
    every product is one sweep of that recording, never a new call of ``f``.
    Use it as any ``LinearOperator``: ``H @ v``, ``H.matvec(v)``,
    ``H.matmat(V)``, ``H.T``, or pass it to ``cg``, ``minres``, ``eigsh``.

    Parameters
    ----------
    recording : GradRecording
        ``grad f`` at ``x``, recorded on an outer tape.
    mode : {"rev-rev", "fwd-rev"}
        How ``matvec`` sweeps the recording: one reverse sweep seeded with
        ``v`` at the gradient, or one forward replay with tangent ``v`` at
        the inputs. ``matmat`` pushes all its columns through the recording
        in one batched forward replay, in either mode.
    unravel : callable
        Rebuilds the structure of ``x`` from a flat vector.
    n : int
        The number of scalars in ``x``.

    Returns
    -------
    HVPOperator
        ``H @ v`` returns ``H v`` as a flat vector of length ``n`` in the
        operator's dtype; ``H.matmat(V)`` returns ``H V`` for ``V`` of shape
        ``(n, k)``. A complex ``v`` is applied to its real and imaginary
        parts (``H`` is a real operator), and the product is complex.

    Attributes
    ----------
    value : float
        ``f(x, *args)``.
    grad : ndarray, shape (n,)
        The flattened gradient at ``x``.
    unravel : callable
        Rebuilds the structure of ``x`` from a flat vector.
    mode : str
        ``"rev-rev"`` or ``"fwd-rev"``.
    matrix : ndarray or None
        The whole Hessian, ``(n, n)``, when the recording computed it (an
        :class:`HVPProgram` over dask data with few parameters, see
        :data:`DENSE_HESSIAN_MAX`); else None.

    See Also
    --------
    hvp_operator : the way to build one.
    hvp : one product without keeping a recording.

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> f = lambda p: p["a"] ** 2 * p["b"]        # H = [[2 b, 2 a], [2 a, 0]]
    >>> H = dualrev.hvp_operator(f, {"a": 1.0, "b": 3.0}, mode="fwd-rev")
    >>> isinstance(H, dualrev.HVPOperator), H.shape, H.value, H.grad
    (True, (2, 2), 3.0, array([6., 1.]))
    >>> H.matmat(np.eye(2))
    array([[6., 2.],
           [2., 0.]])
    >>> Hv = H.unravel(H @ np.array([1.0, 0.0]))    # back to the structure of x
    >>> float(Hv["a"]), float(Hv["b"])
    (6.0, 2.0)
    """

    def __init__(self, recording, mode, unravel, n):
        super().__init__(dtype=float_dtype(*recording.x_leaves), shape=(n, n))
        self._recording = recording
        self.mode = mode
        self.unravel = unravel
        # one dask.compute for both when the recording is lazy (dask data)
        value, grad_leaves = compute_leaves((recording.value, recording.grad_leaves))
        self.value = float(value)
        self.grad = _ravel_leaves(grad_leaves, n, self.dtype)
        self.matrix = recording.matrix

    def _split(self, vector, batch=()):
        return split_flat(np.asarray(vector, self.dtype),
                          [shape_of(x) for x in self._recording.x_leaves], batch)

    def _matvec(self, v):
        v = np.ravel(v)
        if np.iscomplexobj(v):  # a real operator: H (a + ib) = H a + i H b
            return self._matvec(v.real) + 1j * self._matvec(v.imag)
        with guard_materialization():
            product = self._recording.product(self._split(v), self.mode)
        return _ravel_leaves(compute_leaves(product), self.shape[0], self.dtype)

    def _rmatvec(self, v):
        return self._matvec(v)

    def _adjoint(self):
        return self

    def _matmat(self, V):
        V = np.asarray(V)
        if np.iscomplexobj(V):
            return self._matmat(V.real) + 1j * self._matmat(V.imag)
        V = V.astype(self.dtype, copy=False)
        if not V.shape[1]:
            return np.zeros((self.shape[0], 0), self.dtype)
        # All columns as one batched tangent: one forward replay (H is
        # symmetric, so this is also the reverse sweeps' H V).
        batch = (V.shape[1],)
        with guard_materialization():
            product = compute_leaves(self._recording.forward(self._split(V.T, batch), batch))
        return np.concatenate([np.reshape(p, batch + (-1,)) for p in product]
                              or [np.zeros(batch + (0,), self.dtype)], axis=1).T.copy()


def _ravel_leaves(leaves, n, dtype):
    flat = np.concatenate([np.ravel(leaf) for leaf in leaves]) if leaves else np.zeros(0)
    return np.asarray(flat, dtype).reshape(n)


def hvp_operator(f, x, mode="rev-rev", *, args=(), argnums=0, compile=False):
    """The Hessian of ``f`` at ``x`` as a ``scipy.sparse.linalg.LinearOperator``.

    ``grad f`` is recorded once on an outer tape; each ``H v`` is then one
    sweep of that recorded backward tape (``"rev-rev"``: reverse, seeded
    with ``v`` at the gradient) or one forward replay of it (``"fwd-rev"``:
    tangent ``v`` at the inputs). ``f`` is not called again. The operator
    works with ``scipy.sparse.linalg.cg``, ``minres``, ``eigsh``...

    Parameters
    ----------
    f : callable
        ``f(x, *args)`` returns a scalar.
    x : array or nested tuple/list/dict of arrays
        The point; the operator acts on its flattened form (see
        :func:`~dualrev.tree.ravel_pytree`).
    mode : {"rev-rev", "fwd-rev"}
        The modes of :data:`HVP_MODES` that have an operator sweep.
    args : tuple
        Further arguments of ``f``: it is called ``f(x, *args)``.
    argnums : int or tuple of int
        Which of ``f(x, *args)``'s arguments are differentiated; must include
        ``0`` (see :func:`hvp`). The operator acts on the selected arguments.
    compile : bool
        Stage the products once (:func:`dualrev.compile`) and run each as
        generated NumPy code: worth it for the many products of an iterative
        solver. For operators at many points, keep one :class:`HVPProgram`.

    Returns
    -------
    HVPOperator
        Square and symmetric, in the floating dtype of ``x``, with attributes ``value`` (``f(x)``),
        ``grad`` (flat gradient) and ``unravel``. Releasing it frees the
        recording.

    See Also
    --------
    hvp, value_grad_hvp, hessian

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> from scipy.sparse.linalg import cg
    >>> A = np.array([[3.0, 1.0], [1.0, 2.0]])
    >>> H = dualrev.hvp_operator(lambda x: 0.5 * x @ A @ x, np.zeros(2))
    >>> H @ np.array([1.0, 0.0])
    array([3., 1.])
    >>> x, info = cg(H, np.array([1.0, 1.0]), rtol=1e-12)
    >>> np.allclose(A @ x, [1.0, 1.0])
    True
    """
    if compile:
        return HVPProgram(f, mode, argnums=argnums).operator(x, args=args)
    _check_mode(mode, operator_modes())
    f, x, args = _selected(f, x, args, argnums)
    flat, unravel = ravel_pytree(x)
    with guard_materialization():
        recording = GradRecording(f, x, args)
    return HVPOperator(recording, mode, unravel, flat.size)


# ---- full Hessians ---------------------------------------------------------------

def hessian(f, argnums=0, mode="fwd-rev"):
    """The full Hessian of a scalar function.

    Parameters
    ----------
    f : callable
        Returns a scalar.
    argnums : int or tuple of int
        Which positional arguments to differentiate.
    mode : {"fwd-rev", "rev-rev"}
        The modes of :data:`HVP_MODES` with a Hessian transformation.
        ``"fwd-rev"``: ``jacfwd(grad f)``, all ``n`` directions pushed as one
        batched tangent through the backward sweep. ``"rev-rev"``:
        ``jacrev(grad f)``, ``grad f`` recorded once and its recording swept
        ``n`` times.

    Returns
    -------
    callable
        Same arguments as ``f``; returns the Hessian, of shape
        ``x.shape + x.shape`` for an array argument (nested blocks for
        structured arguments). Symmetric to rounding.

    See Also
    --------
    hvp, hvp_operator, jacfwd, jacrev

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> dualrev.hessian(lambda x: x[0] ** 2 * x[1])(np.array([1.0, 3.0]))
    array([[6., 2.],
           [2., 0.]])
    """
    _check_mode(mode, hessian_modes())
    hessian_f = computed(HVP_MODES[mode].hessian(grad(f, argnums), argnums), argnums)
    hessian_f.__name__ = f"hessian({getattr(f, '__name__', 'f')})"
    return hessian_f
