"""dualrev on dask arrays against dask-glm's hand-written logistic regression.

L2 logistic regression in dask-glm's form, ``f(w) = sum(log(1 + exp(X w)) -
y X w) + lam / 2 ||w||^2``, on seeded data persisted in memory (threaded
scheduler). Three comparisons, each on the same arrays:

- ``value_and_grad`` of the plain NumPy loss against dask-glm's hand-written
  ``Logistic`` gradient (``pointwise_gradient`` plus the L2 term), and
  against the value and gradient its ``lbfgs`` computes at every point;
- one Hessian-vector product (``dualrev.hvp``) against the hand-written
  ``X.T @ (d * (X @ v))``, ``d = p (1 - p)``, ``p = sigmoid(X w)``;

  each both eager (a new dask graph of every primitive per call) and
  compiled (``dualrev.compile``: one task per chunk of rows, see
  ``dualrev.chunked``);
- whole fits, with the coefficients compared and the passes over the data
  (graph executions) per iteration counted: ``dualrev.optimize.minimize``
  (compiled, as it is by default on dask data) by Newton-CG against
  dask-glm's ``lbfgs`` (``regularizer="l2"``, SciPy's ``factr`` tightened to
  10 so that it converges to 1e-6); and, without the regularizer (dask-glm's
  ``newton`` has none), Newton-CG and trust-exact against dask-glm's
  ``newton``: Newton's method on both sides, each iteration one pass that
  computes the 20 x 20 Hessian.

Needs the optional extra ``dualrev[dask]`` and the peer ``dask-glm``;
without them asv skips (``setup`` raises NotImplementedError).

``OPENBLAS_NUM_THREADS=1 python -m benchmarks.bench_dask`` (from
``benchmarks/``) runs the issue's size, 2·10^6 x 20 in chunks of 10^5 rows,
and prints the ratios; ``--rows`` picks another size.
"""

import argparse
import time
import warnings
from unittest import mock

import numpy as np

import dualrev
from dualrev.optimize import minimize

from .common import best_times

LAM = 1.0


def _require_dask():
    """``(dask, dask.array)``, or NotImplementedError naming the extra."""
    try:
        import dask
        import dask.array as da
    except ImportError:
        raise NotImplementedError("dask is not installed: pip install 'dualrev[dask]'") \
            from None
    return dask, da


def _require_dask_glm():
    try:
        import dask_glm.algorithms
        import dask_glm.families
        import dask_glm.regularizers
    except ImportError:
        raise NotImplementedError("dask-glm is not installed: pip install "
                                  "'dualrev[dask,peers]'") from None
    return dask_glm


def logistic_data(rows, features=20, chunk_rows=100_000, seed=0):
    """Seeded ``X`` (standard normal) and 0/1 labels ``y`` from a noisy linear
    model, as dask arrays chunked along the rows and persisted in memory."""
    dask, da = _require_dask()
    rng = da.random.default_rng(seed)
    X = rng.standard_normal((rows, features), chunks=(chunk_rows, features))
    w_true = np.random.default_rng(seed).standard_normal(features) / np.sqrt(features)
    noise = rng.logistic(size=rows, chunks=chunk_rows)
    y = (X @ w_true + noise > 0).astype(np.float64)
    return dask.persist(X, y)


def loss(w, X, y, lam=LAM):
    """dask-glm's regularised logistic objective, in plain NumPy."""
    z = X @ w
    return np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * lam * np.sum(w * w)


# ---- hand-written references ---------------------------------------------------------

def gradient_by_dask_glm(w, X, y, lam=LAM):
    """dask-glm's ``Logistic`` gradient with its L2 term, computed."""
    glm = _require_dask_glm()
    dask, _ = _require_dask()
    grad = glm.regularizers.L2().add_reg_grad(glm.families.Logistic.pointwise_gradient, lam)
    return dask.compute(grad(w, X, y))[0]


def value_and_gradient_by_dask_glm(w, X, y, lam=LAM):
    """The loss and gradient dask-glm's ``lbfgs`` computes at a point, in one compute."""
    glm = _require_dask_glm()
    dask, _ = _require_dask()
    l2, logistic = glm.regularizers.L2(), glm.families.Logistic
    value = l2.add_reg_f(logistic.pointwise_loss, lam)(w, X, y)
    grad = l2.add_reg_grad(logistic.pointwise_gradient, lam)(w, X, y)
    return dask.compute(value, grad)


def hvp_by_hand(w, v, X, y, lam=LAM):
    """``X.T @ (d * (X @ v)) + lam v`` with ``d = p (1 - p)``, ``p = sigmoid(X w)``."""
    dask, da = _require_dask()
    p = 1.0 / (1.0 + da.exp(-(X @ w)))
    return dask.compute(X.T @ (p * (1.0 - p) * (X @ v)) + lam * v)[0]


def compiled_derivatives():
    """``(value_and_grad, hvp)`` of :func:`loss`, compiled (staged at first call)."""
    return (dualrev.compile(dualrev.value_and_grad(loss)),
            dualrev.compile(lambda w, v, X, y: dualrev.hvp(loss, w, v, args=(X, y))))


# ---- fits, with their passes over the data -------------------------------------------

def counting_passes():
    """A dask callback whose ``count`` is the number of graph executions."""
    from dask.callbacks import Callback

    class Passes(Callback):
        count = 0

        def _start(self, dsk):
            self.count += 1
    return Passes()


def fit_dualrev(X, y, method="Newton-CG", lam=LAM):
    """``(coefficients, iterations, passes)`` of ``dualrev.optimize.minimize``
    (compiled, as it is by default on dask data)."""
    with counting_passes() as passes:
        res = minimize(loss, np.zeros(X.shape[1]), args=(X, y, lam), method=method,
                       options=OPTIONS[method])
    return res.x, res.nit, passes.count


def fit_dask_glm_lbfgs(X, y):
    """``(coefficients, iterations, passes)`` of dask-glm's ``lbfgs`` with L2."""
    glm = _require_dask_glm()
    algorithms = glm.algorithms
    iterations = []
    original = algorithms.fmin_l_bfgs_b

    def recording(*args, **kwargs):
        # dask-glm drops SciPy's iteration count, and leaves SciPy's default
        # factr (relative decrease 2e-9), too loose for coefficients to 1e-6
        out = original(*args, factr=10.0, **kwargs)
        iterations.append(out[2]["nit"])
        return out

    with counting_passes() as passes, warnings.catch_warnings(), \
            mock.patch.object(algorithms, "fmin_l_bfgs_b", recording):
        # dask-glm's own deprecated dask key and SciPy option, not ours
        warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning))
        beta = algorithms.lbfgs(X, y, regularizer="l2", lamduh=LAM, tol=1e-8,
                                max_iter=500, normalize=False)
    return beta, iterations[0], passes.count


def fit_dask_glm_newton(X, y):
    """``(coefficients, iterations, passes)`` of dask-glm's ``newton`` (no
    regularizer, full steps; it stops when no coefficient moves by 1e-8)."""
    glm = _require_dask_glm()
    steps = []
    original = np.linalg.lstsq

    def counting(*args, **kwargs):  # one least-squares solve per iteration
        steps.append(1)
        return original(*args, **kwargs)

    with counting_passes() as passes, warnings.catch_warnings(), \
            mock.patch.object(glm.algorithms.np.linalg, "lstsq", counting):
        warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning))
        beta = glm.algorithms.newton(X, y, tol=1e-8, normalize=False)
    return beta, len(steps), passes.count


#: SciPy's options for each method: converged far below 1e-6 in the coefficients.
OPTIONS = {"Newton-CG": {"xtol": 1e-8}, "trust-exact": {"gtol": 1e-8}}

#: The L2 problem: dualrev's Newton-CG against dask-glm's lbfgs.
FITS = {"dualrev Newton-CG": fit_dualrev, "dask-glm lbfgs": fit_dask_glm_lbfgs}

#: The problem without regularizer: Newton's method on both sides.
NEWTON_FITS = {
    "dualrev Newton-CG, lam=0": lambda X, y: fit_dualrev(X, y, "Newton-CG", 0.0),
    "dualrev trust-exact, lam=0": lambda X, y: fit_dualrev(X, y, "trust-exact", 0.0),
    "dask-glm newton": fit_dask_glm_newton,
}
ALL_FITS = {**FITS, **NEWTON_FITS}


# ---- asv ----------------------------------------------------------------------------

#: The asv size: small enough for a quick CI run (the command uses the issue's).
ASV_ROWS, ASV_CHUNK = 100_000, 10_000


class _OnDask:
    """Dask's threaded scheduler for the benchmark; dask-glm only for its own rows."""

    config = None

    def setup(self, *params):
        dask, _ = _require_dask()
        if any("dask-glm" in str(p) for p in params):
            _require_dask_glm()
        self.config = dask.config.set(scheduler="threads")
        self.config.__enter__()
        self.X, self.y = logistic_data(ASV_ROWS, chunk_rows=ASV_CHUNK)
        self.w = np.random.default_rng(1).standard_normal(20) * 0.1
        self.v = np.random.default_rng(2).standard_normal(20)

    def teardown(self, *params):
        if self.config is not None:  # None when setup skipped the benchmark
            self.config.__exit__(None, None, None)


class DaskDerivatives(_OnDask):
    """One derivative call on 10^5 x 20 dask data (10 chunks), threaded scheduler."""

    params = [["dualrev", "dualrev compiled", "dask-glm"]]
    param_names = ["library"]

    def setup(self, library):
        super().setup(library)
        if library == "dualrev compiled":
            self.value_and_grad, self.hvp = compiled_derivatives()
            self.value_and_grad(self.w, self.X, self.y)  # staged here, not timed
            self.hvp(self.w, self.v, self.X, self.y)

    def time_value_and_grad(self, library):
        if library == "dualrev":
            dualrev.value_and_grad(loss)(self.w, self.X, self.y)
        elif library == "dualrev compiled":
            self.value_and_grad(self.w, self.X, self.y)
        else:
            value_and_gradient_by_dask_glm(self.w, self.X, self.y)

    def time_hvp(self, library):
        if library == "dualrev":
            dualrev.hvp(loss, self.w, self.v, args=(self.X, self.y))
        elif library == "dualrev compiled":
            self.hvp(self.w, self.v, self.X, self.y)
        else:
            hvp_by_hand(self.w, self.v, self.X, self.y)


class DaskFit(_OnDask):
    """A whole L2 logistic fit on 10^5 x 20 dask data, and its passes over the data."""

    params = [list(FITS) + list(NEWTON_FITS)]
    param_names = ["solver"]
    timeout = 300

    def time_fit(self, solver):
        ALL_FITS[solver](self.X, self.y)

    def track_passes_per_iteration(self, solver):
        _, iterations, passes = ALL_FITS[solver](self.X, self.y)
        return passes / iterations


# ---- the command -----------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args(argv)
    try:
        dask, _ = _require_dask()
        _require_dask_glm()
    except NotImplementedError as error:
        print(f"skipped: {error}")
        return
    with dask.config.set(scheduler="threads"):
        X, y = logistic_data(opts.rows, chunk_rows=opts.chunk_rows)
        w = np.random.default_rng(1).standard_normal(20) * 0.1
        v = np.random.default_rng(2).standard_normal(20)
        print(f"L2 logistic regression, {opts.rows} x 20 float64, chunks of "
              f"{opts.chunk_rows} rows, threaded scheduler, data persisted")
        report_derivatives(X, y, w, v, opts.repeat)
        report_fits(X, y)


def report_derivatives(X, y, w, v, repeat):
    value_and_grad, hvp = compiled_derivatives()
    start = time.perf_counter()
    value_and_grad(w, X, y)
    hvp(w, v, X, y)
    print(f"staging both compiled derivatives (first calls): "
          f"{time.perf_counter() - start:.2f} s")
    rows = best_times({
        "dualrev value_and_grad": lambda: dualrev.value_and_grad(loss)(w, X, y),
        "compiled value_and_grad": lambda: value_and_grad(w, X, y),
        "dask-glm gradient": lambda: gradient_by_dask_glm(w, X, y),
        "dask-glm value and gradient": lambda: value_and_gradient_by_dask_glm(w, X, y),
        "dualrev hvp": lambda: dualrev.hvp(loss, w, v, args=(X, y)),
        "compiled hvp": lambda: hvp(w, v, X, y),
        "hand-written hvp": lambda: hvp_by_hand(w, v, X, y),
    }, (), repeat)
    for name, (seconds, _) in rows.items():
        print(f"{name:>28}: {seconds * 1e3:8.1f} ms")
    for ours in ("dualrev", "compiled"):
        grads = np.max(np.abs(rows[f"{ours} value_and_grad"][1][1]
                              - rows["dask-glm gradient"][1]))
        hvps = np.max(np.abs(rows[f"{ours} hvp"][1] - rows["hand-written hvp"][1]))
        ratio = rows[f"{ours} value_and_grad"][0] / rows["dask-glm gradient"][0]
        pair = rows[f"{ours} value_and_grad"][0] / rows["dask-glm value and gradient"][0]
        print(f"{ours}: gradients agree to {grads:.1e}, hvps to {hvps:.1e}; "
              f"value_and_grad / dask-glm gradient: {ratio:.2f} (target <= 1.3), "
              f"/ dask-glm value and gradient: {pair:.2f}; hvp / hand-written: "
              f"{rows[f'{ours} hvp'][0] / rows['hand-written hvp'][0]:.2f} (target <= 1.3)")


def report_fits(X, y):
    """Each fit run twice: dualrev's first run stages its programs (kept for
    the second, as for any later fit of the same loss)."""
    for fits, reference in ((FITS, "dask-glm lbfgs"), (NEWTON_FITS, "dask-glm newton")):
        rows = {}
        for name, fit in fits.items():
            seconds = []
            for _ in range(2):
                start = time.perf_counter()
                beta, iterations, passes = fit(X, y)
                seconds.append(time.perf_counter() - start)
            rows[name] = (seconds, beta)
            print(f"{name:>28}: {seconds[0]:6.2f} s first, {seconds[1]:6.2f} s again  "
                  f"{iterations:3d} iterations {passes:4d} passes "
                  f"{passes / iterations:5.2f} passes/iteration")
        theirs = rows[reference]
        for name, (seconds, beta) in rows.items():
            if name != reference:
                print(f"{name} / {reference}: time {seconds[0] / theirs[0][0]:.2f} first, "
                      f"{seconds[1] / theirs[0][1]:.2f} again (target <= 1.2); "
                      f"coefficients differ by {np.max(np.abs(beta - theirs[1])):.1e} "
                      "(target <= 1e-6)")


if __name__ == "__main__":
    main()
