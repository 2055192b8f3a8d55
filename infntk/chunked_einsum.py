r"""Einsum whose large pairwise contractions run in slices of a summed axis.

A Gram-like contraction :math:`K_{nm} = \sum_f A_{nf} B_{mf}` of two large operands is, for XLA's
CPU matrix multiply, a product of a row-major :math:`A` with a transposed :math:`B`; the CPU
backend of current JAX makes a transposed copy of :math:`B` first (one more operand-sized buffer,
so the working set of an empirical NTK is two per-example Jacobians instead of one). Summing the
contraction over slices :math:`f \in F_1, F_2, \dots` of one summed axis

.. math:: K_{nm} = \sum_c \sum_{f \in F_c} A_{nf} B_{mf}

in a compiled loop bounds every copy to one slice. The arithmetic is the same; only the order of
the sum over :math:`f` changes (float rounding).

:func:`contract` evaluates a many-operand einsum pairwise along ``opt_einsum``'s optimal path (as
``jnp.einsum(..., optimize='optimal')`` does) and slices each pairwise step whose larger operand
exceeds ``slice_bytes``.

Example:
    >>> import jax.numpy as jnp
    >>> a = jnp.arange(12.0).reshape(3, 4)
    >>> contract("nf,mf->nm", a, a, slice_bytes=16).tolist() == (a @ a.T).tolist()
    True
"""
from __future__ import annotations

import math
from typing import Optional

import jax.numpy as jnp
import numpy as np
from jax import lax

SLICE_BYTES = 4 * 2 ** 20
"""Largest operand slice (bytes) a pairwise contraction materialises when it is sliced."""

MAX_SLICES = 512
"""More slices than this (a summed axis with no suitable divisor) and the step runs whole."""

OUTPUT_FRACTION = 4
"""A step whose output exceeds a quarter of its larger operand runs whole: the slices' running sum
is an output-sized buffer of its own, and the transposed copy it saves is no larger."""

_HIGHEST = lax.Precision.HIGHEST


def slice_width(extent: int, want: int) -> Optional[int]:
    """The widest equal slice (a divisor of ``extent``) that cuts an axis into at least ``want``
    slices, or None where that means no cut at all or more than ``MAX_SLICES`` slices."""
    want = min(want, extent)
    width = next(w for w in range(extent // want, 0, -1) if extent % w == 0)
    if width == extent or extent // width > MAX_SLICES:
        return None
    return width


def slice_plan(spec: str, a_shape, b_shape, itemsize: int, slice_bytes: Optional[int] = None):
    """``(letter, width)`` to slice the pairwise contraction ``spec`` on, or ``None`` to run it
    whole: a summed letter (in both operands, not in the output), cut into equal slices (a divisor
    of its extent) so that neither operand's slice exceeds ``slice_bytes``. Steps with operands
    under ``slice_bytes``, or an output over a quarter of the larger operand, run whole."""
    slice_bytes = SLICE_BYTES if slice_bytes is None else slice_bytes
    ins, out = spec.split("->")
    sa, sb = ins.split(",")
    big = max(int(np.prod(a_shape, dtype=np.int64)), int(np.prod(b_shape, dtype=np.int64)))
    big *= itemsize
    if big <= slice_bytes:
        return None
    out_bytes = itemsize * int(np.prod([dict(zip(sa + sb, a_shape + b_shape))[c] for c in out],
                                       dtype=np.int64))
    if out_bytes * OUTPUT_FRACTION > big:
        return None
    summed = [c for c in sa if c in sb and c not in out]
    if not summed:
        return None
    want = math.ceil(big / slice_bytes)          # slices needed
    # the outermost summed axis of the first operand that can be cut into that many slices (each
    # slice then reads long contiguous runs), else the longest one
    order = sorted(summed, key=lambda c: sa.index(c))
    fits = [c for c in order if a_shape[sa.index(c)] >= want]
    letter = fits[0] if fits else max(summed, key=lambda c: a_shape[sa.index(c)])
    width = slice_width(a_shape[sa.index(letter)], want)
    return None if width is None else (letter, width)


def contract_pair(spec: str, a, b, slice_bytes: Optional[int] = None):
    """``jnp.einsum(spec, a, b)`` (``HIGHEST`` precision), summed in slices when large."""
    itemsize = jnp.dtype(jnp.result_type(a, b)).itemsize
    plan = slice_plan(spec, a.shape, b.shape, itemsize, slice_bytes)
    if plan is None:
        return jnp.einsum(spec, a, b, precision=_HIGHEST)
    letter, width = plan
    ins, out = spec.split("->")
    sa, sb = ins.split(",")
    ax_a, ax_b = sa.index(letter), sb.index(letter)
    n = a.shape[ax_a] // width
    sizes = {**dict(zip(sa, a.shape)), **dict(zip(sb, b.shape))}
    dtype = jnp.result_type(a, b)

    def body(i, acc):
        pa = lax.dynamic_slice_in_dim(a, i * width, width, ax_a)
        pb = lax.dynamic_slice_in_dim(b, i * width, width, ax_b)
        return acc + jnp.einsum(spec, pa, pb, precision=_HIGHEST)

    acc = jnp.zeros(tuple(sizes[c] for c in out), dtype)
    return lax.fori_loop(0, n, body, acc)


def contract(spec: str, *ops, slice_bytes: Optional[int] = None):
    """``jnp.einsum(spec, *ops, optimize='optimal')`` with large pairwise steps sliced."""
    if len(ops) == 1:
        return jnp.einsum(spec, *ops, precision=_HIGHEST)
    if len(ops) == 2:
        return contract_pair(spec, *ops, slice_bytes=slice_bytes)
    import opt_einsum

    _, info = opt_einsum.contract_path(spec, *[o.shape for o in ops], shapes=True,
                                       optimize="optimal")
    ops = list(ops)
    for inds, _, step, _, _ in info.contraction_list:
        # opt_einsum pops a step's operands by descending index and writes them in that order
        picked = [ops.pop(i) for i in sorted(inds, reverse=True)]
        if len(picked) == 2:
            ops.append(contract_pair(step, *picked, slice_bytes=slice_bytes))
        else:
            ops.append(jnp.einsum(step, *picked, precision=_HIGHEST))
    (result,) = ops
    return result
