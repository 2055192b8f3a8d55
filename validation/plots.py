"""Plots of a validation config: its studies' panels (:func:`infntk.studies.plots.panel`), the depth
growth of the fluctuations, or the Monte Carlo estimator's error against the number of draws."""
from __future__ import annotations

import os

import numpy as np

from infntk.studies._common import pyplot
from infntk.studies.plots import panel


def plot_config(s: dict, path: str) -> str:
    plt = pyplot()
    if s["kind"] == "mc":
        m = s["mc"]
        fig, ax = plt.subplots(figsize=(4.5, 3.8))
        ns = np.asarray(m["ns"], float)
        ax.loglog(ns, m["error"], "o", label="RMS error of mean of n draws")
        ax.loglog(ns, np.exp(m["intercept"]) * ns ** m["slope"], "-",
                  label=f"fit {m['slope']:+.2f} [{m['lo']:+.2f},{m['hi']:+.2f}]")
        ax.loglog(ns, m["error"][0] * (ns / ns[0]) ** -0.5, ":", label="theory -0.5")
        ax.set_xlabel("samples n")
        ax.set_ylabel("relative error (NNGP)")
        ax.set_title(s["title"][:60], fontsize=8)
        ax.legend(fontsize=6)
    else:
        studies = s["studies"]
        extra = 1 if "depth_growth" in s else 0
        n = len(studies) + extra
        fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 7.2), squeeze=False)
        for j, (label, d) in enumerate(studies.items()):
            for i, k in enumerate(("ntk", "nngp")):
                panel(axes[i, j], d, k, f"{s['name']}/{label} {k.upper()}")
        if extra:
            for i, k in enumerate(("ntk", "nngp")):
                g = s["depth_growth"][k]
                ax = axes[i, -1]
                for jw, w in enumerate(g["widths"]):
                    ax.loglog(g["depths"], np.asarray(g["fluct"])[:, jw], "o-", ms=4, label=f"w={w}")
                ax.set_xlabel("depth")
                ax.set_ylabel("fluctuation")
                ax.set_title(f"{k.upper()} fluct vs depth; c={g['c']:.2f} "
                             f"[{g['c_lo']:.2f},{g['c_hi']:.2f}]", fontsize=8)
                ax.legend(fontsize=5.5)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
