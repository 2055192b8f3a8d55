"""The per-family summary of test_stax_vs_nt.py: reports/stax_errors.md.

Each ``test_kernel_matches_nt`` case records its worst relative error (NNGP and NTK, the measure
of _compare.py) as the user property ``STAX_ERROR_PROPERTY``. User properties travel with the test
report, so under pytest-xdist they reach the controller; conftest.py collects them there and, at
the end of a session that compared every architecture, calls :func:`write_report`. A partial run
(``-k ...``) leaves the committed report alone.
"""
from __future__ import annotations

import math
import pathlib
from collections import defaultdict

STAX_ERROR_PROPERTY = "stax_error"
REPORT = pathlib.Path(__file__).resolve().parent.parent / "reports" / "stax_errors.md"


def _fmt(err: float) -> str:
    if not math.isfinite(err):
        return "nan/inf"
    return "0" if err == 0 else f"{err:.1e}"


def _worst(rows: list, key: str):
    row = max(rows, key=lambda r: (not math.isfinite(r[key]), r[key]))
    return row[key], f"`{row['arch']}` [{row['mode']}]"


def render(records: list, archs: list, rtol: float, versions: dict) -> str:
    """Markdown summary of ``records`` (dicts: arch, family, mode, nngp, ntk, known)."""
    families = sorted({a.family for a in archs})
    by_family = defaultdict(list)
    for r in records:
        by_family[r["family"]].append(r)
    lines = [
        "# infntk vs neural-tangents 0.6.5: worst relative error per family",
        "",
        "Written by `crosscheck/tests/test_stax_vs_nt.py` (via `conftest.py`) after a run over every",
        "architecture of `archs.py`. Error of an entry: `|infntk - nt| / max(|nt|, sqrt(K_ii K_jj))`",
        f"(see `_compare.py`), float64; the bar is {rtol:g}. Each case is one architecture in one input",
        "mode (`x2=None`: 5 inputs; `x2`: 3 vs 2; `batch1`: 1 input); the worst case of each family",
        "is named. Known disagreements (strict xfails where neural-tangents is wrong, see",
        "`NT_WRONG*` in the test file) are counted apart and excluded from the maxima.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        "| family | archs | cases | worst NNGP error | where | worst NTK error | where | known NT-wrong cases |",
        "|---|---:|---:|---:|---|---:|---|---:|",
    ]
    every = []
    for fam in families:
        rows = [r for r in by_family[fam] if not r["known"]]
        known = len(by_family[fam]) - len(rows)
        n_archs = len({a.name for a in archs if a.family == fam})
        every += rows
        if rows:
            (en, wn), (et, wt) = _worst(rows, "nngp"), _worst(rows, "ntk")
            cells = [_fmt(en), wn, _fmt(et), wt]
        else:
            cells = ["-", "-", "-", "-"]
        lines.append(f"| {fam} | {n_archs} | {len(rows)} | " + " | ".join(cells) + f" | {known} |")
    (en, wn), (et, wt) = _worst(every, "nngp"), _worst(every, "ntk")
    n_known = sum(r["known"] for r in records)
    lines.append(f"| **all** | {len(archs)} | {len(every)} | {_fmt(en)} | {wn} | {_fmt(et)} | {wt} "
                 f"| {n_known} |")
    lines.append("")
    return "\n".join(lines)


def write_report(records: list, archs: list, rtol: float, versions: dict) -> bool:
    """Write REPORT when ``records`` cover every architecture; returns whether it did."""
    if {r["arch"] for r in records} != {a.name for a in archs}:
        return False
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(render(records, archs, rtol, versions))
    return True
