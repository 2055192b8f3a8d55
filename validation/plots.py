"""Log-log plots (matplotlib, Agg) of the errors against width, with fitted and theoretical slopes."""
from __future__ import annotations

import os

import numpy as np


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


_STYLE = {"fluct": ("o", "C0"), "bias": ("s", "C3"), "error": ("^", "C2")}


def _panel(ax, d, kernel, title):
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
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, k in zip(axes, ("ntk", "nngp")):
        if k in d["fits"]:
            _panel(ax, d, k, f"{k.upper()}: {d['name']}")
    fig.tight_layout()
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_config(s: dict, path: str) -> str:
    plt = _plt()
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
                _panel(axes[i, j], d, k, f"{s['name']}/{label} {k.upper()}")
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
