"""Every layer joins the generic contract tests through one entry here.

An entry is ``name -> (model containing the layer, input shape)``; the model is the layer itself
where it can stand alone, or the smallest sensible context around it. Every public layer class needs
at least one entry (tests/layers/test_registry.py checks it), so a new layer cannot skip the
contract tests.
"""
import sympy

import infntk as nk

IMG = (3, 6, 6, 2)
VEC = (4, 5)
SEQ = (3, 7, 2)
VOL = (2, 4, 4, 4, 1)

REGISTRY = {
    # linear layers
    "Dense": (nk.Dense(7, W_std=1.3, b_std=0.2), VEC),
    "Dense-standard": (nk.Dense(7, W_std=1.3, b_std=0.2, parameterization="standard") >> nk.Relu()
                       >> nk.Dense(3, parameterization="standard"), VEC),
    "Dense-standard-s": (nk.Dense(7, W_std=1.3, b_std=0.2, parameterization="standard", s=(1, 2))
                         >> nk.Relu() >> nk.Dense(3, parameterization="standard", s=(2, 1)), VEC),
    "Dense-on-image": (nk.Dense(3, W_std=1.2, b_std=0.1), IMG),
    "Conv1D": (nk.Conv(5, (3,), padding="SAME", b_std=0.1), SEQ),
    "Conv2D-VALID-stride": (nk.Conv(5, (3, 2), strides=(2, 1), W_std=1.4), IMG),
    "Conv2D-CIRCULAR": (nk.Conv(5, (3, 3), padding="CIRCULAR", b_std=0.3), IMG),
    "Conv3D": (nk.Conv(3, (2, 2, 2), padding="SAME"), VOL),
    "Conv-standard": (nk.Conv(5, (3, 3), padding="SAME", b_std=0.2, parameterization="standard"), IMG),
    "Conv-standard-s": (nk.Conv(5, (3, 3), padding="SAME", b_std=0.2, parameterization="standard",
                                s=(1, 3)), IMG),
    "AvgPool": (nk.Conv(4, (3, 3), padding="SAME") >> nk.AvgPool((2, 2), (2, 2)), IMG),
    "AvgPool-SAME-edges": (nk.AvgPool((3, 3), (2, 2), padding="SAME", normalize_edges=True), IMG),
    "AvgPool-CIRCULAR": (nk.AvgPool((3, 2), padding="CIRCULAR"), IMG),
    "SumPool": (nk.Conv(3, (2, 2), padding="SAME", b_std=0.1) >> nk.SumPool((2, 3), (2, 1), padding="SAME"), IMG),
    "SumPool-CIRCULAR": (nk.SumPool((3,), padding="CIRCULAR"), SEQ),
    "GlobalSumPool": (nk.Conv(4, (3, 3)) >> nk.Relu() >> nk.GlobalSumPool(), IMG),
    "GlobalAvgPool": (nk.Conv(4, (3, 3)) >> nk.Relu() >> nk.GlobalAvgPool(), IMG),
    "Flatten-linear": (nk.Conv(3, (2, 2), strides=(1, 2), b_std=0.2) >> nk.Flatten(), IMG),
    "AvgPool-3D-GAP": (nk.AvgPool((2, 2, 1), (1, 2, 1), padding="SAME") >> nk.Conv(2, (1, 2, 2))
                       >> nk.GlobalAvgPool(), VOL),
    "Flatten": (nk.Conv(4, (3, 3)) >> nk.Relu() >> nk.Flatten(), IMG),
    "Identity": (nk.Identity(), VEC),
    "LayerNorm": (nk.Dense(6) >> nk.LayerNorm(), VEC),
    "LayerNorm-spatial": (nk.Conv(4, (3, 3)) >> nk.LayerNorm(axis=(1, 2, 3)), IMG),
    # activations
    "Relu": (nk.Dense(6) >> nk.Relu(), VEC),
    "ABRelu": (nk.Dense(6) >> nk.ABRelu(-0.3, 1.2), VEC),
    "LeakyRelu": (nk.Dense(6) >> nk.LeakyRelu(0.1), VEC),
    "Abs": (nk.Dense(6) >> nk.Abs(), VEC),
    "Erf": (nk.Dense(6) >> nk.Erf(1.5, 0.7, 0.2), VEC),
    "Gelu": (nk.Dense(6) >> nk.Gelu(), VEC),
    "Sin": (nk.Dense(6) >> nk.Sin(1.2, 0.8, 0.3), VEC),
    "Cos": (nk.Dense(6) >> nk.Cos(0.9, 1.1, -0.2), VEC),
    "Exp": (nk.Dense(6, W_std=0.5) >> nk.Exp(0.8, 0.6), VEC),
    "Gaussian": (nk.Dense(6) >> nk.Gaussian(1.1, -0.7), VEC),
    "Rbf": (nk.Dense(6) >> nk.Rbf(0.6), VEC),
    "Sign": (nk.Dense(6) >> nk.Sign(), VEC),
    "Monomial": (nk.Dense(6) >> nk.Monomial(3), VEC),
    "RectifiedMonomial": (nk.Dense(6) >> nk.RectifiedMonomial(2), VEC),
    "Polynomial": (nk.Dense(6) >> nk.Polynomial((0.1, -0.5, 0.3, 0.2)), VEC),
    "Hermite": (nk.Dense(6) >> nk.LayerNorm() >> nk.Hermite(3), VEC),
    "Activation": (nk.Dense(6) >> nk.Activation(sympy.Symbol("x") ** 3 - 2 * sympy.Symbol("x")), VEC),
    "Relu-on-conv": (nk.Conv(4, (3, 3), padding="SAME") >> nk.Relu(), IMG),
    # branching
    "Sum-residual": (nk.Dense(6) >> ((nk.Relu() >> nk.Dense(6)) + nk.Identity()), VEC),
    "Sum-elementwise": (nk.Dense(6) >> (nk.Relu() + nk.Identity()), VEC),
    "Concat": (nk.Dense(6) >> ((nk.Dense(3) >> nk.Erf()) | nk.Dense(5)), VEC),
    "stax-FanOut": (nk.serial(nk.Dense(6), nk.FanOut(2), nk.parallel(nk.Relu() >> nk.Dense(6), nk.Identity()),
                              nk.FanInSum()), VEC),
    "stax-FanInConcat": (nk.serial(nk.Conv(3, (2, 2)), nk.FanOut(2), nk.parallel(nk.Relu(), nk.Conv(2, (1, 1))),
                                   nk.FanInConcat()), IMG),
    "stax-FanInConcat-spatial": (nk.serial(nk.Conv(3, (2, 2)), nk.FanOut(2),
                                           nk.parallel(nk.Conv(3, (2, 2), padding="SAME"), nk.Identity()),
                                           nk.FanInConcat(axis=1)), IMG),
    "stax-FanInConcat-spatial-flatten": (nk.serial(nk.Conv(3, (2, 2)), nk.FanOut(2),
                                                   nk.parallel(nk.Conv(2, (1, 2), b_std=0.2),
                                                               nk.Conv(2, (1, 1), W_std=1.4)),
                                                   nk.FanInConcat(axis=-2), nk.Erf(), nk.Flatten()), IMG),
    "Relu-Erf-chain": (nk.Dense(6) >> nk.Relu() >> nk.Erf(), VEC),
    "Relu-LayerNorm": (nk.Dense(6) >> nk.Relu() >> nk.LayerNorm(), VEC),
}
