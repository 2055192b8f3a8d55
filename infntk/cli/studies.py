"""``infntk converge`` and ``infntk study ...``: finite-width studies from ``infntk.studies``.

These commands are thin: they parse the architecture and options, then call the study functions of
``infntk.studies`` (the library side of ``validation/``), imported when a command runs.
"""

from __future__ import annotations

import importlib
import os
from typing import Optional

import typer

from infntk.cli.common import (Timer, UsageProblem, emit_json, guarded, load_model, out, parse_ints,
                               progress, setup_jax)
from infntk.cli.common import err

CONVERGE_EPILOG = """[b]Examples[/b]

  infntk converge "Dense(512) >> Relu() >> Dense(1)" --widths 64,256,1024 --seeds 8

  infntk converge "Dense(512) >> Erf() >> Dense(1)" --widths 128,512 --seeds 4 --out runs/erf --json

Samples finite networks at each width (hidden Dense/Conv widths are replaced) over seeds, compares their empirical NNGP/NTK with the infinite-width kernels and fits the error's slope against width.
"""

STUDY_EPILOG = """[b]Examples[/b]

  infntk study linearization --quick

  infntk study eigenfunctions --arch mlp --out runs/eigen

  infntk study alignment --arch cnn --epochs 20 --out runs/align --json

Reproductions of Ortiz-Jimenez, Moosavi-Dezfooli & Frossard (NeurIPS 2021) on scikit-learn digits: eigenfunctions (NTK eigenfunction tasks, network vs linearization accuracy against eigen-index), alignment (kernel-target alignment of the NTK during training), linearization (network vs its linearization at init and at the trained weights). The report (JSON) and a plot go to --out.
"""


def _study_fn(name: str):
    """``infntk.studies.<name>.run_<name>``, the library function behind ``infntk study <name>``."""
    return getattr(importlib.import_module(f"infntk.studies.{name}"), f"run_{name}")


def _prepare_out(path: Optional[str], force: bool) -> Optional[str]:
    if path is None:
        return None
    if os.path.exists(path) and not force and (not os.path.isdir(path) or os.listdir(path)):
        raise UsageProblem(f"{path} exists and is not empty; pass --force to overwrite")
    os.makedirs(path, exist_ok=True)
    return path


def _report(name: str, result, seconds: float, as_json: bool, out_path: Optional[str] = None):
    if hasattr(result, "to_dict"):
        result = result.to_dict()
    elif hasattr(result, "_asdict"):
        result = result._asdict()
    elif hasattr(result, "__dataclass_fields__"):
        import dataclasses

        result = dataclasses.asdict(result)
    if as_json:
        emit_json({"ok": True, "study": name, "seconds": round(seconds, 3), "result": result})
        return
    if not isinstance(result, dict):
        out.print(str(result), markup=False)
        return
    from rich.table import Table

    title = f"{name} study: {result.get('model', '')}  ({seconds:.1f}s)"
    table = Table(title=title, title_justify="left")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for section in ("summary", "test_acc", "train_acc"):
        for k, v in (result.get(section) or {}).items():
            if isinstance(v, float):
                v = f"{v:.4g}"
            elif isinstance(v, (list, tuple)):
                v = ", ".join(str(e) for e in v) or "-"
            table.add_row(f"{section}.{k}" if section != "summary" else k, str(v))
    out.print(table)
    if out_path:
        files = ", ".join(sorted(os.listdir(out_path))) or "nothing"
        out.print(f"wrote {files} to {out_path}", markup=False)


def converge(
    arch: str = typer.Argument(..., help="Architecture string; hidden widths are set per study width."),
    widths: str = typer.Option("64,256,1024", "--widths", help="Widths, e.g. 64,256,1024."),
    seeds: int = typer.Option(8, "--seeds", min=1, help="Networks sampled per width."),
    data: str = typer.Option("iris", "--data", "-d", help="Inputs to evaluate the kernels on."),
    limit: Optional[int] = typer.Option(16, "--limit", "-n", min=2, help="Use the first N samples."),
    standardize: bool = typer.Option(True, "--standardize/--raw", help="Standardize tabular features."),
    ntk_channels: int = typer.Option(1, "--ntk-channels", min=1, help="Output channels averaged in the empirical NTK."),
    n_boot: int = typer.Option(1000, "--n-boot", min=10, help="Bootstrap resamples for the slope intervals."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    out_dir: Optional[str] = typer.Option(None, "--out", "-o", help="Directory for per-width JSON, report and plots (reruns resume)."),
    force: bool = typer.Option(False, "--force", "-f", help="Write into a non-empty --out."),
    dtype: str = typer.Option("float64", "--dtype", help="float64 or float32."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
):
    """Finite-width convergence to the infinite-width kernels, Monte Carlo over widths and seeds."""
    with guarded(as_json):
        setup_jax(dtype)
        ws = parse_ints(widths, "--widths")
        if len(ws) < 2:
            raise UsageProblem("--widths: give at least two widths to fit a slope")
        desc, model, text = load_model(arch)
        from infntk.cli.common import load_data
        from infntk.data import standardize as _std
        from infntk.studies.convergence import run

        ds = load_data(data, desc, None, limit, quiet=as_json)
        x = ds.x
        if standardize and x.ndim == 2:
            x = _std(x)[0]
        out_path = _prepare_out(out_dir, force)
        show = not as_json and err.is_terminal
        with Timer() as timer:
            res = run(arch=text, x=x.astype(dtype), widths=ws, seeds=seeds, out=out_path,
                      ntk_channels=ntk_channels, n_boot=n_boot, seed=seed, progress=show)
        _report("convergence", res, timer.seconds, as_json, out_path)


#: Tiny sizes for a smoke run (``--quick``), as in ``python -m infntk.studies --quick``.
QUICK = dict(n_train=60, n_test=60, epochs=2, width=16)


def _make_study(name: str, help_text: str):
    def command(
        arch: str = typer.Option("mlp", "--arch", "-a",
                                 help="The study's network: mlp (2 hidden Dense+Relu) or cnn (2 Conv+Relu, Flatten)."),
        out_dir: Optional[str] = typer.Option(None, "--out", "-o", help="Directory for the JSON report and plot."),
        force: bool = typer.Option(False, "--force", "-f", help="Write into a non-empty --out."),
        quick: bool = typer.Option(False, "--quick", help="Tiny sizes: a smoke run in seconds."),
        n_train: Optional[int] = typer.Option(None, "--n-train", min=1, help="Training digits."),
        n_test: Optional[int] = typer.Option(None, "--n-test", min=1, help="Test digits."),
        epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Training epochs."),
        width: Optional[int] = typer.Option(None, "--width", "-w", min=1, help="Hidden width."),
        lr: Optional[float] = typer.Option(None, "--lr", min=0.0, help="Learning rate."),
        seed: int = typer.Option(0, "--seed", help="Random seed."),
        dtype: str = typer.Option("float32", "--dtype", help="float32 or float64."),
        as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    ):
        with guarded(as_json):
            if arch not in ("mlp", "cnn"):
                raise UsageProblem(f"--arch must be mlp or cnn for the {name} study, got {arch!r}")
            setup_jax(dtype)
            fn = _study_fn(name)
            out_path = _prepare_out(out_dir, force)
            kw = dict(QUICK) if quick else {}
            for k, v in (("n_train", n_train), ("n_test", n_test), ("epochs", epochs),
                         ("width", width), ("lr", lr)):
                if v is not None:
                    kw[k] = v
            if name == "eigenfunctions" and quick:
                kw["ks"] = (2, 3, 5)
            with progress(not as_json) as bar, Timer() as timer:
                bar.add_task(f"{name} study ({arch})", total=None)
                res = fn(arch=arch, out_dir=out_path, seed=seed, **kw)
            _report(name, res, timer.seconds, as_json, out_path)

    command.__doc__ = help_text
    command.__name__ = name
    return command


study_app = typer.Typer(help="Studies of finite networks against their infinite-width limit.",
                        no_args_is_help=True, rich_markup_mode="rich", epilog=STUDY_EPILOG)
for _name, _help in (
        ("eigenfunctions", "Eigenvalues and eigenfunctions of the NNGP/NTK kernels on the data."),
        ("alignment", "Kernel-target alignment of the infinite and finite-width kernels."),
        ("linearization", "Train the finite network and its linearization; compare their outputs.")):
    study_app.command(_name, epilog=STUDY_EPILOG)(_make_study(_name, _help))
