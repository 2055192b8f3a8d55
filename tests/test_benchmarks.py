"""The benchmark harness: a quick run on the infntk side (neural-tangents needs .venv-nt and is not
part of the default suite), and the report's ratio / target logic on a synthetic run."""
import json
import pathlib
import subprocess
import sys

from benchmarks import report
from benchmarks.battery import CASES, TARGETS, nt_skip_reason

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_quick_run_infntk_side(tmp_path):
    cmd = [sys.executable, "-m", "benchmarks.run", "--quick", "--libs", "infntk", "--no-machine",
           "--cases", "fc-erf,emp-cnn-last-i3", "--dtypes", "float32", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "bench-quick.json").read_text())
    assert [r["case"] for r in res["cases"]] == ["fc-erf", "emp-cnn-last-i3"]
    for rec in res["cases"]:
        r = rec["libs"]["infntk"]
        assert "error" not in r, r.get("error")
        assert r["finite"] and r["out_dtype"] == "float32"
        assert len(r["times"]) >= 2 and r["median_s"] > 0 and r["compile_s"] > 0
        assert r["peak_rss_mib"] > 0
        # the first call's own resident growth (outputs at least: N^2 float32 entries x 2)
        assert r["call_mib"] >= 0 and r["heap_trimmed"] in (True, False)
        # a cheap first call is followed by an untimed warm call that sizes the rounds
        assert r["warm_s"] > 0 and rec["calls_per_round"] == {"infntk": 1}
        assert len(r["times"]) == rec["reps"]
        assert "nt" not in rec["libs"]
    fc = res["cases"][0]["libs"]["infntk"]
    n = CASES["fc-erf"].n_quick
    assert fc["out_shapes"] == [[n, n], [n, n]]
    md = (tmp_path / "bench-quick.md").read_text()
    assert "QUICK" in md and "| fc-erf | float32 | %d |" % n in md


def _lib(median, base=100.0, peak=150.0, sample=((1.0, 2.0),), call=None):
    call = peak - base if call is None else call
    return {"median_s": median, "times": [median], "compile_s": 1.0, "base_rss_mib": base,
            "call_mib": call,
            "peak_rss_mib": peak, "setup_peak_rss_mib": peak, "sample": [list(s) for s in sample],
            "cost": {"flops": 2e9, "bytes accessed": 1e9}}


def test_report_ratios_and_targets():
    tgt = TARGETS[("cnn_gap", "float32")]
    res = {"machine": {"limits": {"matmul_gflops_float32": 100.0, "bandwidth_gbs": 10.0}},
           "cases": [
               {"case": "cnn-gap", "dtype": "float32", "n": 64,
                "libs": {"infntk": _lib(0.01), "nt": _lib(0.01 * (tgt + 1), peak=300.0)}},
               {"case": "fc-relu", "dtype": "float64", "n": 2000,
                "libs": {"infntk": _lib(1.0, peak=500.0), "nt": _lib(2.0, sample=((1.0, 2.2),))}},
               # Δ RSS larger (compile residue), the call's own memory smaller: memory met
               {"case": "myrtle", "dtype": "float32", "n": 16,
                "libs": {"infntk": _lib(0.01, peak=400.0, call=10.0),
                         "nt": _lib(0.5, peak=200.0, call=90.0)}},
               {"case": "emp-mlp-last-i2", "dtype": "float32", "n": 128,
                "libs": {"infntk": _lib(0.5), "nt": _lib(0.4)}},
               {"case": "emp-mlp-last-i3", "dtype": "float32", "n": 128,
                "libs": {"infntk": _lib(0.2), "nt": _lib(0.3)}},
           ]}
    assert abs(report.ratio(res["cases"][0]) - (tgt + 1)) < 1e-12
    assert abs(report.agreement(res["cases"][1]) - 0.2 / 2.2) < 1e-12
    md = report.markdown(res)
    gap = next(line for line in md.splitlines() if line.startswith("| cnn-gap"))
    assert "**met**" in gap and "NOT" not in gap
    fc = next(line for line in md.splitlines() if line.startswith("| fc-relu"))
    assert fc.count("**NOT met**") == 2  # 2x < 4x, and 400 MiB > 50 MiB working memory
    myrtle = next(line for line in md.splitlines() if line.startswith("| myrtle"))
    assert "| 300 / 100 | 10.0 / 90.0 | **met** |" in myrtle
    emp = next(line for line in md.splitlines() if line.startswith("| emp_mlp | (-1,) | float32 | 200"))
    assert "300 (structured) | 1.5 | **met**" in emp  # 0.2 s vs NT's best 0.3 s
    thr = next(line for line in md.splitlines() if line.startswith("| cnn-gap | float32 | infntk"))
    assert "| 200 |" in thr  # 2 GFLOP in 10 ms


def test_nt_memory_guard():
    assert nt_skip_reason(CASES["emp-mlp-last-i1"], "float32", quick=False)
    assert nt_skip_reason(CASES["emp-mlp-last-i1"], "float32", quick=True) is None
    assert nt_skip_reason(CASES["emp-mlp-last-i3"], "float64", quick=False) is None


def test_gpu_figure_script_smoke(tmp_path):
    # The GPU figure's script, run small on CPU: it times a compiled call and writes its table,
    # marking a non-GPU run as not applicable to the H100 target.
    from benchmarks import gpu_cnn_gap
    out = tmp_path / "gpu.md"
    r = gpu_cnn_gap.main(["--n", "2", "--size", "6", "--depth", "2", "--reps", "2", "--out", str(out)])
    assert r["ms_per_entry"] > 0 and len(r["times"]) == 2
    text = out.read_text()
    assert "| 2 x 2 |" in text and "3 weight layers, 6x6x3" in text
    import jax
    if jax.devices()[0].platform == "cpu":
        assert "not applicable (not a GPU run)" in text


def test_same_programs_compares_compiled_kernels():
    """benchmarks/same_programs.py: a tree compiles to the same programs as itself, and the
    normalised instructions keep what matters (shapes and ops) while dropping source locations."""
    from benchmarks import same_programs
    root = pathlib.Path(same_programs.__file__).resolve().parent.parent
    assert same_programs.main([str(root), "--cases", "fc-erf", "--dtypes", "float32"]) == 0
    ins = same_programs.instructions(root, "float32", "fc-erf", False)
    assert len(ins) > 100 and any("f32[2000,2000]" in i for i in ins)
    assert not any("stack_frame_id" in i or "metadata=" in i for i in ins)
