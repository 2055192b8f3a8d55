"""Derived duals of user activations vs the independent quadrature, routes, and errors."""
import math
import warnings

import numpy as np
import pytest
import sympy as sp
from scipy import special

from infntk.dual import X, dual_from_expr
from infntk.dual.derive import REFERENCE_Q, InfntkWarning
from infntk.errors import InfntkError

from .reference import expect1, expect2

x = sp.Symbol("x")  # a plain (complex) user symbol on purpose

# expr, numpy phi, numpy phi', breakpoints, expected route
CASES = {
    "cubic": (x**3 - 2 * x, lambda t: t**3 - 2 * t, lambda t: 3 * t**2 - 2, (), "moments"),
    "sin_plus_x": (sp.sin(x) + x, lambda t: np.sin(t) + t, lambda t: np.cos(t) + 1, (),
                   "hermite"),
    "x_gauss": (x * sp.exp(-x**2 / 2), lambda t: t * np.exp(-t * t / 2),
                lambda t: (1 - t * t) * np.exp(-t * t / 2), (), "hermite"),
    "tanh": (sp.tanh(x), np.tanh, lambda t: 1 / np.cosh(t) ** 2, (), "quadrature"),
    "softplus": (sp.log(1 + sp.exp(x)), lambda t: np.logaddexp(0, t), special.expit, (),
                 "quadrature"),
    "leaky_piecewise": (sp.Piecewise((x, x > 0), (x / 5, True)),
                        lambda t: np.where(t > 0, t, t / 5), lambda t: np.where(t > 0, 1, 0.2),
                        (0.0,), "closed-form"),
    "rect_piecewise": (3 * sp.Piecewise((x**2, x >= 0), (0, True)) + 1,
                       lambda t: 3 * np.where(t >= 0, t * t, 0) + 1,
                       lambda t: 6 * np.where(t >= 0, t, 0), (0.0,), "closed-form"),
    "affine_erf": (3 * sp.erf(2 * x + 0) - 1, lambda t: 3 * special.erf(2 * t) - 1,
                   lambda t: 12 / math.sqrt(math.pi) * np.exp(-4 * t * t), (), "closed-form"),
    "affine_sin": (2 * sp.sin(3 * x + 1) + 0.5, lambda t: 2 * np.sin(3 * t + 1) + 0.5,
                   lambda t: 6 * np.cos(3 * t + 1), (), "closed-form"),
    "relu_plus_x": (sp.Max(x, 0) + x, lambda t: np.maximum(t, 0) + t,
                    lambda t: np.where(t > 0, 2.0, 1.0), (0.0,), "closed-form"),
    "scaled_gelu": (x * (1 + sp.erf(2 * x / sp.sqrt(2))), lambda t: 2 * t * special.ndtr(2 * t),
                    lambda t: 2 * special.ndtr(2 * t) + 4 * t * np.exp(-2 * t * t)
                    / math.sqrt(2 * math.pi), (), "closed-form"),
}

GRID = [(q11, r * math.sqrt(q11 * q22), q22)
        for q11, q22 in [(0.3, 0.5), (1.0, 1.0), (2.0, 1.2)]
        for r in (-0.999, -0.4, 0.0, 0.6, 0.999, 1.0)]
TOL = 1e-6
NREF = 320  # nodes per piece; converged to ~1e-12 for these cases (test_reference_converged)


@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_converged(name):
    _, phi, dphi, breaks, _ = CASES[name]
    for f in (phi, dphi):
        for q11, q12, q22 in GRID[::5]:
            a = expect2(f, f, q11, q12, q22, breaks, n=NREF)
            b = expect2(f, f, q11, q12, q22, breaks, n=2 * NREF)
            assert abs(a - b) <= 1e-10 * (1 + abs(b))


@pytest.mark.parametrize("name", sorted(CASES))
def test_derived_vs_quadrature(name):
    expr, phi, dphi, breaks, route = CASES[name]
    d = dual_from_expr(expr)
    assert d.method == route
    # Hermite route: the reported (absolute) truncation bound is part of the derived tolerance
    bound = 0.0
    if route == "hermite":
        assert d.truncation_error is not None and d.truncation_error < TOL
        assert max(q for g in GRID for q in (g[0], g[2])) <= max(REFERENCE_Q)
        bound = d.truncation_error
    for f, df in ((d.nngp_fn, phi), (d.dnngp_fn, dphi)):
        worst = 0.0
        for q11, q12, q22 in GRID:
            ref = expect2(df, df, q11, q12, q22, breaks, n=NREF)
            scale = math.sqrt(expect1(lambda t: df(t) ** 2, q11, breaks)
                              * expect1(lambda t: df(t) ** 2, q22, breaks))
            err = abs(float(f(q11, q12, q22)) - ref)
            worst = max(worst, err / scale)
            tol = TOL * scale + bound
            assert err <= tol, (name, q11, q12, q22, err / scale)
        print(f"{name}: worst relative error {worst:.2e}")
    for q in (0.3, 1.0, 2.0):
        ref = expect1(phi, q, breaks)
        assert abs(float(d.mean_fn(q)) - ref) <= TOL * math.sqrt(
            expect1(lambda t: phi(t) ** 2, q, breaks)) + 1e-15


def test_symbolic_routes_have_expressions():
    for name, (expr, *_rest, route) in CASES.items():
        d = dual_from_expr(expr)
        if route == "quadrature":
            assert d.nngp is None and d.dnngp is None
        else:
            assert d.nngp is not None
            assert sp.simplify(d.dnngp - sp.diff(d.nngp, sp.Symbol("q12", real=True))) == 0 \
                or d.method == "closed-form"


def test_hermite_degree_is_user_settable_and_error_reported():
    lo = dual_from_expr(x * sp.exp(-x**2 / 2), hermite_degree=8)
    hi = dual_from_expr(x * sp.exp(-x**2 / 2), hermite_degree=24)
    assert lo.method == hi.method == "hermite"
    assert lo.truncation_error > hi.truncation_error > 0
    # the reported bound holds: |T_N - T| <= bound, checked at rho = 1, q = 1
    phi = lambda t: t * np.exp(-t * t / 2)
    ref = expect1(lambda t: phi(t) ** 2, 1.0, ())
    assert abs(float(lo.nngp_fn(1.0, 1.0, 1.0)) - ref) <= lo.truncation_error * (1 + 1e-9)


def test_piecewise_with_jump_warns_and_uses_ae_derivative():
    expr = sp.Piecewise((x + 1, x > 0), (sp.exp(x) - 1, True))
    with pytest.warns(InfntkWarning, match="jump"):
        d = dual_from_expr(expr)
    assert d.method == "quadrature"
    assert d.kinks == (0.0,)
    dphi = lambda t: np.where(t > 0, 1.0, np.exp(t))          # noqa: E731
    phi = lambda t: np.where(t > 0, t + 1, np.exp(t) - 1)     # noqa: E731
    # The kink at 0 is found, so the quadrature panels split there and converge spectrally on each
    # smooth piece (plain Gauss-Hermite converged only algebraically: ~1e-3 here). Measured
    # against the independent 320-node split reference: <= 2.6e-13 for T and T'.
    for q11, q12, q22 in [(1.0, 0.3, 1.0), (0.5, -0.2, 2.0), (1.2, 1.1, 1.3)]:
        ref_t = expect2(phi, phi, q11, q12, q22, (0.0,), n=320)
        ref_tp = expect2(dphi, dphi, q11, q12, q22, (0.0,), n=320)
        assert abs(float(d.nngp_fn(q11, q12, q22)) - ref_t) <= 1e-10 * max(1.0, abs(ref_t))
        assert abs(float(d.dnngp_fn(q11, q12, q22)) - ref_tp) <= 1e-10 * max(1.0, abs(ref_tp))


def test_symbol_argument_and_constant():
    y = sp.Symbol("y", real=True)
    d = dual_from_expr(sp.Max(y, 0), symbol=y)
    assert d.method == "closed-form" and d.phi.free_symbols == {X}
    c = dual_from_expr(sp.Integer(2))
    assert float(c.nngp_fn(1.0, 0.3, 2.0)) == 4.0


@pytest.mark.parametrize("bad, match", [
    (x * sp.Symbol("y"), "2 free symbols"),
    (sp.exp(x**2), r"diverges for q >= 0.5"),
    (x**2 * sp.exp(x**2 / 4), r"diverges for q >= 2"),
    (1 / x, "not real and finite"),
    (sp.log(x), "not real and finite"),
    ("x**2", "not a string"),
])
def test_errors(bad, match):
    with pytest.raises(InfntkError, match=match):
        dual_from_expr(bad)


def test_extra_symbol_with_symbol_given():
    with pytest.raises(InfntkError, match="besides"):
        dual_from_expr(x + sp.Symbol("a"), symbol=x)
