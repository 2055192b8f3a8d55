r"""``kernel_matrix``: a large NNGP/NTK Gram matrix, computed in tiles under a memory budget.

.. math::
   K_{ab} = \mathcal{K}(x^{(1)}_a, x^{(2)}_b),\qquad K = [K_{IJ}]_{I,J}, \quad
   K_{IJ} = \texttt{model.kernel}(x^{(1)}_I, x^{(2)}_J)

Each tile :math:`K_{IJ}` is an independent call of ``model.kernel`` on two row blocks; when
``x2 is None`` only :math:`I \le J` is computed and :math:`K_{JI} = K_{IJ}^\top` is mirrored.
Tiles run on all local JAX devices, or on a Dask cluster, and optionally go to a resumable on-disk
store (:mod:`infntk.tiling.store`).

Example:
    >>> import numpy as np
    >>> from infntk.tiling.testing import ArcCosine
    >>> x = np.random.default_rng(0).normal(size=(50, 3))
    >>> k = kernel_matrix(ArcCosine(), x, tile=16, progress=False)
    >>> k.nngp.shape, bool(np.allclose(k.nngp, ArcCosine().kernel(x, None, get="nngp")))
    ((50, 50), True)
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import time

import jax
import numpy as np

from infntk.errors import InfntkError
from infntk.layers.base import Layer
from infntk.results import canonicalize_get, package
from infntk.tiling import store as store_mod
from infntk.tiling.gram import StoredGram
from infntk.tiling.local import run_local, x64_enabled
from infntk.tiling.plan import plan_tiles


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("infntk")
    except Exception:  # noqa: BLE001 -- not installed (e.g. run from a checkout)
        import infntk

        return str(getattr(infntk, "__version__", "unknown"))


def _resolve_dtype(dtype, x1, x2):
    if dtype is None:
        dt = np.result_type(x1.dtype, *(() if x2 is None else (x2.dtype,)))
        if not np.issubdtype(dt, np.floating):
            dt = np.dtype(np.float64)
        dt = np.dtype(jax.dtypes.canonicalize_dtype(dt))
    else:
        try:
            dt = np.dtype(dtype)
        except TypeError as e:
            raise InfntkError(f"kernel_matrix: dtype {dtype!r} is not a dtype") from e
        if not np.issubdtype(dt, np.floating):
            raise InfntkError(f"kernel_matrix: dtype must be floating, got {dt}")
        if dt.itemsize == 8 and not x64_enabled():
            raise InfntkError(
                "kernel_matrix: dtype float64 needs jax_enable_x64 "
                '(jax.config.update("jax_enable_x64", True))'
            )
    return dt


def _as_inputs(x1, x2, dt):
    x1 = np.asarray(x1)
    for name, x in (("x1", x1), ("x2", x2)):
        if x is not None and np.iscomplexobj(x):
            raise InfntkError(f"kernel_matrix: {name} is complex ({np.asarray(x).dtype}); the "
                              "kernels are defined for real inputs.")
    if x1.ndim < 2 or x1.shape[0] == 0:
        raise InfntkError(f"kernel_matrix: x1 must be (N, features...) with N >= 1, got shape {x1.shape}")
    if x2 is not None:
        x2 = np.asarray(x2)
        if x2.ndim != x1.ndim or x2.shape[1:] != x1.shape[1:] or x2.shape[0] == 0:
            raise InfntkError(f"kernel_matrix: x2 of shape {x2.shape} does not match x1 of shape {x1.shape}")
        x2 = np.ascontiguousarray(x2, dtype=dt)
    for name, x in (("x1", x1), ("x2", x2)):
        if x is None:
            continue
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        if bad:
            raise InfntkError(f"kernel_matrix: {name} contains {bad} NaN or infinite value(s).")
    return np.ascontiguousarray(x1, dtype=dt), x2


def _check_tile(model, get, x1, x2, t, blocks) -> None:
    """Refuse a tile holding a non-finite value before it is written or recorded as finished,
    naming the first layer that overflowed where the model is an infntk layer."""
    bad = [n for n, b in blocks.items() if not np.all(np.isfinite(b))]
    if not bad:
        return
    if isinstance(model, Layer):
        from ..finite import diagnose
        cols = None if (x2 is None and t.i == t.j) else (x1 if x2 is None else x2)[t.c0:t.c1]
        diagnose(model, x1[t.r0:t.r1], cols, get)
    raise InfntkError(f"kernel_matrix: tile ({t.i}, {t.j}) (rows {t.r0}:{t.r1}, columns "
                      f"{t.c0}:{t.c1}) has non-finite {', '.join(bad)} values; it is not recorded.")


@contextlib.contextmanager
def _progress_bar(enabled, total, done):
    """Yields ``advance(entries)``; a rich progress bar on stderr when enabled and rich is there."""
    bar = None
    if enabled:
        try:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            bar = Progress(
                TextColumn("[bold]kernel_matrix[/] tiles"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                console=Console(stderr=True),
            )
        except ImportError:
            bar = None
    t0, count = time.perf_counter(), [0]
    if bar is None:
        yield lambda n: None
        return
    with bar:
        task = bar.add_task("tiles", total=total, completed=done, rate="")

        def advance(n):
            count[0] += n
            rate = count[0] / max(time.perf_counter() - t0, 1e-9)
            bar.update(task, advance=1, rate=f"{rate:,.0f} entries/s")

        yield advance


def kernel_matrix(
    model, x1, x2=None, get=("nngp", "ntk"), tile=None, memory_budget=None, store=None,
    scheduler=None, progress=True, dtype=None, *, load=False, verify=True, devices=None,
):
    """Gram matrix ``model.kernel(x1, x2, get)`` computed tile by tile.

    Args:
      model: anything with ``kernel(x1, x2=None, get=...)`` returning (N1, N2) kernels (an infntk
        model) whose every entry depends on its own two inputs only: tiles are computed
        independently (ragged ones padded, see :mod:`infntk.tiling.local`). With ``store`` its
        ``repr`` must be deterministic (frozen dataclasses are).
      x1, x2: inputs (N1, ...) and (N2, ...); ``x2=None`` means x1 and computes only the upper
        triangle of tiles, mirroring the rest.
      get: a kernel name (the result is one matrix), a tuple of names (a named tuple ``Gram`` of
        matrices) or ``None`` (``('nngp', 'ntk')``); :func:`infntk.results.canonicalize_get`.
      tile: tile side (int) or (t1, t2); default: the largest that fits ``memory_budget``
        (see :mod:`infntk.tiling.plan`). Resuming a store without ``tile`` adopts the stored one.
      memory_budget: bytes per device (int, or '512MB', '2GiB') for the working memory of the
        tiles in flight (XLA's buffers); default: half the device memory on accelerators, a
        quarter of the RAM (at most 4 GiB) on CPU. The process holds more than this: the JAX
        runtime and each compiled tile program (at most two with an evenly cut grid); measured
        figures for the digits CNN-GAP are in ``benchmarks/results/scale_digits.md``.
      store: a directory: results go to a chunked zarr store there, tile by tile, atomically;
        rerunning the same call resumes, skipping verified finished tiles. A store made for another
        model/inputs/get/dtype/tile is refused with :class:`InfntkError` naming the difference.
      scheduler: a ``distributed.Client`` or scheduler address: tiles run as Dask tasks.
      progress: show a rich progress bar (stderr).
      dtype: floating dtype of the computation and result (default: that of the inputs).
      load: with ``store``, return numpy arrays instead of lazy :class:`StoredGram` handles.
      verify: on resume, re-check every finished tile's sha256 against the stored bytes.
      devices: local devices to use (default ``jax.local_devices()``).

    Returns:
      numpy arrays without ``store``; with ``store``, :class:`StoredGram` handles over the zarr
      arrays (``.array``; lazy, with a blocked ``matvec``) unless ``load=True``. One matrix when
      ``get`` is a string, else a namedtuple with one field per name.
    """
    single, names = canonicalize_get(get, None, "kernel_matrix")  # names the model checks itself
    get_arg = names[0] if single else names
    dt = _resolve_dtype(dtype, np.asarray(x1), None if x2 is None else np.asarray(x2))
    x1, x2 = _as_inputs(x1, x2, dt)
    if not callable(getattr(model, "kernel", None)):
        raise InfntkError(f"kernel_matrix: {type(model).__name__} has no kernel(x1, x2, get) method")

    if scheduler is not None:
        from infntk.tiling.distributed import n_workers

        workers = n_workers(scheduler)
    else:
        devices = list(devices) if devices is not None else jax.local_devices()
        workers = len(devices)

    explicit = tile is not None
    if store is not None and tile is None:
        mpath = pathlib.Path(store) / store_mod.MANIFEST
        if mpath.exists():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                tile = tuple(int(v) for v in json.loads(mpath.read_text())["tile"])
    plan = plan_tiles(model, x1, x2, get_arg, tile=tile, memory_budget=memory_budget, dtype=dt, workers=workers)

    tiles = plan.tiles()
    run_id = store_mod.new_run_id()
    if store is not None:
        manifest = {
            "model": store_mod.describe_model(model),
            "x1": store_mod.describe_array(x1),
            "x2": None if x2 is None else store_mod.describe_array(x2),
            "symmetric": plan.symmetric,
            "get": list(names),
            "dtype": dt.str,
            "shape": list(plan.shape),
            "tile": list(plan.tile),
            "infntk_version": _version(),
            "format": store_mod.FORMAT,
        }
        st = store_mod.TileStore.open_or_create(store, manifest, explicit_tile=explicit)
        finished = st.finished(verify=verify)
        todo = [t for t in tiles if (t.i, t.j) not in finished]

        def write(t, blocks):
            st.write_tile(t, blocks, run_id)
    else:
        out = {n: np.empty(plan.shape, dt) for n in names}
        todo = tiles

        def write(t, blocks):
            for n in names:
                out[n][t.r0:t.r1, t.c0:t.c1] = blocks[n]
                if t.mirror:
                    out[n][t.c0:t.c1, t.r0:t.r1] = blocks[n].T

    with _progress_bar(progress, len(tiles), len(tiles) - len(todo)) as advance:
        def sink(t, blocks):
            _check_tile(model, get_arg, x1, x2, t, blocks)
            write(t, blocks)
            advance(t.entries)

        if scheduler is not None:
            from infntk.tiling.distributed import run_dask

            run_dask(scheduler, model, get_arg, dt, x1, x2, todo, sink, run_id, pad=plan.tile)
        else:
            run_local(model, get_arg, dt, x1, x2, todo, sink, devices=devices, pad=plan.tile)

    if store is not None:
        res = {n: (np.asarray(st.arrays[n][...]) if load else StoredGram(st.arrays[n])) for n in names}
    else:
        res = out
    return package(res, single, names, "Gram")


__all__ = ["kernel_matrix"]
