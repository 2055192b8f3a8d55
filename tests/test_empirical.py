"""Empirical NNGP/NTK: every implementation against an independent brute force."""
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from infntk.empirical import (
    NtkImplementation, empirical_kernel_fn, empirical_nngp_fn, empirical_ntk_fn,
    empirical_ntk_vp_fn, ntk_cost_model)
from infntk.empirical.structured import Structured
from infntk.errors import InfntkError

IMPLS = ["jacobian_contraction", "ntk_vector_products", "structured", "auto"]
TOL = 1e-10


def mlp_init(key, sizes):
    ks = jax.random.split(key, 2 * len(sizes))
    return [(jax.random.normal(ks[2 * i], (a, b)), 0.1 * jax.random.normal(ks[2 * i + 1], (b,)))
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]


def mlp(p, x):
    h = x
    for i, (w, b) in enumerate(p):
        h = h @ w / math.sqrt(w.shape[0]) + b
        if i < len(p) - 1:
            h = jnp.tanh(h)
    return h


def mlp3(p, x):
    """Output with two non-batch axes: (N, 2, 3)."""
    return mlp(p, x).reshape(x.shape[0], 2, 3)


def cnn_init(key):
    k = jax.random.split(key, 4)
    return dict(c1=jax.random.normal(k[0], (3, 3, 1, 4)), c2=jax.random.normal(k[1], (3, 3, 4, 5)),
                d=jax.random.normal(k[2], (45, 2)), b=jax.random.normal(k[3], (4,)))


def cnn(p, x):
    dn = ("NHWC", "HWIO", "NHWC")
    h = jax.lax.conv_general_dilated(x, p["c1"], (1, 1), "SAME", dimension_numbers=dn) + p["b"]
    h = jax.nn.relu(h)
    h = jax.lax.conv_general_dilated(h, 0.3 * p["c2"], (2, 2), "VALID", dimension_numbers=dn)
    return h.reshape(h.shape[0], -1) @ p["d"] / np.sqrt(45.0)


def brute_ntk(f, params, x1, x2, trace_axes, diagonal_axes, nngp=False):
    """Full kernel from a flat forward-mode Jacobian, then NT's layout by explicit loops."""
    w, unravel = ravel_pytree(params)
    if nngp:
        a1 = np.asarray(f(params, x1))[..., None]
        a2 = np.asarray(f(params, x2))[..., None]
    else:
        jac = jax.jit(jax.jacfwd(lambda v, x: f(unravel(v), x)))
        a1, a2 = np.asarray(jac(w, x1)), np.asarray(jac(w, x2))
    full = np.tensordot(a1, a2, axes=([-1], [-1]))
    o1, o2 = a1.shape[:-1], a2.shape[:-1]
    nd = len(o1)
    tr = sorted(a % nd for a in trace_axes)
    dg = sorted(a % nd for a in diagonal_axes)
    out_axes = []
    for k in range(nd):
        if k in dg:
            out_axes.append(("d", k))
        elif k not in tr:
            out_axes += [("1", k), ("2", k)]
    shape = tuple(o1[k] if s in "d1" else o2[k] for s, k in out_axes)
    res = np.zeros(shape)
    size = int(np.prod([o1[k] for k in tr]))
    for idx in itertools.product(*[range(s) for s in shape]):
        tot = 0.0
        for tidx in itertools.product(*[range(o1[k]) for k in tr]):
            i1, i2 = [None] * nd, [None] * nd
            for (s, k), v in zip(out_axes, idx):
                if s == "d":
                    i1[k] = i2[k] = v
                elif s == "1":
                    i1[k] = v
                else:
                    i2[k] = v
            for k, v in zip(tr, tidx):
                i1[k] = i2[k] = v
            tot += full[tuple(i1) + tuple(i2)]
        res[idx] = tot / size
    return res


AXES = [((-1,), ()), ((), ()), ((), (-1,)), ((0,), ()), ((1,), (2,)), ((-1, 1), (0,))]
EXACT = ["jacobian_contraction", "ntk_vector_products", "structured"]


@pytest.fixture(scope="module")
def mlp_setup():
    k = jax.random.split(jax.random.PRNGKey(1), 3)
    p = mlp_init(k[0], [4, 7, 6])
    return p, jax.random.normal(k[1], (3, 4)), jax.random.normal(k[2], (3, 4))


@pytest.mark.parametrize("axes", AXES)
@pytest.mark.parametrize("vmap_axes", [None, 0])
def test_ntk_layout_and_values_match_brute_force(mlp_setup, axes, vmap_axes):
    p, x1, x2 = mlp_setup
    ta, da = axes
    ref = brute_ntk(mlp3, p, x1, x2, ta, da)
    for impl in EXACT:
        got = empirical_ntk_fn(mlp3, ta, da, vmap_axes, impl)(x1, x2, p)
        assert got.shape == ref.shape, (impl, got.shape, ref.shape)
        np.testing.assert_allclose(got, ref, rtol=0, atol=TOL * np.abs(ref).max(), err_msg=impl)


@pytest.mark.parametrize("axes", AXES[:5])
def test_nngp_matches_brute_force(mlp_setup, axes):
    p, x1, x2 = mlp_setup
    ref = brute_ntk(mlp3, p, x1, x2, *axes, nngp=True)
    got = empirical_nngp_fn(mlp3, *axes)(x1, x2, p)
    np.testing.assert_allclose(got, ref, atol=TOL * np.abs(ref).max(), rtol=0)


@pytest.mark.parametrize("vmap_axes", [None, 0])
def test_cnn_all_implementations_agree(vmap_axes):
    k = jax.random.split(jax.random.PRNGKey(2), 3)
    p = cnn_init(k[0])
    x1, x2 = jax.random.normal(k[1], (3, 8, 8, 1)), jax.random.normal(k[2], (2, 8, 8, 1))
    ref = brute_ntk(cnn, p, x1, x2, (), ())
    for impl in (IMPLS if vmap_axes == 0 else ["structured"]):
        got = empirical_ntk_fn(cnn, (), (), vmap_axes, impl)(x1, x2, p)
        np.testing.assert_allclose(got, ref, atol=TOL * np.abs(ref).max(), rtol=0, err_msg=impl)


def test_structured_uses_layer_structure():
    """Dense and conv weights are tapped structurally; biases use their exact Jacobian."""
    from jax.tree_util import tree_flatten, tree_unflatten
    p = cnn_init(jax.random.PRNGKey(0))
    leaves, td = tree_flatten(p)
    st = Structured(lambda ls, x: cnn(tree_unflatten(td, ls), x), leaves,
                     jnp.zeros((1, 8, 8, 1)))
    kinds = dict(zip(sorted(p), [t.kind for t in st.taps]))
    assert kinds == {"b": "leaf", "c1": "conv", "c2": "conv", "d": "dot"}


def test_x2_none_and_batching(mlp_setup):
    p, x1, _ = mlp_setup
    x = jnp.concatenate([x1] * 3)
    ref = empirical_ntk_fn(mlp, (), (), 0, "jacobian_contraction", memory_budget=None)(x, x, p)
    for impl in EXACT:
        tiny = empirical_ntk_fn(mlp, (), (), 0, impl, memory_budget=2000)
        np.testing.assert_allclose(tiny(x, None, p), ref, atol=TOL * np.abs(ref).max(), rtol=0)


def test_flax_linen_model():
    flax = pytest.importorskip("flax")
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(4, (3, 3))(x)
            x = nn.relu(x)
            x = x.reshape(x.shape[0], -1)
            x = nn.Dense(8)(x)
            return nn.Dense(3)(nn.gelu(x))

    net = Net()
    k = jax.random.split(jax.random.PRNGKey(3), 3)
    x1, x2 = jax.random.normal(k[0], (3, 5, 5, 2)), jax.random.normal(k[1], (2, 5, 5, 2))
    params = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), net.init(k[2], x1))
    ref = brute_ntk(net.apply, params, x1, x2, (-1,), ())
    for impl in IMPLS:
        got = empirical_ntk_fn(net.apply, vmap_axes=0, implementation=impl)(x1, x2, params)
        np.testing.assert_allclose(got, ref, atol=TOL * np.abs(ref).max(), rtol=0, err_msg=impl)


def test_infntk_model():
    import infntk as nk
    m = nk.Dense(16) >> nk.Relu() >> nk.Dense(2)
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 3))
    _, p = m.init(jax.random.PRNGKey(1), x.shape)
    ref = brute_ntk(m.apply, p, x, x, (-1,), ())
    for impl in IMPLS:
        got = empirical_ntk_fn(m.apply, vmap_axes=0, implementation=impl)(x, None, p)
        np.testing.assert_allclose(got, ref, atol=TOL * np.abs(ref).max(), rtol=0, err_msg=impl)


def test_kernel_fn_get_and_vp(mlp_setup):
    p, x1, x2 = mlp_setup
    kfn = empirical_kernel_fn(mlp, vmap_axes=0)
    both = kfn(x1, x2, None, p)
    assert both._fields == ("nngp", "ntk")
    np.testing.assert_allclose(kfn(x1, x2, "ntk", p), both.ntk, atol=1e-12)
    np.testing.assert_allclose(kfn(x1, x2, ("nngp",), p).nngp, both.nngp, atol=1e-12)
    full = empirical_ntk_fn(mlp, (), (), implementation="jacobian_contraction")(x1, x2, p)
    v = jax.random.normal(jax.random.PRNGKey(5), (3, 6))
    vp = empirical_ntk_vp_fn(mlp, x1, x2, p)(v)
    np.testing.assert_allclose(vp, jnp.einsum("ijab,jb->ia", full, v), atol=1e-10)
    with pytest.raises(InfntkError, match="get"):
        kfn(x1, x2, "bogus", p)


def test_implementation_names_and_errors(mlp_setup):
    p, x1, x2 = mlp_setup
    a = empirical_ntk_fn(mlp, implementation=NtkImplementation.STRUCTURED_DERIVATIVES)(x1, x2, p)
    b = empirical_ntk_fn(mlp, implementation=1)(x1, x2, p)
    np.testing.assert_allclose(a, b, atol=1e-10)
    with pytest.raises(InfntkError, match="implementation"):
        empirical_ntk_fn(mlp, implementation="fastest")
    with pytest.raises(InfntkError, match="trace"):
        empirical_ntk_fn(mlp, trace_axes=(5,))(x1, x2, p)


def test_cost_model_prefers_structured_for_wide_mlp():
    p = mlp_init(jax.random.PRNGKey(0), [64, 512, 512, 10])
    x = jnp.zeros((16, 64))
    c = ntk_cost_model(mlp, p, x, None, vmap_axes=0)
    assert c["structured"]["flops"] < c["jacobian_contraction"]["flops"]
    assert min(c, key=lambda k: c[k]["flops"]) == "structured"


def test_float32_agreement(mlp_setup):
    p, x1, x2 = mlp_setup
    p32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), p)
    x1, x2 = x1.astype(jnp.float32), x2.astype(jnp.float32)
    ref = np.asarray(empirical_ntk_fn(mlp, implementation="jacobian_contraction")(x1, x2, p32))
    for impl in IMPLS:
        got = empirical_ntk_fn(mlp, implementation=impl)(x1, x2, p32)
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_blocks_fit_the_memory_budget(mlp_setup):
    """Per-example Jacobians grow with each side, the output with both: the chosen blocks fit the
    budget and are the largest that do (a rule that shrinks both sides by sqrt(budget / bytes),
    right only for pairwise memory, let jacobian_contraction blocks exceed it ~sqrt(N)-fold)."""
    from infntk.empirical.cost import batch_sizes
    p, x1, _ = mlp_setup
    x = jnp.concatenate([x1] * 8)
    n = x.shape[0]
    costs = ntk_cost_model(mlp, p, x, None, (), (), 0)
    for name, cost in costs.items():
        a1, a2, c = cost["bytes_terms"]
        need = lambda b: a1 * b + a2 * b + c * b * b  # noqa: E731
        for budget in (need(1) * 1.01, need(3) * 1.01, need(n // 2) * 1.01):
            b1, b2 = batch_sizes(cost, n, n, budget)
            assert b1 == b2 and need(b1) <= budget < need(b1 + 1), (name, budget, b1)
        assert batch_sizes(cost, n, n, need(n)) == (n, n)
        assert batch_sizes(cost, n, n, None) == (n, n)
        # below one example's need: still one example per block (the smallest unit of work)
        assert batch_sizes(cost, n, n, 1.0) == (1, 1)


@pytest.mark.parametrize("trace,diag", [((), ()), ((), (-1,)), ((-1,), ())])
def test_blocked_loop_layouts(mlp_setup, trace, diag):
    """Blocks of a few examples (one compiled loop, transposed below the diagonal) give the
    unblocked kernel for every output layout, x2=None and x2, ragged last blocks included."""
    p, x1, x2 = mlp_setup
    x = jnp.concatenate([x1] * 3)[:7]
    for b in (None, x2):
        ref = empirical_ntk_fn(mlp, trace, diag, 0, "jacobian_contraction", memory_budget=None)(x, b, p)
        got = empirical_ntk_fn(mlp, trace, diag, 0, "jacobian_contraction", memory_budget=3000)(x, b, p)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=TOL * np.abs(ref).max(), rtol=0)


@pytest.mark.parametrize("axes", AXES)
def test_structured_x2_none_forms_each_jacobian_once(mlp_setup, axes, monkeypatch):
    """With x2=None the structured contraction forms each side's weight Jacobian once and contracts
    it with itself (relabelled); every output layout must still match brute force, and the
    shortcut must actually be taken for the CNN's conv and dense leaves."""
    import infntk.empirical.structured as emp

    calls = []
    real = emp._symmetric_term
    monkeypatch.setattr(emp, "_symmetric_term", lambda *a: calls.append(1) or real(*a))
    ta, da = axes
    k = jax.random.split(jax.random.PRNGKey(5), 2)
    p = cnn_init(k[0])
    x = jax.random.normal(k[1], (3, 8, 8, 1))
    for vmap_axes in ((None, 0) if axes in AXES[:4] else ()):  # the CNN's output has rank 2
        ref = brute_ntk(cnn, p, x, x, ta, da)
        got = empirical_ntk_fn(cnn, ta, da, vmap_axes, "structured", memory_budget=None)(x, None, p)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=0, atol=TOL * np.abs(ref).max(),
                                   err_msg=str(vmap_axes))
    pm, x1, _ = mlp_setup
    ref = brute_ntk(mlp3, pm, x1, x1, ta, da)
    got = empirical_ntk_fn(mlp3, ta, da, 0, "structured", memory_budget=None)(x1, None, pm)
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOL * np.abs(ref).max())
    if axes in AXES[:4]:
        assert calls, "the symmetric shortcut was never used on the CNN"


@pytest.mark.parametrize("axes", [((), ()), ((-1,), ()), ((), (-1,))], ids=str)
@pytest.mark.parametrize("with_x2", [False, True], ids=["x2=None", "x2"])
def test_sliced_and_chunked_routes_match_brute_force(axes, with_x2, monkeypatch):
    """Memory-bounded evaluation (infntk/chunked_einsum.py slices of every large pairwise
    contraction; per-example Jacobians and tangent columns in chunks under lax.map, with a ragged
    last chunk; one structured term at a time) computes the same kernel: thresholds so small that
    every path is sliced or chunked, against the brute-force NTK."""
    from infntk import chunked_einsum
    from infntk.empirical import implementations
    monkeypatch.setattr(chunked_einsum, "SLICE_BYTES", 256)
    trace, diag = axes
    k = jax.random.split(jax.random.PRNGKey(7), 3)
    p = cnn_init(k[0])
    x1 = jax.random.normal(k[1], (5, 8, 8, 1))
    x2 = jax.random.normal(k[2], (3, 8, 8, 1)) if with_x2 else None
    ref = brute_ntk(cnn, p, x1, x1 if x2 is None else x2, trace, diag)
    n_params = sum(v.size for v in jax.tree_util.tree_leaves(p))
    # per-example Jacobian = outputs (2) x parameters: chunks of 2 examples (5 = 2 + 2 + 1)
    monkeypatch.setattr(implementations, "MAP_CHUNK_BYTES", 2 * 2 * n_params * 8)
    for impl in EXACT:
        got = empirical_ntk_fn(cnn, trace, diag, 0, impl, memory_budget=None)(x1, x2, p)
        np.testing.assert_allclose(got, ref, atol=TOL * np.abs(ref).max(), rtol=0, err_msg=impl)


def test_chunked_vmap_matches_vmap():
    """Chunks under lax.map with a ragged tail, a non-leading batch axis and an unbatched
    argument: the same values and layout as one vmap."""
    from infntk.empirical.implementations import chunked_vmap
    x = jnp.arange(7 * 3, dtype=jnp.float64).reshape(3, 7)      # batch axis 1
    tree = {"a": jnp.arange(7.0) * 2.0}                            # batch axis 0
    w = jnp.arange(3.0)

    def fn(xi, ti, wi):
        return {"s": xi * ti["a"] + wi, "t": jnp.sum(xi)}
    ref = jax.vmap(fn, in_axes=(1, {"a": 0}, None))(x, tree, w)
    for item_bytes in (1e9, 16 * 2 ** 20 / 3, 16 * 2 ** 20):   # one chunk of all, 3 (+1), 1 each
        got = chunked_vmap(fn, (x, tree, w), (1, {"a": 0}, None), 7, item_bytes)
        jax.tree_util.tree_map(np.testing.assert_array_equal, got, ref)


def test_structured_working_set_is_the_factors():
    """The structured route's working set is its factors (cotangents and patches) plus slices:
    the per-example weight Jacobians of a 64-channel convolution (16 x 10 x 64 x 576, 23.6 MB in
    float32) are formed a slice of output channels at a time and contracted at once, one leaf's
    term after the other. Formed whole, XLA stores each layer's Jacobian, a transposed copy of it
    for the Gram product, and schedules both layers' Jacobians before either contraction
    (temporaries several times the Jacobians' size)."""
    from infntk import chunked_einsum
    p, x = _conv_net_problem()
    fn = empirical_ntk_fn(_conv_net, (-1,), (), 0, "structured", memory_budget=None)
    mem = jax.jit(lambda x, p: fn(x, None, p)).lower(x, p).compile().memory_analysis()
    if mem is None:  # pragma: no cover - backend without memory analysis
        pytest.skip("no memory analysis on this backend")
    factors = 16 * 10 * 64 * 64 * 4 * 3 + 16 * 64 * 576 * 4 * 2   # cotangents and patches
    bound = factors + 2 * chunked_einsum.SLICE_BYTES
    assert mem.temp_size_in_bytes <= bound, (mem.temp_size_in_bytes, bound)


@pytest.mark.parametrize("impl,n", [("jacobian_contraction", 16), ("ntk_vector_products", 32)])
def test_per_example_derivatives_in_chunks(impl, n):
    """The Jacobian and vector-product routes compute per-example derivatives in chunks: vmapped
    over all examples x 10 outputs at once, XLA's batched weight-gradient convolutions build
    transposed activations of several times the Jacobians' size. Chunked, the working set is the
    per-example derivatives plus about two chunks' intermediates."""
    from infntk.empirical import implementations
    p, x = _conv_net_problem(n)
    fn = empirical_ntk_fn(_conv_net, (-1,), (), 0, impl, memory_budget=None)
    mem = jax.jit(lambda x, p: fn(x, None, p)).lower(x, p).compile().memory_analysis()
    if mem is None:  # pragma: no cover - backend without memory analysis
        pytest.skip("no memory analysis on this backend")
    n_params = sum(a.size for a in jax.tree_util.tree_leaves(p))
    jacobians = n * 10 * n_params * 4
    bound = jacobians + 2 * implementations.MAP_CHUNK_BYTES
    assert mem.temp_size_in_bytes <= bound, (mem.temp_size_in_bytes, jacobians)


def _conv_net(p, x):
    dn = ("NHWC", "HWIO", "NHWC")
    for w in p["convs"]:
        x = jax.nn.relu(jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn))
    return jnp.mean(x, axis=(1, 2)) @ p["dense"]


def _conv_net_problem(n=16):
    """3 x [Conv(64), Relu], GAP, Dense(10) on n inputs of 8 x 8 x 1, float32 (shapes only)."""
    shapes = {"convs": [(3, 3, 1, 64), (3, 3, 64, 64), (3, 3, 64, 64)], "dense": (64, 10)}
    p = jax.tree_util.tree_map(lambda s: jax.ShapeDtypeStruct(s, jnp.float32), shapes,
                               is_leaf=lambda v: isinstance(v, tuple))
    return p, jax.ShapeDtypeStruct((n, 8, 8, 1), jnp.float32)


@pytest.mark.parametrize("trace", [(-1,), ()], ids=str)
def test_jacobian_slices_match_whole(trace, monkeypatch):
    """Per-example weight Jacobians formed a slice of output channels at a time (x2=None, where
    each side's Jacobian is contracted with itself) give the kernel of the exact Jacobian route."""
    from infntk import chunked_einsum
    from infntk.empirical import structured
    calls = []
    real = structured._jacobian_slices
    monkeypatch.setattr(structured, "_jacobian_slices",
                        lambda b, e: calls.append(real(b, e)) or calls[-1])
    monkeypatch.setattr(chunked_einsum, "SLICE_BYTES", 4096)
    k = jax.random.split(jax.random.PRNGKey(3), 5)
    p = {"convs": [jax.random.normal(k[0], (3, 3, 1, 16)), jax.random.normal(k[1], (3, 3, 16, 16)),
                   jax.random.normal(k[2], (3, 3, 16, 16))],
         "dense": jax.random.normal(k[3], (16, 10))}
    x = jax.random.normal(k[4], (5, 6, 6, 1))
    ref = empirical_ntk_fn(_conv_net, trace, (), 0, "jacobian_contraction",
                           memory_budget=None)(x, None, p)
    got = empirical_ntk_fn(_conv_net, trace, (), 0, "structured", memory_budget=None)(x, None, p)
    assert any(c is not None for c in calls), calls
    np.testing.assert_allclose(got, ref, atol=TOL * np.abs(ref).max(), rtol=0)


@pytest.mark.parametrize("name", ["infntk.empirical", "infntk.empirical.kernels",
                                  "infntk.empirical.layout"])
def test_docstring_examples_run(name):
    import doctest
    import importlib
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
