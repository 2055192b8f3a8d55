r"""Train a network and its linearization side by side; record kernel diagnostics.

Both models start from the same parameters :math:`w_0`, see the same mini-batches in
the same order and use the same optimizer (optax SGD with momentum and a learning-rate
schedule). Per epoch and per model we record train/test loss and accuracy, the
distance :math:`\|w_t - w_0\|_2`, and — on a fixed subset of the training set — the
empirical NTK diagnostics of Ortiz-Jiménez et al. (NeurIPS 2021):

* relative kernel change :math:`\|\Theta_t - \Theta_0\|_F / \|\Theta_0\|_F`;
* centered kernel–target alignment (Cortes et al. 2012)
  :math:`A(\Theta, Y) = \langle H\Theta H, HYH\rangle_F / (\|H\Theta H\|_F \|HYH\|_F)`,
  :math:`Y = y y^\top` (one-hot rows for multiclass), :math:`H = I - \frac1n 11^\top`;
* Rayleigh quotients :math:`v_i^\top \Theta_t v_i` along the top eigenvectors
  :math:`v_i` of :math:`\Theta_0` (and their ratio to :math:`\lambda_i(\Theta_0)`).

The linearization's NTK is :math:`\Theta_0` at every step by construction (its
Jacobian does not depend on the parameters), so its kernel diagnostics are those of
:math:`\Theta_0`.

Example:
    >>> import jax, jax.numpy as jnp
    >>> f = lambda p, x: jnp.tanh(x @ p[0]) @ p[1]
    >>> k = jax.random.split(jax.random.PRNGKey(0), 3)
    >>> p0 = (jax.random.normal(k[0], (4, 32)) / 2, jax.random.normal(k[1], (32, 1)) / 6)
    >>> x = jax.random.normal(k[2], (16, 4)); y = jnp.sign(x[:, :1])
    >>> res = train_side_by_side(f, p0, x, y, config=TrainConfig(epochs=2, loss="mse"))
    >>> sorted(res.history)
    ['linear', 'network']
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import tree_leaves, tree_map

from infntk.empirical import empirical_ntk_fn
from infntk.errors import InfntkError

__all__ = [
    "TrainConfig", "TrainResult", "train_side_by_side", "make_optimizer", "loss_fn",
    "accuracy", "centered_alignment", "target_matrix", "linear_gd_prediction",
]

LOSSES = ("mse", "binary_ce", "ce")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters shared by the network and its linearization.

    loss: 'mse' (targets: ±1 column for binary, one-hot for multiclass),
      'binary_ce' (one logit, labels ±1 or {0,1}), 'ce' (integer labels or one-hot).
    schedule: 'constant', 'cosine' (to 0 at the end) or 'step' (x0.1 at 50% and 75%).
    kernel_every: compute the NTK diagnostics every this many epochs (0: never).
    kernel_subset: number of training points on which the NTK is measured.
    n_eigen: number of top eigenvectors of Θ_0 for the Rayleigh quotients.
    """

    epochs: int = 10
    batch_size: Optional[int] = None
    lr: float = 0.1
    momentum: float = 0.9
    schedule: str = "cosine"
    loss: str = "mse"
    seed: int = 0
    kernel_every: int = 1
    kernel_subset: int = 128
    n_eigen: int = 10
    ntk_implementation: str = "auto"
    train_linear: bool = True


@dataclasses.dataclass
class TrainResult:
    """history[model][metric] is a list over recorded epochs (epoch 0 = init)."""

    history: dict
    params: dict
    init_eigenvalues: np.ndarray
    config: TrainConfig


def make_optimizer(cfg: TrainConfig, steps_per_epoch: int):
    """optax SGD with momentum and the configured schedule."""
    import optax

    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "constant":
        sched = optax.constant_schedule(cfg.lr)
    elif cfg.schedule == "cosine":
        sched = optax.cosine_decay_schedule(cfg.lr, total)
    elif cfg.schedule == "step":
        sched = optax.piecewise_constant_schedule(
            cfg.lr, {int(0.5 * total): 0.1, int(0.75 * total): 0.1})
    else:
        raise InfntkError(f"training: unknown schedule {cfg.schedule!r}; "
                          "expected 'constant', 'cosine' or 'step'.")
    return optax.sgd(sched, momentum=cfg.momentum if cfg.momentum else None)


def _pm1(y):
    y = jnp.asarray(y).reshape(y.shape[0], -1)
    return jnp.where(y > 0, 1.0, -1.0).astype(y.dtype if jnp.issubdtype(y.dtype, jnp.floating)
                                               else jnp.float32)


def loss_fn(kind: str, out, y):
    r"""Mean loss. mse: :math:`\frac{1}{2N}\|f - y\|^2`; binary_ce: softplus(-y f);
    ce: softmax cross-entropy (integer labels or one-hot)."""
    if kind == "mse":
        return 0.5 * jnp.sum((out - y.reshape(out.shape)) ** 2) / out.shape[0]
    if kind == "binary_ce":
        return jnp.mean(jax.nn.softplus(-_pm1(y).reshape(out.shape) * out))
    if kind == "ce":
        logp = jax.nn.log_softmax(out, axis=-1)
        if y.ndim == 1 or y.shape[-1] != out.shape[-1]:
            y = jax.nn.one_hot(y.reshape(-1), out.shape[-1], dtype=out.dtype)
        return -jnp.mean(jnp.sum(y * logp, axis=-1))
    raise InfntkError(f"training: unknown loss {kind!r}; expected one of {LOSSES}.")


def accuracy(out, y) -> float:
    """Sign agreement for one output (labels ±1 or {0,1}); argmax otherwise."""
    out = jnp.asarray(out)
    y = jnp.asarray(y)
    if out.ndim == 1 or out.shape[-1] == 1:
        return float(jnp.mean(jnp.sign(out.reshape(-1)) == _pm1(y).reshape(-1)))
    pred = jnp.argmax(out, axis=-1)
    lab = y.reshape(-1) if (y.ndim == 1 or y.shape[-1] == 1) else jnp.argmax(y, axis=-1)
    return float(jnp.mean(pred == lab))


def target_matrix(y, n_out: int):
    """Label vectors for the alignment: ±1 for one output, one-hot otherwise."""
    y = jnp.asarray(y)
    if n_out == 1:
        return _pm1(y).reshape(-1, 1)
    if y.ndim == 1 or y.shape[-1] == 1:
        return jax.nn.one_hot(y.reshape(-1), n_out)
    return y


def centered_alignment(k, y) -> float:
    r"""Centered kernel alignment :math:`\langle HKH, HYY^\top H\rangle /
    (\|HKH\|_F \|HYY^\top H\|_F)` of an ``(n, n)`` kernel with labels ``y`` ``(n, c)``."""
    k = np.asarray(k, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(k.shape[0], -1)
    kc = k - k.mean(0, keepdims=True)
    kc = kc - kc.mean(1, keepdims=True)
    yc = y - y.mean(0, keepdims=True)
    ky = yc @ yc.T
    return float(np.sum(kc * ky) / (np.linalg.norm(kc) * np.linalg.norm(ky)))


def _tree_dist(a, b) -> float:
    return float(jnp.sqrt(sum(jnp.sum((u - v) ** 2) for u, v in
                              zip(tree_leaves(a), tree_leaves(b)))))


def train_side_by_side(f: Callable, params0: Any, x_train, y_train, x_test=None,
                       y_test=None, *, config: TrainConfig = TrainConfig(),
                       callback: Optional[Callable] = None) -> TrainResult:
    """Train ``f`` and ``linearize(f, params0)`` with identical data order and optimizer.

    Args:
      f: ``f(params, x) -> (N, K)`` outputs (K = 1 for binary tasks).
      params0: initial parameters (shared by both models).
      x_train, y_train, x_test, y_test: data; labels as described in
        :class:`TrainConfig`.
      config: hyper-parameters.
      callback: optional ``callback(epoch, history)`` after each epoch.

    Returns:
      :class:`TrainResult`. ``history[m]`` for ``m`` in ``('network', 'linear')`` holds
      lists ``epoch, train_loss, train_acc, test_loss, test_acc, param_distance``,
      and on kernel epochs ``kernel_epoch, ntk_rel_change, alignment, rayleigh,
      rayleigh_ratio``.
    """
    cfg = config
    if cfg.loss not in LOSSES:
        raise InfntkError(f"train_side_by_side: unknown loss {cfg.loss!r}; "
                          f"expected one of {LOSSES}.")
    x_train = jnp.asarray(x_train)
    y_train = jnp.asarray(y_train)
    n = x_train.shape[0]
    bs = n if not cfg.batch_size or cfg.batch_size >= n else int(cfg.batch_size)
    steps = -(-n // bs)
    fns = _compiled(f, cfg, steps)
    models = ["network", "linear"] if cfg.train_linear else ["network"]
    opt = make_optimizer(cfg, steps)
    params = {m: params0 for m in models}
    states = {m: opt.init(params0) for m in models}

    def evaluate(m, p, x):
        return fns["eval_" + m](p, params0, x)

    # Kernel diagnostics on a fixed subset.
    rng = np.random.default_rng(cfg.seed)
    sub = np.sort(rng.permutation(n)[: min(n, cfg.kernel_subset)])
    xs, ys = x_train[sub], y_train[sub]
    n_out = int(np.prod(evaluate("network", params0, x_train[:1]).shape[1:]))
    ymat = target_matrix(ys, n_out)
    ntk_fn = empirical_ntk_fn(f, trace_axes=(-1,), vmap_axes=0,
                              implementation=cfg.ntk_implementation)
    do_kernel = cfg.kernel_every > 0
    if do_kernel:
        k0 = np.asarray(ntk_fn(xs, None, params0), dtype=np.float64)
        evals, evecs = np.linalg.eigh(k0)
        order = np.argsort(evals)[::-1]
        evals, evecs = evals[order], evecs[:, order]
        top = evecs[:, : cfg.n_eigen]
        k0_norm = np.linalg.norm(k0)
        init_kernel = {"ntk_rel_change": 0.0, "alignment": centered_alignment(k0, ymat),
                       "rayleigh": [float(v) for v in evals[: cfg.n_eigen]],
                       "rayleigh_ratio": [1.0] * min(cfg.n_eigen, len(evals))}
    else:
        evals = np.zeros(0)

    hist = {m: {k: [] for k in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc",
                                "param_distance", "kernel_epoch", "ntk_rel_change",
                                "alignment", "rayleigh", "rayleigh_ratio")} for m in models}

    def record(epoch):
        for m in models:
            h = hist[m]
            out_tr = evaluate(m, params[m], x_train)
            h["epoch"].append(epoch)
            h["train_loss"].append(float(loss_fn(cfg.loss, out_tr, y_train)))
            h["train_acc"].append(accuracy(out_tr, y_train))
            if x_test is not None:
                out_te = evaluate(m, params[m], jnp.asarray(x_test))
                h["test_loss"].append(float(loss_fn(cfg.loss, out_te, jnp.asarray(y_test))))
                h["test_acc"].append(accuracy(out_te, y_test))
            h["param_distance"].append(_tree_dist(params[m], params0))
            if do_kernel and (epoch % cfg.kernel_every == 0 or epoch == cfg.epochs):
                h["kernel_epoch"].append(epoch)
                if m == "linear" or epoch == 0:
                    vals = init_kernel
                else:
                    kt = np.asarray(ntk_fn(xs, None, params[m]), dtype=np.float64)
                    rq = np.einsum("ni,nm,mi->i", top, kt, top)
                    vals = {"ntk_rel_change": float(np.linalg.norm(kt - k0) / k0_norm),
                            "alignment": centered_alignment(kt, ymat),
                            "rayleigh": [float(v) for v in rq],
                            "rayleigh_ratio": [float(v) for v in
                                               rq / evals[: cfg.n_eigen]]}
                for k, v in vals.items():
                    h[k].append(v)

    record(0)
    for epoch in range(1, cfg.epochs + 1):
        perm = np.random.default_rng(cfg.seed + epoch).permutation(n)
        for s in range(steps):
            idx = perm[s * bs:(s + 1) * bs]
            xb, yb = x_train[idx], y_train[idx]
            for m in models:
                params[m], states[m], _ = fns["step_" + m](params[m], states[m], params0,
                                                          xb, yb)
        record(epoch)
        if callback is not None:
            callback(epoch, hist)
    return TrainResult(history=hist, params=params, init_eigenvalues=np.asarray(evals),
                       config=cfg)


@functools.lru_cache(maxsize=16)
def _compiled(f, cfg: TrainConfig, steps: int) -> dict:
    """Jitted step/eval functions, cached so that repeated runs (tasks, seeds) reuse
    the compilation; the linearization point ``p0`` is an argument, not a constant."""
    import optax

    opt = make_optimizer(cfg, steps)

    def lin(p, p0, x):
        d = tree_map(lambda a, b: a - b, p, p0)
        out, tan = jax.jvp(lambda q: f(q, x), (p0,), (d,))
        return out + tan

    def net(p, p0, x):
        return f(p, x)

    def make_step(g):
        def step(p, s, p0, xb, yb):
            loss, grads = jax.value_and_grad(
                lambda q: loss_fn(cfg.loss, g(q, p0, xb), yb))(p)
            upd, s = opt.update(grads, s, p)
            return optax.apply_updates(p, upd), s, loss
        return jax.jit(step)

    return {"step_network": make_step(net), "step_linear": make_step(lin),
            "eval_network": jax.jit(net), "eval_linear": jax.jit(lin)}


def linear_gd_prediction(k_train, k_test_train, f0_train, f0_test, y, lr, steps,
                         continuous=False):
    r"""Closed-form outputs of the linearized model after full-batch GD on
    :math:`L = \frac{1}{2N}\|f - y\|^2`.

    Discrete (exact for the linear model):
    :math:`f_t - y = (I - \tfrac{\eta}{N}\Theta)^t (f_0 - y)`; continuous:
    :math:`f_t = f_0 + (I - e^{-\eta \Theta t / N})(y - f_0)`, and on test points
    :math:`f_t(x) = f_0(x) + \Theta_{x X}\Theta^{-1}(I - e^{-\eta\Theta t/N})(y - f_0)`
    (the discrete analogue with the matrix power). ``k_*`` are full NTKs with
    ``trace_axes=()`` flattened to ``(N K, N K)`` / ``(M K, N K)``.
    """
    import scipy.linalg

    k = np.asarray(k_train, np.float64)
    nk = k.shape[0]
    n = f0_train.shape[0]
    r0 = (np.asarray(y, np.float64).reshape(-1) - np.asarray(f0_train, np.float64).reshape(-1))
    if continuous:
        decay = scipy.linalg.expm(-lr * steps * k / n)
    else:
        decay = np.linalg.matrix_power(np.eye(nk) - lr * k / n, steps)
    m = np.eye(nk) - decay
    f_tr = np.asarray(f0_train, np.float64).reshape(-1) + m @ r0
    coef = np.linalg.solve(k, m @ r0)
    f_te = np.asarray(f0_test, np.float64).reshape(-1) + np.asarray(k_test_train) @ coef
    return f_tr.reshape(np.shape(f0_train)), f_te.reshape(np.shape(f0_test))
