"""What differentiating a recorded function costs, in a machine-independent model.

For ``f: R^n -> R^m`` the Jacobian takes ``n`` forward directions (``jacfwd``)
or ``m`` reverse sweeps of one recorded tape (``jacrev``). This module reads
the work off a recorded :class:`~dualrev.reverse.Tape` and predicts the cheaper
mode; :func:`dualrev.choose_mode` and ``dualrev.jacobian(mode="auto")`` ask it,
and :mod:`dualrev.comparison` measures the modes next to its predictions.
The HVP modes' entries are here too (:class:`HVPWork` and one function per
mode, such as :func:`forward_over_reverse_cost`); the table that names them
is :data:`dualrev.hvp.HVP_MODES`.

The cost model
--------------
Machine independent: it counts, it never times. Each record of the tape is
one primitive; its floating-point operations are its op's ``flops`` rule
(declared with the op, ``defop(flops=...)``; :data:`FLOP_MODEL` collects them):

==============  ==========================================  ======================
family          ops                                         flops of one record
==============  ==========================================  ======================
elementwise     add, multiply, sin, tanh, where, ...         output size
matmul          matmul                                      ``2 * m * k * n``
einsum          einsum                                      2 per index-space point
reduction       sum, amax, amin, prod, cumsum,              input size
                logsumexp
shape/indexing  reshape, transpose, broadcast_to,           0
                concatenate, getitem, untake, ...
linalg          solve ``2/3 n^3 + 2 n^2 k``, det and        textbook estimates
                logabsdet ``2/3 n^3``, inv ``2 n^3``,
                cholesky ``n^3/3``, eigvalsh/eigvecs ``9 n^3``
==============  ==========================================  ======================

A derivative rule (JVP or VJP) applied to one argument of a record costs,
in the model, what the record itself costs; so with ``F`` the flops of the
tape, ``T`` the flops of one derivative direction (``F`` weighted by the
number of differentiated arguments of each record), ``ops`` the records and
``P`` the rule calls of one direction:

* forward  (``jacfwd``): ``passes * F + n * T`` flops, ``passes * (ops + P)`` calls
* reverse  (``jacrev``): ``F + m * T`` flops, ``ops + m * P`` calls

where forward pushes its ``n`` directions together in ``passes`` batched
passes (usually one). Every primitive call through Python costs
:data:`DISPATCH_FLOPS` flop-equivalents on top: that is why forward mode,
whose ``n`` directions share one pass, still wins somewhat past ``n = m``
when the arrays are small.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from .registry import OPS

__all__ = ["TapeCost", "tape_cost", "flops_of", "forward_passes", "jacobian_costs",
           "predict_jacobian_mode", "default_chunk_size", "FLOP_MODEL", "DISPATCH_FLOPS", "HVPWork",
           "forward_over_reverse_cost", "reverse_over_reverse_cost",
           "reverse_over_forward_cost", "finite_difference_cost"]

#: Flop-equivalents of one primitive call through Python (about 5 µs of
#: interpreter work at about 1 Gflop/s of NumPy throughput). A fixed model
#: constant, the same on every machine.
DISPATCH_FLOPS = 5000

class _FlopModel(Mapping):
    """Op name -> its flops rule ``flops(out, *args, **params)`` (``Op.flops``),
    read live from the registry."""

    def __getitem__(self, name):
        return OPS[name].flops

    def __iter__(self):
        return iter(list(OPS))

    def __len__(self):
        return len(OPS)


#: Op name -> flops of one call, ``rule(out, *args, **params)``: each op
#: declares its own (``defop(flops=...)``); linear-algebra ops use the
#: textbook estimates for LU (solve, det), inversion, Cholesky and the
#: symmetric eigensolver.
FLOP_MODEL = _FlopModel()


def flops_of(record):
    """Floating-point operations of one tape record, by :data:`FLOP_MODEL`.

    Parameters
    ----------
    record : dualrev.reverse.Record
        ``(op, args, params, out, parents)``, as a tape yields them.

    Returns
    -------
    int

    See Also
    --------
    tape_cost

    Examples
    --------
    >>> import numpy as np
    >>> from dualrev.reverse import Tape
    >>> tape = Tape()
    >>> _ = tape.input(np.ones((2, 3))) @ np.ones((3, 4))
    >>> flops_of(tape.record(1))  # 2 * m * k * n
    48
    """
    op, args, params, out, _ = record
    return op.flops(out, *args, **params)


@dataclass
class TapeCost:
    """The work recorded on a tape.

    Attributes
    ----------
    ops : int
        Primitives recorded (records that depend on an input).
    flops : int
        Their floating-point operations, by :data:`FLOP_MODEL`.
    deriv_flops : int
        Flops of one derivative direction: each record's flops times its
        number of differentiated arguments.
    rule_calls : int
        Derivative rules called in one direction (the differentiated
        arguments of all records).
    by_op : dict
        Op name -> number of records.
    """

    ops: int = 0
    flops: int = 0
    deriv_flops: int = 0
    rule_calls: int = 0
    by_op: dict = field(default_factory=dict)


def tape_cost(tape):
    """Read the primitive count and the flops off a recorded tape.

    Parameters
    ----------
    tape : dualrev.reverse.Tape

    Returns
    -------
    TapeCost

    See Also
    --------
    flops_of, dualrev.compare

    Examples
    --------
    >>> import numpy as np
    >>> from dualrev.reverse import Tape
    >>> tape = Tape()
    >>> x = tape.input(np.arange(10.0))
    >>> _ = np.sum(x * np.ones(10))    # multiply: 10 flops, sum: 10 flops
    >>> cost = tape_cost(tape)
    >>> cost.ops, cost.flops
    (2, 20)
    """
    cost = TapeCost()
    for record in tape:
        flops = flops_of(record)
        name = record.op.name
        cost.ops += 1
        cost.flops += flops
        cost.deriv_flops += flops * len(record.parents)
        cost.rule_calls += len(record.parents)
        cost.by_op[name] = cost.by_op.get(name, 0) + 1
    return cost


def default_chunk_size(n):
    """Directions that :func:`~dualrev.jacfwd` pushes together for ``n``
    inputs: all of them, unless ``n * n`` tangent entries would pass ``2**22``."""
    return max(1, min(n, (1 << 22) // max(n, 1)))


def forward_passes(n):
    """Batched passes ``jacfwd`` makes for ``n`` directions (its chunking)."""
    if n == 0:
        return 0
    chunk = default_chunk_size(n)
    return -(-n // chunk)


def jacobian_costs(cost, n, m):
    """Model cost (flop-equivalents) of ``{"fwd": ..., "rev": ...}``.

    Examples
    --------
    >>> c = TapeCost(ops=1, flops=10, deriv_flops=10, rule_calls=1)
    >>> costs = jacobian_costs(c, n=10, m=1)
    >>> costs["rev"] < costs["fwd"]
    True
    """
    passes = forward_passes(n)
    fwd = passes * cost.flops + n * cost.deriv_flops \
        + DISPATCH_FLOPS * passes * (cost.ops + cost.rule_calls)
    rev = cost.flops + m * cost.deriv_flops \
        + DISPATCH_FLOPS * (cost.ops + m * cost.rule_calls)
    return {"fwd": fwd, "rev": rev}


def predict_jacobian_mode(cost, n, m):
    """'fwd' or 'rev', whichever the cost model says is cheaper ('fwd' on ties).

    Parameters
    ----------
    cost : TapeCost
        The tape of ``f`` (see :func:`tape_cost`).
    n, m : int
        Input and output sizes.

    Returns
    -------
    str

    See Also
    --------
    dualrev.choose_mode, jacobian_costs

    Examples
    --------
    >>> c = TapeCost(ops=2, flops=2000, deriv_flops=2000, rule_calls=2)
    >>> predict_jacobian_mode(c, n=1, m=1000), predict_jacobian_mode(c, n=1000, m=1)
    ('fwd', 'rev')
    """
    costs = jacobian_costs(cost, n, m)
    return "fwd" if costs["fwd"] <= costs["rev"] else "rev"


# ---- Hessian-vector products -----------------------------------------------------

@dataclass
class HVPWork:
    """The recorded work an HVP is built from.

    Attributes
    ----------
    f : TapeCost
        ``f`` alone.
    grad : TapeCost
        ``grad f``, recorded on an outer tape (its backward sweep included).
    jvp : TapeCost
        The directional derivative ``jvp f`` along ``v``, recorded on an outer tape.
    """

    f: TapeCost
    grad: TapeCost
    jvp: TapeCost


def _differentiated(work, passes):
    """``(passes, flops, cost)`` of one derivative direction through ``work``."""
    flops = work.flops + work.deriv_flops
    return passes, flops, flops + DISPATCH_FLOPS * (work.ops + work.rule_calls)


def forward_over_reverse_cost(work):
    """One tangent pushed through ``grad f`` (two ``f``-sized passes)."""
    return _differentiated(work.grad, 2)


def reverse_over_reverse_cost(work):
    """``grad f`` recorded, then its recording swept once (four passes)."""
    return _differentiated(work.grad, 4)


def reverse_over_forward_cost(work):
    """``jvp f`` recorded, then swept once (two passes)."""
    return _differentiated(work.jvp, 2)


def finite_difference_cost(work):
    """Two gradients of ``f`` (four passes).

    Examples
    --------
    >>> c = TapeCost(ops=1, flops=10, deriv_flops=10, rule_calls=1)
    >>> finite_difference_cost(HVPWork(f=c, grad=c, jvp=c))
    (4, 40, 20040)
    """
    grad_flops = work.f.flops + work.f.deriv_flops
    grad_calls = work.f.ops + work.f.rule_calls
    return 4, 2 * grad_flops, 2 * (grad_flops + DISPATCH_FLOPS * grad_calls)
