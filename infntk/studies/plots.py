"""Log-log plots (matplotlib, Agg) of a convergence study's errors against width, with the fitted
and the theoretical slopes.

matplotlib is an optional dependency (the ``cli`` extra): :func:`plot_study` raises
``ImportError`` without it.
"""
from __future__ import annotations

import os

import numpy as np

from infntk.studies._common import pyplot

__all__ = ["panel", "plot_study"]

_STYLE = {"fluct": ("o", "C0"), "bias": ("s", "C3"), "error": ("^", "C2")}


def panel(ax, d, kernel, title):
    """One kernel's metrics of study ``d`` against width on ``ax``: points, fits, theory, noise."""
    ws = np.asarray(d["widths"], float)
    for m, (mk, col) in _STYLE.items():
        y = np.asarray(d["metrics"][kernel][m], float)
        pos = y > 0
        ax.loglog(ws[pos], y[pos], mk, color=col, label=m, ms=5)
        f = d["fits"][kernel][m]
        if f["slope"] is not None:
            wu = np.asarray(f["widths_used"], float)
            ax.loglog(wu, np.exp(f["intercept"]) * wu ** f["slope"], "-", color=col, lw=1,
                      label=f"fit {f['slope']:+.2f} [{f['lo']:+.2f},{f['hi']:+.2f}]")
            th = d["theory"][m]
            if th is not None:
                g = np.exp(np.mean(np.log(np.exp(f["intercept"]) * wu ** f["slope"])))
                gm = np.exp(np.mean(np.log(wu)))
                ax.loglog(wu, g * (wu / gm) ** th, ":", color=col, lw=1.5, label=f"theory {th:+.1f}")
    noise = np.asarray(d["metrics"][kernel]["noise"], float)
    ax.loglog(ws, noise, "--", color="0.6", lw=0.8, label="noise of mean")
    ax.set_xlabel("width")
    ax.set_ylabel("relative Frobenius error")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=5.5)


def plot_study(d: dict, out_dir: str, name: str = "convergence.png") -> str:
    """NTK and NNGP panels of one study's result dict ``d``, saved as ``out_dir/name``."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, k in zip(axes, ("ntk", "nngp")):
        if k in d["fits"]:
            panel(ax, d, k, f"{k.upper()}: {d['name']}")
    fig.tight_layout()
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
