"""Run validation configs: one convergence study per sweep value (plus an optional bias study).

Layout of ``OUT`` (default ``validation/reports/convergence/<profile>``)::

    OUT/<config>/<study>/width_XXXXXX.json   per-width samples (written as each width finishes)
    OUT/<config>/<study>/study.json, result.json
    OUT/<config>/summary.json                fits, depth growth / MC estimator, timings
    OUT/<config>.png                         log-log plots
    OUT/report.md                            all configs present in OUT
"""
from __future__ import annotations

import json
import os
import time

try:
    import tomllib
except ImportError:  # pragma: no cover - Python < 3.11
    import tomli as tomllib

import jax
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG_DIR = os.path.join(HERE, "configs")
REPORT_ROOT = os.path.join(HERE, "reports", "convergence")


def list_configs() -> list[str]:
    return sorted(f[:-5] for f in os.listdir(CONFIG_DIR) if f.endswith(".toml"))


def load_config(name_or_path: str) -> dict:
    path = name_or_path
    if not os.path.exists(path):
        path = os.path.join(CONFIG_DIR, name_or_path + ("" if name_or_path.endswith(".toml") else ".toml"))
    if not os.path.exists(path):
        raise SystemExit(f"validation: no config {name_or_path!r}; available: {', '.join(list_configs())}")
    if path.endswith(".json"):
        with open(path) as fh:
            cfg = json.load(fh)
    else:
        with open(path, "rb") as fh:
            cfg = tomllib.load(fh)
    cfg.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    cfg.setdefault("kind", "study")
    return cfg


def _console(quiet):
    if quiet:
        return None
    from rich.console import Console
    return Console(stderr=True)


def run_config(cfg: dict, profile: str = "cpu", out_root: str | None = None, n_boot: int = 1000,
               progress: bool = True, memory_budget: int | None = None) -> dict:
    """Run one config under a profile; returns (and writes) its summary."""
    from infntk.studies.convergence import device_info
    from validation import models, plots, stats

    jax.config.update("jax_enable_x64", True)   # exact kernels in float64; networks in `dtype`
    if profile not in cfg.get("profiles", {}):
        raise SystemExit(f"validation: config {cfg['name']} has no profile {profile!r}")
    prof = cfg["profiles"][profile]
    out_root = out_root or os.path.join(REPORT_ROOT, profile)
    cdir = os.path.join(out_root, cfg["name"])
    os.makedirs(cdir, exist_ok=True)
    inp = cfg.get("inputs", {})
    x = models.inputs(n=inp.get("n", 6), shape=tuple(inp.get("shape", (8,))), seed=inp.get("seed", 0))
    dtype = prof.get("dtype", cfg.get("dtype", "float32"))
    con = _console(not progress)
    t0 = time.perf_counter()
    summary = {"name": cfg["name"], "title": cfg.get("title", cfg["name"]), "kind": cfg["kind"],
               "profile": profile, "device": device_info(), "dtype": dtype,
               "x_shape": list(x.shape), "studies": {}}
    if cfg["kind"] == "mc":
        summary["mc"] = _run_mc(cfg, prof, x, dtype, cdir, n_boot, memory_budget)
    else:
        results = {}
        sweep = cfg.get("sweep", {})
        key, values = (next(iter(sweep.items())) if sweep else (None, [None]))
        for v in values:
            params = dict(cfg.get("params", {}))
            label = "main"
            if key is not None:
                params[key] = v
                label = f"{key}{v}"
            results[label] = _study(cfg, params, label, prof["widths"], prof["seeds"], x, dtype,
                                    cdir, n_boot, progress, memory_budget)
        if "bias" in prof:
            b = dict(prof["bias"])
            params = dict(cfg.get("params", {}))
            params.update({k: v for k, v in b.items() if k not in ("widths", "seeds")})
            results["bias"] = _study(cfg, params, "bias", b["widths"], b["seeds"], x, dtype, cdir,
                                     n_boot, progress, memory_budget)
        for label, r in results.items():
            summary["studies"][label] = r.to_dict()
        if key == "depth" and len(values) > 1:
            labels = [f"depth{v}" for v in values]
            summary["depth_growth"] = {
                k: stats.depth_growth({v: results[l].samples[k] for v, l in zip(values, labels)},
                                      {v: results[l].exact[k] for v, l in zip(values, labels)},
                                      k, n_boot)
                for k in ("ntk", "nngp")}
    summary["seconds"] = time.perf_counter() - t0
    with open(os.path.join(cdir, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    try:
        plots.plot_config(summary, os.path.join(out_root, cfg["name"] + ".png"))
    except Exception as e:  # a plot must never lose a finished study
        summary["plot_error"] = repr(e)
    if con is not None:
        con.print(f"[green]{cfg['name']}[/green]: done in {summary['seconds']:.1f}s on "
                  f"{summary['device']['kind']}")
    return summary


def _study(cfg, params, label, widths, seeds, x, dtype, cdir, n_boot, progress, budget):
    from infntk.studies.convergence import run_study
    from validation import models

    fn = models.make(cfg["builder"], params)
    desc = f"{cfg['builder']}({', '.join(f'{k}={v!r}' for k, v in sorted(params.items()))})"
    fn.__name__ = desc
    return run_study(fn, widths, seeds, x, name=f"{cfg['name']}/{label}",
                     out=os.path.join(cdir, label), dtype=dtype, n_boot=n_boot,
                     progress=progress, memory_budget=budget)


def _run_mc(cfg, prof, x, dtype, cdir, n_boot, budget):
    from infntk.studies.convergence import _digest, _write, device_info, sample_kernels
    from validation import models, stats

    fn = models.make(cfg["builder"], cfg.get("params", {}))
    model = fn(int(prof["width"]))
    exact = np.asarray(model.kernel(x, None, get="nngp"), np.float64)
    meta = {"model": repr(model), "samples": prof["samples"], "dtype": dtype,
            "x": np.asarray(x).tolist()}
    h = _digest(meta)
    path = os.path.join(cdir, f"width_{int(prof['width']):06d}.json")
    rec = None
    if os.path.exists(path):
        with open(path) as fh:
            rec = json.load(fh)
        if rec.get("hash") != h:
            raise SystemExit(f"validation: {path} was made with another configuration; "
                             "remove it or use another --out")
    if rec is None:
        keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(0), int(prof["width"])),
                                int(prof["samples"]))
        a, _, info = sample_kernels(model, x, keys, 0, dtype, budget)
        info["device"] = device_info()["kind"]
        rec = {"hash": h, "width": int(prof["width"]), "info": info, "nngp": a.tolist()}
        _write(path, rec)
    res = stats.mc_estimator(np.asarray(rec["nngp"]), exact, prof["ns"], n_boot)
    res.update(width=int(prof["width"]), samples=int(prof["samples"]), timing=rec["info"])
    return res


def run(names, profile="cpu", out_root=None, n_boot=1000, progress=True, memory_budget=None):
    """Run configs (``['all']`` for every one) and rewrite the Markdown report."""
    from validation import report

    if list(names) == ["all"]:
        names = list_configs()
    out_root = out_root or os.path.join(REPORT_ROOT, profile)
    summaries = [run_config(load_config(n), profile, out_root, n_boot, progress, memory_budget)
                 for n in names]
    path = report.write_report(out_root, profile)
    return summaries, path
