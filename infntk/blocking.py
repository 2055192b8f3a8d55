r"""Batch-pair blocking: the kernel recursion run block by block, cache-sized, symmetry exploited.

Every layer's kernel map acts on each pair of inputs :math:`(x_i, x'_j)` on its own: the covariance
entries :math:`K_{ij\,s s'}` of one pair depend only on that pair's entries in the previous layer and
on the per-input variances :math:`K_{ii}, K'_{jj}`. The Gram matrix of a model can therefore be
computed in blocks of ``B x B`` input pairs,

.. math::
    K(x, x') = \big[\,K(x_{I_a}, x'_{J_b})\,\big]_{a b},

each block running the *whole* recursion while its intermediates (one ``B x B x |S|^2`` array per
quantity) stay in cache. On CPU, XLA materialises an intermediate at every expensive elementwise
operation (``sqrt``, ``atan2``, divisions) and every shifted-window sum, so an unblocked deep
recursion streams each intermediate through main memory several times per layer; blocked, those
passes hit the cache. With ``x2 = None`` only the blocks on and above the diagonal are computed,
the blocks below are the transposes (batch axes swapped, and each spatial pair ``(s, s')`` swapped
on the full layout): :math:`K(x_{I_b}, x_{I_a}) = K(x_{I_a}, x_{I_b})^{\top}`. Diagonal blocks
run in ``x2 = None`` mode, so every input's own variance stays exact there, as unblocked.

The block size is chosen so a block holds about :data:`TARGET_ENTRIES` covariance entries per
quantity: ``B = floor(sqrt(TARGET_ENTRIES / entries_per_pair))`` at least 1, where a pair has
:math:`\prod_s |S_s|^2` entries on the full spatial layout, :math:`\prod_s |S_s|` on the diagonal
one, then evened out to ``ceil(N / ceil(N / B))`` so the blocks are as equal as can be. Inputs
whose batch fits in one block run unblocked; when ``B`` does not divide the batch, the last block
is moved back to end at the last input and overlaps its neighbour (a few pairs computed twice, no
padding and no copy of the result). The blocks are written in place into the output inside a
compiled loop; with ``x2 = None`` a second loop copies each block above the diagonal, transposed,
below it (fused with the block's computation, XLA would recompute the last layers' elementwise
maps in strided order for the transposed write), and the diagonal blocks are written last.

Example:
    >>> import jax.numpy as jnp, numpy as np, infntk as nk
    >>> from infntk import blocking, driver
    >>> model = nk.Dense(8) >> nk.Relu() >> nk.Dense(1)
    >>> x = jnp.asarray(np.random.default_rng(0).normal(size=(7, 3)))
    >>> run = lambda a, b: (driver.kernel_state(model, a, b, "ntk").ntk,)
    >>> blocked = blocking.blocked_kernel(run, x, None, block=3, swap=((1, 0),))[0]
    >>> bool(jnp.allclose(blocked, model.kernel(x, get="ntk"), rtol=1e-5, atol=0))
    True
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

#: Covariance entries per quantity in one block (2**16 entries = 256 KiB in float32): a block's
#: intermediates of one quantity fit a core's L2 cache with room for the others (the timings that
#: chose it are in benchmarks/results/).
TARGET_ENTRIES = 2 ** 16

#: Full spatial layouts ``(B, B, S, S', ...)`` take blocks of this factor times
#: :data:`TARGET_ENTRIES` float32-sized entries per quantity (1 MiB, whatever the dtype), ``B``
#: rounded down to a power of two: their window sums run along the spatial axes of every pair and
#: want the whole block in L2.
FULL_LAYOUT_FACTOR = 4


def block_size(entries_per_pair: int, target: Optional[int] = None) -> int:
    """Side ``B`` of a ``B x B`` block of input pairs holding about ``target`` entries
    (default :data:`TARGET_ENTRIES`)."""
    target = TARGET_ENTRIES if target is None else target
    return max(1, math.isqrt(max(1, target // max(1, int(entries_per_pair)))))


def full_layout_block(entries_per_pair: int, itemsize: int, target: Optional[int] = None) -> int:
    """Side ``B`` of a block of input pairs on the full spatial layout (see
    :data:`FULL_LAYOUT_FACTOR`): about ``FULL_LAYOUT_FACTOR * target`` float32-sized entries."""
    target = TARGET_ENTRIES if target is None else target
    b = block_size(entries_per_pair, max(1, target * FULL_LAYOUT_FACTOR * 4 // itemsize))
    return 1 << (b.bit_length() - 1)


def swap_permutation(ndim: int, spatial_ndim: int, diagonal_spatial: bool) -> tuple:
    """Axis permutation taking a block ``K(x_I, x_J)`` to ``K(x_J, x_I)``.

    Batch axes are swapped; on the full spatial layout ``(N1, N2, S1, S1', S2, S2', ...)`` each
    spatial pair is swapped too; on the diagonal layout the spatial axes stay.
    """
    perm = [1, 0] + list(range(2, ndim))
    if not diagonal_spatial:
        for i in range(spatial_ndim):
            a = 2 + 2 * i
            perm[a], perm[a + 1] = a + 1, a
    return tuple(perm)


def _even(block: int, n: int) -> int:
    """The block size at most ``block`` that cuts ``n`` inputs into the fewest, most even blocks."""
    block = max(1, min(block, n))
    return -(-n // -(-n // block))


def _row_blocks(x, block: int):
    """``(blocks, starts)``: the inputs cut into ``ceil(N / B)`` blocks of ``B`` rows, stacked. A
    ragged last block is moved back to end at ``N`` (it overlaps its neighbour) instead of being
    padded, so each block is a run of real inputs and writes only real rows of the output."""
    n = x.shape[0]
    starts = [min(i * block, n - block) for i in range(-(-n // block))]
    return jnp.stack([x[s:s + block] for s in starts]), jnp.asarray(starts, jnp.int32)


def _write(bufs, blocks, row, col):
    """Write each block into its buffer at batch offset ``(row, col)``."""
    out = []
    for buf, blk in zip(bufs, blocks):
        start = tuple(jnp.asarray(a, jnp.int32) for a in (row, col) + (0,) * (buf.ndim - 2))
        out.append(jax.lax.dynamic_update_slice(buf, blk.astype(buf.dtype), start))
    return tuple(out)


def _buffers(blocks, rows: int, cols: int):
    """Zero output buffers ``(rows, cols, rest...)`` for blocks shaped ``(b1, b2, rest...)``."""
    return tuple(jnp.zeros((rows, cols) + s.shape[2:], s.dtype) for s in blocks)


#: Largest recorded self-covariance trajectory (all inputs, every layer) kept for the blocks to
#: share; above it the blocks recompute their self-covariances as in the plain loop.
SHARED_TRAJECTORY_BYTES = 512 * 2 ** 20


#: Sharing pays where a block's ``2 B`` self-covariances are a large share of its ``B^2`` pairs
#: (``2/B``): blocks of at most this side, i.e. the full spatial layouts. Larger blocks recompute
#: them, which costs less than the bookkeeping of sharing.
SHARED_MAX_BLOCK = 8


class SharedSelfCovariance(NamedTuple):
    """How a blocked recursion shares its per-input covariances (see :func:`blocked_kernel`).

    ``record(a) -> (outputs, trajectory)`` runs the block ``K(a, a)`` (``x2 = None``) and also
    returns each layer's per-input covariance of ``a`` (arrays with ``a``'s batch axis leading);
    ``inject(a, b, trajectory_a, trajectory_b) -> outputs`` runs the block ``K(a, b)`` reading those
    covariances instead of computing them (:class:`infntk.ops.ArrayOps` ``record``/``inject``,
    built by :func:`infntk.driver.compiled_kernel`).
    """

    record: Callable
    inject: Callable


def _rows(arrays, start, size: int):
    """Rows ``start : start + size`` of each array (batch axis first)."""
    return tuple(jax.lax.dynamic_slice(a, (start,) + (jnp.int32(0),) * (a.ndim - 1),
                                       (size,) + a.shape[1:]) for a in arrays)


def _put_rows(arrays, rows, start):
    return tuple(jax.lax.dynamic_update_slice(a, r.astype(a.dtype),
                                              (start,) + (jnp.int32(0),) * (a.ndim - 1))
                 for a, r in zip(arrays, rows))


class _Side(NamedTuple):
    """One batch cut into row blocks, and (with sharing) the trajectory buffer of its inputs."""

    n: int
    size: int
    blocks: jax.Array
    starts: jax.Array
    trajectory: Optional[tuple]

    @classmethod
    def of(cls, x, block: int, shared: Optional[SharedSelfCovariance]) -> "_Side":
        n = x.shape[0]
        size = _even(block, n)
        blocks, starts = _row_blocks(x, size)
        traj = None
        if shared is not None and blocks.shape[0] > 1:
            _, rec = jax.eval_shape(shared.record, blocks[0])
            per_row = sum(math.prod(r.shape[1:]) * np.dtype(r.dtype).itemsize for r in rec)
            if rec and n * per_row <= SHARED_TRAJECTORY_BYTES:
                traj = tuple(jnp.zeros((n,) + r.shape[1:], r.dtype) for r in rec)
        return cls(n, size, blocks, starts, traj)

    @property
    def count(self) -> int:
        return self.blocks.shape[0]

    def recorded(self, shared: SharedSelfCovariance) -> "_Side":
        """The trajectory filled by one ``record`` pass over the blocks (outputs unused)."""
        def body(i, traj):
            return _put_rows(traj, shared.record(self.blocks[i])[1], self.starts[i])
        return self._replace(trajectory=jax.lax.fori_loop(0, self.count, body, self.trajectory))

    def rows(self, i):
        return _rows(self.trajectory, self.starts[i], self.size)


def blocked_kernel(run: Callable, x1, x2: Optional[jax.Array], block: int,
                   swap: Sequence[tuple], shared: Optional[SharedSelfCovariance] = None) -> tuple:
    """Evaluate ``run(x1, x2) -> tuple of arrays (N1, N2, ...)`` block by block.

    ``run`` must act pair by pair (every layer's kernel map does); ``swap[k]`` is the axis
    permutation that transposes the ``k``-th output (:func:`swap_permutation`). The blocks are
    computed in a loop and written in place into the output; with ``x2 = None`` only the blocks on
    and above the diagonal are computed, and a second loop copies each transposed below it. A
    ragged last block is moved back to end at ``N``: it overlaps its neighbour, whose shared
    entries it recomputes, so no input is padded and no output copied.

    With ``shared`` (:class:`SharedSelfCovariance`) every input's self-covariances are computed
    once -- by the diagonal blocks with ``x2 = None``, by one ``record`` pass over each side's
    blocks with ``x2`` -- and the other blocks read them instead of recomputing them. Sharing is
    skipped where it would not pay (a single block, a cross product with no more blocks than the
    two ``record`` passes), for blocks larger than :data:`SHARED_MAX_BLOCK` (the self-covariances
    are then a small part of a block) and where the trajectories would exceed
    :data:`SHARED_TRAJECTORY_BYTES`.
    """
    if shared is not None and block > SHARED_MAX_BLOCK:
        shared = None
    a = _Side.of(x1, block, shared)
    if x2 is None:
        if a.count == 1:
            return tuple(run(x1, None))
        return _blocked_symmetric(run, a, swap, shared if a.trajectory is not None else None)
    b = _Side.of(x2, block, shared)
    if a.count == 1 and b.count == 1:
        return tuple(run(x1, x2))
    sharing = (a.trajectory is not None and b.trajectory is not None
               and a.count * b.count > a.count + b.count)
    if sharing:
        a, b = a.recorded(shared), b.recorded(shared)
    bufs = _buffers(jax.eval_shape(lambda u, v: tuple(run(u, v)), a.blocks[0], b.blocks[0]),
                    a.n, b.n)

    def cross(k, bufs):
        i, j = k // b.count, k % b.count
        if sharing:
            outs = shared.inject(a.blocks[i], b.blocks[j], a.rows(i), b.rows(j))
        else:
            outs = run(a.blocks[i], b.blocks[j])
        return _write(bufs, outs, a.starts[i], b.starts[j])

    return jax.lax.fori_loop(0, a.count * b.count, cross, bufs)


def _blocked_symmetric(run, a: _Side, swap, shared):
    """``x2 = None``: the blocks on and above the diagonal, the rest mirrored."""
    if shared is not None:
        outs_shape, _ = jax.eval_shape(shared.record, a.blocks[0])

        def record(i, carry):
            diag, traj = carry
            outs, rec = shared.record(a.blocks[i])
            diag = tuple(jax.lax.dynamic_update_index_in_dim(d, o.astype(d.dtype), i, 0)
                         for d, o in zip(diag, outs))
            return diag, _put_rows(traj, rec, a.starts[i])

        diag, traj = jax.lax.fori_loop(0, a.count, record,
                                       (tuple(jnp.zeros((a.count,) + o.shape, o.dtype) for o in outs_shape),
                                        a.trajectory))
        a = a._replace(trajectory=traj)
    else:
        outs_shape = jax.eval_shape(lambda u: tuple(run(u, None)), a.blocks[0])
    bufs = _buffers(outs_shape, a.n, a.n)
    iu, ju = (jnp.asarray(v, jnp.int32) for v in np.triu_indices(a.count, 1))

    def off(k, bufs):
        i, j = iu[k], ju[k]
        if shared is not None:
            outs = shared.inject(a.blocks[i], a.blocks[j], a.rows(i), a.rows(j))
        else:
            outs = run(a.blocks[i], a.blocks[j])
        return _write(bufs, outs, a.starts[i], a.starts[j])

    def mirror(k, bufs):
        # a loop of its own, reading the stored block: fused with the block's computation, the
        # transposed write would recompute the last layers' elementwise maps in strided order
        i, j = iu[k], ju[k]
        out = []
        for buf, perm in zip(bufs, swap):
            start = (a.starts[i], a.starts[j]) + (jnp.int32(0),) * (buf.ndim - 2)
            blk = jax.lax.dynamic_slice(buf, start, (a.size, a.size) + buf.shape[2:])
            out.append(jnp.transpose(blk, perm))
        return _write(bufs, out, a.starts[j], a.starts[i])

    def put_diag(i, bufs):
        # after the off-diagonal blocks: where an overlapping last block puts an input pair
        # (x, x) into an off-diagonal block, the x2 = None value (exact variance) wins
        blocks = tuple(d[i] for d in diag) if shared is not None else run(a.blocks[i], None)
        return _write(bufs, blocks, a.starts[i], a.starts[i])

    bufs = jax.lax.fori_loop(0, iu.shape[0], off, bufs)
    bufs = jax.lax.fori_loop(0, iu.shape[0], mirror, bufs)
    return jax.lax.fori_loop(0, a.count, put_diag, bufs)
