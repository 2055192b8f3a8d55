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
    >>> from infntk.layers import blocking
    >>> model = nk.Dense(8) >> nk.Relu() >> nk.Dense(1)
    >>> x = jnp.asarray(np.random.default_rng(0).normal(size=(7, 3)))
    >>> run = lambda a, b: (model.kernel_map_model(model._input_kernel(a, b, "ntk")).ntk,)
    >>> blocked = blocking.blocked_kernel(run, x, None, block=3, swap=((1, 0),))[0]
    >>> bool(jnp.allclose(blocked, model.kernel(x, get="ntk"), rtol=1e-5, atol=0))
    True
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

#: Covariance entries per quantity in one block (2**16 entries = 256 KiB in float32), measured
#: best on a 2-core Xeon with 2 MiB L2 per core for the FC and CNN-GAP battery cases.
TARGET_ENTRIES = 2 ** 16

#: Full spatial layouts ``(B, B, S, S', ...)`` take blocks this many times larger: their window sums
#: run along the spatial axes of every pair, and blocks of one or two pairs left the loop overhead
#: dominant (Myrtle-like, 16x16: 0.76x the time at 4x the entries, CNN-GAP 8x8: 0.88x).
FULL_LAYOUT_FACTOR = 4


def block_size(entries_per_pair: int, target: Optional[int] = None) -> int:
    """Side ``B`` of a ``B x B`` block of input pairs holding about ``target`` entries
    (default :data:`TARGET_ENTRIES`)."""
    target = TARGET_ENTRIES if target is None else target
    return max(1, math.isqrt(max(1, target // max(1, int(entries_per_pair)))))


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


def _buffers(run: Callable, a, b, rows: int, cols: int):
    """Zero output buffers ``(rows, cols, rest...)`` shaped like ``run(a, b)``'s blocks."""
    shapes = jax.eval_shape(lambda u, v: tuple(run(u, v)), a, b)
    return tuple(jnp.zeros((rows, cols) + s.shape[2:], s.dtype) for s in shapes)


def blocked_kernel(run: Callable, x1, x2: Optional[jax.Array], block: int,
                   swap: Sequence[tuple]) -> tuple:
    """Evaluate ``run(x1, x2) -> tuple of arrays (N1, N2, ...)`` block by block.

    ``run`` must act pair by pair (every layer's kernel map does); ``swap[k]`` is the axis
    permutation that transposes the ``k``-th output (:func:`swap_permutation`). The blocks are
    computed in a loop and written in place into the output; with ``x2 = None`` only the blocks on
    and above the diagonal are computed, and a second loop copies each transposed below it. A
    ragged last block is moved back to end at ``N``: it overlaps its neighbour, whose shared
    entries it recomputes, so no input is padded and no output copied.
    """
    n1 = x1.shape[0]
    b1 = _even(block, n1)
    xb1, s1 = _row_blocks(x1, b1)
    nb1 = xb1.shape[0]
    if x2 is None:
        if nb1 == 1:
            return tuple(run(x1, None))
        bufs = _buffers(run, xb1[0], None, n1, n1)
        iu, ju = (jnp.asarray(a, jnp.int32) for a in np.triu_indices(nb1, 1))

        def off(k, bufs):
            return _write(bufs, run(xb1[iu[k]], xb1[ju[k]]), s1[iu[k]], s1[ju[k]])

        def diag(i, bufs):
            # after the off-diagonal blocks: where an overlapping last block puts an input pair
            # (x, x) into an off-diagonal block, the x2 = None value (exact variance) wins
            return _write(bufs, run(xb1[i], None), s1[i], s1[i])

        def mirror(k, bufs):
            # a loop of its own, reading the stored block: fused with the block's computation, the
            # transposed write would recompute the last layers' elementwise maps in strided order
            i, j = iu[k], ju[k]
            out = []
            for buf, perm in zip(bufs, swap):
                start = (s1[i], s1[j]) + (jnp.int32(0),) * (buf.ndim - 2)
                blk = jax.lax.dynamic_slice(buf, start, (b1, b1) + buf.shape[2:])
                out.append(jnp.transpose(blk, perm))
            return _write(bufs, out, s1[j], s1[i])

        bufs = jax.lax.fori_loop(0, iu.shape[0], off, bufs)
        bufs = jax.lax.fori_loop(0, iu.shape[0], mirror, bufs)
        return jax.lax.fori_loop(0, nb1, diag, bufs)
    n2 = x2.shape[0]
    b2 = _even(block, n2)
    xb2, s2 = _row_blocks(x2, b2)
    nb2 = xb2.shape[0]
    if nb1 == 1 and nb2 == 1:
        return tuple(run(x1, x2))
    bufs = _buffers(run, xb1[0], xb2[0], n1, n2)

    def cross(k, bufs):
        i, j = k // nb2, k % nb2
        return _write(bufs, run(xb1[i], xb2[j]), s1[i], s2[j])

    return jax.lax.fori_loop(0, nb1 * nb2, cross, bufs)
