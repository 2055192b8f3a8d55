"""Computing tiles: the one tile function (shared by local devices and Dask workers) and the
local-device executor.

Every tile, wherever it runs, goes through :func:`compute_tile` -> the same ``jax.jit`` of
``model.kernel`` on the same shapes -> the same bits. Diagonal tiles of a symmetric matrix call
``model.kernel(x[rows], None)`` and are symmetrised exactly, :math:`(K + K^\\top)/2`, so that the
assembled matrix is exactly symmetric.

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


def x64_enabled() -> bool:
    return jax.dtypes.canonicalize_dtype(np.float64) == np.dtype(np.float64)


def ensure_x64(x64: bool) -> None:
    """Make this process's JAX precision match the caller's (for Dask workers)."""
    if x64 and not x64_enabled():
        jax.config.update("jax_enable_x64", True)


def _names(get):
    return (get,) if isinstance(get, str) else tuple(get)


def _kernel_call(model, get):
    def f(a, b):
        return model.kernel(a, b, get=get)

    return f


@functools.lru_cache(maxsize=32)
def _jitted_cached(model, get):
    return jax.jit(_kernel_call(model, get))


def jitted(model, get):
    try:
        return _jitted_cached(model, get)
    except TypeError:  # unhashable model
        return jax.jit(_kernel_call(model, get))


def dispatch(model, get, xa, xb, device=None):
    """Start computing one tile (asynchronously); returns the model's output."""
    fn = jitted(model, get)
    if device is not None:
        xa = jax.device_put(xa, device)
        xb = None if xb is None else jax.device_put(xb, device)
    return fn(xa, xb)


def collect(out, get, dtype, diagonal: bool, shape) -> dict:
    """Bring one tile's output to host numpy, {name: (t1, t2) array of ``dtype``}."""
    names = _names(get)
    res = {}
    for name in names:
        a = out if isinstance(get, str) else getattr(out, name, None)
        if a is None and isinstance(out, dict):
            a = out.get(name)
        if a is None:
            raise InfntkError(f"kernel_matrix: the model's kernel returned no {name!r}")
        a = np.asarray(a)
        if a.shape != tuple(shape):
            raise InfntkError(
                f"kernel_matrix: the model's kernel gave {name!r} of shape {a.shape} for a tile of "
                f"{tuple(shape)}; kernel_matrix needs (N1, N2) kernels (no per-position outputs)"
            )
        a = a.astype(dtype, copy=False)
        if diagonal:
            a = (a + a.T) / np.asarray(2, dtype)
        res[name] = np.ascontiguousarray(a)
    return res


def compute_tile(model, get, dtype, x64, xa, xb, diagonal):
    """Compute one tile synchronously on this process's default device (Dask task body)."""
    ensure_x64(x64)
    out = dispatch(model, get, xa, xb)
    shape = (xa.shape[0], (xa if xb is None else xb).shape[0])
    return collect(out, get, np.dtype(dtype), diagonal, shape)


def run_local(model, get, dtype, x1, x2, tiles, sink, devices=None, in_flight=2):
    """Compute ``tiles`` on local devices; ``sink(tile, {name: array})`` receives each, in order of
    completion (which is dispatch order here)."""
    devices = list(devices) if devices is not None else jax.local_devices()
    dtype = np.dtype(dtype)
    queue = collections.deque()
    window = max(1, in_flight) * len(devices)
    for k, t in enumerate(tiles):
        xa = x1[t.r0:t.r1]
        xb = None if t.diagonal else (x1 if x2 is None else x2)[t.c0:t.c1]
        queue.append((t, dispatch(model, get, xa, xb, devices[k % len(devices)])))
        if len(queue) >= window:
            _drain_one(queue, get, dtype, sink)
    while queue:
        _drain_one(queue, get, dtype, sink)


def _drain_one(queue, get, dtype, sink):
    t, out = queue.popleft()
    sink(t, collect(out, get, dtype, t.diagonal, (t.r1 - t.r0, t.c1 - t.c0)))
