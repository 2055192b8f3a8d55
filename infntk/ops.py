r"""The operations every layer's kernel map is written against, on arrays.

A layer writes its infinite-width map once, ``kernel_map(k, ops) -> k``, in terms of ordinary
arithmetic on the fields of the :class:`~infntk.kernel.Kernel` state and a small set of operations:

==============================  ====================================================================
``ops.param(name, value)``      a hyperparameter (:math:`\sigma_w`, :math:`\sigma_b`, ...)
``ops.fan_in(value)``           the standard parameterization's width :math:`n/s_0`
``ops.linear(op, k)``           a linear operator on every covariance of the state (conv patches,
                                pooling, means; :mod:`infntk.layers.spatial`)
``ops.pair_variances(k, role)`` the two variances :math:`(q_{11}, q_{22})` broadcast against a
                                covariance (``role``: ``'nngp'``, ``'cov1'``, ``'cov2'``)
``ops.position_mean(op, a, k, role)``  a mean over positions of such a variance
``ops.activate(feature, base)`` the state of an elementwise feature of the Gaussian ``base``: its
                                dual and derivative dual
``ops.mean(feature, q)``        the feature's channel mean :math:`m_\phi(q)`
``ops.block_concat(op, parts, k, role)``  concatenation of branches along a spatial axis
``ops.run(branch, k, i)``       a branch (a sub-model) on the state ``k``
``ops.same_source(a, b)``       whether two states are the same Gaussian pre-activation
``ops.sqrt(a)``                 square root
``ops.fraction(a, b)``          the number :math:`a/b` (exact on sympy)
==============================  ====================================================================

Two implementations exist: :class:`ArrayOps` here (``jax.numpy``; ``model.kernel``) and
:class:`infntk.recursion.symbolic_ops.SymbolicOps` (sympy; ``model.recursion()``), so the printed
recursion and the computed numbers come from one definition. The driver (:mod:`infntk.driver`) folds
the layers of a plan (:mod:`infntk.plan`) over a state with one of them.

``ArrayOps`` also carries what blocked evaluation shares between blocks: each input's
self-covariance after every layer (``tap``), recorded by the diagonal blocks and read back by the
others. That is data passed with the operations, not ambient state.
"""
from __future__ import annotations

from typing import Optional, Sequence

import jax.numpy as jnp

from .errors import InfntkError
from .kernel import Kernel, diagonalized


class ArrayOps:
    """The kernel-map operations on ``jax.numpy`` arrays (see the module docstring).

    ``record``: a list that receives each tapped state's ``cov1`` (the per-input covariances of a
    ``x2 = None`` run); ``inject``: ``(trajectory_1, trajectory_2)`` whose entries replace each
    tapped state's ``cov1`` and ``cov2``, in order. At most one of the two.
    """

    symbolic = False

    def __init__(self, record: Optional[list] = None, inject: Optional[tuple] = None):
        if record is not None and inject is not None:
            raise InfntkError("internal: a run either records or injects self-covariances.")
        self.record = record
        self.inject = None if inject is None else (tuple(inject[0]), tuple(inject[1]))
        if self.inject is not None and len(self.inject[0]) != len(self.inject[1]):
            raise InfntkError("internal: the two sides' self-covariance trajectories differ in length.")
        self.position = 0

    # -- hyperparameters -------------------------------------------------------------------------
    def param(self, name: str, value):
        return value

    def fan_in(self, value):
        return value

    # -- linear maps of the state ----------------------------------------------------------------
    def linear(self, op, k: Kernel) -> Kernel:
        """``op`` applied to every covariance of ``k`` (``None`` stays ``None``)."""
        diag = k.diagonal_spatial

        def on(a, batch_ndim, spatial):
            return None if a is None else op.apply(a, batch_ndim, spatial, diag)

        return k.replace(nngp=on(k.nngp, 2, k.spatial1), ntk=on(k.ntk, 2, k.spatial1),
                         cov1=on(k.cov1, 1, k.spatial1), cov2=on(k.cov2, 1, k.spatial2))

    def pair_variances(self, k: Kernel, role: str):
        return k.pair_variances(role)

    def position_mean(self, op, a, k: Kernel, role: str):
        return op.apply(a, 2 if role == "nngp" else 1, k.spatial1, k.diagonal_spatial)

    def block_concat(self, op, parts: Sequence, k: Kernel, role: str):
        return op.apply(list(parts), 2 if role == "nngp" else 1, k.spatial1, k.diagonal_spatial)

    def sqrt(self, a):
        return jnp.sqrt(a)

    def fraction(self, a, b):
        return a / b

    # -- elementwise features --------------------------------------------------------------------
    def activate(self, feature, base: Kernel) -> Kernel:
        from .layers.nonlinear import evaluate
        return evaluate(feature, base)

    def mean(self, feature, q):
        return feature.mean_fn(q)

    def same_source(self, a: Kernel, b: Kernel) -> bool:
        return a is b

    # -- structure -------------------------------------------------------------------------------
    def diagonalized(self, k: Kernel) -> Kernel:
        return diagonalized(k)

    def run(self, branch, k: Kernel, index: int) -> Kernel:
        from .driver import fold
        return fold(branch, k, self)

    def after(self, step, k_in: Kernel, k_out: Kernel) -> Kernel:
        """Called by the driver after every layer: records or injects self-covariances."""
        if not isinstance(k_out, Kernel):
            return k_out
        if self.record is not None:
            if k_out.cov2 is not None:
                raise InfntkError("internal: self-covariances are recorded from x2 = None runs only.")
            self.record.append(k_out.cov1)
            return k_out
        if self.inject is None:
            return k_out
        t = self.position
        self.position += 1
        if k_out is k_in:
            # passed through unchanged (Identity): its covariances were read at an earlier tap,
            # and the state keeps its identity (a sum of branches groups features by source)
            return k_out
        side1, side2 = self.inject
        if t >= len(side1) or k_out.cov2 is None:
            raise InfntkError("internal: the model's taps do not match the recorded trajectory.")
        c1, c2 = side1[t], side2[t]
        if c1.shape != k_out.cov1.shape or c2.shape != k_out.cov2.shape:
            raise InfntkError(
                f"internal: recorded self-covariance at tap {t} has shapes {c1.shape}, {c2.shape}; "
                f"the block computes {k_out.cov1.shape}, {k_out.cov2.shape}.")
        return k_out.replace(cov1=c1.astype(k_out.cov1.dtype), cov2=c2.astype(k_out.cov2.dtype))

    def finish(self) -> None:
        """Check that an injecting run consumed its whole trajectory."""
        if self.inject is not None and self.position != len(self.inject[0]):
            raise InfntkError("internal: the model's taps do not match the recorded trajectory.")
