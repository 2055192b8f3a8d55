"""One benchmark case in one environment: ``python -m benchmarks.worker LIB CASE DTYPE [--quick]``.

``LIB`` is ``infntk`` (run with ``.venv/bin/python``, newest JAX) or ``nt`` (``.venv-nt/bin/python``,
neural-tangents 0.6.5 on JAX 0.4.23). The worker lives for one case, so its peak resident memory
(``VmHWM``) is that case's. It speaks JSON lines: one command per line on stdin, one reply per line
on the original stdout (the libraries' own prints are redirected to stderr):

* ``{"op": "setup"}`` -- build the inputs and the function, lower and compile it ahead of time
  (timed separately: ``lower_s``, ``compile_s``), hand the heap that compilation freed back to the
  OS, run it once (``first_s``; ``call_mib``, the resident memory that call adds: the computation's
  own working set), reply with XLA's cost analysis (flops, bytes accessed), memory analysis, a
  sample of the output and memory figures;
  then the peak RSS is reset, so ``peak_rss_mib`` of the ``run`` replies is the timed calls' own
  (compilation's peak is ``setup_peak_rss_mib``);
* ``{"op": "run", "reps": k}`` -- ``k`` timed calls of the compiled function, each blocked with
  ``block_until_ready``; reply with the times and the peak memory so far;
* ``{"op": "machine"}`` -- matmul GFLOP/s (float32/64) and memory bandwidth microbenchmarks;
* ``{"op": "quit"}``.

The driver alternates ``run`` commands of the two libraries' workers (A B A B ...).
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback

from .battery import ARCHS, CASES, IMPLEMENTATIONS


def _status_kib(field: str) -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def memory() -> dict:
    """Resident memory now and at peak (MiB): VmRSS / VmHWM, falling back to getrusage."""
    hwm = _status_kib("VmHWM")
    if hwm != hwm:  # NaN: no /proc
        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"rss_mib": _status_kib("VmRSS") / 1024, "peak_rss_mib": hwm / 1024}


def release_free_heap() -> bool:
    """Hand the heap that is allocated-then-freed back to the OS (glibc ``malloc_trim``): what
    compilation freed but malloc kept would otherwise count as this worker's resident memory in
    every later figure. Done alike in both libraries' workers."""
    import ctypes
    import gc
    gc.collect()
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so that the peak of the timed calls is not
    the peak of XLA's compilation."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _first(d):
    """cost/memory analyses are a dict in new JAX and a one-element list in old JAX."""
    if isinstance(d, (list, tuple)):
        d = d[0] if d else None
    return d


class Worker:
    def __init__(self, lib: str, case: str, dtype: str, quick: bool):
        self.lib, self.case, self.dtype, self.quick = lib, CASES[case], dtype, quick
        if dtype == "float64":
            import jax
            jax.config.update("jax_enable_x64", True)
        import jax
        import jax.numpy as jnp
        import numpy as np
        self.jax, self.jnp, self.np = jax, jnp, np
        if lib == "infntk":
            import infntk
            from infntk import stax
            self.stax, self.empirical_ntk_fn = stax, infntk.empirical_ntk_fn
            self.version = f"infntk {infntk.__version__}, jax {jax.__version__}"
        elif lib == "nt":
            import neural_tangents as nt
            from neural_tangents import stax
            self.stax, self.empirical_ntk_fn = stax, nt.empirical_ntk_fn
            self.version = f"neural-tangents {nt.__version__}, jax {jax.__version__}"
        else:
            raise SystemExit(f"unknown library {lib!r}")
        self.fn = self.args = self.compiled = None

    # ------------------------------------------------------------------ building
    def _inputs(self):
        np, c = self.np, self.case
        rng = np.random.RandomState(0)
        x = rng.standard_normal((c.size(self.quick),) + c.shape).astype(self.dtype)
        return self.jnp.asarray(x)

    def _params(self, init_fn, x):
        """Parameters from the library's own init, leaves redrawn from a fixed numpy seed (NTK
        parameterization: standard normal), so both libraries use the same numbers."""
        jax, np = self.jax, self.np
        _, params = init_fn(jax.random.PRNGKey(0), x.shape)
        leaves, tree = jax.tree_util.tree_flatten(params)
        rng = np.random.RandomState(1)
        leaves = [self.jnp.asarray(rng.standard_normal(np.shape(l)).astype(self.dtype))
                  for l in leaves]
        return jax.tree_util.tree_unflatten(tree, leaves)

    def setup(self) -> dict:
        jax, c = self.jax, self.case
        before = memory()
        x = self._inputs()
        init_fn, apply_fn, kernel_fn = ARCHS[c.arch](self.stax)
        if c.kind == "kernel":
            def fn(x):
                k = kernel_fn(x, None, ("nngp", "ntk"))
                return k.nngp, k.ntk
            args = (x,)
        else:
            params = self._params(init_fn, x)
            impl = c.implementation
            if self.lib == "infntk":
                impl = IMPLEMENTATIONS[impl]
            ntk_fn = self.empirical_ntk_fn(apply_fn, trace_axes=c.trace_axes, vmap_axes=0,
                                           implementation=impl)

            def fn(x, params):
                return ntk_fn(x, None, params)
            args = (x, params)
        jitted = jax.jit(fn)
        t0 = time.perf_counter()
        lowered = jitted.lower(*args)
        t1 = time.perf_counter()
        compiled = lowered.compile()
        t2 = time.perf_counter()
        # the call's own memory: resident growth over the first call, from a trimmed heap
        release_free_heap()
        reset_peak()
        pre_call = memory()["rss_mib"]
        out = jax.block_until_ready(compiled(*args))
        t3 = time.perf_counter()
        call_mib = memory()["peak_rss_mib"] - pre_call
        self.compiled, self.args = compiled, args
        cost, mem = {}, {}
        try:
            ca = _first(compiled.cost_analysis()) or {}
            cost = {k: float(ca[k]) for k in ("flops", "bytes accessed", "transcendentals")
                    if k in ca}
        except Exception as e:  # noqa: BLE001 - analyses are optional
            cost = {"error": repr(e)}
        try:
            ma = _first(compiled.memory_analysis())
            if ma is not None:
                mem = {k: float(getattr(ma, k)) for k in
                       ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes")
                       if hasattr(ma, k)}
        except Exception as e:  # noqa: BLE001
            mem = {"error": repr(e)}
        outs = out if isinstance(out, (tuple, list)) else (out,)
        sample = [self.np.asarray(o).ravel()[:64].astype(float).tolist() for o in outs]
        finite = all(bool(self.np.isfinite(self.np.asarray(o)).all()) for o in outs)
        outs_dtype, out_shapes = outs[0].dtype, [list(o.shape) for o in outs]
        del out, outs
        untrimmed = memory()["rss_mib"]
        trimmed = release_free_heap()
        setup_mem = memory()
        self.peak_reset = reset_peak()
        return {"version": self.version, "lower_s": t1 - t0, "compile_s": t2 - t1,
                "first_s": t3 - t2, "cost": cost, "xla_memory": mem, "sample": sample,
                "finite": finite, "out_dtype": str(outs_dtype),
                "out_shapes": out_shapes, "base_rss_mib": before["rss_mib"],
                "setup_peak_rss_mib": setup_mem["peak_rss_mib"],
                "ready_rss_mib": setup_mem["rss_mib"], "untrimmed_rss_mib": untrimmed,
                "heap_trimmed": trimmed, "call_mib": call_mib, "peak_reset": self.peak_reset,
                "device_memory": self._dev_mem()}

    def _dev_mem(self):
        try:
            stats = self.jax.devices()[0].memory_stats()
        except Exception:  # noqa: BLE001 - not implemented on CPU in many versions
            stats = None
        return None if not stats else {k: stats[k] for k in ("peak_bytes_in_use",
                                                              "bytes_in_use") if k in stats}

    def run(self, reps: int) -> dict:
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            self.jax.block_until_ready(self.compiled(*self.args))
            times.append(time.perf_counter() - t0)
        return {"times": times, **memory(), "device_memory": self._dev_mem()}

    # ------------------------------------------------------------------ machine limits
    def machine(self) -> dict:
        """Best-of-k matmul GFLOP/s and streaming bandwidth (GB/s) on this process' JAX."""
        jax, jnp = self.jax, self.jnp
        res = {"jax": jax.__version__, "devices": [str(d) for d in jax.devices()],
               "cpu_count": os.cpu_count()}
        n = 512 if self.quick else 1024
        for dt in ("float32", "float64"):
            if dt == "float64" and not jax.config.jax_enable_x64:
                continue
            a = jnp.ones((n, n), dt) * 0.5
            f = jax.jit(lambda a: a @ a)
            jax.block_until_ready(f(a))
            best = min(_timeit(lambda: jax.block_until_ready(f(a))) for _ in range(3))
            res[f"matmul_gflops_{dt}"] = 2 * n**3 / best / 1e9
        m = (1 << 24) if self.quick else (1 << 26)  # float32 elements (64 MiB / 256 MiB)
        v = jnp.ones((m,), "float32")
        g = jax.jit(lambda v: v * 1.0001 + 1.0)
        jax.block_until_ready(g(v))
        best = min(_timeit(lambda: jax.block_until_ready(g(v))) for _ in range(3))
        res["bandwidth_gbs"] = 2 * 4 * m / best / 1e9  # one read + one write
        return res


def _timeit(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    quick = "--quick" in argv
    argv = [a for a in argv if a != "--quick"]
    lib, case, dtype = argv
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library chatter goes to stderr, replies stay clean
    sys.stdout = sys.stderr
    worker = None
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            if worker is None:
                worker = Worker(lib, case, dtype, quick)
            op = cmd["op"]
            if op == "quit":
                out = {"ok": True}
            elif op == "setup":
                out = worker.setup()
            elif op == "run":
                out = worker.run(int(cmd.get("reps", 1)))
            elif op == "machine":
                out = worker.machine()
            else:
                raise ValueError(f"unknown op {op!r}")
            out["ok"] = True
        except Exception as e:  # noqa: BLE001 - reported to the driver, which records it
            out = {"ok": False, "error": f"{type(e).__name__}: {e}"[:2000],
                   "traceback": traceback.format_exc()[-4000:]}
        reply.write(json.dumps(out) + "\n")
        if cmd.get("op") == "quit":
            break


if __name__ == "__main__":
    main()
