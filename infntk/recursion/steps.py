r"""One layer of a printed recursion: the :class:`Step`, and how features and duals are named.

A :class:`Step` is written by :class:`~infntk.recursion.symbolic_ops.SymbolicOps` while the layer's
own ``kernel_map`` runs on sympy (there is no per-layer symbolic code here). The state of the
recursion at depth :math:`l` is the covariance :math:`K^{(l)}` between the two inputs, the
per-input covariances :math:`K_{11}^{(l)}, K_{22}^{(l)}` (which enter a pair's equation as the
variances of its two sides) and the NTK :math:`\Theta^{(l)}`. A step holds the *pair* equations
:math:`K^{(l+1)} = f(\ldots)`, :math:`\Theta^{(l+1)} = g(\ldots)`; each input's own covariance follows
the same map at :math:`x' = x`, i.e. :math:`K_{11}^{(l+1)} = f` with :math:`K \to K_{11}` and
:math:`K_{22} \to K_{11}`.

Example:
    >>> import infntk as nk
    >>> step = (nk.Dense(4, W_std=2.0) >> nk.Erf()).recursion()[1]
    >>> step.kind, step.note, str(step.equations[1])
    ('activation', 'dual: closed-form', "Eq(Θ⁽²⁾, Θ⁽¹⁾*T'_{erf(1, 1, 0)}(K₁₁⁽¹⁾, K⁽¹⁾, K₂₂⁽¹⁾))")
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import sympy as sp

from ..dual import Q11, Q12
from ..errors import InfntkError
from .symbols import state_symbols

__all__ = ["Step", "NotSymbolic", "exact", "feature_name", "feature_defs", "feature_note"]


class NotSymbolic(InfntkError):
    """The closed form does not exist symbolically (a quadrature dual, a spatial layer, ...)."""


@dataclasses.dataclass(frozen=True)
class Step:
    r"""One layer of the recursion: :math:`K^{(\mathrm{out})} = ` ``nngp``,
    :math:`\Theta^{(\mathrm{out})} = ` ``ntk``, in the symbols of depth ``label_in`` (and earlier).

    Attributes:
        layer: the layer object.
        kind: the layer's ``recursion_kind`` (``'dense'``, ``'conv'``, ``'activation'``, ``'sum'``, ...).
        label_in, label_out: depth labels, e.g. ``(1,)`` and ``(2,)``; inside branch ``b`` of the
            step from depth 3: ``(3, 'b', 1)``, ...
        nngp, ntk: sympy right-hand sides.
        params: ``((symbol, value), ...)`` -- the hyperparameters the equations are written in.
        defs: ``((text_lhs, latex_lhs, expr_or_None), ...)`` -- the operators' definitions, e.g. the
            dual :math:`T_\phi(q_{11}, q_{12}, q_{22})` (``None`` when only numeric).
        note: e.g. ``'dual: closed-form'``, ``'dual: quadrature (no symbolic form)'``.
        branches: ``((letter, steps), ...)`` for branching layers.
        full_in: the spatial layout the layer receives (``True`` full, ``False`` diagonal --
            the state was diagonalized first, ``None`` as it arrives).
        shape_in, shape_out: the finite features' shapes (symbols where no input shape was given).
    """

    layer: Any
    kind: str
    label_in: tuple
    label_out: tuple
    nngp: Any
    ntk: Any
    params: tuple = ()
    defs: tuple = ()
    note: str = ""
    branches: tuple = ()
    full_in: Optional[bool] = None
    shape_in: Any = None
    shape_out: Any = None

    @property
    def name(self) -> str:
        """The layer's short name, e.g. ``Dense(512)``."""
        return self.layer.step_name

    @property
    def equations(self) -> tuple:
        """``(Eq(K_out, nngp), Eq(Theta_out, ntk))`` as sympy equations."""
        _, k, _, th = state_symbols(self.label_out)
        return sp.Eq(k, self.nngp, evaluate=False), sp.Eq(th, self.ntk, evaluate=False)


def exact(value) -> sp.Expr:
    """A hyperparameter as an exact sympy number (floats through their shortest decimal repr)."""
    if isinstance(value, sp.Basic):
        return value
    if isinstance(value, bool):
        return sp.Integer(int(value))
    if isinstance(value, int):
        return sp.Integer(value)
    return sp.Rational(repr(float(value)))


def feature_name(feat) -> str:
    """Short name of an elementwise feature, used as the subscript of its dual ``T``."""
    name = getattr(feat, "name", "") or str(feat.phi)
    return name if len(name) <= 24 else "φ"


def latex_name(name: str) -> str:
    return r"\mathrm{" + name.replace("_", r"\_").replace("∘", r"}\circ\mathrm{") \
        .replace("φ", r"}\phi\mathrm{") + "}"


def subscript(name: str) -> str:
    """``name`` as a text subscript: braced unless it is a plain identifier."""
    return name if name.replace("_", "").isalnum() else "{" + name + "}"


def feature_defs(feat) -> tuple:
    """Definitions printed with an activation step: the dual and derivative dual (or the route)."""
    n = feature_name(feat)
    ln = latex_name(n)
    n = subscript(n)
    args_t, args_l = "(q₁₁, q₁₂, q₂₂)", "(q_{11}, q_{12}, q_{22})"
    out = []
    if n in ("φ", "{φ}"):
        out.append(("φ(x)", r"\phi(x)", feat.phi))
    out.append((f"T_{n}{args_t}", f"T_{{{ln}}}{args_l}", feat.nngp))
    out.append((f"T'_{n}{args_t}", f"T'_{{{ln}}}{args_l}", feat.dnngp))
    return tuple(out)


def mean_def(feat) -> tuple:
    """The printed definition of a feature's channel mean :math:`m_\\phi(q)`."""
    n = feature_name(feat)
    mean = getattr(feat, "mean", None)
    return (f"m_{subscript(n)}(q)", f"m_{{{latex_name(n)}}}(q)",
            None if mean is None else sp.sympify(mean).xreplace({Q11: sp.Symbol("q", positive=True)}))


def feature_note(feat) -> str:
    note = f"dual: {feat.method}"
    if feat.method == "quadrature":
        note += " (Gauss–Hermite, no symbolic form)"
    elif feat.method == "hermite":
        degree = sp.Poly(feat.nngp, Q12).degree() if feat.nngp is not None else "?"
        note += f" (truncated at degree {degree}"
        if feat.truncation_error is not None:
            note += f", error ≤ {feat.truncation_error:.2g}"
        note += ")"
    return note

