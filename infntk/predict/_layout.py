"""Shapes: targets, kernels and outputs as 2-D matrices, and back (internal).

neural-tangents' convention, kept here: a target array ``y`` of shape ``(N, ..., C)`` has *trace
axes* (by default the last one, the outputs/logits) along which the kernel is block-diagonal and
constant, :math:`\\Theta \\otimes I`, so the kernel only carries the remaining *sample* axes, their
pairs interleaved: for sample shape ``S = (s1, s2, ...)`` a kernel between two batches has shape
``(s1, s1', s2, s2', ...)``. Internally every kernel is flattened to ``(prod S, prod S')`` and every
target to ``(prod S, prod C)``; outputs are reshaped back to neural-tangents' layout.

A 1-D ``y`` of shape ``(N,)`` is read as one output per example (no trace axis), which
neural-tangents does not accept; it is a convenience.
"""
from __future__ import annotations

import math
from typing import Any, Sequence, Tuple

import numpy as np

from ..errors import InfntkError


def to_numpy64(x: Any, what: str, where: str) -> np.ndarray:
    """``x`` as a float64 numpy array; a clear error for non-numeric or non-finite entries."""
    try:
        a = np.asarray(x)
    except Exception as e:  # pragma: no cover - exotic array types
        raise InfntkError(f"{where}: could not read `{what}` as an array ({e}).") from None
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise InfntkError(f"{where}: `{what}` must be a numeric array, got dtype {a.dtype}.")
    if np.iscomplexobj(a):
        raise InfntkError(f"{where}: `{what}` must be real, got dtype {a.dtype}.")
    a = a.astype(np.float64, copy=False)
    check_finite(a, what, where)
    return a


def check_finite(a: np.ndarray, what: str, where: str) -> None:
    """Raise :class:`InfntkError` naming the count of NaN/inf entries, if any."""
    if not np.all(np.isfinite(a)):
        n_nan = int(np.isnan(a).sum())
        n_inf = int(np.isinf(a).sum())
        raise InfntkError(
            f"{where}: `{what}` has {n_nan} NaN and {n_inf} infinite entries (of {a.size}); "
            "kernels, targets and initial outputs must be finite. If the kernel came from a "
            "model, check the inputs and the model's weight/bias variances.")


class Layout:
    """How targets of one training set map to 2-D matrices (see the module docstring)."""

    def __init__(self, y_train: Any, trace_axes: Any, where: str):
        self.where = where
        y = to_numpy64(y_train, "y_train", where)
        if y.ndim == 0:
            raise InfntkError(f"{where}: `y_train` must have at least one axis (examples), got a scalar.")
        if y.ndim == 1:
            trace: Tuple[int, ...] = ()
        else:
            axes = [trace_axes] if isinstance(trace_axes, int) else list(trace_axes)
            try:
                trace = tuple(sorted({int(np.arange(y.ndim)[a]) for a in axes}))
            except IndexError:
                raise InfntkError(
                    f"{where}: `trace_axes={trace_axes}` out of range for `y_train` of shape {y.shape}."
                ) from None
            if 0 in trace:
                raise InfntkError(
                    f"{where}: `trace_axes={trace_axes}` includes the example axis 0 of `y_train` "
                    f"(shape {y.shape}); only output axes can be traced.")
        self.ndim = y.ndim
        self.trace_axes = trace
        self.sample_axes = tuple(a for a in range(y.ndim) if a not in trace)
        self.sample_shape = tuple(y.shape[a] for a in self.sample_axes)
        self.trace_shape = tuple(y.shape[a] for a in trace)
        self.n = math.prod(self.sample_shape)
        self.c = math.prod(self.trace_shape)
        self.y_shape = y.shape
        self.y_size = y.size
        self.y2 = self.flatten_targets(y, "y_train")

    # -- targets ---------------------------------------------------------------------------
    def flatten_targets(self, f: np.ndarray, what: str) -> np.ndarray:
        """``f`` with the shape of ``y_train`` (or broadcastable to it) -> ``(n, c)``."""
        f = np.broadcast_to(f, self.y_shape) if np.shape(f) != self.y_shape else f
        f = np.moveaxis(f, self.trace_axes, range(-len(self.trace_axes), 0))
        return np.reshape(f, (self.n, self.c))

    def test_target_shape(self, sample_shape: Sequence[int]) -> Tuple[int, ...]:
        """Shape of outputs on a test set whose kernel has ``sample_shape`` on the test side."""
        shape = list(sample_shape)
        for a, s in zip(self.trace_axes, self.trace_shape):
            shape.insert(a, s)
        return tuple(shape)

    def flatten_test_targets(self, f: Any, sample_shape: Sequence[int], what: str) -> np.ndarray:
        f = to_numpy64(f, what, self.where)
        shape = self.test_target_shape(sample_shape)
        try:
            f = np.broadcast_to(f, shape)
        except ValueError:
            raise InfntkError(
                f"{self.where}: `{what}` of shape {np.shape(f)} does not broadcast to the test "
                f"output shape {shape}.") from None
        f = np.moveaxis(f, self.trace_axes, range(-len(self.trace_axes), 0))
        return np.reshape(f, (math.prod(sample_shape), self.c))

    def unflatten_mean(self, m: np.ndarray, sample_shape: Sequence[int], lead: Tuple[int, ...] = ()) -> np.ndarray:
        """``(*lead, prod S, c)`` -> ``(*lead, <y layout with sample shape S>)``."""
        out = np.reshape(m, tuple(lead) + tuple(sample_shape) + self.trace_shape)
        k = len(lead)
        nt = len(self.trace_axes)
        return np.moveaxis(out, range(out.ndim - nt, out.ndim), tuple(k + a for a in self.trace_axes))

    @staticmethod
    def unflatten_cov(c: np.ndarray, sample_shape: Sequence[int], lead: Tuple[int, ...] = ()) -> np.ndarray:
        """``(*lead, prod S, prod S)`` -> ``(*lead, s1, s1', s2, s2', ...)`` (pairs interleaved)."""
        d = len(sample_shape)
        out = np.reshape(c, tuple(lead) + tuple(sample_shape) * 2)
        k = len(lead)
        order = list(range(k)) + [k + j for i in range(d) for j in (i, d + i)]
        return np.transpose(out, order)

    # -- kernels ---------------------------------------------------------------------------
    def kernel_2d(self, k: Any, what: str, train_side: bool = True, test_side: Any = None) -> Tuple[np.ndarray, Tuple[int, ...]]:
        """A kernel in neural-tangents' interleaved layout -> ``(2-D float64, first-side sample shape)``.

        ``train_side``: the second side must be the training set's sample shape.
        ``test_side``: if given, the first side must equal it too (train-train or test-test).
        """
        a = to_numpy64(k, what, self.where)
        d = len(self.sample_shape)
        if a.ndim != 2 * d:
            raise InfntkError(
                f"{self.where}: `{what}` has shape {a.shape}, expected {2 * d} axes (pairs of the "
                f"sample axes {self.sample_shape} of `y_train` after removing `trace_axes`="
                f"{self.trace_axes}).")
        first = a.shape[0::2]
        second = a.shape[1::2]
        if train_side and tuple(second) != self.sample_shape:
            raise InfntkError(
                f"{self.where}: `{what}` has shape {a.shape}; its training-side axes {second} "
                f"do not match the training targets' sample shape {self.sample_shape}.")
        if test_side is not None and tuple(first) != tuple(test_side):
            raise InfntkError(
                f"{self.where}: `{what}` has shape {a.shape}; its first-side axes {first} "
                f"should be {tuple(test_side)}.")
        a = np.transpose(a, tuple(range(0, 2 * d, 2)) + tuple(range(1, 2 * d, 2)))
        return np.reshape(a, (math.prod(first), math.prod(second))), tuple(first)
