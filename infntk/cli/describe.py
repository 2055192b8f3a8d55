"""``infntk describe``: layer table (output shapes, parameter counts) and the kernel recursion."""

from __future__ import annotations

from typing import Optional

import typer

from infntk.cli.common import emit_json, guarded, load_model, needs_images, out, parse_ints

EPILOG = """[b]Examples[/b]

  infntk describe "Dense(512, W_std=1.5) >> Relu() >> Dense(1)"

  infntk describe "Dense(512) >> Erf() >> Dense(1)" --input-shape 4 --width 2048

  infntk describe "Conv(64, (3, 3), padding='SAME') >> (Relu() + Identity()) >> GlobalAvgPool() >> Dense(1)" --input-shape 8,8,1

  infntk describe "Dense(512) >> Relu() >> Dense(1)" --latex --json
"""


def _flatten(desc, op):
    from infntk.arch import Compose

    if isinstance(desc, Compose) and desc.op == op:
        return _flatten(desc.left, op) + _flatten(desc.right, op)
    return [desc]


def _shape_params(layer, in_shape):
    """(output shape, parameter count) without allocating: ``init`` under ``jax.eval_shape``."""
    import jax
    import numpy as np

    box = {}

    def f(key):
        shape, params = layer.init(key, in_shape)
        box["shape"] = shape
        return params

    params = jax.eval_shape(f, jax.random.PRNGKey(0))
    n = sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(params)
            if hasattr(leaf, "shape"))
    return tuple(box["shape"]), n


def layer_rows(desc, in_shape, depth=0):
    """Rows (depth, text, output shape, params) for the table; returns (rows, output shape)."""
    from infntk.arch import LayerCall, build, to_string

    rows = []
    if isinstance(desc, LayerCall):
        shape, n = _shape_params(build(desc), in_shape)
        return [(depth, to_string(desc), shape, n)], shape
    if desc.op == ">>":
        shape = in_shape
        for part in _flatten(desc, ">>"):
            r, shape = layer_rows(part, shape, depth)
            rows += r
        return rows, shape
    branches = _flatten(desc, desc.op)
    shape, n = _shape_params(build(desc), in_shape)
    label = {"+": "sum of", "|": "concatenation of"}[desc.op]
    rows.append((depth, f"{label} {len(branches)} branches", shape, n))
    for i, b in enumerate(branches, 1):
        r, bshape = layer_rows(b, in_shape, depth + 2)
        if len(r) > 1:  # a chain: a header row, then its layers
            total = _shape_params(build(b), in_shape)[1]
            rows.append((depth + 1, f"branch {i}", bshape, total))
            rows += r
        else:
            rows += [(depth + 1, *r[0][1:])]
    return rows, shape


def _fmt_shape(shape):
    return "(" + ", ".join(["N"] + [str(s) for s in shape[1:]]) + ")"


def recursion_text(model, latex: bool, input_shape) -> str:
    """The model's kernel recursion (``model.recursion()``) as text or LaTeX."""
    rec = model.recursion(input_shape=input_shape)
    return rec.latex() if latex else rec.text()


def describe(
    arch: str = typer.Argument(..., help="Architecture string, e.g. \"Dense(512) >> Relu() >> Dense(1)\"."),
    input_shape: Optional[str] = typer.Option(
        None, "--input-shape", "-i",
        help="Shape of one input (no batch), e.g. 64 or 8,8,1. Default: the digits data "
             "(64 features; 8,8,1 images for convolutional models)."),
    width: Optional[int] = typer.Option(
        None, "--width", "-w", min=1,
        help="Set the width of every hidden Dense/Conv (the readout keeps its width)."),
    latex: bool = typer.Option(False, "--latex", help="Print the kernel recursion as LaTeX."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
):
    """Show the layers of an architecture: output shapes, parameter counts, kernel recursion."""
    with guarded(as_json):
        desc, model, text = load_model(arch, width)
        shape = parse_ints(input_shape, "--input-shape")
        default = shape is None
        if default:
            shape = (8, 8, 1) if needs_images(desc) else (64,)
        full = (1,) + shape
        rows, out_shape = layer_rows(desc, full)
        total = _shape_params(model, full)[1]
        rec = recursion_text(model, latex, full)
        if as_json:
            emit_json({
                "ok": True, "arch": text, "input_shape": list(shape),
                "output_shape": ["N", *out_shape[1:]], "total_params": total,
                "layers": [{"depth": d, "layer": t, "output_shape": ["N", *s[1:]], "params": n}
                           for d, t, s, n in rows],
                "recursion": rec, "recursion_format": "latex" if latex else "text",
            })
            return
        from rich.table import Table

        title = f"{text}\ninput {_fmt_shape(full)}" + (" (default; set --input-shape)" if default else "")
        table = Table(title=title, title_justify="left")
        table.add_column("#", justify="right", style="dim")
        table.add_column("layer")
        table.add_column("output shape")
        table.add_column("params", justify="right")
        for i, (d, t, s, n) in enumerate(rows):
            table.add_row(str(i), "  " * d + t, _fmt_shape(s), f"{n:,}")
        table.add_section()
        table.add_row("", "total", _fmt_shape(out_shape), f"{total:,}")
        out.print(table)
        out.print("\n[b]kernel recursion[/b]" + (" (LaTeX)" if latex else ""))
        out.print(rec, markup=False)
