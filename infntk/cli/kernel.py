"""``infntk kernel``: infinite-width NNGP/NTK kernel matrices of a data set, saved to a file."""

from __future__ import annotations

import os
from typing import Optional

import typer

from infntk.cli.common import (Timer, UsageProblem, check_out, emit_json, err, guarded, load_data,
                               load_model, out, parse_get, parse_ints, progress, setup_jax)

EPILOG = """[b]Examples[/b]

  infntk kernel "Dense(512) >> Relu() >> Dense(1)" --data iris --out iris_kernels.npz

  infntk kernel "Dense(512) >> Erf() >> Dense(1)" --data digits --x2 train.npz --get ntk --out k.npz --force

  infntk kernel "Conv(64, (3, 3), padding='SAME') >> Relu() >> GlobalAvgPool() >> Dense(1)" --data digits --limit 200 --tile 100 --out conv.npz

  infntk kernel "Dense(512) >> Relu() >> Dense(1)" --data big.npy --memory 2GB --out big.zarr   (rerun with --resume after an interruption)

The tile size follows --memory (bytes per device, e.g. 2GB) unless --tile is given; --scheduler sends tiles to a Dask cluster. The output .npz holds one (N1, N2) array per requested kernel (nngp, ntk), the architecture string and the data sources; load it with numpy.load(path) (no pickles).
"""


#: Up to this many kernel entries, inputs without spatial axes are computed in one piece.
DIRECT_ENTRIES = 1_000_000


def _as_arrays(res, get):
    """Normalise a kernel result (one array, or a namedtuple/object with .nngp/.ntk) to numpy."""
    import numpy as np

    if len(get) == 1 and hasattr(res, "shape"):
        return {get[0]: np.asarray(res)}
    return {g: np.asarray(getattr(res, g)) for g in get}


def _check_store(path: str, force: bool, resume: bool) -> None:
    """A .zarr store: resume it with --resume, replace it with --force (only if it is a store)."""
    import shutil

    if not os.path.exists(path):
        return
    if resume:
        return
    if not force:
        raise UsageProblem(f"{path} exists; pass --resume to continue it or --force to replace it")
    if not os.path.isfile(os.path.join(path, "manifest.json")):
        raise UsageProblem(f"{path} exists and is not an infntk kernel store; refusing to delete it")
    shutil.rmtree(path)


def kernel(
    arch: str = typer.Argument(..., help="Architecture string."),
    data: str = typer.Option(..., "--data", "-d",
                             help="x1: digits, iris, wine, breast_cancer, or a .npy/.npz/.csv file."),
    x2: Optional[str] = typer.Option(None, "--x2", help="x2 source (default: x2 = x1)."),
    get: str = typer.Option("nngp,ntk", "--get", "-g", help="Kernels to compute: nngp, ntk or nngp,ntk."),
    out_path: str = typer.Option(..., "--out", "-o",
                                 help="Output: a .npz file, or a .zarr directory (tiled, resumable store)."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite --out if it exists."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted .zarr store."),
    tile: Optional[str] = typer.Option(None, "--tile", help="Tile size, e.g. 1024 or 1024,512 (tiled backend)."),
    memory: Optional[str] = typer.Option(None, "--memory", help="Memory bound for the tiled backend, e.g. 4GB."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (tiled backend)."),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="CSV label column (name or index); it is dropped from x."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="Use only the first N samples of each source."),
    dtype: str = typer.Option("float64", "--dtype", help="float64 or float32."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
):
    """Compute infinite-width NNGP/NTK kernel matrices and save them to an .npz file."""
    with guarded(as_json):
        import numpy as np

        setup_jax(dtype)
        gets = parse_get(get)
        store = None
        if out_path.rstrip("/").endswith(".zarr"):
            store = out_path.rstrip("/")
            _check_store(store, force, resume)
        elif out_path.endswith(".npz"):
            if resume:
                raise UsageProblem("--resume applies to .zarr stores only")
            check_out(out_path, force)
        else:
            raise UsageProblem(f"--out must end in .npz or .zarr, got {out_path!r}")
        tile_v = parse_ints(tile, "--tile")
        if tile_v is not None and len(tile_v) == 1:
            tile_v = tile_v[0]
        desc, model, text = load_model(arch)
        d1 = load_data(data, desc, label_column, limit, quiet=as_json)
        d2 = load_data(x2, desc, label_column, limit, quiet=as_json) if x2 else None
        x1 = d1.x.astype(dtype)
        xb = None if d2 is None else d2.x.astype(dtype)
        if xb is not None and xb.shape[1:] != x1.shape[1:]:
            raise UsageProblem(f"--x2 {x2}: samples have shape {xb.shape[1:]}, "
                               f"but --data {data} has {x1.shape[1:]}")
        n2 = x1.shape[0] if xb is None else xb.shape[0]
        # Small inputs without spatial axes fit in one piece; skip the tile planning.
        small = (x1.ndim == 2 and x1.shape[0] * n2 <= DIRECT_ENTRIES
                 and not (tile_v or memory or scheduler or store))
        with Timer() as timer:
            if small:
                backend = "direct"
                with progress(not as_json) as bar:
                    bar.add_task(f"kernel {','.join(gets)}", total=None)
                    res = model.kernel(x1, xb, get=gets)
            else:  # tiled, memory-bounded (infntk.kernel_matrix)
                from infntk.tiling import kernel_matrix

                backend = "tiled" if scheduler is None else f"dask {scheduler}"
                res = kernel_matrix(model, x1, xb, get=gets, tile=tile_v, memory_budget=memory,
                                    store=store, scheduler=scheduler,
                                    progress=not as_json and err.is_terminal, dtype=dtype)
            if store is not None:  # lazy StoredGram handles: report, do not load
                handles = {g: (res if len(gets) == 1 else getattr(res, g)) for g in gets}
                shape = tuple(getattr(next(iter(handles.values())), "shape", ()))
                summary = {}
            else:
                arrays = _as_arrays(res, gets)
        if store is None:
            for g, a in arrays.items():
                if not np.all(np.isfinite(a)):
                    raise FloatingPointError(f"{g} kernel has non-finite entries")
            tmp = out_path[:-4] + ".partial.npz"
            np.savez(tmp, **arrays, arch=np.array(text), data=np.array(data),
                     x2=np.array(x2 or data))
            os.replace(tmp, out_path)
            shape = next(iter(arrays.values())).shape
            summary = {g: {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()),
                           "diag_mean": (float(np.mean(np.diagonal(a)))
                                         if a.shape[0] == a.shape[1] else None)}
                       for g, a in arrays.items()}
        if as_json:
            emit_json({"ok": True, "arch": text, "data": data, "x2": x2, "out": out_path,
                       "get": list(gets), "shape": list(shape), "dtype": dtype, "backend": backend,
                       "seconds": round(timer.seconds, 3), "summary": summary})
            return
        out.print(f"{text}\n{','.join(gets)} kernel {shape[0]} x {shape[1]} ({dtype}, {backend}) "
                  f"in {timer.seconds:.2f}s -> {out_path}", markup=False)
        for g, s in summary.items():
            diag = f", mean diagonal {s['diag_mean']:.4g}" if s["diag_mean"] is not None else ""
            out.print(f"  {g}: min {s['min']:.4g}, max {s['max']:.4g}, mean {s['mean']:.4g}{diag}",
                      markup=False)
