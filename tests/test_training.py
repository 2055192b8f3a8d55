"""Side-by-side training: the linearization under full-batch GD follows closed-form NTK dynamics."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infntk.empirical import empirical_ntk_fn
from infntk.errors import InfntkError
from infntk.training import (TrainConfig, centered_alignment, linear_gd_prediction, loss_fn,
                             train_side_by_side)


def net(p, x):
    h = jnp.tanh(x @ p[0] / math.sqrt(x.shape[-1]))
    return h @ p[1] / math.sqrt(h.shape[-1])


@pytest.fixture(scope="module")
def data():
    k = jax.random.split(jax.random.PRNGKey(0), 5)
    p = (jax.random.normal(k[0], (4, 64)), jax.random.normal(k[1], (64, 1)))
    x = jax.random.normal(k[2], (20, 4))
    y = jnp.sign(x[:, :1] * x[:, 1:2])
    xt = jax.random.normal(k[3], (7, 4))
    return p, x, y, xt, jnp.sign(xt[:, :1] * xt[:, 1:2])


def test_linear_model_follows_analytic_ntk_dynamics(data):
    p, x, y, xt, yt = data
    ntk = empirical_ntk_fn(net, trace_axes=(), vmap_axes=0)
    k = np.asarray(ntk(x, None, p)).reshape(20, 20)
    kt = np.asarray(ntk(xt, x, p)).reshape(7, 20)
    # small step: lr * lambda_max / N = 0.02
    lr, epochs = 0.02 * 20 / np.linalg.eigvalsh(k).max(), 150
    cfg = TrainConfig(epochs=epochs, lr=float(lr), momentum=0.0, schedule="constant",
                      loss="mse", kernel_every=0)
    res = train_side_by_side(net, p, x, y, xt, yt, config=cfg)
    f0, f0t = net(p, x), net(p, xt)
    from infntk.linearize import linearize
    f_lin = linearize(net, p)
    got_tr = np.asarray(f_lin(res.params["linear"], x))
    got_te = np.asarray(f_lin(res.params["linear"], xt))
    # Discrete GD on a linear model is exactly (I - lr K / N)^t: float precision.
    exp_tr, exp_te = linear_gd_prediction(k, kt, f0, f0t, y, lr, epochs)
    np.testing.assert_allclose(got_tr, exp_tr, atol=1e-10)
    np.testing.assert_allclose(got_te, exp_te, atol=1e-10)
    # Continuous-time solution f0 + (I - expm(-lr K t / N))(y - f0): differs only by the
    # Euler error, per eigen-direction |(1-h)^t - exp(-h t)| <= t h^2 / 2.
    c_tr, _ = linear_gd_prediction(k, kt, f0, f0t, y, lr, epochs, continuous=True)
    lam, vec = np.linalg.eigh(k)
    h = lr * np.clip(lam, 0, None) / 20
    r0 = vec.T @ np.asarray(y - f0).reshape(-1)
    bound = np.linalg.norm(epochs * h ** 2 / 2 * r0)
    err = np.linalg.norm(got_tr.reshape(-1) - c_tr.reshape(-1))
    assert err <= bound
    assert np.linalg.norm(got_tr - np.asarray(f0)) > 30 * bound  # moved far beyond it
    # Training loss of the linear model decreases monotonically under small-lr GD.
    losses = res.history["linear"]["train_loss"]
    assert all(b <= a + 1e-15 for a, b in zip(losses, losses[1:]))


@pytest.mark.parametrize("loss", ["mse", "binary_ce", "ce"])
def test_history_is_well_formed(data, loss):
    p, x, y, xt, yt = data
    if loss == "ce":
        k = jax.random.PRNGKey(4)
        p = (p[0], jax.random.normal(k, (64, 3)))
        y = jnp.argmax(x[:, :3], axis=1)
        yt = jnp.argmax(xt[:, :3], axis=1)
    cfg = TrainConfig(epochs=3, batch_size=8, lr=0.1, loss=loss, kernel_subset=12, n_eigen=4)
    res = train_side_by_side(net, p, x, y, xt, yt, config=cfg)
    for m in ("network", "linear"):
        h = res.history[m]
        assert h["epoch"] == [0, 1, 2, 3]
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "param_distance"):
            assert len(h[key]) == 4 and np.all(np.isfinite(h[key])), key
        assert h["param_distance"][0] == 0 and h["param_distance"][-1] > 0
        assert len(h["rayleigh"]) == 4 and len(h["rayleigh"][0]) == 4
        assert -1 <= min(h["alignment"]) and max(h["alignment"]) <= 1
    net_h = res.history["network"]
    assert net_h["ntk_rel_change"][0] == 0 and net_h["ntk_rel_change"][-1] > 0
    np.testing.assert_allclose(net_h["rayleigh"][0], res.init_eigenvalues[:4], rtol=1e-10)
    assert res.history["linear"]["ntk_rel_change"] == [0.0] * 4


def test_alignment_and_losses():
    y = np.array([[1.0], [1.0], [-1.0], [-1.0]])
    assert centered_alignment(y @ y.T, y) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    assert abs(centered_alignment(a @ a.T, y)) < 1
    out = jnp.array([[0.0], [2.0]])
    assert float(loss_fn("mse", out, jnp.array([[0.0], [0.0]]))) == pytest.approx(1.0)
    with pytest.raises(InfntkError, match="loss"):
        loss_fn("hinge", out, out)
