"""infntk: analytic infinite-width NNGP/NTK kernels.

Write a network once as an expression in a small layer algebra and get from it the finite network
(``init``/``apply``), its exact infinite-width NNGP and NTK kernels (``kernel``), the same
recursions symbolically, exact infinite-width predictions, and convergence studies of the finite
network towards the limit.

    >>> import jax.numpy as jnp, infntk as nk
    >>> model = nk.Dense(512, W_std=1.5, b_std=0.05) >> nk.Relu() >> nk.Dense(1, W_std=1.5, b_std=0.05)
    >>> model.kernel(jnp.ones((4, 3)), get=("nngp", "ntk")).ntk.shape
    (4, 4)
"""
from .errors import InfntkError
from .finite import check_finite
from .kernel import Kernel
from . import layers as _layers
from .layers import *  # noqa: F401,F403 -- the layers, each exported once, in infntk/layers/__init__.py
from . import stax

# -- modules owned by other parts of the library (one line each) --------------------------------
from . import predict
from .empirical import empirical_kernel_fn, empirical_nngp_fn, empirical_ntk_fn
from .linearize import linearize, taylor_expand
from .tiling import kernel_matrix

__version__ = "0.1.0"

__all__ = ["InfntkError", "check_finite", "Kernel", "stax", "predict", "empirical_kernel_fn", "empirical_nngp_fn",
           "empirical_ntk_fn", "linearize", "taylor_expand", "kernel_matrix"]
__all__ += _layers.__all__
