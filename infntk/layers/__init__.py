"""Layers: one concept per file, all re-exported here."""
from .activations import (ABRelu, Abs, Activation, Cos, Elementwise, Erf, Exp, Gaussian, Gelu,
                          Hermite, LeakyRelu, Monomial, Polynomial, RectifiedMonomial, Rbf, Relu,
                          Sign, Sin)
from .base import Layer
from .branching import (Concat, FanInConcat, FanInSum, FanOut, Parallel, Serial, Sum, parallel,
                        serial)
from .conv import Conv
from .dense import Dense
from .identity import Identity
from .normalization import LayerNorm
from .pooling import AvgPool, Flatten, GlobalAvgPool
