"""The main job (``make demo`` / ``infntk demo``): exact infinite-width kernels on real digits.

scikit-learn's bundled digits (1797 real 8x8 images), split as in scikit-learn's own digits
example: first half train, second half test, raw pixel values. For a ReLU MLP and a ReLU CNN it
computes the NNGP and NTK Gram matrices (timed), the exact infinite-width predictions of
gradient descent at ``t = inf`` (kernel regression on one-hot targets), and the test accuracy,
beside the example's ``SVC(gamma=0.001)``. It also shows how accuracy moves with depth.
"""
from __future__ import annotations

import json
import time
from typing import Optional

import numpy as np

from .results import canonicalize_get, package


def load_digits_split():
    from sklearn.datasets import load_digits
    digits = load_digits()
    x = digits.images.astype(np.float64)           # (1797, 8, 8), raw pixel values 0..16
    y = digits.target
    half = len(x) // 2
    return x[:half], y[:half], x[half:], y[half:]


def one_hot(y, n_classes: int = 10):
    return np.eye(n_classes)[y]


def mlp(depth: int):
    import infntk as nk
    layers = []
    for _ in range(depth):
        layers += [nk.Dense(512, W_std=2 ** 0.5, b_std=0.05), nk.Relu()]
    return nk.serial(*layers, nk.Dense(10, W_std=2 ** 0.5, b_std=0.05))


def cnn(depth: int = 3, channels: int = 64):
    import infntk as nk
    layers = []
    for _ in range(depth):
        layers += [nk.Conv(channels, (3, 3), padding="SAME", W_std=2 ** 0.5, b_std=0.05), nk.Relu()]
    return nk.serial(*layers, nk.Flatten(), nk.Dense(10, W_std=2 ** 0.5, b_std=0.05))


def evaluate(model, x_train, y_train, x_test, y_test, diag_reg: float = 1e-4):
    """Gram matrices (timed), t=inf infinite-ensemble predictions, test accuracy for NNGP and NTK."""
    import jax.numpy as jnp

    from .predict import gradient_descent_mse_ensemble
    from .tiling import kernel_matrix

    x_all = jnp.asarray(np.concatenate([x_train, x_test]))
    n = len(x_train)
    t0 = time.perf_counter()
    k = kernel_matrix(model, x_all, None, get=("nngp", "ntk"), progress=False)
    seconds = time.perf_counter() - t0
    out = {"kernel_seconds": seconds, "entries": int(x_all.shape[0] ** 2)}
    for name in ("nngp", "ntk"):
        mat = np.asarray(getattr(k, name))
        tt, st = mat[:n, :n], mat[n:, :n]
        targets = one_hot(y_train) - 0.1
        reg = diag_reg * np.trace(tt) / n
        alpha = np.linalg.solve(tt + reg * np.eye(n), targets)
        pred = st @ alpha
        out[f"{name}_accuracy"] = float(np.mean(pred.argmax(1) == y_test))
    # the library route must agree with the explicit solve above
    predict_fn = gradient_descent_mse_ensemble(
        lambda a, b=None, get=None: _from_gram(k, a, b, get, n), np.arange(n)[:, None],
        one_hot(y_train) - 0.1, diag_reg=diag_reg)
    mean = np.asarray(predict_fn(None, np.arange(n, len(x_all))[:, None], "ntk"))
    out["ntk_accuracy_via_predict"] = float(np.mean(mean.argmax(1) == y_test))
    return out


def _from_gram(k, a, b, get, n):
    """A kernel_fn over precomputed Gram matrices, indexed by integer 'inputs'."""
    ia = np.asarray(a)[:, 0].astype(int)
    ib = ia if b is None else np.asarray(b)[:, 0].astype(int)
    single, names = canonicalize_get(get, ("nngp", "ntk"), "demo kernel_fn")
    return package({g: np.asarray(getattr(k, g))[np.ix_(ia, ib)] for g in names}, single, names)


def svc_baseline(x_train, y_train, x_test, y_test) -> float:
    from sklearn.svm import SVC
    clf = SVC(gamma=0.001).fit(x_train.reshape(len(x_train), -1), y_train)
    return float(clf.score(x_test.reshape(len(x_test), -1), y_test))


def run(depths=(1, 3, 5)) -> dict:
    import jax
    jax.config.update("jax_enable_x64", True)
    x_tr, y_tr, x_te, y_te = load_digits_split()
    results = {"data": {"train": len(x_tr), "test": len(x_te), "source": "sklearn.datasets.load_digits"},
               "svc_gamma_0.001_accuracy": svc_baseline(x_tr, y_tr, x_te, y_te), "models": {}}
    for d in depths:
        results["models"][f"MLP depth {d} (ReLU)"] = evaluate(
            mlp(d), x_tr.reshape(len(x_tr), -1), y_tr, x_te.reshape(len(x_te), -1), y_te)
    results["models"]["CNN 3x[Conv3x3 SAME, ReLU] + Flatten"] = evaluate(
        cnn(), x_tr[..., None], y_tr, x_te[..., None], y_te)
    return results


def main(json_output: bool = False, json: Optional[bool] = None) -> dict:  # noqa: A002
    if json is not None:
        json_output = json
    results = run()
    if json_output:
        import json as _json
        print(_json.dumps(results, indent=2))
        return results
    from rich.console import Console
    from rich.table import Table
    console = Console()
    console.print(f"[bold]infntk demo[/bold]: digits, {results['data']['train']} train / "
                  f"{results['data']['test']} test images (first half / second half, raw pixels)")
    table = Table("model", "NNGP acc.", "NTK acc.", "Gram time (s)", "entries")
    for name, r in results["models"].items():
        table.add_row(name, f"{r['nngp_accuracy']:.4f}", f"{r['ntk_accuracy']:.4f}",
                      f"{r['kernel_seconds']:.2f}", f"{r['entries']:,}")
    table.add_row("SVC(gamma=0.001), sklearn's example", "", f"{results['svc_gamma_0.001_accuracy']:.4f}", "", "")
    console.print(table)
    console.print("Exact infinite-width predictions of gradient descent at t = inf (one-hot targets).")
    return results


if __name__ == "__main__":
    main()
