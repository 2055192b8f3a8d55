"""fast_arccos against an independent higher-precision reference, in ulps of the working dtype.

float32: a dense sweep of bit patterns over [-1, 1] (every 257th float, plus every float in the
neighbourhoods of -1, -1/2, 0, 1/2 and 1 where the branches meet) by default; every float32 in
[-1, 1] (2.1e9 values) with INFNTK_FULL=1. Reference: numpy float64 arccos (its error, < 1 ulp of
float64, is 2^-29 ulp of float32). float64: 4e6 points (uniform, near the branch points and the
ends), reference numpy long double arccos (x87 80-bit, 11 more mantissa bits).
"""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infntk.dual.fastmath import fast_arccos

ULP_BOUND = 1.0  # the implementation is < 1 ulp; the bar is 2 ulp
FULL = bool(os.environ.get("INFNTK_FULL"))
_f = jax.jit(fast_arccos)


def ulp_error(x, y, ref):
    """|y - ref| in units of the spacing of x's dtype at ref."""
    spacing = np.spacing(np.abs(ref).astype(x.dtype)).astype(ref.dtype)
    return np.abs(y.astype(ref.dtype) - ref) / spacing


def _f32_patterns(step):
    one = np.float32(1).view(np.uint32)
    pos = np.arange(0, one + 1, step, dtype=np.uint32)
    edges = [np.arange(max(int(b) - 2**16, 0), min(int(b) + 2**16, int(one) + 1), dtype=np.uint32)
             for b in (0, np.float32(0.5).view(np.uint32), one)]
    bits = np.unique(np.concatenate([pos] + edges))
    x = bits.view(np.float32)
    return np.concatenate([x, -x])


def _check_f32(x):
    y = np.asarray(_f(jnp.asarray(x)))
    err = ulp_error(x, y, np.arccos(x.astype(np.float64)))
    assert y.dtype == np.float32
    assert err.max() <= ULP_BOUND, (err.max(), x[err.argmax()])
    return err.max()


def test_float32_dense():
    _check_f32(_f32_patterns(257))


@pytest.mark.slow
@pytest.mark.skipif(not FULL, reason="exhaustive float32 sweep: INFNTK_FULL=1")
def test_float32_exhaustive():
    one = int(np.float32(1).view(np.uint32))
    worst = 0.0
    for start in range(0, one + 1, 1 << 24):
        bits = np.arange(start, min(start + (1 << 24), one + 1), dtype=np.uint32)
        x = bits.view(np.float32)
        worst = max(worst, _check_f32(np.concatenate([x, -x])))
    assert worst <= ULP_BOUND


def test_float64_dense():
    if np.finfo(np.longdouble).nmant < 60:
        pytest.skip("no extended long double on this platform for a float64 reference")
    rng = np.random.default_rng(0)
    parts = [rng.uniform(-1, 1, 2_000_000)]
    for b in (-1.0, -0.5, 0.0, 0.5, 1.0):
        for scale in (1e-3, 1e-9):
            parts.append(b + rng.uniform(-scale, scale, 200_000))
    parts.append(np.array([-1.0, -0.5, 0.0, 0.5, 1.0, np.nextafter(0.5, 1), np.nextafter(-0.5, -1),
                           5e-324, -5e-324, 1e-300]))
    x = np.concatenate(parts)
    x = x[np.abs(x) <= 1]
    y = np.asarray(_f(jnp.asarray(x)))
    assert y.dtype == np.float64
    err = ulp_error(x, y, np.arccos(x.astype(np.longdouble)))
    assert err.max() <= ULP_BOUND, (err.max(), x[err.argmax()])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values(dtype):
    x = np.array([1.0, -1.0, 0.0, -0.0, 1.5, np.nan], dtype)
    y = np.asarray(_f(jnp.asarray(x)))
    assert y[0] == 0.0
    assert y[1] == np.float32(np.pi) if dtype == np.float32 else y[1] == np.pi
    assert y[2] == y[3] == (np.float32(np.pi / 2) if dtype == np.float32 else np.pi / 2)
    assert np.isnan(y[4]) and np.isnan(y[5])
