"""Scale figures for ``infntk.tiling.kernel_matrix``: the full digits CNN-GAP Gram matrix.

The model is 4 x [Conv(256, (3, 3), SAME) >> Relu] >> GlobalAvgPool >> Dense(1), W_std=1.5,
b_std=0.05 (NTK parameterization); the data are all 1797 8x8x1 images of scikit-learn's digits
(pixels / 16). Its NNGP and NTK Gram matrices (1797 x 1797 each) are computed with
``kernel_matrix`` into a zarr store

1. on the local devices of this process, and
2. on a 2-worker Dask ``LocalCluster`` (processes, 1 thread each, loopback only),

reporting wall time, tile throughput (kernel entries per second, counting each mirrored entry of
the symmetric matrix once as computed and once as delivered), and peak resident memory (VmHWM of
this process and of each Dask worker; XLA's buffers are not visible to ``tracemalloc``, so RSS is
the honest figure). The Dask result is checked bitwise against the local
one, and a block against a direct ``model.kernel`` call.

Run:  .venv/bin/python benchmarks/scale_digits.py [--n 1797] [--budget 1GiB] [--no-dask]
Writes benchmarks/results/scale_digits.md.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import shutil
import tempfile
import time

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import infntk as nk  # noqa: E402
from infntk.tiling import StoredGram, kernel_matrix, plan_tiles  # noqa: E402

RESULTS = pathlib.Path(__file__).parent / "results" / "scale_digits.md"
GET = ("nngp", "ntk")


def cnn_gap():
    def block():
        return nk.Conv(256, (3, 3), padding="SAME", W_std=1.5, b_std=0.05) >> nk.Relu()

    return block() >> block() >> block() >> block() >> nk.GlobalAvgPool() >> nk.Dense(1, W_std=1.5, b_std=0.05)


def digits(n):
    from sklearn.datasets import load_digits

    x = load_digits().images[:, :, :, None].astype(np.float64) / 16.0
    return x[:n]


def _status_mib(field: str):
    """A ``/proc/self/status`` memory field of this process in MiB, or None without /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def rss_mib() -> float:
    """Peak resident memory of this process (MiB): VmHWM, which -- unlike getrusage's ru_maxrss,
    kept across exec on Linux -- does not inherit the parent's peak in spawned Dask workers."""
    peak = _status_mib("VmHWM")
    if peak is not None:
        return peak
    import resource as r

    return r.getrusage(r.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def rss_now_mib() -> float:
    """Current resident memory of this process (MiB): VmRSS."""
    now = _status_mib("VmRSS")
    return float("nan") if now is None else now


def entries(plan):
    computed = sum((t.r1 - t.r0) * (t.c1 - t.c0) for t in plan.tiles())
    return computed, plan.shape[0] * plan.shape[1]


def blockwise_equal(a: StoredGram, b: StoredGram) -> bool:
    n = a.shape[0]
    s = a.block[0]
    return all(np.array_equal(a[i:i + s, :], b[i:i + s, :]) for i in range(0, n, s))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1797)
    ap.add_argument("--budget", default="1GiB")
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()

    model = cnn_gap()
    x = digits(args.n)
    work = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix="infntk-scale-"))
    rows = []
    load0 = os.getloadavg()[0]

    t0 = time.perf_counter()
    plan = plan_tiles(model, x, None, get=GET, memory_budget=args.budget)
    t_plan = time.perf_counter() - t0
    computed, total = entries(plan)
    mem = plan.memory

    # -- local -----------------------------------------------------------------------------
    shutil.rmtree(work / "local", ignore_errors=True)
    base_local = rss_now_mib()
    t0 = time.perf_counter()
    local = kernel_matrix(model, x, get=GET, tile=plan.tile, store=work / "local", progress=True)
    t_local = time.perf_counter() - t0
    rss_local = rss_mib()
    from infntk.tiling.local import jitted

    programs = jitted(model, GET)._cache_size()
    rows.append(("local (%d device%s)" % (len(jax.local_devices()), "s" * (len(jax.local_devices()) > 1)),
                 t_local, computed / t_local, total / t_local,
                 f"{base_local:,.0f} -> {rss_local:,.0f} (this process)", "reference"))

    # check one off-diagonal block against a direct call (float64 rounding only)
    s = slice(0, 16), slice(args.n - 16, args.n)
    direct = np.asarray(model.kernel(x[s[0]], x[s[1]], get="ntk"))
    dev = float(np.max(np.abs(local.ntk[s] - direct) / np.abs(direct)))

    # -- dask --------------------------------------------------------------------------------
    if not args.no_dask:
        import distributed

        cluster = distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
            dashboard_address=None, worker_dashboard_address=None,
        )
        client = distributed.Client(cluster, set_as_default=False)
        try:
            client.run(lambda: __import__("jax").numpy.zeros(1).block_until_ready())  # import jax
            wbase = client.run(rss_now_mib)
            shutil.rmtree(work / "dask", ignore_errors=True)
            t0 = time.perf_counter()
            remote = kernel_matrix(model, x, get=GET, tile=plan.tile, store=work / "dask",
                                   scheduler=client, progress=True)
            t_dask = time.perf_counter() - t0
            wrss = client.run(rss_mib)
            same = blockwise_equal(remote.ntk, local.ntk) and blockwise_equal(remote.nngp, local.nngp)
            rows.append(("Dask LocalCluster, 2 workers x 1 thread", t_dask, computed / t_dask, total / t_dask,
                         " / ".join(f"{wbase[k]:,.0f} -> {v:,.0f}" for k, v in wrss.items()) + " (per worker)",
                         "bitwise equal" if same else "DIFFERS"))
        finally:
            client.close()
            cluster.close()

    dense_mib = 2 * total * 8 / 2**20
    projection = []
    if args.n < 1797:
        full = 1797 * 1798 // 2
        projection = [
            f"Projection to all 1797 images ({full:,} computed entries per kernel) at the throughputs above: "
            + "; ".join(f"{name}: {full / c / 3600:,.1f} h" for name, t, c, d, r, res in rows)
            + " (compilation included in those throughputs, so an upper estimate; the per-pair cost of this conv kernel dominates).",
            "",
        ]
    lines = [
        "# Scale: full digits CNN-GAP Gram matrix with `kernel_matrix`",
        "",
        "Model: `4 x [Conv(256, (3, 3), SAME) >> Relu] >> GlobalAvgPool >> Dense(1)`, W_std=1.5, "
        "b_std=0.05, NTK parameterization; float64.",
        f"Data: {args.n} digits images 8x8x1 (scikit-learn), pixels/16. Kernels: {', '.join(GET)} "
        f"({plan.shape[0]} x {plan.shape[1]} each; {dense_mib:,.1f} MiB together as dense float64).",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, jax {jax.__version__} "
        f"({jax.default_backend()}), Python {platform.python_version()}; 1-minute load average "
        f"{load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (other processes on the "
        "machine share the cores, so the figures are lower bounds on what the code can do).",
        "",
        f"Plan (memory budget {args.budget} per device, {t_plan:.1f} s): tile {plan.tile[0]} x {plan.tile[1]}, "
        f"{len(plan.tiles())} tiles (upper triangle of a {plan.grid[0]} x {plan.grid[1]} grid); memory model "
        f"from `{mem.source}`: {mem.per_pair:,.0f} B/pair + {mem.per_row:,.0f} B/row + {mem.fixed:,.0f} B "
        f"-> {mem.bytes(*plan.tile) / 2**20:,.0f} MiB per tile; two tiles in flight per device: "
        f"{2 * mem.bytes(*plan.tile) / 2**20:,.0f} MiB, the part of memory the budget bounds. "
        f"Tile programs compiled: {programs} (ragged tiles run padded, so at most one diagonal and "
        "one off-diagonal program).",
        "",
        "| run | wall time (s) | computed entries/s | delivered entries/s | RSS before -> peak (MiB) | result |",
        "|---|---:|---:|---:|---|---|",
    ]
    for name, t, c, d, r, res in rows:
        lines.append(f"| {name} | {t:,.1f} | {c:,.0f} | {d:,.0f} | {r} | {res} |")
    lines += [
        "",
        f"Computed entries: {computed:,} (upper-triangle tiles); delivered: {total:,} per kernel "
        "(the lower triangle is mirrored). Times include compilation and writing the zarr store. "
        "A diagonal tile is one `model.kernel(x[I], None)` call, which itself computes only the "
        "pairs on and above its diagonal, so it costs about half its entries: the work is about "
        "N^2/2 pairs whatever the grid.",
        "RSS before: resident memory just before the run (JAX runtime, data, and for the local run "
        "the planner's probe compilations); peak: VmHWM, which also counts each compilation's "
        "transient memory and the retained compiled programs, on top of the tiles' working memory "
        "that the budget bounds.",
        f"Check: an off-diagonal 16 x 16 NTK block equals a direct `model.kernel` call to a max "
        f"relative deviation of {dev:.1e} (float64 rounding).",
        "",
        *projection,
        f"Reproduce: `.venv/bin/python benchmarks/scale_digits.py --n {args.n} --budget {args.budget}`"
        + ("" if args.n == 1797 else " (drop `--n` for the full 1797 images)") + ".",
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
