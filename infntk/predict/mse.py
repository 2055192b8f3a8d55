r"""Gradient-descent dynamics on MSE in function space, in closed form, and the largest stable step.

Training on :math:`\mathcal{L} = \frac{1}{2 |Y|} \| f(\mathcal{X}) - Y \|^2` (:math:`|Y|` the
number of target entries, ``y_train.size``) by gradient flow with learning rate :math:`\eta`
moves a linearized (or infinitely wide) network's outputs as

.. math::
    \frac{d f_t(x)}{dt} = -\frac{\eta}{|Y|} \Theta_{x\mathcal{X}} (f_t(\mathcal{X}) - Y),

whose solution, with :math:`\Theta = \Theta_{\mathcal{X}\mathcal{X}} + \epsilon I` (ridge
:math:`\epsilon`), is

.. math::
    f_t(\mathcal{X}) &= Y + e^{-\eta t \Theta / |Y|} (f_0(\mathcal{X}) - Y), \\
    f_t(x) &= f_0(x) + \Theta_{x\mathcal{X}} \Theta^{-1}
             \left(I - e^{-\eta t \Theta / |Y|}\right) (Y - f_0(\mathcal{X})).

At :math:`t = \infty` the test outputs are kernel ridge regression,
:math:`f_0(x) + \Theta_{x\mathcal{X}} \Theta^{-1} (Y - f_0(\mathcal{X}))`, and the training
outputs equal :math:`Y` (without ridge, as in neural-tangents). Finite times use the
eigendecomposition :math:`\Theta = V \Lambda V^\top`; the factor
:math:`\Theta^{-1}(I - e^{-s\Theta})` is evaluated as :math:`V\,\mathrm{diag}(s\,\varphi_1(s\lambda))V^\top`
with :math:`\varphi_1(z) = (1 - e^{-z})/z`, finite even for zero eigenvalues. Reference: Jacot et
al. 2018 (arXiv:1806.07572); Lee et al. 2019 (arXiv:1902.06720).
"""
from __future__ import annotations

import math
from typing import Any, Optional

import jax.numpy as jnp
import numpy as np
import scipy.linalg

from ..errors import InfntkError
from ._layout import Layout, to_numpy64
from ._solvers import DEFAULT_MAX_COND, KernelOperator, TrainKernel, as_operator, decay, inv_expm1, matmul

_WHERE = "gradient_descent_mse"


def times(t: Any, learning_rate: float, where: str):
    """``(flat array of eta * t, t.shape)``; negative or non-finite times are errors (inf allowed)."""
    t = np.asarray(t, dtype=np.float64)
    if np.any(np.isnan(t)) or np.any(t < 0):
        raise InfntkError(f"{where}: times `t` must be >= 0 (or None for infinity), got {t}.")
    lr = float(learning_rate)
    if not math.isfinite(lr) or lr <= 0:
        raise InfntkError(f"{where}: `learning_rate` must be a finite positive number, got {learning_rate}.")
    return (t * lr).reshape(-1), t.shape


def gradient_descent_mse(k_train_train: Any, y_train: Any, learning_rate: float = 1.,
                         diag_reg: float = 0., diag_reg_absolute_scale: bool = False,
                         trace_axes: Any = (-1,), *, solver: str = "auto",
                         memory_budget: Optional[float] = None, cg_tol: float = 1e-10,
                         cg_maxiter: Optional[int] = None, max_cond: float = DEFAULT_MAX_COND):
    r"""Outputs of gradient descent on MSE at any time, in closed form (see the module docstring).

    Args:
        k_train_train: the NTK (or any kernel) on the training set, shape ``(N, N)`` for
            ``y_train`` of shape ``(N, C)`` (generally: the non-traced axes of ``y_train`` in
            pairs). Also an operator -- a :class:`~infntk.predict.KernelOperator`, a callable
            ``V -> K @ V``, or an object with ``shape`` and ``matvec`` such as
            ``infntk.tiling.StoredGram`` (a Gram matrix on disk) or a scipy ``LinearOperator``:
            then only ``t=None`` works, by conjugate gradients, never loading the matrix whole.
        y_train: targets, ``(N, C)``, or ``(N,)`` for one output.
        learning_rate: :math:`\eta`; times are in units of steps, absolute time is
            ``learning_rate * t``.
        diag_reg: ridge :math:`\epsilon` on the training kernel (factorizations only).
        diag_reg_absolute_scale: ``True``: :math:`\epsilon` = ``diag_reg``; ``False``:
            ``diag_reg`` times the mean diagonal of the kernel.
        trace_axes: axes of ``y_train`` along which the kernel is :math:`\Theta \otimes I`.
        solver: ``'auto'`` (Cholesky for ``t=None``, eigh for finite ``t``; CG for ``t=None``
            when the factorization would not fit ``memory_budget`` or the kernel is an
            operator), ``'cholesky'``, ``'eigh'`` or ``'cg'``.
        memory_budget: bytes for a direct factorization (``None``: unlimited).
        cg_tol, cg_maxiter: CG relative-residual tolerance and iteration cap (default ``10 N``).
        max_cond: largest condition number accepted for the ``t=None`` solve.

    Returns:
        ``predict_fn(t=None, fx_train_0=0., fx_test_0=None, k_test_train=None)``: ``t`` a scalar
        or an array of any shape (results get its shape as leading axes), ``None`` for infinity;
        ``fx_train_0`` the outputs at ``t=0`` on the training set (``None``: do not return
        training outputs), ``fx_test_0`` on the test set (``None``: no test outputs, then
        ``k_test_train`` is not needed), ``k_test_train`` the test-train kernel (array or
        :class:`~infntk.predict.KernelOperator`). Returns ``fx_train_t``, ``fx_test_t`` or
        ``(fx_train_t, fx_test_t)``.

    Raises:
        InfntkError: non-finite inputs, negative times, non-PSD or ill-conditioned kernels.

    Example:
        >>> import numpy as np
        >>> from infntk.predict import gradient_descent_mse
        >>> x = np.linspace(-1, 1, 4)[:, None]; y = x ** 2
        >>> ntk = 1 + x @ x.T + np.eye(4)
        >>> predict = gradient_descent_mse(ntk, y)
        >>> f_t = predict(t=[0., 1e9], fx_train_0=0.)
        >>> np.allclose(f_t[0], 0), np.allclose(f_t[1], y)
        (True, True)
    """
    layout = Layout(y_train, trace_axes, _WHERE)
    tk = TrainKernel(k_train_train, layout, diag_reg, diag_reg_absolute_scale, _WHERE, "k_train_train",
                     solver, memory_budget, cg_tol, cg_maxiter, max_cond)
    norm = float(layout.y_size)

    def predict_fn(t: Any = None, fx_train_0: Any = 0., fx_test_0: Any = None, k_test_train: Any = None):
        """Train [and test] outputs at time[s] ``t``; see :func:`gradient_descent_mse`."""
        if fx_train_0 is None and fx_test_0 is None:
            raise InfntkError(f"{_WHERE}: both `fx_train_0` and `fx_test_0` are None; nothing to predict.")
        if fx_test_0 is not None and k_test_train is None:
            raise InfntkError(f"{_WHERE}: test predictions (`fx_test_0` given) need `k_test_train`.")
        f0 = None if fx_train_0 is None else layout.flatten_targets(to_numpy64(fx_train_0, "fx_train_0", _WHERE), "fx_train_0")
        ktd = test_shape = ft0 = None
        if fx_test_0 is not None:
            ktd, test_shape = _test_kernel(k_test_train, layout, _WHERE)
            ft0 = layout.flatten_test_targets(fx_test_0, test_shape, "fx_test_0")
        r = layout.y2 - (0.0 if f0 is None else f0)          # Y - f_0(X)

        if t is None:
            ftrain = None if f0 is None else layout.unflatten_mean(layout.y2, layout.sample_shape)
            ftest = None
            if ktd is not None:
                ftest = layout.unflatten_mean(ft0 + matmul(ktd, tk.solve(r)), test_shape)
        else:
            s, t_shape = times(t, learning_rate, _WHERE)
            s = s / norm
            e = tk.eigh()
            ftrain = ftest = None
            if f0 is not None:
                ftrain = layout.y2[None] - e.apply(decay(s, e.lam), r)                # Y - e^{-s Theta} r
                ftrain = layout.unflatten_mean(ftrain, layout.sample_shape, t_shape)
            if ktd is not None:
                _check_inf_time(s, e)
                gfun = inv_expm1(s, e.lam)                                            # Theta^{-1}(1 - e^{-s Theta})
                d = e.apply(gfun, r)                                                  # (T, n, c)
                dt = np.stack([matmul(ktd, d_i) for d_i in d]) if d.shape[0] else np.zeros((0, ft0.shape[0], layout.c))
                ftest = layout.unflatten_mean(ft0[None] + dt, test_shape, t_shape)
        if ftest is None:
            return jnp.asarray(ftrain)
        if ftrain is None:
            return jnp.asarray(ftest)
        return jnp.asarray(ftrain), jnp.asarray(ftest)

    return predict_fn


def _check_inf_time(s: np.ndarray, e) -> None:
    """``t = inf`` through the eigenbasis needs an invertible kernel, like ``t=None``."""
    if np.any(np.isinf(s)):
        e.solve(np.zeros((e.lam.size, 1)))   # raises on singular / ill-conditioned kernels


def _test_kernel(k: Any, layout: Layout, where: str):
    op = as_operator(k, None)
    if op is not None:
        if op.shape[1] != layout.n:
            raise InfntkError(f"{where}: `k_test_train` operator has shape {op.shape}; expected (*, {layout.n}).")
        return op, (op.shape[0],)
    return layout.kernel_2d(k, "k_test_train")


def max_learning_rate(ntk_train_train: Any, y_train_size: Optional[int] = None, momentum: float = 0.,
                      eps: float = 1e-12) -> float:
    r"""The largest learning rate for which full-batch (momentum) gradient descent on MSE is stable.

    With loss :math:`\frac{1}{2 |Y|}\|f - Y\|^2`, a step maps the residual by
    :math:`I - \frac{\eta}{|Y|}\Theta`, a contraction iff :math:`\eta < 2|Y| / \lambda_{max}(\Theta)`;
    with momentum :math:`\beta` the bound is :math:`2(1 + \beta)|Y| / \lambda_{max}` (Goh 2017,
    "Why Momentum Really Works").

    Args:
        ntk_train_train: the NTK on the training set, ``(N, N)`` (or pairs of axes, flattened).
        y_train_size: :math:`|Y|`, ``y_train.size``; ``None``: the kernel's side (one output).
        momentum: :math:`\beta`.
        eps: added to :math:`\lambda_{max}` against division by zero.

    Returns:
        :math:`2(1 + \beta)|Y| / (\lambda_{max} + \mathrm{eps})` as a float.

    Example:
        >>> import numpy as np
        >>> from infntk.predict import max_learning_rate
        >>> round(max_learning_rate(np.diag([1., 4.]), y_train_size=2), 6)
        1.0
    """
    a = to_numpy64(ntk_train_train, "ntk_train_train", "max_learning_rate")
    if a.ndim % 2 or a.ndim == 0:
        raise InfntkError(f"max_learning_rate: `ntk_train_train` needs an even number of axes, got shape {a.shape}.")
    d = a.ndim // 2
    a = np.transpose(a, tuple(range(0, a.ndim, 2)) + tuple(range(1, a.ndim, 2)))
    side = math.prod(a.shape[:d])
    a = a.reshape(side, -1)
    if a.shape[0] != a.shape[1]:
        raise InfntkError(f"max_learning_rate: `ntk_train_train` must be square, got {a.shape}.")
    factor = side if y_train_size is None else int(y_train_size)
    lmax = float(scipy.linalg.eigvalsh(a, subset_by_index=[side - 1, side - 1], check_finite=False)[-1])
    return 2.0 * (1.0 + float(momentum)) * factor / (lmax + eps)


__all__ = ["gradient_descent_mse", "max_learning_rate", "KernelOperator"]
