r"""The identity layer, :math:`K' = K`, :math:`\Theta' = \Theta`.

A residual block is ``block + Identity()``.

Example:
    >>> import jax.numpy as jnp, infntk as nk
    >>> x = jnp.eye(2)
    >>> nk.Identity().kernel(x, get="nngp")
    Array([[0.5, 0. ],
           [0. , 0.5]], dtype=float32)
"""
from __future__ import annotations

from ..kernel import Kernel
from .base import Layer, frozen


@frozen
class Identity(Layer):
    """Passes its input through unchanged."""

    keeps_fresh = True
    recursion_kind = "identity"

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def apply(self, params, x, **kwargs):
        return x

    def kernel_map(self, k: Kernel, ops) -> Kernel:
        return k
