r"""Per-input covariances computed once and shared by every block of a blocked Gram matrix.

Besides the pair covariance :math:`K(x_i, x'_j)`, every layer carries each input's covariance with
itself, :math:`K(x_i, x_i)` (``Kernel.cov1``/``cov2``): nonlinearities need its diagonal, the
per-position variances. A block of ``B x B`` input pairs (:mod:`infntk.blocking`) therefore
also computes ``2 B`` self-covariances, and on the full spatial layout one self-covariance is as
much work as one pair: Myrtle-like blocks of 2 x 2 pairs on 16 x 16 inputs spend half their time
recomputing covariances that the diagonal blocks have already computed.

This module lets the blocked loop compute them once. Every :class:`~infntk.layers.branching.Serial`
calls :func:`tap` on the state after each of its layers, in the same order in every run of the same
model:

* inside :func:`recording` (the diagonal blocks, ``x2 = None``) each tap appends ``cov1``, the
  per-input covariance at that depth, to a list: the block's *trajectory*;
* inside :func:`injecting` (the off-diagonal blocks) each tap replaces ``cov1`` and ``cov2`` by the
  rows of the recorded trajectories for the block's two sides. The covariances the block would
  have computed are then unused, and XLA removes their computation.

The injected values are the ones the diagonal blocks computed for the same inputs, so the result
is that of the unshared recursion up to rounding (each entry comes from the same formula; only the
XLA fusion it was evaluated in may differ).

Example:
    >>> import jax.numpy as jnp, infntk as nk
    >>> from infntk.layers import self_covariance
    >>> model = nk.Dense(4) >> nk.Relu() >> nk.Dense(1)
    >>> x = jnp.ones((3, 2))
    >>> with self_covariance.recording() as trajectory:
    ...     k = model.kernel_map_model(model.input_kernel(x))
    >>> [c.shape for c in trajectory]
    [(3,), (3,), (3,)]
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Sequence

from ..errors import InfntkError
from ..kernel import Kernel

_MODE: contextvars.ContextVar = contextvars.ContextVar("infntk_self_covariance", default=None)


class _Recorder:
    def __init__(self):
        self.trajectory: list = []

    def visit(self, k: Kernel) -> Kernel:
        if k.cov2 is not None:
            raise InfntkError("internal: self-covariances are recorded from x2 = None runs only.")
        self.trajectory.append(k.cov1)
        return k


class _Injector:
    def __init__(self, side1: Sequence, side2: Sequence):
        if len(side1) != len(side2):
            raise InfntkError("internal: the two sides' self-covariance trajectories differ in length.")
        self.side1, self.side2 = tuple(side1), tuple(side2)
        self.position = 0

    def visit(self, k: Kernel) -> Kernel:
        t = self.position
        self.position += 1
        if t >= len(self.side1) or k.cov2 is None:
            raise InfntkError("internal: the model's taps do not match the recorded trajectory.")
        c1, c2 = self.side1[t], self.side2[t]
        if c1.shape != k.cov1.shape or c2.shape != k.cov2.shape:
            raise InfntkError(
                f"internal: recorded self-covariance at tap {t} has shapes {c1.shape}, {c2.shape}; "
                f"the block computes {k.cov1.shape}, {k.cov2.shape}.")
        return k.replace(cov1=c1.astype(k.cov1.dtype), cov2=c2.astype(k.cov2.dtype))

    def finish(self) -> None:
        if self.position != len(self.side1):
            raise InfntkError("internal: the model's taps do not match the recorded trajectory.")


def tap(k):
    """Record or inject the per-input covariances of the state ``k`` (a no-op outside
    :func:`recording` / :func:`injecting`, and for lists of branch states)."""
    mode = _MODE.get()
    if mode is None or not isinstance(k, Kernel):
        return k
    return mode.visit(k)


@contextlib.contextmanager
def recording():
    """Collect ``cov1`` after every tapped layer into the yielded list."""
    recorder = _Recorder()
    token = _MODE.set(recorder)
    try:
        yield recorder.trajectory
    finally:
        _MODE.reset(token)


@contextlib.contextmanager
def injecting(side1: Sequence, side2: Sequence):
    """Replace ``cov1``/``cov2`` after every tapped layer by the given recorded trajectories."""
    injector = _Injector(side1, side2)
    token = _MODE.set(injector)
    try:
        yield
    finally:
        _MODE.reset(token)
    injector.finish()
