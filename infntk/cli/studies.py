"""``infntk converge`` and ``infntk study ...``: finite-width studies from ``infntk.studies``.

These commands are thin: they parse the architecture and options, then call the study functions of
``infntk.studies`` (the library side of ``validation/``). A build without a study says so and exits 1.
"""

from __future__ import annotations

import inspect
import os
from typing import Optional

import typer

from infntk.cli.common import (Timer, Unavailable, UsageProblem, emit_json, guarded, load_model,
                               optional, out, parse_ints, setup_jax)

CONVERGE_EPILOG = """[b]Examples[/b]

  infntk converge "Dense(512) >> Relu() >> Dense(1)" --widths 64,256,1024 --seeds 8

  infntk converge "Dense(512) >> Erf() >> Dense(1)" --widths 128,512 --seeds 4 --out runs/erf --json

Samples finite networks at each width (hidden Dense/Conv widths are replaced) over seeds, compares their empirical NNGP/NTK with the infinite-width kernels and fits the error's slope against width.
"""

STUDY_EPILOG = """[b]Examples[/b]

  infntk study eigenfunctions "Dense(512) >> Relu() >> Dense(1)" --data digits

  infntk study alignment "Dense(512) >> Erf() >> Dense(1)" --data iris --widths 64,512

  infntk study linearization "Dense(512) >> Relu() >> Dense(1)" --data iris --width 1024 --out runs/lin
"""


def _study_fn(module: str, names=("run", "main")):
    mod = optional(f"infntk.studies.{module}")
    if mod is None:
        raise Unavailable(f"infntk.studies.{module} is not available in this build")
    for n in names:
        fn = getattr(mod, n, None)
        if callable(fn):
            return fn
    raise Unavailable(f"infntk.studies.{module} has no {' or '.join(names)}() in this build")


def _call(fn, **given):
    """Call a study with the options it accepts (by name); refuse options it does not take."""
    params = inspect.signature(fn).parameters
    var_kw = any(p.kind == p.VAR_KEYWORD for p in params.values())
    kw = {}
    for name, value in given.items():
        if value is None:
            continue
        if name in params or var_kw:
            kw[name] = value
        else:
            raise UsageProblem(f"--{name.replace('_', '-')} is not an option of "
                               f"{fn.__module__}.{fn.__name__} in this build")
    return fn(**kw)


def _prepare_out(path: Optional[str], force: bool) -> Optional[str]:
    if path is None:
        return None
    if os.path.exists(path) and not force and (not os.path.isdir(path) or os.listdir(path)):
        raise UsageProblem(f"{path} exists and is not empty; pass --force to overwrite")
    os.makedirs(path, exist_ok=True)
    return path


def _report(name: str, result, seconds: float, as_json: bool):
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
    summary = getattr(result, "summary", None)
    if callable(summary):
        out.print(summary(), markup=False)
    elif isinstance(result, dict):
        from rich.pretty import Pretty

        out.print(f"[b]{name}[/b] ({seconds:.1f}s)")
        out.print(Pretty(result, max_length=20, max_string=200))
    elif result is not None:
        out.print(str(result), markup=False)


def converge(
    arch: str = typer.Argument(..., help="Architecture string."),
    widths: str = typer.Option("64,256,1024", "--widths", help="Hidden widths, e.g. 64,256,1024."),
    seeds: int = typer.Option(8, "--seeds", min=1, help="Networks sampled per width."),
    data: str = typer.Option("iris", "--data", "-d", help="Inputs to evaluate the kernels on."),
    limit: Optional[int] = typer.Option(16, "--limit", "-n", min=2, help="Use the first N samples."),
    out_dir: Optional[str] = typer.Option(None, "--out", "-o", help="Directory for the report and plots."),
    force: bool = typer.Option(False, "--force", "-f", help="Write into a non-empty --out."),
    dtype: str = typer.Option("float64", "--dtype", help="float64 or float32."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
):
    """Finite-width convergence to the infinite-width kernels, Monte Carlo over widths and seeds."""
    with guarded(as_json):
        setup_jax(dtype)
        ws = parse_ints(widths, "--widths")
        desc, model, text = load_model(arch)
        fn = _study_fn("convergence")
        from infntk.cli.common import load_data

        ds = load_data(data, desc, None, limit, quiet=as_json)
        out_path = _prepare_out(out_dir, force)
        with Timer() as timer:
            res = _call(fn, arch=text, model=model, x=ds.x, widths=ws, seeds=seeds, out=out_path)
        _report("convergence", res, timer.seconds, as_json)


def _make_study(name: str, help_text: str):
    def command(
        arch: str = typer.Argument(..., help="Architecture string."),
        data: str = typer.Option("iris", "--data", "-d", help="Data source."),
        limit: Optional[int] = typer.Option(None, "--limit", "-n", min=2, help="Use the first N samples."),
        width: Optional[int] = typer.Option(None, "--width", "-w", min=1, help="Hidden width of the finite network."),
        widths: Optional[str] = typer.Option(None, "--widths", help="Several hidden widths, e.g. 64,512."),
        seeds: Optional[int] = typer.Option(None, "--seeds", min=1, help="Networks sampled per width."),
        out_dir: Optional[str] = typer.Option(None, "--out", "-o", help="Directory for the report and plots."),
        force: bool = typer.Option(False, "--force", "-f", help="Write into a non-empty --out."),
        dtype: str = typer.Option("float64", "--dtype", help="float64 or float32."),
        as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    ):
        with guarded(as_json):
            setup_jax(dtype)
            desc, model, text = load_model(arch, width)
            fn = _study_fn(name)
            from infntk.cli.common import load_data

            ds = load_data(data, desc, None, limit, quiet=as_json)
            out_path = _prepare_out(out_dir, force)
            with Timer() as timer:
                res = _call(fn, arch=text, model=model, x=ds.x, y=ds.y,
                            widths=parse_ints(widths, "--widths"), seeds=seeds, out=out_path)
            _report(name, res, timer.seconds, as_json)

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
