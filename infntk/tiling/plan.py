r"""Tile planning: how big may one tile of a Gram matrix be under a memory budget?

A Gram matrix :math:`K \in \mathbb{R}^{N_1 \times N_2}` is cut into a grid of tiles of
:math:`t_1 \times t_2` entries (the last row/column of tiles may be smaller). Computing one tile
calls ``model.kernel(x1[rows], x2[cols])``; its working memory is modelled as

.. math::
   M(t_1, t_2) = \alpha\, t_1 t_2 + \beta\, (t_1 + t_2) + \gamma,

bytes: :math:`\alpha` per pair of inputs (the kernel state, e.g. the :math:`(HW)^2` spatial
covariance of a convolutional kernel), :math:`\beta` per input row (the inputs and their variances),
:math:`\gamma` fixed. The coefficients come from, in order of preference:

1. ``source='hint'``: the model's own ``model.kernel_bytes_per_pair(input_shape)`` (``input_shape``
   is the shape of *one* example, e.g. ``(8, 8, 1)``), giving :math:`\alpha`; :math:`\beta` is the
   bytes of one input row, :math:`\gamma = 0`.
2. ``source='compiled'``: XLA's memory analysis of ``jax.jit(model.kernel)`` compiled for square
   probe tiles of :math:`n = p, 2p, 4p` rows (arguments + outputs + temporaries, or the reported peak
   if larger), fitted by least squares to :math:`\alpha n^2 + 2\beta n + \gamma`.
3. ``source='jaxpr'`` (when the backend reports no memory analysis): the same fit on an upper bound
   read from ``jax.make_jaxpr`` -- inputs + outputs + every intermediate (nested jaxprs included),
   as if nothing were ever freed.

With ``in_flight`` tiles live per device (dispatch of the next tile overlaps the transfer of the
previous one) the tile side :math:`t` is the largest with
:math:`\text{in\_flight} \cdot M(t, t) \le \text{budget}`, shrunk, with several workers, until
there are at least ``TILES_PER_WORKER`` (4) tiles per worker. The grid is then cut evenly
(:func:`even_side`): the fewest tiles of side at most :math:`t`, all of nearly the same size, so
no thin ragged strip of tiles costs a full tile's overheads while the others are larger than they
need be.

Example:
    >>> from infntk.tiling.testing import ArcCosine
    >>> import numpy as np
    >>> p = plan_tiles(ArcCosine(), np.zeros((1000, 10)), None, memory_budget="4MB")
    >>> p.tile[0] < 1000 and p.symmetric
    True
"""

from __future__ import annotations

import dataclasses
import math
import os
import re

import jax
import numpy as np

from infntk.errors import InfntkError
from infntk.results import canonicalize_get
from infntk.tiling.local import kernel_call

_UNITS = {
    "": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}


def parse_bytes(budget) -> int:
    """``1_000_000``, ``"512MB"``, ``"2GiB"`` -> bytes (int)."""
    if isinstance(budget, (int, np.integer)) and not isinstance(budget, bool):
        value = int(budget)
    elif isinstance(budget, float) and math.isfinite(budget):
        value = int(budget)
    elif isinstance(budget, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", budget)
        if not m or m.group(2).lower() not in _UNITS:
            raise InfntkError(
                f"kernel_matrix: memory_budget {budget!r} is not a size like 512MB or 2GiB"
            )
        value = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    else:
        raise InfntkError(f"kernel_matrix: memory_budget must be bytes or a string like '2GiB', got {budget!r}")
    if value <= 0:
        raise InfntkError(f"kernel_matrix: memory_budget must be positive, got {budget!r}")
    return value


def default_budget(device=None) -> int:
    """Half the device's memory limit when the backend reports one (GPU/TPU); on CPU a quarter of
    the physical memory, at most 4 GiB."""
    device = device if device is not None else jax.local_devices()[0]
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001 -- backends without memory stats
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"] * 0.5)
    try:
        phys = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        phys = 8 * 2**30
    return int(min(phys // 4, 4 * 2**30))


@dataclasses.dataclass(frozen=True)
class MemoryModel:
    """:math:`M(t_1, t_2) = \\alpha t_1 t_2 + \\beta (t_1 + t_2) + \\gamma` bytes for one tile."""

    per_pair: float
    per_row: float
    fixed: float
    source: str

    def bytes(self, t1: int, t2: int) -> float:
        return self.per_pair * t1 * t2 + self.per_row * (t1 + t2) + self.fixed

    def max_square(self, budget: float) -> int:
        """Largest t with M(t, t) <= budget (0 if none)."""
        a, b, c = self.per_pair, 2 * self.per_row, self.fixed - budget
        if c > 0:
            return 0
        if a <= 0:
            return int(-c // b) if b > 0 else 2**62
        t = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
        t = int(math.floor(t))
        while t > 0 and self.bytes(t, t) > budget:
            t -= 1
        return t


def _fit(sizes, mems, out_pair_bytes, row_bytes, source):
    n = np.asarray(sizes, float)
    a = np.stack([n * n, 2 * n, np.ones_like(n)], 1)
    coef, *_ = np.linalg.lstsq(a, np.asarray(mems, float), rcond=None)
    alpha, beta, gamma = (max(float(v), 0.0) for v in coef)
    # Never below what is certainly there: the outputs and the inputs themselves.
    alpha = max(alpha, out_pair_bytes)
    beta = max(beta, row_bytes)
    # The fit must not under-estimate any probe it was made from.
    scale = max(1.0, *(m / (alpha * s * s + 2 * beta * s + gamma) for s, m in zip(sizes, mems)))
    return MemoryModel(alpha * scale, beta * scale, gamma * scale, source)


def estimate_memory(model, x1, x2, get, dtype, probe: int = 8) -> MemoryModel:
    """Fit the per-tile memory model of ``model.kernel`` (see the module docstring)."""
    dtype = np.dtype(dtype)
    names = canonicalize_get(get, None, "kernel_matrix")[1]
    feat = tuple(x1.shape[1:])
    row_bytes = int(np.prod(feat, dtype=np.int64)) * dtype.itemsize
    out_pair = len(names) * dtype.itemsize
    hint = getattr(model, "kernel_bytes_per_pair", None)
    if callable(hint):
        per_pair = float(hint(feat))
        if not per_pair > 0:
            raise InfntkError(
                f"kernel_matrix: {type(model).__name__}.kernel_bytes_per_pair{feat} returned "
                f"{per_pair!r}; expected a positive number of bytes"
            )
        return MemoryModel(max(per_pair, out_pair), row_bytes, 0.0, "hint")
    sizes = [probe, 2 * probe, 4 * probe]
    fn = jax.jit(kernel_call(model, get))
    mems, source = [], "compiled"
    for n in sizes:
        a = jax.ShapeDtypeStruct((n,) + feat, dtype)
        mem = _compiled_bytes(fn, a)
        if not mem:
            source = "jaxpr"
            mem = _jaxpr_bound(fn, a)
        mems.append(mem)
    return _fit(sizes, mems, out_pair, row_bytes, source)


def _compiled_bytes(fn, a):
    """XLA's memory analysis of ``fn(a, a)``: arguments + outputs + temporaries (or the reported
    peak if larger); None where the backend gives none."""
    try:
        stats = fn.lower(a, a).compile().memory_analysis()
    except Exception:  # noqa: BLE001 -- backends without memory analysis
        return None
    if isinstance(stats, (list, tuple)):  # some jax versions: one entry per device
        stats = stats[0] if stats else None
    if stats is None:
        return None
    total = (
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        + stats.temp_size_in_bytes
        - getattr(stats, "alias_size_in_bytes", 0)
    )
    return max(total, getattr(stats, "peak_memory_in_bytes", 0) or 0) or None


def _sub_jaxprs(eqn):
    """Jaxprs nested in an equation's parameters (jit, scan, cond branches, custom rules...)."""
    for v in eqn.params.values():
        for u in v if isinstance(v, (list, tuple)) else (v,):
            inner = getattr(u, "jaxpr", u)  # ClosedJaxpr -> Jaxpr
            if hasattr(inner, "eqns"):
                yield inner


def _all_vars(jaxpr, nbytes) -> int:
    total = 0
    for e in jaxpr.eqns:
        total += sum(nbytes(v) for v in e.outvars)
        for sub in _sub_jaxprs(e):
            total += _all_vars(sub, nbytes)
    return total


def _jaxpr_bound(fn, a) -> int:
    jaxpr = jax.make_jaxpr(fn)(a, a)

    def nbytes(v):
        aval = getattr(v, "aval", None)
        shape = getattr(aval, "shape", None)
        if shape is None:
            return 0
        return int(np.prod(shape, dtype=np.int64)) * np.dtype(aval.dtype).itemsize

    io = sum(nbytes(v) for v in jaxpr.jaxpr.invars) + sum(nbytes(v) for v in jaxpr.jaxpr.outvars)
    return io + _all_vars(jaxpr.jaxpr, nbytes)


@dataclasses.dataclass(frozen=True)
class Tile:
    """Tile ``(i, j)`` of the grid: rows ``r0:r1`` of x1, columns ``c0:c1`` of x2.

    In a symmetric plan only ``i <= j`` tiles are computed; an off-diagonal one is also written
    transposed at ``(j, i)`` (``mirror``); a diagonal one calls ``model.kernel(x[rows], None)``."""

    i: int
    j: int
    r0: int
    r1: int
    c0: int
    c1: int
    symmetric: bool = False

    @property
    def diagonal(self) -> bool:
        return self.symmetric and self.i == self.j

    @property
    def mirror(self) -> bool:
        return self.symmetric and self.i != self.j

    @property
    def entries(self) -> int:
        n = (self.r1 - self.r0) * (self.c1 - self.c0)
        return 2 * n if self.mirror else n

    @property
    def name(self) -> str:
        return f"r{self.i}_c{self.j}"


@dataclasses.dataclass(frozen=True)
class TilePlan:
    """The grid: ``shape`` (N1, N2) cut into ``tile`` (t1, t2) blocks; ``memory`` says why."""

    shape: tuple
    tile: tuple
    symmetric: bool
    memory: MemoryModel | None = None
    budget: int | None = None

    @property
    def grid(self) -> tuple:
        return tuple(-(-n // t) for n, t in zip(self.shape, self.tile))

    def tiles(self) -> list:
        (n1, n2), (t1, t2) = self.shape, self.tile
        g1, g2 = self.grid
        return [
            Tile(i, j, i * t1, min((i + 1) * t1, n1), j * t2, min((j + 1) * t2, n2), self.symmetric)
            for i in range(g1)
            for j in range(g2)
            if not self.symmetric or i <= j
        ]


TILES_PER_WORKER = 4
"""With several workers (devices or Dask workers), tiles are shrunk until each has at least this
many: with one tile per worker, a symmetric grid's half-cost diagonal tiles leave workers idle."""


def _count(shape, t, symmetric):
    g1, g2 = -(-shape[0] // t), -(-shape[1] // t)
    return g1 * (g1 + 1) // 2 if symmetric else g1 * g2


def plan_tiles(
    model, x1, x2=None, get=("nngp", "ntk"), tile=None, memory_budget=None, dtype=None,
    workers: int = 1, in_flight: int = 2,
) -> TilePlan:
    """Choose the tile grid of ``kernel_matrix`` (see the module docstring)."""
    symmetric = x2 is None
    n1 = x1.shape[0]
    n2 = n1 if symmetric else x2.shape[0]
    shape = (int(n1), int(n2))
    dtype = np.dtype(dtype if dtype is not None else x1.dtype)
    if tile is not None:
        t = (tile, tile) if isinstance(tile, (int, np.integer)) else tuple(tile)
        if len(t) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in t):
            raise InfntkError(f"kernel_matrix: tile must be a positive int or (t1, t2), got {tile!r}")
        if symmetric and t[0] != t[1]:
            raise InfntkError(f"kernel_matrix: a symmetric Gram matrix (x2=None) needs square tiles, got {tile!r}")
        t = (min(int(t[0]), n1), min(int(t[1]), n2))
        return TilePlan(shape, t, symmetric)
    budget = parse_bytes(memory_budget) if memory_budget is not None else default_budget()
    mem = estimate_memory(model, x1, x2 if x2 is not None else x1, get, dtype)
    t = mem.max_square(budget / max(in_flight, 1))
    if t < 1:
        raise InfntkError(
            f"kernel_matrix: memory_budget of {budget} bytes is too small: even a 1x1 tile needs "
            f"about {in_flight} x {mem.bytes(1, 1):.0f} bytes (memory model from {mem.source})"
        )
    t = min(t, max(n1, n2))
    # several workers: enough tiles per worker that the last ones to finish keep all of them busy
    want = workers if workers <= 1 else TILES_PER_WORKER * workers
    while t > 1 and _count(shape, t, symmetric) < want:
        t = min(t - 1, max(-(-n // (-(-n // t) + 1)) for n in shape))  # one more row/column of tiles
    return TilePlan(shape, (even_side(n1, t), even_side(n2, t)), symmetric, mem, budget)


def even_side(n: int, t: int) -> int:
    r"""The tile side that cuts ``n`` rows into as many tiles as side ``t`` does, as evenly as
    possible: :math:`s = \lceil n / g \rceil` with :math:`g = \lceil n / t \rceil`, so
    :math:`s \le t`, and the last tile is fewer than ``g`` rows short of the others instead of a
    thin ragged strip. Sides of 64 or more are rounded up to a multiple of 8 where that stays
    within ``t`` (and so keeps ``g`` tiles; the last tile is then fewer than ``8 g`` rows short).

    Example:
        >>> even_side(1797, 1528), even_side(1797, 899), even_side(10, 4)
        (904, 899, 4)
    """
    t = max(1, min(int(t), int(n)))
    g = -(-n // t)
    s = -(-n // g)
    if s >= 64 and s + (-s % 8) <= t:
        s += -s % 8
    return s
