"""infntk.empirical_ntk_fn / empirical_nngp_fn against neural-tangents 0.6.5, same finite network.

The network is built with neural-tangents' stax and its own init_fn; both libraries take the same
``apply_fn(params, x)`` and the same parameter pytree (no conversion needed: infntk's empirical
kernels accept any JAX function). Every infntk implementation is compared with every
neural-tangents implementation, entry by entry, at 1e-10 of the entry's Cauchy-Schwarz scale
sqrt(K_ii K_jj) (see _compare.py), in float64.
"""
from __future__ import annotations

import importlib.util

import jax
import neural_tangents as nt
import numpy as np
import pytest
from neural_tangents import stax

from _compare import describe, entry_scale, relative_errors

pytestmark = pytest.mark.skipif(importlib.util.find_spec("infntk.empirical") is None,
                                reason="infntk.empirical does not exist yet")
RTOL = 1e-10

NETWORKS = {
    "mlp": (lambda: stax.serial(stax.Dense(48, W_std=1.5, b_std=0.2), stax.Relu(),
                                stax.Dense(32, W_std=1.2, b_std=0.1), stax.Erf(),
                                stax.Dense(3, W_std=0.9, b_std=0.3)), (4,)),
    "conv": (lambda: stax.serial(stax.Conv(8, (3,), padding="SAME", W_std=1.3, b_std=0.1),
                                 stax.Relu(), stax.AvgPool((2,)),
                                 stax.Conv(6, (2,), W_std=1.1), stax.Gelu(), stax.Flatten(),
                                 stax.Dense(2, W_std=1.0, b_std=0.2)), (6, 2)),
}
NT_IMPLS = (1, 2, 3)  # jacobian contraction, NTK-vector products, structured derivatives
IX_IMPLS = ("jacobian_contraction", "ntk_vector_products", "structured", "auto")


@pytest.fixture(scope="module", params=sorted(NETWORKS))
def network(request):
    build, shape = NETWORKS[request.param]
    init_fn, apply_fn, _ = build()
    _, params = init_fn(jax.random.PRNGKey(0), (-1,) + shape)
    rng = np.random.default_rng(1)
    x1, x2 = rng.normal(size=(4,) + shape), rng.normal(size=(3,) + shape)
    return apply_fn, params, x1, x2


def _check(name, got, ref, diag1, diag2):
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, (name, got.shape, ref.shape)
    s = entry_scale(ref, diag1, diag2)
    assert np.max(relative_errors(got, ref, s)) <= RTOL, describe(name, got, ref, s, RTOL)


@pytest.mark.parametrize("ix_impl", IX_IMPLS)
@pytest.mark.parametrize("nt_impl", NT_IMPLS)
def test_empirical_ntk_matches_nt(network, nt_impl, ix_impl):
    from infntk.empirical import empirical_ntk_fn
    apply_fn, params, x1, x2 = network
    ref_fn = nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0, implementation=nt_impl)
    got_fn = empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0, implementation=ix_impl)
    d1 = np.diag(np.asarray(ref_fn(x1, None, params)))
    d2 = np.diag(np.asarray(ref_fn(x2, None, params)))
    _check("ntk x2=None", got_fn(x1, None, params), ref_fn(x1, None, params), d1, d1)
    _check("ntk x2", got_fn(x1, x2, params), ref_fn(x1, x2, params), d1, d2)
    _check("ntk batch1", got_fn(x1[:1], None, params), ref_fn(x1[:1], None, params),
           d1[:1], d1[:1])


def test_empirical_ntk_untraced_matches_nt(network):
    """trace_axes=(): the full (N1, N2, K, K) NTK."""
    from infntk.empirical import empirical_ntk_fn
    apply_fn, params, x1, x2 = network
    ref = np.asarray(nt.empirical_ntk_fn(apply_fn, trace_axes=(), implementation=1)(x1, x2, params))
    got = np.asarray(empirical_ntk_fn(apply_fn, trace_axes=())(x1, x2, params))
    assert got.shape == ref.shape
    scale = np.full(ref.shape, np.max(np.abs(ref)))
    assert np.max(relative_errors(got, ref, scale)) <= RTOL, describe("ntk (N1,N2,K,K)", got, ref,
                                                                      scale, RTOL)


def test_empirical_nngp_matches_nt(network):
    from infntk.empirical import empirical_nngp_fn
    apply_fn, params, x1, x2 = network
    ref_fn, got_fn = nt.empirical_nngp_fn(apply_fn), empirical_nngp_fn(apply_fn)
    d1 = np.diag(np.asarray(ref_fn(x1, None, params)))
    d2 = np.diag(np.asarray(ref_fn(x2, None, params)))
    _check("nngp x2", got_fn(x1, x2, params), ref_fn(x1, x2, params), d1, d2)
    _check("nngp x2=None", got_fn(x1, None, params), ref_fn(x1, None, params), d1, d1)
