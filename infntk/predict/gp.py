r"""Exact Bayesian (NNGP) and infinite-time gradient-descent (NTK) posteriors.

For training inputs :math:`\mathcal{X}` with targets :math:`Y`, a test batch :math:`x`, NNGP
:math:`K` and NTK :math:`\Theta` (ridge :math:`\epsilon` added to the training blocks):

* ``'nngp'`` -- the posterior of a GP with covariance :math:`K` (an infinitely wide Bayesian
  network):

  .. math::
      \mu(x) = K_{x\mathcal{X}} K_{\mathcal{X}\mathcal{X}}^{-1} Y, \qquad
      \Sigma(x, x) = K_{xx} - K_{x\mathcal{X}} K_{\mathcal{X}\mathcal{X}}^{-1} K_{\mathcal{X}x}.

* ``'ntk'`` -- the distribution of an infinite ensemble of infinitely wide networks trained by
  gradient flow on MSE to convergence (Lee et al. 2019, eq. 16, :math:`t \to \infty`):

  .. math::
      \mu(x) = \Theta_{x\mathcal{X}} \Theta^{-1} Y, \qquad
      \Sigma = K_{xx} + \Theta_{x\mathcal{X}} \Theta^{-1} K_{\mathcal{X}\mathcal{X}} \Theta^{-1}
      \Theta_{\mathcal{X}x} - \left(\Theta_{x\mathcal{X}} \Theta^{-1} K_{\mathcal{X}x}
      + \text{h.c.}\right).

* ``'ntkgp'`` -- the posterior of a GP with covariance :math:`\Theta` (He et al. 2020).

References: Lee et al., "Wide Neural Networks of Any Depth Evolve as Linear Models Under Gradient
Descent", NeurIPS 2019 (arXiv:1902.06720); He, Lakshminarayanan, Teh, "Bayesian Deep Ensembles via
the Neural Tangent Kernel", NeurIPS 2020 (arXiv:2007.05864).
"""
from __future__ import annotations

from typing import Any, Optional

import jax.numpy as jnp
import numpy as np

from ..errors import InfntkError
from ..results import canonicalize_get, package
from ._layout import Layout
from ._outputs import GAUSSIANS, Gaussian, get_attr, has_attr
from ._solvers import DEFAULT_MAX_COND, TrainKernel, matmul

_WHERE = "gp_inference"


def gp_inference(k_train_train: Any, y_train: Any, diag_reg: float = 0.,
                 diag_reg_absolute_scale: bool = False, trace_axes: Any = (-1,), *,
                 solver: str = "auto", memory_budget: Optional[float] = None,
                 cg_tol: float = 1e-10, cg_maxiter: Optional[int] = None,
                 max_cond: float = DEFAULT_MAX_COND):
    r"""Posterior mean (and covariance) of the NNGP, NTK or NTK-GP (see the module docstring).

    Args:
        k_train_train: train-train kernel: an array (used for every ``get``), an object with
            ``nngp``/``ntk`` attributes (e.g. ``model.kernel(x, None, get=('nngp', 'ntk'))``), a
            dict, or a :class:`~infntk.predict.KernelOperator` / product callable (means only,
            solved by conjugate gradients). Shape: the sample axes of ``y_train`` (without
            ``trace_axes``) in pairs, e.g. ``(N, N)`` for ``y_train`` of shape ``(N, C)``.
        y_train: training targets, ``(N, C)`` (or ``(N,)`` for one output).
        diag_reg: ridge :math:`\epsilon` added to the training kernel's diagonal.
        diag_reg_absolute_scale: ``False`` (default): :math:`\epsilon` = ``diag_reg`` times the
            mean diagonal of the kernel; ``True``: :math:`\epsilon` = ``diag_reg``.
        trace_axes: axes of ``y_train`` along which the kernel is :math:`\Theta \otimes I`.
        solver: ``'auto'``, ``'cholesky'``, ``'eigh'`` or ``'cg'`` (see
            :func:`~infntk.predict.gradient_descent_mse`).
        memory_budget: bytes allowed for a direct factorization before ``'auto'`` switches to CG.
        cg_tol, cg_maxiter: CG stopping rule (relative residual) and iteration cap.
        max_cond: largest condition number accepted for a solve.

    Returns:
        ``predict_fn(get=None, k_test_train=None, k_test_test=None)``. ``get``: ``'nngp'``,
        ``'ntk'``, ``'ntkgp'`` or a tuple (``None`` = ``('nngp', 'ntk')``). ``k_test_train=None``
        gives training-set outputs, :math:`\mathcal{N}(Y, 0)`. With ``k_test_test`` (any non-None
        value on the training set) the result is a :class:`Gaussian` ``(mean, covariance)``, else
        the mean. A string ``get`` returns the value itself, a tuple a namedtuple
        ``Gaussians`` with one field per entry.

    Raises:
        InfntkError: non-finite entries, a kernel that is not PSD or whose condition number
            exceeds ``max_cond`` (suggests ``diag_reg``), mismatched shapes.

    Example:
        >>> import numpy as np
        >>> from infntk.predict import gp_inference
        >>> x = np.linspace(-1, 1, 5)[:, None]; y = np.sin(3 * x)
        >>> rbf = lambda a, b: np.exp(-(a - b.T) ** 2)
        >>> predict = gp_inference(rbf(x, x), y, diag_reg=1e-6)
        >>> mean, cov = predict('nngp', rbf(x[:2] + .1, x), rbf(x[:2] + .1, x[:2] + .1))
        >>> mean.shape, cov.shape
        ((2, 1), (2, 2))
    """
    layout = Layout(y_train, trace_axes, _WHERE)
    cache: dict = {}

    def train(g: str) -> TrainKernel:
        if g not in cache:
            cache[g] = TrainKernel(get_attr(k_train_train, g, _WHERE, "k_train_train"), layout, diag_reg,
                                   diag_reg_absolute_scale, _WHERE, f"k_train_train.{g}", solver,
                                   memory_budget, cg_tol, cg_maxiter, max_cond)
        return cache[g]

    def k_inv_y(g: str) -> np.ndarray:
        key = ("alpha", g)
        if key not in cache:
            cache[key] = train(g).solve(layout.y2)
        return cache[key]

    def predict_fn(get: Any = None, k_test_train: Any = None, k_test_test: Any = None):
        """Posterior on the test set; see :func:`gp_inference`."""
        single, names = canonicalize_get(get, ("nngp", "ntk", "ntkgp"), _WHERE)
        out = {}
        for g in names:
            k = "ntk" if g == "ntkgp" else g
            if k_test_train is None:
                tk = train(k)
                mean = layout.unflatten_mean(layout.y2, layout.sample_shape)
                if k_test_test is not None:
                    if tk.is_operator:
                        raise InfntkError(f"{_WHERE}: covariances need the kernels as arrays, not operators.")
                    cov = np.zeros((tk.n, tk.n))
                    out[g] = Gaussian(jnp.asarray(mean), jnp.asarray(layout.unflatten_cov(cov, layout.sample_shape)))
                else:
                    out[g] = jnp.asarray(mean)
                continue
            ktd, test_shape = layout.kernel_2d(get_attr(k_test_train, k, _WHERE, "k_test_train"), f"k_test_train.{k}")
            mean2 = ktd @ k_inv_y(k)
            mean = layout.unflatten_mean(mean2, test_shape)
            if k_test_test is None:
                out[g] = jnp.asarray(mean)
                continue
            cov = posterior_cov(g, train, layout, k_train_train, k_test_train, k_test_test, ktd, test_shape)
            out[g] = Gaussian(jnp.asarray(mean), jnp.asarray(layout.unflatten_cov(cov, test_shape)))
        return package(out, single, names, GAUSSIANS)

    return predict_fn


def posterior_cov(g, train, layout, k_train_train, k_test_train, k_test_test, ktd, test_shape) -> np.ndarray:
    """The 2-D test covariance of ``g`` at infinite time (formulas in the module docstring)."""
    g_init = "ntk" if g == "ntkgp" else "nngp"
    if g == "ntk" and not (has_attr(k_train_train, "nngp") and has_attr(k_test_train, "nngp")):
        raise InfntkError(
            f"{_WHERE}: the NTK posterior covariance needs both NNGP and NTK train-train and "
            "test-train kernels: pass objects with `nngp` and `ntk` attributes "
            "(e.g. model.kernel(x1, x2, get=('nngp', 'ntk'))).")
    k = "ntk" if g in ("ntk", "ntkgp") else "nngp"
    tk = train(k)
    if tk.is_operator:
        raise InfntkError(f"{_WHERE}: covariances need the training kernel as an array, not an operator.")
    ktt, _ = layout.kernel_2d(get_attr(k_test_test, g_init, _WHERE, "k_test_test"), f"k_test_test.{g_init}",
                              train_side=False, test_side=test_shape)
    if ktt.shape[1] != ktt.shape[0]:
        raise InfntkError(f"{_WHERE}: `k_test_test` must be square, got {ktt.shape}.")
    kdt_init, _ = layout.kernel_2d(get_attr(k_test_train, g_init, _WHERE, "k_test_train"), f"k_test_train.{g_init}")
    kdt_init = kdt_init.T
    if g in ("nngp", "ntkgp"):
        cov = ktt - ktd @ tk.solve(kdt_init)
    else:
        nngp_dd = train("nngp").dense
        term1 = tk.solve(ktd.T)                       # Theta^{-1} Theta_{X x}
        term2 = ktd @ tk.solve(kdt_init)              # Theta_{x X} Theta^{-1} K_{X x}
        cov = ktt + term1.T @ matmul(nngp_dd, term1) - term2 - term2.T
    return (cov + cov.T) / 2
