"""Computing tiles: the one tile function (shared by local devices and Dask workers) and the
local-device executor.

Every tile, wherever it runs, goes through :func:`compute_tile` -> the same ``jax.jit`` of
``model.kernel`` on the same shapes -> the same bits. Diagonal tiles of a symmetric matrix call
``model.kernel(x[rows], None)`` and are symmetrised exactly, :math:`(K + K^\\top)/2`, so that the
assembled matrix is exactly symmetric.

A ragged tile (the last row or column of the grid) whose side is at least ``PAD_FRACTION`` of the
plan's full side is computed padded to the full side -- its last input repeated -- and cropped, so
that a whole evenly cut grid (:func:`infntk.tiling.plan.even_side`) runs two compiled programs
(diagonal and off-diagonal tiles) instead of one more per ragged shape. Every kernel entry is a
function of its own two inputs only, so the crop is exactly the ragged tile's kernel; a smaller
ragged tile keeps its own shape (padding it would waste more work than a compilation costs).

Local execution spreads tiles round-robin over ``jax.local_devices()`` (``jax.device_put`` of the
row blocks onto the device; no ``pmap``) and keeps ``in_flight`` tiles dispatched per device, so
that JAX's asynchronous dispatch overlaps computing the next tiles with copying back and storing
the previous one.
"""

from __future__ import annotations

import collections
import functools

import jax
import numpy as np

from infntk.errors import InfntkError
from infntk.results import canonicalize_get


def x64_enabled() -> bool:
    return jax.dtypes.canonicalize_dtype(np.float64) == np.dtype(np.float64)


def ensure_x64(x64: bool) -> None:
    """Make this process's JAX precision match the caller's (for Dask workers)."""
    if x64 and not x64_enabled():
        jax.config.update("jax_enable_x64", True)


def kernel_call(model, get):
    """``(a, b) -> model.kernel(a, b, get=get)``: the function every tile (and the planner's
    memory probes) compiles."""

    def f(a, b):
        return model.kernel(a, b, get=get)

    return f


@functools.lru_cache(maxsize=32)
def _jitted_cached(model, get):
    return jax.jit(kernel_call(model, get))


def jitted(model, get):
    try:
        return _jitted_cached(model, get)
    except TypeError:  # unhashable model
        return jax.jit(kernel_call(model, get))


PAD_FRACTION = 7 / 8
"""Ragged tiles with at least this fraction of the full side are padded to it (see above)."""


def padded_side(n: int, full) -> int:
    """The side a block of ``n`` rows is computed at, for a plan whose full side is ``full``."""
    return int(full) if full is not None and PAD_FRACTION * full <= n < full else n


def _pad(x, rows: int):
    if x.shape[0] >= rows:
        return x
    return np.concatenate([x, np.repeat(x[-1:], rows - x.shape[0], 0)], 0)


def dispatch(model, get, xa, xb, device=None, pad=(None, None)):
    """Start computing one tile (asynchronously); returns the model's output and the shape it
    was computed at.

    ``pad``: the plan's full tile sides ``(t1, t2)``; ragged blocks close to them are padded
    (:func:`padded_side`), and :func:`collect` crops the result back."""
    fn = jitted(model, get)
    xa = _pad(xa, padded_side(xa.shape[0], pad[0]))
    if xb is not None:
        xb = _pad(xb, padded_side(xb.shape[0], pad[1]))
    computed = (xa.shape[0], (xa if xb is None else xb).shape[0])
    if device is not None:
        xa = jax.device_put(xa, device)
        xb = None if xb is None else jax.device_put(xb, device)
    return fn(xa, xb), computed


def collect(out, get, dtype, diagonal: bool, shape, computed=None) -> dict:
    """Bring one tile's output to host numpy, {name: (t1, t2) array of ``dtype``}; ``computed``:
    the (padded) shape the model was called at, cropped to ``shape``."""
    computed = tuple(shape) if computed is None else tuple(computed)
    single, names = canonicalize_get(get, None, "kernel_matrix")
    res = {}
    for name in names:
        a = out if single else getattr(out, name, None)
        if a is None and isinstance(out, dict):
            a = out.get(name)
        if a is None:
            raise InfntkError(f"kernel_matrix: the model's kernel returned no {name!r}")
        a = np.asarray(a)
        if a.shape != computed:
            raise InfntkError(
                f"kernel_matrix: the model's kernel gave {name!r} of shape {a.shape} for "
                f"{computed[0]} x {computed[1]} inputs; kernel_matrix needs (N1, N2) kernels "
                "(no per-position outputs)"
            )
        a = a[: shape[0], : shape[1]].astype(dtype, copy=False)  # crop a padded tile
        if diagonal:
            a = (a + a.T) / np.asarray(2, dtype)
        res[name] = np.ascontiguousarray(a)
    return res


def compute_tile(model, get, dtype, x64, xa, xb, diagonal, pad=(None, None)):
    """Compute one tile synchronously on this process's default device (Dask task body)."""
    ensure_x64(x64)
    out, computed = dispatch(model, get, xa, xb, pad=pad)
    shape = (xa.shape[0], (xa if xb is None else xb).shape[0])
    return collect(out, get, np.dtype(dtype), diagonal, shape, computed)


def run_local(model, get, dtype, x1, x2, tiles, sink, devices=None, in_flight=2, pad=(None, None)):
    """Compute ``tiles`` on local devices; ``sink(tile, {name: array})`` receives each, in order of
    completion (which is dispatch order here). ``pad``: the plan's full tile sides."""
    devices = list(devices) if devices is not None else jax.local_devices()
    dtype = np.dtype(dtype)
    queue = collections.deque()
    window = max(1, in_flight) * len(devices)
    for k, t in enumerate(tiles):
        xa = x1[t.r0:t.r1]
        xb = None if t.diagonal else (x1 if x2 is None else x2)[t.c0:t.c1]
        queue.append((t, *dispatch(model, get, xa, xb, devices[k % len(devices)], pad)))
        if len(queue) >= window:
            _drain_one(queue, get, dtype, sink)
    while queue:
        _drain_one(queue, get, dtype, sink)


def _drain_one(queue, get, dtype, sink):
    t, out, computed = queue.popleft()
    sink(t, collect(out, get, dtype, t.diagonal, (t.r1 - t.r0, t.c1 - t.c0), computed))
