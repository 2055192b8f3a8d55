"""scikit-learn estimators: the estimator checks, Pipeline, GridSearchCV, and agreement with
infntk.predict and with independent formulas.

Estimator checks that cannot run here (reported as skipped by scikit-learn itself, not by us):
* ``check_array_api_input``: the estimators compute in float64 numpy/JAX and do not declare
  array-API support; scikit-learn skips it unless ``SCIPY_ARRAY_API=1``.
* ``check_regressor_data_not_an_array`` / ``check_classifier_data_not_an_array``: need pandas,
  which is not a dependency; they run where pandas is installed.
No check is marked as an expected failure.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from infntk.errors import InfntkError
from infntk.predict import gradient_descent_mse_ensemble
from infntk.sklearn import InfiniteWidthClassifier, InfiniteWidthRegressor, ReluKernel, default_model


@parametrize_with_checks([InfiniteWidthRegressor(), InfiniteWidthClassifier(),
                          InfiniteWidthRegressor(kernel="nngp", t=50.0, learning_rate=2.0)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def regression():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2] + 0.05 * rng.normal(size=60)
    return X[:40], y[:40], X[40:], y[40:]


@pytest.mark.parametrize("kernel,t", [("ntk", None), ("nngp", None), ("ntk", 30.0), ("nngp", 30.0)])
def test_regressor_equals_ensemble_prediction(regression, kernel, t):
    X, y, Xt, _ = regression
    model = ReluKernel(W_std=1.3, b_std=0.2)
    reg = InfiniteWidthRegressor(model, kernel=kernel, t=t, diag_reg=1e-3, learning_rate=0.5).fit(X, y)
    mean, std = reg.predict(Xt, return_std=True)
    ref = gradient_descent_mse_ensemble(model.kernel, X, y[:, None], learning_rate=0.5, diag_reg=1e-3)(
        t, Xt, kernel, compute_cov=True)
    np.testing.assert_allclose(mean, np.asarray(ref.mean)[:, 0], atol=1e-12)
    np.testing.assert_allclose(std, np.sqrt(np.diag(np.asarray(ref.covariance))), atol=1e-12)
    assert mean.shape == std.shape == (20,)
    if kernel == "nngp" and t is None:      # textbook GP posterior with noise eps = 1e-3 * mean diag
        kdd = model.kernel(X, None, "nngp")
        ktd = model.kernel(Xt, X, "nngp")
        ktt = model.kernel(Xt, None, "nngp")
        a = kdd + 1e-3 * np.mean(np.diag(kdd)) * np.eye(40)
        np.testing.assert_allclose(mean, ktd @ np.linalg.solve(a, y), atol=1e-10)
        var = np.diag(ktt) - np.einsum("ij,ji->i", ktd, np.linalg.solve(a, ktd.T))
        np.testing.assert_allclose(std, np.sqrt(var), atol=1e-10)


def test_regressor_multioutput_and_pickle(regression):
    X, y, Xt, _ = regression
    Y = np.stack([y, -2 * y + 1], 1)
    reg = InfiniteWidthRegressor(diag_reg=1e-4).fit(X, Y)
    mean, std = reg.predict(Xt, return_std=True)
    assert mean.shape == std.shape == (20, 2)
    np.testing.assert_allclose(std[:, 0], std[:, 1])
    single = InfiniteWidthRegressor(diag_reg=1e-4).fit(X, y).predict(Xt)
    np.testing.assert_allclose(mean[:, 0], single, atol=1e-12)
    reg2 = pickle.loads(pickle.dumps(reg))
    np.testing.assert_allclose(reg2.predict(Xt), mean, atol=0)
    # a finite time interpolates between the prior mean (0) and t = inf
    r0 = InfiniteWidthRegressor(t=0.0).fit(X, y).predict(Xt)
    np.testing.assert_allclose(r0, 0.0, atol=1e-14)


def test_classifier_is_centred_one_hot_regression():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(45, 4))
    labels = np.array(["a", "b", "c"])[np.argmax(X[:, :3], 1)]
    clf = InfiniteWidthClassifier(diag_reg=1e-3).fit(X, labels)
    Y = np.eye(3)[np.searchsorted(clf.classes_, labels)] - 1 / 3
    ref = gradient_descent_mse_ensemble(clf.model_.kernel, X, Y, diag_reg=1e-3)(None, X[:10] + 0.1, "ntk")
    np.testing.assert_allclose(clf.decision_function(X[:10] + 0.1), np.asarray(ref), atol=1e-12)
    np.testing.assert_array_equal(clf.predict(X[:10] + 0.1), clf.classes_[np.argmax(np.asarray(ref), 1)])
    assert clf.score(X, labels) == 1.0


def test_pipeline_standard_scaler_classifier_on_digits():
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))
    tr, te = idx[:300], idx[300:600]
    pipe = Pipeline([("scale", StandardScaler()), ("clf", InfiniteWidthClassifier(diag_reg=1e-4))])
    pipe.fit(X[tr], y[tr])
    acc = pipe.score(X[te], y[te])
    assert acc > 0.85, acc          # kernel regression on 300 digits: typically ~0.9
    assert set(pipe.predict(X[te])) <= set(range(10))


def test_grid_search_over_diag_reg(regression):
    X, y, Xt, yt = regression
    grid = GridSearchCV(InfiniteWidthRegressor(kernel="nngp"), {"diag_reg": [1e-6, 1e-2, 1e-1, 1.0, 1e3]},
                        cv=KFold(4, shuffle=True, random_state=0))
    grid.fit(X, y)
    scores = grid.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores))
    # the chosen ridge is the best mean CV score, and a huge ridge (prediction ~ 0) is worse
    assert grid.best_params_["diag_reg"] == [1e-6, 1e-2, 1e-1, 1.0, 1e3][int(np.argmax(scores))]
    assert scores[-1] < scores.max()
    assert grid.score(Xt, yt) > 0.5


def test_bad_parameters_and_ill_posed_fit_raise(regression):
    X, y, _, _ = regression
    for params in [dict(kernel="rbf"), dict(t=-1.0), dict(diag_reg=-1.0), dict(learning_rate=0.0),
                   dict(model=object())]:
        with pytest.raises(InfntkError):
            InfiniteWidthRegressor(**params).fit(X, y)
    Xd = np.concatenate([X, X[:1]])
    yd = np.concatenate([y, y[:1] + 1.0])
    with pytest.raises(InfntkError, match="diag_reg"):
        InfiniteWidthRegressor(kernel="nngp", diag_reg=0.0).fit(Xd, yd)
    InfiniteWidthRegressor(kernel="nngp").fit(Xd, yd)       # the default ridge handles duplicates


def test_default_model_kernel_is_the_relu_closed_form():
    # rtol 1e-7: arccos(rho) at rho = 1 - O(eps) (an input paired with itself) costs ~sqrt(eps)
    # in theta, so the engine's diagonal NTK entries carry ~1e-8 relative round-off.
    X = np.random.default_rng(2).normal(size=(6, 3))
    m = default_model()
    ref = ReluKernel()
    for g in ("nngp", "ntk"):
        np.testing.assert_allclose(np.asarray(m.kernel(X, X[:4], get=g)), ref.kernel(X, X[:4], get=g), rtol=1e-7)
