"""Shared pieces of the seed-paper studies: digits data, models, plotting, JSON."""
from __future__ import annotations

import json
import math
import os
import time
from typing import Optional

import jax.numpy as jnp
import numpy as np

from infntk.errors import InfntkError

ARCHS = ("mlp", "cnn")


def load_digits_split(n_train: int = 500, n_test: int = 500, seed: int = 0,
                      images: bool = False):
    """scikit-learn digits, standardised with the training statistics.

    Returns ``x_train, y_train, x_test, y_test`` (labels 0..9); images are
    ``(N, 8, 8, 1)`` channels-last when ``images`` else ``(N, 64)``.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = d.data.astype(np.float64), d.target.astype(np.int64)
    if n_train + n_test > len(x):
        raise InfntkError(f"studies: n_train + n_test = {n_train + n_test} exceeds the "
                          f"{len(x)} digits.")
    perm = np.random.default_rng(seed).permutation(len(x))
    tr, te = perm[:n_train], perm[n_train:n_train + n_test]
    mu, sd = x[tr].mean(0), x[tr].std(0)
    sd = np.where(sd > 1e-8, sd, 1.0)
    x = (x - mu) / sd
    if images:
        x = x.reshape(-1, 8, 8, 1)
    return (jnp.asarray(x[tr]), jnp.asarray(y[tr]), jnp.asarray(x[te]), jnp.asarray(y[te]))


def make_model(arch: str, n_out: int, input_shape, key, width: Optional[int] = None):
    """An infntk model (NTK parameterization): returns ``(apply_fn, params, description)``.

    mlp: Dense(w) >> Relu >> Dense(w) >> Relu >> Dense(n_out), w = 512 by default.
    cnn: Conv(w, 3x3, SAME) >> Relu >> Conv(w, 3x3, SAME) >> Relu >> Flatten >> Dense(n_out),
    w = 32 by default.
    """
    import infntk as nk

    if arch == "mlp":
        w = width or 512
        model = (nk.Dense(w, W_std=math.sqrt(2.0), b_std=0.1) >> nk.Relu()
                 >> nk.Dense(w, W_std=math.sqrt(2.0), b_std=0.1) >> nk.Relu()
                 >> nk.Dense(n_out, W_std=1.0, b_std=0.1))
        desc = f"Dense({w}) >> Relu >> Dense({w}) >> Relu >> Dense({n_out})"
    elif arch == "cnn":
        w = width or 32
        model = (nk.Conv(w, (3, 3), padding="SAME", W_std=math.sqrt(2.0), b_std=0.1)
                 >> nk.Relu()
                 >> nk.Conv(w, (3, 3), padding="SAME", W_std=math.sqrt(2.0), b_std=0.1)
                 >> nk.Relu() >> nk.Flatten() >> nk.Dense(n_out, W_std=1.0, b_std=0.1))
        desc = (f"Conv({w}, 3x3, SAME) >> Relu >> Conv({w}, 3x3, SAME) >> Relu >> Flatten"
                f" >> Dense({n_out})")
    else:
        raise InfntkError(f"studies: unknown arch {arch!r}; expected one of {ARCHS}.")
    _, params = model.init(key, tuple(input_shape))
    return model.apply, params, desc


def to_jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (np.ndarray, jnp.ndarray)):
        return to_jsonable(np.asarray(obj).tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    return obj


def write_json(out_dir: str, name: str, payload: dict) -> str:
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name)
    with open(path, "w") as fh:
        json.dump(to_jsonable(payload), fh, indent=1, sort_keys=True)
    return path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *a):
        self.seconds = time.perf_counter() - self.t0


def spearman(a, b) -> float:
    """Spearman rank correlation (ties averaged), no scipy needed at import time."""
    from scipy.stats import spearmanr

    r = spearmanr(np.asarray(a), np.asarray(b)).statistic
    return float(r)
