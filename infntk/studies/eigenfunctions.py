r"""Study (a): NTK eigenfunction tasks (Ortiz-Jiménez et al. 2021, Sec. 3).

The empirical NTK at initialisation :math:`\Theta_0` is formed on train + test inputs
and eigendecomposed, :math:`\Theta_0 = \sum_k \lambda_k v_k v_k^\top`
(:math:`\lambda_1 \ge \lambda_2 \ge \dots`). Task :math:`k` labels every point by
:math:`\operatorname{sign}(v_k)`. For each task the network and its linearization
(same init, data order and optimizer) are trained on the training part; test accuracy
against :math:`k` is reported. The paper's claim: the linearized model's performance
decreases with the eigen-index (it learns the top eigenfunctions fastest), and the
non-linear network does not always match its linearization.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from infntk.empirical import empirical_ntk_fn
from infntk.errors import InfntkError
from infntk.studies._common import (Timer, load_digits_split, make_model, pyplot, spearman,
                                    write_json)
from infntk.training import TrainConfig, train_side_by_side

__all__ = ["eigen_labels", "eigenfunction_tasks", "run_eigenfunctions"]


def eigen_labels(vec) -> np.ndarray:
    """±1 labels from the sign of an eigenvector (zeros -> +1)."""
    v = np.asarray(vec)
    return np.where(v >= 0, 1.0, -1.0)


def eigenfunction_tasks(kernel, ks: Sequence[int], min_minority: float = 0.1):
    """Eigen-decompose ``kernel`` and build ±1 label vectors for the (1-based) indices ``ks``.

    Tasks whose minority class is below ``min_minority`` are dropped (e.g. the
    Perron eigenvector of a positive kernel has one sign). Returns
    ``(eigenvalues descending, {k: labels}, {k: minority fraction}, dropped ks)``.
    """
    k = np.asarray(kernel, np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise InfntkError(f"eigenfunction_tasks: kernel must be square, got {k.shape}.")
    evals, evecs = np.linalg.eigh((k + k.T) / 2)
    order = np.argsort(evals)[::-1]
    evals, evecs = evals[order], evecs[:, order]
    tasks, balance, dropped = {}, {}, []
    for kk in ks:
        if not 1 <= kk <= len(evals):
            raise InfntkError(f"eigenfunction_tasks: index {kk} out of range 1..{len(evals)}.")
        lab = eigen_labels(evecs[:, kk - 1])
        minority = float(min(np.mean(lab > 0), np.mean(lab < 0)))
        balance[kk] = minority
        if minority < min_minority:
            dropped.append(kk)
            continue
        tasks[kk] = lab
    return evals, tasks, balance, dropped


def run_eigenfunctions(arch: str = "mlp", out_dir: Optional[str] = None,
                       ks: Sequence[int] = (2, 3, 5, 10, 20, 50, 100, 200, 400),
                       n_train: int = 500, n_test: int = 500, epochs: int = 40,
                       batch_size: int = 50, lr: float = 0.5, width: Optional[int] = None,
                       seed: int = 0, plot: bool = True) -> dict:
    """Run study (a) on digits; returns (and writes, if ``out_dir``) the results."""
    images = arch == "cnn"
    x_tr, _, x_te, _ = load_digits_split(n_train, n_test, seed, images)
    x_all = jnp.concatenate([x_tr, x_te])
    f, p0, desc = make_model(arch, 1, x_tr.shape, jax.random.PRNGKey(seed), width)
    with Timer() as t_ntk:
        ntk = empirical_ntk_fn(f, trace_axes=(-1,), vmap_axes=0, implementation="auto")
        kern = np.asarray(ntk(x_all, None, p0))
    evals, tasks, balance, dropped = eigenfunction_tasks(kern, ks)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, momentum=0.9,
                      schedule="cosine", loss="binary_ce", seed=seed, kernel_every=0)
    rows = []
    with Timer() as t_train:
        for kk, lab in tasks.items():
            y_tr, y_te = jnp.asarray(lab[:n_train, None]), jnp.asarray(lab[n_train:, None])
            res = train_side_by_side(f, p0, x_tr, y_tr, x_te, y_te, config=cfg)
            hn, hl = res.history["network"], res.history["linear"]
            rows.append(dict(k=kk, eigenvalue=float(evals[kk - 1]), minority=balance[kk],
                             net_test_acc=hn["test_acc"][-1], lin_test_acc=hl["test_acc"][-1],
                             net_train_acc=hn["train_acc"][-1],
                             lin_train_acc=hl["train_acc"][-1],
                             net_test_curve=hn["test_acc"], lin_test_curve=hl["test_acc"]))
    kv = [r["k"] for r in rows]
    net = [r["net_test_acc"] for r in rows]
    lin = [r["lin_test_acc"] for r in rows]
    summary = dict(
        spearman_k_vs_lin_acc=spearman(kv, lin) if len(kv) > 2 else None,
        spearman_k_vs_net_acc=spearman(kv, net) if len(kv) > 2 else None,
        tasks_net_below_lin=[r["k"] for r in rows if r["net_test_acc"] < r["lin_test_acc"]],
        tasks_net_above_lin=[r["k"] for r in rows if r["net_test_acc"] > r["lin_test_acc"]],
    )
    out = dict(study="eigenfunctions", arch=arch, model=desc, n_train=n_train, n_test=n_test,
               config=cfg.__dict__, eigenvalues_top=evals[:max(ks)].tolist(),
               minority_fraction=balance, dropped_unbalanced=dropped, tasks=rows,
               summary=summary, seconds=dict(ntk=t_ntk.seconds, train=t_train.seconds))
    if out_dir:
        write_json(out_dir, f"eigenfunctions_{arch}.json", out)
        if plot:
            _plot(out, os.path.join(out_dir, f"eigenfunctions_{arch}.png"))
    return out


def _plot(res, path):
    plt = pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    kv = [r["k"] for r in res["tasks"]]
    ax[0].plot(kv, [r["lin_test_acc"] for r in res["tasks"]], "o-", label="linearization")
    ax[0].plot(kv, [r["net_test_acc"] for r in res["tasks"]], "s-", label="network")
    ax[0].set_xscale("log")
    ax[0].set_xlabel("eigenfunction index k")
    ax[0].set_ylabel("test accuracy")
    ax[0].set_title(f"NTK eigenfunction tasks ({res['arch']})")
    ax[0].legend()
    ev = np.asarray(res["eigenvalues_top"])
    ax[1].loglog(np.arange(1, len(ev) + 1), np.clip(ev, 1e-12, None))
    ax[1].set_xlabel("k")
    ax[1].set_ylabel("eigenvalue of empirical NTK at init")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
