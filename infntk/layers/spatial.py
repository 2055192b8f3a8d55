r"""Spatial primitives shared by convolution and pooling, for both kernel layouts.

A convolution with shared weights maps the covariance of its input to

.. math:: K'_{p p'} = \frac{1}{|F|} \sum_{d \in F} K_{s p + d,\; s p' + d},

the same filter offset ``d`` on both sides (weights are independent across offsets), while average
pooling sums over *independent* offsets on the two sides. Both factor over spatial dimensions, so
they are applied one dimension at a time as strided window sums of the zero- (``SAME``) or
wrap- (``CIRCULAR``) padded covariance.
"""
from __future__ import annotations

import math
from typing import Sequence

import jax.numpy as jnp

from ..errors import InfntkError

PADDINGS = ("VALID", "SAME", "CIRCULAR")


def check_padding(padding: str, where: str) -> str:
    if not isinstance(padding, str) or padding.upper() not in PADDINGS:
        raise InfntkError(f"{where}: unknown padding {padding!r}; expected one of {', '.join(PADDINGS)}.")
    return padding.upper()


def same_pads(size: int, window: int, stride: int) -> tuple[int, int]:
    """Low/high padding of XLA's ``SAME`` convention for one spatial dimension."""
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def output_size(size: int, window: int, stride: int, padding: str) -> int:
    if padding == "VALID":
        return (size - window) // stride + 1
    return -(-size // stride)


def pad_axes(a, axes: Sequence[int], lo: int, hi: int, padding: str):
    """Pad the given axes by (lo, hi): zeros for SAME, periodic for CIRCULAR, nothing for VALID."""
    if padding == "VALID" or (lo == 0 and hi == 0):
        return a
    widths = [(0, 0)] * a.ndim
    for ax in axes:
        widths[ax] = (lo, hi)
    return jnp.pad(a, widths, mode="wrap" if padding == "CIRCULAR" else "constant")


def _slice(a, axis: int, start: int, n_out: int, stride: int):
    idx = [slice(None)] * a.ndim
    idx[axis] = slice(start, start + stride * (n_out - 1) + 1, stride)
    return a[tuple(idx)]


def window_sum(a, axis: int, window: int, stride: int):
    """Strided box sum along one axis (VALID): ``out[i] = sum_{d<window} a[i*stride + d]``."""
    n_out = (a.shape[axis] - window) // stride + 1
    out = _slice(a, axis, 0, n_out, stride)
    for d in range(1, window):
        out = out + _slice(a, axis, d, n_out, stride)
    return out


def diagonal_window_sum(a, axis1: int, axis2: int, window: int, stride: int):
    """Strided sum over a shared offset on a pair of axes: ``out[i, j] = sum_d a[i s + d, j s + d]``."""
    n1 = (a.shape[axis1] - window) // stride + 1
    n2 = (a.shape[axis2] - window) // stride + 1

    def cut(d):
        return _slice(_slice(a, axis1, d, n1, stride), axis2, d, n2, stride)

    out = cut(0)
    for d in range(1, window):
        out = out + cut(d)
    return out


def conv_covariance(k, filter_shape, strides, padding: str, batch_ndim: int, diagonal: bool,
                    spatial_shape):
    r"""Mean over filter offsets of the covariance, shared offset on both sides (unscaled conv)."""
    size = math.prod(filter_shape)
    for i, (f, s, n) in enumerate(zip(filter_shape, strides, spatial_shape)):
        lo, hi = same_pads(n, f, s) if padding != "VALID" else (0, 0)
        if diagonal:
            ax = batch_ndim + i
            k = window_sum(pad_axes(k, (ax,), lo, hi, padding), ax, f, s)
        else:
            ax = batch_ndim + 2 * i
            k = diagonal_window_sum(pad_axes(k, (ax, ax + 1), lo, hi, padding), ax, ax + 1, f, s)
    return k / size


def pool_covariance(k, window_shape, strides, padding: str, batch_ndim: int, spatial_shape,
                    normalize_edges: bool = False):
    r"""Average pooling on the full layout: independent window offsets on the two sides."""
    for i, (w, s, n) in enumerate(zip(window_shape, strides, spatial_shape)):
        lo, hi = same_pads(n, w, s) if padding != "VALID" else (0, 0)
        ax = batch_ndim + 2 * i
        for a in (ax, ax + 1):
            k = window_sum(pad_axes(k, (a,), lo, hi, padding), a, w, s)
        if normalize_edges and padding == "SAME":
            count = window_sum(pad_axes(jnp.ones((n,), k.dtype), (0,), lo, hi, padding), 0, w, s)
            shape = [1] * k.ndim
            shape[ax] = count.shape[0]
            k = k / count.reshape(shape)
            shape[ax], shape[ax + 1] = 1, count.shape[0]
            k = k / count.reshape(shape)
        else:
            k = k / (w * w)
    return k
