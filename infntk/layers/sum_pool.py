r"""Sum pooling and global sum pooling (neural-tangents 0.6.5's ``SumPool``, ``GlobalSumPool``).

Sum pooling adds the features of a window instead of averaging them, so its kernel is average
pooling's times the number of offset pairs summed (independent offsets on the two sides),

.. math::
    K'_{pp'} = \sum_{d, d' \in w} K_{sp+d,\; sp'+d'} = |w|^2\, \mathrm{pool}_w[K]_{pp'},
    \qquad \Theta' = |w|^2\, \mathrm{pool}_w[\Theta],

with ``SAME`` and ``CIRCULAR`` padding as for :class:`~infntk.layers.pooling.AvgPool` (zeros pad the
window; no edge normalisation). ``GlobalSumPool`` sums over every position,
:math:`K' = \sum_{s,s'} K_{ss'} = |S|^2\,\mathrm{mean}_{s,s'}[K]`. Both are linear and weightless: they
keep a Gaussian input Gaussian and need the full spatial covariance.

Example:
    >>> import jax.numpy as jnp, infntk as nk
    >>> x = jnp.ones((2, 4, 4, 1))
    >>> k = (nk.Conv(8, (3, 3), padding="SAME") >> nk.GlobalSumPool()).kernel(x, get="nngp")
    >>> bool(jnp.allclose(k, 16**2 * (nk.Conv(8, (3, 3), padding="SAME")
    ...                               >> nk.GlobalAvgPool()).kernel(x, get="nngp")))
    True
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import jax.numpy as jnp

from ..kernel import Kernel
from . import spatial
from .base import Layer, frozen
from .pooling import AvgPool, GlobalAvgPool, validate_window, window_output_shape


def _scaled(k: Kernel, c) -> Kernel:
    """Every covariance of ``k`` times the number ``c``."""
    on = lambda a: None if a is None else c * a  # noqa: E731
    return k.replace(nngp=on(k.nngp), ntk=on(k.ntk), cov1=on(k.cov1), cov2=on(k.cov2))


@frozen
class SumPool(Layer):
    """Sum pooling over ``window_shape`` (``strides=None``: stride 1; see the module docstring)."""

    keeps_fresh = True
    recursion_kind = "sumpool"
    stax_extra_arguments = (None, dict(batch_axis=0, channel_axis=-1))

    window_shape: Sequence[int]
    strides: Optional[Sequence[int]] = None
    padding: str = "VALID"

    def __post_init__(self):
        validate_window(self, f"SumPool({self.window_shape!r})")

    @property
    def label(self) -> str:
        return f"SumPool({self.window_shape}, strides={self.strides}, padding={self.padding!r})"

    def _average(self) -> AvgPool:
        return AvgPool(self.window_shape, self.strides, self.padding)

    def output_shape(self, input_shape):
        return window_output_shape(self, input_shape)

    def needs_full(self, out_full: bool) -> bool:
        return True

    def apply(self, params, x, **kwargs):
        self.output_shape(tuple(x.shape))
        return self._average().apply((), x) * math.prod(self.window_shape)

    def kernel_map(self, k: Kernel, ops) -> Kernel:
        size = math.prod(self.window_shape)
        op = spatial.PoolAverage(self.window_shape, self.strides, self.padding)
        return _scaled(ops.linear(op, k), size * size).replace(
            shape1=self.output_shape(k.shape1), shape2=self.output_shape(k.shape2),
            is_gaussian=k.is_gaussian, pre=None, feature=None)


@frozen
class GlobalSumPool(GlobalAvgPool):
    """Sum over all spatial axes: ``(N, *S, C) -> (N, C)`` (see the module docstring)."""

    recursion_kind = "global_sum_pool"

    def apply(self, params, x, **kwargs):
        self.output_shape(tuple(x.shape))
        return jnp.sum(x, axis=tuple(range(1, x.ndim - 1)))

    def kernel_map(self, k: Kernel, ops) -> Kernel:
        size = math.prod(k.spatial1)
        return _scaled(super().kernel_map(k, ops), size * size)
