r"""The model's kernel recursion as an object: printable, and substitutable into a closed form.

``model.recursion()`` (or ``recursion(model)``) walks the model -- ``>>``, ``+``, ``|``,
``FanOut``/``parallel`` -- and returns an immutable :class:`Recursion`: one
:class:`~infntk.recursion.steps.Step` per layer, each with the sympy equations for
:math:`K^{(l+1)}` and :math:`\Theta^{(l+1)}` in terms of :math:`K^{(l)}, \Theta^{(l)}`:

.. math::
    \text{Dense:}\quad & K^{(l+1)} = \sigma_w^2 K^{(l)} + \sigma_b^2,\qquad
        \Theta^{(l+1)} = K^{(l+1)} + \sigma_w^2\Theta^{(l)}
        \quad (\text{standard: } n K^{(l)} + \sigma_w^2\Theta^{(l)} + 1)\\
    \phi:\quad & K^{(l+1)} = T_\phi(K^{(l)}_{11}, K^{(l)}, K^{(l)}_{22}),\qquad
        \Theta^{(l+1)} = T'_\phi(K^{(l)}_{11}, K^{(l)}, K^{(l)}_{22})\,\Theta^{(l)}\\
    \text{Conv:}\quad & K^{(l+1)} = \sigma_w^2\mathcal A_{3\times3,\,s=1,\,\mathrm{SAME}}[K^{(l)}]
        + \sigma_b^2, \quad \ldots

with :math:`T_\phi` and :math:`T'_\phi` given by the activation's dual (:mod:`infntk.dual`; the route
-- closed form, moments, Hermite, quadrature -- is printed), pooling, flattening, global average
pooling and LayerNorm as named operators on the covariance, and sums/concatenations of branches as
sums/weighted sums of the branches' recursions (printed indented).

For fully-connected models :meth:`Recursion.closed_form` substitutes the layers into each other and
returns the network's ``(nngp, ntk)`` as sympy expressions in the input statistics ``xx`` =
:math:`\|x\|^2/d`, ``xy`` = :math:`x\cdot x'/d`, ``yy`` = :math:`\|x'\|^2/d`; :meth:`Recursion.compile`
makes one fused JAX function of them.

Example:
    >>> import jax.numpy as jnp, infntk as nk
    >>> model = nk.Dense(512, W_std=1.5, b_std=0.05) >> nk.Relu() >> nk.Dense(1, W_std=1.5)
    >>> rec = model.recursion()
    >>> print(rec.text().splitlines()[1])
    Dense(512):  K⁽¹⁾ = σ_w²·K⁽⁰⁾ + σ_b²,  Θ⁽¹⁾ = K⁽¹⁾ + σ_w²·Θ⁽⁰⁾    where σ_w = 1.5, σ_b = 0.05
    >>> nngp, ntk = rec.closed_form()
    >>> sorted(map(str, nngp.free_symbols))
    ['xx', 'xy', 'yy']
    >>> x = jnp.array([[1.0, 0.0], [0.6, 0.8]])      # d = 2: xx = yy = 1/2, xy = 0.3
    >>> k_nngp, k_ntk = rec.compile()(0.5, 0.3, 0.5)
    >>> bool(jnp.allclose(k_ntk, model.kernel(x, get="ntk")[0, 1]))
    True
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional


from ..errors import InfntkError
from . import render
from .closed_form import closed_form as _closed_form
from .closed_form import compile_closed_form
from .steps import Ctx, NotSymbolic, Step, input_state, walk
from .symbols import XX, XY, YY

__all__ = ["Recursion", "Step", "recursion", "NotSymbolic", "XX", "XY", "YY"]


@dataclasses.dataclass(frozen=True)
class Recursion:
    """The kernel recursion of ``model`` (see the module docstring).

    Attributes:
        model: the layer it describes.
        input_shape: the input shape it was written for, or ``None`` (input dimension ``d``).
        steps: one :class:`Step` per layer, in order.
    """

    model: Any
    input_shape: Optional[tuple]
    steps: tuple

    # -- a sequence of steps -----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self):
        return iter(self.steps)

    def __getitem__(self, i) -> Step:
        return self.steps[i]

    @property
    def equations(self) -> tuple:
        """``((Eq(K⁽¹⁾, ...), Eq(Θ⁽¹⁾, ...)), ...)``: the sympy equations of the top-level steps."""
        return tuple(s.equations for s in self.steps)

    # -- printing -------------------------------------------------------------------------------
    def text(self, numeric: bool = False) -> str:
        """Plain text, one line per layer (``numeric=True``: hyperparameter values substituted)."""
        return render.text(self, numeric)

    def latex(self, numeric: bool = False) -> str:
        """LaTeX (an ``aligned`` block), one row per layer."""
        return render.latex(self, numeric)

    def __str__(self) -> str:
        return self.text()

    def _repr_latex_(self) -> str:
        return "$$" + self.latex() + "$$"

    # -- closed form ----------------------------------------------------------------------------
    def closed_form(self, params: str = "numeric"):
        """``(nngp, ntk)``: the network's kernels as sympy expressions in ``xx, xy, yy``.

        ``params='numeric'`` substitutes the hyperparameters (floats as the exact rationals of
        their decimal repr, e.g. ``0.05 -> 1/20``); ``'symbolic'`` keeps one symbol per layer,
        ``σ_w⁽ˡ⁾``, ``σ_b⁽ˡ⁾`` (their values: :meth:`parameters`). Raises
        :class:`NotSymbolic` for spatial layers or duals that are only numeric.
        """
        nngp, ntk, _ = _closed_form(self.model, self.input_shape, params)
        return nngp, ntk

    def parameters(self) -> dict:
        """``{symbol: value}`` of the per-layer hyperparameter symbols of
        ``closed_form(params='symbolic')``."""
        return dict(_closed_form(self.model, self.input_shape, "symbolic")[2])

    def compile(self) -> Callable:
        """One fused, jit-able JAX function ``(xx, xy, yy) -> (nngp, ntk)`` of the closed form."""
        return compile_closed_form(*self.closed_form())

    lambdify = compile


def recursion(model, *, input_shape=None) -> Recursion:
    """The symbolic kernel recursion of ``model`` (see the module docstring).

    ``input_shape`` (batch axis included, e.g. ``(None, 3)``), when given, fixes the input
    dimension ``d`` (the fan-in of a first standard-parameterized layer) and is checked against
    the model; without it the recursion is written for ``(N, d)`` inputs.
    """
    from ..layers import Layer
    if not isinstance(model, Layer):
        raise InfntkError(f"recursion: expected an infntk layer, got {type(model).__name__!r}.")
    if input_shape is not None:
        input_shape = tuple(1 if n is None else int(n) for n in input_shape)
        if len(input_shape) < 2:
            raise InfntkError(f"recursion: input_shape must include a batch axis and a feature "
                              f"axis, got {input_shape}.")
        model.output_shape(input_shape)
    ctx = Ctx(display=True)
    _, steps = walk(model, input_state(input_shape, ctx), ctx)
    return Recursion(model=model, input_shape=input_shape, steps=steps)
