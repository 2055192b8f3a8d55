"""infntk vs neural-tangents 0.6.5, in one run: ``python -m benchmarks.run [--quick] [--out DIR]``.

For every case of :mod:`benchmarks.battery` and every dtype, one worker process per library is
started (``.venv/bin/python`` for infntk on the newest JAX, ``.venv-nt/bin/python`` for
neural-tangents on JAX 0.4.23; see :mod:`benchmarks.worker`). Both compile ahead of time (compile
time reported separately, never in the medians), then their timed calls are interleaved in
rounds A B A B ..., each round giving both libraries about the same wall time (the faster library
makes as many calls as fit in one call of the slower, at most ``MAX_CALLS_PER_ROUND``), so that
the load of a shared machine hits both libraries alike. A fresh pair of
processes per case makes each peak RSS that case's own. Results: ``DIR/bench.json`` (everything)
and ``DIR/bench.md`` (tables, ratios, targets met / not met; see :mod:`benchmarks.report`).

Options: ``--cases a,b`` (names or prefixes), ``--dtypes float32``, ``--libs infntk`` (neural-tangents
is skipped, with a note, when ``.venv-nt`` is absent), ``--reps``, ``--case-budget`` (seconds of
timed calls per case and library, which bounds the repetitions).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import selectors
import statistics
import subprocess
import sys
import tempfile
import time

from . import report
from .battery import CASES, DTYPES, nt_skip_reason

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = pathlib.Path(__file__).resolve().parent / "results"
PYTHONS = {"infntk": ROOT / ".venv" / "bin" / "python", "nt": ROOT / ".venv-nt" / "bin" / "python"}
SETUP_TIMEOUT = 900.0
RUN_TIMEOUT = 900.0
#: At most this many calls of the faster library per round (see :func:`bench_case`).
MAX_CALLS_PER_ROUND = 20
#: Libraries whose first call took less than this make one untimed warm call before the rounds.
WARM_CALL_BELOW_S = 2.0


class WorkerError(RuntimeError):
    pass


class Proc:
    """A worker process speaking JSON lines."""

    def __init__(self, lib, case, dtype, quick, logdir):
        py = PYTHONS[lib]
        if lib == "infntk" and not py.exists():
            py = pathlib.Path(sys.executable)
        args = [str(py), "-m", "benchmarks.worker", lib, case, dtype] + (["--quick"] if quick else [])
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
        self.log = open(pathlib.Path(logdir) / f"{case}-{dtype}-{lib}.log", "w")
        self.p = subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.p.stdout, selectors.EVENT_READ)
        self.lib = lib

    def call(self, cmd: dict, timeout: float) -> dict:
        try:
            self.p.stdin.write(json.dumps(cmd) + "\n")
            self.p.stdin.flush()
        except BrokenPipeError:
            raise WorkerError(f"{self.lib} worker died (exit {self.p.poll()})") from None
        if not self.sel.select(timeout):
            self.kill()
            raise WorkerError(f"{self.lib} worker: no reply to {cmd['op']} in {timeout:.0f} s")
        line = self.p.stdout.readline()
        if not line:
            raise WorkerError(f"{self.lib} worker died (exit {self.p.wait()}; "
                              f"killed for memory?)")
        out = json.loads(line)
        if not out.pop("ok", False):
            raise WorkerError(f"{self.lib}: {out.get('error')}")
        return out

    def close(self):
        if self.p.poll() is None:
            try:
                self.call({"op": "quit"}, 30)
            except (WorkerError, OSError):
                pass
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()  # only the worker this driver started
            self.p.wait()


def machine_info() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "cpu": platform.processor()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["mem_total_gib"] = int(f.readline().split()[1]) / 2**20
    except OSError:
        pass
    try:
        info["affinity"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    return info


def load() -> list:
    try:
        return list(os.getloadavg())
    except OSError:
        return []


def bench_case(case, dtype, libs, quick, reps, case_budget, logdir) -> dict:
    """Set both libraries' workers up, then interleave their timed calls."""
    rec = {"case": case.name, "dtype": dtype, "n": case.size(quick), "libs": {},
           "load_before": load()}
    procs = {}
    try:
        for lib in libs:
            if lib == "nt":
                why = nt_skip_reason(case, dtype, quick)
                if why:
                    rec["libs"][lib] = {"skipped": why}
                    continue
            try:
                procs[lib] = Proc(lib, case.name, dtype, quick, logdir)
                rec["libs"][lib] = procs[lib].call({"op": "setup"}, SETUP_TIMEOUT)
                rec["libs"][lib]["times"] = []
            except WorkerError as e:
                rec["libs"][lib] = {"error": str(e)}
                procs.pop(lib).kill()
        if procs:
            slow = max(rec["libs"][lib]["first_s"] for lib in procs)
            # at least 3 repetitions, fewer only for calls that alone exceed the budget
            k = min(reps, max(3 if slow <= case_budget else 1, int(case_budget / max(slow, 1e-6))))
            rec["reps"] = k
            # each round gives both libraries about the same wall time (the faster one makes
            # several calls), so a slow spell of a shared machine hits both alike; a call's time
            # is judged from one untimed warm call where the first call was cheap (a first call
            # carries one-time costs)
            per_call = {}
            for lib, p in list(procs.items()):
                first = rec["libs"][lib]["first_s"]
                if first < WARM_CALL_BELOW_S:
                    try:
                        first = p.call({"op": "run", "reps": 1}, RUN_TIMEOUT)["times"][0]
                    except WorkerError as e:
                        rec["libs"][lib]["error"] = str(e)
                        procs.pop(lib).kill()
                        continue
                    rec["libs"][lib]["warm_s"] = first
                per_call[lib] = first
            slowest = max(per_call.values(), default=0.0)
            calls = {lib: max(1, min(MAX_CALLS_PER_ROUND, int(slowest / max(t, 1e-6))))
                     for lib, t in per_call.items()}
            rec["calls_per_round"] = calls
            for _ in range(k):  # A B A B ...
                for lib, p in list(procs.items()):
                    try:
                        out = p.call({"op": "run", "reps": calls[lib]}, RUN_TIMEOUT)
                    except WorkerError as e:
                        rec["libs"][lib]["error"] = str(e)
                        procs.pop(lib).kill()
                        continue
                    r = rec["libs"][lib]
                    r["times"] += out["times"]
                    r["peak_rss_mib"] = out["peak_rss_mib"]
                    r["device_memory"] = out.get("device_memory")
        for lib, r in rec["libs"].items():
            if r.get("times"):
                r["median_s"] = statistics.median(r["times"])
                r["min_s"] = min(r["times"])
    finally:
        for p in procs.values():
            p.close()
    rec["load_after"] = load()
    return rec


def select_cases(spec):
    if not spec:
        return list(CASES.values())
    out = []
    for s in spec.split(","):
        hits = [c for n, c in CASES.items() if n == s or n.startswith(s)]
        if not hits:
            raise SystemExit(f"unknown case {s!r}; known: {', '.join(CASES)}")
        out += [c for c in hits if c not in out]
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small N, few repetitions (smoke run)")
    ap.add_argument("--out", default=str(RESULTS), help="output folder (default benchmarks/results)")
    ap.add_argument("--cases", default="", help="comma-separated case names or prefixes")
    ap.add_argument("--dtypes", default=",".join(DTYPES))
    ap.add_argument("--libs", default="infntk,nt")
    ap.add_argument("--reps", type=int, default=None, help="max timed repetitions per library")
    ap.add_argument("--case-budget", type=float, default=None,
                    help="seconds of timed calls per case and library (bounds repetitions)")
    ap.add_argument("--no-machine", action="store_true", help="skip the matmul/bandwidth probe")
    a = ap.parse_args(argv)
    reps = a.reps or (2 if a.quick else 5)
    budget = a.case_budget or (2.0 if a.quick else 10.0)
    libs = [lib for lib in a.libs.split(",") if lib]
    notes = []
    if "nt" in libs and not PYTHONS["nt"].exists():
        libs.remove("nt")
        notes.append("neural-tangents skipped: .venv-nt is absent (build it with `make crosscheck`).")
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    logdir = tempfile.mkdtemp(prefix="infntk-bench-")
    res = {"quick": a.quick, "libs": libs, "notes": notes, "machine": machine_info(),
           "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "load_start": load(), "cases": [],
           "logs": logdir}
    if not a.no_machine:
        p = Proc("infntk", "fc-relu", "float64", a.quick, logdir)
        try:
            res["machine"]["limits"] = p.call({"op": "machine"}, SETUP_TIMEOUT)
        except WorkerError as e:
            res["machine"]["limits"] = {"error": str(e)}
        finally:
            p.close()
    t0 = time.time()
    for case in select_cases(a.cases):
        for dtype in a.dtypes.split(","):
            print(f"[bench] {case.name} {dtype} ...", file=sys.stderr, flush=True)
            rec = bench_case(case, dtype, libs, a.quick, reps, budget, logdir)
            res["cases"].append(rec)
            print("[bench]   " + report.one_line(rec), file=sys.stderr, flush=True)
            write(res, out, a.quick, t0, done=False)  # a partial run still leaves its results
    write(res, out, a.quick, t0, done=True)
    return res


def write(res, out, quick, t0, done):
    res["elapsed_s"] = time.time() - t0
    res["load_end"] = load()
    res["complete"] = done
    stem = "bench-quick" if quick else "bench"
    (out / f"{stem}.json").write_text(json.dumps(res, indent=1))
    (out / f"{stem}.md").write_text(report.markdown(res))
    if done:
        print(f"[bench] wrote {out / stem}.md ({res['elapsed_s']:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
