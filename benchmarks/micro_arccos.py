"""Where the ReLU recursion spends its time, and what a fast ``arccos`` gains.

    .venv/bin/python -m benchmarks.micro_arccos [--quick] [--exhaustive] [--out benchmarks/results]

1. ns per element of ``jnp.arccos`` (XLA), ``infntk.dual.fastmath.fast_arccos`` and ``jnp.sqrt``
   on 4M elements, float32 and float64 (jitted, blocked, median of interleaved repetitions);
2. one ReLU layer of the kernel recursion (NNGP dual + derivative dual times the NTK) as infntk
   compiles it (sympy -> jnp, XLA ``acos``) against the same expression with ``fast_arccos``, and the
   linear maps around it (Dense: ``w2 K + b2``; 3x3 SAME conv of the full spatial covariance), at
   the sizes of the FC (N=2000) and CNN-GAP (N=64, 8x8) battery cases;
3. accuracy of ``fast_arccos`` in ulps: dense sweep, or every float32 in [-1, 1] (``--exhaustive``).

Writes ``micro_arccos.md`` into the output folder.
"""
from __future__ import annotations

import argparse
import pathlib
import statistics
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402

from infntk.dual import compile as dcompile  # noqa: E402
from infntk.dual import table  # noqa: E402
from infntk.dual.fastmath import fast_arccos  # noqa: E402
from infntk.dual.symbols import Q11, Q12, Q22  # noqa: E402
from infntk.layers import spatial  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def bench(fns: dict, args, reps=7) -> dict:
    """Median seconds of each jitted fn, calls interleaved across fns."""
    jf = {k: jax.jit(f) for k, f in fns.items()}
    for f in jf.values():
        jax.block_until_ready(f(*args))
    times = {k: [] for k in jf}
    for _ in range(reps):
        for k, f in jf.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f(*args))
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def relu_fns(fast: bool):
    d = table.relu()
    ns = dict(dcompile._NAMESPACE)
    if fast:
        ns["SafeAcos"] = lambda x: fast_arccos(jnp.clip(x, -1.0, 1.0))
    args = (Q11, Q12, Q22)
    f = sp.lambdify(args, dcompile.rewrite_stable(d.nngp), modules=[ns, "jax"], cse=True)
    g = sp.lambdify(args, dcompile.rewrite_stable(d.dnngp), modules=[ns, "jax"], cse=True)

    def layer(q1, k, q2, ntk):
        return f(q1, k, q2), g(q1, k, q2) * ntk
    return layer


def psd(n, feat, dtype, rng):
    x = rng.standard_normal((n, feat)).astype(dtype)
    return x @ x.T / feat


def section_elementwise(n, reps):
    rows = []
    rng = np.random.default_rng(0)
    for dt in ("float32", "float64"):
        x = jnp.asarray(rng.uniform(-1, 1, n).astype(dt))
        t = bench({"jnp.arccos": jnp.arccos, "fast_arccos": fast_arccos, "jnp.sqrt": jnp.sqrt,
                   "x*1.5+0.1": lambda v: v * 1.5 + 0.1}, (x,), reps)
        rows.append((dt, {k: v / n * 1e9 for k, v in t.items()}))
    return rows


def section_layers(quick, reps):
    rng = np.random.default_rng(1)
    out = []
    n_fc = 256 if quick else 2000
    n_cnn = 8 if quick else 64
    for dt in ("float32", "float64"):
        # FC: one (N, N) layer
        k = jnp.asarray(psd(n_fc, 64, dt, rng))
        q = jnp.diag(k)
        q1, q2 = q[:, None], q[None, :]
        ntk = k * 2
        t = bench({"relu dual (XLA acos)": relu_fns(False), "relu dual (fast_arccos)": relu_fns(True),
                   "dense affine": lambda q1, k, q2, ntk: (2.25 * k + 0.0025, 2.25 * ntk + k)},
                  (q1, k, q2, ntk), reps)
        out.append((f"FC layer, N={n_fc}, {dt} ({n_fc**2 / 1e6:.2g}M entries)", t))
        # CNN-GAP: full spatial covariance (N, N, 8, 8, 8, 8), one Relu and one Conv
        x = rng.standard_normal((n_cnn, 64)).astype(dt)
        full = (x @ x.T / 64)[:, :, None, None, None, None] * np.ones((1, 1, 8, 8, 8, 8), dt)
        full = full + 0.1 * np.eye(8, dtype=dt)[None, None, :, :, None, None]
        k6 = jnp.asarray(full.transpose(0, 1, 2, 3, 4, 5))
        var = jnp.asarray(np.einsum("iiaabb->iab", full))  # (N, 8, 8) per-position variances
        q1 = var[:, None, :, None, :, None]
        q2 = var[None, :, None, :, None, :]

        def conv(q1, k, q2, ntk):
            a = spatial.conv_covariance(k, (3, 3), (1, 1), "SAME", 2, False, (8, 8))
            b = spatial.conv_covariance(ntk, (3, 3), (1, 1), "SAME", 2, False, (8, 8))
            return 2.25 * a + 0.0025, 2.25 * b + a
        t = bench({"relu dual (XLA acos)": relu_fns(False), "relu dual (fast_arccos)": relu_fns(True),
                   "conv 3x3 SAME (full cov)": conv}, (q1, k6, q2, k6 * 2), reps)
        out.append((f"CNN-GAP layer, N={n_cnn}, 8x8, {dt} ({k6.size / 1e6:.3g}M entries)", t))
    return out


def ulp_errors(exhaustive):
    res = {}
    one = int(np.float32(1).view(np.uint32))
    step = 1 if exhaustive else 97
    worst, worst_xla = 0.0, 0.0
    f, g = jax.jit(fast_arccos), jax.jit(jnp.arccos)
    for start in range(0, one + 1, (1 << 24) * step):
        bits = np.arange(start, min(start + (1 << 24) * step, one + 1), step, dtype=np.uint32)
        x = bits.view(np.float32)
        x = np.concatenate([x, -x])
        ref = np.arccos(x.astype(np.float64))
        sp_ = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
        worst = max(worst, float((np.abs(np.asarray(f(x)) - ref) / sp_).max()))
        worst_xla = max(worst_xla, float((np.abs(np.asarray(g(x)) - ref) / sp_).max()))
    res["float32"] = (worst, worst_xla, "every float32 in [-1, 1]" if exhaustive
                      else "every 97th float32 in [-1, 1]")
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.uniform(-1, 1, 2_000_000), 1 - rng.uniform(0, 1e-6, 200_000),
                        -1 + rng.uniform(0, 1e-6, 200_000), 0.5 + rng.uniform(-1e-3, 1e-3, 200_000)])
    x = x[np.abs(x) <= 1]
    ref = np.arccos(x.astype(np.longdouble))
    sp_ = np.spacing(np.abs(ref).astype(np.float64)).astype(np.longdouble)
    res["float64"] = (float((np.abs(np.asarray(f(x)) - ref) / sp_).max()),
                      float((np.abs(np.asarray(g(x)) - ref) / sp_).max()),
                      "2.6M points (uniform, near ±1 and 0.5), long double reference")
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.micro_arccos")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--exhaustive", action="store_true", help="every float32 (minutes)")
    ap.add_argument("--out", default=str(RESULTS))
    a = ap.parse_args(argv)
    reps = 3 if a.quick else 9
    n = 1 << 18 if a.quick else 1 << 22
    lines = ["# arccos and the ReLU recursion (micro-benchmark)", "",
             f"`python -m benchmarks.micro_arccos` on jax {jax.__version__}, "
             f"{time.strftime('%Y-%m-%d %H:%M')}; CPU-only, machine shared (load "
             f"{'/'.join(f'{v:.1f}' for v in __import__('os').getloadavg())}); medians of "
             f"{reps} interleaved repetitions.", "",
             f"## Elementwise cost (ns per element, {n / 1e6:.3g}M elements)", "",
             "| dtype | jnp.arccos | fast_arccos | jnp.sqrt | x*1.5+0.1 |", "|---|---|---|---|---|"]
    for dt, t in section_elementwise(n, reps):
        lines.append(f"| {dt} | {t['jnp.arccos']:.3g} | {t['fast_arccos']:.3g} | "
                     f"{t['jnp.sqrt']:.3g} | {t['x*1.5+0.1']:.3g} |")
    lines += ["", "## One layer of the recursion (ms)", ""]
    for title, t in section_layers(a.quick, reps):
        lines.append(f"- {title}: " + "; ".join(f"{k} {v * 1e3:.3g}" for k, v in t.items()))
    lines += ["", "## Accuracy of fast_arccos (max error in ulps)", "",
              "| dtype | fast_arccos | jnp.arccos (XLA) | points |", "|---|---|---|---|"]
    for dt, (e, ex, what) in ulp_errors(a.exhaustive).items():
        lines.append(f"| {dt} | {e:.3f} | {ex:.3f} | {what} |")
    text = "\n".join(lines) + "\n"
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / ("micro_arccos-quick.md" if a.quick else "micro_arccos.md")).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
