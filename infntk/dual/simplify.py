r"""A normal form for duals written in the correlation :math:`\rho = q_{12}/\sqrt{q_{11} q_{22}}`.

Arc-cosine-type duals are polynomials in :math:`\rho`, :math:`s = \sqrt{1-\rho^2}` and
:math:`\theta = \arccos\rho`. Differentiating them (Price's theorem) produces terms with
:math:`1/s` that cancel mathematically but not syntactically, and would evaluate to
:math:`\infty - \infty` at :math:`\rho = \pm 1`. :func:`rho_normal_form` rewrites an expression as
:math:`A(\rho, \theta) + B(\rho, \theta)\,s` with the :math:`1/(1-\rho^2)` factors cancelled
wherever they divide, using :math:`s^2 = 1 - \rho^2`.

Example:
    >>> import sympy as sp
    >>> from infntk.dual.symbols import Q11, Q12, Q22
    >>> rho = Q12 / sp.sqrt(Q11 * Q22)
    >>> t = sp.sqrt(Q11 * Q22) * (sp.sqrt(1 - rho**2) + (sp.pi - sp.acos(rho)) * rho) / (2 * sp.pi)
    >>> rho_normal_form(sp.diff(t, Q12)) == (sp.pi - sp.acos(rho)) / (2 * sp.pi)
    True
"""
from __future__ import annotations

import sympy as sp

from .symbols import Q11, Q12, Q22

__all__ = ["rho", "rho_normal_form"]

_R = sp.Symbol("_r", real=True)
_S = sp.Symbol("_s", nonnegative=True)
_T = sp.Symbol("_t", real=True)


def rho() -> sp.Expr:
    r"""The correlation :math:`q_{12}/\sqrt{q_{11} q_{22}}` as a sympy expression."""
    return Q12 / sp.sqrt(Q11 * Q22)


def _s_exponent(term) -> sp.Expr:
    return term.as_powers_dict().get(_S, sp.S.Zero)


def rho_normal_form(expr: sp.Expr) -> sp.Expr:
    r"""``expr`` rewritten as :math:`A + B\sqrt{1-\rho^2}` with removable :math:`1/s` cancelled."""
    sq = sp.sqrt(Q11 * Q22)
    e = sp.sympify(expr).subs(Q12, _R * sq)
    e = e.replace(lambda x: isinstance(x, sp.acos) and x.args[0] == _R, lambda x: _T)
    e = e.replace(lambda x: isinstance(x, sp.asin) and x.args[0] == _R, lambda x: sp.pi / 2 - _T)
    one_m = 1 - _R**2
    e = e.replace(lambda x: x.is_Pow and x.base == one_m and (2 * x.exp).is_integer,
                  lambda x: _S ** (2 * x.exp))
    if e.has(_R) and not e.free_symbols <= {_R, _S, _T, Q11, Q22}:
        return sp.sympify(expr)
    e = sp.expand(e)
    k = -min([_s_exponent(t) for t in sp.Add.make_args(e)] + [0])
    poly = sp.expand(e * _S**k)
    a, b = sp.S.Zero, sp.S.Zero
    for term in sp.Add.make_args(poly):
        p = int(_s_exponent(term))
        coeff = term / _S**p
        if p % 2 == 0:
            a += coeff * one_m ** (p // 2)
        else:
            b += coeff * one_m ** (p // 2)
    # (a + b s) / s^k
    if k % 2 == 0:
        a_out, b_out = a / one_m ** (k // 2), b / one_m ** (k // 2)
    else:
        a_out, b_out = b / one_m ** ((k - 1) // 2), a / one_m ** ((k + 1) // 2)
    a_out = sp.factor_terms(sp.cancel(sp.together(a_out)))
    b_out = sp.factor_terms(sp.cancel(sp.together(b_out)))
    out = a_out + b_out * _S
    r = Q12 / sq
    return out.subs({_S: sp.sqrt(1 - r**2), _T: sp.acos(r)}).subs(_R, r)
