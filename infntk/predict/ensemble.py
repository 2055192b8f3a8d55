r"""Mean and covariance of an infinite ensemble of infinitely wide networks trained by GD on MSE.

At initialization an infinitely wide network is a centred GP with covariance :math:`K` (the
NNGP); trained by gradient flow on :math:`\frac{1}{2|Y|}\|f(\mathcal{X}) - Y\|^2` it evolves
linearly with the NTK :math:`\Theta` (see :mod:`infntk.predict.mse`). Marginalizing the
initialization gives a Gaussian at every time (Lee et al. 2019, eqs. 14--16). With
:math:`s = \eta t / |Y|`, :math:`\Theta = \Theta_{\mathcal{X}\mathcal{X}} + \epsilon I`,
:math:`A_s = \Theta^{-1}(I - e^{-s\Theta})`:

.. math::
    \mu_t(x) &= \Theta_{x\mathcal{X}} A_s Y, \\
    \Sigma_t(x, x') &= K_{xx'} + \Theta_{x\mathcal{X}} A_s K_{\mathcal{X}\mathcal{X}} A_s
        \Theta_{\mathcal{X}x'} - \left(\Theta_{x\mathcal{X}} A_s K_{\mathcal{X}x'}
        + \Theta_{x'\mathcal{X}} A_s K_{\mathcal{X}x}\right).

``get='nngp'`` is the same with :math:`\Theta \to K` (only the last layer trained), where the
covariance simplifies to :math:`K_{xx'} - K_{x\mathcal{X}} K^{-1}(I - e^{-2sK}) K_{\mathcal{X}x'}`
and at :math:`t = \infty` is the exact Bayesian posterior. With a ridge :math:`\epsilon`, the NNGP
case reads it as observation noise (the prior on the training outputs is :math:`K + \epsilon I`,
as in neural-tangents and the GP posterior), the NTK case only as a change of the dynamics. On the training inputs themselves
(``x_test=None``) :math:`\mu_t = (I - e^{-s\Theta})Y` and
:math:`\Sigma_t = e^{-s\Theta} K e^{-s\Theta}` (NTK) or :math:`K e^{-2sK}` (NNGP).

Reference: Lee, Xiao, Schoenholz, Bahri, Novak, Sohl-Dickstein, Pennington, "Wide Neural Networks
of Any Depth Evolve as Linear Models Under Gradient Descent", NeurIPS 2019 (arXiv:1902.06720).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import jax.numpy as jnp
import numpy as np

from ..errors import InfntkError
from ..results import canonicalize_get, package
from ._layout import Layout, to_numpy64
from ._outputs import GAUSSIANS, Gaussian
from ._solvers import DEFAULT_MAX_COND, KernelOperator, TrainKernel, decay, inv_expm1
from .gp import posterior_cov
from .mse import times

_WHERE = "gradient_descent_mse_ensemble"


def call_kernel(kernel_fn, x1, x2, names: Tuple[str, ...], kwargs: dict) -> Dict[str, Any]:
    """``{name: kernel}`` from one ``kernel_fn`` call (a str ``get`` for one name, a tuple for two)."""
    try:
        r = kernel_fn(x1, x2, get=names[0] if len(names) == 1 else names, **kwargs)
    except InfntkError:
        raise
    out = {}
    for g in names:
        if isinstance(r, dict):
            v = r.get(g)
        elif len(names) == 1 and hasattr(r, "shape") and not hasattr(r, g):
            v = r
        else:
            v = getattr(r, g, None)
        if v is None:
            raise InfntkError(f"{_WHERE}: `kernel_fn(..., get={names})` returned no `{g}` kernel.")
        out[g] = v
    return out


def _needed(names: Tuple[str, ...], compute_cov: bool) -> Tuple[str, ...]:
    need = ()
    if "nngp" in names or ("ntk" in names and compute_cov):
        need += ("nngp",)
    if "ntk" in names:
        need += ("ntk",)
    return need


def gradient_descent_mse_ensemble(kernel_fn: Any, x_train: Any, y_train: Any, learning_rate: float = 1.,
                                  diag_reg: float = 0., diag_reg_absolute_scale: bool = False,
                                  trace_axes: Any = (-1,), *, solver: str = "auto",
                                  memory_budget: Optional[float] = None, cg_tol: float = 1e-10,
                                  cg_maxiter: Optional[int] = None, max_cond: float = DEFAULT_MAX_COND,
                                  **kernel_fn_train_train_kwargs):
    r"""Gaussian outputs of an infinite ensemble of infinite-width networks trained by GD on MSE.

    Args:
        kernel_fn: ``kernel_fn(x1, x2, get=...)`` returning an array for a string ``get`` and an
            object with ``nngp``/``ntk`` attributes for a tuple -- e.g. ``model.kernel`` or the
            third element of an ``infntk.stax`` triple. A model object with a ``.kernel``
            method is accepted too.
        x_train: training inputs.
        y_train: training targets, ``(N, C)`` (or ``(N,)`` for one output).
        learning_rate: :math:`\eta` (absolute time is ``learning_rate * t``).
        diag_reg, diag_reg_absolute_scale: ridge on the training kernels, as in
            :func:`~infntk.predict.gradient_descent_mse`.
        trace_axes: axes of ``y_train`` along which kernels are :math:`\Theta \otimes I`.
        solver, memory_budget, cg_tol, cg_maxiter, max_cond: as in
            :func:`~infntk.predict.gradient_descent_mse`. When a Cholesky factorization would not
            fit ``memory_budget`` bytes, ``t=None`` uses conjugate gradients; if even the
            training kernel would not fit, its products are computed in row blocks of
            ``kernel_fn(x_train[i:j], x_train)`` on every CG iteration (means only).
        **kernel_fn_train_train_kwargs: passed to every ``kernel_fn`` call.

    Returns:
        ``predict_fn(t=None, x_test=None, get=None, compute_cov=False, **kernel_fn_test_test_kwargs)``.
        ``t``: scalar or array (its shape leads the outputs), ``None`` = infinity. ``x_test``:
        ``None`` gives the unregularized training-set outputs. ``get``: ``'nngp'``, ``'ntk'`` or
        a tuple (``None`` = both). With ``compute_cov`` each entry is a :class:`Gaussian`
        ``(mean, covariance)``, else the mean. A string ``get`` returns the value itself, a
        tuple a namedtuple ``Gaussians``. Test-time keyword arguments override the
        train-time ones for the test-train and test-test kernel calls.

    Example:
        >>> import numpy as np
        >>> from infntk.predict import gradient_descent_mse_ensemble
        >>> def kernel_fn(x1, x2=None, get='ntk'):
        ...     x2 = x1 if x2 is None else x2
        ...     k = {'nngp': 1 + x1 @ x2.T, 'ntk': 2 * (1 + x1 @ x2.T)}
        ...     return k[get] if isinstance(get, str) else type('K', (), k)
        >>> x = np.array([[-1.], [0.], [1.]]); y = np.array([[1.], [0.], [1.]])
        >>> predict = gradient_descent_mse_ensemble(kernel_fn, x, y, diag_reg=1e-3)
        >>> mean, cov = predict(t=1., x_test=x[:2] / 2, get='ntk', compute_cov=True)
        >>> mean.shape, cov.shape
        ((2, 1), (2, 2))
    """
    if not callable(kernel_fn) and hasattr(kernel_fn, "kernel"):
        kernel_fn = kernel_fn.kernel
    if not callable(kernel_fn):
        raise InfntkError(f"{_WHERE}: `kernel_fn` must be callable (e.g. model.kernel), got {type(kernel_fn).__name__}.")
    layout = Layout(y_train, trace_axes, _WHERE)
    norm = float(layout.y_size)
    kdd_raw: Dict[str, Any] = {}
    trains: Dict[str, TrainKernel] = {}
    tk_args = (layout, diag_reg, diag_reg_absolute_scale, _WHERE)
    tk_kwargs = dict(solver=solver, memory_budget=memory_budget, cg_tol=cg_tol, cg_maxiter=cg_maxiter,
                     max_cond=max_cond)

    def blockwise(g: str) -> bool:
        """Whether the training kernel itself is too big for the budget (then: row blocks + CG)."""
        return memory_budget is not None and 8.0 * layout.n ** 2 > float(memory_budget)

    def train_kernels(names: Tuple[str, ...], dense: bool) -> None:
        missing = tuple(g for g in names if g not in kdd_raw)
        if dense and any(isinstance(kdd_raw.get(g), KernelOperator) for g in names):
            raise InfntkError(
                f"{_WHERE}: finite times and covariances need the whole training kernel, which does not "
                f"fit memory_budget={memory_budget:.3g} bytes; raise it or ask for t=None means only.")
        if not missing:
            return
        if not dense and all(blockwise(g) for g in missing):
            for g in missing:
                kdd_raw[g] = _block_operator(kernel_fn, x_train, g, layout, memory_budget, kernel_fn_train_train_kwargs)
        else:
            kdd_raw.update(call_kernel(kernel_fn, x_train, None, missing, kernel_fn_train_train_kwargs))

    def train(g: str) -> TrainKernel:
        if g not in trains:
            trains[g] = TrainKernel(kdd_raw[g], *tk_args, f"kernel_fn(x_train, None, '{g}')", **tk_kwargs)
        return trains[g]

    def predict_fn(t: Any = None, x_test: Any = None, get: Any = None, compute_cov: bool = False,
                   **kernel_fn_test_test_kwargs):
        """Mean [and covariance] at time[s] ``t``; see :func:`gradient_descent_mse_ensemble`."""
        single, names = canonicalize_get(get, ("nngp", "ntk"), _WHERE)
        need = _needed(names, compute_cov)
        finite = t is not None
        train_kernels(need, dense=finite or compute_cov)
        kw = {**kernel_fn_train_train_kwargs, **kernel_fn_test_test_kwargs}
        ktd_raw = ntt_raw = None
        if x_test is not None:
            ktd_raw = call_kernel(kernel_fn, x_test, x_train, need, kw)
            if compute_cov:
                ntt_raw = call_kernel(kernel_fn, x_test, None, ("nngp",), kw)
        out = {}
        if not finite:
            for g in names:
                out[g] = _infinite(g, layout, train, kdd_raw, ktd_raw, ntt_raw, compute_cov)
            return package(out, single, names, GAUSSIANS)

        s, t_shape = times(t, learning_rate, _WHERE)
        s = s / norm
        for g in names:
            out[g] = _finite(g, s, t_shape, layout, train, ktd_raw, ntt_raw, compute_cov)
        return package(out, single, names, GAUSSIANS)

    return predict_fn


def _infinite(g, layout, train, kdd_raw, ktd_raw, ntt_raw, compute_cov):
    if ktd_raw is None:
        mean = jnp.asarray(layout.unflatten_mean(layout.y2, layout.sample_shape))
        if not compute_cov:
            return mean
        return Gaussian(mean, jnp.asarray(layout.unflatten_cov(np.zeros((layout.n, layout.n)), layout.sample_shape)))
    tk = train(g)
    ktd, test_shape = layout.kernel_2d(ktd_raw[g], f"kernel_fn(x_test, x_train, '{g}')")
    mean = jnp.asarray(layout.unflatten_mean(ktd @ tk.solve(layout.y2), test_shape))
    if not compute_cov:
        return mean
    cov = posterior_cov(g, train, layout, kdd_raw, ktd_raw, ntt_raw, ktd, test_shape)
    return Gaussian(mean, jnp.asarray(layout.unflatten_cov(cov, test_shape)))


def _finite(g, s, t_shape, layout, train, ktd_raw, ntt_raw, compute_cov):
    tk = train(g)
    e = tk.eigh()
    if np.any(np.isinf(s)):
        e.solve(np.zeros((e.lam.size, 1)))          # t = inf needs an invertible kernel
    vy = e.v.T @ layout.y2                           # (n, c)
    if ktd_raw is None:
        shape = layout.sample_shape
        gm = -np.expm1(-np.where(np.isinf(s)[:, None], np.inf, np.outer(s, e.lam)))  # 1 - e^{-s lam}
        gm = np.where(e.lam[None, :] > 0, gm, 0.0)
        mean = np.einsum("ij,tj,jc->tic", e.v, gm, vy, optimize=True)
    else:
        ktd, shape = layout.kernel_2d(ktd_raw[g], f"kernel_fn(x_test, x_train, '{g}')")
        w = ktd @ e.v                                 # (m, n)
        mean = np.einsum("ij,tj,jc->tic", w, inv_expm1(s, e.lam), vy, optimize=True)
    mean = jnp.asarray(layout.unflatten_mean(mean, shape, t_shape))
    if not compute_cov:
        return mean

    nngp_dd = train("nngp").dense
    if ktd_raw is None:
        if g == "nngp":
            cov = np.einsum("ij,tj,kj->tik", e.v, e.lam[None, :] * decay(2 * s, e.lam), e.v, optimize=True)
        else:
            ex = np.einsum("ij,tj,kj->tik", e.v, decay(s, e.lam), e.v, optimize=True)
            cov = ex @ nngp_dd @ ex
    else:
        ntt, _ = layout.kernel_2d(ntt_raw["nngp"], "kernel_fn(x_test, None, 'nngp')", train_side=False, test_side=shape)
        if g == "nngp":
            cov = ntt[None] - np.einsum("ij,tj,kj->tik", w, inv_expm1(2 * s, e.lam), w, optimize=True)
        else:
            kdt, _ = layout.kernel_2d(ktd_raw["nngp"], "kernel_fn(x_test, x_train, 'nngp')")
            kdt = kdt.T                                                           # (n, m)
            a = np.einsum("ij,tj,kj->tik", e.v, inv_expm1(s, e.lam), e.v, optimize=True)   # A_s (T, n, n)
            term1 = a @ ktd.T                                                     # A_s Theta_{X x}
            term2 = np.einsum("mi,tik->tmk", ktd, a @ kdt)                        # Theta_{xX} A_s K_{Xx}
            cov = ntt[None] + np.swapaxes(term1, 1, 2) @ nngp_dd @ term1 - term2 - np.swapaxes(term2, 1, 2)
    cov = (cov + np.swapaxes(cov, -1, -2)) / 2
    return Gaussian(mean, jnp.asarray(layout.unflatten_cov(cov, shape, t_shape)))


def _block_operator(kernel_fn, x_train, g, layout, memory_budget, kwargs) -> KernelOperator:
    """Products with ``kernel_fn(x_train, x_train, g)`` computed in row blocks, never held whole."""
    if len(layout.sample_shape) != 1:
        raise InfntkError(f"{_WHERE}: block-wise training kernels need 2-D kernels (default trace_axes).")
    x = x_train
    n = layout.n
    rows = max(1, int(float(memory_budget) // (8.0 * n * 4)))

    def block(i: int) -> np.ndarray:
        k = call_kernel(kernel_fn, x[i:i + rows], x, (g,), kwargs)[g]
        return to_numpy64(k, f"kernel_fn(x_train[{i}:{i + rows}], x_train, '{g}')", _WHERE)

    diag = np.empty(n)
    for i in range(0, n, rows):
        b = block(i)
        diag[i:i + b.shape[0]] = b[np.arange(b.shape[0]), i + np.arange(b.shape[0])]

    def matvec(v: np.ndarray) -> np.ndarray:
        out = np.empty((n,) + v.shape[1:])
        for i in range(0, n, rows):
            out[i:i + rows] = block(i) @ v
        return out

    return KernelOperator(matvec=matvec, shape=(n, n), diagonal=diag)
