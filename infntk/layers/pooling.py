r"""Average pooling, global average pooling and flattening.

Average pooling with window ``w`` and stride ``s`` sums over *independent* offsets on the two sides,

.. math:: K'_{p p'} = \frac{1}{|w|^2}\sum_{d, d' \in w} K_{s p + d,\; s p' + d'},

so it needs the full spatial covariance (the composed model provides it). ``GlobalAvgPool`` is
:math:`K' = \frac{1}{|S|^2}\sum_{s, s'} K_{s s'}`, also on the full covariance, while ``Flatten``
followed by a dense layer only sees the average of the per-position variances,
:math:`K' = \frac{1}{|S|}\sum_s K_{s s}` -- the diagonal suffices. Padding and edge semantics are
neural-tangents 0.6.5's: ``SAME`` pads with zeros and divides by the full window size unless
``normalize_edges=True``.

Example:
    >>> import jax.numpy as jnp, infntk as nk
    >>> x = jnp.ones((2, 4, 4, 1))
    >>> (nk.Conv(8, (3, 3), padding="SAME") >> nk.AvgPool((2, 2), (2, 2)) >> nk.GlobalAvgPool()).kernel(x, get="nngp").shape
    (2, 2)
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp

from ..kernel import Kernel
from . import spatial
from .base import Layer, check_int_tuple, frozen


def validate_window(layer, where: str) -> None:
    """Check and normalise a pooling layer's ``window_shape``, ``strides`` and ``padding``."""
    ws = check_int_tuple(layer.window_shape, "window_shape", where)
    object.__setattr__(layer, "window_shape", ws)
    st = (1,) * len(ws) if layer.strides is None else check_int_tuple(layer.strides, "strides", where, len(ws))
    object.__setattr__(layer, "strides", st)
    object.__setattr__(layer, "padding", spatial.check_padding(layer.padding, where))


def window_output_shape(layer, input_shape) -> tuple:
    """The output shape of a pooling layer's windows on ``input_shape`` (errors name ``layer``)."""
    d = len(layer.window_shape)
    if len(input_shape) != d + 2:
        raise layer.error(f"expects inputs with {d} spatial axes ({d + 2} axes in all), "
                          f"got shape {tuple(input_shape)}.")
    out = []
    for n, w, s in zip(input_shape[1:-1], layer.window_shape, layer.strides):
        if layer.padding == "VALID" and not spatial.fits(n, w):
            raise layer.error(f"window {layer.window_shape} is larger than the input's spatial "
                              f"shape {tuple(input_shape[1:-1])} with VALID padding.")
        out.append(spatial.output_size(n, w, s, layer.padding))
    return (input_shape[0], *out, input_shape[-1])


@frozen
class AvgPool(Layer):
    """Average pooling over ``window_shape`` (see the module docstring).

    ``strides=None`` means stride 1 in every dimension, as in neural-tangents."""

    keeps_fresh = True
    recursion_kind = "avgpool"
    stax_extra_arguments = (None, dict(batch_axis=0, channel_axis=-1))

    window_shape: Sequence[int]
    strides: Optional[Sequence[int]] = None
    padding: str = "VALID"
    normalize_edges: bool = False

    def __post_init__(self):
        validate_window(self, f"AvgPool({self.window_shape!r})")

    @property
    def label(self) -> str:
        return f"AvgPool({self.window_shape}, strides={self.strides}, padding={self.padding!r})"

    def output_shape(self, input_shape):
        return window_output_shape(self, input_shape)

    def needs_full(self, out_full: bool) -> bool:
        return True

    def apply(self, params, x, **kwargs):
        self.output_shape(tuple(x.shape))
        counts = None
        for i, (n, w, s) in enumerate(zip(x.shape[1:-1], self.window_shape, self.strides)):
            lo, hi = spatial.same_pads(n, w, s) if self.padding != "VALID" else (0, 0)
            x = spatial.window_sum(spatial.pad_axes(x, (1 + i,), lo, hi, self.padding), 1 + i, w, s)
            if self.normalize_edges and self.padding == "SAME":
                c = spatial.window_sum(spatial.pad_axes(jnp.ones((n,), x.dtype), (0,), lo, hi, "SAME"), 0, w, s)
                shape = [1] * x.ndim
                shape[1 + i] = c.shape[0]
                x = x / c.reshape(shape)
            else:
                x = x / w
        return x

    def kernel_map(self, k: Kernel, ops) -> Kernel:
        op = spatial.PoolAverage(self.window_shape, self.strides, self.padding, self.normalize_edges)
        return ops.linear(op, k).replace(shape1=self.output_shape(k.shape1),
                                         shape2=self.output_shape(k.shape2),
                                         is_gaussian=k.is_gaussian, pre=None, feature=None)


@frozen
class GlobalAvgPool(Layer):
    """Mean over all spatial axes: ``(N, *S, C) -> (N, C)`` (see the module docstring)."""

    keeps_fresh = True
    recursion_kind = "global_avg_pool"
    stax_extra_arguments = (None, dict(batch_axis=0, channel_axis=-1))

    def output_shape(self, input_shape):
        if len(input_shape) < 3:
            raise self.error(f"expects inputs with spatial axes, got shape {tuple(input_shape)}.")
        return (input_shape[0], input_shape[-1])

    def needs_full(self, out_full: bool) -> bool:
        return True

    def apply(self, params, x, **kwargs):
        self.output_shape(tuple(x.shape))
        return jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))

    def kernel_map(self, k: Kernel, ops) -> Kernel:
        return ops.linear(spatial.PairMean(), k).replace(
            shape1=self.output_shape(k.shape1), shape2=self.output_shape(k.shape2),
            diagonal_spatial=True, is_gaussian=k.is_gaussian, pre=None, feature=None)


@frozen
class Flatten(Layer):
    """Flatten all but the batch axis: ``(N, *S, C) -> (N, |S| C)`` (see the module docstring)."""

    keeps_fresh = True
    recursion_kind = "flatten"
    stax_extra_arguments = (None, dict(batch_axis=0, batch_axis_out=0))

    def output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise self.error(f"expects a batch axis and features, got shape {tuple(input_shape)}.")
        return (input_shape[0], math.prod(input_shape[1:]))

    def needs_full(self, out_full: bool) -> bool:
        return False

    def apply(self, params, x, **kwargs):
        return jnp.reshape(x, (x.shape[0], -1))

    def kernel_map(self, k: Kernel, ops) -> Kernel:
        if k.spatial_ndim == 0:
            return k
        return ops.linear(spatial.DiagonalMean(), k).replace(
            shape1=self.output_shape(k.shape1), shape2=self.output_shape(k.shape2),
            diagonal_spatial=True, is_gaussian=k.is_gaussian, pre=None, feature=None)
