"""Shared self-covariances in blocked Gram matrices (infntk/ops.py ArrayOps.after, infntk/driver.py and the
``shared`` path of infntk/layers/blocking.py): each input's covariances are computed once, the
blocks read them, and the result is the plain blocked result to rounding."""
import doctest
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import infntk as nk
from infntk.errors import InfntkError
from infntk import blocking, driver
from infntk.ops import ArrayOps

jax.config.update("jax_enable_x64", True)


# ----------------------------------------------------------------------- the loop, synthetically

def selfs(a):
    """A per-input quantity: what a layer's cov1 is to the blocks."""
    return jnp.sum(a * a, axis=1)


def pair(a, b, s1, s2):
    """A pairwise output built from both sides' per-input quantities."""
    g = a @ b.T
    return (g / jnp.sqrt(s1[:, None] * s2[None, :]), g + s1[:, None] ** 2 + s2[None, :] ** 2)


def record(a):
    s = selfs(a)
    out = pair(a, a, s, s)
    return out, (s, 3.0 * s)


def make_inject(calls):
    def inject(a, b, ra, rb):
        calls.append(len(ra))
        # the trajectory rows must be those of the block's own inputs, in every slot
        checks = [jnp.max(jnp.abs(ra[0] - selfs(a))), jnp.max(jnp.abs(rb[1] - 3.0 * selfs(b)))]
        bad = jnp.maximum(*checks) > 1e-12  # rounding only (FMA contraction may differ)
        out = pair(a, b, ra[0], rb[0])
        return tuple(jnp.where(bad, jnp.nan, o) for o in out)
    return inject


def direct(a, b):
    b = a if b is None else b
    return pair(a, b, selfs(a), selfs(b))


@pytest.mark.parametrize("n", [5, 7, 16])
@pytest.mark.parametrize("block", [1, 2, 3])
def test_shared_loop_equals_direct_x2_none(n, block):
    x = jnp.asarray(np.random.default_rng(n).normal(size=(n, 3)))
    calls = []
    shared = blocking.SharedSelfCovariance(record, make_inject(calls))
    got = jax.jit(lambda x: blocking.blocked_kernel(direct, x, None, block, ((1, 0),) * 2,
                                                    shared))(x)
    for a, b in zip(got, direct(x, None)):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-14)
    assert calls == [2], "the off-diagonal blocks did not read the recorded trajectory"


@pytest.mark.parametrize("n1,n2,block", [(5, 3, 1), (7, 7, 2), (9, 4, 2), (2, 9, 1)])
def test_shared_loop_equals_direct_x2(n1, n2, block):
    rng = np.random.default_rng(n1 * 10 + n2)
    x1, x2 = (jnp.asarray(rng.normal(size=(n, 3))) for n in (n1, n2))
    calls = []
    shared = blocking.SharedSelfCovariance(record, make_inject(calls))
    got = blocking.blocked_kernel(direct, x1, x2, block, ((1, 0),) * 2, shared)
    for a, b in zip(got, direct(x1, x2)):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-14)
    assert calls == [2]


def test_sharing_skipped_where_it_does_not_pay():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(6, 3)))
    calls = []
    shared = blocking.SharedSelfCovariance(record, make_inject(calls))
    # blocks larger than SHARED_MAX_BLOCK, or a 1 x 2 cross product: the plain loop
    blocking.blocked_kernel(direct, jnp.tile(x, (3, 1)), None, blocking.SHARED_MAX_BLOCK + 1,
                            ((1, 0),) * 2, shared)
    blocking.blocked_kernel(direct, x[:3], x, 3, ((1, 0),) * 2, shared)
    assert calls == []


# ----------------------------------------------------------------------- the models

def conv_pool_model():
    conv = lambda: nk.Conv(1, (3, 3), padding="SAME", W_std=1.5, b_std=0.05)  # noqa: E731
    return (conv() >> nk.Relu() >> conv() >> nk.Relu() >> nk.AvgPool((2, 2), (2, 2))
            >> conv() >> nk.Erf() >> nk.GlobalAvgPool() >> nk.Dense(1, W_std=1.5))


def residual_model():
    conv = lambda: nk.Conv(2, (3, 3), padding="SAME", W_std=1.3, b_std=0.1)  # noqa: E731
    block = conv() >> nk.Relu() >> conv()
    return (conv() >> (block + nk.Identity()) >> nk.Relu() >> nk.Relu() >> nk.LayerNorm()
            >> conv() >> nk.Gelu() >> nk.GlobalAvgPool() >> nk.Dense(1))


MODELS = {"conv-pool": conv_pool_model, "residual": residual_model}


def gram(model, x1, x2, target, share: bool, monkeypatch):
    monkeypatch.setattr(blocking, "SHARED_TRAJECTORY_BYTES",
                        512 * 2 ** 20 if share else 0)
    # a fresh compilation per setting (the compiled function is cached by its arguments)
    return driver.compiled_kernel(model, ("nngp", "ntk"), target + (0 if share else 1))(x1, x2)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("with_x2", [False, True], ids=["x2=None", "x2"])
def test_model_shared_equals_plain(name, with_x2, monkeypatch):
    """Blocks of 2 x 2 inputs on a ragged batch: the shared run equals the plain blocked run and the
    unblocked one to float64 rounding (the same formulas; only the fusion an entry was evaluated in
    differs)."""
    model = MODELS[name]()
    rng = np.random.default_rng(3)
    x1 = jnp.asarray(rng.normal(size=(7, 6, 6, 2)))
    x2 = jnp.asarray(rng.normal(size=(5, 6, 6, 2))) if with_x2 else None
    per_pair = 36 * 36
    target = 8 * per_pair // blocking.FULL_LAYOUT_FACTOR   # float64: B = 2
    assert blocking.full_layout_block(per_pair, 8, target) == 2
    shared = gram(model, x1, x2, target, True, monkeypatch)
    plain = gram(model, x1, x2, target, False, monkeypatch)
    whole = model.kernel(x1, x2, get=None)
    for s, p, w in zip(shared, plain, (whole.nngp, whole.ntk)):
        scale = float(jnp.abs(w).max())
        np.testing.assert_allclose(s, p, rtol=0, atol=1e-13 * scale)
        np.testing.assert_allclose(s, w, rtol=0, atol=1e-13 * scale)


def _flops(compiled) -> float:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])


def test_blocks_no_longer_compute_self_covariances(monkeypatch):
    """The point of sharing: XLA drops the blocks' own self-covariance computation. On Myrtle-like
    blocks of 2 x 2 pairs (4 self-covariances against 4 pairs per off-diagonal block) the compiled
    program does markedly fewer flops."""
    model = conv_pool_model()
    x = jnp.asarray(np.random.default_rng(1).normal(size=(12, 8, 8, 1)))
    target = 8 * 64 * 64 // blocking.FULL_LAYOUT_FACTOR
    assert blocking.full_layout_block(64 * 64, 8, target) == 2
    flops = {}
    for share in (True, False):
        monkeypatch.setattr(blocking, "SHARED_TRAJECTORY_BYTES", 512 * 2 ** 20 if share else 0)
        fn = driver.compiled_kernel(model, ("nngp", "ntk"), target + (0 if share else 1))
        flops[share] = _flops(fn.lower(x, None).compile())
    # plain: 15 off-diagonal blocks x (4 pairs + 4 selfs) + 6 diagonal blocks x (4 pairs + 2
    # selfs) = 156 pair-sized units; shared: 15 x 4 + 6 x 6 = 96 (0.62x)
    assert flops[True] < 0.75 * flops[False], flops


def test_injected_values_are_the_ones_used():
    model = conv_pool_model()
    x = jnp.asarray(np.random.default_rng(2).normal(size=(3, 6, 6, 1)))

    @functools.partial(jax.jit, static_argnums=2)   # one compilation instead of op-by-op dispatch
    def run(a, b, scale):
        ta, tb = ArrayOps(record=[]), ArrayOps(record=[])
        driver.kernel_state(model, a, None, "ntk", ta)
        driver.kernel_state(model, b, None, "ntk", tb)
        ops = ArrayOps(inject=([scale * t for t in ta.record], [scale * t for t in tb.record]))
        out = driver.kernel_state(model, a, b, "ntk", ops).ntk
        ops.finish()
        return out

    a, b = x[:2], x[2:]   # no input on both sides: at rho = 1 an ulp of fusion order is amplified
    np.testing.assert_allclose(run(a, b, 1.0), model.kernel(a, b, get="ntk"), rtol=1e-13)
    assert not np.allclose(run(a, b, 2.0), model.kernel(a, b, get="ntk"), rtol=1e-3)


def test_mismatched_trajectory_is_refused():
    # The checks run while the recursion is traced: jax.eval_shape traces without compiling or
    # dispatching op by op, and lets the error through unchanged.
    model = conv_pool_model()
    x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 6, 6, 1)))

    def inject(edit):
        def run(a):
            rec = ArrayOps(record=[])
            driver.kernel_state(model, a, None, "ntk", rec)
            ops = ArrayOps(inject=(edit(rec.record), edit(rec.record)))
            out = driver.kernel_state(model, a, a, "ntk", ops).ntk
            ops.finish()
            return out
        return jax.eval_shape(run, x)

    assert inject(list).shape == (2, 2)  # the unedited trajectory is accepted
    with pytest.raises(InfntkError, match="do not match"):
        inject(lambda t: t[:-1])
    with pytest.raises(InfntkError, match="shapes"):
        inject(lambda t: t[1:] + t[:1])

    def record_with_x2(a):
        return driver.kernel_state(model, a, a, "ntk", ArrayOps(record=[])).ntk
    with pytest.raises(InfntkError, match="x2 = None"):
        jax.eval_shape(record_with_x2, x)


@pytest.mark.parametrize("module", [driver, blocking])
def test_docstring_example_runs(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
