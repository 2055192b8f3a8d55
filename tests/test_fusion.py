"""``infntk.fusion.materialize``: bitwise identity, identity derivative, and a real fusion boundary."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infntk.fusion import divide_by_one, materialize


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_materialize_is_bitwise_identity(dtype, data):
    jax.config.update("jax_enable_x64", True)
    width = 32 if dtype == np.float32 else 64
    values = data.draw(st.lists(st.floats(width=width, allow_nan=True, allow_infinity=True),
                                min_size=1, max_size=40))
    x = np.asarray(values, dtype)
    for fn in (materialize, jax.jit(materialize)):
        out = np.asarray(fn(jnp.asarray(x)))
        assert out.dtype == x.dtype
        # compare bit patterns: -0.0 stays -0.0, NaN stays NaN; subnormals are kept or flush to a
        # zero of the same sign, as in any XLA:CPU arithmetic (flush-to-zero, jax-version dependent)
        bits = f"u{x.itemsize}"
        flushed = np.copysign(np.zeros((), dtype), x)
        same = out.view(bits) == x.view(bits)
        tiny = (np.abs(x) < np.finfo(dtype).tiny) & (out.view(bits) == flushed.view(bits))
        assert (same | tiny | (np.isnan(out) & np.isnan(x))).all()


def test_integer_arrays_pass_through():
    x = jnp.arange(5)
    assert materialize(x) is x or (np.asarray(materialize(x)) == np.arange(5)).all()


def test_derivative_is_the_identity():
    jax.config.update("jax_enable_x64", True)
    x = jnp.array([0.5, -2.0, 3.0])
    t = jnp.array([1.0, 2.0, -1.0])
    _, tout = jax.jvp(materialize, (x,), (t,))
    np.testing.assert_array_equal(np.asarray(tout), np.asarray(t))
    g = jax.grad(lambda v: jnp.sum(materialize(v) ** 2))(x)
    np.testing.assert_array_equal(np.asarray(g), 2 * np.asarray(x))


def test_divide_by_one_is_nan_where_the_witness_is():
    x = jnp.array([1.0, 2.0, 3.0])
    w = jnp.array([0.0, jnp.nan, -jnp.inf])
    out = np.asarray(divide_by_one(x, w))
    assert out[0] == 1.0 and np.isnan(out[1]) and out[2] == 3.0


def _multiplies(fn, x) -> int:
    hlo = jax.jit(fn).lower(x).compile().as_text()
    return len(re.findall(r" multiply\(", hlo))


def _chain(x):
    y = x
    for _ in range(12):
        y = y * y * 0.5 + y  # 2 multiplies per step
    return y


def _padded_windows(y):
    """A SAME 3-tap window sum along axis 0: XLA reads the unpadded middle tap directly."""
    p = jnp.pad(y, 1)
    return p[:-2, 1:-1] + p[1:-1, 1:-1] + p[2:, 1:-1]


def _two_consumers(y):
    return y[:-1] * 2, y[1:].sum(0)


@pytest.mark.parametrize("consumers", [_padded_windows, _two_consumers])
def test_materialized_value_is_computed_once(consumers):
    """A cheap chain read by two fusions (the padded value and its middle tap; two differently
    shaped consumers) is recomputed inside each unless it is materialized; with materialize its 24
    multiplies appear once in the compiled program. If a future XLA simplifies the division away,
    this fails and the kernel recursions lose the boundary (benchmarks: 2-2.5x slower)."""
    x = jnp.linspace(-1.0, 1.0, 64 * 64, dtype=jnp.float32).reshape(64, 64)
    fused = _multiplies(lambda v: consumers(_chain(v)), x)
    stored = _multiplies(lambda v: consumers(materialize(_chain(v))), x)
    assert fused >= 2 * 24, fused  # the duplication this guards against still happens
    assert stored <= 24 + 1, stored
    a = jax.jit(lambda v: consumers(materialize(_chain(v))))(x)
    b = jax.jit(lambda v: consumers(_chain(v)))(x)
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-6)


def test_hypothesis_is_derandomized_for_every_test():
    """tests/conftest.py loads a derandomized profile, and the explicit settings here keep it."""
    assert settings.default.derandomize and settings.default.database is None
    # a test's own @settings keeps the profile's derandomize unless it sets it
    assert test_materialize_is_bitwise_identity.hypothesis.inner_test is not None
    assert settings(max_examples=5).derandomize
