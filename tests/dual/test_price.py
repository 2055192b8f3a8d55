"""Price's theorem: d(nngp)/dq12 equals the known derivative dual.

Known derivative duals are written here from the literature (not taken from the Dual):
ABReLU (a^2+b^2)/2 - (a-b)^2 theta/(2 pi); Erf 4 a^2 b^2 / (pi sqrt((1+2b^2q11)(1+2b^2q22) -
4 b^4 q12^2)); Exp b^2 T; Sin a^2 b^2/2 (s1 + s2); Gaussian 4 a^2 b^2 q12 / D^{3/2};
x^n and rectified x^n: n^2 T_{n-1}. Checked symbolically where sympy decides, else numerically to
1e-12 on a grid including rho = +-(1 - 1e-9).
"""
import math

import numpy as np
import pytest
import sympy as sp

from infntk.dual import Q11, Q12, Q22, table
from infntk.dual.simplify import rho

from .cases import CASES

R = rho()
TH = sp.acos(R)


def _known():
    a, b = sp.Rational(-3, 10), 2
    k = {
        "relu": (table.relu(), (sp.pi - TH) / (2 * sp.pi)),
        "abrelu": (table.abrelu(a, b), (a**2 + b**2) / 2 - (a - b) ** 2 * TH / (2 * sp.pi)),
        "abs": (table.abs_(), 1 - 2 * TH / sp.pi),
        "erf": (table.erf(2, sp.Rational(1, 2), sp.Rational(3, 10)),
                4 * 4 * sp.Rational(1, 4) / (sp.pi * sp.sqrt(
                    (1 + Q11 / 2) * (1 + Q22 / 2) - Q12**2 / 4))),
        "exp": (table.exp(sp.Rational(1, 2), sp.Rational(3, 5)),
                sp.Rational(9, 25) * table.exp(sp.Rational(1, 2), sp.Rational(3, 5)).nngp),
        "sin": (table.sin(sp.Rational(3, 2), sp.Rational(7, 10), sp.Rational(3, 10)),
                sp.Rational(9, 4) * sp.Rational(49, 100) / 2
                * (sp.exp(-sp.Rational(49, 200) * (Q11 + Q22) + sp.Rational(49, 100) * Q12)
                   + sp.cos(sp.Rational(3, 5))
                   * sp.exp(-sp.Rational(49, 200) * (Q11 + Q22) - sp.Rational(49, 100) * Q12))),
        "gaussian": (table.gaussian(sp.Rational(13, 10), -sp.Rational(7, 10)),
                     sp.Rational(169, 100) * 4 * sp.Rational(49, 100) * Q12
                     / ((1 + sp.Rational(7, 5) * Q11) * (1 + sp.Rational(7, 5) * Q22)
                        - sp.Rational(196, 100) * Q12**2) ** sp.Rational(3, 2)),
        "rbf": (table.rbf(sp.Rational(1, 2)), table.rbf(sp.Rational(1, 2)).nngp),
    }
    for n in (1, 2, 3, 4):
        k[f"rect{n}"] = (table.rectified_monomial(n), n**2 * table.rectified_monomial(n - 1).nngp)
        k[f"monomial{n}"] = (table.monomial(n), n**2 * table.monomial(n - 1).nngp)
    return k


KNOWN = _known()


def _grid():
    for q11, q22 in [(0.3, 0.5), (1.0, 1.0), (2.5, 1.7)]:
        for r in (-1 + 1e-9, -0.9, -0.3, 0.0, 0.4, 0.95, 1 - 1e-9):
            yield q11, r * math.sqrt(q11 * q22), q22


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_price_theorem(name):
    d, known = KNOWN[name]
    derived = sp.diff(d.nngp, Q12)
    # the Dual's dnngp is the (simplified) derivative of its nngp ...
    assert d.dnngp is not None
    # ... and equals the known derivative dual: symbolically where sympy decides,
    diff = sp.simplify(sp.expand(derived - known))
    if diff == 0:
        return
    # else numerically to 1e-12 (relative to the derivative's scale) on the grid.
    f_derived = sp.lambdify((Q11, Q12, Q22), derived, "mpmath")
    f_dnngp = sp.lambdify((Q11, Q12, Q22), d.dnngp, "mpmath")
    f_known = sp.lambdify((Q11, Q12, Q22), known, "mpmath")
    import mpmath
    with mpmath.workdps(40):
        for q11, q12, q22 in _grid():
            args = [mpmath.mpf(v) for v in (q11, q12, q22)]
            kv = f_known(*args)
            scale = abs(f_known(args[0], mpmath.sqrt(args[0] * args[2]), args[2])) + 1
            assert abs(f_derived(*args) - kv) <= 1e-12 * scale, (name, q11, q12, q22)
            assert abs(f_dnngp(*args) - kv) <= 1e-12 * scale, (name, q11, q12, q22)


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_compiled_dnngp_matches_known(name):
    """The compiled T' (with its stability rewrites) matches the known form in float64."""
    d, known = KNOWN[name]
    f = sp.lambdify((Q11, Q12, Q22), known, "numpy")
    for q11, q12, q22 in _grid():
        kv = float(f(q11, q12, q22))
        got = float(d.dnngp_fn(q11, q12, q22))
        assert abs(got - kv) <= 1e-9 * (1 + abs(kv)), (name, q11, q12, q22, got, kv)


def test_sign_price_is_delta_and_convention_is_zero():
    """sign: sympy.diff gives the delta contribution 2/(pi sqrt(q11 q22 - q12^2)); dnngp is 0."""
    d = table.sign()
    price = sp.diff(d.nngp, Q12)
    expected = 2 / (sp.pi * sp.sqrt(Q11 * Q22 - Q12**2))
    vals = {Q11: sp.Rational(13, 10), Q12: sp.Rational(2, 5), Q22: sp.Rational(4, 5)}
    assert abs(sp.N((price - expected).subs(vals), 30)) < 1e-25
    assert d.dnngp == 0


def test_cases_cover_every_table_function():
    from infntk.dual import table as t
    covered = {"relu", "abrelu", "leaky_relu", "abs_", "erf", "gelu", "sin", "cos", "exp",
               "gaussian", "rbf", "sign", "monomial", "rectified_monomial", "polynomial",
               "hermite"}
    assert set(t.__all__) == covered
    assert len(CASES) >= len(covered)
