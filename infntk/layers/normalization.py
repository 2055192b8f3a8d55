r"""Layer normalisation.

The finite layer maps :math:`x \mapsto (x - \mu)/\sqrt{\sigma^2 + \epsilon}` with mean and variance
over ``axis`` (which must include the channel axis). At infinite width the channel mean of a centred
Gaussian feature vanishes and its mean square concentrates on the variance, so

.. math:: K'_{x x'} = \frac{K_{x x'}}{\sqrt{(v(x) + \epsilon)(v(x') + \epsilon)}}, \qquad
          \Theta'_{x x'} = \frac{\Theta_{x x'}}{\sqrt{(v(x) + \epsilon)(v(x') + \epsilon)}},

where :math:`v(x)` is the per-position variance, averaged over any spatial axes in ``axis``
(neural-tangents 0.6.5's ``LayerNorm``). After a nonlinearity the feature is not centred; infntk
then normalises the elementwise feature exactly (see :mod:`infntk.layers.activations`).

Example:
    >>> import jax.numpy as jnp, infntk as nk
    >>> x = jnp.array([[3.0, 4.0], [1.0, 0.0]])
    >>> nk.LayerNorm().kernel(x, get="nngp")
    Array([[1. , 0.6],
           [0.6, 1. ]], dtype=float32)
"""
from __future__ import annotations

from typing import Sequence, Union

import jax.numpy as jnp

from ..kernel import Kernel
from . import spatial
from .base import Layer, check_std, frozen


@frozen
class LayerNorm(Layer):
    """Layer normalisation over ``axis`` (default: channels)."""

    keeps_fresh = True
    recursion_kind = "layernorm"
    stax_extra_arguments = (None, dict(batch_axis=0, channel_axis=-1))

    axis: Union[int, Sequence[int]] = -1
    eps: float = 1e-12

    def __post_init__(self):
        ax = (self.axis,) if isinstance(self.axis, int) else tuple(self.axis)
        if not ax or not all(isinstance(a, int) and not isinstance(a, bool) for a in ax):
            raise self.error(f"axis must be an int or a tuple of ints, got {self.axis!r}.")
        object.__setattr__(self, "axis", ax if len(ax) > 1 else ax[0])
        object.__setattr__(self, "eps", check_std(self.eps, "eps", "LayerNorm"))

    @property
    def label(self) -> str:
        return f"LayerNorm(axis={self.axis!r})"

    def axes(self, ndim: int) -> tuple:
        ax = (self.axis,) if isinstance(self.axis, int) else self.axis
        out = []
        for a in ax:
            if not -ndim <= a < ndim:
                raise self.error(f"axis {a} is out of range for inputs with {ndim} axes.")
            out.append(a % ndim)
        if 0 in out:
            raise self.error("cannot normalise over the batch axis (0).")
        if ndim - 1 not in out:
            raise self.error(f"axis must include the channel axis (-1) for an infinite-width limit to "
                             f"exist, got axis={self.axis!r}.")
        return tuple(sorted(set(out)))

    def output_shape(self, input_shape):
        self.axes(len(input_shape))
        return tuple(input_shape)

    def apply(self, params, x, **kwargs):
        ax = self.axes(x.ndim)
        mean = jnp.mean(x, axis=ax, keepdims=True)
        var = jnp.var(x, axis=ax, keepdims=True)
        return (x - mean) / jnp.sqrt(var + self.eps)

    def kernel_map(self, k: Kernel, ops) -> Kernel:
        from .nonlinear import NormalisedFeature
        ax = self.axes(len(k.shape1))
        if k.pre is not None:
            if ax != (len(k.shape1) - 1,):
                raise self.error("after a nonlinearity only normalisation over the channel axis "
                                 "alone is supported (the spatial mean of a non-centred feature is "
                                 "not an elementwise function).")
            return ops.activate(NormalisedFeature(k.feature, eps=self.eps), k.pre)
        if not k.is_gaussian:
            raise self.error("its input is not Gaussian and not an elementwise function of one "
                             "Gaussian pre-activation; no closed form is known.")
        eps = ops.param("ε", self.eps)
        spatial_dims = tuple(a - 1 for a in ax if a != len(k.shape1) - 1)
        mean = spatial.PositionMean(spatial_dims) if spatial_dims else None

        def scaled(a, role):
            if a is None:
                return None
            q11, q22 = ops.pair_variances(k, role)
            if mean is not None:
                q11, q22 = ops.position_mean(mean, q11, k, role), ops.position_mean(mean, q22, k, role)
            return a / ops.sqrt((q11 + eps) * (q22 + eps))

        return k.replace(nngp=scaled(k.nngp, "nngp"), ntk=scaled(k.ntk, "nngp"),
                         cov1=scaled(k.cov1, "cov1"), cov2=scaled(k.cov2, "cov2"))
