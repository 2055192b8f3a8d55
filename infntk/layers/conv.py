r"""Convolution in 1, 2 or 3 spatial dimensions, channels last (NWC, NHWC, NDHWC).

A filter ``F`` of ``|F|`` offsets over ``n`` input channels, stride ``s``; the NTK parameterization
scales the weights by :math:`\sigma_w/\sqrt{n|F|}`. Weights are shared over positions and independent
over offsets, so the covariance maps as

.. math::
    K'_{p p'} = \sigma_w^2\, \mathcal{A}[K]_{p p'} + \sigma_b^2,\qquad
    \mathcal A[K]_{p p'} = \frac{1}{|F|}\sum_{d\in F} K_{s p + d,\, s p' + d},

with zero (``SAME``) or periodic (``CIRCULAR``) padding of ``K``, and
:math:`\Theta' = K' + \sigma_w^2 \mathcal A[\Theta]` (NTK parameterization) or
:math:`\Theta' = \frac{n|F|}{s_0}\,\mathcal A[K] + \sigma_w^2 \mathcal A[\Theta] + [b]` (standard,
with the width scalings ``s = (s_0, s_1)`` of :mod:`infntk.layers.dense`: ``out_chan * s_1``
channels, weights of variance :math:`\sigma_w^2 s_0/(n|F|)`, output divided by :math:`\sqrt{s_0}`), as in
neural-tangents 0.6.5 (Novak et al. 2019; Arora et al. 2019). On the diagonal layout the map is an
ordinary box-filter convolution of the per-position variances.

Example:
    >>> import jax.numpy as jnp, infntk as nk
    >>> x = jnp.ones((2, 5, 5, 3))
    >>> (nk.Conv(8, (3, 3), padding="SAME") >> nk.Flatten()).kernel(x, get="nngp").shape
    (2, 2)
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp

from ..kernel import Kernel
from . import spatial
from .base import Layer, check_int_tuple, check_positive_int, frozen
from .dense import out_width, scale_and_shift, validate_affine, weight_fan_in

_SPECS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC"), 3: ("NDHWC", "DHWIO", "NDHWC")}


@frozen
class Conv(Layer):
    """Convolution with ``out_chan`` output channels (see the module docstring)."""

    is_linear = True
    recursion_kind = "conv"
    stax_extra_arguments = ("b_std", dict(dimension_numbers=None))
    out_chan: int
    filter_shape: Sequence[int]
    strides: Optional[Sequence[int]] = None
    padding: str = "VALID"
    W_std: float = 1.0
    b_std: Optional[float] = None
    parameterization: str = "ntk"
    s: tuple = (1, 1)

    def __post_init__(self):
        where = f"Conv({self.out_chan!r}, {self.filter_shape!r})"
        object.__setattr__(self, "out_chan", check_positive_int(self.out_chan, "out_chan", where))
        fs = check_int_tuple(self.filter_shape, "filter_shape", where)
        if len(fs) > 3:
            raise self.error(f"supports 1, 2 or 3 spatial dimensions, got filter_shape {self.filter_shape!r}.")
        object.__setattr__(self, "filter_shape", fs)
        st = (1,) * len(fs) if self.strides is None else check_int_tuple(self.strides, "strides", where, len(fs))
        object.__setattr__(self, "strides", st)
        object.__setattr__(self, "padding", spatial.check_padding(self.padding, where))
        validate_affine(self, where)

    @property
    def label(self) -> str:
        return f"Conv({self.out_chan}, {self.filter_shape}, padding={self.padding!r})"

    @property
    def ndim(self) -> int:
        return len(self.filter_shape)

    def output_shape(self, input_shape):
        d = self.ndim
        if len(input_shape) != d + 2:
            raise self.error(
                f"expects inputs of shape (batch, {d} spatial axes, channels), i.e. {d + 2} axes, "
                f"got shape {tuple(input_shape)}"
                + (" without spatial axes" if len(input_shape) == 2 else "") + ".")
        sp = input_shape[1:-1]
        out = []
        for n, f, s in zip(sp, self.filter_shape, self.strides):
            if self.padding == "VALID" and not spatial.fits(n, f):
                raise self.error(f"filter {self.filter_shape} is larger than the input's spatial "
                                 f"shape {tuple(sp)} with VALID padding.")
            out.append(spatial.output_size(n, f, s, self.padding))
        return (input_shape[0], *out, out_width(self, self.out_chan))

    def fan_in(self, input_shape) -> int:
        return input_shape[-1] * math.prod(self.filter_shape)

    def init(self, key, input_shape):
        out = self.output_shape(tuple(input_shape))
        k1, k2 = jax.random.split(key)
        W = jax.random.normal(k1, (*self.filter_shape, input_shape[-1], out[-1]))
        b = None if self.b_std is None else jax.random.normal(k2, (1,) * (self.ndim + 1) + (out[-1],))
        if self.parameterization == "standard":
            W = W * (self.W_std / weight_fan_in(self, self.fan_in(input_shape)) ** 0.5)
            b = None if b is None else b * self.b_std
        return out, (W, b)

    def apply(self, params, x, **kwargs):
        W, b = params
        self.output_shape(tuple(x.shape))
        if x.shape[-1] != W.shape[-2]:
            raise self.error(f"its parameters take inputs with {W.shape[-2]} channels, got an "
                             f"input of shape {tuple(x.shape)}.")
        padding = self.padding
        if padding == "CIRCULAR":
            for i, (n, f, s) in enumerate(zip(x.shape[1:-1], self.filter_shape, self.strides)):
                lo, hi = spatial.same_pads(n, f, s)
                x = spatial.pad_axes(x, (1 + i,), lo, hi, "CIRCULAR")
            padding = "VALID"
        y = jax.lax.conv_general_dilated(x, W.astype(x.dtype), self.strides, padding,
                                         dimension_numbers=_SPECS[self.ndim],
                                         precision=jax.lax.Precision.HIGHEST)
        return scale_and_shift(self, y, b, self.fan_in(x.shape))

    def kernel_map(self, k: Kernel, ops) -> Kernel:
        if k.spatial_ndim != self.ndim:
            raise self.error(f"expects {self.ndim} spatial axes, got input shape {k.shape1}.")
        w2 = ops.param("σ_w", self.W_std) ** 2
        b2 = 0 if self.b_std is None else ops.param("σ_b", self.b_std) ** 2
        a = ops.linear(spatial.PatchAverage(self.filter_shape, self.strides, self.padding), k)

        def affine(x):
            return None if x is None else w2 * x + b2

        nngp = affine(a.nngp)
        ntk = a.ntk
        if ntk is not None:
            if self.parameterization == "ntk":
                ntk = nngp + w2 * ntk
            else:
                ntk = (ops.fan_in(weight_fan_in(self, self.fan_in(k.shape1))) * a.nngp + w2 * ntk
                       + (0 if self.b_std is None else 1))
        return k.replace(nngp=nngp, ntk=ntk, cov1=affine(a.cov1), cov2=affine(a.cov2),
                         shape1=self.output_shape(k.shape1), shape2=self.output_shape(k.shape2),
                         is_gaussian=True, is_input=False, pre=None, feature=None)
