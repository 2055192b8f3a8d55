"""Layers: one concept per file, each exported here by one line.

These imports are the package's list of public layers: ``__all__`` is built from them,
``infntk/__init__.py`` re-exports them, and :mod:`infntk.layers.registry` derives from them the
names that architecture strings, the ``stax`` facade and the command line accept. A new layer is
added here (its name in the import line of its file) and nowhere else in the package.
"""
from types import ModuleType as _ModuleType

from .dense import Dense
from .conv import Conv
from .pooling import AvgPool, GlobalAvgPool, Flatten
from .sum_pool import SumPool, GlobalSumPool
from .identity import Identity
from .normalization import LayerNorm
from .activations import (Relu, ABRelu, LeakyRelu, Abs, Erf, Gelu, Sin, Cos, Exp, Gaussian, Rbf,
                          Sign, Monomial, RectifiedMonomial, Polynomial, Hermite, Activation,
                          Elementwise)
from .branching import (Serial, Sum, Concat, serial, parallel, FanOut, FanInSum, FanInConcat,
                        Parallel)
from .base import Layer

#: The public names, in the order of the imports above (which is the order help texts list them).
__all__ = [_n for _n, _v in dict(globals()).items()
           if not _n.startswith("_") and not isinstance(_v, _ModuleType)]
