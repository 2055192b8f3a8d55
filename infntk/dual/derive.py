r"""``dual_from_expr``: the dual of any activation given as a sympy expression in one symbol.

Routes, tried in order (the one taken is ``Dual.method``):

1. **polynomial** -> ``'moments'``: exact, Isserlis' theorem (:mod:`infntk.dual.moments`).
2. **table** -> ``'closed-form'``: :math:`\phi(x) = a\,g(bx + c) + d` for a table activation
   :math:`g` with a closed form (``erf``, ``gelu``, ``sin``/``cos`` with phase, ``exp``, Gaussians,
   ``sign``/``Heaviside``, any :math:`\alpha x + \beta|x|` i.e. ``Max``/``Min``/``Abs``/ReLU-type
   ``Piecewise``, rectified monomials):

   .. math::
       T_\phi = a^2 T_g(b^2 q_{11}, b^2 q_{12}, b^2 q_{22})
              + a d\,\big(m_g(b^2 q_{11}) + m_g(b^2 q_{22})\big) + d^2 .

3. **Hermite** -> ``'hermite'``: for exponential-polynomial activations (polynomials times
   :math:`e^{\alpha x^2 + \beta x}`, ``sin``, ``cos``, ``sinh``, ``cosh`` of affine arguments), the
   series :math:`T = \sum_n n!\,a_n(q_{11})a_n(q_{22})q_{12}^n` with :math:`a_n` in closed form
   (:mod:`infntk.dual.hermite`), truncated at ``hermite_degree`` (or at the first degree whose
   Parseval tail is below ``tol`` on the reference variances :data:`REFERENCE_Q`); the bound on the
   error is ``Dual.truncation_error``.
4. **quadrature** -> ``'quadrature'``: 2-D Gauss–Hermite quadrature in JAX
   (:mod:`infntk.dual.quadrature`). ``nngp`` and ``dnngp`` are ``None``.

:math:`T'` is always ``sympy.diff(T, Q12)`` (Price's theorem), except for activations with jumps:
there the distributional derivative has a delta, and :math:`T'` is the dual of the
almost-everywhere derivative -- what the finite network's autodiff sees, and neural-tangents'
convention for ``Sign`` -- with an :class:`InfntkWarning` saying so.

Errors (:class:`~infntk.errors.InfntkError`): a string instead of an expression, more than one
free symbol, an activation that is not real and finite on all of :math:`\mathbb R` (``1/x``,
``log(x)``), or one growing like :math:`e^{c x^2}`, :math:`c > 0`, whose expectations diverge
beyond a critical variance.

Example:
    >>> import sympy as sp
    >>> from infntk.dual import X
    >>> dual_from_expr(3 * sp.erf(2 * X) + 1).method
    'closed-form'
    >>> d = dual_from_expr(sp.sin(X) + X)
    >>> d.method, d.truncation_error < 1e-10
    ('hermite', True)
    >>> dual_from_expr(sp.tanh(X)).method
    'quadrature'
"""
from __future__ import annotations

import functools
import math
import warnings
from typing import Optional

import mpmath
import numpy as np
import sympy as sp

from ..errors import InfntkError
from . import hermite as _h
from . import table
from .dual import Dual
from .moments import polynomial_dual
from .simplify import rho_normal_form
from .symbols import Q11, Q12, Q22, X

__all__ = ["dual_from_expr", "InfntkWarning", "REFERENCE_Q"]

#: Variances over which a Hermite truncation error is bounded (inputs normalised to O(1)).
REFERENCE_Q = (0.05, 0.25, 0.5, 1.0, 2.0, 4.0)
_MAX_HERMITE = 128
_QUAD_DEGREE = 96


class InfntkWarning(UserWarning):
    """A convention was applied that the user should know about."""


def _err(msg: str) -> InfntkError:
    return InfntkError(f"dual_from_expr: {msg}")


# --------------------------------------------------------------------------- validation


def _check_real_finite(phi):
    for x0 in (0, sp.Rational(1, 2), -sp.Rational(1, 2), 1, -1, 3, -3, 10, -10):
        v = phi.subs(X, x0)
        try:
            v = complex(sp.N(v, 20))
        except (TypeError, ValueError):
            raise _err(f"{phi} is not defined (real and finite) at x = {x0}; an activation must be "
                       "real-valued and finite on all of R.") from None
        if not (math.isfinite(v.real) and math.isfinite(v.imag)) or abs(v.imag) > 1e-12 * (1 + abs(v)):
            raise _err(f"{phi} is not real and finite at x = {x0} (value {v}); an activation must "
                       "be real-valued and finite on all of R.")


def _check_growth(phi):
    r"""Raise if :math:`\log|\phi(x)| \sim c x^2` with :math:`c > 0` (Gaussian moments diverge)."""
    def g(x0):
        with mpmath.workdps(30):
            v = sp.N(sp.log(sp.Abs(phi.subs(X, x0))), 30)
        try:
            return float(v) / float(x0) ** 2
        except (TypeError, ValueError):
            return 0.0
    for sgn in (1, -1):
        g1, g2 = g(sgn * 1000), g(sgn * 2000)
        if g2 > 1e-4 and g2 > 0.9 * g1:
            c = g2
            raise _err(
                f"{phi} grows like exp({c:.3g} x^2) as x -> {'+' if sgn > 0 else '-'}oo, so it is "
                f"not Gaussian-integrable for every variance: E[phi(sqrt(q) z)] diverges for "
                f"q >= {1 / (2 * c):.3g} and the NNGP dual E[phi(u)^2] for q >= {1 / (4 * c):.3g}. "
                "Use table.gaussian(a, b) explicitly if a bounded variance is guaranteed.")


def _raise_superexp(phi, c: float):
    raise _err(
        f"{phi} grows like exp({c:.3g} x^2), so it is not Gaussian-integrable for every variance: "
        f"E[phi(sqrt(q) z)] diverges for q >= {1 / (2 * c):.3g} and the NNGP dual "
        f"E[phi(u)^2] for q >= {1 / (4 * c):.3g}. Use table.gaussian(a, b) explicitly if a "
        "bounded variance is guaranteed.")


def _has_jump(phi) -> bool:
    d = sp.diff(phi, X)
    if d.has(sp.DiracDelta):
        return True
    for pw in phi.atoms(sp.Piecewise):
        for _, cond in pw.args:
            rels = ([cond] if isinstance(cond, sp.core.relational.Relational)
                    else cond.atoms(sp.core.relational.Relational))
            for rel in rels:
                pts = sp.solve(sp.Eq(rel.lhs, rel.rhs), X)
                for p in pts:
                    if not p.is_real:
                        continue
                    eps = sp.Float("1e-40", 60)
                    left = sp.N(phi.subs(X, p - eps), 50)
                    right = sp.N(phi.subs(X, p + eps), 50)
                    if abs(complex(left - right)) > 1e-20:
                        return True
    return False


# --------------------------------------------------------------------------- table recognition


def _affine(g: Dual, a, b, d, name: str, phi) -> Dual:
    r""":math:`a\,g(bx) + d` from the dual of :math:`g`."""
    b2 = b**2
    sub = {Q11: b2 * Q11, Q12: b2 * Q12, Q22: b2 * Q22}
    tg = g.nngp.subs(sub, simultaneous=True)
    mg = g.mean if g.mean is not None else None
    if mg is None:
        return None
    m1 = mg.subs(Q11, b2 * Q11)
    m2 = mg.subs(Q11, b2 * Q22)
    nngp = a**2 * tg + a * d * (m1 + m2) + d**2
    if g.dnngp == 0:
        dnngp = sp.S.Zero
    else:
        dnngp = sp.diff(nngp, Q12)
        if nngp.has(sp.acos):
            dnngp = rho_normal_form(dnngp)
    return Dual(phi=phi, nngp=nngp, dnngp=dnngp, method="closed-form", name=name,
                mean=a * m1 + d, notes=g.notes)


def _linear_arg(arg):
    """``(b, c)`` with ``arg == b*X + c`` (numbers), else None."""
    try:
        p = sp.Poly(sp.expand(arg), X)
    except sp.PolynomialError:
        return None
    if p.degree() != 1:
        return None
    b, c = p.all_coeffs()
    if not (b.is_number and c.is_number and b.is_real and c.is_real):
        return None
    return b, c


def _residual_constant(phi, candidate) -> Optional[sp.Expr]:
    """``phi - candidate`` if it does not depend on X, else None."""
    r = sp.expand(phi - candidate, power_exp=False)
    if not r.has(X):
        return r
    r = sp.simplify(r)
    return None if r.has(X) else r


def _scale_of(phi, atom) -> Optional[sp.Expr]:
    """The X-free coefficient of ``atom`` in the expansion of ``phi``."""
    c = sp.expand(phi, power_exp=False).coeff(atom)
    return None if c == 0 or c.has(X) else c


def _canonical_relu(phi):
    """Rewrite Max/Min/Heaviside/two-piece Piecewise at 0 in terms of Abs and sign."""
    def pw(e):
        if len(e.args) != 2 or e.args[1][1] != sp.true:
            return e
        (f_pos, cond), (f_neg, _) = e.args
        if cond in (X > 0, X >= 0, sp.StrictGreaterThan(X, 0), sp.GreaterThan(X, 0)):
            pass
        elif cond in (X < 0, X <= 0):
            f_pos, f_neg = f_neg, f_pos
        else:
            return e
        if sp.expand(f_pos.subs(X, 0) - f_neg.subs(X, 0)) != 0 and not (
                f_pos.is_number and f_neg.is_number):
            return e
        return f_neg + (f_pos - f_neg) * (1 + sp.sign(X)) / 2

    e = phi.replace(lambda t: isinstance(t, sp.Piecewise), pw)
    e = e.replace(lambda t: isinstance(t, sp.Heaviside), lambda t: (1 + sp.sign(t.args[0])) / 2)
    e = e.replace(lambda t: isinstance(t, sp.Max) and len(t.args) == 2 and 0 in t.args,
                  lambda t: (sum(t.args) + sp.Abs(sum(t.args))) / 2)
    e = e.replace(lambda t: isinstance(t, sp.Min) and len(t.args) == 2 and 0 in t.args,
                  lambda t: (sum(t.args) - sp.Abs(sum(t.args))) / 2)
    e = sp.expand(e)
    e = e.replace(lambda t: isinstance(t, sp.Abs) and t.args[0] == X, lambda t: X * sp.sign(X))
    return sp.expand(e)


def _recognise_relu_family(phi, name) -> Optional[Dual]:
    r""":math:`P(x) + S(x)\operatorname{sign}(x)` -> ABReLU, sign or rectified monomial."""
    if not phi.has(sp.Abs, sp.sign, sp.Max, sp.Min, sp.Heaviside, sp.Piecewise):
        return None
    e = _canonical_relu(phi)
    if e.has(sp.Piecewise, sp.Max, sp.Min, sp.Heaviside, sp.Abs):
        return None
    p_part, s_part = sp.S.Zero, sp.S.Zero
    for t in sp.Add.make_args(e):
        c, f = t.as_independent(sp.sign(X), as_Mul=True)
        if f == 1:
            p_part += t
        elif f == sp.sign(X):
            s_part += c
        else:
            return None
    if s_part.has(sp.sign) or not (p_part.is_polynomial(X) and s_part.is_polynomial(X)):
        return None
    if s_part == 0:
        return None
    d0, p1 = p_part.as_independent(X, as_Add=True)
    ps, ss = sp.Poly(p1, X), sp.Poly(s_part, X)
    if ps.degree() <= 1 and ss.degree() == 1 and ss.coeff_monomial(1) == 0:
        alpha, beta = ps.coeff_monomial(X), ss.coeff_monomial(X)
        return _affine(table.abrelu(alpha - beta, alpha + beta), sp.S.One, sp.S.One, d0, name,
                       phi)
    if p1 == 0 and ss.degree() == 0:
        return _affine(table.sign(), s_part, sp.S.One, d0, name, phi)
    if len(ss.terms()) == 1:
        (n,), c = ss.terms()[0]
        for mirror in (1, -1):
            # (2c) x^n H(mirror x) = c x^n + mirror c x^n sign(x)
            if sp.expand(p1 - mirror * s_part) == 0:
                a = 2 * c * mirror * (mirror ** n)
                return _affine(table.rectified_monomial(n), a, sp.S(mirror), d0, name, phi)
    return None


def _recognise(phi, name) -> Optional[Dual]:
    d = _recognise_relu_family(phi, name)
    if d is not None:
        return Dual(phi=phi, nngp=d.nngp, dnngp=d.dnngp, method=d.method, name=name,
                    mean=d.mean, notes=d.notes)
    for atom in sorted(phi.atoms(sp.Function), key=sp.default_sort_key):
        f, args = atom.func, atom.args
        if len(args) != 1:
            continue
        lin = _linear_arg(args[0])
        if f in (sp.sin, sp.cos) and lin is not None:
            b, c = lin
            a = _scale_of(phi, atom)
            if a is None:
                continue
            g = (table.sin if f is sp.sin else table.cos)(1, b, c)
            d0 = _residual_constant(phi, a * atom)
            if d0 is not None:
                return _affine(g, a, sp.S.One, d0, name, phi)
        if f is sp.erf and lin is not None and lin[1] == 0:
            b = lin[0]
            a = _scale_of(phi, atom)
            if a is not None:
                d0 = _residual_constant(phi, a * atom)
                if d0 is not None:
                    return _affine(table.erf(1, b, 0), a, sp.S.One, d0, name, phi)
            # GELU(bx) = (b x / 2)(1 + erf(b x / sqrt 2)): coefficient of x*erf is a*b/2
            k = _scale_of(phi, X * atom)
            if k is not None:
                bg = b * sp.sqrt(2)
                a = 2 * k / bg
                gphi = bg * X * (1 + atom) / 2
                d0 = _residual_constant(phi, a * gphi)
                if d0 is not None:
                    return _affine(table.gelu(), a, bg, d0, name, phi)
        if f is sp.exp:
            try:
                p = sp.Poly(sp.expand(args[0]), X)
            except sp.PolynomialError:
                continue
            cs = p.all_coeffs()
            if not all(c.is_number and c.is_real for c in cs):
                continue
            a = _scale_of(phi, atom)
            if a is None:
                continue
            d0 = _residual_constant(phi, a * atom)
            if d0 is None:
                continue
            if p.degree() == 1:
                b, c = cs
                return _affine(table.exp(1, b), a * sp.exp(c), sp.S.One, d0, name, phi)
            if p.degree() == 2 and cs[1] == 0:
                bq, _, c = cs
                if bq > 0:
                    _raise_superexp(phi, float(bq))
                return _affine(table.gaussian(1, bq), a * sp.exp(c), sp.S.One, d0, name, phi)
    return None


# --------------------------------------------------------------------------- Hermite route


def _second_moment_fn(phi):
    r""":math:`q \mapsto \mathbb E[\phi(\sqrt q z)^2]` exactly (``phi**2`` is exponential-polynomial
    too), evaluated with 30 significant digits."""
    m2 = _h.coefficients(_h.exp_poly_terms(sp.expand(phi**2)), 0)[0]
    f = sp.lambdify(_h.Q, m2, "mpmath")

    @functools.lru_cache(maxsize=None)
    def fn(q):
        with mpmath.workdps(30):
            return mpmath.mpf(f(mpmath.mpf(q)))
    return fn


def _hermite_bounds(coeffs, m2, dm2, qs):
    """(absolute bound, relative bound) over ``qs`` for both T (phi) and T' (phi')."""
    dcoeffs = [(n + 1) * a for n, a in enumerate(coeffs[1:])]
    err, rel = 0.0, 0.0
    for cs, mom in ((coeffs, m2), (dcoeffs, dm2)):
        tails = _h.tail(cs, mom, qs)
        err = max(err, float(np.max(tails)))
        rel = max(rel, max(float(t / max(mom(q), 1e-300)) for t, q in zip(tails, qs)))
    return err, rel


def _float64_error(coeffs, qs) -> float:
    """Worst |float64 - 30-digit| evaluation of T_N and T'_N at rho = +-1 on the reference
    variances: expanded Hermite coefficients cancel in floating point as N grows."""
    t = _h.hermite_series(coeffs, Q11, Q12, Q22)
    worst = 0.0
    for expr in (t, sp.diff(t, Q12)):
        f64 = sp.lambdify((Q11, Q12, Q22), expr, "numpy")
        fmp = sp.lambdify((Q11, Q12, Q22), expr, "mpmath")
        with mpmath.workdps(30):
            for q in qs:
                for s_ in (1, -1):
                    exact = fmp(mpmath.mpf(q), s_ * mpmath.mpf(q), mpmath.mpf(q))
                    worst = max(worst, abs(float(f64(q, s_ * q, q) - exact)))
    return worst


def _hermite(phi, terms, degree, tol, name) -> Dual:
    m2 = _second_moment_fn(phi)
    dm2 = _second_moment_fn(sp.diff(phi, X))
    qs = REFERENCE_Q
    if degree is not None:
        coeffs = _h.coefficients(terms, degree)
        err, _ = _hermite_bounds(coeffs, m2, dm2, qs)
        err += _float64_error(coeffs, qs)
    else:
        # double N until the tail is below tol, or float64 cancellation in the expanded
        # coefficients outweighs the truncation (then keep the best N seen)
        n, best = 4, None
        while True:
            coeffs = _h.coefficients(terms, n)
            tail_err, rel = _hermite_bounds(coeffs, m2, dm2, qs)
            total = tail_err + _float64_error(coeffs, qs)
            if best is None or total < best[0]:
                best = (total, coeffs)
            if rel <= tol or n >= _MAX_HERMITE or total > 10 * best[0]:
                break
            n = min(2 * n, _MAX_HERMITE)
        err, coeffs = best
    nngp = _h.hermite_series(coeffs, Q11, Q12, Q22)
    mean = coeffs[0].subs(_h.Q, Q11)
    return Dual(phi=phi, nngp=nngp, dnngp=sp.diff(nngp, Q12), method="hermite", name=name,
                mean=mean, truncation_error=err,
                notes=f"Hermite series to degree {len(coeffs) - 1}; |T - T_N| and |T' - T'_N| are "
                      f"<= truncation_error for variances in {REFERENCE_Q}.")


# --------------------------------------------------------------------------- entry point


@functools.lru_cache(maxsize=512)
def _dual_cached(phi, hermite_degree, tol, name) -> Dual:
    if not phi.has(X):
        return Dual(phi=phi, nngp=phi**2, dnngp=sp.S.Zero, method="moments", name=name, mean=phi)
    _check_real_finite(phi)
    if phi.is_polynomial(X):
        nngp, dnngp, mean = polynomial_dual(phi)
        return Dual(phi=phi, nngp=nngp, dnngp=dnngp, method="moments", name=name, mean=mean)
    d = _recognise(phi, name)
    if d is not None:
        return d
    terms = _h.exp_poly_terms(phi)
    if terms is not None:
        alpha = _h.max_alpha(terms)
        if alpha > 0:
            _raise_superexp(phi, float(alpha))
        return _hermite(phi, terms, hermite_degree, tol, name)
    _check_growth(phi)
    notes = ""
    if _has_jump(phi):
        notes = ("phi has a jump: its distributional derivative has a delta, which the NTK's "
                 "derivative dual drops (almost-everywhere derivative, as autodiff of the finite "
                 "network and neural-tangents' Sign do).")
        warnings.warn(f"dual_from_expr({phi}): {notes}", InfntkWarning, stacklevel=3)
    degree = hermite_degree if hermite_degree is not None else _QUAD_DEGREE
    return Dual(phi=phi, nngp=None, dnngp=None, method="quadrature", name=name,
                quadrature_degree=int(degree), notes=notes)


def dual_from_expr(expr, symbol=None, hermite_degree: Optional[int] = None,
                   tol: float = 1e-10) -> Dual:
    r"""The :class:`~infntk.dual.dual.Dual` of the activation ``expr`` (see the module docstring).

    Args:
        expr: a sympy expression in one symbol (or a number). Strings are refused: they would be
            evaluated.
        symbol: the activation's variable; inferred when ``expr`` has exactly one free symbol.
        hermite_degree: truncation degree of the Hermite route (default: the smallest power of two
            times 4, at most 40, whose tail is below ``tol``); for the quadrature route, the number
            of Gauss–Hermite nodes per dimension (default 96).
        tol: target truncation error of the Hermite route, relative: the Parseval tail
            :math:`\tau_N(q)` must be below ``tol`` times :math:`\mathbb E\phi(\sqrt q z)^2` at
            every reference variance (the degree is capped at 64; the bound actually reached,
            absolute, is ``Dual.truncation_error``).

    Returns:
        a ``Dual`` whose ``.method`` names the route taken.

    Raises:
        InfntkError: see the module docstring.
    """
    if isinstance(expr, (str, bytes)):
        raise _err("pass a sympy expression, not a string (strings are never evaluated).")
    try:
        expr = sp.sympify(expr, strict=True)
    except (sp.SympifyError, TypeError) as e:
        raise _err(f"cannot interpret {expr!r} as a sympy expression.") from e
    if not isinstance(expr, sp.Expr):
        raise _err(f"{expr!r} is not a sympy expression.")
    free = expr.free_symbols
    if symbol is None:
        if len(free) > 1:
            raise _err(f"{expr} has {len(free)} free symbols {sorted(map(str, free))}; an "
                       "activation must depend on exactly one (pass symbol= and substitute the "
                       "others by numbers).")
        symbol = next(iter(free)) if free else X
    else:
        extra = free - {symbol}
        if extra:
            raise _err(f"{expr} depends on {sorted(map(str, extra))} besides {symbol}; substitute "
                       "numbers for them.")
    if hermite_degree is not None and (int(hermite_degree) != hermite_degree or hermite_degree < 0):
        raise _err(f"hermite_degree must be a non-negative integer, got {hermite_degree!r}.")
    phi = expr.subs(symbol, X) if symbol != X else expr
    return _dual_cached(phi, None if hermite_degree is None else int(hermite_degree), float(tol),
                        str(expr))
