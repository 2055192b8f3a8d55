"""``fast_angle(r, y)``: the angle of every arc-cosine dual, against a long-double reference."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infntk.dual.fastmath import fast_angle


def reference(r, y):
    """atan2 in extended precision (numpy longdouble)."""
    return np.arctan2(np.asarray(r, np.longdouble), np.asarray(y, np.longdouble))


def points(dtype, n=200_000, seed=0):
    rng = np.random.default_rng(seed)
    q11 = rng.uniform(0.01, 10, n)
    q22 = rng.uniform(0.01, 10, n)
    rho = np.concatenate([rng.uniform(-1, 1, n // 2),
                          1 - 10.0 ** rng.uniform(-16, -1, n // 4),       # near rho = 1
                          -1 + 10.0 ** rng.uniform(-16, -1, n - n // 2 - n // 4)])
    q12 = rho * np.sqrt(q11 * q22)
    r = np.sqrt(np.maximum(q11 * q22 - q12 * q12, 0))
    return r.astype(dtype), q12.astype(dtype)


@pytest.mark.parametrize("dtype, ulps", [(np.float32, 4), (np.float64, 4)])
def test_fast_angle_within_a_few_ulp(dtype, ulps):
    if dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    r, y = points(dtype)
    got = np.asarray(fast_angle(jnp.asarray(r), jnp.asarray(y)), np.longdouble)
    ref = reference(r, y)
    ulp = np.spacing(np.maximum(np.abs(ref), np.finfo(dtype).tiny).astype(dtype)).astype(np.longdouble)
    err = np.abs(got - ref) / ulp
    assert err.max() <= ulps, f"max error {err.max():.2f} ulp at r={r[err.argmax()]}, y={y[err.argmax()]}"


def test_fast_angle_exact_on_the_diagonal_and_at_zero():
    jax.config.update("jax_enable_x64", True)
    y = jnp.array([0.3, 2.0, -1.5, 0.0])
    out = np.asarray(fast_angle(jnp.zeros(4), y))
    np.testing.assert_array_equal(out, [0.0, 0.0, np.pi, np.pi / 2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_in_either_argument_gives_nan(dtype):
    """A NaN variance or covariance must not come out as a plausible angle (pi/2)."""
    from infntk.dual.compile import safe_angle
    jax.config.update("jax_enable_x64", True)
    r = jnp.asarray([np.nan, 1.0, np.nan, 0.0], dtype)
    y = jnp.asarray([1.0, np.nan, np.nan, 0.0], dtype)
    for fn in (fast_angle, safe_angle, jax.jit(safe_angle)):
        out = np.asarray(fn(r, y))
        assert np.isnan(out[:3]).all(), (fn, out)
        assert out[3] == np.float32(np.pi / 2) if dtype == np.float32 else out[3] == np.pi / 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_safe_angle_is_fast_angle_bitwise(dtype):
    """The duals' angle is fast_angle exactly: its trailing division (a fusion boundary) is by 1."""
    from infntk.dual.compile import safe_angle
    jax.config.update("jax_enable_x64", True)
    r, y = points(dtype, n=20_000, seed=1)
    np.testing.assert_array_equal(np.asarray(jax.jit(safe_angle)(r, y)),
                                  np.asarray(jax.jit(fast_angle)(r, y)))
