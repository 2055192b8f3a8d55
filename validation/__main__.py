"""``python -m validation run CONFIG|all [--profile cpu|full] [--out DIR]``; ``list``; ``report``."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m validation",
                                 description="Monte Carlo convergence studies of infntk.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run configs (names from validation/configs, a path, or 'all')")
    r.add_argument("configs", nargs="+")
    r.add_argument("--profile", default="cpu", choices=("cpu", "full"))
    r.add_argument("--out", default=None, help="output directory (default validation/reports/convergence/PROFILE)")
    r.add_argument("--n-boot", type=int, default=1000)
    r.add_argument("--memory-budget", type=float, default=None, help="bytes per vmapped chunk")
    r.add_argument("--quiet", action="store_true")
    sub.add_parser("list", help="list configs")
    rp = sub.add_parser("report", help="rewrite report.md from finished summaries")
    rp.add_argument("--profile", default="cpu", choices=("cpu", "full"))
    rp.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    from validation import runner
    if a.cmd == "list":
        print("\n".join(runner.list_configs()))
        return 0
    if a.cmd == "report":
        import os
        from validation import report
        print(report.write_report(a.out or os.path.join(runner.REPORT_ROOT, a.profile), a.profile))
        return 0
    budget = int(a.memory_budget) if a.memory_budget else None
    _, path = runner.run(a.configs, a.profile, a.out, a.n_boot, not a.quiet, budget)
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
