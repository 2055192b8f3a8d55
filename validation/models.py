"""Model families ``width -> infntk model`` named by the configs (no code from config files).

Every family ends in a Dense readout with ``width`` channels, so the single-draw NNGP (output
covariance averaged over channels) converges too; ``depth`` counts hidden nonlinearities.
"""
from __future__ import annotations

import numpy as np
import sympy

import infntk as nk
from infntk.dual import X


def activation(name: str):
    if name == "relu":
        return nk.Relu()
    if name == "erf":
        return nk.Erf()
    if name == "gauss_deriv":  # user-defined sympy activation, dual by Hermite expansion
        return nk.Activation(X * sympy.exp(-X ** 2 / 2), hermite_degree=16)
    if name == "tanh":
        return nk.Activation(sympy.tanh(X), hermite_degree=16)
    raise ValueError(f"validation.models: unknown activation {name!r}")


def dense(depth=2, activation_name="relu", W_std=2 ** 0.5, b_std=0.1):
    act = activation(activation_name)

    def build(w):
        layers = []
        for _ in range(depth):
            layers += [nk.Dense(w, W_std=W_std, b_std=b_std), act]
        return nk.serial(*layers, nk.Dense(w, W_std=W_std, b_std=b_std))
    return build


def conv(depth=2, readout="flatten", W_std=2 ** 0.5, b_std=0.1, filter_shape=(3, 3)):
    def build(w):
        layers = []
        for _ in range(depth):
            layers += [nk.Conv(w, tuple(filter_shape), padding="SAME", W_std=W_std, b_std=b_std),
                       nk.Relu()]
        layers.append(nk.Flatten() if readout == "flatten" else nk.GlobalAvgPool())
        return nk.serial(*layers, nk.Dense(w, W_std=W_std, b_std=b_std))
    return build


def resnet(blocks=2, W_std=2 ** 0.5, b_std=0.1, kind="conv", filter_shape=(3, 3)):
    """Stem >> [ (Relu >> Layer >> Relu >> Layer) + Identity ] x blocks >> Relu >> pool >> Dense."""
    def layer(w, std):
        if kind == "conv":
            return nk.Conv(w, tuple(filter_shape), padding="SAME", W_std=std, b_std=b_std)
        return nk.Dense(w, W_std=std, b_std=b_std)

    def build(w):
        out = layer(w, W_std)
        for _ in range(blocks):
            out = out >> ((nk.Relu() >> layer(w, W_std) >> nk.Relu() >> layer(w, W_std))
                          + nk.Identity())
        out = out >> nk.Relu()
        if kind == "conv":
            out = out >> nk.GlobalAvgPool()
        return out >> nk.Dense(w, W_std=W_std, b_std=b_std)
    return build


BUILDERS = {"dense": dense, "conv": conv, "resnet": resnet}


def make(builder: str, params: dict):
    if builder not in BUILDERS:
        raise ValueError(f"validation.models: unknown builder {builder!r}; one of {sorted(BUILDERS)}")
    p = dict(params)
    if "activation" in p:
        p["activation_name"] = p.pop("activation")
    return BUILDERS[builder](**p)


def inputs(kind="dense", n=6, shape=(8,), seed=0):
    """Fixed inputs: Gaussian, each example scaled to mean square 1 (features/pixels)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + tuple(shape))
    flat = x.reshape(n, -1)
    flat /= np.sqrt((flat ** 2).mean(1, keepdims=True))
    return flat.reshape(x.shape)
