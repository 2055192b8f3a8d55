"""Micro-benchmark: compiled duals vs hand-written ``jax.numpy`` (jitted both), 1000x1000 kernels.

Slow: run with ``INFNTK_FULL=1 pytest -m slow tests/dual/test_bench.py -s``. The default run does a
small honest version (200x200) and only checks the ratio loosely against timing noise.
"""
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infntk.dual import table


def _relu_hand(q11, q12, q22):
    p = q11 * q22
    s = jnp.sqrt(jnp.maximum(p - q12 * q12, 0.0))
    th = jnp.arctan2(s, q12)
    return (s + (jnp.pi - th) * q12) / (2 * jnp.pi), (jnp.pi - th) / (2 * jnp.pi)


def _erf_hand(q11, q12, q22):
    d = jnp.sqrt((1 + 2 * q11) * (1 + 2 * q22))
    return 2 / jnp.pi * jnp.arcsin(2 * q12 / d), 4 / jnp.pi / jnp.sqrt(d * d - 4 * q12 * q12)


def _gelu_hand(q11, q12, q22):
    pp = (1 + q11) * (1 + q22)
    d2 = pp - q12**2
    d = jnp.sqrt(d2)
    ang = jnp.arctan2(q12, d)
    t = q12 / 4 + ((q12**2 + q11 * q22 * d2) / (pp * d) + q12 * ang) / (2 * jnp.pi)
    dt = 0.25 + ang / (2 * jnp.pi) + q12 / d / (2 * jnp.pi) * (1 / d2 + (1 - q11 * q22) / pp + 1)
    return t, dt


def _time(f, args, reps):
    jax.block_until_ready(f(*args))
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def _bench(n, reps):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, 16))
    k = a @ a.T / 16
    q = np.diag(k)
    args = (jnp.asarray(q[:, None]), jnp.asarray(k), jnp.asarray(q[None, :]))
    out = {}
    for name, d, hand in [("relu", table.relu(), _relu_hand), ("erf", table.erf(), _erf_hand),
                          ("gelu", table.gelu(), _gelu_hand)]:
        comp = jax.jit(lambda a, b, c, d=d: (d.nngp_fn(a, b, c), d.dnngp_fn(a, b, c)))
        ref = jax.jit(hand)
        np.testing.assert_allclose(np.asarray(comp(*args)[0]), np.asarray(ref(*args)[0]),
                                   rtol=1e-9, atol=1e-12)
        out[name] = (_time(comp, args, reps), _time(ref, args, reps))
    return out


def test_bench_small():
    res = _bench(200, 15)
    for name, (tc, th) in res.items():
        print(f"{name}: compiled {tc * 1e3:.3f} ms, hand {th * 1e3:.3f} ms, ratio {tc / th:.2f}")
        assert tc < 5 * th + 2e-3  # loose: only guards against gross regressions in CI noise


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("INFNTK_FULL"), reason="set INFNTK_FULL=1")
def test_bench_full():
    res = _bench(1000, 30)
    for name, (tc, th) in res.items():
        print(f"{name} 1000x1000: compiled {tc * 1e3:.2f} ms, hand {th * 1e3:.2f} ms, "
              f"ratio {tc / th:.2f}")
        assert tc < 1.5 * th
