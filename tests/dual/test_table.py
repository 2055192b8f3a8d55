"""Every table dual (and derivative dual) against an independent 2-D quadrature.

The reference (tests/dual/reference.py) is accurate to ~1e-14 relative (split Gauss-Legendre on
smooth pieces, checked in test_reference_accuracy); the duals must agree to 1e-8 relative to the
natural scale sqrt(T(q11,q11,q11) T(q22,q22,q22)) (Cauchy-Schwarz bound on |T|).
"""
import math

import numpy as np
import pytest

from .cases import CASES, RHOS, VARIANCES
from .reference import expect1, expect2

TOL = 1e-8


def _grid():
    for q11, q22 in VARIANCES:
        for r in RHOS:
            yield q11, r * math.sqrt(q11 * q22), q22


def test_reference_accuracy():
    """The reference reproduces ReLU's closed form and Gaussian moments to ~1e-13."""
    relu = lambda x: np.maximum(x, 0)
    for q11, q12, q22 in _grid():
        r = max(-1.0, min(1.0, q12 / math.sqrt(q11 * q22)))
        th = math.acos(r)
        exact = math.sqrt(q11 * q22) / (2 * math.pi) * (math.sin(th) + (math.pi - th) * r)
        assert abs(expect2(relu, relu, q11, q12, q22) - exact) < 1e-13
        assert abs(expect2(lambda x: x**2, lambda x: x**2, q11, q12, q22, breaks=())
                   - (q11 * q22 + 2 * q12**2)) < 1e-12 * (1 + q11 * q22)


@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_converged(name):
    """The default 160 nodes per piece agree with 320 to 1e-11 (so the 1e-8 checks are sound)."""
    _, phi, dphi, breaks = CASES[name]
    for f in [phi] + ([dphi] if dphi is not None else []):
        for q11, q12, q22 in [(2.5, -0.999 * math.sqrt(2.5 * 1.7), 1.7), (0.3, 0.1, 0.5)]:
            a = expect2(f, f, q11, q12, q22, breaks)
            b = expect2(f, f, q11, q12, q22, breaks, n=320)
            assert abs(a - b) <= 1e-11 * (1 + abs(b)), name


@pytest.mark.parametrize("name", sorted(CASES))
def test_nngp_vs_quadrature(name):
    factory, phi, _, breaks = CASES[name]
    d = factory()
    worst = 0.0
    for q11, q12, q22 in _grid():
        ref = expect2(phi, phi, q11, q12, q22, breaks)
        scale = math.sqrt(expect1(lambda x: phi(x) ** 2, q11, breaks)
                          * expect1(lambda x: phi(x) ** 2, q22, breaks))
        got = float(d.nngp_fn(q11, q12, q22))
        err = abs(got - ref) / max(scale, 1e-300)
        worst = max(worst, err)
        assert err <= TOL, (name, q11, q12, q22, got, ref)
    print(f"{name}: worst relative error of T {worst:.2e}")


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c[2] is not None))
def test_dnngp_vs_quadrature(name):
    factory, _, dphi, breaks = CASES[name]
    d = factory()
    worst = 0.0
    for q11, q12, q22 in _grid():
        ref = expect2(dphi, dphi, q11, q12, q22, breaks)
        scale = math.sqrt(expect1(lambda x: dphi(x) ** 2, q11, breaks)
                          * expect1(lambda x: dphi(x) ** 2, q22, breaks))
        got = float(d.dnngp_fn(q11, q12, q22))
        err = abs(got - ref) / max(scale, 1e-300)
        worst = max(worst, err)
        assert err <= TOL, (name, q11, q12, q22, got, ref)
    print(f"{name}: worst relative error of T' {worst:.2e}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_mean_vs_quadrature(name):
    factory, phi, _, breaks = CASES[name]
    d = factory()
    for q in (0.3, 1.0, 2.5):
        ref = expect1(phi, q, breaks)
        scale = math.sqrt(expect1(lambda x: phi(x) ** 2, q, breaks))
        assert abs(float(d.mean_fn(q)) - ref) <= TOL * scale, (name, q)


@pytest.mark.parametrize("name", ["sign", "rect0"])
def test_jump_convention(name):
    """phi jumps: T' is 0 by convention (neural-tangents' Sign / RectifiedMonomial(0))."""
    d = CASES[name][0]()
    assert d.dnngp == 0
    assert "delta" in d.notes
    assert float(d.dnngp_fn(1.0, 0.3, 2.0)) == 0.0


def test_methods_and_names():
    for name, (factory, *_rest) in CASES.items():
        d = factory()
        assert d.method in ("closed-form", "moments"), name
        assert d.nngp is not None and d.dnngp is not None


def test_hermite_unit_variance_matches_nt_convention():
    """At q11 = q22 = 1 the true expectation is neural-tangents' q12**n; elsewhere it is not."""
    from infntk.dual import table
    for n in range(0, 6):
        d = table.hermite(n)
        for q12 in (-0.7, 0.0, 0.4, 1.0):
            assert abs(float(d.nngp_fn(1.0, q12, 1.0)) - q12**n) < 1e-12
    d = table.hermite(2)
    assert abs(float(d.nngp_fn(2.0, 0.5, 2.0)) - 0.5**2) > 0.1


def test_gelu_approximate_is_true_expectation_of_tanh_form():
    from infntk.dual import table
    d = table.gelu(approximate=True)
    c = math.sqrt(2 / math.pi)
    phi = lambda x: x / 2 * (1 + np.tanh(c * (x + 0.044715 * x**3)))
    for q11, q12, q22 in [(1.0, 0.5, 1.0), (0.5, -0.2, 2.0)]:
        ref = expect2(phi, phi, q11, q12, q22, breaks=())
        assert abs(float(d.nngp_fn(q11, q12, q22)) - ref) < 1e-6 * abs(ref)
