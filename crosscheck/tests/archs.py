"""The architectures of the cross-check, each written ONCE against a stax-like module.

Every entry is a function ``build(stax) -> (init_fn, apply_fn, kernel_fn)`` that only uses names
both ``neural_tangents.stax`` (0.6.5) and ``infntk.stax`` provide, so the very same code builds the
neural-tangents reference and the infntk model:  ``build(neural_tangents.stax)`` and
``build(infntk.stax)``. ``shape`` is the shape of ONE input example (no batch axis), channels last.

Coverage (asserted by test_stax_vs_nt.test_coverage):
  layers      Dense, Conv 1-D/2-D/3-D x VALID/SAME/CIRCULAR x several strides and filter shapes,
              AvgPool x VALID/SAME(normalize_edges both)/CIRCULAR x strides (1-D, 2-D, 3-D),
              SumPool (VALID/SAME/CIRCULAR, 1-D, 2-D), GlobalSumPool (2-D, 3-D),
              GlobalAvgPool, Flatten, Identity, LayerNorm (channel axis; all non-batch axes; eps),
              FanOut / FanInSum / FanInConcat (channels; a spatial axis in 1-D and 2-D, both
              spatial layouts) / parallel / serial, residual blocks, concatenated branches of
              unequal widths;
  activations Relu, ABRelu, LeakyRelu, Abs, Erf, Gelu, Sin, Cos, Exp, Gaussian, Rbf, Sign, Monomial,
              RectifiedMonomial, Polynomial, Hermite -- each with every parameter non-default, each
              both after Dense (diagonal covariance path) and after Conv with a GlobalAvgPool readout
              (full spatial covariance path);
  both parameterizations ('ntk', 'standard', with and without ``s`` on Dense and Conv), deep stacks
  (>= 20 layers).

What is *not* here because neural-tangents refuses it (infntk supports it, so it cannot be
cross-checked; it is checked against Monte Carlo in the main suite instead): two activations in a
row, ``relu(h) + h`` (a nonlinearity of a non-Gaussian input), LayerNorm after an activation or
straight on the input ("LayerNorm only implemented for Gaussian inputs"), a nonlinearity right after
a channel-wise FanInConcat.
"""
from __future__ import annotations

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Arch:
    name: str
    family: str
    build: Callable
    shape: tuple  # one example, channels last
    note: str = ""


ARCHS: list[Arch] = []


def arch(family: str, shape: tuple, name: str | None = None, note: str = ""):
    def register(build):
        ARCHS.append(Arch(name or build.__name__, family, build, tuple(shape), note))
        return build
    return register


# --------------------------------------------------------------------------------------------
# Activations: every parameter non-default. Hermite assumes unit-variance inputs in
# neural-tangents (documented in its docstring), so it is always preceded by LayerNorm there.
# --------------------------------------------------------------------------------------------
ACTIVATIONS: dict[str, Callable] = {
    "relu": lambda s: s.Relu(),
    "abrelu": lambda s: s.ABRelu(a=-0.4, b=1.7),
    "leaky_relu": lambda s: s.LeakyRelu(alpha=0.15),
    "abs": lambda s: s.Abs(),
    "erf": lambda s: s.Erf(a=1.3, b=0.7, c=0.2),
    "gelu": lambda s: s.Gelu(),
    "gelu_approximate": lambda s: s.Gelu(approximate=True),
    "sin": lambda s: s.Sin(a=1.4, b=0.8, c=0.3),
    "cos": lambda s: s.Cos(a=0.9, b=1.3, c=-0.2),
    "exp": lambda s: s.Exp(a=0.7, b=0.5),
    "gaussian": lambda s: s.Gaussian(a=1.2, b=-0.6),
    "rbf": lambda s: s.Rbf(gamma=0.4),
    "sign": lambda s: s.Sign(),
    "monomial0": lambda s: s.Monomial(degree=0),
    "monomial2": lambda s: s.Monomial(degree=2),
    "monomial3": lambda s: s.Monomial(degree=3),
    "monomial5": lambda s: s.Monomial(degree=5),
    "rectified_monomial0": lambda s: s.RectifiedMonomial(degree=0),
    "rectified_monomial1": lambda s: s.RectifiedMonomial(degree=1),
    "rectified_monomial2": lambda s: s.RectifiedMonomial(degree=2),
    "rectified_monomial3": lambda s: s.RectifiedMonomial(degree=3),
    "polynomial": lambda s: s.Polynomial(coef=[0.3, -0.5, 0.8, 0.2]),
    "hermite": lambda s: s.Hermite(degree=3),
    "hermite1": lambda s: s.Hermite(degree=1),
    "hermite4": lambda s: s.Hermite(degree=4),
}
NEEDS_UNIT_VARIANCE = {"hermite", "hermite1", "hermite4"}


def _mlp_with(act_name: str):
    act = ACTIVATIONS[act_name]
    unit = act_name in NEEDS_UNIT_VARIANCE

    def build(s):
        pre = (s.LayerNorm(),) if unit else ()
        return s.serial(
            s.Dense(16, W_std=1.3, b_std=0.2), *pre, act(s),
            s.Dense(16, W_std=0.8, b_std=0.4), *pre, act(s),
            s.Dense(1, W_std=1.1, b_std=0.05))
    return build


def _conv_with(act_name: str):
    act = ACTIVATIONS[act_name]
    unit = act_name in NEEDS_UNIT_VARIANCE

    def build(s):
        pre = (s.LayerNorm(),) if unit else ()
        return s.serial(
            s.Conv(8, (2,), padding="SAME", W_std=1.2, b_std=0.3), *pre, act(s),
            s.Conv(8, (2,), padding="CIRCULAR", W_std=0.9, b_std=0.2), *pre, act(s),
            s.GlobalAvgPool(), s.Dense(1, W_std=1.1, b_std=0.1))
    return build


for _name in ACTIVATIONS:
    arch("activation-dense", (5,), name=f"dense_{_name}")(_mlp_with(_name))
    arch("activation-conv", (4, 2), name=f"conv_{_name}")(_conv_with(_name))


# --------------------------------------------------------------------------------------------
# Dense / parameterizations
# --------------------------------------------------------------------------------------------
@arch("dense", (6,))
def dense_nobias(s):
    return s.serial(s.Dense(32, W_std=1.7), s.Relu(), s.Dense(32, W_std=0.6), s.Erf(),
                    s.Dense(1, W_std=2.0))


@arch("dense", (4, 3, 2))
def dense_on_images(s):
    # Dense acts on the channel axis of an image; Flatten reads out.
    return s.serial(s.Dense(8, W_std=1.4, b_std=0.3), s.Relu(), s.Dense(8, W_std=1.1),
                    s.Flatten(), s.Dense(2, W_std=0.7, b_std=0.2))


@arch("dense", (5,))
def identity_in_the_middle(s):
    return s.serial(s.Dense(8, W_std=1.5, b_std=0.5), s.Identity(), s.Relu(), s.Identity(),
                    s.Dense(3, W_std=0.9, b_std=0.1))


@arch("dense", (5,))
def flatten_of_vectors(s):
    return s.serial(s.Flatten(), s.Dense(8, W_std=1.5, b_std=0.5), s.Abs(), s.Flatten(),
                    s.Dense(1))


@arch("parameterization", (7,))
def standard_mlp(s):
    # Standard parameterization: the NTK depends on the finite widths 7 (input), 11 and 13.
    p = "standard"
    return s.serial(s.Dense(11, W_std=1.4, b_std=0.3, parameterization=p), s.Relu(),
                    s.Dense(13, W_std=0.9, b_std=0.2, parameterization=p), s.Erf(),
                    s.Dense(1, W_std=1.2, b_std=0.1, parameterization=p))


@arch("parameterization", (7,))
def standard_mlp_nobias(s):
    p = "standard"
    return s.serial(s.Dense(5, W_std=1.4, parameterization=p), s.Relu(),
                    s.Dense(1, W_std=1.2, parameterization=p))


@arch("parameterization", (6,))
def standard_mlp_s(s):
    # `s`: width scalings of (input, output) of each layer.
    p = "standard"
    return s.serial(s.Dense(4, W_std=1.3, b_std=0.2, parameterization=p, s=(1, 3)), s.Relu(),
                    s.Dense(6, W_std=0.8, b_std=0.1, parameterization=p, s=(3, 2)), s.Gelu(),
                    s.Dense(1, W_std=1.1, b_std=0.3, parameterization=p, s=(2, 1)))


@arch("parameterization", (6, 2))
def standard_conv(s):
    p = "standard"
    return s.serial(s.Conv(5, (3,), padding="SAME", W_std=1.3, b_std=0.2, parameterization=p),
                    s.Relu(),
                    s.Conv(7, (2,), strides=(2,), W_std=0.9, b_std=0.1, parameterization=p),
                    s.Relu(), s.Flatten(), s.Dense(1, W_std=1.2, parameterization=p))


@arch("parameterization", (6, 5, 2))
def standard_conv_s(s):
    # `s` on convolutions: 2 -> 3 -> 2 width scalings through a 2-D stack with pooling readout.
    p = "standard"
    return s.serial(s.Conv(3, (2, 2), padding="SAME", W_std=1.3, b_std=0.2, parameterization=p,
                           s=(1, 2)), s.Relu(),
                    s.Conv(4, (3, 2), strides=(2, 1), W_std=0.9, b_std=0.1, parameterization=p,
                           s=(2, 3)), s.Erf(),
                    s.Conv(3, (2, 2), padding="CIRCULAR", W_std=1.1, parameterization=p,
                           s=(3, 2)), s.Relu(),
                    s.AvgPool((2, 2), padding="SAME"), s.Flatten(),
                    s.Dense(1, W_std=1.2, b_std=0.3, parameterization=p, s=(2, 1)))


@arch("parameterization", (5,))
def mixed_parameterizations(s):
    return s.serial(s.Dense(9, W_std=1.3, b_std=0.2, parameterization="standard"), s.Relu(),
                    s.Dense(9, W_std=1.1, b_std=0.4), s.Relu(),
                    s.Dense(1, W_std=0.9, b_std=0.3, parameterization="standard"))


# --------------------------------------------------------------------------------------------
# Convolutions
# --------------------------------------------------------------------------------------------
@arch("conv1d", (9, 3))
def conv1d_valid(s):
    return s.serial(s.Conv(8, (3,), padding="VALID", W_std=1.5, b_std=0.1), s.Relu(),
                    s.Conv(8, (2,), strides=(2,), W_std=1.2, b_std=0.2), s.Relu(),
                    s.Flatten(), s.Dense(1, W_std=0.8, b_std=0.1))


@arch("conv1d", (8, 2))
def conv1d_same_stride2(s):
    return s.serial(s.Conv(8, (3,), strides=(2,), padding="SAME", W_std=1.3, b_std=0.2),
                    s.Erf(), s.Conv(8, (2,), padding="SAME", W_std=1.1), s.Relu(),
                    s.GlobalAvgPool(), s.Dense(1, W_std=1.0, b_std=0.3))


@arch("conv1d", (7, 2))
def conv1d_circular(s):
    return s.serial(s.Conv(8, (3,), padding="CIRCULAR", W_std=1.4, b_std=0.2), s.Relu(),
                    s.Conv(8, (4,), strides=(3,), padding="CIRCULAR", W_std=0.9, b_std=0.1),
                    s.Relu(), s.Flatten(), s.Dense(1))


@arch("conv2d", (6, 5, 2))
def conv2d_valid(s):
    return s.serial(s.Conv(8, (3, 2), strides=(1, 2), padding="VALID", W_std=1.3, b_std=0.2),
                    s.Relu(), s.Conv(8, (2, 2), W_std=1.1, b_std=0.1), s.Relu(),
                    s.Flatten(), s.Dense(1, W_std=0.9))


@arch("conv2d", (5, 4, 2))
def conv2d_same(s):
    return s.serial(s.Conv(8, (3, 3), strides=(2, 2), padding="SAME", W_std=1.4, b_std=0.1),
                    s.Relu(), s.Conv(8, (2, 3), padding="SAME", W_std=0.9, b_std=0.3),
                    s.Gelu(), s.GlobalAvgPool(), s.Dense(1, W_std=1.2, b_std=0.2))


@arch("conv2d", (4, 5, 2))
def conv2d_circular(s):
    return s.serial(s.Conv(8, (2, 3), padding="CIRCULAR", W_std=1.2, b_std=0.2), s.Relu(),
                    s.Conv(8, (3, 2), strides=(2, 1), padding="CIRCULAR", W_std=1.1),
                    s.Relu(), s.Flatten(), s.Dense(1, W_std=0.8, b_std=0.1))


@arch("conv3d", (4, 3, 3, 2))
def conv3d_valid(s):
    return s.serial(s.Conv(6, (2, 2, 2), padding="VALID", W_std=1.3, b_std=0.2), s.Relu(),
                    s.Conv(6, (2, 1, 2), strides=(2, 1, 1), W_std=1.0), s.Relu(),
                    s.Flatten(), s.Dense(1, W_std=0.9, b_std=0.1))


@arch("conv3d", (3, 3, 4, 1))
def conv3d_same(s):
    return s.serial(s.Conv(6, (3, 2, 2), strides=(2, 1, 1), padding="SAME", W_std=1.3,
                           b_std=0.2), s.Relu(),
                    s.GlobalAvgPool(), s.Dense(1, W_std=1.1, b_std=0.1))


@arch("conv3d", (3, 3, 3, 2))
def conv3d_circular(s):
    return s.serial(s.Conv(6, (2, 2, 3), padding="CIRCULAR", W_std=1.2, b_std=0.1), s.Erf(),
                    s.Flatten(), s.Dense(1, W_std=1.3))


@arch("conv2d", (4, 4, 3))
def conv2d_nobias_readout_conv(s):
    # No bias anywhere; the last layer is a VALID conv covering the whole image, then Flatten.
    return s.serial(s.Conv(8, (2, 2), padding="SAME", W_std=1.5), s.Relu(),
                    s.Conv(3, (4, 4), padding="VALID", W_std=0.9), s.Flatten())


@arch("conv2d", (4, 3, 2), note="no readout: the kernel keeps its spatial axes")
def conv2d_no_readout(s):
    return s.serial(s.Conv(8, (2, 2), padding="SAME", W_std=1.3, b_std=0.2), s.Relu(),
                    s.Conv(2, (3, 2), padding="SAME", W_std=1.1, b_std=0.1))


# --------------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------------
@arch("pooling", (8, 3))
def sumpool1d_valid_then_relu(s):
    return s.serial(s.Conv(8, (2,), padding="SAME", W_std=1.3, b_std=0.1), s.Relu(),
                    s.SumPool((2,)), s.Conv(8, (2,), W_std=0.6), s.Relu(),
                    s.SumPool((3,), strides=(2,)), s.Flatten(), s.Dense(1, W_std=0.9))


@arch("pooling", (6, 5, 2))
def sumpool2d_same_strided_gsp(s):
    return s.serial(s.Conv(8, (2, 2), padding="SAME", W_std=1.1, b_std=0.2), s.Erf(),
                    s.SumPool((2, 3), strides=(2, 1), padding="SAME"),
                    s.GlobalSumPool(), s.Dense(1, W_std=0.3, b_std=0.1))


@arch("pooling", (5, 4, 2))
def sumpool2d_circular_under_gap(s):
    return s.serial(s.Conv(8, (2, 2), padding="CIRCULAR", W_std=1.2, b_std=0.3), s.Relu(),
                    s.SumPool((3, 2), padding="CIRCULAR"), s.Conv(4, (2, 2), W_std=0.5), s.Relu(),
                    s.GlobalAvgPool(), s.Dense(1, W_std=0.9))


@arch("pooling", (4, 4, 3, 2))
def global_sum_pool_3d(s):
    return s.serial(s.Conv(8, (2, 2, 1), padding="SAME", W_std=1.4), s.Gelu(),
                    s.GlobalSumPool(), s.Dense(1, W_std=0.2, b_std=0.1))


@arch("pooling", (8, 3))
def avgpool1d_valid(s):
    return s.serial(s.Conv(8, (2,), padding="SAME", W_std=1.3, b_std=0.1), s.Relu(),
                    s.AvgPool((2,)), s.Conv(8, (2,), W_std=1.1), s.Relu(),
                    s.AvgPool((3,), strides=(2,)), s.Flatten(), s.Dense(1, W_std=0.9))


@arch("pooling", (6, 5, 2))
def avgpool2d_valid_strided(s):
    return s.serial(s.Conv(8, (2, 2), padding="SAME", W_std=1.4, b_std=0.2), s.Relu(),
                    s.AvgPool((2, 2), strides=(2, 1), padding="VALID"),
                    s.Flatten(), s.Dense(1, W_std=1.1, b_std=0.1))


@arch("pooling", (5, 4, 2))
def avgpool2d_same(s):
    return s.serial(s.Conv(8, (2, 2), padding="SAME", W_std=1.2, b_std=0.3), s.Relu(),
                    s.AvgPool((3, 3), strides=(1, 1), padding="SAME"),
                    s.Flatten(), s.Dense(1, W_std=0.9))


@arch("pooling", (5, 5, 2))
def avgpool2d_same_normalize_edges(s):
    return s.serial(s.Conv(8, (2, 2), padding="SAME", W_std=1.2, b_std=0.3), s.Erf(),
                    s.AvgPool((3, 2), strides=(2, 2), padding="SAME", normalize_edges=True),
                    s.Flatten(), s.Dense(1, W_std=0.9, b_std=0.2))


@arch("pooling", (4, 6, 2))
def avgpool2d_circular(s):
    return s.serial(s.Conv(8, (2, 2), padding="CIRCULAR", W_std=1.3, b_std=0.1), s.Relu(),
                    s.AvgPool((2, 3), strides=(1, 2), padding="CIRCULAR"),
                    s.GlobalAvgPool(), s.Dense(1, W_std=1.0, b_std=0.4))


@arch("pooling", (3, 4, 3, 1))
def avgpool3d_same(s):
    return s.serial(s.Conv(6, (2, 2, 2), padding="SAME", W_std=1.3, b_std=0.1), s.Relu(),
                    s.AvgPool((2, 2, 2), strides=(1, 2, 1), padding="SAME"),
                    s.Flatten(), s.Dense(1))


@arch("pooling", (6, 2))
def avgpool_on_input(s):
    # Pooling straight on the input (a kernel that is still the raw input covariance).
    return s.serial(s.AvgPool((3,), strides=(1,), padding="SAME", normalize_edges=True),
                    s.Conv(4, (2,), W_std=1.2, b_std=0.2), s.Relu(),
                    s.GlobalAvgPool(), s.Dense(1))


@arch("pooling", (6, 2), note="Sign writes cov1's off-diagonal spatial entries; pooling reads them")
def sign_then_pool(s):
    return s.serial(s.Conv(6, (2,), padding="SAME", W_std=1.2, b_std=0.2), s.Sign(),
                    s.AvgPool((2,), strides=(2,)), s.Conv(6, (2,), padding="SAME", W_std=1.1,
                                                          b_std=0.1), s.Relu(),
                    s.GlobalAvgPool(), s.Dense(1, W_std=1.0, b_std=0.1))


# --------------------------------------------------------------------------------------------
# LayerNorm
# --------------------------------------------------------------------------------------------
@arch("layernorm", (5,))
def layernorm_mlp(s):
    return s.serial(s.Dense(8, W_std=1.5, b_std=0.5), s.LayerNorm(), s.Relu(),
                    s.Dense(8, W_std=1.2, b_std=0.3), s.LayerNorm(eps=0.1), s.Erf(),
                    s.Dense(1, W_std=0.9))


@arch("layernorm", (4, 3, 2))
def layernorm_all_axes(s):
    return s.serial(s.Conv(8, (2, 2), padding="SAME", W_std=1.3, b_std=0.4),
                    s.LayerNorm(axis=(1, 2, 3)), s.Relu(),
                    s.Conv(8, (2, 2), padding="SAME", W_std=1.1, b_std=0.2),
                    s.LayerNorm(axis=(1, 2, 3), eps=0.05), s.Relu(),
                    s.Flatten(), s.Dense(1))


@arch("layernorm", (5, 2))
def layernorm_channels_and_space(s):
    return s.serial(s.Conv(8, (2,), padding="CIRCULAR", W_std=1.3, b_std=0.4),
                    s.LayerNorm(axis=-1), s.Gelu(),
                    s.Conv(8, (3,), padding="SAME", W_std=1.1, b_std=0.2),
                    s.LayerNorm(axis=(1, 2)), s.Relu(), s.GlobalAvgPool(), s.Dense(1))


# --------------------------------------------------------------------------------------------
# Branching
# --------------------------------------------------------------------------------------------
@arch("branching", (5,))
def fanout_sum(s):
    return s.serial(s.Dense(8, W_std=1.2, b_std=0.1), s.FanOut(2),
                    s.parallel(s.Dense(8, W_std=0.9, b_std=0.3),
                               s.serial(s.Dense(8, W_std=1.3), s.Relu(), s.Dense(8, W_std=0.7))),
                    s.FanInSum(), s.Relu(), s.Dense(1, W_std=1.1, b_std=0.2))


@arch("branching", (5,))
def fanout_concat_unequal_widths(s):
    # Channel concatenation weighs each branch by its (finite) width: 3, 5 and 4 channels.
    return s.serial(s.FanOut(3),
                    s.parallel(s.serial(s.Dense(3, W_std=1.2, b_std=0.1), s.Relu()),
                               s.serial(s.Dense(5, W_std=0.8, b_std=0.5), s.Erf()),
                               s.Dense(4, W_std=1.5)),
                    s.FanInConcat(), s.Dense(8, W_std=1.1, b_std=0.2), s.Relu(),
                    s.Dense(1))


@arch("branching", (5, 2))
def concat_conv_branches(s):
    return s.serial(s.Conv(6, (2,), padding="SAME", W_std=1.2, b_std=0.2), s.FanOut(2),
                    s.parallel(s.serial(s.Conv(4, (3,), padding="SAME", W_std=1.1), s.Relu()),
                               s.serial(s.AvgPool((2,), padding="SAME"), s.Abs())),
                    s.FanInConcat(axis=-1), s.Conv(6, (2,), W_std=1.3, b_std=0.1), s.Relu(),
                    s.GlobalAvgPool(), s.Dense(1))


@arch("branching", (4, 2))
def concat_along_space(s):
    # Concatenation along a spatial axis of two Gaussian branches (neural-tangents allows it).
    return s.serial(s.FanOut(2),
                    s.parallel(s.Conv(6, (2,), padding="SAME", W_std=1.2, b_std=0.2),
                               s.Conv(6, (3,), padding="CIRCULAR", W_std=0.8)),
                    s.FanInConcat(axis=1), s.Relu(), s.Conv(6, (2,), strides=(2,), W_std=1.1),
                    s.Relu(), s.GlobalAvgPool(), s.Dense(1))


@arch("branching", (4, 4, 2))
def concat_along_width_flatten(s):
    # Three Gaussian branches of unequal widths (3 + 2 + 4) concatenated along the width axis of
    # an image (diagonal spatial layout: Flatten readout); one branch pools before the concat.
    return s.serial(s.Conv(4, (2, 2), padding="SAME", W_std=1.3, b_std=0.1), s.Relu(), s.FanOut(3),
                    s.parallel(s.Conv(5, (1, 2), W_std=1.2, b_std=0.2),
                               s.serial(s.Conv(5, (3, 1), padding="SAME", W_std=0.8),
                                        s.AvgPool((1, 2))),
                               s.Conv(5, (1, 1), W_std=1.0, b_std=0.3)),
                    s.FanInConcat(axis=-2), s.Erf(), s.Flatten(), s.Dense(1, W_std=1.1))


@arch("branching", (3, 4, 2))
def concat_along_height_pool(s):
    # A Gaussian feature next to a fresh conv of it, stacked along the height axis (full spatial
    # layout: pooling readout); the two halves are uncorrelated, each half keeps its covariance.
    return s.serial(s.Conv(4, (2, 2), padding="SAME", W_std=1.3, b_std=0.1), s.FanOut(2),
                    s.parallel(s.Identity(), s.Conv(4, (2, 2), padding="SAME", W_std=0.9)),
                    s.FanInConcat(axis=1), s.Relu(), s.Conv(3, (2, 2), W_std=1.2),
                    s.AvgPool((2, 2), padding="SAME"), s.Relu(), s.GlobalAvgPool(), s.Dense(1))


@arch("branching", (5,))
def residual_mlp(s):
    block = s.serial(s.FanOut(2), s.parallel(s.serial(s.Relu(), s.Dense(8, W_std=1.3, b_std=0.1)),
                                             s.Identity()), s.FanInSum())
    return s.serial(s.Dense(8, W_std=1.1, b_std=0.2), block, block, s.Relu(),
                    s.Dense(1, W_std=0.9))


@arch("branching", (5, 4, 2))
def residual_conv(s):
    # A wide-resnet-like block with a projection shortcut, then pooling.
    block = s.serial(
        s.FanOut(2),
        s.parallel(s.serial(s.Relu(), s.Conv(8, (3, 3), padding="SAME", W_std=1.3, b_std=0.1),
                            s.Relu(), s.Conv(8, (3, 3), padding="SAME", W_std=1.1)),
                   s.Conv(8, (1, 1), W_std=0.9)),
        s.FanInSum())
    return s.serial(s.Conv(8, (2, 2), padding="SAME", W_std=1.2, b_std=0.2), block,
                    s.AvgPool((2, 2), padding="SAME"), s.Relu(), s.Flatten(),
                    s.Dense(1, W_std=1.0, b_std=0.1))


@arch("branching", (6,))
def nested_branches(s):
    inner = s.serial(s.FanOut(2), s.parallel(s.serial(s.Erf(), s.Dense(6, W_std=1.4)),
                                             s.Identity()), s.FanInSum())
    return s.serial(s.Dense(6, W_std=1.2, b_std=0.3), s.FanOut(2),
                    s.parallel(s.serial(inner, s.Dense(6, W_std=0.8)), s.Identity()),
                    s.FanInConcat(), s.Dense(4, W_std=1.0, b_std=0.2), s.Relu(), s.Dense(1))


# --------------------------------------------------------------------------------------------
# Deep stacks (>= 20 layers)
# --------------------------------------------------------------------------------------------
@arch("deep", (5,))
def deep_relu_24(s):
    hidden = []
    for i in range(24):
        hidden += [s.Dense(16, W_std=1.4 + 0.01 * i, b_std=0.1), s.Relu()]
    return s.serial(*hidden, s.Dense(1, W_std=1.0, b_std=0.05))


@arch("deep", (5,))
def deep_relu_stabilized_24(s):
    # do_stabilize=True rescales by the largest |nngp| inside the layer and back: exact in theory.
    acts = [lambda: s.Relu(do_stabilize=True), lambda: s.LeakyRelu(0.2, do_stabilize=True),
            lambda: s.Abs(do_stabilize=True), lambda: s.ABRelu(-0.3, 1.2, do_stabilize=True)]
    hidden = []
    for i in range(24):
        hidden += [s.Dense(16, W_std=1.5, b_std=0.05), acts[i % 4]()]
    return s.serial(*hidden, s.Dense(1))


@arch("deep", (5,))
def deep_erf_20(s):
    hidden = []
    for _ in range(20):
        hidden += [s.Dense(16, W_std=1.6, b_std=0.2), s.Erf(a=1.1, b=0.9, c=0.05)]
    return s.serial(*hidden, s.Dense(1))


@arch("deep", (6, 2))
def deep_conv_20(s):
    hidden = []
    for _ in range(20):
        hidden += [s.Conv(6, (3,), padding="SAME", W_std=1.4, b_std=0.1), s.Relu()]
    return s.serial(*hidden, s.GlobalAvgPool(), s.Dense(1))


@arch("deep", (5,))
def deep_resnet_12_blocks(s):
    block = s.serial(s.FanOut(2),
                     s.parallel(s.serial(s.Relu(), s.Dense(8, W_std=1.2, b_std=0.1)),
                                s.Identity()), s.FanInSum())
    return s.serial(s.Dense(8, W_std=1.1), *[block] * 12, s.LayerNorm(), s.Relu(),
                    s.Dense(1))


@arch("deep", (5,))
def deep_standard_20(s):
    p = "standard"
    hidden = []
    for i in range(20):
        hidden += [s.Dense(6 + i % 3, W_std=1.4, b_std=0.1, parameterization=p), s.Relu()]
    return s.serial(*hidden, s.Dense(1, W_std=1.0, parameterization=p))
