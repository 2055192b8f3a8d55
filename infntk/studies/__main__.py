"""``python -m infntk.studies eigenfunctions|alignment|linearization --arch mlp|cnn --out DIR``."""
from __future__ import annotations

import argparse
import json
import sys

import jax

from infntk.studies import STUDIES

QUICK = dict(n_train=60, n_test=60, epochs=2, width=16)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m infntk.studies", description=__doc__)
    ap.add_argument("study", choices=sorted(STUDIES))
    ap.add_argument("--arch", choices=("mlp", "cnn"), default="mlp")
    ap.add_argument("--out", required=True, help="output directory for JSON and PNG")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="tiny smoke-test sizes")
    ap.add_argument("--x64", action="store_true", help="float64 (default float32)")
    a = ap.parse_args(argv)
    if a.x64:
        jax.config.update("jax_enable_x64", True)
    kw = dict(QUICK) if a.quick else {}
    for k in ("epochs", "n_train", "n_test", "width", "lr"):
        v = getattr(a, k)
        if v is not None:
            kw[k] = v
    if a.study == "eigenfunctions" and a.quick:
        kw["ks"] = (2, 3, 5)
    res = STUDIES[a.study](arch=a.arch, out_dir=a.out, seed=a.seed, **kw)
    print(json.dumps({k: v for k, v in res.items() if k in ("summary", "test_acc", "seconds")},
                     default=str, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
