"""Arbitration by finite networks where infntk and neural-tangents 0.6.5 disagree.

The finite networks are built with neural-tangents' OWN ``init_fn``/``apply_fn`` (and its own
``empirical_ntk_fn``), at large width, over many seeds. Each case is a network
``serial(body, Dense(1, W_std=w, b_std=b))`` where ``body`` ends in ``n`` channels:

* NNGP estimate of one seed: ``w^2 <phi(x), phi(x')>/n + b^2`` with phi the body's output -- the exact
  expectation over the readout weights, so the only randomness left is the body's;
* NTK estimate of one seed: ``neural_tangents.empirical_ntk_fn`` of the whole network.

For a body with a single hidden layer both estimates are unbiased at every width (the hidden
pre-activations are exactly Gaussian), so the tolerance is Z standard errors of the mean over seeds,
the standard error estimated from the seeds themselves. Z = 5 keeps the family-wise false-alarm rate
below 1e-4 over all entries compared here; the tests also assert the standard error is small enough
for the comparison to mean something (it resolves the disagreement by a wide margin).
"""
from __future__ import annotations

import importlib.util
import math

import jax
import jax.numpy as jnp
import neural_tangents as nt
import numpy as np
import pytest
from neural_tangents import stax as nt_stax

pytestmark = [
    pytest.mark.montecarlo,
    pytest.mark.skipif(importlib.util.find_spec("infntk.stax") is None,
                       reason="infntk.stax does not exist yet"),
]

Z = 5.0


def _ix_stax():
    import infntk.stax
    return infntk.stax


def finite_estimates(body, w: float, b: float, x: np.ndarray, width: int, seeds: int):
    """Per-seed NNGP and NTK estimates, each of shape (seeds, N, N), of serial(body, readout)."""
    body_t = body(nt_stax, width)
    init_fn, apply_fn, _ = nt_stax.serial(body_t, nt_stax.Dense(1, W_std=w, b_std=b))
    body_apply = jax.jit(body_t[1])
    ntk_fn = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0))
    nngps, ntks = [], []
    for seed in range(seeds):
        _, params = init_fn(jax.random.PRNGKey(seed), x.shape)
        phi = body_apply(params[0], x).reshape(x.shape[0], -1)
        nngps.append(w**2 * (phi @ phi.T) / phi.shape[1] + (b or 0.0)**2)
        ntks.append(jnp.squeeze(ntk_fn(x, None, params)))
    return np.stack(nngps), np.stack(ntks)


def analytic(body, w, b, x, stax):
    _, _, kernel_fn = stax.serial(body(stax, 8), stax.Dense(1, W_std=w, b_std=b))
    k = kernel_fn(x, None, ("nngp", "ntk"))
    return {"nngp": np.asarray(k.nngp), "ntk": np.asarray(k.ntk)}


def cs_scale(k: np.ndarray) -> np.ndarray:
    """sqrt(K_ii K_jj): the Cauchy-Schwarz magnitude of each entry of a PSD kernel."""
    d = np.abs(np.diag(k))
    return np.sqrt(d[:, None] * d[None, :])


def assert_converges_to(name, estimates, value, bias=0.0):
    """Mean over seeds within Z standard errors (+ a stated finite-width bias bound) of value."""
    mean = estimates.mean(0)
    se = estimates.std(0, ddof=1) / math.sqrt(estimates.shape[0])
    err = np.abs(mean - value)
    assert np.all(err <= Z * se + bias + 1e-12 * np.abs(value)), (
        f"{name}: finite networks {mean} +- {se} (standard error) vs analytic {value}; "
        f"worst |err|/se = {np.max(err / np.maximum(se, 1e-300)):.2f}")
    return mean, se


# ------------------------------------------------------------------------------------------------
# RectifiedMonomial(d): neural-tangents gives NaN on every K(x, x) (its dual evaluates
# (pi - theta)/sin(theta) at theta = arccos(1) = 0); after one more such layer, NaN everywhere.
# infntk's kernel is what the finite networks converge to, entry by entry (diagonal included).
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_rectified_monomial_finite_networks_converge_to_infntk(degree):
    w, b = 1.1, 0.3

    def body(s, n):
        return s.serial(s.Dense(n, W_std=1.3, b_std=0.2), s.RectifiedMonomial(degree=degree))

    x = np.random.default_rng(10 + degree).normal(size=(3, 4))
    ref = analytic(body, w, b, x, nt_stax)
    for key in ("nngp", "ntk"):  # the reason for this test
        assert np.all(np.isnan(np.diag(ref[key]))), f"neural-tangents 0.6.5 {key} is NaN on K(x, x)"
    ours = analytic(body, w, b, x, _ix_stax())
    nngp_mc, ntk_mc = finite_estimates(body, w, b, x, width=4096, seeds=8)
    for key, est in (("nngp", nngp_mc), ("ntk", ntk_mc)):
        mean, se = assert_converges_to(f"RectifiedMonomial({degree}) {key}", est, ours[key])
        # Power: every entry resolved to 10% of its Cauchy-Schwarz scale (NaN vs a number needs
        # no more; this says the agreement above is not vacuous).
        assert np.all(se <= 0.1 * cs_scale(ours[key]) + 1e-12), "Monte Carlo too noisy"


# ------------------------------------------------------------------------------------------------
# Gelu(approximate=True): neural-tangents' kernel_fn ignores `approximate` (its docstring: "only
# relevant for finite-width network") and returns the kernel of the exact, erf-based Gelu, while its
# apply_fn uses the tanh approximation. infntk computes the kernel of the activation the network
# actually applies. The two differ by ~2e-4 relative -- far below plain Monte Carlo's reach, so the
# estimate uses the exact-Gelu network with the SAME parameters as a control variate: per seed,
# estimate(approximate=True) - estimate(approximate=False). Its mean is K_tanh - K_exact, which
# neural-tangents says is 0 and infntk says is infntk(True) - infntk(False); the control variate's
# spread is ~1e-3 of the kernel, so a few hundred thousand hidden units resolve it.
# ------------------------------------------------------------------------------------------------
def test_gelu_approximate_finite_networks_converge_to_infntk():
    w, b = 1.1, 0.3

    def body(approximate):
        def build(s, n):
            return s.serial(s.Dense(n, W_std=1.4, b_std=0.3), s.Gelu(approximate=approximate))
        return build

    x = np.random.default_rng(7).normal(size=(3, 4)) * 1.5
    nt_true, nt_false = (analytic(body(a), w, b, x, nt_stax) for a in (True, False))
    ix_true, ix_false = (analytic(body(a), w, b, x, _ix_stax()) for a in (True, False))
    width, seeds = 16384, 12
    mc_true = finite_estimates(body(True), w, b, x, width, seeds)
    mc_false = finite_estimates(body(False), w, b, x, width, seeds)  # same seeds: same weights
    for i, key in enumerate(("nngp", "ntk")):
        assert np.array_equal(nt_true[key], nt_false[key]), "neural-tangents ignores `approximate`"
        ix_diff = ix_true[key] - ix_false[key]
        mean, se = assert_converges_to(f"Gelu(approximate=True) - Gelu() {key}",
                                       mc_true[i] - mc_false[i], ix_diff)
        # Where the two libraries disagree by more than the cross-check's bar (1e-6 of the
        # entry's scale), neural-tangents' prediction (a difference of 0) is many standard
        # errors off.
        disagree = np.abs(ix_diff) > 1e-6 * cs_scale(ix_false[key])
        assert disagree.sum() >= 3, "a real disagreement"
        z_nt = np.abs(mean[disagree]) / se[disagree]
        assert np.all(z_nt > Z), (key, mean, se, z_nt)


# ------------------------------------------------------------------------------------------------
# Sign -> AvgPool: neural-tangents' Sign sets cov1 (the per-input covariance) to 1 at EVERY pair of
# spatial positions (`jnp.where(cov1 == 0, 0, 1)`), which is right only on the diagonal, where
# sign(u)^2 = 1; off the diagonal it is E[sign(u) sign(v)] = (2/pi) arcsin(rho). Pooling then mixes
# those wrong off-diagonal entries into the variances that the next nonlinearity reads: NNGP and NTK
# off by 6-40 %. This body has two hidden layers, so the finite network also carries an O(1/n)
# bias; it is bounded by BIAS_PER_WIDTH / n of each entry's Cauchy-Schwarz scale (generous: the
# 1/n coefficient of such networks is O(1) in those units) -- at n = 1024 that is 0.4 %, against a
# disagreement of 6-40 %.
# ------------------------------------------------------------------------------------------------
BIAS_PER_WIDTH = 4.0


def test_sign_then_pool_finite_networks_converge_to_infntk():
    w, b = 1.0, 0.1

    def body(s, n):
        return s.serial(s.Conv(n, (2,), padding="SAME", W_std=1.2, b_std=0.2), s.Sign(),
                        s.AvgPool((2,), strides=(2,)),
                        s.Conv(n, (2,), padding="SAME", W_std=1.1, b_std=0.1), s.Relu(),
                        s.GlobalAvgPool())

    x = np.random.default_rng(3).normal(size=(3, 6, 2))
    ref = analytic(body, w, b, x, nt_stax)
    ours = analytic(body, w, b, x, _ix_stax())
    width = 1024
    nngp_mc, ntk_mc = finite_estimates(body, w, b, x, width=width, seeds=8)
    for key, est in (("nngp", nngp_mc), ("ntk", ntk_mc)):
        bias = BIAS_PER_WIDTH / width * cs_scale(ours[key])
        mean, se = assert_converges_to(f"Sign -> AvgPool {key}", est, ours[key], bias)
        # neural-tangents is outside that band by many standard errors on the diagonal.
        z_nt = (np.abs(np.diag(mean) - np.diag(ref[key])) - np.diag(bias)) / np.diag(se)
        assert np.all(z_nt > Z), (key, np.diag(ref[key]), np.diag(mean), np.diag(se))
