r"""A neural-tangents-compatible facade: ``from infntk import stax``.

Every function has the name and signature of its ``neural_tangents.stax`` (0.6.5) counterpart and
returns an ``(init_fn, apply_fn, kernel_fn)`` triple, so a neural-tangents model ports by changing
one import. ``kernel_fn(x1, x2=None, get=None)`` returns the array for ``get='nngp'``/``'ntk'``, a
named tuple for a tuple of names, and the :class:`~infntk.kernel.Kernel` state for ``None``.
Conventions (NHWC, ``W_std``/``b_std`` scaling, paddings, parameterizations) are the same.

Example:
    >>> import jax.numpy as jnp
    >>> from infntk import stax
    >>> init_fn, apply_fn, kernel_fn = stax.serial(stax.Dense(512, W_std=1.5), stax.Relu(), stax.Dense(1))
    >>> kernel_fn(jnp.ones((3, 4)), None, "ntk").shape
    (3, 3)
"""
from __future__ import annotations

from typing import Optional, Sequence

from . import layers as L
from .errors import InfntkError


class Triple(tuple):
    """``(init_fn, apply_fn, kernel_fn)`` that also remembers the infntk layer it came from."""

    layer: L.Layer

    def __new__(cls, layer: L.Layer):
        def kernel_fn(x1, x2=None, get=None, **kwargs):
            if kwargs:
                raise InfntkError(f"{layer.label}: kernel_fn got unsupported arguments {sorted(kwargs)}.")
            return layer.kernel(x1, x2, get)

        self = super().__new__(cls, (layer.init, layer.apply, kernel_fn))
        self.layer = layer
        return self


def _axes(name: str, batch_axis: int = 0, channel_axis: int = -1) -> None:
    if batch_axis != 0 or channel_axis not in (-1,):
        raise InfntkError(f"{name}: only batch_axis=0 and channel_axis=-1 (channels last) are "
                          f"supported, got batch_axis={batch_axis}, channel_axis={channel_axis}.")


def _layer(t) -> L.Layer:
    if isinstance(t, Triple):
        return t.layer
    if isinstance(t, L.Layer):
        return t
    raise InfntkError(f"stax: expected a layer made by infntk.stax, got {type(t).__name__}.")


def Dense(out_dim: int, W_std: float = 1.0, b_std: Optional[float] = None, batch_axis: int = 0,
          channel_axis: int = -1, parameterization: str = "ntk", s: tuple = (1, 1)) -> Triple:
    _axes("Dense", batch_axis, channel_axis)
    return Triple(L.Dense(out_dim, W_std, b_std, parameterization, s))


def Conv(out_chan: int, filter_shape: Sequence[int], strides: Optional[Sequence[int]] = None,
         padding: str = "VALID", W_std: float = 1.0, b_std: Optional[float] = None,
         dimension_numbers=None, parameterization: str = "ntk", s: tuple = (1, 1)) -> Triple:
    if dimension_numbers is not None:
        d = len(tuple(filter_shape))
        expected = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC"),
                    3: ("NDHWC", "DHWIO", "NDHWC")}.get(d)
        if tuple(dimension_numbers) != expected:
            raise InfntkError(f"Conv: only channels-last dimension_numbers {expected} are supported, "
                              f"got {dimension_numbers!r}.")
    return Triple(L.Conv(out_chan, filter_shape, strides, padding, W_std, b_std, parameterization, s))


def AvgPool(window_shape: Sequence[int], strides: Optional[Sequence[int]] = None,
            padding: str = "VALID", normalize_edges: bool = False, batch_axis: int = 0,
            channel_axis: int = -1) -> Triple:
    _axes("AvgPool", batch_axis, channel_axis)
    return Triple(L.AvgPool(window_shape, strides, padding, normalize_edges))


def GlobalAvgPool(batch_axis: int = 0, channel_axis: int = -1) -> Triple:
    _axes("GlobalAvgPool", batch_axis, channel_axis)
    return Triple(L.GlobalAvgPool())


def Flatten(batch_axis: int = 0, batch_axis_out: int = 0) -> Triple:
    _axes("Flatten", batch_axis)
    if batch_axis_out != 0:
        raise InfntkError("Flatten: only batch_axis_out=0 is supported.")
    return Triple(L.Flatten())


def Identity() -> Triple:
    return Triple(L.Identity())


def LayerNorm(axis=-1, eps: float = 1e-12, batch_axis: int = 0, channel_axis: int = -1) -> Triple:
    _axes("LayerNorm", batch_axis, channel_axis)
    return Triple(L.LayerNorm(axis, eps))


# ``do_stabilize`` is neural-tangents' switch for a numerically stabler ReLU-family kernel; infntk's
# duals are always evaluated in the stable form (angles from q11 q22 - q12^2), so it is accepted and
# has nothing left to do.

def Relu(do_stabilize: bool = False) -> Triple:
    return Triple(L.Relu())


def ABRelu(a: float, b: float, do_stabilize: bool = False) -> Triple:
    return Triple(L.ABRelu(a, b))


def LeakyRelu(alpha: float, do_stabilize: bool = False) -> Triple:
    return Triple(L.LeakyRelu(alpha))


def Abs(do_stabilize: bool = False) -> Triple:
    return Triple(L.Abs())


def Erf(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Triple:
    return Triple(L.Erf(a, b, c))


def Gelu(approximate: bool = False) -> Triple:
    return Triple(L.Gelu(approximate))


def Sin(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Triple:
    return Triple(L.Sin(a, b, c))


def Cos(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Triple:
    return Triple(L.Cos(a, b, c))


def Exp(a: float = 1.0, b: float = 1.0) -> Triple:
    return Triple(L.Exp(a, b))


def Gaussian(a: float = 1.0, b: float = -1.0) -> Triple:
    return Triple(L.Gaussian(a, b))


def Rbf(gamma: float = 1.0) -> Triple:
    return Triple(L.Rbf(gamma))


def Sign() -> Triple:
    return Triple(L.Sign())


def Monomial(degree: int) -> Triple:
    return Triple(L.Monomial(degree))


def RectifiedMonomial(degree: int) -> Triple:
    return Triple(L.RectifiedMonomial(degree))


def Polynomial(coef: Sequence[float]) -> Triple:
    return Triple(L.Polynomial(coef))


def Hermite(degree: int) -> Triple:
    return Triple(L.Hermite(degree))


def serial(*layers) -> Triple:
    return Triple(L.serial(*(_layer(t) for t in layers)))


def parallel(*layers) -> Triple:
    return Triple(L.parallel(*(_layer(t) for t in layers)))


def FanOut(num: int) -> Triple:
    return Triple(L.FanOut(num))


def FanInSum() -> Triple:
    return Triple(L.FanInSum())


def FanInConcat(axis: int = -1) -> Triple:
    return Triple(L.FanInConcat(axis))
