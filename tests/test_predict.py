"""Tests of infntk.predict against independent routes (matrix exponentials, ODE integration,
textbook formulas, dense solves), all in float64 with a closed-form one-hidden-layer ReLU kernel
written here in numpy (arc-cosine formulas), independent of infntk's layers."""
from __future__ import annotations

import collections

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import scipy.sparse.linalg

from infntk.errors import InfntkError
from infntk.predict import (Gaussian, KernelOperator, gp_inference, gradient_descent_mse,
                            gradient_descent_mse_ensemble, max_learning_rate)

K = collections.namedtuple("K", "nngp ntk")
W_STD, B_STD = 1.5, 0.1


def relu_kernels(x1, x2=None):
    """NNGP and NTK of Dense(W_STD, B_STD) >> Relu >> Dense(W_STD, B_STD), NTK parameterization."""
    x2 = x1 if x2 is None else x2
    d = x1.shape[1]
    k12 = W_STD ** 2 * x1 @ x2.T / d + B_STD ** 2
    k11 = W_STD ** 2 * np.sum(x1 ** 2, 1) / d + B_STD ** 2
    k22 = W_STD ** 2 * np.sum(x2 ** 2, 1) / d + B_STD ** 2
    norm = np.sqrt(np.outer(k11, k22))
    cos = np.clip(k12 / norm, -1, 1)
    th = np.arccos(cos)
    t = norm / (2 * np.pi) * (np.sin(th) + (np.pi - th) * cos)
    tdot = (np.pi - th) / (2 * np.pi)
    nngp = W_STD ** 2 * t + B_STD ** 2
    ntk = nngp + W_STD ** 2 * k12 * tdot
    return nngp, ntk


def kernel_fn(x1, x2=None, get=None):
    nngp, ntk = relu_kernels(x1, x2)
    if isinstance(get, str):
        return {"nngp": nngp, "ntk": ntk}[get]
    return K(nngp, ntk)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x_train = rng.normal(size=(10, 3))
    x_test = rng.normal(size=(4, 3))
    y_train = np.stack([np.sin(x_train[:, 0]), np.cos(x_train[:, 1]), x_train[:, 2]], 1)
    return x_train, x_test, y_train


def _ode_outputs(theta_xx, theta_tx, y, f0, ft0, s_end):
    """Integrate df/ds = -Theta (f_X - y) for train and test outputs (s = eta t / |Y|)."""
    n, c = y.shape

    def rhs(_, z):
        f = z[: n * c].reshape(n, c)
        r = f - y
        return np.concatenate([-(theta_xx @ r).ravel(), -(theta_tx @ r).ravel()])

    z0 = np.concatenate([f0.ravel(), ft0.ravel()])
    sol = scipy.integrate.solve_ivp(rhs, (0, s_end), z0, method="DOP853", rtol=1e-12, atol=1e-12)
    z = sol.y[:, -1]
    return z[: n * c].reshape(n, c), z[n * c:].reshape(-1, c)


# --------------------------------------------------------------------------------------------
# gradient_descent_mse


def test_gd_mse_finite_time_matches_ode_and_expm(data):
    x_train, x_test, y = data
    _, ntk = relu_kernels(x_train)
    _, ntk_tx = relu_kernels(x_test, x_train)
    rng = np.random.default_rng(1)
    f0 = rng.normal(size=y.shape)
    ft0 = rng.normal(size=(4, 3))
    lr, t = 0.7, 5.0
    predict = gradient_descent_mse(ntk, y, learning_rate=lr)
    ftrain, ftest = predict(t, f0, ft0, ntk_tx)
    s = lr * t / y.size
    # route 1: ODE integration
    ode_train, ode_test = _ode_outputs(ntk, ntk_tx, y, f0, ft0, s)
    np.testing.assert_allclose(ftrain, ode_train, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ftest, ode_test, rtol=0, atol=1e-9)
    # route 2: explicit matrix exponential
    e = scipy.linalg.expm(-s * ntk)
    np.testing.assert_allclose(ftrain, y + e @ (f0 - y), atol=1e-11)
    ref_test = ft0 + ntk_tx @ np.linalg.solve(ntk, (np.eye(10) - e) @ (y - f0))
    np.testing.assert_allclose(ftest, ref_test, atol=1e-10)


def test_gd_mse_time_array_shapes_and_zero_time(data):
    x_train, x_test, y = data
    _, ntk = relu_kernels(x_train)
    _, ntk_tx = relu_kernels(x_test, x_train)
    predict = gradient_descent_mse(ntk, y)
    ts = np.array([[0.0, 1.0, 2.0], [3.0, 10.0, 100.0]])
    ftrain, ftest = predict(ts, 0.5, -0.25, ntk_tx)
    assert ftrain.shape == (2, 3, 10, 3) and ftest.shape == (2, 3, 4, 3)
    np.testing.assert_allclose(ftrain[0, 0], 0.5, atol=1e-13)
    np.testing.assert_allclose(ftest[0, 0], -0.25, atol=1e-13)
    for i in range(2):
        for j in range(3):
            a, b = predict(ts[i, j], 0.5, -0.25, ntk_tx)
            np.testing.assert_allclose(ftrain[i, j], a, atol=1e-13)
            np.testing.assert_allclose(ftest[i, j], b, atol=1e-13)
    # only train / only test
    assert predict(1.0, 0.0).shape == (10, 3)
    assert predict(1.0, None, 0.0, ntk_tx).shape == (4, 3)


def test_gd_mse_infinite_time_is_kernel_regression(data):
    x_train, x_test, y = data
    _, ntk = relu_kernels(x_train)
    _, ntk_tx = relu_kernels(x_test, x_train)
    f0 = np.full(y.shape, 0.3)
    predict = gradient_descent_mse(ntk, y)
    ftrain, ftest = predict(None, f0, 0.1, ntk_tx)
    np.testing.assert_allclose(ftrain, y, atol=0)
    np.testing.assert_allclose(ftest, 0.1 + ntk_tx @ np.linalg.solve(ntk, y - f0), atol=1e-10)
    # t -> large converges to t = None; t = inf through the eigenbasis agrees too
    lam_min = np.linalg.eigvalsh(ntk)[0]
    errs = []
    for t in [1e2, 1e3, 1e4]:
        errs.append(float(np.max(np.abs(predict(t, f0, 0.1, ntk_tx)[1] - ftest))))
        bound = np.exp(-lam_min * t / y.size) * np.abs(ntk_tx).sum(1).max() * np.abs(
            np.linalg.solve(ntk, y - f0)).max() * 10 + 1e-10
        assert errs[-1] <= bound
    assert errs[0] > errs[1] > errs[2] or errs[2] < 1e-9
    np.testing.assert_allclose(predict(np.inf, f0, 0.1, ntk_tx)[1], ftest, atol=1e-9)


def test_gd_mse_diag_reg_relative_and_absolute(data):
    x_train, x_test, y = data
    _, ntk = relu_kernels(x_train)
    _, ntk_tx = relu_kernels(x_test, x_train)
    eps_rel = 0.1
    eps_abs = eps_rel * np.trace(ntk) / 10
    a = gradient_descent_mse(ntk, y, diag_reg=eps_rel)(None, None, 0.0, ntk_tx)
    b = gradient_descent_mse(ntk, y, diag_reg=eps_abs, diag_reg_absolute_scale=True)(None, None, 0.0, ntk_tx)
    ref = ntk_tx @ np.linalg.solve(ntk + eps_abs * np.eye(10), y)
    np.testing.assert_allclose(a, ref, atol=1e-11)
    np.testing.assert_allclose(b, ref, atol=1e-11)
    # finite time with ridge: the flow of Theta + eps I
    s = 3.0 / y.size
    e = scipy.linalg.expm(-s * (ntk + eps_abs * np.eye(10)))
    np.testing.assert_allclose(gradient_descent_mse(ntk, y, diag_reg=eps_rel)(3.0, 0.0), (np.eye(10) - e) @ y, atol=1e-11)


def test_gd_mse_multi_output_equals_per_column_and_trace_axes(data):
    x_train, x_test, y = data
    _, ntk = relu_kernels(x_train)
    _, ntk_tx = relu_kernels(x_test, x_train)
    full = gradient_descent_mse(ntk, y)(2.0, 0.0, 0.0, ntk_tx)
    # per column: the normalization |Y| = y.size is shared, so rescale learning rate
    for c in range(3):
        col = gradient_descent_mse(ntk, y[:, c:c + 1], learning_rate=1 / 3)(2.0, 0.0, 0.0, ntk_tx)
        np.testing.assert_allclose(full[0][:, c:c + 1], col[0], atol=1e-12)
        np.testing.assert_allclose(full[1][:, c:c + 1], col[1], atol=1e-12)
    # 1-D targets are one output
    one = gradient_descent_mse(ntk, y[:, 0])(2.0, 0.0, 0.0, ntk_tx)
    ref = gradient_descent_mse(ntk, y[:, :1])(2.0, 0.0, 0.0, ntk_tx)
    np.testing.assert_allclose(one[1], ref[1][:, 0], atol=1e-12)
    assert one[1].shape == (4,)
    # trace_axes=(): the kernel carries the output axis explicitly, Theta (x) I, interleaved
    big = np.einsum("ab,cd->abcd", ntk, np.eye(3))                 # (N, N, C, C): pairs interleaved
    big_tx = np.einsum("ab,cd->abcd", ntk_tx, np.eye(3))
    nt = gradient_descent_mse(big, y, trace_axes=())(2.0, 0.0, 0.0, big_tx)
    np.testing.assert_allclose(nt[0], full[0], atol=1e-11)
    np.testing.assert_allclose(nt[1], full[1], atol=1e-11)


# --------------------------------------------------------------------------------------------
# solvers: CG, memory budget, operators, on-disk Gram matrices


def test_cg_equals_direct(data, tmp_path):
    x_train, x_test, y = data
    rng = np.random.default_rng(2)
    xb = rng.normal(size=(60, 3))
    yb = np.sin(xb[:, :2])
    _, ntk = relu_kernels(xb)
    _, ntk_tx = relu_kernels(x_test, xb)
    direct = gradient_descent_mse(ntk, yb, diag_reg=1e-4)(None, None, 0.0, ntk_tx)
    cg = gradient_descent_mse(ntk, yb, diag_reg=1e-4, solver="cg", cg_tol=1e-12)(None, None, 0.0, ntk_tx)
    np.testing.assert_allclose(cg, direct, rtol=0, atol=1e-8 * np.abs(direct).max())
    # auto switches to CG when the factorization does not fit the budget
    auto = gradient_descent_mse(ntk, yb, diag_reg=1e-4, memory_budget=8 * 60 * 60, cg_tol=1e-12)
    np.testing.assert_allclose(auto(None, None, 0.0, ntk_tx), direct, atol=1e-8 * np.abs(direct).max())
    with pytest.raises(InfntkError, match="memory_budget"):
        auto(1.0, 0.0)
    # a Gram matrix on disk, read in row blocks
    path = tmp_path / "gram.npy"
    np.save(path, ntk)
    mm = np.load(path, mmap_mode="r")
    op = KernelOperator.from_array(mm, block_rows=7)
    np.testing.assert_allclose(op.diagonal, np.diag(ntk))
    disk = gradient_descent_mse(op, yb, diag_reg=1e-4, cg_tol=1e-12)(None, None, 0.0, ntk_tx)
    np.testing.assert_allclose(disk, direct, atol=1e-8 * np.abs(direct).max())
    # a plain product callable with absolute ridge
    eps = 1e-4 * np.trace(ntk) / 60
    fn = gradient_descent_mse(lambda v: ntk @ v, yb, diag_reg=eps, diag_reg_absolute_scale=True, cg_tol=1e-12)
    np.testing.assert_allclose(fn(None, None, 0.0, ntk_tx), direct, atol=1e-8 * np.abs(direct).max())
    with pytest.raises(InfntkError, match="diagonal"):
        gradient_descent_mse(lambda v: ntk @ v, yb, diag_reg=1e-4)
    with pytest.raises(InfntkError, match="eigendecomposition"):
        gradient_descent_mse(op, yb)(1.0, 0.0)
    # duck-typed operators: scipy LinearOperator (no diagonal), infntk.tiling.StoredGram
    lin = scipy.sparse.linalg.aslinearoperator(ntk)
    out = gradient_descent_mse(lin, yb, diag_reg=eps, diag_reg_absolute_scale=True, cg_tol=1e-12)(None, None, 0.0, ntk_tx)
    np.testing.assert_allclose(out, direct, atol=1e-8 * np.abs(direct).max())
    try:
        from infntk.tiling import StoredGram
    except ImportError:  # pragma: no cover - the tiling module is optional here
        StoredGram = None
    if StoredGram is not None:
        gram = StoredGram(mm, block=(16, 16))
        out = gradient_descent_mse(gram, yb, diag_reg=1e-4, cg_tol=1e-12)(None, None, 0.0, StoredGram(ntk_tx))
        np.testing.assert_allclose(out, direct, atol=1e-8 * np.abs(direct).max())
    # gp_inference through CG
    gp_cg = gp_inference(op, yb, diag_reg=1e-4, cg_tol=1e-12)("ntk", ntk_tx)
    np.testing.assert_allclose(gp_cg, direct, atol=1e-8 * np.abs(direct).max())


def test_cg_does_not_converge_raises():
    x = np.linspace(-1, 1, 30)[:, None]
    gram = np.exp(-(x - x.T) ** 2 / 0.5)           # very ill-conditioned
    with pytest.raises(InfntkError, match="diag_reg"):
        gradient_descent_mse(gram, np.sin(x), solver="cg", cg_maxiter=20)(None, None, 0.0, gram[:2])


def test_ensemble_blockwise_cg_equals_direct(data):
    x_train, x_test, y = data
    rng = np.random.default_rng(3)
    xb = rng.normal(size=(40, 3))
    yb = np.cos(xb[:, :1])
    direct = gradient_descent_mse_ensemble(kernel_fn, xb, yb, diag_reg=1e-4)(None, x_test, "ntk")
    # budget below one n x n kernel: row blocks recomputed each CG iteration
    ens = gradient_descent_mse_ensemble(kernel_fn, xb, yb, diag_reg=1e-4, memory_budget=8 * 40 * 30, cg_tol=1e-12)
    np.testing.assert_allclose(ens(None, x_test, "ntk"), direct, atol=1e-8 * np.abs(direct).max())
    with pytest.raises(InfntkError):
        ens(1.0, x_test, "ntk")


# --------------------------------------------------------------------------------------------
# gp_inference


def test_gp_inference_textbook_posterior(data):
    x_train, x_test, y = data
    kdd = kernel_fn(x_train, None, ("nngp", "ntk"))
    ktd = kernel_fn(x_test, x_train, ("nngp", "ntk"))
    ktt = kernel_fn(x_test, None, ("nngp", "ntk"))
    predict = gp_inference(kdd, y, diag_reg=1e-3)
    out = predict(None, ktd, ktt)
    assert out._fields == ("nngp", "ntk")
    eps = 1e-3 * np.trace(kdd.nngp) / 10
    inv = np.linalg.inv(kdd.nngp + eps * np.eye(10))
    np.testing.assert_allclose(out.nngp.mean, ktd.nngp @ inv @ y, atol=1e-10)
    np.testing.assert_allclose(out.nngp.covariance, ktt.nngp - ktd.nngp @ inv @ ktd.nngp.T, atol=1e-10)
    # NTK ensemble at t = inf: mean Theta_tx Theta^-1 y, cov of the linear map of the prior
    eps_t = 1e-3 * np.trace(kdd.ntk) / 10
    a = ktd.ntk @ np.linalg.inv(kdd.ntk + eps_t * np.eye(10))
    lin = np.hstack([-a, np.eye(4)])
    joint = np.block([[kdd.nngp, ktd.nngp.T], [ktd.nngp, ktt.nngp]])
    np.testing.assert_allclose(out.ntk.mean, a @ y, atol=1e-10)
    np.testing.assert_allclose(out.ntk.covariance, lin @ joint @ lin.T, atol=1e-10)
    # NTK-GP: GP posterior with the NTK as covariance
    g = predict("ntkgp", ktd, ktt)
    inv_t = np.linalg.inv(kdd.ntk + eps_t * np.eye(10))
    np.testing.assert_allclose(g.covariance, ktt.ntk - ktd.ntk @ inv_t @ ktd.ntk.T, atol=1e-10)
    # get semantics: string -> value, mean only without k_test_test; training set = N(y, 0)
    m = predict("nngp", ktd.nngp)
    np.testing.assert_allclose(m, out.nngp.mean, atol=1e-12)
    tr = predict(("ntk",), None, True)
    assert tr._fields == ("ntk",)
    np.testing.assert_allclose(tr.ntk.mean, y)
    np.testing.assert_allclose(tr.ntk.covariance, 0)
    with pytest.raises(InfntkError, match="NNGP and NTK"):
        gp_inference(kdd.ntk, y)("ntk", ktd.ntk, ktt.nngp)


# --------------------------------------------------------------------------------------------
# gradient_descent_mse_ensemble


def _ensemble_reference(g, s, kdd, ktd, ktt, y, eps):
    """Mean/cov by pushing the prior N(0, joint NNGP) through the exact linear map f_0 -> f_t."""
    theta = (kdd.ntk if g == "ntk" else kdd.nngp) + eps * np.eye(len(y))
    theta_tx = ktd.ntk if g == "ntk" else ktd.nngp
    n, m = kdd.nngp.shape[0], ktt.nngp.shape[0]
    e = scipy.linalg.expm(-s * theta)
    a = theta_tx @ np.linalg.solve(theta, np.eye(n) - e)
    # NNGP: the ridge is observation noise, part of the prior on the training outputs (as in
    # neural-tangents and the GP posterior at t = inf); NTK: the prior is the plain NNGP.
    prior_dd = kdd.nngp + (eps * np.eye(n) if g == "nngp" else 0)
    joint = np.block([[prior_dd, ktd.nngp.T], [ktd.nngp, ktt.nngp]])
    lin_test = np.hstack([-a, np.eye(m)])
    lin_train = np.hstack([e, np.zeros((n, m))])
    return (a @ y, lin_test @ joint @ lin_test.T, (np.eye(n) - e) @ y, lin_train @ joint @ lin_train.T)


@pytest.mark.parametrize("g", ["nngp", "ntk"])
def test_ensemble_finite_time_matches_linear_map_of_prior(data, g):
    x_train, x_test, y = data
    kdd = kernel_fn(x_train, None, ("nngp", "ntk"))
    ktd = kernel_fn(x_test, x_train, ("nngp", "ntk"))
    ktt = kernel_fn(x_test, None, ("nngp", "ntk"))
    lr, ts = 0.5, np.array([0.3, 4.0, 40.0])
    predict = gradient_descent_mse_ensemble(kernel_fn, x_train, y, learning_rate=lr, diag_reg=1e-2)
    out = predict(ts, x_test, g, compute_cov=True)
    out_train = predict(ts, None, g, compute_cov=True)
    assert isinstance(out, Gaussian) and out.mean.shape == (3, 4, 3) and out.covariance.shape == (3, 4, 4)
    theta = kdd.ntk if g == "ntk" else kdd.nngp
    eps = 1e-2 * np.trace(theta) / 10
    for i, t in enumerate(ts):
        mt, ct, mtr, ctr = _ensemble_reference(g, lr * t / y.size, kdd, ktd, ktt, y, eps)
        np.testing.assert_allclose(out.mean[i], mt, atol=1e-10)
        np.testing.assert_allclose(out.covariance[i], ct, atol=1e-10)
        np.testing.assert_allclose(out_train.mean[i], mtr, atol=1e-10)
        np.testing.assert_allclose(out_train.covariance[i], ctr, atol=1e-10)
        assert np.linalg.eigvalsh(np.asarray(out.covariance[i])).min() > -1e-10
        assert np.linalg.eigvalsh(np.asarray(out_train.covariance[i])).min() > -1e-10


def test_ensemble_nngp_train_covariance_without_ridge(data):
    x_train, _, y = data
    kdd = kernel_fn(x_train, None, ("nngp", "ntk"))
    s = 2.0 / y.size
    out = gradient_descent_mse_ensemble(kernel_fn, x_train, y)(2.0, None, "nngp", compute_cov=True)
    e = scipy.linalg.expm(-s * kdd.nngp)
    np.testing.assert_allclose(out.covariance, e @ kdd.nngp @ e, atol=1e-10)


def test_ensemble_infinite_time_consistency(data):
    x_train, x_test, y = data
    predict = gradient_descent_mse_ensemble(kernel_fn, x_train, y, diag_reg=1e-3)
    inf = predict(None, x_test, None, compute_cov=True)
    assert inf._fields == ("nngp", "ntk")
    kdd = kernel_fn(x_train, None, ("nngp", "ntk"))
    gp = gp_inference(kdd, y, diag_reg=1e-3)(None, kernel_fn(x_test, x_train, ("nngp", "ntk")),
                                              kernel_fn(x_test, None, ("nngp", "ntk")))
    big = predict(np.array([np.inf, 1e7]), x_test, None, compute_cov=True)
    for g in ("nngp", "ntk"):
        np.testing.assert_allclose(getattr(inf, g).mean, getattr(gp, g).mean, atol=1e-12)
        np.testing.assert_allclose(getattr(inf, g).covariance, getattr(gp, g).covariance, atol=1e-12)
        for i in range(2):
            np.testing.assert_allclose(getattr(big, g).mean[i], getattr(inf, g).mean, atol=1e-8)
            np.testing.assert_allclose(getattr(big, g).covariance[i], getattr(inf, g).covariance, atol=1e-8)
        assert np.linalg.eigvalsh(np.asarray(getattr(inf, g).covariance)).min() > -1e-10
    # training set at t = None: the targets, zero covariance
    tr = predict(None, None, "ntk", compute_cov=True)
    np.testing.assert_allclose(tr.mean, y)
    np.testing.assert_allclose(tr.covariance, 0)
    # mean only, tuple get
    m = predict(2.0, x_test, ("ntk",))
    assert m._fields == ("ntk",) and m.ntk.shape == (4, 3)


def test_ensemble_accepts_model_objects_and_kwargs(data):
    x_train, x_test, y = data
    calls = []

    class Model:
        def kernel(self, x1, x2=None, get=None, scale=1.0):
            calls.append(scale)
            out = kernel_fn(x1, x2, get)
            return out * scale if isinstance(get, str) else K(out.nngp * scale, out.ntk * scale)

    a = gradient_descent_mse_ensemble(Model(), x_train, y, scale=2.0)(1.0, x_test, "nngp")
    b = gradient_descent_mse_ensemble(kernel_fn, x_train, y, learning_rate=2.0)(1.0, x_test, "nngp")
    np.testing.assert_allclose(a, b, atol=1e-11)   # K -> 2K is time -> 2 t for the mean
    assert set(calls) == {2.0}


# --------------------------------------------------------------------------------------------
# max_learning_rate


def test_max_learning_rate_is_the_stability_edge(data):
    x_train, _, y = data
    _, ntk = relu_kernels(x_train)
    lr = max_learning_rate(ntk, y_train_size=y.size)
    np.testing.assert_allclose(lr, 2 * y.size / np.linalg.eigvalsh(ntk)[-1], rtol=1e-12)
    assert max_learning_rate(ntk, momentum=0.5) == pytest.approx(1.5 * 2 * 10 / np.linalg.eigvalsh(ntk)[-1])

    def run(eta, steps=400):                 # discrete GD in function space
        f = np.zeros_like(y)
        for _ in range(steps):
            f = f - eta / y.size * ntk @ (f - y)
        return np.abs(f - y).max()

    assert run(0.98 * lr) < run(0.98 * lr, 10) and np.isfinite(run(0.98 * lr))
    assert run(1.02 * lr) > 1e3


# --------------------------------------------------------------------------------------------
# errors


def test_ill_conditioned_kernel_raises_with_condition_number(data):
    x_train, x_test, y = data
    xd = np.concatenate([x_train, x_train[:1]])                    # duplicate input
    yd = np.concatenate([y, y[:1] + 0.1])
    nngp, _ = relu_kernels(xd)
    nngp_tx, _ = relu_kernels(x_test, xd)
    with pytest.raises(InfntkError, match=r"(condition number|positive semi-definite).*diag_reg|diag_reg"):
        gradient_descent_mse(nngp, yd)(None, None, 0.0, nngp_tx)
    try:
        gp_inference(nngp, yd)("nngp", nngp_tx)
    except InfntkError as e:
        msg = str(e)
        assert "diag_reg" in msg and ("condition number" in msg or "eigenvalue" in msg)
    else:
        raise AssertionError("no error")
    # a finite time is well posed even for a singular kernel
    out = gradient_descent_mse(nngp, yd)(10.0, 0.0, 0.0, nngp_tx)
    assert all(np.all(np.isfinite(o)) for o in out)
    # and diag_reg fixes t = None
    ok = gradient_descent_mse(nngp, yd, diag_reg=1e-6)(None, None, 0.0, nngp_tx)
    assert np.all(np.isfinite(ok))
    # near-singular but valid: condition number above max_cond
    x = np.linspace(-1, 1, 25)[:, None]
    rbf = np.exp(-(x - x.T) ** 2)
    with pytest.raises(InfntkError, match="condition number"):
        gp_inference(rbf, np.sin(x))("nngp", rbf[:2])
    with pytest.raises(InfntkError, match="condition number"):
        gradient_descent_mse_ensemble(lambda a, b=None, get=None: np.exp(-(a - (a if b is None else b).T) ** 2),
                                      x, np.sin(x))(np.inf, x[:2], "nngp")


def test_non_psd_and_non_symmetric_kernels_raise(data):
    x_train, x_test, y = data
    _, ntk = relu_kernels(x_train)
    lam, v = np.linalg.eigh(ntk)
    lam[0] = -0.5
    bad = v @ np.diag(lam) @ v.T
    with pytest.raises(InfntkError, match=r"most negative eigenvalue -0\.5"):
        gradient_descent_mse(bad, y)(None, None, 0.0, ntk[:2])
    with pytest.raises(InfntkError, match=r"most negative eigenvalue -0\.5"):
        gradient_descent_mse(bad, y)(1.0, 0.0)
    with pytest.raises(InfntkError, match="not positive definite|curvature"):
        gradient_descent_mse(bad, y, solver="cg")(None, None, 0.0, ntk[:2])
    asym = ntk.copy()
    asym[0, 1] += 1.0
    with pytest.raises(InfntkError, match="not symmetric"):
        gradient_descent_mse(asym, y)(None, None, 0.0, ntk[:2])


def test_nan_inf_inputs_raise(data):
    x_train, x_test, y = data
    _, ntk = relu_kernels(x_train)
    k = ntk.copy()
    k[2, 3] = np.nan
    with pytest.raises(InfntkError, match="NaN"):
        gradient_descent_mse(k, y)
    yb = y.copy()
    yb[0, 0] = np.inf
    with pytest.raises(InfntkError, match="y_train.*infinite"):
        gp_inference(ntk, yb)
    with pytest.raises(InfntkError, match="fx_train_0"):
        gradient_descent_mse(ntk, y)(1.0, np.full(y.shape, np.nan))
    with pytest.raises(InfntkError, match="k_test_train"):
        gradient_descent_mse(ntk, y)(1.0, 0.0, 0.0, np.full((2, 10), np.inf))
    with pytest.raises(InfntkError, match="NaN"):
        gradient_descent_mse_ensemble(lambda a, b=None, get=None: np.full((len(a), len(a if b is None else b)), np.nan),
                                      x_train, y)(None, x_test, "nngp")
    with pytest.raises(InfntkError, match=">= 0"):
        gradient_descent_mse(ntk, y)(-1.0, 0.0)
    with pytest.raises(InfntkError, match="k_test_train"):
        gradient_descent_mse(ntk, y)(1.0, 0.0, 0.0)
    with pytest.raises(InfntkError, match="shape"):
        gradient_descent_mse(ntk[:5, :5], y)
    with pytest.raises(InfntkError, match="get"):
        gradient_descent_mse_ensemble(kernel_fn, x_train, y)(None, x_test, "foo")


# --------------------------------------------------------------------------------------------
# with infntk's own models


def test_real_models_agree_with_closed_form(data):
    import infntk as nk
    from infntk import stax
    x_train, x_test, y = data
    model = nk.Dense(512, W_std=W_STD, b_std=B_STD) >> nk.Relu() >> nk.Dense(1, W_std=W_STD, b_std=B_STD)
    _, _, stax_kernel_fn = stax.serial(stax.Dense(512, W_std=W_STD, b_std=B_STD), stax.Relu(),
                                      stax.Dense(1, W_std=W_STD, b_std=B_STD))
    ref = gradient_descent_mse_ensemble(kernel_fn, x_train, y, diag_reg=1e-3)
    for kf in (model.kernel, model, stax_kernel_fn):
        pred = gradient_descent_mse_ensemble(kf, x_train, y, diag_reg=1e-3)
        for t in (None, 3.0):
            a = pred(t, x_test, None, compute_cov=True)
            b = ref(t, x_test, None, compute_cov=True)
            for g in ("nngp", "ntk"):
                # ~1e-8 relative: the engine's arccos at rho ~ 1 (diagonal entries), see test_sklearn
                np.testing.assert_allclose(getattr(a, g).mean, getattr(b, g).mean, rtol=1e-6, atol=1e-8)
                np.testing.assert_allclose(getattr(a, g).covariance, getattr(b, g).covariance, rtol=1e-6, atol=1e-8)
    # kernel objects straight from the model into gp_inference
    kdd = model.kernel(x_train, None, get=("nngp", "ntk"))
    ktd = model.kernel(x_test, x_train, get=("nngp", "ntk"))
    ktt = model.kernel(x_test, None, get=("nngp", "ntk"))
    out = gp_inference(kdd, y, diag_reg=1e-3)(("ntk",), ktd, ktt)
    np.testing.assert_allclose(out.ntk.mean, ref(None, x_test, "ntk"), rtol=1e-6, atol=1e-8)
