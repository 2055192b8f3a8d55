r"""Activations: elementwise layers defined by their dual.

Each activation :math:`\phi` is one object whose finite ``apply`` and infinite-width ``kernel_map``
come from the same sympy source (:mod:`infntk.dual`): the dual
:math:`T_\phi(q_{11}, q_{12}, q_{22}) = \mathbb E[\phi(u)\phi(v)]` and, by Price's theorem, the
derivative dual :math:`T'_\phi = \partial T_\phi / \partial q_{12}`. On a Gaussian input
:math:`K' = T_\phi(K)`, :math:`\Theta' = T'_\phi(K)\,\Theta`; on an elementwise function of a Gaussian
(a second nonlinearity) the maps are composed (:mod:`infntk.layers.nonlinear`).

The parameterisations are neural-tangents 0.6.5's, e.g. ``Erf(a, b, c)`` is
:math:`a\,\mathrm{erf}(b x) + c`. ``Activation(expr)`` takes any sympy expression in one symbol and
derives its dual (closed form when recognised, exact Gaussian moments for polynomials, a Hermite
expansion, or quadrature; ``layer.dual.method`` says which).

Example:
    >>> import jax.numpy as jnp, sympy, infntk as nk
    >>> x = sympy.Symbol("x")
    >>> cube = nk.Activation(x**3 - 2 * x)
    >>> cube.dual.method
    'moments'
    >>> (nk.Dense(8) >> nk.Relu() >> nk.Dense(1)).kernel(jnp.eye(2), get="nngp").shape
    (2, 2)
"""
from __future__ import annotations

import functools
from typing import Any, Optional, Sequence

from ..kernel import Kernel
from .base import Layer, frozen
from .nonlinear import apply_elementwise


@functools.lru_cache(maxsize=None)
def _dual_of(layer: "Elementwise"):
    return layer.make_dual()


class Elementwise(Layer):
    """Base class of activations: subclasses provide ``make_dual()`` (a :class:`infntk.dual.Dual`)."""

    recursion_kind = "activation"

    def make_dual(self):
        raise NotImplementedError

    @property
    def dual(self):
        """The activation's :class:`infntk.dual.Dual` (sympy expressions and compiled functions)."""
        return _dual_of(self)

    def output_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) < 2:
            raise self.error(f"expects an array with a batch axis and features, got {input_shape}.")
        return tuple(input_shape)

    def apply(self, params, x, **kwargs):
        return self.dual.phi_fn(x)

    def kernel_map(self, k: Kernel, ops) -> Kernel:
        return apply_elementwise(self, k, ops)


def _table():
    from ..dual import table
    return table


@frozen
class Relu(Elementwise):
    r""":math:`\max(x, 0)` (arc-cosine kernel of degree 1, Cho & Saul 2009)."""

    stax_extra_arguments = (None, dict(do_stabilize=False))

    def make_dual(self):
        return _table().relu()


@frozen
class ABRelu(Elementwise):
    r""":math:`a \min(x, 0) + b \max(x, 0)`."""

    stax_extra_arguments = (None, dict(do_stabilize=False))

    a: float
    b: float

    def make_dual(self):
        return _table().abrelu(self.a, self.b)


@frozen
class LeakyRelu(Elementwise):
    r""":math:`\max(x, \alpha x)` for :math:`0 \le \alpha`, i.e. ``ABRelu(alpha, 1)``."""

    stax_extra_arguments = (None, dict(do_stabilize=False))

    alpha: float

    def make_dual(self):
        return _table().leaky_relu(self.alpha)


@frozen
class Abs(Elementwise):
    r""":math:`|x|`."""

    stax_extra_arguments = (None, dict(do_stabilize=False))

    def make_dual(self):
        return _table().abs_()


@frozen
class Erf(Elementwise):
    r""":math:`a\,\mathrm{erf}(b x) + c` (Williams 1997)."""

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0

    def make_dual(self):
        return _table().erf(self.a, self.b, self.c)


@frozen
class Gelu(Elementwise):
    r""":math:`x\,\Phi(x)` (exact Gaussian error linear unit)."""

    approximate: bool = False

    def make_dual(self):
        return _table().gelu(self.approximate)


@frozen
class Sin(Elementwise):
    r""":math:`a \sin(b x + c)`."""

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0

    def make_dual(self):
        return _table().sin(self.a, self.b, self.c)


@frozen
class Cos(Elementwise):
    r""":math:`a \cos(b x + c)`."""

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0

    def make_dual(self):
        return _table().cos(self.a, self.b, self.c)


@frozen
class Exp(Elementwise):
    r""":math:`a e^{b x}`."""

    a: float = 1.0
    b: float = 1.0

    def make_dual(self):
        return _table().exp(self.a, self.b)


@frozen
class Gaussian(Elementwise):
    r""":math:`a e^{b x^2}` (``b < 1/(2q)`` for a finite kernel at variance ``q``)."""

    a: float = 1.0
    b: float = -1.0

    def make_dual(self):
        return _table().gaussian(self.a, self.b)


@frozen
class Rbf(Elementwise):
    r""":math:`\sqrt 2 \sin(\sqrt{2\gamma} x + \pi/4)`, whose NNGP on unit-variance inputs is the RBF
    kernel :math:`e^{-\gamma \|x - x'\|^2}`."""

    gamma: float = 1.0

    def make_dual(self):
        return _table().rbf(self.gamma)


@frozen
class Sign(Elementwise):
    r""":math:`\mathrm{sign}(x)` (its NTK needs :math:`\delta`; see :func:`infntk.dual.table.sign`)."""

    def make_dual(self):
        return _table().sign()


@frozen
class Monomial(Elementwise):
    r""":math:`x^n`."""

    degree: int

    def __post_init__(self):
        if isinstance(self.degree, bool) or not isinstance(self.degree, int) or self.degree < 0:
            raise self.error(f"degree must be a non-negative integer, got {self.degree!r}.")

    def make_dual(self):
        return _table().monomial(self.degree)


@frozen
class RectifiedMonomial(Elementwise):
    r""":math:`\max(x, 0)^n` (arc-cosine kernel of degree ``n``)."""

    degree: int

    def __post_init__(self):
        if isinstance(self.degree, bool) or not isinstance(self.degree, int) or self.degree < 0:
            raise self.error(f"degree must be a non-negative integer, got {self.degree!r}.")

    def make_dual(self):
        return _table().rectified_monomial(self.degree)


@frozen
class Polynomial(Elementwise):
    r""":math:`\sum_i c_i x^i`."""

    coef: Sequence[float]

    def __post_init__(self):
        try:
            coef = tuple(float(c) for c in self.coef)
        except (TypeError, ValueError):
            raise self.error(f"coef must be a sequence of numbers, got {self.coef!r}.") from None
        object.__setattr__(self, "coef", coef)

    def make_dual(self):
        return _table().polynomial(self.coef)


@frozen
class Hermite(Elementwise):
    r"""The normalised probabilists' Hermite polynomial :math:`He_n(x)/\sqrt{n!}`."""

    degree: int

    def __post_init__(self):
        if isinstance(self.degree, bool) or not isinstance(self.degree, int) or self.degree < 0:
            raise self.error(f"degree must be a non-negative integer, got {self.degree!r}.")

    def make_dual(self):
        return _table().hermite(self.degree)


@frozen
class Activation(Elementwise):
    r"""An activation given as a sympy expression in one symbol, its dual derived.

    ``hermite_degree`` bounds the Hermite expansion when that route is taken.
    """

    named_in = ()  # its argument is a sympy expression, not a literal

    expr: Any
    hermite_degree: Optional[int] = None

    @property
    def label(self) -> str:
        return f"Activation({self.expr})"

    def make_dual(self):
        from ..dual import dual_from_expr
        return dual_from_expr(self.expr, hermite_degree=self.hermite_degree)
