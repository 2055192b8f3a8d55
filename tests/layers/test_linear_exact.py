"""Every registered model that is linear in its parameters: its kernel is the exact covariance of
the finite network, with no sampling and no infinite-width limit.

A model qualifies when it has at most one weight layer (``is_linear``) and every other layer is a
weightless *linear* map of its input -- checked numerically here, ``apply(a x + b y) = a apply(x)
+ b apply(y)`` (pooling, Flatten, Identity, sum pooling pass; LayerNorm and activations do not).
Then each output feature is ``f_c(x) = J_c(x) theta`` with ``J_c`` the Jacobian of ``apply`` with
respect to the parameters, and, averaged over the output channels ``c`` (as the kernel is),

* ``Theta(x, x') = J(x) J(x')^T`` exactly, in either parameterization (the NTK of a model linear in
  its parameters does not depend on them);
* ``K(x, x') = J(x) J(x')^T`` under the NTK parameterization (parameters i.i.d. standard normal);
* with no weight layer at all, ``K(x, x') = f(x) . f(x') / C`` (the input kernel mapped).

Every entry of ``tests/layers/registry.py`` that qualifies gets this check, so a new linear layer
inherits it; an entry's pooling alignment, edge normalisation, padding or stride that is off changes
these covariances by far more than the 1e-12 tolerance.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from .registry import REGISTRY


def _is_linear_map(layer, shape) -> bool:
    """A weightless layer whose finite ``apply`` is linear in its input (checked on random data)."""
    _, params = layer.init(jax.random.PRNGKey(0), shape)
    if jax.tree_util.tree_leaves(params):
        return False
    rng = np.random.default_rng(0)
    x, y = (jnp.asarray(rng.standard_normal(shape)) for _ in range(2))
    lhs = layer.apply(params, 1.7 * x - 0.6 * y)
    rhs = 1.7 * layer.apply(params, x) - 0.6 * layer.apply(params, y)
    return bool(jnp.allclose(lhs, rhs, rtol=1e-12, atol=1e-12))


def linear_in_parameters(model, shape):
    """``None`` unless the model qualifies (module docstring); else the number of weight layers."""
    weights, s = 0, tuple(shape)
    for layer in model.series:
        if layer.is_linear:
            weights += 1
        elif not _is_linear_map(layer, s):
            return None
        s = layer.output_shape(s)
    return weights if weights <= 1 else None


QUALIFYING = sorted(n for n, (m, s) in REGISTRY.items() if linear_in_parameters(m, s) is not None)


def _interleave(k, spatial):
    """``(N1, *S, N2, *S)`` -> the full layout ``(N1, N2, S1, S1', S2, S2', ...)``."""
    d = len(spatial)
    perm = [0, 1 + d] + [a for i in range(d) for a in (1 + i, 2 + d + i)]
    return jnp.transpose(k, perm)


def _outer_over_channels(j1, j2):
    """``sum_{c,p} j1[n, s, c, p] j2[m, s', c, p]`` as ``(N1, *S, N2, *S')``."""
    n1, n2 = j1.shape[0], j2.shape[0]
    spatial = j1.shape[1:-2]
    a = j1.reshape(n1, -1, j1.shape[-2] * j1.shape[-1])
    b = j2.reshape(n2, -1, j2.shape[-2] * j2.shape[-1])
    k = jnp.einsum("nsq,mtq->nsmt", a, b)
    return k.reshape((n1,) + spatial + (n2,) + spatial)


def exact_kernels(model, x1, x2):
    """``(nngp, ntk)`` of the finite network, averaged over its output channels (a Flatten readout
    averages over all its features, as the infinite-width kernel does), exactly."""
    _, params = model.init(jax.random.PRNGKey(0), x1.shape)
    out = model.apply(params, x1)
    spatial = tuple(out.shape[1:-1])
    if not jax.tree_util.tree_leaves(params):
        y1, y2 = out, model.apply(params, x2)
        k = _interleave(jnp.tensordot(y1, y2, axes=([-1], [-1])) / y1.shape[-1], spatial)
        return k, jnp.zeros_like(k)

    def jac(x):
        leaves = jax.tree_util.tree_leaves(jax.jacobian(model.apply)(params, x))
        lead = x.shape[:1] + spatial + out.shape[-1:]
        return jnp.concatenate([a.reshape(lead + (-1,)) for a in leaves], axis=-1)

    j1, j2 = jac(x1), jac(x2)      # (N, *S, C, P): one row per output feature
    k = _interleave(_outer_over_channels(j1, j2) / out.shape[-1], spatial)
    return k, k


def test_the_rule_finds_the_linear_entries():
    # the survivors of issue 26's planted bugs live in these entries
    assert {"Dense", "Conv2D-CIRCULAR", "AvgPool-SAME-edges", "AvgPool-CIRCULAR", "AvgPool",
            "Identity", "SumPool"} <= set(QUALIFYING)
    assert not {"Relu", "LayerNorm", "Flatten", "Sum-residual"} & set(QUALIFYING)


@pytest.mark.parametrize("name", QUALIFYING)
def test_kernel_is_the_exact_covariance_of_the_finite_network(name):
    model, shape = REGISTRY[name]
    rng = np.random.default_rng(7)
    x1 = jnp.asarray(rng.standard_normal((3,) + tuple(shape[1:])))
    x2 = jnp.asarray(rng.standard_normal((2,) + tuple(shape[1:])))
    want_nngp, want_ntk = exact_kernels(model, x1, x2)
    k = model.kernel(x1, x2, get=("nngp", "ntk"))
    if k.nngp.ndim != want_nngp.ndim:   # the model reads out a diagonal layout: compare that
        pytest.fail(f"{name}: layouts differ, {k.nngp.shape} vs {want_nngp.shape}")
    scale = float(jnp.abs(want_nngp).max())
    np.testing.assert_allclose(k.ntk, want_ntk, rtol=1e-12, atol=1e-12 * scale)
    standard = any(getattr(l, "parameterization", "ntk") == "standard" for l in model.series)
    if not standard:
        np.testing.assert_allclose(k.nngp, want_nngp, rtol=1e-12, atol=1e-12 * scale)
