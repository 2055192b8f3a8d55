r"""Study (b): kernel–target alignment of the network's empirical NTK during training.

On digits (10 classes, cross-entropy) the network is trained with SGD + momentum;
every epoch the empirical NTK :math:`\Theta_t` on a fixed training subset is compared
with the labels by centered kernel alignment
:math:`A(\Theta_t, YY^\top)` (one-hot :math:`Y`), and its relative change
:math:`\|\Theta_t-\Theta_0\|_F/\|\Theta_0\|_F` and its Rayleigh quotients along the top
eigenvectors of :math:`\Theta_0` are recorded (Ortiz-Jiménez et al. 2021, Sec. 5:
the NTK aligns with the target during training; the energy along its top
eigendirections grows).
"""
from __future__ import annotations

import os
from typing import Optional

import jax
import numpy as np

from infntk.studies._common import Timer, load_digits_split, make_model, pyplot, write_json
from infntk.training import TrainConfig, train_side_by_side

__all__ = ["run_alignment"]


def run_alignment(arch: str = "mlp", out_dir: Optional[str] = None, n_train: int = 500,
                  n_test: int = 500, epochs: int = 20, batch_size: int = 50, lr: float = 0.5,
                  kernel_subset: int = 200, n_eigen: int = 10, width: Optional[int] = None,
                  seed: int = 0, plot: bool = True) -> dict:
    """Run study (b); returns (and writes, if ``out_dir``) the per-epoch records."""
    x_tr, y_tr, x_te, y_te = load_digits_split(n_train, n_test, seed, arch == "cnn")
    f, p0, desc = make_model(arch, 10, x_tr.shape, jax.random.PRNGKey(seed), width)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, momentum=0.9,
                      schedule="cosine", loss="ce", seed=seed, kernel_every=1,
                      kernel_subset=kernel_subset, n_eigen=n_eigen, train_linear=False)
    with Timer() as t:
        res = train_side_by_side(f, p0, x_tr, y_tr, x_te, y_te, config=cfg)
    h = res.history["network"]
    summary = dict(alignment_init=h["alignment"][0], alignment_final=h["alignment"][-1],
                   alignment_max=max(h["alignment"]),
                   ntk_rel_change_final=h["ntk_rel_change"][-1],
                   rayleigh_ratio_final=h["rayleigh_ratio"][-1],
                   test_acc_final=h["test_acc"][-1])
    out = dict(study="alignment", arch=arch, model=desc, n_train=n_train, n_test=n_test,
               config=cfg.__dict__, history=h, init_eigenvalues=res.init_eigenvalues[:n_eigen],
               summary=summary, seconds=t.seconds)
    if out_dir:
        write_json(out_dir, f"alignment_{arch}.json", out)
        if plot:
            _plot(out, os.path.join(out_dir, f"alignment_{arch}.png"))
    return out


def _plot(res, path):
    plt = pyplot()
    h = res["history"]
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    ax[0].plot(h["kernel_epoch"], h["alignment"], "o-")
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("centered NTK-target alignment")
    ax[0].set_title(f"alignment ({res['arch']})")
    ax[1].plot(h["kernel_epoch"], h["ntk_rel_change"], "o-", label="NTK rel. change")
    ax[1].plot(h["epoch"], h["test_acc"], "s-", label="test accuracy")
    ax[1].set_xlabel("epoch")
    ax[1].legend()
    rr = np.asarray(h["rayleigh_ratio"])
    for i in range(rr.shape[1]):
        ax[2].plot(h["kernel_epoch"], rr[:, i], label=f"v{i + 1}" if i < 5 else None)
    ax[2].set_yscale("log")
    ax[2].set_xlabel("epoch")
    ax[2].set_ylabel(r"$v_i^T\Theta_t v_i / \lambda_i(\Theta_0)$")
    ax[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
