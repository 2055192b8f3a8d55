r"""Exact duals of polynomial activations from Gaussian moments (Isserlis' theorem).

For :math:`(u, v)` centred Gaussian, pairing the :math:`j` copies of :math:`u` and :math:`k` copies
of :math:`v` (Isserlis / Wick) gives

.. math::
    \mathbb E[u^j v^k] = \sum_{m} \binom{j}{m}\binom{k}{m}\, m!\,(j-m-1)!!\,(k-m-1)!!\;
        q_{12}^{m}\, q_{11}^{(j-m)/2}\, q_{22}^{(k-m)/2},

the sum over :math:`0 \le m \le \min(j, k)` with :math:`j - m` and :math:`k - m` even. A polynomial
:math:`\phi(x) = \sum_k c_k x^k` then has :math:`T = \sum_{j,k} c_j c_k\,\mathbb E[u^j v^k]` and
:math:`m(q) = \sum_k c_k (k-1)!!\, q^{k/2}` (even :math:`k`).

Example:
    >>> from infntk.dual.symbols import X
    >>> bivariate_moment(2, 2)
    q11*q22 + 2*q12**2
    >>> polynomial_dual(X**3 - 2*X)[0].expand()
    6*q12**3 + 9*q11*q12*q22 - 6*q11*q12 - 6*q12*q22 + 4*q12
"""
from __future__ import annotations

import functools

import sympy as sp

from ..errors import InfntkError
from .symbols import Q11, Q12, Q22, X

__all__ = ["bivariate_moment", "univariate_moment", "polynomial_dual"]


def _double_factorial_odd(n: int) -> int:
    """(n)!! for odd n >= -1 ((-1)!! = 1)."""
    return int(sp.factorial2(n)) if n > 0 else 1


@functools.lru_cache(maxsize=None)
def bivariate_moment(j: int, k: int) -> sp.Expr:
    r""":math:`\mathbb E[u^j v^k]` as a polynomial in ``Q11, Q12, Q22``."""
    total = sp.S.Zero
    for m in range(min(j, k) + 1):
        if (j - m) % 2 or (k - m) % 2:
            continue
        c = (sp.binomial(j, m) * sp.binomial(k, m) * sp.factorial(m)
             * _double_factorial_odd(j - m - 1) * _double_factorial_odd(k - m - 1))
        total += c * Q12**m * Q11 ** ((j - m) // 2) * Q22 ** ((k - m) // 2)
    return total


def univariate_moment(k: int, q: sp.Expr = Q11) -> sp.Expr:
    r""":math:`\mathbb E[(\sqrt q z)^k]`."""
    if k % 2:
        return sp.S.Zero
    return _double_factorial_odd(k - 1) * q ** (k // 2)


def polynomial_dual(phi: sp.Expr, symbol: sp.Symbol = X):
    """``(T, T', m)`` for a polynomial ``phi`` in ``symbol``; ``T' = diff(T, Q12)``."""
    try:
        poly = sp.Poly(sp.sympify(phi), symbol)
    except sp.PolynomialError as e:  # pragma: no cover - guarded by the caller
        raise InfntkError(f"polynomial_dual: {phi} is not a polynomial in {symbol}.") from e
    coeffs = {k[0]: c for k, c in poly.terms()}
    t = sp.S.Zero
    for j, cj in coeffs.items():
        for k, ck in coeffs.items():
            t += cj * ck * bivariate_moment(j, k)
    t = sp.expand(t)
    mean = sp.expand(sum((c * univariate_moment(k) for k, c in coeffs.items()), sp.S.Zero))
    return t, sp.expand(sp.diff(t, Q12)), mean
