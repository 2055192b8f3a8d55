"""infntk.predict against neural_tangents.predict 0.6.5: same kernels in, predictions compared.

Both libraries get neural-tangents' own kernels (of one small network), so only the prediction
code is compared: ensemble mean and covariance of gradient descent on MSE at several times and at
infinity (NNGP and NTK), the function-space dynamics ``gradient_descent_mse``, and GP inference.
Bar 1e-8 in float64, relative to an honest per-array scale: means are linear in y_train, so their
scale is max|mean| of the reference; covariances are PSD, so each entry's scale is its
Cauchy-Schwarz bound sqrt(C_ii C_jj).
"""
from __future__ import annotations

import importlib.util

import neural_tangents as nt
import numpy as np
import pytest
from neural_tangents import stax

from _compare import describe, relative_errors

pytestmark = pytest.mark.skipif(importlib.util.find_spec("infntk.predict") is None,
                                reason="infntk.predict does not exist yet")
RTOL = 1e-8
TIMES = (0.0, 0.3, 2.5, 40.0, None)  # None: t = infinity
DIAG_REG = 1e-3
LR = 0.7


@pytest.fixture(scope="module")
def data():
    _, _, kernel_fn = stax.serial(stax.Dense(64, W_std=1.5, b_std=0.2), stax.Erf(),
                                  stax.Dense(64, W_std=1.3, b_std=0.1), stax.Relu(),
                                  stax.Dense(1, W_std=1.1, b_std=0.05))
    rng = np.random.default_rng(0)
    x_train, x_test = rng.normal(size=(8, 4)), rng.normal(size=(5, 4))
    y_train = rng.normal(size=(8, 2))
    return kernel_fn, x_train, x_test, y_train


def _close_mean(name, got, ref):
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, (name, got.shape, ref.shape)
    scale = np.full(ref.shape, np.max(np.abs(ref)))
    assert np.max(relative_errors(got, ref, scale)) <= RTOL, describe(name, got, ref, scale, RTOL)


def _close_cov(name, got, ref):
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, (name, got.shape, ref.shape)
    d = np.abs(np.diag(ref))
    scale = np.maximum(np.sqrt(d[:, None] * d[None, :]), 1e-300)
    # at t = 0 the posterior covariance is the prior's; at t -> inf the train block collapses
    # (near-zero diagonal): then fall back to the array's largest entry.
    scale = np.maximum(scale, 1e-6 * np.max(np.abs(ref)))
    assert np.max(relative_errors(got, ref, scale)) <= RTOL, describe(name, got, ref, scale, RTOL)


@pytest.mark.parametrize("t", TIMES, ids=str)
@pytest.mark.parametrize("get", ["nngp", "ntk"])
def test_gradient_descent_mse_ensemble(data, get, t):
    from infntk.predict import gradient_descent_mse_ensemble
    kernel_fn, x_train, x_test, y_train = data
    ref_fn = nt.predict.gradient_descent_mse_ensemble(kernel_fn, x_train, y_train,
                                                      learning_rate=LR, diag_reg=DIAG_REG)
    got_fn = gradient_descent_mse_ensemble(kernel_fn, x_train, y_train, learning_rate=LR,
                                           diag_reg=DIAG_REG)
    for x in (x_test, None):
        ref = ref_fn(t=t, x_test=x, get=get, compute_cov=True)
        got = got_fn(t=t, x_test=x, get=get, compute_cov=True)
        where = f"{get} t={t} x_test={'given' if x is not None else 'None'}"
        _close_mean(f"mean {where}", got.mean, ref.mean)
        _close_cov(f"covariance {where}", got.covariance, ref.covariance)


@pytest.mark.parametrize("t", TIMES, ids=str)
def test_gradient_descent_mse(data, t):
    from infntk.predict import gradient_descent_mse
    kernel_fn, x_train, x_test, y_train = data
    k_tt = np.asarray(kernel_fn(x_train, None, "ntk"))
    k_st = np.asarray(kernel_fn(x_test, x_train, "ntk"))
    rng = np.random.default_rng(5)
    fx_train_0, fx_test_0 = rng.normal(size=y_train.shape), rng.normal(size=(5, 2))
    ref = nt.predict.gradient_descent_mse(k_tt, y_train, learning_rate=LR, diag_reg=DIAG_REG)(
        t, fx_train_0, fx_test_0, k_st)
    got = gradient_descent_mse(k_tt, y_train, learning_rate=LR, diag_reg=DIAG_REG)(
        t, fx_train_0, fx_test_0, k_st)
    _close_mean(f"fx_train t={t}", got[0], ref[0])
    _close_mean(f"fx_test t={t}", got[1], ref[1])


@pytest.mark.parametrize("get", ["nngp", "ntk"])
def test_gp_inference(data, get):
    from infntk.predict import gp_inference
    kernel_fn, x_train, x_test, y_train = data
    k_tt = kernel_fn(x_train, None, ("nngp", "ntk"))
    k_st = kernel_fn(x_test, x_train, ("nngp", "ntk"))
    k_ss = kernel_fn(x_test, None, "nngp")
    ref = nt.predict.gp_inference(k_tt, y_train, diag_reg=DIAG_REG)(get, k_st, k_ss)
    got = gp_inference(k_tt, y_train, diag_reg=DIAG_REG)(get, k_st, k_ss)
    _close_mean(f"gp mean {get}", got.mean, ref.mean)
    _close_cov(f"gp covariance {get}", got.covariance, ref.covariance)
