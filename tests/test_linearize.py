"""Taylor models: error of the order-d model decays as eps^(d+1) (log-log slope)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infntk.errors import InfntkError
from infntk.linearize import linearize, taylor_expand


def net(p, x):
    h = jnp.tanh(x @ p["w1"] / math.sqrt(3) + p["b1"])
    return jnp.sin(h @ p["w2"] / math.sqrt(8))


@pytest.fixture(scope="module")
def setup():
    k = jax.random.split(jax.random.PRNGKey(0), 6)
    p = dict(w1=jax.random.normal(k[0], (3, 8)), b1=jax.random.normal(k[1], (8,)),
             w2=jax.random.normal(k[2], (8, 2)))
    d = jax.tree_util.tree_map(lambda a, kk: jax.random.normal(kk, a.shape), p,
                               dict(w1=k[3], b1=k[4], w2=k[5]))
    x = jax.random.normal(jax.random.PRNGKey(9), (5, 3))
    return p, d, x


def _slope(f_approx, p, d, x):
    eps = np.logspace(-3, -1, 7)
    errs = []
    for e in eps:
        q = jax.tree_util.tree_map(lambda a, b: a + e * b, p, d)
        errs.append(float(jnp.max(jnp.abs(net(q, x) - f_approx(q, x)))))
    return np.polyfit(np.log(eps), np.log(errs), 1)[0]


def test_linearize_exact_at_init_and_second_order_error(setup):
    p, d, x = setup
    f_lin = linearize(net, p)
    np.testing.assert_allclose(f_lin(p, x), net(p, x), atol=1e-14)
    slope = _slope(f_lin, p, d, x)
    assert abs(slope - 2.0) < 0.1, slope


def test_taylor_degree2_has_slope_3_and_degree1_equals_linearize(setup):
    p, d, x = setup
    assert abs(_slope(taylor_expand(net, p, 2), p, d, x) - 3.0) < 0.1
    q = jax.tree_util.tree_map(lambda a, b: a + 0.3 * b, p, d)
    np.testing.assert_allclose(taylor_expand(net, p, 1)(q, x), linearize(net, p)(q, x),
                               atol=1e-13)
    np.testing.assert_allclose(taylor_expand(net, p, 0)(q, x), net(p, x), atol=1e-14)


def test_linearize_of_linear_function_is_exact():
    f = lambda w, x: x @ w  # noqa: E731
    w0, w1 = jnp.ones((3, 2)), jnp.arange(6.0).reshape(3, 2)
    x = jnp.eye(3)
    np.testing.assert_allclose(linearize(f, w0)(w1, x), f(w1, x), atol=1e-14)


def test_bad_degree():
    with pytest.raises(InfntkError, match="degree"):
        taylor_expand(net, {}, -1)
