"""The Markdown report of a validation run: every config's slope table (rows from
:mod:`infntk.studies.report`), depth growth, timings and Monte Carlo estimator."""
from __future__ import annotations

import glob
import json
import os
import time

from infntk.studies.report import HEAD, slope_rows


def write_report(out_root: str, profile: str) -> str:
    summaries = []
    for p in sorted(glob.glob(os.path.join(out_root, "*", "summary.json"))):
        with open(p) as fh:
            summaries.append(json.load(fh))
    dev = summaries[0]["device"] if summaries else {"kind": "?", "platform": "?", "jax": "?"}
    total = sum(s["seconds"] for s in summaries)
    L = [f"# Finite-width convergence to the infinite-width kernels ({profile} profile)", "",
         f"Generated {time.strftime('%Y-%m-%d %H:%M')} by `python -m validation run all --profile {profile}`.",
         f"Device: **{dev['kind']}** ({dev['platform']}), jax {dev['jax']}. "
         f"Total wall time of the studies: {total:.0f} s "
         "(includes JIT compilation; on a shared machine).", ""]
    if profile == "cpu":
        L += ["**GPU run pending**: the `full` profile (dense widths to 8192, conv to 512 channels, "
              "64 seeds) needs one accelerator (`python -m validation run all --profile full`); "
              "no device was lent to the session that produced this report.", ""]
    L += ["Method: per seed, the empirical NNGP (output covariance averaged over the readout's "
          "`width` channels) and NTK (output channel 0, Jacobian contraction) on a fixed input set; "
          "relative Frobenius errors against `model.kernel`. *fluctuation* = RMS over seeds of "
          "‖K_s − mean‖/‖K‖; *bias* = ‖mean − K‖/‖K‖ with the mean's own variance subtracted, fitted "
          "only where it exceeds twice that noise; slopes are least-squares fits of log metric on "
          "log width, 95% intervals from 1000 bootstrap resamples of the seeds at each width. "
          "Theory: fluctuations ∝ width^-1/2, bias ∝ width^-1 (exactly 0 with one hidden layer).", "",
          "## Fitted slopes against width", ""]
    for s in summaries:
        if s["kind"] != "study":
            continue
        L += [f"### {s['name']}: {s['title']}", "", f"Inputs {s['x_shape']}, networks in {s['dtype']}, "
              f"{s['seconds']:.0f} s. Plot: `{s['name']}.png`.", "", HEAD]
        for label, d in s["studies"].items():
            L += slope_rows(label, d)
        L.append("")
        if "depth_growth" in s:
            L += ["Depth growth of the fluctuations at fixed width (Hanin & Nica 2019: "
                  "fluct² ≈ exp(c·depth/width) − 1 for ReLU; small depth/width: fluct ∝ depth^1/2):", "",
                  "| kernel | c (fit over all depths, widths) | 95% CI | c per depth | "
                  "fluct ratio deepest/shallowest at each width |", "|---|---|---|---|---|"]
            for k, g in s["depth_growth"].items():
                per = ", ".join(f"d={d}: {c:.2f}" for d, c in g["c_by_depth"].items())
                rat = ", ".join(f"{w}: {v['ratio_deepest_to_shallowest']:.2f}"
                                for w, v in g["slope_vs_depth"].items())
                L.append(f"| {k.upper()} | {g['c']:.2f} | [{g['c_lo']:.2f}, {g['c_hi']:.2f}] | {per} | {rat} |")
            L += ["", "| kernel | width | slope of log fluct vs log depth | 95% CI | theory (d ≪ w) |",
                  "|---|---|---|---|---|"]
            for k, g in s["depth_growth"].items():
                for w, v in g["slope_vs_depth"].items():
                    L.append(f"| {k.upper()} | {w} | {v['slope']:+.3f} | [{v['lo']:+.3f}, {v['hi']:+.3f}] | +0.5 |")
            L.append("")
        L += ["Timings (seconds per width, first chunk includes compilation):", "",
              "| study | " + " | ".join(["width: total (first chunk), seeds/chunk"]) + " |", "|---|---|"]
        for label, d in s["studies"].items():
            cells = ", ".join(f"{w}: {t['seconds']:.1f} ({t['seconds_first_chunk']:.1f}), {t['chunk']}"
                              for w, t in d["timings"].items())
            L.append(f"| {label} | {cells} |")
        L.append("")
    for s in summaries:
        if s["kind"] != "mc":
            continue
        m = s["mc"]
        ok = m["lo"] <= m["theory"] <= m["hi"]
        L += [f"## Monte Carlo estimator: {s['title']}", "",
              f"Width {m['width']}, {m['samples']} draws, error of the mean of n draws (RMS over "
              "disjoint groups) against n.", "",
              "| n | " + " | ".join(str(n) for n in m["ns"]) + " |",
              "|---|" + "---|" * len(m["ns"]),
              "| rel. error | " + " | ".join(f"{e:.4f}" for e in m["error"]) + " |", "",
              f"Slope {m['slope']:+.3f}, 95% CI [{m['lo']:+.3f}, {m['hi']:+.3f}], theory −0.5: "
              f"{'consistent' if ok else '**not consistent**'}. Sampling took "
              f"{m['timing']['seconds']:.1f} s. Plot: `{s['name']}.png`.", ""]
    path = os.path.join(out_root, "report.md")
    os.makedirs(out_root, exist_ok=True)
    with open(path, "w") as fh:
        fh.write("\n".join(L))
    return path
