r"""Spatial primitives shared by convolution and pooling, for both kernel layouts.

A convolution with shared weights maps the covariance of its input to

.. math:: K'_{p p'} = \frac{1}{|F|} \sum_{d \in F} K_{s p + d,\; s p' + d},

the same filter offset ``d`` on both sides (weights are independent across offsets), while average
pooling sums over *independent* offsets on the two sides. Both factor over spatial dimensions, so
they are applied one dimension at a time as strided window sums of the zero- (``SAME``) or
wrap- (``CIRCULAR``) padded covariance.
"""
from __future__ import annotations

import dataclasses
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


# -- linear operators on covariances, with the names recursions print them by -------------------
#
# Each operator is one small immutable object with two faces: ``apply(a, batch_ndim,
# spatial_shape, diagonal)`` on arrays (``batch_ndim`` is 2 for a pair quantity such as ``nngp``, 1
# for a per-input one such as ``cov1``; ``diagonal`` is the layout it receives), and ``text`` /
# ``latex``, the name under which the symbolic recursion prints it. The array operations (``ops`` in
# :mod:`infntk.ops`) and the symbolic ones (:mod:`infntk.recursion.symbolic_ops`) both take the
# operator object itself, so a layer names its operator once.


def _fmt(t) -> str:
    return str(t[0]) if len(set(t)) == 1 else "(" + ",".join(map(str, t)) + ")"


def _window_names(text: str, latex: str, window, strides, padding: str, extra: str = ""):
    """``(text, latex)`` names of a windowed operator, e.g. ``A_{3×3,s=1,SAME}``."""
    return (f"{text}_{{{'×'.join(map(str, window))},s={_fmt(strides)},{padding}{extra}}}",
            latex + "_{" + r"\times ".join(map(str, window))
            + rf",\,s={_fmt(strides)},\,\mathrm{{{padding}}}}}")


def _spatial_axes(a, batch_ndim: int, dims, diagonal: bool) -> tuple:
    """The array axes of spatial dimensions ``dims`` (both positions of a pair on the full layout)."""
    if diagonal:
        return tuple(batch_ndim + i for i in dims)
    return tuple(ax for i in dims for ax in (batch_ndim + 2 * i, batch_ndim + 2 * i + 1))


class CovarianceOperator:
    """Base of the linear operators on covariances (see the comment above)."""

    text = ""
    latex = ""

    def apply(self, a, batch_ndim: int, spatial_shape, diagonal: bool):
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class PatchAverage(CovarianceOperator):
    r"""The convolution's :math:`\mathcal A[K]_{pp'} = \frac{1}{|F|}\sum_{d\in F} K_{sp+d,\,sp'+d}`."""

    filter_shape: tuple
    strides: tuple
    padding: str

    @property
    def text(self):
        return _window_names("A", r"\mathcal{A}", self.filter_shape, self.strides, self.padding)[0]

    @property
    def latex(self):
        return _window_names("A", r"\mathcal{A}", self.filter_shape, self.strides, self.padding)[1]

    def apply(self, a, batch_ndim, spatial_shape, diagonal):
        return conv_covariance(a, self.filter_shape, self.strides, self.padding, batch_ndim,
                               diagonal, spatial_shape)


@dataclasses.dataclass(frozen=True)
class PoolAverage(CovarianceOperator):
    r"""Average pooling, :math:`\frac{1}{|w|^2}\sum_{d,d'\in w} K_{sp+d,\,sp'+d'}` (full layout)."""

    window_shape: tuple
    strides: tuple
    padding: str
    normalize_edges: bool = False

    @property
    def text(self):
        return _window_names("pool", r"\mathrm{pool}", self.window_shape, self.strides, self.padding,
                             ",edges" if self.normalize_edges else "")[0]

    @property
    def latex(self):
        return _window_names("pool", r"\mathrm{pool}", self.window_shape, self.strides,
                             self.padding)[1]

    def apply(self, a, batch_ndim, spatial_shape, diagonal):
        if diagonal and len(spatial_shape):
            raise InfntkError("internal layout error: pooling needs the full spatial covariance.")
        return pool_covariance(a, self.window_shape, self.strides, self.padding, batch_ndim,
                               spatial_shape, self.normalize_edges)


@dataclasses.dataclass(frozen=True)
class PairMean(CovarianceOperator):
    r"""Global average pooling: :math:`\frac{1}{|S|^2}\sum_{s,s'} K_{ss'}` (full layout)."""

    text = "mean_{s,s'}"
    latex = r"\mathrm{mean}_{s,s'}"

    def apply(self, a, batch_ndim, spatial_shape, diagonal):
        if diagonal and len(spatial_shape):
            raise InfntkError("internal layout error: pooling needs the full spatial covariance.")
        return jnp.mean(a, axis=tuple(range(batch_ndim, a.ndim)))


@dataclasses.dataclass(frozen=True)
class DiagonalMean(CovarianceOperator):
    r"""Flatten's :math:`\frac{1}{|S|}\sum_s K_{ss}` (the full layout's diagonal is taken first)."""

    text = "mean_s"
    latex = r"\mathrm{mean}_{s}"

    def apply(self, a, batch_ndim, spatial_shape, diagonal):
        from ..kernel import _diagonal_of
        d = len(spatial_shape)
        if not diagonal:
            a = _diagonal_of(a, d, batch_ndim, False)
        return jnp.mean(a, axis=tuple(range(batch_ndim, a.ndim)))


@dataclasses.dataclass(frozen=True)
class PositionMean(CovarianceOperator):
    r"""The mean over spatial dimensions ``dims`` of a per-position quantity, kept broadcastable
    (LayerNorm over spatial axes: its normalising variance)."""

    dims: tuple

    text = "mean_s"
    latex = r"\mathrm{mean}_{s}"

    def apply(self, a, batch_ndim, spatial_shape, diagonal):
        return jnp.mean(a, axis=_spatial_axes(a, batch_ndim, self.dims, diagonal), keepdims=True)


@dataclasses.dataclass(frozen=True)
class BlockConcat(CovarianceOperator):
    r"""Concatenation of pairwise uncorrelated branches along spatial dimension ``dim``: the
    branches' covariances on the diagonal blocks, zero elsewhere (``apply`` takes the list)."""

    dim: int
    axis: int

    @property
    def text(self):
        return f"concat_{{axis={self.axis}}}"

    @property
    def latex(self):
        return rf"\mathrm{{concat}}_{{{self.axis}}}"

    def apply(self, parts, batch_ndim, spatial_shape, diagonal):
        if diagonal:
            return jnp.concatenate(parts, axis=batch_ndim + self.dim)
        row, col = batch_ndim + 2 * self.dim, batch_ndim + 2 * self.dim + 1
        sizes = [p.shape[col] for p in parts]
        blocks = []
        for i, p in enumerate(parts):
            pads = [(0, 0)] * p.ndim
            pads[col] = (sum(sizes[:i]), sum(sizes[i + 1:]))
            blocks.append(jnp.pad(p, pads))
        return jnp.concatenate(blocks, axis=row)


def fits(size, window) -> bool:
    """Whether a window fits a VALID-padded axis (always, for a symbolic size)."""
    try:
        return bool(window <= size)
    except TypeError:
        return True
