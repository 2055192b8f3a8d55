r"""Hermite-expansion duals with coefficients in closed form, for exponential-polynomial activations.

Expanding :math:`\phi(\sqrt q\, z)` in Hermite polynomials (Mehler), or equivalently Taylor-expanding
:math:`T` in :math:`q_{12}` (Price's theorem applied :math:`n` times),

.. math::
    T(q_{11}, q_{12}, q_{22}) = \sum_{n \ge 0} n!\, a_n(q_{11})\, a_n(q_{22})\, q_{12}^n,
    \qquad a_n(q) = \frac{\mathbb E[\phi^{(n)}(\sqrt q z)]}{n!},

which is the normalised Hermite series :math:`\sum_n c_n(q_{11}) c_n(q_{22})\, n!\,\rho^n` with
:math:`\phi(\sqrt q z) = \sum_n c_n(q)\mathrm{He}_n(z)`, :math:`c_n(q) = q^{n/2} a_n(q)`.

The coefficients :math:`a_n(q)` are computed in closed form (no ``sympy.integrate``, which is slow
and often fails) for the class of finite sums of terms :math:`c\,x^k e^{\alpha x^2 + \beta x +
\gamma}` with complex :math:`\beta, \gamma` (so ``sin``, ``cos``, ``sinh``, ``cosh``, ``exp`` of
affine arguments, Gaussians and polynomials times any of them): :math:`\phi^{(n)}` stays in the
class, and completing the square gives, for :math:`x \sim \mathcal N(0, q)`,

.. math::
    \mathbb E[x^j e^{\alpha x^2 + \beta x}] = \frac{e^{\beta^2 s^2/2}}{\sqrt{1 - 2\alpha q}}\,
    \mathbb E_{\mathcal N(\mu, s^2)}[x^j], \qquad s^2 = \frac{q}{1 - 2\alpha q},\ \mu = \beta s^2 .

Truncation: by Parseval, the tail of the diagonal series is
:math:`\tau_N(q) = \mathbb E[\phi(\sqrt q z)^2] - \sum_{n \le N} n!\, a_n(q)^2 q^n \ge 0`, and by
Cauchy–Schwarz :math:`|T - T_N| \le \sqrt{\tau_N(q_{11})\tau_N(q_{22})}`.

Example:
    >>> from infntk.dual.symbols import X
    >>> terms = exp_poly_terms(X * sp.exp(-X**2 / 2))
    >>> coefficient(terms, 1)
    (q + 1)**(-3/2)
"""
from __future__ import annotations

import functools
from typing import List, Optional, Tuple

import numpy as np
import sympy as sp

from .symbols import X

__all__ = ["Q", "exp_poly_terms", "coefficient", "hermite_series", "tail"]

Q = sp.Symbol("q", positive=True)
Term = Tuple[sp.Expr, int, sp.Expr, sp.Expr, sp.Expr]  # c, k, alpha, beta, gamma


def _split_exp_arg(arg) -> Optional[Tuple[sp.Expr, sp.Expr, sp.Expr]]:
    try:
        poly = sp.Poly(sp.expand(arg), X)
    except sp.PolynomialError:
        return None
    if poly.degree() > 2:
        return None
    cs = poly.all_coeffs()[::-1] + [sp.S.Zero] * 3
    gamma, beta, alpha = cs[0], cs[1], cs[2]
    if any(not c.is_number for c in (alpha, beta, gamma)):
        return None
    return alpha, beta, gamma


def exp_poly_terms(phi: sp.Expr) -> Optional[List[Term]]:
    r"""``phi`` as a list of terms :math:`c\,x^k e^{\alpha x^2+\beta x+\gamma}`, or ``None``."""
    trig = (sp.sin, sp.cos, sp.sinh, sp.cosh)
    e = sp.sympify(phi).replace(lambda t: isinstance(t, trig), lambda t: t.rewrite(sp.exp))
    e = sp.expand(e, power_exp=False)
    terms: List[Term] = []
    for t in sp.Add.make_args(e):
        c, k, arg = sp.S.One, 0, sp.S.Zero
        for f in sp.Mul.make_args(t):
            if not f.has(X):
                if not f.is_number:
                    return None
                c *= f
            elif f == X:
                k += 1
            elif f.is_Pow and f.base == X and f.exp.is_integer and f.exp > 0:
                k += int(f.exp)
            elif isinstance(f, sp.exp):
                arg += f.args[0]
            elif f.is_Pow and isinstance(f.base, sp.exp) and f.exp.is_number:
                arg += f.base.args[0] * f.exp
            else:
                return None
        split = _split_exp_arg(arg)
        if split is None:
            return None
        terms.append((c, k) + split)
    return terms


def max_alpha(terms: List[Term]) -> sp.Expr:
    """The largest real part of the :math:`x^2` coefficients (> 0 means non-integrable)."""
    return max((sp.re(t[2]) for t in terms), default=sp.S.Zero)


def _taylor_exp_quadratic(a, b, n_max):
    r"""Taylor coefficients :math:`h_m` of :math:`e^{a y^2 + b y}`, :math:`m \le n_\max`
    (each a short sum of same-signed terms when :math:`b = 0`: no cancellation)."""
    out = []
    for m in range(n_max + 1):
        out.append(sp.Add(*[b ** (m - 2 * l) * a**l / (sp.factorial(m - 2 * l) * sp.factorial(l))
                            for l in range(m // 2 + 1)]))
    return out


@functools.lru_cache(maxsize=256)
def _term_coefficients(k, alpha, beta, gamma, n_max, dsym):
    r"""Taylor coefficients in :math:`y` of :math:`M(q, y) = \mathbb E[x^k e^{\alpha x^2 + \beta x
    + \gamma}]`, :math:`x \sim \mathcal N(y, q)`, with :math:`D = 1 - 2\alpha q` kept as the
    positive symbol ``dsym``. Completing the square,

    .. math::
        M = \frac{e^{C + A y^2 + B y}}{\sqrt D}\,\mathbb E_{\mathcal N(m, s^2)}[x^k],\quad
        A = \frac{\alpha}{D},\ B = \frac{\beta}{D},\ C = \gamma + \frac{\beta^2 q}{2D},\
        m = \frac{y + \beta q}{D},\ s^2 = \frac{q}{D}.
    """
    y = sp.Symbol("_y")
    s2 = Q / dsym
    m = (y + beta * Q) / dsym
    poly = sp.S.Zero
    for i in range(0, k + 1, 2):
        poly += sp.binomial(k, i) * m ** (k - i) * s2 ** (i // 2) * sp.factorial2(i - 1)
    pc = sp.Poly(sp.expand(poly), y).all_coeffs()[::-1] if k else [sp.S.One]
    h = _taylor_exp_quadratic(alpha / dsym, beta / dsym, n_max)
    pref = sp.exp(gamma + beta**2 * Q / (2 * dsym)) / sp.sqrt(dsym)
    out = []
    for n in range(n_max + 1):
        out.append(pref * sp.Add(*[pc[j] * h[n - j] for j in range(min(len(pc) - 1, n) + 1)]))
    return out


def coefficients(terms: List[Term], n_max: int) -> List[sp.Expr]:
    r""":math:`a_n(q)` for :math:`n = 0..n_\max`, real sympy expressions in :data:`Q`.

    :math:`a_n` is the :math:`n`-th Taylor coefficient in :math:`y` of the Gaussian smoothing
    :math:`M(q, y) = \mathbb E[\phi(y + \sqrt q z)]`, computed term by term in closed form (see
    :func:`_term_coefficients`); :math:`D_\alpha = 1 - 2\alpha q` is a positive symbol per
    distinct :math:`\alpha` while the real part is taken, and substituted at the end.
    """
    alphas = sorted({t[2] for t in terms}, key=sp.default_sort_key)
    dsyms = {a: sp.Symbol(f"_D_{i}", positive=True) for i, a in enumerate(alphas)}
    acc = [sp.S.Zero] * (n_max + 1)
    for c, k, alpha, beta, gamma in terms:
        for n, a in enumerate(_term_coefficients(k, alpha, beta, gamma, n_max, dsyms[alpha])):
            acc[n] += c * a
    back = {d: 1 - 2 * a * Q for a, d in dsyms.items()}
    out = []
    for a in acc:
        if a.has(sp.I):
            a = sp.expand_complex(sp.expand(a)).as_real_imag()[0]
        out.append(sp.factor_terms(a).subs(back))
    return out


def coefficient(terms: List[Term], n: int) -> sp.Expr:
    r""":math:`a_n(q)` alone."""
    return coefficients(terms, n)[n]


def hermite_series(coeffs: List[sp.Expr], q11, q12, q22) -> sp.Expr:
    r""":math:`\sum_n n!\,a_n(q_{11})\,a_n(q_{22})\,q_{12}^n` as a sympy expression."""
    return sp.Add(*[sp.factorial(n) * a.subs(Q, q11) * a.subs(Q, q22) * q12**n
                    for n, a in enumerate(coeffs) if a != 0])


def tail(coeffs: List[sp.Expr], second_moment, qs) -> np.ndarray:
    r"""Parseval tail :math:`\tau_N(q)` at the numbers ``qs`` (``second_moment(q)`` =
    :math:`\mathbb E[\phi(\sqrt q z)^2]`, computed independently), in 30-digit arithmetic."""
    import mpmath
    fns = [sp.lambdify(Q, sp.factorial(n) * a**2 * Q**n, "mpmath") for n, a in enumerate(coeffs)
           if a != 0]
    out = []
    with mpmath.workdps(30):
        for q in qs:
            qm = mpmath.mpf(q)
            partial = mpmath.fsum(f(qm) for f in fns)
            out.append(max(float(second_moment(q) - partial), 0.0))
    return np.asarray(out)
