r"""Fully-connected layer, acting on the last (channel) axis.

With ``n`` input channels, under the NTK parameterization
:math:`z = \frac{\sigma_w}{\sqrt{n}} W x + \sigma_b b`, :math:`W_{ij}, b_i \sim \mathcal N(0, 1)`,
and under the standard one :math:`z = W x / \sqrt{s_0} + b`,
:math:`W_{ij} \sim \mathcal N(0, \sigma_w^2 s_0/n)`, :math:`b_i \sim \mathcal N(0, \sigma_b^2)`,
with ``out_dim * s[1]`` outputs. The width scalings ``s = (s_0, s_1)`` are those of Sohl-Dickstein
et al. 2020 ("On the infinite width limit of neural networks with a standard parameterization"):
the layer's nominal input width is :math:`n/s_0` (``s_0`` is the previous layer's ``s_1``; 1 for the
first layer) and its output is ``s_1`` times ``out_dim`` wide. The infinite-width recursion
(Jacot et al. 2018; Lee et al. 2018) is

.. math::
    K' = \sigma_w^2 K + \sigma_b^2, \qquad
    \Theta' = K' + \sigma_w^2\,\Theta \quad \text{(NTK)}, \qquad
    \Theta' = \frac{n}{s_0} K + \sigma_w^2 \Theta + [b] \quad \text{(standard)},

where ``[b]`` is 1 when the layer has a bias, exactly as neural-tangents 0.6.5. The NNGP does not
depend on ``s``; the NTK does, through the weights' gradient :math:`x/\sqrt{s_0}`. Under the NTK
parameterization ``s`` has no effect (neural-tangents ignores it there too): the layer has
``out_dim`` outputs and the usual :math:`\sigma_w/\sqrt{n}` scaling.

Example:
    >>> import jax.numpy as jnp, infntk as nk
    >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    >>> nk.Dense(4, W_std=2.0, b_std=0.5).kernel(x, get="nngp")
    Array([[2.25, 0.25],
           [0.25, 2.25]], dtype=float32)
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from ..kernel import Kernel
from .base import Layer, check_positive_int, check_std, frozen

PARAMETERIZATIONS = ("ntk", "standard")


def validate_affine(layer, where: str) -> None:
    """Check and normalise the hyperparameters every weight layer shares (in ``__post_init__``)."""
    object.__setattr__(layer, "W_std", check_std(layer.W_std, "W_std", where))
    object.__setattr__(layer, "b_std", check_std(layer.b_std, "b_std", where, allow_none=True))
    object.__setattr__(layer, "parameterization", check_parameterization(layer.parameterization, where))
    object.__setattr__(layer, "s", check_width_scalings(layer.s, where))


def check_width_scalings(value, where: str) -> tuple:
    """``s = (s_0, s_1)``: two positive integers (the standard parameterization's width scalings)."""
    from ..errors import InfntkError
    bad = InfntkError(f"{where}: s must be a pair of positive integers (s_in, s_out), got {value!r}.")
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise bad
    try:
        return tuple(check_positive_int(v, "s", where) for v in value)
    except InfntkError:
        raise bad from None


def out_width(layer, n: int) -> int:
    """The finite layer's output channels: ``n * s_1`` (standard) or ``n`` (NTK)."""
    return n * layer.s[1] if layer.parameterization == "standard" else n


def weight_fan_in(layer, fan_in: int) -> float:
    r"""The width :math:`n/s_0` that scales the standard parameterization's weights and its NTK
    term (``fan_in`` itself under the NTK parameterization, where ``s`` has no effect)."""
    if layer.parameterization != "standard" or layer.s[0] == 1:
        return fan_in
    return fan_in / layer.s[0]


def scale_and_shift(layer, y, b, fan_in: int):
    r"""Finish a weight layer's forward pass: NTK scaling :math:`\sigma_w/\sqrt{n}` and
    :math:`\sigma_b b`, or, in the standard parameterization (weights already scaled),
    :math:`1/\sqrt{s_0}` and ``+ b``."""
    if layer.parameterization == "ntk":
        y = y * (layer.W_std / fan_in ** 0.5)
        if b is not None:
            y = y + layer.b_std * b.astype(y.dtype)
    else:
        if layer.s[0] != 1:
            y = y * (1.0 / layer.s[0] ** 0.5)
        if b is not None:
            y = y + b.astype(y.dtype)
    return y


def check_parameterization(value: str, where: str) -> str:
    from ..errors import InfntkError
    if not isinstance(value, str) or value.lower() not in PARAMETERIZATIONS:
        raise InfntkError(f"{where}: unknown parameterization {value!r}; expected 'ntk' or 'standard'.")
    return value.lower()


@frozen
class Dense(Layer):
    """Fully-connected layer with ``out_dim`` outputs (``out_dim * s[1]`` in the standard
    parameterization; see the module docstring)."""

    is_linear = True
    recursion_kind = "dense"
    stax_extra_arguments = ("b_std", dict(batch_axis=0, channel_axis=-1))
    out_dim: int
    W_std: float = 1.0
    b_std: Optional[float] = None
    parameterization: str = "ntk"
    s: tuple = (1, 1)

    def __post_init__(self):
        where = f"Dense({self.out_dim!r})"
        object.__setattr__(self, "out_dim", check_positive_int(self.out_dim, "out_dim", where))
        validate_affine(self, where)

    @property
    def label(self) -> str:
        return f"Dense({self.out_dim})"

    def output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise self.error(f"needs inputs with a batch and a feature axis, got shape {input_shape}.")
        return tuple(input_shape[:-1]) + (out_width(self, self.out_dim),)

    def init(self, key, input_shape):
        out = self.output_shape(tuple(input_shape))
        k1, k2 = jax.random.split(key)
        W = jax.random.normal(k1, (input_shape[-1], out[-1]))
        b = None if self.b_std is None else jax.random.normal(k2, (1,) * (len(input_shape) - 1) + (out[-1],))
        if self.parameterization == "standard":
            W = W * (self.W_std / weight_fan_in(self, input_shape[-1]) ** 0.5)
            b = None if b is None else b * self.b_std
        return out, (W, b)

    def apply(self, params, x, **kwargs):
        W, b = params
        if x.ndim < 2 or x.shape[-1] != W.shape[0]:
            raise self.error(f"its parameters take inputs with {W.shape[0]} features on the last "
                             f"axis (batch first), got an input of shape {tuple(x.shape)}.")
        y = jnp.tensordot(x, W.astype(x.dtype), (-1, 0))
        return scale_and_shift(self, y, b, x.shape[-1])

    def kernel_map(self, k: Kernel, ops) -> Kernel:
        w2 = ops.param("σ_w", self.W_std) ** 2
        b2 = 0 if self.b_std is None else ops.param("σ_b", self.b_std) ** 2

        def affine(a):
            return None if a is None else w2 * a + b2

        nngp = affine(k.nngp)
        ntk = k.ntk
        if ntk is not None:
            if self.parameterization == "ntk":
                ntk = nngp + w2 * ntk
            else:
                ntk = (ops.fan_in(weight_fan_in(self, k.shape1[-1])) * k.nngp + w2 * ntk
                       + (0 if self.b_std is None else 1))
        return k.replace(nngp=nngp, ntk=ntk, cov1=affine(k.cov1), cov2=affine(k.cov2),
                         shape1=self.output_shape(k.shape1), shape2=self.output_shape(k.shape2),
                         is_gaussian=True, is_input=False, pre=None, feature=None)
