r"""The driver: the one place that runs a plan over inputs, in blocks when it pays.

``model.kernel`` (and through it ``kernel_matrix``, the predictions and the studies) reaches the
layers only through here:

* :func:`fold` runs a model's plan (:mod:`infntk.plan`) over a kernel state with a set of
  operations (:mod:`infntk.ops` on arrays, :mod:`infntk.recursion.symbolic_ops` on sympy): each
  step gets the layout the plan decided, its layer's ``kernel_map(k, ops)`` and then
  ``ops.after`` (where blocked runs record or read the per-input self-covariances);
* :func:`kernel_state` builds the input kernel in the plan's layout and folds the model over it;
* :func:`compiled_kernel` compiles the whole recursion once per model, ``get`` and block target,
  and, for Gram matrices larger than one block, evaluates it block by block
  (:func:`infntk.blocking.blocked_kernel`): the diagonal blocks record every input's
  self-covariances after each layer and the other blocks read them instead of recomputing them.
  Those covariances travel as data, in the :class:`~infntk.ops.ArrayOps` of each block.

Example:
    >>> import jax.numpy as jnp, infntk as nk
    >>> from infntk import driver
    >>> model = nk.Dense(4) >> nk.Relu() >> nk.Dense(1)
    >>> k = driver.kernel_state(model, jnp.ones((3, 2)), None, ("nngp", "ntk"))
    >>> k.nngp.shape, k.is_gaussian
    ((3, 3), True)
"""
from __future__ import annotations

import functools
from typing import Optional

import jax
import numpy as np

from . import blocking
from .errors import InfntkError
from .kernel import Kernel
from .ops import ArrayOps
from .plan import plan, with_position
from .results import canonicalize_get, package

#: The names ``get`` may contain for an analytic kernel.
GET_NAMES = ("nngp", "ntk", "cov1", "cov2")


def get_names(get) -> tuple:
    """The quantities ``get`` asks for (``None``: ``('nngp', 'ntk')`` and the whole state)."""
    return canonicalize_get(get, GET_NAMES, "kernel")[1]


def fold(model, k, ops, trim: bool = False):
    """Run ``model``'s plan over the state ``k`` with ``ops`` (``trim``: apply the plan's layouts)."""
    if isinstance(k, list):
        raise model.error("expects a single input here, got a list (FanOut without a matching "
                          "parallel and FanInSum/FanInConcat).")
    p = plan(model, k.shape1, trim)
    for step in p.steps:
        if step.full_in is False:
            k = ops.diagonalized(k)
        k_in = k
        k = with_position(step.position, lambda: step.layer.kernel_map(k_in, ops))
        k = ops.after(step, k_in, k)
    return k


def input_state(model, x1, x2, get, ops=None) -> Kernel:
    """The kernel state of the raw inputs, in the layout ``model``'s plan needs."""
    names = get_names(get)
    p = plan(model, tuple(x1.shape), trim=True)
    return Kernel.from_inputs(x1, x2, diagonal_spatial=not p.input_full,
                              compute_ntk="ntk" in names or get is None)


def kernel_state(model, x1, x2, get, ops: Optional[ArrayOps] = None) -> Kernel:
    """The state after the whole model, for raw inputs ``x1``, ``x2`` (``None``: ``x1``)."""
    ops = ArrayOps() if ops is None else ops
    return fold(model, input_state(model, x1, x2, get), ops, trim=True)


def select(k, get):
    """What ``model.kernel`` returns for ``get``: the state, one array, or a named tuple."""
    if get is None:
        return k
    single, names = canonicalize_get(get, GET_NAMES, "kernel")
    return package({n: getattr(k, n) for n in names}, single, names, "Kernels")


@functools.lru_cache(maxsize=256)
def compiled_kernel(model, get, block_target: int):
    """``jax.jit`` of ``(x1, x2) -> model.kernel(x1, x2, get)``, blocked where it pays."""
    single, names = canonicalize_get(get, GET_NAMES, "kernel")

    def fields(k):
        return tuple(getattr(k, n) for n in names)

    def record(a):
        ops = ArrayOps(record=[])
        out = fields(kernel_state(model, a, None, get, ops))
        return out, tuple(ops.record)

    def inject(a, b, side1, side2):
        ops = ArrayOps(inject=(side1, side2))
        out = fields(kernel_state(model, a, b, get, ops))
        ops.finish()
        return out

    def run(x1, x2):
        layout = _block_plan(model, get, x1, x2, block_target)
        if layout is None:
            return select(kernel_state(model, x1, x2, get), get)
        block, swap = layout
        out = blocking.blocked_kernel(lambda a, b: fields(kernel_state(model, a, b, get)),
                                      x1, x2, block, swap,
                                      blocking.SharedSelfCovariance(record, inject))
        return package(dict(zip(names, out)), single, names, "Kernels")
    return jax.jit(run)


def _block_plan(model, get, x1, x2, target: int):
    """``(block, swap permutations)`` when the Gram matrix is worth computing in blocks, else None.

    Only the pairwise quantities (``nngp``, ``ntk``) of a single-output model are blocked.
    """
    names = get_names(get)
    if get is None or any(n not in ("nngp", "ntk") for n in names):
        return None
    one1 = jax.ShapeDtypeStruct((1,) + tuple(x1.shape[1:]), x1.dtype)
    first = jax.eval_shape(lambda a: input_state(model, a, None, get), one1)
    last = jax.eval_shape(lambda a: kernel_state(model, a, None, get), one1)
    if not isinstance(last, Kernel):
        return None
    full = any(k.spatial_ndim > 0 and not k.diagonal_spatial for k in (first, last))
    entries = max(first.nngp.size, last.nngp.size)
    block = (blocking.full_layout_block(entries, np.dtype(x1.dtype).itemsize, target) if full
             else blocking.block_size(entries, target))
    if block >= max(x1.shape[0], 0 if x2 is None else x2.shape[0]):
        return None
    swap = tuple(blocking.swap_permutation(getattr(last, n).ndim, last.spatial_ndim,
                                           last.diagonal_spatial) for n in names)
    return block, swap


