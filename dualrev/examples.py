"""The functions ``dualrev compare`` runs: one per shape of Jacobian.

Each example is plain NumPy, seeded, and small enough that the whole
catalogue runs in well under a minute. Together they teach the trade-off:

========================  ==========  ===========================================
example                   n -> m      what it shows
========================  ==========  ===========================================
trajectory                1 -> m      one forward pass gives every output
logistic loss             n -> 1      one reverse sweep gives the whole gradient
x * tanh(x)               n -> n      a diagonal Jacobian: use a JVP/VJP instead
tanh(A x)                 n -> m      the crossover, over a grid of (n, m)
Rosenbrock                n -> 1      a classic test function (and its HVPs)
MLP loss                  n -> 1      a two-layer network's loss in its weights
========================  ==========  ===========================================
"""

from dataclasses import dataclass

import numpy as np
__all__ = ["Example", "catalogue", "trajectory", "make_logistic_loss", "x_tanh_x",
           "make_tanh_layer", "rosen", "make_mlp_loss"]


@dataclass(frozen=True)
class Example:
    """A function of one array and the point to differentiate it at.

    Attributes
    ----------
    name : str
        Short name shown in tables.
    f : callable
        ``f(x)`` with ``x`` an array (or float) like ``x``.
    x : ndarray or float
        The point.
    note : str
        One sentence: what this example teaches.
    group : str
        Examples of one group form a grid, plotted together: the
        ``tanh(Ax)`` examples at one ``m`` (group ``"tanh(Ax), m=32"``...).
    """

    name: str
    f: object
    x: object
    note: str
    group: str = ""


def _rng(seed=0):
    return np.random.default_rng(seed)


def trajectory(p, steps=60, h=0.1):
    """States of the recurrence ``y <- y + h (sin(p y) - y / 2)`` from ``y = 1``.

    An explicit Euler integration of a one-parameter ODE: the parameter is
    one number, the output the whole trajectory (``R -> R^steps``).

    Examples
    --------
    >>> trajectory(0.5, steps=3).shape
    (3,)
    """
    y = 1.0
    states = []
    for _ in range(steps):
        y = y + h * (np.sin(p * y) - 0.5 * y)
        states.append(y)
    return np.stack(states)


def make_logistic_loss(n_features=300, n_samples=400, seed=0):
    """An L2-regularised logistic loss ``w -> R`` on seeded data.

    Examples
    --------
    >>> loss = make_logistic_loss(5, 10)
    >>> bool(loss(np.zeros(5)) > 0)
    True
    """
    r = _rng(seed)
    A = r.standard_normal((n_samples, n_features))
    b = np.where(A @ r.standard_normal(n_features) >= 0.0, 1.0, -1.0)
    lam = 1.0 / n_samples

    def logistic_loss(w):
        z = b * (A @ w)
        return np.sum(np.log1p(np.exp(-z))) / n_samples + 0.5 * lam * np.sum(w * w)
    return logistic_loss


def x_tanh_x(x):
    """``x * tanh(x)`` elementwise: its Jacobian is diagonal.

    Examples
    --------
    >>> x_tanh_x(np.zeros(2))
    array([0., 0.])
    """
    return x * np.tanh(x)


def make_tanh_layer(n, m, seed=0):
    """``x -> tanh(A x)`` with a seeded ``A`` of shape ``(m, n)``.

    Examples
    --------
    >>> make_tanh_layer(3, 2)(np.ones(3)).shape
    (2,)
    """
    A = _rng(seed).standard_normal((m, n)) / np.sqrt(n)

    def tanh_layer(x):
        return np.tanh(A @ x)
    return tanh_layer


def rosen(x):
    """The Rosenbrock function, as in ``scipy.optimize.rosen``.

    Examples
    --------
    >>> float(rosen(np.ones(4)))
    0.0
    """
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def make_mlp_loss(batch=32, sizes=(10, 16, 3), seed=0):
    """The softmax cross-entropy of a tanh MLP, as a function of one flat vector.

    A small copy of the benchmark suite's MLP problem: the weights ``W1, b1,
    W2, b2`` are packed into one vector so that its gradient, Jacobian and
    HVPs are plain arrays.

    Returns
    -------
    loss : callable
        ``loss(theta)`` with ``theta`` of length ``n_in*n_h + n_h + n_h*n_out + n_out``.
    theta : ndarray
        A seeded starting point.

    Examples
    --------
    >>> loss, theta = make_mlp_loss(batch=4, sizes=(3, 4, 2))
    >>> theta.shape, bool(loss(theta) > 0)
    ((26,), True)
    """
    n_in, n_hidden, n_out = sizes
    r = _rng(seed)
    shapes = [(n_in, n_hidden), (n_hidden,), (n_hidden, n_out), (n_out,)]
    scales = [1 / np.sqrt(n_in), 0.01, 1 / np.sqrt(n_hidden), 0.01]
    theta = np.concatenate([s * r.standard_normal(shape).ravel()
                            for s, shape in zip(scales, shapes)])
    X = r.standard_normal((batch, n_in))
    y = r.integers(0, n_out, size=batch)
    bounds = np.cumsum([0] + [int(np.prod(s)) for s in shapes]).tolist()
    rows = np.arange(batch)

    def mlp_loss(theta):
        W1, b1, W2, b2 = [np.reshape(theta[a:b], s)
                          for a, b, s in zip(bounds, bounds[1:], shapes)]
        h = np.tanh(X @ W1 + b1)
        logits = h @ W2 + b2
        top = np.max(logits, axis=1, keepdims=True)
        lse = np.log(np.sum(np.exp(logits - top), axis=1)) + top[:, 0]
        return np.sum(lse - logits[rows, y]) / batch
    return mlp_loss, theta


#: The ``tanh(A x)`` grid: every ``n`` at every ``m``. Reverse mode's ``m``
#: sweeps each cost a round of Python-level calls, forward mode's ``n``
#: directions share one batched pass of ``m * n * n`` flops: at small ``m``
#: the measured crossover sits where those calls cost as much as the flops
#: (a few hundred ``n``), and it moves out with ``m``, staying above ``n = m``.
TANH_GRID_N = (16, 64, 256, 512, 1024, 2048)
TANH_GRID_M = (8, 32, 128, 512)
TANH_GRID_N_QUICK = (2, 16, 128, 512, 1024)
TANH_GRID_M_QUICK = (8, 32, 128)


def catalogue(quick=False):
    """The built-in examples, in the order ``dualrev compare`` runs them.

    Parameters
    ----------
    quick : bool
        Smaller sizes and a smaller ``tanh(A x)`` grid.

    Returns
    -------
    list of Example

    Examples
    --------
    >>> [e.name for e in catalogue(quick=True)][:2]
    ['trajectory', 'logistic loss']
    """
    size = 100 if quick else 1000
    r = _rng(1)
    logistic = make_logistic_loss(n_features=size)
    mlp, theta = make_mlp_loss(sizes=(6, 12, 3) if quick else (20, 32, 5))
    examples = [
        Example("trajectory", lambda p: trajectory(p, steps=30 if quick else 100), 0.7,
                "R -> R^m: one forward pass gives the derivative of every state"),
        Example("logistic loss", logistic, 0.1 * r.standard_normal(size),
                "R^n -> R: one reverse sweep gives the whole gradient"),
        Example("x*tanh(x)", x_tanh_x, r.standard_normal(size),
                "R^n -> R^n, diagonal Jacobian: never form it, a JVP or VJP is one pass"),
    ]
    ns, ms = (TANH_GRID_N_QUICK, TANH_GRID_M_QUICK) if quick else (TANH_GRID_N, TANH_GRID_M)
    examples += [Example("tanh(Ax)", make_tanh_layer(n, m), r.standard_normal(n),
                         f"R^{n} -> R^{m}: the crossover grid", group=f"tanh(Ax), m={m}")
                 for m in ms for n in ns]
    examples += [
        Example("rosenbrock", rosen, 0.5 * r.standard_normal(50 if quick else 300),
                "R^n -> R: gradient by one sweep; HVPs by every composition"),
        Example("mlp loss", mlp, theta,
                "R^n -> R: a network's loss in its weights, the reason reverse mode exists"),
    ]
    return examples
