"""A small MLP trained by Hessian-free optimisation and by gradient descent.

A seeded three-armed spiral (600 points, 3 classes) and a 2-32-3 tanh
network with a softmax cross-entropy loss and a small L2 penalty.
Hessian-free (Martens 2010, dualrev.optimize.hessian_free) runs
preconditioned conjugate gradient on a damped quadratic model each
iteration, as Martens does: Gauss-Newton products ``J^T H J v`` (plus the
penalty's Hessian) from a forward replay and a reverse sweep of the
network's recording, on a separate curvature minibatch of 150 points;
Martens' diagonal preconditioner from squared per-example gradients;
backtracking over the stored CG iterates; a time budget. For comparison:
exact Hessian products without those additions, and gradient descent
with dualrev's gradient. The loss curves are printed against time (with
the evaluation counts), and plotted to ``mlp_hessian_free.png`` when
matplotlib is installed.

Run: python examples/mlp_hessian_free.py [output.png]
"""

import sys
import time

import numpy as np

import dualrev
from dualrev.optimize import ModelLoss, hessian_free


def spiral(n_per_class=200, n_classes=3, seed=0):
    """Points on noisy spiral arms; one class per arm (one-hot labels)."""
    rng = np.random.default_rng(seed)
    radius = np.tile(np.linspace(0.1, 1.0, n_per_class), n_classes)
    arm = np.repeat(np.arange(n_classes), n_per_class)
    angle = 4.0 * radius + 2.0 * np.pi * arm / n_classes \
        + 0.2 * rng.standard_normal(radius.size)
    X = np.column_stack([radius * np.sin(angle), radius * np.cos(angle)])
    return X, np.eye(n_classes)[arm]


def init_params(sizes=(2, 32, 3), seed=1):
    rng = np.random.default_rng(seed)
    n_in, n_hidden, n_out = sizes
    return {"W1": rng.standard_normal((n_in, n_hidden)) * 2.0,
            "b1": np.zeros(n_hidden),
            "W2": rng.standard_normal((n_hidden, n_out)) / np.sqrt(n_hidden),
            "b2": np.zeros(n_out)}


def model(params, batch):
    """Logits of the 2-32-3 tanh network."""
    X, _ = batch
    return np.tanh(X @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]


def cross_entropy(logits, batch):
    _, Y = batch
    return -np.sum(Y * dualrev.log_softmax(logits, axis=1)) / Y.shape[0]


def example_losses(params, batch):
    """The per-example cross-entropies (their mean is the loss), for Martens'
    preconditioner: unscaled, so that their squared gradients are not
    dwarfed by the damping added to them."""
    _, Y = batch
    return -np.sum(Y * dualrev.log_softmax(model(params, batch), axis=1), axis=1)


L2 = 1e-5


def penalty(params):
    return 0.5 * L2 * (np.sum(params["W1"] ** 2) + np.sum(params["W2"] ** 2))


def curvature_minibatch(batch, size=150, seed=2):
    """A function of the iteration giving a fresh random subset of ``batch``."""
    rng = np.random.default_rng(seed)
    X, Y = batch
    return lambda k: tuple(a[idx] for idx in [rng.choice(len(X), size, replace=False)]
                           for a in (X, Y))


def accuracy(params, batch):
    return np.mean(np.argmax(model(params, batch), axis=1) == np.argmax(batch[1], axis=1))


def gradient_descent(loss, params, batch, seconds, learning_rate=0.5):
    """Plain gradient steps for ``seconds``: (params, [(time, loss), ...])."""
    value_and_grad = dualrev.value_and_grad(loss)
    curve, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds:
        value, g = value_and_grad(params, batch)
        curve.append((time.perf_counter() - start, float(value)))
        params = {k: params[k] - learning_rate * g[k] for k in params}
    return params, curve


def plot(curves, path):
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, curve in curves.items():
        ax.semilogy(*zip(*curve), label=label)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("cross-entropy")
    ax.set_title("2-32-3 MLP on a spiral")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"loss curves saved to {path}")


def main(png="mlp_hessian_free.png"):
    batch = spiral()
    params = init_params()
    loss = ModelLoss(model, cross_entropy, penalty)
    print(f"initial loss {float(loss(params, batch)):.4f}")

    print("\nHessian-free, Gauss-Newton curvature on a 150-point minibatch, Martens' "
          "preconditioner, CG backtracking:")
    hf = hessian_free(loss, params, [batch], maxiter=40, curvature="gauss-newton",
                      curvature_batches=curvature_minibatch(batch), preconditioner="martens",
                      example_losses=example_losses, max_time=20.0, ftol=1e-9,
                      verbose=True)
    hf_curve = [(h["time"], h["loss"]) for h in hf.history]
    print(f"  {hf.message}; loss evaluations {hf.nfev}, gradients {hf.ngev}, "
          f"curvature products {hf.nhev}")
    seconds = hf.history[-1]["time"]
    exact = hessian_free(loss, params, [batch], maxiter=40, curvature="hessian")

    print(f"\ngradient descent for the same {seconds:.1f}s:")
    gd_params, gd_curve = gradient_descent(loss, params, batch, seconds)
    for t, value in gd_curve[::max(1, len(gd_curve) // 10)] + gd_curve[-1:]:
        print(f"  {t:6.2f}s  loss {value:.6e}")

    print(f"\nafter {seconds:.1f}s:")
    print(f"  Hessian-free:     {hf.nit:5d} iterations, loss {hf.fun:.4e}, "
          f"accuracy {accuracy(hf.params, batch):.3f}")
    print(f"  (Hessian curvature: {exact.nit:5d} iterations, loss {exact.fun:.4e}, "
          f"{exact.history[-1]['time']:.1f}s, {exact.nhev} products)")
    print(f"  gradient descent: {len(gd_curve):5d} steps,      loss {gd_curve[-1][1]:.4e}, "
          f"accuracy {accuracy(gd_params, batch):.3f}")
    plot({"Hessian-free (Gauss-Newton)": hf_curve,
          "Hessian-free (Hessian)": [(h["time"], h["loss"]) for h in exact.history],
          "gradient descent": gd_curve}, png)


if __name__ == "__main__":
    main(*sys.argv[1:])
