r"""scikit-learn estimators backed by exact infinite-width predictions.

:class:`InfiniteWidthRegressor` predicts with the mean of the infinite ensemble of infinitely wide
networks trained by gradient descent on MSE (:func:`infntk.predict.gradient_descent_mse_ensemble`):
for the NTK at time :math:`t`,

.. math::
    \mu_t(x) = \Theta_{x\mathcal{X}} \Theta^{-1}\left(I - e^{-\eta t \Theta / |Y|}\right) Y,

which at :math:`t = \infty` (``t=None``) is kernel ridge regression with the NTK; ``kernel='nngp'``
gives the Bayesian posterior mean of the NNGP (at ``t=None``) or the network trained in its last
layer only. ``predict(X, return_std=True)`` also returns the ensemble's standard deviation,
:math:`\sqrt{\Sigma_t(x, x)}`.

:class:`InfiniteWidthClassifier` regresses centred one-hot targets
:math:`y_{ik} = [c_i = k] - 1/K` (as in the neural-tangents examples) and predicts the class of
the largest mean output.

``model`` is any object with ``model.kernel(x1, x2, get=...)`` (an infntk model such as
``Dense(512) >> Relu() >> Dense(1)``); ``None`` uses :func:`default_model`, a one-hidden-layer
ReLU network. Inputs are used as given, so scale them (e.g. ``StandardScaler`` in a
``Pipeline``).

Example:
    >>> import numpy as np
    >>> from infntk.sklearn import InfiniteWidthRegressor
    >>> X = np.linspace(-2, 2, 20)[:, None]; y = np.sin(2 * X[:, 0])
    >>> reg = InfiniteWidthRegressor(diag_reg=1e-4).fit(X, y)
    >>> mean, std = reg.predict(X[:3] + 0.05, return_std=True)
    >>> mean.shape, std.shape, bool(reg.score(X, y) > 0.99)
    ((3,), (3,), True)
"""
from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from .errors import InfntkError
from .layers import Dense, Relu
from .predict import gradient_descent_mse_ensemble
from .results import canonicalize_get, package

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    def _validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)

_NEW_TAGS = hasattr(BaseEstimator, "__sklearn_tags__")

__all__ = ["InfiniteWidthRegressor", "InfiniteWidthClassifier", "ReluKernel", "default_model"]


@dataclasses.dataclass(frozen=True)
class ReluKernel:
    r"""Closed-form NNGP/NTK of ``Dense(W_std, b_std) >> Relu() >> Dense(W_std, b_std)`` (NTK param.).

    With :math:`K^0 = \sigma_w^2 x \cdot x' / d + \sigma_b^2`, :math:`\theta` the angle of
    :math:`K^0`, :math:`T = \frac{\sqrt{K^0_{xx}K^0_{x'x'}}}{2\pi}(\sin\theta + (\pi - \theta)\cos\theta)`
    and :math:`\dot T = \frac{\pi - \theta}{2\pi}` (Cho & Saul 2009):
    :math:`K = \sigma_w^2 T + \sigma_b^2`, :math:`\Theta = K + \sigma_w^2 K^0 \dot T`.
    The same kernels as :func:`default_model`'s, in numpy, independently of the layer engine.

    Example:
        >>> import numpy as np
        >>> k = ReluKernel().kernel(np.eye(2), None, get=('nngp', 'ntk'))
        >>> k.ntk.shape
        (2, 2)
    """

    W_std: float = 1.5
    b_std: float = 0.05

    def kernel(self, x1, x2=None, get=None):
        x1 = np.asarray(x1, dtype=np.float64)
        x2 = x1 if x2 is None else np.asarray(x2, dtype=np.float64)
        d = x1.shape[1]
        w2, b2 = self.W_std ** 2, self.b_std ** 2
        k12 = w2 * (x1 @ x2.T) / d + b2
        k11 = w2 * np.sum(x1 * x1, 1) / d + b2
        k22 = w2 * np.sum(x2 * x2, 1) / d + b2
        norm = np.sqrt(np.outer(k11, k22))
        cos = np.clip(k12 / norm, -1.0, 1.0)
        th = np.arccos(cos)
        nngp = w2 * norm / (2 * np.pi) * (np.sin(th) + (np.pi - th) * cos) + b2
        ntk = nngp + w2 * k12 * (np.pi - th) / (2 * np.pi)
        single, names = canonicalize_get(get, ("nngp", "ntk"), "ReluKernel.kernel")
        return package({"nngp": nngp, "ntk": ntk}, single, names)


def default_model(W_std: float = 1.5, b_std: float = 0.05):
    """``Dense(512, W_std, b_std) >> Relu() >> Dense(1, W_std, b_std)`` (its kernels are those of
    :class:`ReluKernel`; they do not depend on the width 512)."""
    return Dense(512, W_std=W_std, b_std=b_std) >> Relu() >> Dense(1, W_std=W_std, b_std=b_std)


def _check_params(est) -> None:
    name = type(est).__name__
    if est.kernel not in ("ntk", "nngp"):
        raise InfntkError(f"{name}: `kernel` must be 'ntk' or 'nngp', got {est.kernel!r}.")
    t = est.t
    if t is not None and (not isinstance(t, numbers.Real) or math.isnan(t) or t < 0):
        raise InfntkError(f"{name}: `t` must be None (infinite time) or a number >= 0, got {t!r}.")
    for p in ("diag_reg", "learning_rate"):
        v = getattr(est, p)
        if not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0 or (p == "learning_rate" and v == 0):
            raise InfntkError(f"{name}: `{p}` must be a finite number {'> 0' if p == 'learning_rate' else '>= 0'}, got {v!r}.")
    model = est.model
    if model is not None and not callable(getattr(model, "kernel", None)):
        raise InfntkError(f"{name}: `model` needs a `.kernel(x1, x2, get=...)` method, got {type(model).__name__}.")


class _InfiniteWidthBase(BaseEstimator):
    """Shared fitting: kernels, factorization and the ensemble predictor."""

    def __init__(self, model=None, kernel="ntk", t=None, diag_reg=1e-6, learning_rate=1.0,
                 solver="auto", memory_budget=None):
        self.model = model
        self.kernel = kernel
        self.t = t
        self.diag_reg = diag_reg
        self.learning_rate = learning_rate
        self.solver = solver
        self.memory_budget = memory_budget

    def _fit_targets(self, X: np.ndarray, Y: np.ndarray):
        _check_params(self)
        self.model_ = default_model() if self.model is None else self.model
        self.X_fit_ = X
        self.y_fit_ = Y
        self._predictor = None
        # Factorize now, so that a singular or non-PSD kernel fails in `fit`, not in `predict`.
        self._predict_raw(X[:1], return_cov=False)
        return self

    def _get_predictor(self):
        if getattr(self, "_predictor", None) is None:
            self._predictor = gradient_descent_mse_ensemble(
                self.model_.kernel, self.X_fit_, self.y_fit_, learning_rate=float(self.learning_rate),
                diag_reg=float(self.diag_reg), solver=self.solver, memory_budget=self.memory_budget)
        return self._predictor

    def _predict_raw(self, X: np.ndarray, return_cov: bool, chunk: int = 1024):
        predictor = self._get_predictor()
        t = None if self.t is None else float(self.t)
        if not return_cov:
            return np.asarray(predictor(t, X, self.kernel)), None
        means, variances = [], []
        for i in range(0, X.shape[0], chunk):
            out = predictor(t, X[i:i + chunk], self.kernel, compute_cov=True)
            means.append(np.asarray(out.mean))
            variances.append(np.diagonal(np.asarray(out.covariance)))
        return np.concatenate(means), np.concatenate(variances)

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_predictor", None)    # a closure; rebuilt on first use after unpickling
        return state

    if _NEW_TAGS:
        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.input_tags.allow_nan = False
            tags.non_deterministic = False
            return tags


class InfiniteWidthRegressor(RegressorMixin, _InfiniteWidthBase):
    r"""Regression with the infinite ensemble of infinitely wide networks (see the module docstring).

    Args:
        model: object with ``.kernel(x1, x2, get=...)``; ``None`` = :func:`default_model`.
        kernel: ``'ntk'`` (networks trained by gradient descent) or ``'nngp'`` (Bayesian
            posterior / last layer trained).
        t: training time in steps (``None`` = infinity).
        diag_reg: ridge on the training kernel, relative to its mean diagonal (also read as
            observation noise for ``'nngp'``). The small default keeps duplicated inputs solvable.
        learning_rate: :math:`\eta` (only matters with a finite ``t``).
        solver, memory_budget: see :func:`infntk.predict.gradient_descent_mse`.

    Attributes:
        model_: the model used. X_fit_, y_fit_: training data. n_features_in_: input width.

    Example:
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(30, 2)); y = X[:, 0] * X[:, 1]
        >>> reg = InfiniteWidthRegressor(kernel='nngp', diag_reg=1e-3).fit(X, y)
        >>> reg.predict(X[:2]).shape
        (2,)
    """

    def fit(self, X, y):
        """Store the training data and factorize the training kernel. ``y``: ``(n,)`` or ``(n, k)``."""
        X, y = _validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        self._y_1d = y.ndim == 1
        return self._fit_targets(X, y.reshape(len(y), -1))

    def predict(self, X, return_std: bool = False):
        """Ensemble mean at time ``t`` (and its standard deviation if ``return_std``)."""
        check_is_fitted(self)
        X = _validate_data(self, X, reset=False, dtype=np.float64)
        mean, var = self._predict_raw(X, return_cov=return_std)
        if self._y_1d:
            mean = mean[:, 0]
        if not return_std:
            return mean
        std = np.sqrt(np.maximum(var, 0.0))
        if not self._y_1d:
            std = np.repeat(std[:, None], mean.shape[1], axis=1)   # the same for every output
        return mean, std

    if _NEW_TAGS:
        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.target_tags.multi_output = True
            tags.target_tags.single_output = True
            return tags
    else:  # pragma: no cover - scikit-learn < 1.6
        def _more_tags(self):
            return {"multioutput": True}


class InfiniteWidthClassifier(ClassifierMixin, _InfiniteWidthBase):
    r"""Classification by MSE regression on centred one-hot targets, argmax of the ensemble mean.

    Targets are :math:`y_{ik} = [c_i = k] - 1/K` for :math:`K` classes; see
    :class:`InfiniteWidthRegressor` for the arguments.

    Attributes:
        classes_: the class labels. model_, X_fit_, y_fit_ (the one-hot targets), n_features_in_.

    Example:
        >>> import numpy as np
        >>> X = np.array([[-2.], [-1.], [1.], [2.]]); y = np.array(['a', 'a', 'b', 'b'])
        >>> InfiniteWidthClassifier().fit(X, y).predict([[-1.5], [1.5]]).tolist()
        ['a', 'b']
    """

    def fit(self, X, y):
        """Store the training data and one-hot targets and factorize the training kernel."""
        X, y = _validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        enc = LabelEncoder()
        codes = enc.fit_transform(y)
        self.classes_ = enc.classes_
        k = len(self.classes_)
        Y = np.eye(k)[codes] - 1.0 / k
        return self._fit_targets(X, Y)

    def decision_function(self, X):
        """Ensemble-mean outputs, one column per class (``(n,)`` for two classes, like sklearn)."""
        check_is_fitted(self)
        X = _validate_data(self, X, reset=False, dtype=np.float64)
        mean, _ = self._predict_raw(X, return_cov=False)
        if len(self.classes_) == 2:
            return mean[:, 1] - mean[:, 0]
        return mean

    def predict(self, X):
        """The class with the largest ensemble-mean output."""
        check_is_fitted(self)
        X = _validate_data(self, X, reset=False, dtype=np.float64)
        mean, _ = self._predict_raw(X, return_cov=False)
        return self.classes_[np.argmax(mean, axis=1)]
