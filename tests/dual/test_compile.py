"""Compiled duals: jit, dtype preservation, broadcasting, no NaN and finite gradients at rho = +-1
and at zero variance."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from infntk.dual import Q11, Q12, Q22, X, table
from infntk.dual.compile import compile_expr

from .cases import CASES

NAMES = sorted(CASES)


@pytest.mark.parametrize("name", NAMES)
def test_jit_and_dtypes(name):
    d = CASES[name][0]()
    q11 = np.array([0.5, 1.0, 2.0])
    q22 = np.array([[1.5], [0.7]])
    q12 = 0.3 * np.sqrt(q11 * q22)
    for dtype in (jnp.float32, jnp.float64):
        args = [jnp.asarray(a, dtype) for a in (q11, q12, q22)]
        for fn in (d.nngp_fn, d.dnngp_fn):
            eager = fn(*args)
            jitted = jax.jit(fn)(*args)
            assert eager.dtype == dtype and jitted.dtype == dtype
            assert eager.shape == (2, 3)
            rtol = 1e-5 if dtype == jnp.float32 else 1e-12
            np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=rtol,
                                       atol=rtol)
        x = jnp.linspace(-2, 2, 5, dtype=dtype)
        assert d.phi_fn(x).dtype == dtype and d.phi_fn(x).shape == (5,)
        assert d.mean_fn(jnp.asarray([0.5, 1.0], dtype)).dtype == dtype


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_boundaries_finite_values_and_gradients(name, dtype):
    d = CASES[name][0]()
    pts = []
    for q11, q22 in [(1.0, 1.0), (0.7, 2.0)]:
        s = math.sqrt(q11 * q22)
        pts += [(q11, s, q22), (q11, -s, q22), (q11, s * (1 + 1e-7), q22)]
    pts += [(0.0, 0.0, 1.3), (1.3, 0.0, 0.0), (0.0, 0.0, 0.0)]
    cols = [jnp.asarray(c, dtype) for c in zip(*pts)]
    for fn in (d.nngp_fn, d.dnngp_fn):
        v = jax.jit(fn)(*cols)
        assert bool(jnp.all(jnp.isfinite(v))), (name, v)
        grad = jax.jit(jax.vmap(jax.grad(fn, argnums=(0, 1, 2))))
        for g in grad(*cols):
            assert bool(jnp.all(jnp.isfinite(g))), (name, g)


def test_zero_variance_limits():
    """A zero variance is a deterministic 0 input: T = phi(0) m(q22)."""
    for name in NAMES:
        factory, phi, _, _ = CASES[name]
        d = factory()
        if name in ("rect0",):  # phi jumps at 0: the limit depends on the convention phi(0)
            continue
        got = float(d.nngp_fn(0.0, 0.0, 1.3))
        want = float(phi(np.array(0.0))) * float(d.mean_fn(1.3))
        assert abs(got - want) <= 1e-12 * (1 + abs(want)), (name, got, want)


def test_clipping_rho_beyond_one():
    d = table.relu()
    a = float(d.nngp_fn(1.0, 1.0 + 1e-12, 1.0))
    assert abs(a - 0.5) < 1e-10


def test_relu_gradient_at_rho_one_is_one_sided_limit():
    d = table.relu()
    g = jax.grad(d.nngp_fn, argnums=1)(1.0, 1.0, 1.0)
    assert abs(float(g) - 0.5) < 1e-12  # T' -> (pi - 0)/(2 pi)


def test_compile_cache_and_constant_broadcast():
    f1 = compile_expr(sp.Integer(3) + 0 * Q12, (Q11, Q12, Q22))
    out = f1(jnp.ones((2, 3)), 0.0, 1.0)
    assert out.shape == (2, 3) and float(out[0, 0]) == 3.0
    g = compile_expr(sp.sin(X), (X,))
    assert g(jnp.float32(1.0)).dtype == jnp.float32
    assert g(1).dtype == jnp.result_type(float)
