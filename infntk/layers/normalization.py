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

from ..kernel import Kernel, pair_broadcast
from .base import Layer, check_std, frozen


@frozen
class LayerNorm(Layer):
    """Layer normalisation over ``axis`` (default: channels)."""

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

    def normaliser(self, k: Kernel, v, batch_ndim: int):
        """Per-input, per-position normalising variance (spatial axes in ``axis`` averaged)."""
        spatial_axes = [a - 1 for a in self.axes(len(k.shape1)) if a != len(k.shape1) - 1]
        if spatial_axes:
            v = jnp.mean(v, axis=tuple(batch_ndim + a for a in spatial_axes), keepdims=True)
        return v + self.eps

    def kernel_map(self, k: Kernel) -> Kernel:
        from .nonlinear import normalise_feature
        if k.pre is not None:
            return normalise_feature(self, k)
        if not k.is_gaussian:
            raise self.error("its input is not Gaussian and not an elementwise function of one "
                             "Gaussian pre-activation; no closed form is known.")
        return scale_by_variance(self, k)


def scale_by_variance(layer: LayerNorm, k: Kernel) -> Kernel:
    """Divide every covariance by the square roots of the normalising variances of its two sides."""
    v1 = layer.normaliser(k, k.variance1(), 1)
    v2 = layer.normaliser(k, k.variance2(), 1)
    q11, q22 = pair_broadcast(v1, v2, k, lead=2)
    nngp = k.nngp / jnp.sqrt(q11 * q22)
    ntk = None if k.ntk is None else k.ntk / jnp.sqrt(q11 * q22)
    a, b = pair_broadcast(v1, v1, k, lead=1)
    cov1 = k.cov1 / jnp.sqrt(a * b)
    cov2 = None
    if k.cov2 is not None:
        a, b = pair_broadcast(v2, v2, k, lead=1)
        cov2 = k.cov2 / jnp.sqrt(a * b)
    return k.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2)
