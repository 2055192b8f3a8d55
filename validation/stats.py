r"""Study-level statistics on top of :mod:`infntk.studies.convergence`.

* :func:`depth_growth` — fluctuations at fixed width against depth. Hanin & Nica (2019): for ReLU
  nets the NTK's relative second moment grows like :math:`\exp(c\,d/w)`, so
  :math:`\mathrm{fluct}^2 \approx e^{c d/w} - 1` (:math:`\approx c\,d/w` when :math:`d \ll w`). We
  fit :math:`c` by least squares of :math:`\log(1+\mathrm{fluct}^2)` on :math:`d/w` through the
  origin and the log-log slope of fluct against depth at each width (small-:math:`d/w` theory
  :math:`1/2`), both with bootstrap intervals over seeds.
* :func:`mc_estimator` — error of the Monte Carlo NNGP estimate (mean of ``n`` draws) against
  ``n``: RMS over disjoint groups of ``n`` draws; theory slope :math:`-1/2` for an unbiased
  estimator (one hidden layer).
"""
from __future__ import annotations

import numpy as np

from infntk.studies.convergence import fit_slope, kernel_metrics

__all__ = ["depth_growth", "mc_estimator"]


def depth_growth(samples_by_depth: dict, exact_by_depth: dict, kernel: str = "ntk",
                 n_boot: int = 1000, seed: int = 0) -> dict:
    """``samples_by_depth[d][w]``: ``(S, N, N)`` samples; ``exact_by_depth[d]``: ``(N, N)``."""
    rng = np.random.default_rng(seed)
    depths = sorted(samples_by_depth)
    widths = sorted(set.intersection(*[set(samples_by_depth[d]) for d in depths]))
    point = np.array([[kernel_metrics(samples_by_depth[d][w], exact_by_depth[d])["fluct"]
                       for w in widths] for d in depths])               # (D, W)
    boot = np.empty((n_boot,) + point.shape)
    for i, d in enumerate(depths):
        for j, w in enumerate(widths):
            k = samples_by_depth[d][w]
            idx = rng.integers(0, k.shape[0], size=(n_boot, k.shape[0]))
            boot[:, i, j] = kernel_metrics(k[idx], exact_by_depth[d])["fluct"]
    dd = np.asarray(depths, float)[:, None]
    beta = dd / np.asarray(widths, float)[None, :]                      # d / w
    y = np.log1p(point ** 2)
    c = float(np.sum(beta * y) / np.sum(beta ** 2))
    cb = np.sum(beta * np.log1p(boot ** 2), (-2, -1)) / np.sum(beta ** 2)
    per_width = {}
    for j, w in enumerate(widths):
        s, _ = fit_slope(depths, point[:, j])
        sb, _ = fit_slope(depths, boot[:, :, j])
        per_width[int(w)] = {"slope": float(s), "lo": float(np.quantile(sb, 0.025)),
                             "hi": float(np.quantile(sb, 0.975)),
                             "fluct": point[:, j].tolist(),
                             "ratio_deepest_to_shallowest": float(point[-1, j] / point[0, j])}
    c_by_depth = {int(d): float(np.mean(np.asarray(widths, float) * y[i] / d))
                  for i, d in enumerate(depths)}
    return {"kernel": kernel, "depths": [int(d) for d in depths], "widths": [int(w) for w in widths],
            "fluct": point.tolist(), "c": c, "c_lo": float(np.quantile(cb, 0.025)),
            "c_hi": float(np.quantile(cb, 0.975)), "c_by_depth": c_by_depth,
            "slope_vs_depth": per_width, "theory_slope_vs_depth": 0.5}


def mc_estimator(samples, exact, ns, n_boot: int = 500, seed: int = 0) -> dict:
    """Error of the mean of ``n`` draws against ``n``; slope with a bootstrap interval."""
    samples = np.asarray(samples, np.float64)
    exact = np.asarray(exact, np.float64)
    s = samples.shape[0]
    norm = np.sqrt(np.sum(exact ** 2))
    ns = [int(n) for n in ns if s // int(n) >= 4]

    def curve(k):  # k: (..., S, N, N)
        out = []
        for n in ns:
            g = s // n
            m = k[..., :g * n, :, :].reshape(k.shape[:-3] + (g, n) + k.shape[-2:]).mean(-3)
            e2 = np.sum((m - exact) ** 2, (-2, -1)) / norm ** 2
            out.append(np.sqrt(e2.mean(-1)))
        return np.stack(out, -1)

    rng = np.random.default_rng(seed)
    err = curve(samples)
    slope, icpt = fit_slope(ns, err)
    boot = []
    for _ in range(0, n_boot, 50):
        idx = rng.integers(0, s, size=(50, s))
        boot.append(curve(samples[idx]))
    sb, _ = fit_slope(ns, np.concatenate(boot))
    return {"ns": ns, "error": err.tolist(), "slope": float(slope), "intercept": float(icpt),
            "lo": float(np.quantile(sb, 0.025)), "hi": float(np.quantile(sb, 0.975)),
            "theory": -0.5}
