"""The same gradients in dualrev and its peers: HIPS/autograd, JAX, PyTorch.

Three workloads: the MLP loss of :mod:`.common` (batch 128, 784-256-10),
Rosenbrock at n = 10,000, and the 2,000-step scalar chain (6,000 tiny ops).
Each library runs the same arithmetic written in its own array namespace,
eagerly (JAX without ``jit``, as a tape-based library runs). A library that
is not installed is skipped: ``setup`` raises ``NotImplementedError``.
"""

import importlib

import numpy as np

import dualrev

from .common import mlp_problem, rosen_point

LIBRARIES = ["dualrev", "autograd", "jax", "torch"]
WORKLOADS = ["mlp", "rosen", "scalar_chain"]


def _require(module):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise NotImplementedError(f"{module} is not installed") from None


def mlp_loss(xp, params, X, y, max_rows=None):
    """:func:`.common.mlp_loss` in the namespace ``xp`` (``max_rows(logits)``)."""
    n = X.shape[0]
    h = xp.tanh(X @ params["W1"] + params["b1"])
    logits = h @ params["W2"] + params["b2"]
    m = max_rows(logits) if max_rows else xp.max(logits, axis=1, keepdims=True)
    lse = xp.log(xp.sum(xp.exp(logits - m), axis=1)) + m[:, 0]
    return xp.sum(lse - logits[np.arange(n), y]) / n


def rosen(xp, x):
    return xp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def scalar_chain(xp, x, steps=2000):
    acc = x
    for _ in range(steps):
        acc = xp.sin(acc) * x + 0.5
    return acc


def _problem(workload):
    """``(f(xp, arg, **kw), arg, kw)``: the function, its argument, extra inputs."""
    if workload == "mlp":
        params, X, y = mlp_problem()
        return (lambda xp, p, **kw: mlp_loss(xp, p, X, y, **kw)), params, (X, y)
    if workload == "rosen":
        return rosen, rosen_point(10_000), ()
    return scalar_chain, 0.3, ()


def _numpy_like(module_name, grad_name):
    def build(workload):
        lib = _require(module_name)
        xp = _require(f"{module_name}.numpy")
        f, arg, _ = _problem(workload)
        if module_name == "jax":
            arg = lib.tree_util.tree_map(xp.asarray, arg)
        g = getattr(lib, grad_name)(lambda a: f(xp, a))
        return lambda: g(arg)
    return build


def _dualrev(workload):
    f, arg, _ = _problem(workload)
    g = dualrev.grad(lambda a: f(np, a))
    return lambda: g(arg)


def _torch(workload):
    torch = _require("torch")
    f, arg, extra = _problem(workload)

    def leaf(a):
        return torch.tensor(np.asarray(a, np.float64), requires_grad=True)
    if workload == "mlp":
        X, y = extra
        X = torch.tensor(X)
        y = torch.tensor(y)
        params = {k: leaf(v) for k, v in arg.items()}

        def grad():
            h = torch.tanh(X @ params["W1"] + params["b1"])
            logits = h @ params["W2"] + params["b2"]
            m = torch.max(logits, dim=1, keepdim=True).values
            lse = torch.log(torch.sum(torch.exp(logits - m), dim=1)) + m[:, 0]
            loss = torch.sum(lse - logits[torch.arange(X.shape[0]), y]) / X.shape[0]
            return torch.autograd.grad(loss, list(params.values()))
        return grad
    x = leaf(arg)
    return lambda: torch.autograd.grad(f(torch, x), [x])


BUILDERS = {"dualrev": _dualrev, "autograd": _numpy_like("autograd", "grad"),
            "jax": _numpy_like("jax", "grad"), "torch": _torch}


class Peers:
    """One gradient of each workload in each library (skipped when not installed)."""

    params = [LIBRARIES, WORKLOADS]
    param_names = ["library", "workload"]
    timeout = 120

    def setup(self, library, workload):
        self.grad = BUILDERS[library](workload)
        self.grad()  # warm up (imports, caches)

    def time_grad(self, library, workload):
        self.grad()
