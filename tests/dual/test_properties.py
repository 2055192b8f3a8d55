"""Property tests on random (q11, q22, rho): symmetry, diagonal, Cauchy–Schwarz, PSD Gram."""
import math

import numpy as np
from hypothesis import given, settings, strategies as st

from .cases import CASES
from .reference import expect1

NAMES = sorted(CASES)
var = st.floats(0.05, 3.0)
corr = st.floats(-1.0, 1.0)
SETTINGS = settings(max_examples=30, deadline=None, derandomize=True)


@SETTINGS
@given(st.sampled_from(NAMES), var, var, corr)
def test_symmetry(name, q11, q22, r):
    d = CASES[name][0]()
    q12 = r * math.sqrt(q11 * q22)
    a, b = float(d.nngp_fn(q11, q12, q22)), float(d.nngp_fn(q22, q12, q11))
    assert abs(a - b) <= 1e-12 * (1 + abs(a))
    a, b = float(d.dnngp_fn(q11, q12, q22)), float(d.dnngp_fn(q22, q12, q11))
    assert abs(a - b) <= 1e-12 * (1 + abs(a))


@SETTINGS
@given(st.sampled_from(NAMES), var)
def test_diagonal_is_second_moment(name, q):
    factory, phi, _, breaks = CASES[name]
    d = factory()
    ref = expect1(lambda x: phi(x) ** 2, q, breaks)
    assert abs(float(d.nngp_fn(q, q, q)) - ref) <= 1e-10 * (1 + abs(ref))


@SETTINGS
@given(st.sampled_from(NAMES), var, var, corr)
def test_cauchy_schwarz(name, q11, q22, r):
    d = CASES[name][0]()
    q12 = r * math.sqrt(q11 * q22)
    t12 = float(d.nngp_fn(q11, q12, q22))
    t11, t22 = float(d.nngp_fn(q11, q11, q11)), float(d.nngp_fn(q22, q22, q22))
    assert t12**2 <= t11 * t22 * (1 + 1e-10) + 1e-14


@SETTINGS
@given(st.sampled_from(NAMES), st.integers(0, 2**31 - 1))
def test_gram_is_psd(name, seed):
    d = CASES[name][0]()
    rng = np.random.default_rng(seed)
    n, dim = 7, 3  # rank-deficient input Gram: correlations +-1 occur along the way
    a = rng.normal(size=(n, dim)) * rng.uniform(0.3, 1.2, size=(n, 1))
    k = a @ a.T / dim
    q = np.diag(k)
    g = np.asarray(d.nngp_fn(q[:, None], k, q[None, :]))
    assert np.allclose(g, g.T, rtol=1e-12, atol=1e-14)
    ev = np.linalg.eigvalsh((g + g.T) / 2)
    assert ev.min() >= -1e-9 * max(1.0, ev.max())
    dg = np.asarray(d.dnngp_fn(q[:, None], k, q[None, :]))
    ev = np.linalg.eigvalsh((dg + dg.T) / 2)
    assert ev.min() >= -1e-9 * max(1.0, ev.max())
