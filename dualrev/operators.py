"""Jacobians and Gauss-Newton matrices as SciPy ``LinearOperator`` objects.

:func:`jacobian_operator` records ``f`` once on a tape; every ``J v`` is
then one forward replay of that tape (a batched replay for ``J V``), every
``J^T u`` one reverse sweep, never a new call of ``f``.

:func:`gauss_newton_operator` builds ``G = J^T H_out J`` (plus the Hessian
of a parameter penalty) from a Jacobian operator of the model outputs and
an :class:`~dualrev.hvp.HVPOperator` of the output loss: the curvature that
:func:`~dualrev.optimize.hessian_free` and Gauss-Newton least squares use.
:class:`ModelLoss` keeps a loss split into model, output loss and penalty.
"""

import numpy as np
from scipy.sparse.linalg import LinearOperator

from .api import record
from .finite import first_nonfinite_op, require_finite
from .hvp import hvp_operator
from .registry import shape_of
from .tree import flatten, ravel_pytree, split_flat, unflatten

__all__ = ["ModelLoss", "JacobianOperator", "jacobian_operator", "GaussNewtonOperator",
           "gauss_newton_operator"]


class ModelLoss:
    """A loss kept split as ``out_loss(model(params, *batch), *batch) + penalty(params)``.

    The split is what Gauss-Newton curvature needs: the Jacobian ``J`` of
    the model outputs and the Hessian ``H_out`` of ``out_loss`` in the
    outputs give ``G = J^T H_out J``, positive semi-definite when
    ``out_loss`` is convex in the outputs (squared error, softmax
    cross-entropy). The Hessian of ``penalty`` (an L2 term: a multiple of
    the identity) is added to ``G``. Calling a ``ModelLoss`` gives the
    loss itself.

    Parameters
    ----------
    model : callable
        ``model(params, *batch)`` returns the outputs (array or structure).
    out_loss : callable
        ``out_loss(outputs, *batch)`` returns a scalar.
    penalty : callable, optional
        ``penalty(params)`` returns a scalar added to the loss (not
        divided among batches), e.g. ``lambda p: 1e-3 * np.sum(p ** 2)``.

    See Also
    --------
    gauss_newton_operator, dualrev.optimize.hessian_free

    Examples
    --------
    >>> import numpy as np
    >>> from dualrev.optimize import ModelLoss
    >>> loss = ModelLoss(lambda w, x: x @ w, lambda out, x: np.sum(out ** 2),
    ...                  penalty=lambda w: 0.5 * np.sum(w ** 2))
    >>> float(loss(np.ones(2), np.eye(2)))
    3.0
    """

    def __init__(self, model, out_loss, penalty=None):
        self.model = model
        self.out_loss = out_loss
        self.penalty = penalty

    def __call__(self, params, *batch):
        value = self.out_loss(self.model(params, *batch), *batch)
        return value if self.penalty is None else value + self.penalty(params)


class JacobianOperator(LinearOperator):
    """The Jacobian of ``f`` at ``x`` as an ``(m, n)`` SciPy ``LinearOperator``.

    Built by :func:`jacobian_operator`; ``f`` is recorded once. ``J @ v``
    is one forward replay of the recording, ``J.matmat(V)`` one batched
    replay for all columns, ``J.T @ u`` one reverse sweep.

    Attributes
    ----------
    value : ndarray, shape (m,)
        ``f(x)`` flattened (:func:`~dualrev.tree.ravel_pytree` order).
    unravel : callable
        Rebuilds the structure of ``x`` from a flat vector.
    unravel_out : callable
        Rebuilds the structure of ``f(x)`` from a flat vector.
    """

    def __init__(self, f, x, args=(), check_finite=True):
        self._tape, nodes, self._leaves, _, out = record(f, (x,) + tuple(args), {}, 0)
        self._inputs = [node.index for node in nodes]
        out_leaves = flatten(out)[0]
        self._out_index = [self._tape.index_of(o) for o in out_leaves]
        self._out_shapes = [shape_of(o) for o in out_leaves]
        values = [o.value if i is not None else o for o, i in zip(out_leaves, self._out_index)]
        self.value, self.unravel_out = ravel_pytree(_rebuild(out, values))
        flat, self.unravel = ravel_pytree(x)
        dtype = np.result_type(flat.dtype, *[np.asarray(v).dtype for v in values])
        super().__init__(dtype=np.float64 if dtype.kind != "f" else dtype,
                         shape=(self.value.size, flat.size))
        self._x = flat
        self.check_finite = check_finite
        self._replay = None
        self._diagnose = lambda: first_nonfinite_op(sum_of_outputs(f), x, tuple(args))
        if check_finite:
            require_finite("residual", self.value, self._x, self._diagnose)

    def _forward(self, V, batch):
        wanted = [i for i in self._out_index if i is not None]
        if not wanted:
            return np.zeros(batch + (self.shape[0],))
        if self._replay is None:
            self._replay = self._tape.pruned(wanted)
        shapes = [shape_of(leaf) for leaf in self._leaves]
        tangents = dict(zip(self._inputs, split_flat(V, shapes, batch)))
        by_index = dict(zip(wanted, self._replay.forward(tangents, wanted)))
        parts = [np.zeros(batch + s) if by_index.get(i) is None
                 else np.broadcast_to(by_index[i], batch + s)
                 for i, s in zip(self._out_index, self._out_shapes)]
        return np.concatenate([np.reshape(p, batch + (-1,)) for p in parts], axis=-1)

    def _checked(self, what, result):
        if self.check_finite:
            require_finite(what, result, self._x, self._diagnose)
        return result

    def _matvec(self, v):
        v = np.asarray(v, self.dtype).ravel()
        return self._checked("Jacobian-vector product", self._forward(v, ()))

    def _matmat(self, V):
        V = np.asarray(V, self.dtype)
        out = self._forward(np.ascontiguousarray(V.T), (V.shape[1],)).T
        return self._checked("Jacobian-matrix product", np.ascontiguousarray(out))

    def _rmatvec(self, u):
        u = np.asarray(u, self.dtype).ravel()
        seeds = {}
        for i, c in zip(self._out_index, split_flat(u, self._out_shapes)):
            if i is not None:
                seeds[i] = c if i not in seeds else seeds[i] + c
        if not seeds:
            return np.zeros(self.shape[1], self.dtype)
        cts = self._tape.backward(seeds, self._inputs)
        flat = np.concatenate([np.zeros(int(np.prod(shape_of(x)))) if c is None
                               else np.ravel(c) for c, x in zip(cts, self._leaves)])
        return self._checked("vector-Jacobian product", flat.astype(self.dtype, copy=False))

    def _rmatmat(self, U):
        return np.column_stack([self._rmatvec(u) for u in np.asarray(U).T]) \
            if U.shape[1] else np.zeros((self.shape[1], 0), self.dtype)


def _rebuild(out, values):
    return unflatten(flatten(out)[1], values)


def sum_of_outputs(f):
    """A scalar function whose recording holds every op of ``f``."""
    def summed(x, *args):
        return sum(np.sum(leaf) for leaf in flatten(f(x, *args))[0])
    return summed


def jacobian_operator(f, x, *, args=(), check_finite=True):
    """The Jacobian of ``f`` at ``x`` as a ``scipy.sparse.linalg.LinearOperator``.

    ``f`` is recorded once; ``J @ v`` is one forward replay of the
    recording (``J.matmat(V)``: one replay with all columns as a batch),
    ``J.T @ u`` one reverse sweep. Nothing calls ``f`` again: the form
    ``scipy.optimize.least_squares(..., tr_solver="lsmr")``, ``lsqr`` and
    ``svds`` want for large problems.

    Parameters
    ----------
    f : callable
        ``f(x, *args)`` returns an array or a structure of arrays.
    x : array or nested dict/list/tuple of arrays
        The point; the operator acts on its flattened form.
    args : tuple
        Further arguments of ``f``, held constant.
    check_finite : bool
        Raise :class:`~dualrev.finite.NonFiniteError` when ``f(x)`` or a
        product is not finite.

    Returns
    -------
    JacobianOperator
        ``(m, n)`` with ``m`` the size of ``f(x)`` and ``n`` that of ``x``;
        attribute ``value`` is ``f(x)`` flattened.

    See Also
    --------
    gauss_newton_operator, dualrev.jacobian, dualrev.hvp_operator

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> J = dualrev.jacobian_operator(lambda x: x[:2] * x[1:], np.array([1.0, 2.0, 3.0]))
    >>> J.shape, J.value
    ((2, 3), array([2., 6.]))
    >>> J @ np.array([1.0, 0.0, 0.0]), J.T @ np.array([0.0, 1.0])
    (array([2., 0.]), array([0., 3., 2.]))
    """
    return JacobianOperator(f, x, args, check_finite)


class GaussNewtonOperator(LinearOperator):
    """``G = J^T H_out J + H_penalty`` at one point, as a ``LinearOperator``.

    Built by :func:`gauss_newton_operator`. Each product is one forward
    replay of the model's recording (``J v``), one sweep of the output
    loss's HVP operator, one reverse sweep of the model's recording
    (``J^T``) and, with a penalty, one sweep of its HVP operator.

    Attributes
    ----------
    value : float
        The loss at the point (penalty included).
    grad : ndarray, shape (n,)
        Its flat gradient.
    jacobian : JacobianOperator
        The Jacobian of the model outputs.
    unravel : callable
        Rebuilds the structure of the parameters from a flat vector.
    """

    def __init__(self, model, out_loss, penalty, x, batch, hvp_mode, check_finite):
        self.jacobian = JacobianOperator(model, x, batch, check_finite)
        n = self.jacobian.shape[1]
        super().__init__(dtype=self.jacobian.dtype, shape=(n, n))
        self.unravel = self.jacobian.unravel
        self.check_finite = check_finite
        out = self.jacobian.unravel_out(self.jacobian.value)
        if out_loss is None:
            self._h_out = None
            r = self.jacobian.value
            self.value = 0.5 * float(r @ r)
            self.grad = self.jacobian.rmatvec(r)
        else:
            self._h_out = hvp_operator(out_loss, out, hvp_mode, args=batch)
            self.value = self._h_out.value
            self.grad = self.jacobian.rmatvec(self._h_out.grad)
        self._penalty = None
        if penalty is not None:
            self._penalty = hvp_operator(penalty, x, hvp_mode)
            self.value += self._penalty.value
            self.grad = self.grad + self._penalty.grad
        self.grad = np.asarray(self.grad, self.dtype)
        if check_finite:
            flat = self.jacobian._x
            loss = ModelLoss(model, out_loss or _half_sum_of_squares, penalty)

            def diagnose():
                return first_nonfinite_op(loss, x, batch)
            require_finite("loss value", self.value, flat, diagnose)
            require_finite("gradient", self.grad, flat, diagnose)

    def _matvec(self, v):
        v = np.asarray(v, self.dtype).ravel()
        Jv = self.jacobian.matvec(v)
        HJv = Jv if self._h_out is None else self._h_out.matvec(Jv)
        Gv = self.jacobian.rmatvec(HJv)
        if self._penalty is not None:
            Gv = Gv + self._penalty.matvec(v)
        Gv = np.asarray(Gv, self.dtype)
        if self.check_finite:
            require_finite("Gauss-Newton product", Gv, self.jacobian._x)
        return Gv

    def _rmatvec(self, v):
        return self._matvec(v)

    def _adjoint(self):
        return self


def _half_sum_of_squares(out, *batch):
    return 0.5 * sum(np.sum(leaf ** 2) for leaf in flatten(out)[0])


def gauss_newton_operator(residual_or_model, x, loss=None, *, args=(), hvp_mode="rev-rev",
                          check_finite=True):
    """The Gauss-Newton matrix ``J^T H_loss J`` at ``x`` as a ``LinearOperator``.

    Three forms:

    * ``residual_or_model`` a residual function, ``loss=None``: the
      least-squares loss ``||r(x)||^2 / 2`` and ``G = J^T J``;
    * a model and ``loss(outputs, *args)``: ``G = J^T H_loss J`` with
      ``H_loss`` the Hessian of ``loss`` in the outputs (positive
      semi-definite for a convex loss);
    * a :class:`ModelLoss`: its model, output loss and penalty (whose
      Hessian is added: Gauss-Newton with L2 regularisation).

    This is the curvature of ``hessian_free(curvature="gauss-newton")``.

    Parameters
    ----------
    residual_or_model : callable or ModelLoss
        ``f(x, *args)`` returns the residuals / model outputs.
    x : array or nested dict/list/tuple of arrays
        The point.
    loss : callable, optional
        ``loss(outputs, *args)``, a scalar. Not with a ``ModelLoss``.
    args : tuple
        Further arguments of the model and the loss (a batch).
    hvp_mode : {"rev-rev", "fwd-rev"}
        How the output loss's Hessian products are computed.
    check_finite : bool
        Raise :class:`~dualrev.finite.NonFiniteError` on a non-finite
        loss, gradient or product.

    Returns
    -------
    GaussNewtonOperator
        Square, symmetric; attributes ``value`` (the loss), ``grad`` (its
        flat gradient), ``jacobian`` and ``unravel``.

    See Also
    --------
    jacobian_operator, ModelLoss, dualrev.optimize.hessian_free

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> A = np.array([[1.0, 2.0], [0.0, 1.0], [1.0, 0.0]])
    >>> G = dualrev.gauss_newton_operator(lambda w: A @ w - 1.0, np.zeros(2))
    >>> G.value, G.grad
    (1.5, array([-2., -3.]))
    >>> bool(np.allclose(G.matmat(np.eye(2)), A.T @ A))
    True
    """
    args = tuple(args)
    if isinstance(residual_or_model, ModelLoss):
        if loss is not None:
            raise TypeError("a ModelLoss carries its own output loss: pass loss=None")
        ml = residual_or_model
        return GaussNewtonOperator(ml.model, ml.out_loss, ml.penalty, x, args, hvp_mode,
                                   check_finite)
    if not callable(residual_or_model):
        raise TypeError("residual_or_model must be a callable or a ModelLoss, not "
                        f"{type(residual_or_model).__name__}")
    return GaussNewtonOperator(residual_or_model, loss, None, x, args, hvp_mode,
                               check_finite)
