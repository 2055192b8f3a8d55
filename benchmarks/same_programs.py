"""Do two checkouts of infntk compile the benchmark kernels to the same XLA programs?

``python -m benchmarks.same_programs OTHER_TREE [--cases a,b] [--dtypes float32,float64]``

For every analytic case of :mod:`benchmarks.battery`, both call forms (``kernel_fn(x, None)`` and
``kernel_fn(x1, x2)``) and each dtype, each tree compiles the kernel in a subprocess of its own
(``import infntk`` from that tree) and the optimized HLO instructions are compared, with source
locations, metadata and stack frames removed. A refactor whose programs are instruction-for-instruction
the same cannot change speed or memory: this separates a real regression from timing noise on a
shared machine, where ``make bench``'s ratios drift by 10-20% between runs of the same code.
"""
from __future__ import annotations

import argparse
import pathlib
import re
import subprocess
import sys

from .battery import CASES

ROOT = pathlib.Path(__file__).resolve().parent.parent

_DUMP = r"""
import sys
root, dtype, name, cross = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
sys.path.insert(0, root)
import jax
if dtype == "float64":
    jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
from benchmarks import battery
import infntk, infntk.stax as S
assert infntk.__file__.startswith(root), infntk.__file__
case = battery.CASES[name]
_, _, kfn = battery.ARCHS[case.arch](S)
x = jnp.zeros((case.n,) + case.shape, dtype)
if cross:
    fn, args = jax.jit(lambda a, b: kfn(a, b, ("nngp", "ntk"))), (x, x[: case.n // 2])
else:
    fn, args = jax.jit(lambda a: kfn(a, None, ("nngp", "ntk"))), (x,)
print(fn.lower(*args).compile().as_text())
"""


def instructions(root: pathlib.Path, dtype: str, case: str, cross: bool) -> list:
    """The optimized HLO instructions of one case compiled by the infntk in ``root``."""
    out = subprocess.run([sys.executable, "-c", _DUMP, str(root), dtype, case, "1" if cross else "0"],
                         check=True, capture_output=True, text=True).stdout
    keep = []
    for line in out.splitlines():
        if " = " not in line:
            continue
        line = re.sub(r", metadata=\{[^}]*\}", "", line)
        keep.append(re.sub(r",? ?stack_frame_id=\d+", "", line))
    return keep


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.same_programs")
    ap.add_argument("other", help="another checkout of infntk (e.g. a git worktree of main)")
    ap.add_argument("--cases", default=",".join(n for n, c in CASES.items() if c.kind == "kernel"))
    ap.add_argument("--dtypes", default="float32,float64")
    args = ap.parse_args(argv)
    other = pathlib.Path(args.other).resolve()
    differ = 0
    for case in args.cases.split(","):
        for dtype in args.dtypes.split(","):
            for cross in (False, True):
                a = instructions(other, dtype, case, cross)
                b = instructions(ROOT, dtype, case, cross)
                n = sum(1 for x, y in zip(a, b) if x != y) + abs(len(a) - len(b))
                differ += n > 0
                form = "kernel_fn(x1, x2)" if cross else "kernel_fn(x, None)"
                print(f"{case:12s} {dtype:8s} {form:18s} {len(b):6d} instructions, "
                      f"{'identical' if n == 0 else f'{n} differ'}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
