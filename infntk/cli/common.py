"""Shared plumbing of the ``infntk`` command: errors and exit codes, JSON output, progress, options.

Exit codes: 0 success; 2 bad usage or bad input (``InfntkError``: bad architecture, bad data, bad
option values); 1 a computation failed. Errors print one line (an architecture error adds the caret
excerpt) and no traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import traceback
from typing import Optional

import typer
from rich.console import Console

from infntk.errors import InfntkError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class _State:
    debug: bool = bool(os.environ.get("INFNTK_DEBUG"))


state = _State()


class UsageProblem(InfntkError):
    """A bad option value found after parsing (exit 2)."""


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "tolist") and hasattr(v, "dtype"):
        return _jsonable(v.tolist())
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def emit_json(obj: dict) -> None:
    """Machine-readable result on stdout (one JSON document)."""
    sys.stdout.write(json.dumps(_jsonable(obj), indent=2) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int, as_json: bool = False) -> None:
    message = message.strip() or "failed"
    if as_json:
        emit_json({"ok": False, "exit_code": code, "error": message})
    # Markup off: messages contain brackets and carets.
    err.print(f"infntk: error: {message}", markup=False, highlight=False)
    raise typer.Exit(code)


@contextlib.contextmanager
def guarded(as_json: bool = False):
    """Map exceptions to exit codes and one-line messages (tracebacks only with ``--debug``)."""
    try:
        yield
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except KeyboardInterrupt:
        err.print("infntk: interrupted")
        raise typer.Exit(130)
    except InfntkError as e:  # bad input: architecture, data, option values
        if state.debug:
            traceback.print_exc()
        fail(str(e), 2, as_json)
    except Exception as e:  # a computation failure
        if state.debug:
            traceback.print_exc()
        msg = str(e).strip().splitlines()
        msg = msg[0] if msg else ""
        hint = "" if state.debug else " (run with --debug for the traceback)"
        fail(f"{type(e).__name__}: {msg}"[:500] + hint, 1, as_json)


def setup_jax(dtype: str = "float64") -> None:
    """Choose the float width before any array is made."""
    if dtype not in ("float32", "float64"):
        raise UsageProblem(f"--dtype must be float32 or float64, got {dtype!r}")
    import jax

    jax.config.update("jax_enable_x64", dtype == "float64")


def parse_ints(text: Optional[str], what: str) -> Optional[tuple[int, ...]]:
    """``"8,8,1"`` / ``"8x8x1"`` / ``"(8, 8, 1)"`` -> (8, 8, 1)."""
    if text is None:
        return None
    raw = text.strip().strip("()[]").replace("x", ",").replace(" ", ",")
    parts = [p for p in raw.split(",") if p]
    try:
        vals = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageProblem(f"{what}: expected integers such as 64 or 8,8,1, got {text!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise UsageProblem(f"{what}: expected positive integers, got {text!r}")
    return vals


def parse_get(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip().lower() for p in text.split(",") if p.strip())
    bad = [p for p in parts if p not in ("nngp", "ntk")]
    if not parts or bad:
        raise UsageProblem(f"--get: expected nngp, ntk or nngp,ntk, got {text!r}")
    return tuple(dict.fromkeys(parts))


def check_out(path: str, force: bool) -> str:
    """Refuse to overwrite an existing output unless ``--force``."""
    if os.path.exists(path) and not force:
        raise UsageProblem(f"{path} exists; pass --force to overwrite it")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageProblem(f"{path}: directory {parent} does not exist")
    return path


def progress(enabled: bool = True):
    """A rich progress display on stderr (silent when not a terminal or in --json mode)."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                    console=err, transient=True, disable=not enabled or not err.is_terminal)


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


def load_model(arch: str, width: Optional[int] = None):
    """Parse and build an architecture string; returns (description, model, canonical string)."""
    from infntk import arch as A

    desc = A.parse(arch)
    if width is not None:
        desc = A.with_width(desc, width)
    text = A.to_string(desc)
    return desc, A.build(desc, text if width is not None else arch), text


def needs_images(desc) -> bool:
    """Whether a layer of the model refuses flat ``(batch, features)`` inputs (convolutions,
    pooling: asked of the layers themselves, so no list of names to keep up to date)."""
    from infntk.arch import build, iter_calls

    for call in iter_calls(desc):
        try:
            build(call).output_shape((1, 64))
        except InfntkError:
            return True
    return False


def load_data(source: str, desc=None, label_column=None, limit=None, quiet=False):
    """Load a source; ``digits`` becomes ``digits:images`` for convolutional models."""
    from infntk.data import load

    if source == "digits" and desc is not None and needs_images(desc):
        source = "digits:images"
        if not quiet:
            err.print("[dim]note: convolutional model: using digits as 8x8x1 images[/dim]")
    return load(source, label_column=label_column, limit=limit)


def kernel_fn(model):
    """``model.kernel`` as a neural-tangents-style ``kernel_fn(x1, x2=None, get=None, **kw)``."""

    def fn(x1, x2=None, get=None, **kw):
        return model.kernel(x1, x2, get=get)

    return fn
