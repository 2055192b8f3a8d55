"""Property tests over random architectures drawn from the supported algebra.

For every drawn model: kernels are finite, symmetric (x2=None), positive semi-definite, and
equivariant under permutations of the input batch.
"""
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import infntk as nk

stds = st.floats(0.5, 2.0)
biases = st.one_of(st.none(), st.floats(0.0, 0.5))

ACTIVATIONS = [
    lambda: nk.Relu(), lambda: nk.Erf(1.2, 0.8, 0.1), lambda: nk.Gelu(), lambda: nk.Sin(1.0, 0.7, 0.2),
    lambda: nk.LeakyRelu(0.1), lambda: nk.Abs(), lambda: nk.ABRelu(-0.5, 1.0), lambda: nk.Rbf(0.5),
    lambda: nk.Monomial(2), lambda: nk.RectifiedMonomial(2), lambda: nk.Cos(1.0, 0.5, 0.1),
]


@st.composite
def activations(draw):
    return ACTIVATIONS[draw(st.integers(0, len(ACTIVATIONS) - 1))]()


@st.composite
def dense_block(draw, width=6):
    kind = draw(st.sampled_from(["dense-act", "residual", "concat", "layernorm"]))
    dense = nk.Dense(width, W_std=draw(stds), b_std=draw(biases))
    if kind == "dense-act":
        return dense >> draw(activations())
    # every block starts with a linear layer, so its nonlinearities see a Gaussian input (an
    # activation after a sum of a fresh Gaussian and relu(h) has no closed form and is refused)
    if kind == "residual":
        return dense >> ((draw(activations()) >> nk.Dense(width, W_std=draw(stds))) + nk.Identity())
    if kind == "concat":
        return dense >> ((nk.Dense(3, W_std=draw(stds)) >> draw(activations()))
                         | nk.Dense(width - 3, W_std=draw(stds)))
    return dense >> nk.LayerNorm() >> draw(activations())


@st.composite
def dense_models(draw):
    n = draw(st.integers(1, 4))
    param = draw(st.sampled_from(["ntk", "standard"]))
    layers = [nk.Dense(6, W_std=draw(stds), b_std=draw(biases), parameterization=param)]
    layers += [draw(dense_block()) for _ in range(n)]
    layers.append(nk.Dense(1, W_std=draw(stds), b_std=draw(biases), parameterization=param))
    return nk.serial(*layers)


@st.composite
def conv_models(draw):
    d = draw(st.integers(1, 2))
    shape = (4,) + (5,) * d + (2,)
    layers = []
    for _ in range(draw(st.integers(1, 3))):
        layers.append(nk.Conv(4, (draw(st.integers(1, 3)),) * d, strides=(draw(st.integers(1, 2)),) * d,
                              padding=draw(st.sampled_from(["SAME", "CIRCULAR"])), W_std=draw(stds),
                              b_std=draw(biases)))
        layers.append(draw(activations()))
        if draw(st.booleans()):
            layers.append(nk.AvgPool((2,) * d, padding=draw(st.sampled_from(["SAME", "CIRCULAR"]))))
    layers.append(draw(st.sampled_from([nk.Flatten(), nk.GlobalAvgPool()])))
    layers.append(nk.Dense(1, W_std=draw(stds)))
    return nk.serial(*layers), shape


def check(model, x, seed):
    k = model.kernel(x, None, get=("nngp", "ntk"))
    perm = np.random.default_rng(seed).permutation(x.shape[0])
    kp = model.kernel(x[perm], None, get=("nngp", "ntk"))
    for a, b in ((k.nngp, kp.nngp), (k.ntk, kp.ntk)):
        a = np.asarray(a)
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, a.T, rtol=1e-12, atol=1e-14)
        ev = np.linalg.eigvalsh(a)
        assert ev.min() >= -1e-9 * max(1.0, np.abs(ev).max())
        np.testing.assert_allclose(np.asarray(b), a[np.ix_(perm, perm)], rtol=1e-9, atol=1e-12)


# derandomized for reproducible CI; no shrinking (each example compiles a new model, so shrinking
# can take minutes -- a failure prints the drawn architecture in full anyway)
SETTINGS = settings(max_examples=20, deadline=None, derandomize=True, print_blob=True,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(dense_models(), st.integers(0, 10_000))
def test_random_dense_architectures(model, seed):
    x = jax.random.normal(jax.random.PRNGKey(seed), (5, 3), dtype=jnp.float64)
    check(model, x, seed)


@SETTINGS
@given(conv_models(), st.integers(0, 10_000))
def test_random_conv_architectures(model_shape, seed):
    model, shape = model_shape
    x = jax.random.normal(jax.random.PRNGKey(seed), shape, dtype=jnp.float64)
    check(model, x, seed)
