"""Non-finite values in an optimisation: the error, and where they came from.

The optimisers (:func:`~dualrev.optimize.minimize`,
:func:`~dualrev.optimize.least_squares`, :func:`~dualrev.optimize.hessian_free`)
and the operators check the value, the gradient and every product they
compute. A NaN or inf stops the run with :class:`NonFiniteError`, whose
message names the quantity, the iterate and, when a re-recording finds
it, the first primitive whose output was not finite while its inputs were
(:func:`first_nonfinite_op`).
"""

import numpy as np

from .api import value_and_grad
from .registry import Tracer
from .reverse import Tape
from .tree import flatten, unflatten

__all__ = ["NonFiniteError", "first_nonfinite_op", "require_finite"]


class NonFiniteError(FloatingPointError):
    """A NaN or inf in a value, gradient or product of an optimisation.

    Attributes
    ----------
    quantity : str
        What was not finite (``"value"``, ``"gradient"``, ``"Hessian-vector
        product"``...).
    iterate : ndarray or None
        The flat parameter vector where it happened.
    op : str or None
        The first primitive whose output was not finite, when found.
    """

    def __init__(self, message, quantity, iterate=None, op=None):
        super().__init__(message)
        self.quantity = quantity
        self.iterate = iterate
        self.op = op


def _is_finite(value):
    if isinstance(value, Tracer):
        return True
    if isinstance(value, float):
        return bool(np.isfinite(value))
    value = np.asarray(value)
    if value.dtype.kind not in "fc":
        return True
    # a finite sum (one pass, no temporary) proves every entry finite; only an
    # inf or nan sum, which a huge finite entry can also give, needs the full test
    with np.errstate(over="ignore", invalid="ignore"):
        total = value.sum()
    return bool(np.isfinite(total)) or bool(np.isfinite(value).all())


def first_nonfinite_op(f, x, args=()):
    """The first primitive of ``f`` or of its gradient giving NaN or inf.

    Records ``value_and_grad(f)`` at ``x`` on a tape that keeps every
    intermediate value and walks the records in execution order (the
    function, then its backward sweep). Returns a description such as
    ``"log (record 3, in the gradient)"``, or None when every recorded
    output is finite or the non-finite value enters through ``x`` or
    ``args``.

    Examples
    --------
    >>> import numpy as np
    >>> from dualrev.finite import first_nonfinite_op
    >>> with np.errstate(all="ignore"):
    ...     first_nonfinite_op(lambda x: np.sum(np.log(x) * x), np.array([1.0, -1.0]))
    'log (record 1, in the value)'
    """
    tape = Tape(keep_all=True)
    leaves, treedef = flatten(x)
    nodes = [tape.input(np.asarray(leaf, dtype=np.result_type(leaf, np.float32)))
             for leaf in leaves]
    with np.errstate(all="ignore"):
        value, _ = value_and_grad(f)(unflatten(treedef, nodes), *args)
    value_end = tape.index_of(value)
    for index, record in tape.items():
        if _is_finite(record.out) or not all(_is_finite(a) for a in record.args
                                             if isinstance(a, np.ndarray | float)):
            continue
        where = "the value" if value_end is not None and index <= value_end else "the gradient"
        return f"{record.op.name} (record {index}, in {where})"
    return None


def require_finite(quantity, array, iterate, diagnose=None):
    """Raise :class:`NonFiniteError` unless ``array`` is finite.

    ``iterate`` is the flat point (or a description of it); ``diagnose``,
    when given, is called with no argument for the name of the first op
    (see :func:`first_nonfinite_op`) only once a non-finite value is found.
    """
    if _is_finite(array):
        return
    op = diagnose() if diagnose is not None else None
    where = f"; the first op giving a non-finite value is {op}" if op else ""
    point = np.array2string(np.asarray(iterate), threshold=6, precision=4) \
        if iterate is not None else "?"
    raise NonFiniteError(
        f"non-finite {quantity} at the iterate x = {point}{where}. "
        "Pass check_finite=False to let the run go on.", quantity, iterate, op)
