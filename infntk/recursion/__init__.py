r"""The model's kernel recursion as an object: printable, evaluable, substitutable into a closed form.

``model.recursion()`` (or ``recursion(model)``) runs the model's own kernel maps -- the same code
``model.kernel`` runs -- on sympy (:class:`~infntk.recursion.symbolic_ops.SymbolicOps`, through the
driver's fold and the model's plan) and returns an immutable :class:`Recursion`: one
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

:meth:`Recursion.evaluate` evaluates the printed steps on arrays (:mod:`infntk.recursion.evaluate`)
and equals ``model.kernel``. For fully-connected models :meth:`Recursion.closed_form` substitutes the layers into each other and
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

import sympy as sp

from ..errors import InfntkError
from ..kernel import Kernel
from . import render
from .closed_form import closed_form as _closed_form
from .closed_form import compile_closed_form
from .steps import NotSymbolic, Step
from .symbolic_ops import SymbolicOps
from .symbols import XX, XY, YY, param_symbol, state_symbols

__all__ = ["Recursion", "Step", "recursion", "NotSymbolic", "XX", "XY", "YY"]


@dataclasses.dataclass(frozen=True)
class Recursion:
    """The kernel recursion of ``model`` (see the module docstring).

    Attributes:
        model: the layer it describes.
        input_shape: the input shape it was written for, or ``None`` (input dimension ``d``).
        steps: one :class:`Step` per layer, in order.
        shape: the input shape the steps were written for (``input_shape``, or symbolic sizes
            ``(1, [S_1, ...,] d)`` when none was given).
    """

    model: Any
    input_shape: Optional[tuple]
    steps: tuple
    shape: tuple = ()

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

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self, x1, x2=None, get=("nngp", "ntk")):
        """The kernel computed by evaluating the printed steps on arrays.

        Every state symbol is bound to its array (a variance :math:`K_{11}` placed against the
        covariance it meets), every named operator to its array implementation (the covariance
        operators of :mod:`infntk.layers.spatial`, the compiled duals), and the steps are evaluated
        in order -- a computation independent of the layers' array code path that must agree
        with ``model.kernel`` (the contract suite checks it for every layer). ``get`` as for
        ``model.kernel`` (``'nngp'``, ``'ntk'``, ``'cov1'``, ``'cov2'`` or a tuple of them).
        """
        from .evaluate import evaluate
        return evaluate(self, x1, x2, get)

    # -- closed form ----------------------------------------------------------------------------
    def closed_form(self, params: str = "numeric"):
        """``(nngp, ntk)``: the network's kernels as sympy expressions in ``xx, xy, yy``.

        ``params='numeric'`` substitutes the hyperparameters (floats as the exact rationals of
        their decimal repr, e.g. ``0.05 -> 1/20``); ``'symbolic'`` keeps one symbol per layer,
        ``σ_w⁽ˡ⁾``, ``σ_b⁽ˡ⁾`` (their values: :meth:`parameters`). Raises
        :class:`NotSymbolic` for spatial layers or duals that are only numeric.
        """
        nngp, ntk, _ = _closed_form(self, params)
        return nngp, ntk

    def parameters(self) -> dict:
        """``{symbol: value}`` of the per-layer hyperparameter symbols of
        ``closed_form(params='symbolic')``."""
        return dict(_closed_form(self, "symbolic")[2])

    def compile(self) -> Callable:
        """One fused, jit-able JAX function ``(xx, xy, yy) -> (nngp, ntk)`` of the closed form."""
        return compile_closed_form(*self.closed_form())

    lambdify = compile

    def __hash__(self):
        return hash((self.model, self.input_shape))

    def __eq__(self, other):
        return (isinstance(other, Recursion) and self.model == other.model
                and self.input_shape == other.input_shape)


def symbolic_shape(model) -> tuple:
    """Inputs of symbolic size for a model given no input shape: ``(1, d)``, else with 1, 2 or 3
    spatial axes of sizes ``S_1, ...`` -- the first the model accepts."""
    d = param_symbol("d")
    last = None
    for rank in range(4):
        shape = (1, *(param_symbol(f"S_{i + 1}") for i in range(rank)), d)
        try:
            model.output_shape(shape)
            return shape
        except InfntkError as e:
            last = e
    raise last


def input_state(shape, full: bool, ops: SymbolicOps) -> Kernel:
    r"""The symbolic state of the raw inputs: :math:`K^{(0)}, K^{(0)}_{11}, K^{(0)}_{22}, \Theta^{(0)}`."""
    k11, k, k22, th = state_symbols((0,))
    state = Kernel(nngp=k, ntk=th, cov1=k11, cov2=k22, shape1=tuple(shape), shape2=tuple(shape),
                   diagonal_spatial=not full, is_gaussian=True, is_input=True, compute_ntk=True)
    return ops.register(state, (0,))


def recursion(model, *, input_shape=None) -> Recursion:
    """The symbolic kernel recursion of ``model`` (see the module docstring).

    ``input_shape`` (batch axis included, e.g. ``(None, 3)``), when given, fixes the input
    dimension ``d`` (the fan-in of a first standard-parameterized layer) and is checked against
    the model; without it the recursion is written for inputs of symbolic size.
    """
    from ..driver import fold
    from ..layers import Layer
    from ..plan import plan
    if not isinstance(model, Layer):
        raise InfntkError(f"recursion: expected an infntk layer, got {type(model).__name__!r}.")
    if input_shape is not None:
        input_shape = tuple(1 if n is None else int(n) for n in input_shape)
        if len(input_shape) < 2:
            raise InfntkError(f"recursion: input_shape must include a batch axis and a feature "
                              f"axis, got {input_shape}.")
        model.output_shape(input_shape)
    shape = input_shape if input_shape is not None else symbolic_shape(model)
    ops = SymbolicOps()
    try:
        fold(model, input_state(shape, plan(model, shape).input_full, ops), ops, trim=True)
    except InfntkError as e:
        msg = str(e)
        raise type(e)(msg if msg.startswith("recursion") else f"recursion: {msg}") from None
    return Recursion(model=model, input_shape=input_shape, steps=ops.steps, shape=tuple(shape))
