r"""``Dual``: an activation together with its NNGP and derivative duals.

For :math:`(u, v) \sim \mathcal N\big(0, \begin{psmallmatrix} q_{11} & q_{12}\\ q_{12} & q_{22}
\end{psmallmatrix}\big)`:

.. math::
    T(q_{11}, q_{12}, q_{22}) = \mathbb E[\phi(u)\phi(v)], \qquad
    T'(q_{11}, q_{12}, q_{22}) = \mathbb E[\phi'(u)\phi'(v)] = \partial T/\partial q_{12}
    \quad\text{(Price's theorem)},\qquad m(q) = \mathbb E[\phi(\sqrt q\,z)].

``nngp``, ``dnngp`` and ``mean`` are sympy expressions in ``Q11, Q12, Q22`` (``mean`` in ``Q11``),
or ``None`` when only a numerical route exists (``method == 'quadrature'``). The ``*_fn``
attributes are the compiled ``jax.numpy`` functions (see :mod:`infntk.dual.compile`).

Example:
    >>> from infntk.dual import table
    >>> d = table.relu()
    >>> float(d.nngp_fn(1.0, 1.0, 1.0)), float(d.dnngp_fn(1.0, 0.0, 1.0))
    (0.5, 0.25)
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional

import sympy as sp

from ..errors import InfntkError
from .compile import compile_expr, compile_exprs
from .quadrature import (gauss_hermite_dual, gauss_hermite_mean, kinks, split_gauss_dual,
                         split_gauss_mean)
from .symbols import Q11, Q12, Q22, X

__all__ = ["Dual", "METHODS"]

METHODS = ("closed-form", "moments", "hermite", "quadrature")
_QARGS = (Q11, Q12, Q22)


@dataclasses.dataclass(frozen=True)
class Dual:
    """An activation :math:`\\phi` and its duals (see the module docstring).

    Attributes:
        phi: sympy expression of the activation in :data:`~infntk.dual.symbols.X`.
        nngp: :math:`T(q_{11}, q_{12}, q_{22})` as a sympy expression, or ``None``.
        dnngp: :math:`T'` as a sympy expression (``sympy.diff(nngp, Q12)`` up to simplification),
            or ``None``.
        method: the route that produced ``nngp``: ``'closed-form'``, ``'moments'``, ``'hermite'``
            or ``'quadrature'``.
        name: a short human-readable name.
        mean: :math:`m(q) = \\mathbb E[\\phi(\\sqrt q z)]` as a sympy expression in ``Q11``, or
            ``None`` (then computed by quadrature).
        truncation_error: for ``'hermite'``, an upper bound on :math:`|T - T_N|` over the
            reference variances (see :func:`infntk.dual.derive.dual_from_expr`); else ``None``.
        quadrature_degree: Gauss–Hermite nodes per dimension for numerical routes.
        notes: conventions worth knowing (e.g. a derivative taken almost everywhere).
    """

    phi: sp.Expr
    nngp: Optional[sp.Expr]
    dnngp: Optional[sp.Expr]
    method: str
    name: str = ""
    mean: Optional[sp.Expr] = None
    truncation_error: Optional[float] = None
    quadrature_degree: int = 64
    notes: str = ""

    def __post_init__(self):
        if self.method not in METHODS:
            raise InfntkError(f"Dual {self.name!r}: method must be one of {METHODS}, "
                              f"got {self.method!r}.")
        extra = sp.sympify(self.phi).free_symbols - {X}
        if extra:
            raise InfntkError(f"Dual {self.name!r}: phi may only depend on X, it also depends on "
                              f"{sorted(map(str, extra))}.")
        for label, e in (("nngp", self.nngp), ("dnngp", self.dnngp)):
            if e is not None and not sp.sympify(e).free_symbols <= set(_QARGS):
                raise InfntkError(f"Dual {self.name!r}: {label} may only depend on Q11, Q12, Q22.")

    # ------------------------------------------------------------------ compiled functions

    @functools.cached_property
    def phi_fn(self) -> Callable:
        """``x -> phi(x)``, elementwise ``jax.numpy``."""
        return compile_expr(self.phi, (X,))

    @functools.cached_property
    def dphi_fn(self) -> Callable:
        """``x -> phi'(x)`` (almost-everywhere derivative: jumps contribute nothing)."""
        return compile_expr(sp.diff(self.phi, X), (X,))

    @functools.cached_property
    def nngp_fn(self) -> Callable:
        """``(q11, q12, q22) -> T``: broadcasting, jit-able, dtype-preserving."""
        if self.nngp is not None:
            return compile_expr(self.nngp, _QARGS)
        if self.kinks:
            return split_gauss_dual(self.phi_fn, self.kinks)
        return gauss_hermite_dual(self.phi_fn, self.quadrature_degree)

    @functools.cached_property
    def dnngp_fn(self) -> Callable:
        """``(q11, q12, q22) -> T'``: broadcasting, jit-able, dtype-preserving."""
        if self.dnngp is not None:
            return compile_expr(self.dnngp, _QARGS)
        if self.kinks:
            return split_gauss_dual(self.dphi_fn, self.kinks)
        return gauss_hermite_dual(self.dphi_fn, self.quadrature_degree)

    @functools.cached_property
    def kinks(self) -> tuple:
        """Points where ``phi`` may be non-smooth; numerical routes split their panels there."""
        return kinks(sp.sympify(self.phi))

    @functools.cached_property
    def joint_fn(self) -> Callable:
        """``(q11, q12, q22) -> (T, T')`` in one pass (shared subexpressions computed once)."""
        if self.nngp is not None and self.dnngp is not None:
            return compile_exprs((self.nngp, self.dnngp), _QARGS)
        nngp_fn, dnngp_fn = self.nngp_fn, self.dnngp_fn
        return lambda q11, q12, q22: (nngp_fn(q11, q12, q22), dnngp_fn(q11, q12, q22))

    @functools.cached_property
    def mean_fn(self) -> Callable:
        """``q -> E[phi(sqrt(q) z)]`` (needed for the cross terms of branches)."""
        if self.mean is not None:
            return compile_expr(self.mean, (Q11,))
        if self.kinks:
            return split_gauss_mean(self.phi_fn, self.kinks)
        return gauss_hermite_mean(self.phi_fn, max(self.quadrature_degree, 128))

    def __repr__(self) -> str:
        extra = ""
        if self.truncation_error is not None:
            extra = f", truncation_error={self.truncation_error:.2g}"
        return f"Dual({self.name or self.phi}, method={self.method!r}{extra})"
