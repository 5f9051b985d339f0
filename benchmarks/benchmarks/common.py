"""Seeded problem fixtures and hand-written reference derivatives.

Everything here uses NumPy and SciPy only, so the benchmarks can compare
dualrev against a floor that owes nothing to it. The loss functions use a
small set of NumPy calls (``@``, ``np.tanh``, ``np.exp``, ``np.log``,
``np.max``, ``np.sum``, ``np.logaddexp``, integer-array indexing) so that an
AD library overloading NumPy can differentiate the very same code.
"""

import time

import numpy as np
from scipy.optimize import rosen, rosen_der, rosen_hess, rosen_hess_prod
from scipy.special import expit

__all__ = [
    "rng",
    "mlp_problem",
    "mlp_loss",
    "mlp_loss_grad_by_hand",
    "logistic_problem",
    "logistic_loss",
    "logistic_grad_by_hand",
    "logistic_hessp_by_hand",
    "rosen",
    "rosen_der",
    "rosen_hess",
    "rosen_hess_prod",
    "rosen_point",
    "scalar_chain",
    "scalar_chain_deriv_by_hand",
    "indexing_loop",
    "indexing_loop_grad_by_hand",
]


def rng(seed=0):
    """Return a seeded NumPy random generator.

    Parameters
    ----------
    seed : int, optional
        Seed passed to ``np.random.default_rng``.

    Returns
    -------
    numpy.random.Generator
    """
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------
# Two-layer MLP, tanh hidden layer, softmax cross-entropy
# ---------------------------------------------------------------------------

def mlp_problem(batch=128, sizes=(784, 256, 10), seed=0):
    """Build a seeded MLP classification problem.

    Parameters
    ----------
    batch : int, optional
        Number of samples.
    sizes : tuple of int, optional
        ``(n_in, n_hidden, n_classes)``.
    seed : int, optional
        Random seed.

    Returns
    -------
    params : dict of ndarray
        ``{"W1": (n_in, n_hidden), "b1": (n_hidden,),
        "W2": (n_hidden, n_classes), "b2": (n_classes,)}``, float64, with
        weights scaled by ``1/sqrt(fan_in)`` and small nonzero biases.
    X : ndarray, shape (batch, n_in)
        Standard normal inputs, float64.
    y : ndarray of int, shape (batch,)
        Class labels in ``[0, n_classes)``.
    """
    n_in, n_hidden, n_out = sizes
    r = rng(seed)
    params = {
        "W1": r.standard_normal((n_in, n_hidden)) / np.sqrt(n_in),
        "b1": 0.01 * r.standard_normal(n_hidden),
        "W2": r.standard_normal((n_hidden, n_out)) / np.sqrt(n_hidden),
        "b2": 0.01 * r.standard_normal(n_out),
    }
    X = r.standard_normal((batch, n_in))
    y = r.integers(0, n_out, size=batch)
    return params, X, y


def mlp_loss(params, X, y):
    """Mean softmax cross-entropy of a two-layer tanh MLP.

    Plain NumPy, with the logsumexp written out by hand (shift by the row
    max), so that an AD library overloading NumPy can differentiate it.

    Parameters
    ----------
    params : dict of ndarray
        ``W1``, ``b1``, ``W2``, ``b2`` as from :func:`mlp_problem`.
    X : ndarray, shape (n, n_in)
        Inputs.
    y : ndarray of int, shape (n,)
        Class labels.

    Returns
    -------
    float
        Cross-entropy averaged over the batch.

    See Also
    --------
    mlp_loss_grad_by_hand : the same loss with its hand-written gradient.
    """
    n = X.shape[0]
    h = np.tanh(X @ params["W1"] + params["b1"])
    logits = h @ params["W2"] + params["b2"]
    m = np.max(logits, axis=1, keepdims=True)
    lse = np.log(np.sum(np.exp(logits - m), axis=1)) + m[:, 0]
    return np.sum(lse - logits[np.arange(n), y]) / n


def mlp_loss_grad_by_hand(params, X, y):
    """Loss and gradient of :func:`mlp_loss` by hand-written backprop.

    This is the reference "floor" an AD library is measured against.

    Parameters
    ----------
    params : dict of ndarray
        ``W1``, ``b1``, ``W2``, ``b2`` as from :func:`mlp_problem`.
    X : ndarray, shape (n, n_in)
        Inputs.
    y : ndarray of int, shape (n,)
        Class labels.

    Returns
    -------
    loss : float
        Same value as ``mlp_loss(params, X, y)``.
    grads : dict of ndarray
        Gradient with the same keys and shapes as ``params``.
    """
    n = X.shape[0]
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    h = np.tanh(X @ W1 + b1)
    logits = h @ W2 + b2
    shifted = logits - np.max(logits, axis=1, keepdims=True)
    e = np.exp(shifted)
    s = np.sum(e, axis=1, keepdims=True)
    rows = np.arange(n)
    loss = np.sum(np.log(s[:, 0]) - shifted[rows, y]) / n
    # d loss / d logits = (softmax - onehot) / n
    g_logits = e / s
    g_logits[rows, y] -= 1.0
    g_logits /= n
    g_h = g_logits @ W2.T
    g_pre = g_h * (1.0 - h * h)  # tanh' = 1 - tanh^2
    grads = {
        "W1": X.T @ g_pre,
        "b1": np.sum(g_pre, axis=0),
        "W2": h.T @ g_logits,
        "b2": np.sum(g_logits, axis=0),
    }
    return loss, grads


# ---------------------------------------------------------------------------
# L2-regularised logistic regression
# ---------------------------------------------------------------------------

def logistic_problem(n_samples=5000, n_features=200, seed=0):
    """Build a seeded L2-regularised logistic regression problem.

    Parameters
    ----------
    n_samples : int, optional
        Number of rows of ``A``.
    n_features : int, optional
        Number of columns of ``A`` (length of ``w``).
    seed : int, optional
        Random seed.

    Returns
    -------
    A : ndarray, shape (n_samples, n_features)
        Standard normal design matrix, float64.
    b : ndarray, shape (n_samples,)
        Labels in ``{-1.0, +1.0}`` from a noisy linear model.
    lam : float
        L2 regularisation strength, ``1 / n_samples``.
    """
    r = rng(seed)
    A = r.standard_normal((n_samples, n_features))
    w_true = r.standard_normal(n_features) / np.sqrt(n_features)
    z = A @ w_true + 0.5 * r.standard_normal(n_samples)
    b = np.where(z >= 0.0, 1.0, -1.0)
    lam = 1.0 / n_samples
    return A, b, lam


def logistic_loss(w, A, b, lam):
    """L2-regularised logistic loss.

    ``mean(log(1 + exp(-b * (A @ w)))) + lam / 2 * ||w||^2``, computed
    stably as ``np.logaddexp(0, -z)``.

    Parameters
    ----------
    w : ndarray, shape (n_features,)
        Weights.
    A : ndarray, shape (n_samples, n_features)
        Design matrix.
    b : ndarray, shape (n_samples,)
        Labels in ``{-1, +1}``.
    lam : float
        Regularisation strength.

    Returns
    -------
    float
    """
    z = b * (A @ w)
    return np.sum(np.logaddexp(0.0, -z)) / A.shape[0] + 0.5 * lam * np.sum(w * w)


def logistic_grad_by_hand(w, A, b, lam):
    """Gradient of :func:`logistic_loss`, by hand.

    Parameters
    ----------
    w, A, b, lam
        As in :func:`logistic_loss`.

    Returns
    -------
    ndarray, shape (n_features,)
    """
    z = b * (A @ w)
    # d/dz log(1 + exp(-z)) = -sigmoid(-z)
    return A.T @ (-b * expit(-z)) / A.shape[0] + lam * w


def logistic_hessp_by_hand(w, p, A, b, lam):
    """Hessian of :func:`logistic_loss` at ``w`` times the vector ``p``.

    Parameters
    ----------
    w : ndarray, shape (n_features,)
        Point at which the Hessian is taken.
    p : ndarray, shape (n_features,)
        Vector to multiply.
    A, b, lam
        As in :func:`logistic_loss`.

    Returns
    -------
    ndarray, shape (n_features,)
        ``H(w) @ p``, without forming ``H``.
    """
    z = b * (A @ w)
    # b**2 == 1, and sigmoid'(z) = sigmoid(z) * sigmoid(-z)
    d = expit(z) * expit(-z)
    return A.T @ (d * (A @ p)) / A.shape[0] + lam * p


# ---------------------------------------------------------------------------
# Rosenbrock (SciPy's reference implementations re-exported above)
# ---------------------------------------------------------------------------

def rosen_point(n, seed=0):
    """Seeded start point for the ``n``-dimensional Rosenbrock function.

    Parameters
    ----------
    n : int
        Dimension.
    seed : int, optional
        Random seed.

    Returns
    -------
    ndarray, shape (n,)
        Uniform in ``[-2, 2)``, float64.
    """
    return rng(seed).uniform(-2.0, 2.0, size=n)


# ---------------------------------------------------------------------------
# Tape-overhead workloads: many tiny ops, little arithmetic
# ---------------------------------------------------------------------------

def scalar_chain(x, steps=2000):
    """Iterate ``acc = sin(acc) * x + 0.5`` on scalars, starting at ``x``.

    Measures per-op overhead of an AD library: ``2 * steps`` scalar ops.

    Parameters
    ----------
    x : float
        Scalar input.
    steps : int, optional
        Number of iterations.

    Returns
    -------
    float
    """
    acc = x
    for _ in range(steps):
        acc = np.sin(acc) * x + 0.5
    return acc


def scalar_chain_deriv_by_hand(x, steps=2000):
    """Value and derivative of :func:`scalar_chain` by forward recurrence.

    Parameters
    ----------
    x : float
        Scalar input.
    steps : int, optional
        Number of iterations.

    Returns
    -------
    value : float
    deriv : float
        ``d scalar_chain(x, steps) / dx``.
    """
    acc, acc_dot = x, 1.0
    for _ in range(steps):
        acc, acc_dot = np.sin(acc) * x + 0.5, np.cos(acc) * acc_dot * x + np.sin(acc)
    return acc, acc_dot


def indexing_loop(x):
    """Sum ``sin(x[i]) * x[i]`` with a Python loop over a 1-D array.

    Measures the cost of element indexing on an AD library's tape.

    Parameters
    ----------
    x : ndarray, shape (n,)
        Input vector.

    Returns
    -------
    float
    """
    acc = 0.0
    for i in range(x.shape[0]):
        acc = acc + np.sin(x[i]) * x[i]
    return acc


def indexing_loop_grad_by_hand(x):
    """Gradient of :func:`indexing_loop`: ``cos(x) * x + sin(x)``.

    Parameters
    ----------
    x : ndarray, shape (n,)
        Input vector.

    Returns
    -------
    ndarray, shape (n,)
    """
    return np.cos(x) * x + np.sin(x)


def best_times(solvers, problem, repeat=9):
    """Fastest of ``repeat`` solves per solver, solvers interleaved round by round.

    Interleaving spreads any drift in machine load over every solver alike.
    Returns ``{name: (seconds, result)}``; a solver whose setup raises
    NotImplementedError (autograd missing) is reported and left out.
    """
    best, results = {}, {}
    for _ in range(repeat):
        for name, solve in solvers.items():
            try:
                start = time.perf_counter()
                results[name] = solve(*problem)
            except NotImplementedError as error:
                print(f"{name:>9}: skipped ({error})")
                solvers = {k: v for k, v in solvers.items() if k != name}
                continue
            best[name] = min(best.get(name, np.inf), time.perf_counter() - start)
    return {name: (best[name], results[name]) for name in best}
