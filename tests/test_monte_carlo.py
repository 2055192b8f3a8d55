"""Closed-form kernels against Monte Carlo of the finite networks of the same definition.

Every layer family is covered: dense (both parameterizations), convolutions in 1-D/2-D/3-D with
each padding and strides, average and global pooling, flattening, layer normalisation, the
activations, and residual / concatenated branches -- including the cases neural-tangents refuses
(two nonlinearities in a row, ``relu(h) + h``, LayerNorm after an activation).
"""
import zlib

import jax
import jax.numpy as jnp
import pytest

import infntk as nk

from .mc import assert_close_mc, empirical

W = 1024        # hidden width of dense nets
C = 128         # channels of conv nets
S = 192         # seeds


def data(shape, seed):
    return jax.random.normal(jax.random.PRNGKey(seed), shape, dtype=jnp.float64)


def dense_net(act, width=W, **kw):
    return nk.Dense(width, W_std=1.4, b_std=0.2, **kw) >> act >> nk.Dense(1, W_std=1.2, b_std=0.1, **kw)


DENSE_CASES = {
    "relu": dense_net(nk.Relu()),
    "relu-standard": dense_net(nk.Relu(), parameterization="standard"),
    # width scalings s: 512 and 768 hidden channels; NTK terms n/s_0 = 4, 256, 256
    "standard-s": nk.serial(
        nk.Dense(W // 4, W_std=1.4, b_std=0.2, parameterization="standard", s=(1, 2)), nk.Relu(),
        nk.Dense(W // 4, W_std=1.3, b_std=0.1, parameterization="standard", s=(2, 3)), nk.Erf(),
        nk.Dense(1, W_std=1.2, b_std=0.1, parameterization="standard", s=(3, 1))),
    "erf": dense_net(nk.Erf(1.3, 0.8, 0.1)),
    "abrelu": dense_net(nk.ABRelu(-0.4, 1.1)),
    "leaky": dense_net(nk.LeakyRelu(0.2)),
    "abs": dense_net(nk.Abs()),
    "gelu": dense_net(nk.Gelu()),
    "sin": dense_net(nk.Sin(1.1, 0.9, 0.4)),
    "cos": dense_net(nk.Cos(0.8, 1.2, -0.3)),
    "exp": nk.Dense(W, W_std=0.6) >> nk.Exp(0.7, 0.5) >> nk.Dense(1),
    "gaussian": dense_net(nk.Gaussian(1.0, -0.6)),
    "rbf": dense_net(nk.Rbf(0.7)),
    "monomial": dense_net(nk.Monomial(2)),
    "rectified-monomial": dense_net(nk.RectifiedMonomial(2)),
    "polynomial": dense_net(nk.Polynomial((0.2, -0.4, 0.3))),
    "hermite": nk.Dense(W, W_std=1.3) >> nk.LayerNorm() >> nk.Hermite(2) >> nk.Dense(1),
    "deep-relu": nk.serial(*([nk.Dense(W // 2, W_std=1.4, b_std=0.1), nk.Relu()] * 3), nk.Dense(1)),
    "layernorm": nk.Dense(W, W_std=1.3, b_std=0.3) >> nk.LayerNorm() >> nk.Erf() >> nk.Dense(1),
    # beyond neural-tangents
    "relu-erf": nk.Dense(W, W_std=1.5) >> nk.Relu() >> nk.Erf() >> nk.Dense(1),
    "relu-plus-identity": nk.Dense(W, W_std=1.5, b_std=0.2) >> (nk.Relu() + nk.Identity()) >> nk.Dense(1),
    "relu-layernorm": nk.Dense(W, W_std=1.5, b_std=0.2) >> nk.Relu() >> nk.LayerNorm() >> nk.Dense(1),
    # branches
    "residual": nk.Dense(W // 2) >> ((nk.Relu() >> nk.Dense(W // 2, W_std=1.3)) + nk.Identity()) >> nk.Relu()
    >> nk.Dense(1),
    "concat": nk.Dense(W // 2) >> ((nk.Dense(W // 4) >> nk.Erf()) | (nk.Relu() >> nk.Dense(W // 2))) >> nk.Dense(1),
    "relu-sum-of-independent": nk.Dense(W // 2) >> ((nk.Dense(W // 2) >> nk.Relu()) + nk.Relu()) >> nk.Dense(1),
}


@pytest.mark.parametrize("name", sorted(DENSE_CASES))
def test_dense_families_match_monte_carlo(name):
    model = DENSE_CASES[name]
    x1, x2 = data((3, 4), 1), data((2, 4), 2)
    k = model.kernel(x1, x2, get=("nngp", "ntk"))
    nngp, ntk = empirical(model, x1, x2, S, seed=zlib.crc32(name.encode()) % 1000)
    assert_close_mc(nngp, k.nngp, name=f"{name} nngp")
    assert_close_mc(ntk, k.ntk, name=f"{name} ntk")


def conv_net(body, readout):
    return body >> readout >> nk.Dense(1, W_std=1.1)


CONV_CASES = {
    "conv1d-same-flatten": (conv_net(nk.Conv(C, (3,), padding="SAME", W_std=1.3, b_std=0.1) >> nk.Relu(),
                                     nk.Flatten()), (2, 6, 2)),
    "conv2d-valid-stride-gap": (conv_net(nk.Conv(C, (3, 2), strides=(2, 1), W_std=1.3) >> nk.Erf(),
                                         nk.GlobalAvgPool()), (2, 7, 5, 2)),
    "conv2d-circular-gap": (conv_net(nk.Conv(C, (3, 3), padding="CIRCULAR", b_std=0.2) >> nk.Relu(),
                                     nk.GlobalAvgPool()), (2, 5, 5, 1)),
    "conv2d-avgpool-flatten": (conv_net(nk.Conv(C, (2, 2), padding="SAME") >> nk.Relu()
                                        >> nk.AvgPool((2, 2), (2, 2), padding="SAME"), nk.Flatten()), (2, 5, 5, 1)),
    "conv3d-gap": (conv_net(nk.Conv(C, (2, 2, 2), padding="SAME") >> nk.Relu(), nk.GlobalAvgPool()),
                   (2, 3, 3, 3, 1)),
    "conv-standard": (conv_net(nk.Conv(C, (3, 3), padding="SAME", b_std=0.1, parameterization="standard")
                               >> nk.Relu(), nk.Flatten()), (2, 4, 4, 1)),
    "conv-standard-s": (nk.Conv(C // 2, (3, 3), padding="SAME", b_std=0.1, parameterization="standard",
                                s=(1, 2)) >> nk.Relu() >> nk.Flatten()
                        >> nk.Dense(1, W_std=1.1, parameterization="standard", s=(2, 1)), (2, 4, 4, 1)),
    # concatenation along a spatial axis: two conv branches stacked along the height (full layout,
    # the pooling readout sees the zero cross blocks) ...
    "concat-height-gap": (conv_net(nk.serial(
        nk.FanOut(2), nk.parallel(nk.Conv(C, (2, 2), padding="SAME", W_std=1.3, b_std=0.1),
                                  nk.Conv(C, (3, 3), padding="SAME", W_std=0.9)),
        nk.FanInConcat(axis=1), nk.Relu()), nk.GlobalAvgPool()), (2, 3, 3, 1)),
    # ... and a Gaussian feature next to a fresh conv of it, along a 1-D sequence (diagonal layout)
    "concat-sequence-flatten": (conv_net(nk.serial(
        nk.Conv(C, (2,), padding="SAME", W_std=1.2, b_std=0.2), nk.FanOut(2),
        nk.parallel(nk.Identity(), nk.Conv(C, (2,), W_std=1.1)),
        nk.FanInConcat(axis=1), nk.Erf()), nk.Flatten()), (2, 5, 1)),
    "conv-residual-layernorm": (conv_net(nk.Conv(C, (3, 3), padding="SAME") >>
                                         ((nk.Relu() >> nk.Conv(C, (3, 3), padding="SAME")) + nk.Identity())
                                         >> nk.LayerNorm(), nk.GlobalAvgPool()), (2, 4, 4, 1)),
}


@pytest.mark.parametrize("name", sorted(CONV_CASES))
def test_conv_families_match_monte_carlo(name):
    model, shape = CONV_CASES[name]
    x1 = data(shape, 3)
    x2 = data((1,) + shape[1:], 4)
    k = model.kernel(x1, x2, get=("nngp", "ntk"))
    nngp, ntk = empirical(model, x1, x2, S, seed=zlib.crc32(name.encode()) % 1000)
    assert_close_mc(nngp, k.nngp, name=f"{name} nngp")
    assert_close_mc(ntk, k.ntk, name=f"{name} ntk")


def test_sign_nngp_matches_monte_carlo():
    """Sign's derivative is a delta; only its NNGP has a finite-network counterpart."""
    model = dense_net(nk.Sign())
    x1, x2 = data((3, 4), 1), data((2, 4), 2)
    nngp, _ = empirical(model, x1, x2, S, ntk=False)
    assert_close_mc(nngp, model.kernel(x1, x2, get="nngp"), name="sign nngp")
