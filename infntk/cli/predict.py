"""``infntk predict``: exact infinite-width predictions on a train/test split; accuracy and MSE."""

from __future__ import annotations

import math
from typing import Optional

import typer

from infntk.cli.common import (Timer, UsageProblem, emit_json, err, guarded, kernel_fn, load_data,
                               load_model, out, progress, setup_jax)

EPILOG = """[b]Examples[/b]

  infntk predict "Dense(512, W_std=1.5) >> Relu() >> Dense(1)" --data iris

  infntk predict "Dense(512) >> Erf() >> Dense(1)" --data digits --kernel nngp --diag-reg 1e-4

  infntk predict "Dense(512) >> Relu() >> Dense(1)" --data wine --t 100 --json

  infntk predict "Dense(64) >> Relu() >> Dense(1)" --data data.csv --label-column label

Split: the samples are shuffled with --seed (iris and wine are sorted by class), then the first half trains and the second half tests, as in scikit-learn's digits example (--no-shuffle keeps the order). Class labels become one-hot targets; the prediction is the infinite ensemble's mean after gradient descent on the MSE for time --t (inf: the converged kernel regression).
"""


def parse_t(text: str) -> Optional[float]:
    s = text.strip().lower()
    if s in ("inf", "infinity", "none"):
        return None
    try:
        t = float(s)
    except ValueError:
        raise UsageProblem(f"--t: expected a non-negative time or 'inf', got {text!r}") from None
    if math.isinf(t) and t > 0:
        return None
    if not t >= 0:
        raise UsageProblem(f"--t: expected a non-negative time or 'inf', got {text!r}")
    return t


def predict_mean(model, x_train, y_train, x_test, kernel, t, diag_reg, learning_rate=1.0):
    """Mean prediction of the infinite ensemble via ``infntk.predict.gradient_descent_mse_ensemble``."""
    import numpy as np

    from infntk.predict import gradient_descent_mse_ensemble

    fn = gradient_descent_mse_ensemble(kernel_fn(model), x_train, y_train,
                                       learning_rate=learning_rate, diag_reg=diag_reg)
    res = fn(t=t, x_test=x_test, get=kernel, compute_cov=False)
    if hasattr(res, "shape"):  # compute_cov=False with a string get: the mean itself
        return np.asarray(res)
    return np.asarray(res[0] if isinstance(res, tuple) else res.mean)


def predict(
    arch: str = typer.Argument(..., help="Architecture string."),
    data: str = typer.Option(..., "--data", "-d",
                             help="digits, iris, wine, breast_cancer, or a .npz/.csv file with labels."),
    kernel: str = typer.Option("ntk", "--kernel", "-k", help="ntk (gradient descent) or nngp (Bayesian)."),
    t: str = typer.Option("inf", "--t", help="Training time (learning rate 1), or inf."),
    diag_reg: float = typer.Option(1e-4, "--diag-reg", min=0.0,
                                   help="Ridge added to the train kernel, relative to its mean diagonal."),
    train_fraction: float = typer.Option(0.5, "--train-fraction", help="Fraction of samples used for training."),
    seed: int = typer.Option(0, "--seed", help="Shuffle seed for the split."),
    shuffle: bool = typer.Option(True, "--shuffle/--no-shuffle", help="Shuffle before splitting."),
    standardize: bool = typer.Option(True, "--standardize/--raw",
                                     help="Standardize features with the training statistics (not for images)."),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="CSV label column (name or index)."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=2, help="Use only N samples: drawn at random with --seed (the first N with --no-shuffle)."),
    dtype: str = typer.Option("float64", "--dtype", help="float64 or float32."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
):
    """Exact infinite-width prediction (NTK gradient descent or NNGP posterior): accuracy and MSE."""
    with guarded(as_json):
        import numpy as np

        from infntk import data as D

        setup_jax(dtype)
        kernel = kernel.lower()
        if kernel not in ("ntk", "nngp"):
            raise UsageProblem(f"--kernel must be ntk or nngp, got {kernel!r}")
        tv = parse_t(t)
        desc, model, text = load_model(arch)
        ds = load_data(data, desc, label_column, None, quiet=as_json)
        if limit is not None:   # drawn before the split, not the first N: iris is sorted by class
            ds = D.subset(ds, limit, seed if shuffle else None)
        if ds.y is None:
            raise D.DataError(f"{data}: no labels; use an .npz with x and y, or a .csv with "
                              "--label-column")
        if not 0 < train_fraction < 1:
            raise UsageProblem(f"--train-fraction must be in (0, 1), got {train_fraction}")
        if ds.classes is not None and (ds.classes < 2):
            raise D.DataError(f"{data}: only one class in the labels")
        train, test = D.split(ds, train_fraction, seed if shuffle else None)
        x_tr, x_te = train.x, test.x
        images = x_tr.ndim > 2
        if standardize and not images:
            x_tr, x_te = D.standardize(x_tr, x_te)
        if ds.classes is not None:
            y_tr, y_te = D.one_hot(train.y, ds.classes), D.one_hot(test.y, ds.classes)
        else:
            y_tr = train.y.reshape(train.n, -1)
            y_te = test.y.reshape(test.n, -1)
        x_tr, x_te, y_tr = (a.astype(dtype) for a in (x_tr, x_te, y_tr))
        with progress(not as_json) as bar, Timer() as timer:
            task = bar.add_task(f"{kernel} prediction, {train.n} train / {test.n} test", total=1)
            mean = predict_mean(model, x_tr, y_tr, x_te, kernel, tv, diag_reg)
            bar.update(task, completed=1)
        if not np.all(np.isfinite(mean)):
            raise FloatingPointError("the prediction has non-finite entries; try a larger "
                                     "--diag-reg or --dtype float64")
        mean = mean.reshape(y_te.shape)
        mse = float(np.mean((mean - y_te) ** 2))
        result = {"ok": True, "arch": text, "data": ds.name, "kernel": kernel,
                  "t": "inf" if tv is None else tv, "diag_reg": diag_reg,
                  "n_train": train.n, "n_test": test.n, "mse": mse,
                  "seconds": round(timer.seconds, 3), "dtype": dtype}
        if ds.classes is not None:
            pred = np.argmax(mean, axis=1)
            result["classes"] = ds.classes
            result["accuracy"] = float(np.mean(pred == test.y))
            # The trivial baseline: always the most frequent training class.
            result["baseline_accuracy"] = float(np.mean(test.y == np.bincount(train.y).argmax()))
        if as_json:
            emit_json(result)
            return
        t_txt = "t = inf" if tv is None else f"t = {tv:g}"
        out.print(f"{text}\n{kernel.upper()} ({t_txt}, diag_reg {diag_reg:g}) on {ds.name}: "
                  f"{train.n} train / {test.n} test, {timer.seconds:.2f}s", markup=False)
        if "accuracy" in result:
            out.print(f"  test accuracy {result['accuracy']:.4f}  "
                      f"(majority class {result['baseline_accuracy']:.4f})")
        out.print(f"  test MSE      {mse:.6g}")
        if tv is not None and tv == 0:
            err.print("[dim]note: t = 0 gives the untrained ensemble's mean (zero)[/dim]")
