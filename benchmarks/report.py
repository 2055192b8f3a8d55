"""Markdown report of a benchmark run (see :mod:`benchmarks.run`): medians, ratios, targets, memory,
throughput against the machine's measured limits."""
from __future__ import annotations

import math

from .battery import CASES, IMPLEMENTATIONS, TARGETS

LIBS = ("infntk", "nt")


def _ms(s):
    return "—" if s is None else (f"{s * 1e3:.3g}" if s < 10 else f"{s * 1e3:.0f}")


def _f(x, fmt=".3g"):
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _med(rec, lib):
    return rec["libs"].get(lib, {}).get("median_s")


def ratio(rec):
    a, b = _med(rec, "infntk"), _med(rec, "nt")
    return b / a if a and b else None


def mem_delta(r):
    """Run peak RSS above the worker's RSS after imports (MiB)."""
    if "peak_rss_mib" in r and "base_rss_mib" in r:
        return r["peak_rss_mib"] - r["base_rss_mib"]
    return None


def call_memory(r):
    """Resident memory one call adds, from a trimmed heap after compilation (MiB): what the memory
    target compares."""
    return r.get("call_mib")


def memory_met(a, b):
    ca, cb = call_memory(a), call_memory(b)
    return None if ca is None or cb is None else ca <= cb


def agreement(rec):
    """Max |infntk - nt| / max |nt| over the sampled output entries (both outputs)."""
    a, b = rec["libs"].get("infntk", {}), rec["libs"].get("nt", {})
    if "sample" not in a or "sample" not in b:
        return None
    worst = 0.0
    for sa, sb in zip(a["sample"], b["sample"]):
        scale = max((abs(v) for v in sb), default=0.0) or 1.0
        worst = max([worst] + [abs(x - y) / scale for x, y in zip(sa, sb)])
    return worst


def _status(r):
    if not r:
        return "not run"
    if "skipped" in r:
        return "skipped"
    if "error" in r:
        return "error"
    return None


def one_line(rec):
    parts = [f"{rec['case']} {rec['dtype']} N={rec['n']}"]
    for lib in LIBS:
        r = rec["libs"].get(lib)
        if r is None:
            continue
        st = _status(r)
        parts.append(f"{lib}: " + (st + (f" ({r.get('error') or r.get('skipped')})"[:200])
                                   if st else f"{_ms(r.get('median_s'))} ms "
                                   f"(compile {r['compile_s']:.1f} s, peak {r['peak_rss_mib']:.0f} MiB)"))
    q = ratio(rec)
    if q:
        parts.append(f"ratio NT/infntk {q:.2f}")
    return "; ".join(parts)


def _mark(ok):
    return "—" if ok is None else ("**met**" if ok else "**NOT met**")


def kernel_table(res):
    rows = ["| case | dtype | N | infntk ms | NT ms | NT/infntk | target | speed | compile s infntk / NT"
            " | compile peak MiB infntk / NT | run peak MiB infntk / NT | Δ RSS MiB infntk / NT"
            " | call MiB infntk / NT | memory | max rel diff |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for rec in res["cases"]:
        c = CASES[rec["case"]]
        if c.kind != "kernel":
            continue
        a, b = rec["libs"].get("infntk", {}), rec["libs"].get("nt", {})
        q = ratio(rec)
        tgt = TARGETS.get((c.group, rec["dtype"]))
        speed = None if (q is None or tgt is None) else q >= tgt
        da, db = mem_delta(a), mem_delta(b)
        mem = memory_met(a, b)
        rows.append(
            f"| {c.name} | {rec['dtype']} | {rec['n']} | {_cell(a)} | {_cell(b)} | {_f(q)}"
            f" | {'≥ ' + format(tgt, 'g') if tgt else '(report)'} | {_mark(speed)}"
            f" | {_f(a.get('compile_s'), '.1f')} / {_f(b.get('compile_s'), '.1f')}"
            f" | {_f(a.get('setup_peak_rss_mib'), '.0f')} / {_f(b.get('setup_peak_rss_mib'), '.0f')}"
            f" | {_f(a.get('peak_rss_mib'), '.0f')} / {_f(b.get('peak_rss_mib'), '.0f')}"
            f" | {_f(da, '.0f')} / {_f(db, '.0f')}"
            f" | {_f(call_memory(a), '.1f')} / {_f(call_memory(b), '.1f')}"
            f" | {_mark(mem)} | {_f(agreement(rec), '.1e')} |")
    return "\n".join(rows)


def _cell(r):
    st = _status(r)
    return st if st else _ms(r.get("median_s"))


def empirical_tables(res):
    groups = {}
    for rec in res["cases"]:
        c = CASES[rec["case"]]
        if c.kind == "empirical":
            groups.setdefault((c.arch, c.trace_axes, rec["dtype"]), []).append((c, rec))
    detail = ["| model | trace_axes | dtype | N | implementation | infntk ms | NT ms | NT/infntk"
              " | NT best / infntk | compile s infntk / NT | Δ RSS MiB infntk / NT"
              " | call MiB infntk / NT | memory | max rel diff |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    summary = ["| model | trace_axes | dtype | infntk best ms (impl) | NT best ms (impl) | ratio"
               " | target ≥ NT's fastest |", "|---|---|---|---|---|---|---|"]
    for (arch, tr, dt), items in groups.items():
        nt_best = min(((_med(r, "nt"), c.implementation) for c, r in items if _med(r, "nt")),
                      default=(None, None))
        in_best = min(((_med(r, "infntk"), c.implementation) for c, r in items
                       if _med(r, "infntk")), default=(None, None))
        for c, rec in items:
            a, b = rec["libs"].get("infntk", {}), rec["libs"].get("nt", {})
            ma = _med(rec, "infntk")
            vs_best = nt_best[0] / ma if ma and nt_best[0] else None
            da, db = mem_delta(a), mem_delta(b)
            mem = memory_met(a, b)
            detail.append(
                f"| {arch} | {tr} | {dt} | {rec['n']} | {IMPLEMENTATIONS[c.implementation]}"
                f" | {_cell(a)} | {_cell(b)} | {_f(ratio(rec))} | {_f(vs_best)}"
                f" | {_f(a.get('compile_s'), '.1f')} / {_f(b.get('compile_s'), '.1f')}"
                f" | {_f(da, '.0f')} / {_f(db, '.0f')}"
                f" | {_f(call_memory(a), '.1f')} / {_f(call_memory(b), '.1f')} | {_mark(mem)}"
                f" | {_f(agreement(rec), '.1e')} |")
        q = nt_best[0] / in_best[0] if nt_best[0] and in_best[0] else None
        name = lambda t: IMPLEMENTATIONS.get(t[1], "—")  # noqa: E731
        summary.append(f"| {arch} | {tr} | {dt} | {_ms(in_best[0])} ({name(in_best)})"
                       f" | {_ms(nt_best[0])} ({name(nt_best)}) | {_f(q)}"
                       f" | {_mark(None if q is None else q >= 1.0)} |")
    return "\n".join(summary), "\n".join(detail)


def throughput_table(res):
    lim = res.get("machine", {}).get("limits", {})
    rows = ["| case | dtype | lib | XLA GFLOP | GFLOP/s | % matmul peak | XLA GB accessed | GB/s"
            " | % bandwidth | transcendentals (M) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for rec in res["cases"]:
        c = CASES[rec["case"]]
        if c.kind != "kernel":
            continue
        for lib in LIBS:
            r = rec["libs"].get(lib, {})
            t, cost = r.get("median_s"), r.get("cost", {})
            if not t or "flops" not in cost:
                continue
            fl, by = cost["flops"], cost.get("bytes accessed", float("nan"))
            peak = lim.get(f"matmul_gflops_{rec['dtype']}")
            bw = lim.get("bandwidth_gbs")
            rows.append(
                f"| {c.name} | {rec['dtype']} | {lib} | {fl / 1e9:.3g} | {fl / t / 1e9:.3g}"
                f" | {_f(100 * fl / t / 1e9 / peak if peak else None, '.2g')}"
                f" | {by / 1e9:.3g} | {by / t / 1e9:.3g}"
                f" | {_f(100 * by / t / 1e9 / bw if bw else None, '.2g')}"
                f" | {_f(cost.get('transcendentals', float('nan')) / 1e6, '.3g')} |")
    return "\n".join(rows)


def markdown(res) -> str:
    m = res.get("machine", {})
    lim = m.get("limits", {})
    vers = {}
    for rec in res["cases"]:
        for lib, r in rec["libs"].items():
            if "version" in r:
                vers[lib] = r["version"]
    emp_sum, emp_det = empirical_tables(res)
    out = [
        *heading("infntk vs neural-tangents 0.6.5", res, "run"),
        cpu_line(m) + ".",
        load_line(res, "medians of interleaved runs"),
        f"- Measured limits (newest JAX): matmul {_f(lim.get('matmul_gflops_float32'))} GFLOP/s "
        f"float32, {_f(lim.get('matmul_gflops_float64'))} GFLOP/s float64; streaming memory "
        f"bandwidth {_f(lim.get('bandwidth_gbs'))} GB/s (1024² matmul and a 256 MiB "
        "scale-and-add, best of 3).",
        "- Versions: " + "; ".join(f"{k}: {v}" for k, v in vers.items()) + ".",
        "- GPU part (21-layer CNN-GAP on 32×32×3, target ≤ 0.2 ms per NTK entry on an H100): "
        "**pending** — no GPU was available to this run.",
        "",
        "## Method",
        "",
        "Synthetic standard Gaussian inputs (numpy seed 0, identical for both libraries); "
        "W_std=1.5, b_std=0.05, NTK parameterization; 3×3 SAME convolutions with one channel for "
        "the analytic kernels. Each (case, dtype) runs in a fresh pair of worker processes, "
        "infntk on the newest JAX (`.venv`) and neural-tangents 0.6.5 on JAX 0.4.23 (`.venv-nt`). "
        "The function (`kernel_fn(x, None, ('nngp', 'ntk'))`, or `empirical_ntk_fn(apply_fn, "
        "trace_axes, vmap_axes=0, implementation)(x, None, params)`) is jitted and compiled "
        "ahead of time (`lower` + `compile`, reported as compile time, excluded from the "
        "medians); timed calls are blocked with `block_until_ready` and interleaved A B A B "
        "between the two workers, each round giving both about the same wall time (the faster "
        "library makes several calls per round). Ratio = NT median / infntk median (> 1: infntk faster). "
        "Peak RSS is the worker's VmHWM: *compile peak* up to the end of compilation and the "
        "first call, *run peak* over the timed calls only (VmHWM is reset in between through "
        "/proc/self/clear_refs); Δ RSS is the run peak minus the worker's resident memory after "
        "imports (neural-tangents' process also imports TensorFlow; infntk's includes its larger "
        "compiled program and tracing caches). *call MiB* is the resident memory one call adds: "
        "after compilation the heap it freed is handed back to the OS (`malloc_trim`, both "
        "workers), the peak is reset, and the first call's peak growth over the resident memory "
        "just before it is the computation's own working set (buffers, intermediates, outputs); "
        "the memory target compares it. `max rel diff` compares the first 64 output entries of both "
        "libraries (a check that both computed the same thing). Throughput counts XLA's own "
        "cost analysis of each compiled program (flops, bytes accessed).",
        "",
    ]
    if not res.get("complete", True):
        out.append("- **PARTIAL RUN**: the battery did not finish (the cases below are those "
                   "measured so far).")
    out += [f"- {n}" for n in res.get("notes", [])]
    out += ["", "## Analytic kernels (NNGP + NTK)", "", kernel_table(res), "",
            "## Empirical NTK", "", "Summary (fastest implementation of each library):", "",
            emp_sum, "", "Per implementation (`NT best / infntk`: NT's fastest implementation "
            "over this one of infntk):", "", emp_det, "",
            "## Achieved throughput (analytic kernels)", "", throughput_table(res), ""]
    errs = [(rec["case"], rec["dtype"], lib, r.get("error") or r.get("skipped"))
            for rec in res["cases"] for lib, r in rec["libs"].items()
            if "error" in r or "skipped" in r]
    if errs:
        out += ["## Skipped / failed", ""] + [f"- {c} {d} {lib}: {e}" for c, d, lib, e in errs]
        out.append("")
    return "\n".join(out)


def _load(v):
    return "/".join(f"{x:.1f}" for x in v) if v else "—"


def heading(title: str, meta: dict, module: str) -> list:
    """Title, run line and the ``## Machine`` heading shared by the benchmark reports."""
    quick = " (QUICK smoke run — not a measurement)" if meta.get("quick") else ""
    return [f"# {title}{quick}", "",
            f"Run {meta.get('started')}, {meta.get('elapsed_s', 0):.0f} s. Generated by "
            f"`python -m benchmarks.{module}` (see `benchmarks/{module}.py` for the method).",
            "", "## Machine", ""]


def cpu_line(m: dict) -> str:
    """``- CPU: ...`` of a machine record (``run.machine_info``), without the final period."""
    return (f"- CPU: {m.get('cpu')}; {m.get('cpu_count')} logical cores "
            f"(affinity {m.get('affinity')}); {_f(m.get('mem_total_gib'), '.1f')} GiB RAM; "
            f"{m.get('platform')}; Python {m.get('python')}")


def load_line(meta: dict, fair_by: str) -> str:
    """The load-average line: start/end load and what keeps the ratios fair (``fair_by``)."""
    return (f"- Load average (1/5/15 min) at start {_load(meta.get('load_start'))}, at end "
            f"{_load(meta.get('load_end'))} — the machine was shared; {fair_by} keep the "
            "*ratios* fair, the absolute times are pessimistic.")
