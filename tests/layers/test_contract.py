"""The generic contract every registered layer satisfies (see registry.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import infntk as nk

from .registry import REGISTRY

NAMES = sorted(REGISTRY)


def inputs(shape, seed=0):
    """Standard normal float64 inputs (numpy's generator: no per-shape compilation of a sampler)."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape))


# The tests share two batches per layer, ``batch(shape)`` (5 inputs, seed 4) and ``other(shape)``
# (3 inputs, seed 5), and the full states ``model.kernel(x, None | y, get=None)`` of them: each
# is compiled once per layer and reused (the compiled kernel is cached per model, ``get`` and
# shapes), which keeps this file's run time in check without weakening any test.
BATCH, SEED = 5, 4


def batch(shape):
    return inputs((BATCH,) + tuple(shape[1:]), SEED)


def other(shape):
    return inputs((3,) + tuple(shape[1:]), 5)


# Comparisons at correlation exactly 1 (x2 = x1 vs x2 = None; nngp(x, x) vs the reported
# variance): the two sides compute rho = q12 / sqrt(q11 q22) from different roundings, |drho| ~ a few
# ulp, and arc-cosine duals have a square-root branch point at rho = 1, so they move by
# O(sqrt(|drho|)) ~ 1e-8 in float64. This is the conditioning of the problem, not an error budget.
RHO1_RTOL = 1e-7   # ~ 7 sqrt(eps)

# Models whose dual is taken by the quadrature route on a kinked composite (erf(max(0, x))): the
# kink-aware split quadrature is accurate to ~1e-8 (T) and ~1e-5 (T', near rho = +-1) against an
# independent reference (tests/dual/test_split_quadrature.py); symmetry holds to ~2e-12 absolute.
QUADRATURE_RTOL = {"Relu-Erf-chain": 1e-9}


@pytest.mark.parametrize("name", NAMES)
def test_init_shape_matches_apply(name):
    model, shape = REGISTRY[name]
    out_shape, params = model.init(jax.random.PRNGKey(1), shape)
    y = model.apply(params, inputs(shape))
    assert tuple(y.shape) == tuple(out_shape)
    assert tuple(model.output_shape(shape)) == tuple(out_shape)
    assert bool(jnp.all(jnp.isfinite(y)))


@pytest.mark.parametrize("name", NAMES)
def test_kernel_symmetric_under_swap(name):
    model, shape = REGISTRY[name]
    x1, x2 = batch(shape), other(shape)
    k12 = model.kernel(x1, x2, get=None)
    k21 = model.kernel(x2, x1, get=None)
    d = k12.nngp.ndim - 2
    # swapping inputs transposes the batch pair and every interleaved position pair
    perm = [1, 0] + [a for i in range(d // 2) for a in (3 + 2 * i, 2 + 2 * i)] if d and d % 2 == 0 and \
        k12.nngp.shape[2:] != k21.nngp.shape[2:] else None
    rtol = QUADRATURE_RTOL.get(name, 1e-12)
    for a, b in ((k12.nngp, k21.nngp), (k12.ntk, k21.ntk)):
        atol = rtol * float(np.abs(a).max()) if name in QUADRATURE_RTOL else 1e-12
        if a.ndim == 2:
            np.testing.assert_allclose(a, b.T, rtol=rtol, atol=atol)
        else:
            # full layout (N1, N2, S1, S1', ...): swap batch and every position pair
            nd = (a.ndim - 2)
            full = model.input_kernel(x1, x2).diagonal_spatial is False
            if full:
                perm = [1, 0] + [2 + 2 * i + j for i in range(nd // 2) for j in (1, 0)]
            else:
                perm = [1, 0] + list(range(2, a.ndim))
            np.testing.assert_allclose(a, jnp.transpose(b, perm), rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", NAMES)
def test_x2_none_equals_x2_x1(name):
    model, shape = REGISTRY[name]
    x = batch(shape)
    a = model.kernel(x, None, get=None)
    b = model.kernel(x, x, get=None)
    np.testing.assert_allclose(a.nngp, b.nngp, rtol=RHO1_RTOL, atol=1e-12)
    np.testing.assert_allclose(a.ntk, b.ntk, rtol=RHO1_RTOL, atol=1e-12)


def gram(a):
    """(N, N, ...) -> a square matrix over (input, position) pairs for the full layout."""
    n = a.shape[0]
    if a.ndim == 2:
        return a
    nd = (a.ndim - 2) // 2
    perm = [0] + [2 + 2 * i for i in range(nd)] + [1] + [3 + 2 * i for i in range(nd)]
    b = jnp.transpose(a, perm)
    m = int(np.prod(b.shape[: 1 + nd]))
    return b.reshape(m, m)


@pytest.mark.parametrize("name", NAMES)
def test_gram_psd_and_diagonal_matches_reported_variance(name):
    model, shape = REGISTRY[name]
    n, x = BATCH, batch(shape)
    k = model.kernel(x, None, get=None)
    for mat in (k.nngp, k.ntk):
        if mat.ndim > 2 and k.diagonal_spatial:
            # diagonal layout: each position separately is a Gram matrix over inputs
            mats = [mat[(slice(None), slice(None)) + idx] for idx in np.ndindex(*mat.shape[2:])]
        else:
            mats = [gram(mat)]
        for g in mats:
            g = np.asarray(g)
            np.testing.assert_allclose(g, g.T, rtol=1e-10, atol=1e-12)
            ev = np.linalg.eigvalsh((g + g.T) / 2)
            assert ev.min() >= -1e-9 * max(1.0, abs(ev).max()), ev
    # the batch diagonal of nngp(x, x) is the per-input covariance the state reports (the two are
    # computed from the same inputs, but XLA may fuse them differently: see RHO1_RTOL)
    diag = jnp.stack([k.nngp[i, i] for i in range(n)])
    np.testing.assert_allclose(diag, k.cov1, rtol=RHO1_RTOL, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_jit_and_float32(name):
    model, shape = REGISTRY[name]
    x = batch(shape)
    f = jax.jit(model.kernel, static_argnames="get")
    a = f(x, None, get="ntk")
    b = model.kernel(x, None, get=None).ntk
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    c = model.kernel(x.astype(jnp.float32), None, get="ntk")
    assert c.dtype == jnp.float32
    np.testing.assert_allclose(c, b, rtol=2e-3, atol=1e-4 * float(jnp.abs(b).max()))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("with_x2", [False, True], ids=["x2=None", "x2"])
def test_blocked_gram_equals_unblocked(name, with_x2, monkeypatch):
    """Batch-pair blocking (infntk/layers/blocking.py) is exact, including ragged last blocks.

    A tiny block budget forces blocks of two inputs on a batch of 5 (2 + 2 + 1: full and ragged
    blocks; x2=None: diagonal blocks in x2=None mode, the blocks below the diagonal are transposes
    of those above; blocks of one input are the same loop, exercised in test_self_covariance.py). The
    reference is the unblocked state (``get=None`` is never blocked). Both are the same float64
    arithmetic but for the order in which per-input variances are summed, so they agree to
    rounding, amplified at most by the recursion's conditioning (1e-10 relative to the largest
    entry; quadrature duals carry their own ~1e-12 asymmetry, see QUADRATURE_RTOL).
    """
    from infntk import blocking
    model, shape = REGISTRY[name]
    x1 = batch(shape)
    x2 = other(shape) if with_x2 else None
    ref = model.kernel(x1, x2, get=None)
    entries = int(np.prod(ref.nngp.shape[2:], dtype=int))
    for target in (4 * entries,):                  # blocks of 2 inputs per side
        monkeypatch.setattr(blocking, "TARGET_ENTRIES", target)
        got = model.kernel(x1, x2, get=("nngp", "ntk"))
        assert got.nngp.shape == ref.nngp.shape
        for a, b in ((got.nngp, ref.nngp), (got.ntk, ref.ntk)):
            scale = float(np.abs(b).max())
            tol = max(QUADRATURE_RTOL.get(name, 1e-10), 1e-10) * scale
            np.testing.assert_allclose(a, b, rtol=0, atol=tol)
        if with_x2:
            continue  # get="ntk" (array output) runs the same blocked loop: checked for x2=None only
        single = model.kernel(x1, x2, get="ntk")
        np.testing.assert_allclose(single, ref.ntk, rtol=0, atol=1e-10 * float(np.abs(ref.ntk).max())
                                   if name not in QUADRATURE_RTOL else
                                   QUADRATURE_RTOL[name] * float(np.abs(ref.ntk).max()))


# Composed models beyond the registry's one-layer contexts: every route of the recursion at once
# (deep conv stacks under pooling and Flatten, LayerNorm over space, residual sums of nonlinear
# and linear branches, concatenations along channels and space, stax-style FanOut/parallel).
COMPOSED = {
    "conv-pool-gap-residual": (
        nk.Conv(4, (3, 3), padding="SAME", W_std=1.3, b_std=0.1) >> nk.Relu()
        >> ((nk.Conv(4, (3, 3), padding="SAME") >> nk.Erf()) + nk.Identity())
        >> nk.Conv(4, (1, 1), b_std=0.1)
        >> nk.AvgPool((2, 2), (2, 2), padding="SAME") >> nk.LayerNorm(axis=(1, 2, 3))
        >> nk.Conv(3, (2, 2), parameterization="standard", b_std=0.2) >> nk.Gelu()
        >> nk.GlobalAvgPool() >> nk.Dense(2, W_std=1.1), (3, 6, 6, 2)),
    "conv-flatten-concat": (
        nk.Conv(3, (2,), padding="CIRCULAR", b_std=0.1)
        >> ((nk.Conv(2, (3,), padding="SAME") >> nk.Relu()) | nk.Conv(4, (1,), W_std=0.8))
        >> nk.Flatten() >> nk.Dense(3, b_std=0.3) >> nk.Relu(), (3, 7, 2)),
    "stax-fanout-spatial-concat-pool": (
        nk.serial(nk.Conv(3, (2, 2), padding="SAME"), nk.Relu(), nk.FanOut(2),
                  nk.parallel(nk.Conv(2, (1, 2), b_std=0.2), nk.Conv(2, (2, 2), padding="SAME")),
                  nk.FanInConcat(axis=2), nk.AvgPool((2, 2)), nk.Erf(), nk.GlobalAvgPool(),
                  nk.Dense(1)), (2, 5, 5, 1)),
    "mlp-residual-layernorm": (
        nk.Dense(8, W_std=1.2, b_std=0.1)
        >> ((nk.Dense(8, W_std=1.5, b_std=0.2) >> nk.Relu() >> nk.Dense(8)) + nk.Identity())
        >> nk.LayerNorm() >> (nk.Relu() + nk.Identity()) >> nk.Relu() >> nk.LayerNorm()
        >> (nk.Dense(4, b_std=0.1) | nk.Dense(12, W_std=2.0))
        >> nk.Erf(1.0, 1.0, 0.5) >> nk.Dense(1, W_std=1.5, b_std=0.1, parameterization="standard"),
        (4, 5)),
}


@pytest.mark.parametrize("name", NAMES + sorted(COMPOSED))
@pytest.mark.parametrize("with_x2", [False, True], ids=["x2=None", "x2"])
def test_recursion_evaluates_to_kernel(name, with_x2):
    """``model.recursion()`` is the kernel: its printed steps, evaluated on arrays by
    infntk/recursion/evaluate.py (no layer code runs), equal ``model.kernel`` to 1e-10 relative
    per entry in float64, for every quantity (nngp, ntk and the per-input covariances)."""
    model, shape = REGISTRY[name] if name in REGISTRY else COMPOSED[name]
    x1, x2 = batch(shape), (other(shape) if with_x2 else None)
    get = ("nngp", "ntk", "cov1") + (("cov2",) if with_x2 else ())
    want = model.kernel(x1, x2, get=get)
    got = model.recursion().evaluate(x1, x2, get=get)
    for n in get:
        a, b = np.asarray(getattr(got, n)), np.asarray(getattr(want, n))
        assert a.shape == b.shape, (n, a.shape, b.shape)
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=0, err_msg=n)
