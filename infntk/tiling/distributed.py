"""Computing tiles on a Dask distributed cluster.

``scheduler`` is a ``distributed.Client`` or a scheduler address (``"tcp://host:8786"``; a client
is opened and closed here). The row blocks of the inputs are put on the cluster once, as tasks
(so that the scheduler can recompute them if the worker holding them dies -- scattered data
could not be); each tile is one task running :func:`infntk.tiling.local.compute_tile`, the very
function the local executor uses, so a tile's bits do not depend on where it ran. The model and
the blocks travel by Dask's own serialisation between the caller's processes; nothing is ever
unpickled from the store.

The *client* writes each finished tile into the store as results arrive (data, then completion
record), so the store's atomicity does not depend on the workers. When a worker dies, Dask
reschedules its tasks on the others (up to ``distributed.scheduler.allowed-failures`` times per
task); a tile that still fails raises, and rerunning the call resumes from the store.
"""

from __future__ import annotations

import contextlib

import numpy as np

from infntk.errors import InfntkError
from infntk.tiling.local import compute_tile, x64_enabled


def _block(x):
    return x


@contextlib.contextmanager
def connect(scheduler):
    try:
        from distributed import Client
    except ImportError as e:  # pragma: no cover - optional dependency
        raise InfntkError("kernel_matrix: scheduler= needs dask[distributed] (pip install infntk[store])") from e
    if isinstance(scheduler, Client):
        yield scheduler
    elif isinstance(scheduler, str):
        client = Client(scheduler, set_as_default=False)
        try:
            yield client
        finally:
            client.close()
    else:
        raise InfntkError(
            f"kernel_matrix: scheduler must be a dask distributed Client or an address string, got {scheduler!r}"
        )


def n_workers(scheduler) -> int:
    with connect(scheduler) as client:
        return max(1, len(client.scheduler_info().get("workers", {})))


def run_dask(scheduler, model, get, dtype, x1, x2, tiles, sink, run_id, pad=(None, None)):
    """Compute ``tiles`` as Dask tasks; ``sink(tile, {name: array})`` in order of completion."""
    from distributed import as_completed

    if not tiles:
        return
    dtype = np.dtype(dtype).str
    x64 = x64_enabled()
    with connect(scheduler) as client:
        rows, cols = {}, {}

        def block(cache, x, lo, hi, tag):
            if (lo, hi) not in cache:
                cache[(lo, hi)] = client.submit(
                    _block, np.ascontiguousarray(x[lo:hi]), key=f"infntk-{tag}-{lo}-{hi}-{run_id}",
                    pure=False,
                )
            return cache[(lo, hi)]

        futures = {}
        for t in tiles:
            xa = block(rows, x1, t.r0, t.r1, "x1")
            if t.diagonal:
                xb = None
            elif x2 is None:
                xb = block(rows, x1, t.c0, t.c1, "x1")
            else:
                xb = block(cols, x2, t.c0, t.c1, "x2")
            fut = client.submit(
                compute_tile, model, get, dtype, x64, xa, xb, t.diagonal, tuple(pad),
                key=f"infntk-tile-{t.name}-{run_id}", pure=False,
            )
            futures[fut.key] = (fut, t)
        try:
            for fut in as_completed([f for f, _ in futures.values()], loop=client.loop):
                tile = futures[fut.key][1]
                sink(tile, fut.result())
                fut.release()
        finally:
            for f, _ in futures.values():
                f.cancel()
            for f in list(rows.values()) + list(cols.values()):
                f.cancel()
