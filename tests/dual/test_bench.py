"""The duals micro-benchmark (:mod:`benchmarks.duals`, part of ``make bench``): its forms and report.

Speed targets live in benchmarks, not in timed unit tests: the default run checks that the
benchmark's compiled and hand-written forms compute the same numbers, and that its report writer
makes a well-formed table from a tiny run (no timing asserted). The timed bar (compiled <=
hand-written, median CPU-time ratio over alternated rounds) is asserted only in the slow run:
``INFNTK_FULL=1 pytest -m slow tests/dual/test_bench.py -s``; ``python -m benchmarks.duals`` writes
``benchmarks/results/duals.md`` and exits non-zero when the bar is missed.
"""
import os

import numpy as np
import pytest

from benchmarks import duals


@pytest.mark.parametrize("name,factory,hand", duals.CASES, ids=[c[0] for c in duals.CASES])
def test_compiled_matches_hand_written(name, factory, hand):
    """Both compiled variants equal the hand-written T and T' (off the diagonal to rtol 1e-9; on it
    to 1e-7 absolute, the hand-written form's FMA error at rho = 1: see ``duals.check``)."""
    n = 64
    args = duals.inputs(n)
    fns = duals.functions(factory, hand)
    duals.check(name, fns, args)
    if name == "relu":
        # The tolerance is the hand-written form's: the compiled arc-cosine dual is exact at
        # rho = 1 (GramDet), T = q / 2 and T' = 1 / 2 on the diagonal.
        q = np.diag(np.asarray(args[1]))
        for label in duals.VARIANTS:
            t, dt = (np.diag(np.asarray(x)) for x in fns[label](*args))
            np.testing.assert_array_equal(dt, np.full(n, 0.5), err_msg=label)
            np.testing.assert_array_equal(t, q / 2, err_msg=label)


def _cells(line):
    assert line.startswith("| ") and line.endswith(" |"), line
    return [c.strip() for c in line[2:-2].split(" | ")]


def test_report_table(tmp_path):
    """A tiny run through the command line writes a well-formed report (timings not asserted)."""
    status = duals.main(["--quick", "--sizes", "16", "--out", str(tmp_path)])
    assert status in (0, 1)
    md = (tmp_path / "duals-quick.md").read_text()
    assert md.startswith("# Compiled duals vs hand-written jax.numpy (QUICK")
    assert "- CPU: " in md and "Load average (1/5/15 min) at start " in md
    assert "## Method" in md and f"Bar **{duals.BAR}**" in md
    lines = md.splitlines()
    start = lines.index("| " + " | ".join(duals.COLUMNS) + " |")
    assert lines[start + 1] == "|" + "---|" * len(duals.COLUMNS)
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(_cells(line))
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (name, "16x16", v) for name, _, _ in duals.CASES for v in duals.VARIANTS]
    n_missed = 0
    for r in rows:
        assert len(r) == len(duals.COLUMNS), r
        cpu, wall = float(r[3]), float(r[5])
        lo, hi = (float(x) for x in r[4].split("–"))
        assert 0 < lo <= cpu <= hi and wall > 0, r
        assert all(float(x) > 0 for x in r[6].split(" / ")), r
        assert r[7] == ("**met**" if cpu <= 1 else "**NOT met**"), r
        n_missed += r[7] == "**NOT met**"
    assert status == (1 if n_missed else 0)
    assert ("**met** by all" in md) == (n_missed == 0)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("INFNTK_FULL"), reason="set INFNTK_FULL=1")
@pytest.mark.parametrize("n", duals.SIZES)
def test_bench_bar(n):
    """The bar, timed: compiled <= hand-written (median CPU-time ratio <= 1, no tolerance)."""
    records = duals._bench(n, *duals.plan(n))
    print("\n".join(duals.one_line(r) for r in records))
    slow = duals.missed(records)
    assert not slow, "compiled dual slower than hand-written jnp:\n" + "\n".join(slow)
