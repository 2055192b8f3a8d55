"""The finite networks of infntk run under jax 0.4.23 and agree with neural-tangents' elementwise
layers, output by output.

Every activation of the shared table (archs.ACTIVATIONS, each hyperparameter non-default) is
applied to the same float64 inputs by ``infntk.stax`` and ``neural_tangents.stax``; they carry no
parameters, so the outputs must agree to rounding. This guards the jax-0.4.23 side of infntk's
supported range for ``apply``: the sympy that ships there (1.12) prints ``Max``/``Min`` differently
from the newest, and infntk's compiled activations must not depend on which.
"""
import jax
import jax.numpy as jnp
import neural_tangents.stax as nt_stax
import numpy as np
import pytest

import infntk.stax as ix_stax
from archs import ACTIVATIONS

# neural-tangents' own apply differs from its kernel here (documented in test_stax_vs_nt.py):
# Gelu(approximate=True) applies the tanh approximation, as infntk does, so apply agrees too.
X = np.random.default_rng(7).normal(size=(6, 5)) * 1.7


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_apply_matches_neural_tangents(name):
    make = ACTIVATIONS[name]
    x = jnp.asarray(X)
    _, ix_apply, _ = make(ix_stax)
    _, nt_apply, _ = make(nt_stax)
    got = np.asarray(jax.jit(lambda v: ix_apply((), v))(x))
    want = np.asarray(nt_apply((), x))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_finite_relu_network_runs_under_pinned_jax():
    """Regression: Dense >> Relu >> Dense.apply raised 'max requires ndarray' on jax 0.4.23."""
    init_fn, apply_fn, _ = ix_stax.serial(ix_stax.Dense(7, W_std=1.3, b_std=0.2), ix_stax.Relu(),
                                          ix_stax.Dense(1))
    _, params = init_fn(jax.random.PRNGKey(0), (4, 3))
    y = apply_fn(params, jnp.asarray(X[:4, :3]))
    assert y.shape == (4, 1) and bool(jnp.all(jnp.isfinite(y)))
