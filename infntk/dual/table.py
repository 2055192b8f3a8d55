r"""Known closed-form duals, one function per activation.

Definitions and parameter conventions are neural-tangents 0.6.5's (``stax.Relu``, ``stax.Erf(a, b,
c)``, ...). Every dual here is the *true* expectation
:math:`T = \mathbb E[\phi(u)\phi(v)]`, :math:`(u, v) \sim \mathcal N(0, [[q_{11}, q_{12}], [q_{12},
q_{22}]])`, and :math:`T' = \partial T/\partial q_{12}` is obtained with ``sympy.diff`` (Price's
theorem), except where a jump makes it a delta (``sign``, ``rectified_monomial(0)``; see there).
Where neural-tangents' kernel is not this expectation, the function's docstring says so.

Notation: :math:`\rho = q_{12}/\sqrt{q_{11} q_{22}}`, :math:`\theta = \arccos\rho`.

Example:
    >>> d = erf()
    >>> d.nngp
    2*asin(2*q12/(sqrt(2*q11 + 1)*sqrt(2*q22 + 1)))/pi
    >>> round(float(d.nngp_fn(1.0, 0.5, 1.0)), 6)
    0.216347
"""
from __future__ import annotations

import math
from typing import Sequence

import sympy as sp

from ..errors import InfntkError
from .dual import Dual
from .moments import polynomial_dual
from .simplify import rho, rho_normal_form
from .symbols import Q11, Q12, Q22, X

__all__ = [
    "relu", "abrelu", "leaky_relu", "abs_", "erf", "gelu", "sin", "cos", "exp", "gaussian",
    "rbf", "sign", "monomial", "rectified_monomial", "polynomial", "hermite",
]

_SIGN_NOTE = (
    "phi jumps at 0, so E[phi'(u) phi'(v)] taken literally (Price: dT/dq12) is the delta "
    "contribution {price}. Following neural-tangents (Sign, RectifiedMonomial(0)) and the "
    "finite network's autodiff (phi' = 0 almost everywhere), dnngp is taken as 0."
)


def _num(a) -> sp.Expr:
    """A parameter as a sympy number: ints (and integral floats) exact, other floats as Float."""
    if isinstance(a, sp.Basic):
        return a
    if isinstance(a, bool):
        raise InfntkError(f"expected a number, got {a!r}.")
    if isinstance(a, int):
        return sp.Integer(a)
    try:
        a = float(a)
    except (TypeError, ValueError) as e:
        raise InfntkError(f"expected a real number, got {a!r}.") from e
    if not math.isfinite(a):
        raise InfntkError(f"expected a finite number, got {a!r}.")
    return sp.Integer(int(a)) if a.is_integer() else sp.Float(a)


def _degree(fn: str, degree) -> int:
    if isinstance(degree, bool) or int(degree) != degree or degree < 0:
        raise InfntkError(f"table.{fn}: degree must be a non-negative integer, got {degree!r}.")
    return int(degree)


def _dual(name, phi, nngp, mean, dnngp=None, method="closed-form", notes="", normal_form=False):
    if dnngp is None:
        dnngp = sp.diff(nngp, Q12)
        if normal_form:
            dnngp = rho_normal_form(dnngp)
    return Dual(phi=phi, nngp=nngp, dnngp=dnngp, method=method, name=name, mean=mean, notes=notes)


# --------------------------------------------------------------------------- piecewise linear


def abrelu(a, b) -> Dual:
    r""":math:`\phi(x) = a\min(x, 0) + b\max(x, 0)` (neural-tangents ``ABRelu(a, b)``).

    .. math::
        T = \frac{(a-b)^2}{2\pi}\sqrt{q_{11}q_{22}-q_{12}^2}
            + \Big(\frac{a^2+b^2}{2} - \frac{(a-b)^2}{2\pi}\theta\Big) q_{12},\qquad
        T' = \frac{a^2+b^2}{2} - \frac{(a-b)^2}{2\pi}\theta .

    Reference: Cho & Saul (2009); Pedamonti et al. (2017, arXiv:1711.09090).
    """
    a, b = _num(a), _num(b)
    r = rho()
    c = (a - b) ** 2 / (2 * sp.pi)
    nngp = sp.sqrt(Q11 * Q22) * (c * sp.sqrt(1 - r**2) + ((a**2 + b**2) / 2 - c * sp.acos(r)) * r)
    mean = (b - a) * sp.sqrt(Q11) / sp.sqrt(2 * sp.pi)
    phi = a * sp.Min(X, 0) + b * sp.Max(X, 0)
    return _dual(f"abrelu({a}, {b})", phi, nngp, mean, normal_form=True)


def relu() -> Dual:
    r""":math:`\max(x, 0)`: :math:`T = \frac{\sqrt{q_{11}q_{22}}}{2\pi}(\sin\theta + (\pi-\theta)
    \cos\theta)`, :math:`T' = (\pi - \theta)/(2\pi)` (Cho & Saul 2009)."""
    d = abrelu(0, 1)
    return Dual(phi=sp.Max(X, 0), nngp=d.nngp, dnngp=d.dnngp, method=d.method, name="relu",
                mean=d.mean)


def leaky_relu(alpha) -> Dual:
    r""":math:`\alpha\min(x,0) + \max(x,0)` (neural-tangents ``LeakyRelu(alpha)`` = ``ABRelu(alpha,
    1)``)."""
    d = abrelu(alpha, 1)
    return Dual(phi=d.phi, nngp=d.nngp, dnngp=d.dnngp, method=d.method,
                name=f"leaky_relu({_num(alpha)})", mean=d.mean)


def abs_() -> Dual:
    r""":math:`|x|` (neural-tangents ``Abs`` = ``ABRelu(-1, 1)``):
    :math:`T = \frac{2}{\pi}\sqrt{q_{11}q_{22}-q_{12}^2} + (1 - \frac{2\theta}{\pi}) q_{12}`."""
    d = abrelu(-1, 1)
    return Dual(phi=sp.Abs(X), nngp=d.nngp, dnngp=d.dnngp, method=d.method, name="abs",
                mean=d.mean)


def sign() -> Dual:
    r""":math:`\operatorname{sign}(x)`: :math:`T = \frac{2}{\pi}\arcsin\rho = 1 - 2\theta/\pi`.

    The derivative dual is a convention: :math:`\phi' = 2\delta`, so Price's theorem gives
    :math:`\partial T/\partial q_{12} = \frac{2}{\pi\sqrt{q_{11}q_{22}-q_{12}^2}}`, the expectation
    of the product of the two deltas. neural-tangents' ``Sign`` sets the NTK contribution to 0 --
    which is also what autodiff of the finite network sees (``grad(sign) = 0``) -- and so does this
    table: ``dnngp = 0``. The distributional value is in ``notes``.
    """
    r = rho()
    nngp = 2 * sp.asin(r) / sp.pi
    price = 2 / (sp.pi * sp.sqrt(Q11 * Q22 - Q12**2))
    return _dual("sign", sp.sign(X), nngp, sp.S.Zero, dnngp=sp.S.Zero,
                 notes=_SIGN_NOTE.format(price=price))


# --------------------------------------------------------------------------- smooth


def erf(a=1, b=1, c=0) -> Dual:
    r""":math:`a\,\mathrm{erf}(b x) + c` (neural-tangents ``Erf(a, b, c)``; ``c`` is an *output*
    shift).

    .. math::
        T = \frac{2a^2}{\pi}\arcsin\frac{2b^2 q_{12}}{\sqrt{(1+2b^2q_{11})(1+2b^2q_{22})}} + c^2,
        \qquad m(q) = c .

    Reference: Williams (1997).
    """
    a, b, c = _num(a), _num(b), _num(c)
    arg = 2 * b**2 * Q12 / sp.sqrt((1 + 2 * b**2 * Q11) * (1 + 2 * b**2 * Q22))
    nngp = a**2 * 2 * sp.asin(arg) / sp.pi + c**2
    return _dual(f"erf({a}, {b}, {c})", a * sp.erf(b * X) + c, nngp, c)


def gelu(approximate: bool = False) -> Dual:
    r"""GELU :math:`x\,\Phi(x) = \frac{x}{2}(1 + \mathrm{erf}(x/\sqrt2))` (neural-tangents
    ``Gelu``).

    With :math:`\delta = \sqrt{(1+q_{11})(1+q_{22}) - q_{12}^2}` (Tsuchida et al. 2020,
    arXiv:2002.08517):

    .. math::
        T = \frac{q_{12}}{4} + \frac{1}{2\pi}\Big(q_{12}\arcsin\frac{q_{12}}{\sqrt{(1+q_{11})
        (1+q_{22})}} + \frac{q_{12}^2 + q_{11}q_{22}\,\delta^2}{(1+q_{11})(1+q_{22})\,\delta}\Big).

    ``approximate=True`` is the tanh approximation of ``jax.nn.gelu``. neural-tangents uses it only
    in the finite network and keeps the exact-GELU kernel above; that is *not* the expectation for
    the tanh form. Here the dual is the true expectation of the tanh form, which has no closed
    form: it is derived by :func:`infntk.dual.derive.dual_from_expr` (route in ``.method``).
    """
    if approximate:
        from .derive import dual_from_expr
        phi = X / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (X + sp.Float(0.044715) * X**3)))
        d = dual_from_expr(phi)
        return Dual(phi=d.phi, nngp=d.nngp, dnngp=d.dnngp, method=d.method,
                    name="gelu(approximate=True)", mean=d.mean,
                    truncation_error=d.truncation_error, quadrature_degree=d.quadrature_degree,
                    notes="neural-tangents uses the exact-GELU kernel for approximate=True.")
    p = (1 + Q11) * (1 + Q22)
    delta2 = p - Q12**2
    delta = sp.sqrt(delta2)
    nngp = Q12 / 4 + (Q12 * sp.asin(Q12 / sp.sqrt(p))
                      + (Q12**2 + Q11 * Q22 * delta2) / (p * delta)) / (2 * sp.pi)
    mean = Q11 / sp.sqrt(2 * sp.pi * (1 + Q11))
    phi = X * (1 + sp.erf(X / sp.sqrt(2))) / 2
    return _dual("gelu", phi, nngp, mean)


def sin(a=1, b=1, c=0) -> Dual:
    r""":math:`a\sin(b x + c)` (neural-tangents ``Sin(a, b, c)``; ``c`` is an *input* phase).

    .. math::
        T = \frac{a^2}{2}\Big(e^{-b^2(q_{11}+q_{22})/2 + b^2 q_{12}}
            - \cos(2c)\,e^{-b^2(q_{11}+q_{22})/2 - b^2 q_{12}}\Big),\qquad
        m(q) = a\sin(c)\,e^{-b^2 q/2}.
    """
    a, b, c = _num(a), _num(b), _num(c)
    e1 = sp.exp(-b**2 * (Q11 + Q22) / 2 + b**2 * Q12)
    e2 = sp.exp(-b**2 * (Q11 + Q22) / 2 - b**2 * Q12)
    nngp = a**2 / 2 * (e1 - sp.cos(2 * c) * e2)
    mean = a * sp.sin(c) * sp.exp(-b**2 * Q11 / 2)
    return _dual(f"sin({a}, {b}, {c})", a * sp.sin(b * X + c), nngp, mean)


def cos(a=1, b=1, c=0) -> Dual:
    r""":math:`a\cos(b x + c)` (neural-tangents ``Cos(a, b, c)`` = ``Sin(a, b, c + pi/2)``).

    .. math::
        T = \frac{a^2}{2}\Big(e^{-b^2(q_{11}+q_{22})/2 + b^2 q_{12}}
            + \cos(2c)\,e^{-b^2(q_{11}+q_{22})/2 - b^2 q_{12}}\Big).
    """
    a, b, c = _num(a), _num(b), _num(c)
    e1 = sp.exp(-b**2 * (Q11 + Q22) / 2 + b**2 * Q12)
    e2 = sp.exp(-b**2 * (Q11 + Q22) / 2 - b**2 * Q12)
    nngp = a**2 / 2 * (e1 + sp.cos(2 * c) * e2)
    mean = a * sp.cos(c) * sp.exp(-b**2 * Q11 / 2)
    return _dual(f"cos({a}, {b}, {c})", a * sp.cos(b * X + c), nngp, mean)


def rbf(gamma=1) -> Dual:
    r"""neural-tangents ``Rbf(gamma)``: :math:`\phi(x) = \sqrt2\sin(\sqrt{2\gamma}\,x + \pi/4)`,
    whose dual is the RBF kernel :math:`T = e^{-\gamma(q_{11} + q_{22} - 2q_{12})}`."""
    g = _num(gamma)
    if g.is_number and not g.is_positive:
        raise InfntkError(f"table.rbf: gamma must be positive, got {gamma!r}.")
    nngp = sp.exp(-g * (Q11 + Q22 - 2 * Q12))
    phi = sp.sqrt(2) * sp.sin(sp.sqrt(2 * g) * X + sp.pi / 4)
    return _dual(f"rbf({g})", phi, nngp, sp.exp(-g * Q11))


def exp(a=1, b=1) -> Dual:
    r""":math:`a e^{b x}` (neural-tangents ``Exp(a, b)``):
    :math:`T = a^2 e^{b^2(q_{11} + q_{22} + 2q_{12})/2}`, :math:`m(q) = a e^{b^2 q/2}`."""
    a, b = _num(a), _num(b)
    nngp = a**2 * sp.exp(b**2 * (Q11 + Q22 + 2 * Q12) / 2)
    return _dual(f"exp({a}, {b})", a * sp.exp(b * X), nngp, a * sp.exp(b**2 * Q11 / 2))


def gaussian(a=1, b=-1) -> Dual:
    r""":math:`a e^{b x^2}` (neural-tangents ``Gaussian(a, b)``):
    :math:`T = a^2/\sqrt{(1-2bq_{11})(1-2bq_{22}) - 4b^2q_{12}^2}`, :math:`m(q) = a/\sqrt{1-2bq}`.

    For :math:`b > 0` the expectation exists only while :math:`I - 2b\Sigma` is positive definite
    (e.g. :math:`q < 1/(4b)` on the diagonal); outside, the compiled dual returns ``nan``/``inf``.
    """
    a, b = _num(a), _num(b)
    nngp = a**2 / sp.sqrt((1 - 2 * b * Q11) * (1 - 2 * b * Q22) - 4 * b**2 * Q12**2)
    mean = a / sp.sqrt(1 - 2 * b * Q11)
    notes = ""
    if b.is_number and b.is_positive:
        notes = f"finite only while I - 2*{b}*Sigma is positive definite (q < 1/(4*{b}) on the diagonal)."
    return _dual(f"gaussian({a}, {b})", a * sp.exp(b * X**2), nngp, mean, notes=notes)


# --------------------------------------------------------------------------- polynomial families


def polynomial(coef: Sequence) -> Dual:
    r""":math:`\sum_k \mathrm{coef}[k]\, x^k` (neural-tangents ``Polynomial(coef)``, numpy's
    coefficient order). The dual is exact, from Gaussian moments (:mod:`infntk.dual.moments`)."""
    coef = [_num(c) for c in coef]
    phi = sum((c * X**k for k, c in enumerate(coef)), sp.S.Zero)
    nngp, dnngp, mean = polynomial_dual(phi)
    return Dual(phi=phi, nngp=nngp, dnngp=dnngp, method="moments",
                name=f"polynomial({[str(c) for c in coef]})", mean=mean)


def monomial(degree: int) -> Dual:
    r""":math:`x^n` (neural-tangents ``Monomial(n)``, which stops at :math:`n = 5`; any :math:`n`
    here): :math:`T = \mathbb E[u^n v^n]` by Isserlis' theorem."""
    n = _degree("monomial", degree)
    phi = X**n
    nngp, dnngp, mean = polynomial_dual(phi)
    return Dual(phi=phi, nngp=nngp, dnngp=dnngp, method="moments", name=f"monomial({n})",
                mean=mean)


def hermite(degree: int) -> Dual:
    r"""Normalised probabilists' Hermite polynomial :math:`\mathrm{He}_n(x)/\sqrt{n!}`
    (neural-tangents ``Hermite(n)``).

    neural-tangents *assumes unit-variance inputs* (it warns that ``std(x) == 1`` across channels)
    and returns :math:`T = q_{12}^n`, which is the expectation only when :math:`q_{11} = q_{22} =
    1`. Here ``nngp`` is the true expectation for all variances (exact, from moments); it reduces
    to :math:`q_{12}^n` at :math:`q_{11} = q_{22} = 1`.
    """
    n = _degree("hermite", degree)
    phi = sp.expand(sp.hermite_prob(n, X) / sp.sqrt(sp.factorial(n)))
    nngp, dnngp, mean = polynomial_dual(phi)
    return Dual(phi=phi, nngp=nngp, dnngp=dnngp, method="moments", name=f"hermite({n})",
                mean=mean, notes="neural-tangents returns q12**n, exact only for unit variances.")


def _arccos_j(n: int) -> sp.Expr:
    r"""Cho & Saul's :math:`J_n(\theta) = (-1)^n \sin^{2n+1}\theta\,(\frac{1}{\sin\theta}
    \partial_\theta)^n \frac{\pi-\theta}{\sin\theta}` at :math:`\theta = \arccos\rho`."""
    th = sp.Symbol("theta", positive=True)
    f = (sp.pi - th) / sp.sin(th)
    for _ in range(n):
        f = sp.diff(f, th) / sp.sin(th)
    j = sp.expand((-1) ** n * sp.sin(th) ** (2 * n + 1) * f)
    return j.subs(th, sp.acos(rho()))


def rectified_monomial(degree: int) -> Dual:
    r""":math:`\phi(x) = x^n` for :math:`x \ge 0`, else 0 (neural-tangents ``RectifiedMonomial(n)``):
    the arc-cosine kernel of Cho & Saul (2009),

    .. math::
        T = \frac{(q_{11}q_{22})^{n/2}}{2\pi} J_n(\theta),\qquad
        J_n(\theta) = (-1)^n \sin^{2n+1}\theta
            \Big(\frac{1}{\sin\theta}\frac{\partial}{\partial\theta}\Big)^n
            \frac{\pi-\theta}{\sin\theta},

    any integer :math:`n \ge 0`; Price's theorem gives :math:`T'_n = n^2\,T_{n-1}`. For :math:`n =
    0` (the step function) :math:`T'` is a delta and is taken as 0, as neural-tangents does (see
    :func:`sign`).
    """
    n = _degree("rectified_monomial", degree)
    nngp = rho_normal_form(sp.sqrt(Q11 * Q22) ** n * _arccos_j(n) / (2 * sp.pi))
    mean = Q11 ** sp.Rational(n, 2) * 2 ** sp.Rational(n - 2, 2) * sp.gamma(sp.Rational(n + 1, 2)) \
        / sp.sqrt(sp.pi)
    phi = sp.Piecewise((X**n, X >= 0), (0, True))
    if n == 0:
        price = rho_normal_form(sp.diff(nngp, Q12))
        return _dual("rectified_monomial(0)", phi, nngp, mean, dnngp=sp.S.Zero,
                     notes=_SIGN_NOTE.format(price=price))
    return _dual(f"rectified_monomial({n})", phi, nngp, mean, normal_form=True)
