r"""Exact infinite-width predictions: Bayesian NNGP posteriors and NTK gradient-descent dynamics.

The same names, signatures and semantics as ``neural_tangents.predict`` (0.6.5):

* :func:`gradient_descent_mse` -- outputs of GD on MSE at any time, in closed form, given a kernel;
* :func:`gradient_descent_mse_ensemble` -- mean and covariance of the infinite ensemble of
  infinitely wide networks trained by GD on MSE, for the NNGP and the NTK, at any time;
* :func:`gp_inference` -- NNGP / NTK / NTK-GP posteriors at infinite time;
* :func:`max_learning_rate` -- the largest stable learning rate.

Additions: every factorization runs in float64 and checks its input (non-finite values, non-PSD or
ill-conditioned kernels raise :class:`~infntk.errors.InfntkError` suggesting ``diag_reg``); a
``solver=`` / ``memory_budget=`` choice between Cholesky, eigendecomposition and conjugate
gradients; and :class:`KernelOperator`, a training kernel given only by its products (e.g. a Gram
matrix on disk), solved by CG.

Example:
    >>> import numpy as np
    >>> from infntk import predict
    >>> x = np.linspace(-1, 1, 6)[:, None]; y = np.sin(3 * x)
    >>> ntk = (1 + x @ x.T) ** 2 + np.eye(6)
    >>> fx_train, fx_test = predict.gradient_descent_mse(ntk, y)(
    ...     t=None, fx_train_0=0., fx_test_0=0., k_test_train=ntk[:2])
    >>> bool(np.allclose(fx_test, y[:2]))
    True
"""
from ._outputs import Gaussian
from ._solvers import KernelOperator
from .ensemble import gradient_descent_mse_ensemble
from .gp import gp_inference
from .mse import gradient_descent_mse, max_learning_rate

__all__ = [
    "Gaussian",
    "KernelOperator",
    "gp_inference",
    "gradient_descent_mse",
    "gradient_descent_mse_ensemble",
    "max_learning_rate",
]
