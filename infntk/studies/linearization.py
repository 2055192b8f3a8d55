r"""Study (c): network vs. its linearization at init vs. its linearization at the end.

Three models trained with identical data order and optimizer on digits:

* the network :math:`f(w)` from :math:`w_0`, reaching :math:`w_T`;
* the linearization at init :math:`f^{\mathrm{lin}}_{w_0}` trained from :math:`w_0`;
* the linearization at the trained parameters :math:`f^{\mathrm{lin}}_{w_T}`, trained
  from :math:`w_T` (its kernel is the *trained* NTK :math:`\Theta_T`).

Ortiz-Jiménez et al. (2021, Sec. 5) and Fort et al. (2020): the linearization around
trained weights generalises much better than the one at init, approaching the network.
Both the 10-class task and a binary NTK-eigenfunction task can be run.
"""
from __future__ import annotations

import os
from typing import Optional

import jax
import numpy as np

from infntk.linearize import linearize
from infntk.studies._common import Timer, load_digits_split, make_model, pyplot, write_json
from infntk.training import TrainConfig, train_side_by_side

__all__ = ["run_linearization"]


def run_linearization(arch: str = "mlp", out_dir: Optional[str] = None, n_train: int = 500,
                      n_test: int = 500, epochs: int = 20, batch_size: int = 50,
                      lr: float = 0.5, width: Optional[int] = None, seed: int = 0,
                      plot: bool = True) -> dict:
    """Run study (c); returns (and writes, if ``out_dir``) the accuracies."""
    x_tr, y_tr, x_te, y_te = load_digits_split(n_train, n_test, seed, arch == "cnn")
    f, p0, desc = make_model(arch, 10, x_tr.shape, jax.random.PRNGKey(seed), width)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, momentum=0.9,
                      schedule="cosine", loss="ce", seed=seed, kernel_every=0)
    with Timer() as t:
        first = train_side_by_side(f, p0, x_tr, y_tr, x_te, y_te, config=cfg)
        w_t = first.params["network"]
        f_t = linearize(f, w_t)  # linearization around the trained weights
        second = train_side_by_side(f_t, w_t, x_tr, y_tr, x_te, y_te,
                                    config=TrainConfig(**{**cfg.__dict__,
                                                          "train_linear": False}))
    hn, hl, ht = (first.history["network"], first.history["linear"],
                  second.history["network"])
    acc = dict(network=hn["test_acc"][-1], linear_at_init=hl["test_acc"][-1],
               linear_at_trained=ht["test_acc"][-1],
               linear_at_trained_before_training=ht["test_acc"][0])
    out = dict(study="linearization", arch=arch, model=desc, n_train=n_train, n_test=n_test,
               config=cfg.__dict__, test_acc=acc,
               curves=dict(network=hn["test_acc"], linear_at_init=hl["test_acc"],
                           linear_at_trained=ht["test_acc"]),
               train_acc=dict(network=hn["train_acc"][-1], linear_at_init=hl["train_acc"][-1],
                              linear_at_trained=ht["train_acc"][-1]),
               param_distance=dict(network=hn["param_distance"][-1],
                                   linear_at_init=hl["param_distance"][-1]),
               seconds=t.seconds)
    if out_dir:
        write_json(out_dir, f"linearization_{arch}.json", out)
        if plot:
            _plot(out, os.path.join(out_dir, f"linearization_{arch}.png"))
    return out


def _plot(res, path):
    plt = pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    names = ["network", "linear_at_init", "linear_at_trained"]
    for n in names:
        c = res["curves"][n]
        ax[0].plot(np.arange(len(c)), c, "o-", ms=3, label=n)
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("test accuracy")
    ax[0].set_title(f"digits, 10 classes ({res['arch']})")
    ax[0].legend()
    ax[1].bar(names, [res["test_acc"][n] for n in names], color=["C0", "C1", "C2"])
    ax[1].set_ylim(0, 1)
    ax[1].set_ylabel("final test accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
