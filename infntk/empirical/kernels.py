r"""The public empirical kernel functions: NTK (any implementation, blocked under a memory
budget), NNGP, both by name, and NTK-vector products."""
from __future__ import annotations

import enum
from typing import Callable, Optional, Union

import jax
import jax.numpy as jnp
from jax.tree_util import tree_leaves, tree_map

from ..blocking import blocked_kernel
from ..chunked_einsum import contract
from ..errors import InfntkError
from ..results import canonicalize_get, package
from .cost import DEFAULT_MEMORY_BUDGET, batch_sizes, cheapest, ntk_cost_model
from .implementations import block_jacobian, block_ntk_vp
from .layout import Labels, Problem, n_examples, take, vmap_triple
from .structured import block_structured

__all__ = ["NtkImplementation", "empirical_ntk_fn", "empirical_nngp_fn", "empirical_kernel_fn",
           "empirical_ntk_vp_fn"]


class NtkImplementation(enum.IntEnum):
    """NTK implementations; integer values as in neural-tangents 0.6.5."""

    AUTO = 0
    JACOBIAN_CONTRACTION = 1
    NTK_VECTOR_PRODUCTS = 2
    STRUCTURED_DERIVATIVES = 3


_NAMES = {
    "auto": NtkImplementation.AUTO,
    "jacobian_contraction": NtkImplementation.JACOBIAN_CONTRACTION,
    "ntk_vector_products": NtkImplementation.NTK_VECTOR_PRODUCTS,
    "structured": NtkImplementation.STRUCTURED_DERIVATIVES,
    "structured_derivatives": NtkImplementation.STRUCTURED_DERIVATIVES,
}


def _canon_impl(implementation) -> NtkImplementation:
    if isinstance(implementation, str):
        key = implementation.lower()
        if key not in _NAMES:
            raise InfntkError(
                f"empirical_ntk_fn: unknown implementation {implementation!r}; "
                f"expected one of {sorted(_NAMES)} or 0..3.")
        return _NAMES[key]
    try:
        return NtkImplementation(int(implementation))
    except (ValueError, TypeError):
        raise InfntkError(
            f"empirical_ntk_fn: unknown implementation {implementation!r}.") from None


_BLOCKS = {
    NtkImplementation.JACOBIAN_CONTRACTION: block_jacobian,
    NtkImplementation.NTK_VECTOR_PRODUCTS: block_ntk_vp,
    NtkImplementation.STRUCTURED_DERIVATIVES: block_structured,
}


def empirical_ntk_fn(
    f: Callable,
    trace_axes=(-1,),
    diagonal_axes=(),
    vmap_axes=None,
    implementation: Union[str, int, NtkImplementation] = "auto",
    memory_budget: Optional[float] = DEFAULT_MEMORY_BUDGET,
) -> Callable:
    r"""Returns ``ntk_fn(x1, x2, params, **apply_fn_kwargs)``, the empirical NTK of ``f``.

    :math:`\Theta(x_1, x_2) = \frac{1}{|T|}\sum_w \partial_w f(x_1)\, \partial_w f(x_2)^\top`,
    averaged over ``trace_axes`` (as neural-tangents 0.6.5). ``x2=None`` means
    ``x2 = x1``. The output shape is ``zip(f(x1).shape, f(x2).shape)`` with traced
    axes removed and diagonal axes kept once.

    Args:
      f: ``f(params, x, **kwargs)`` returning one array.
      trace_axes: output axes summed (and divided by their size) pairwise.
      diagonal_axes: output axes on which only the diagonal is computed.
      vmap_axes: ``None`` (f may mix examples), an int (batch axis of x and of
        f(x)), or ``(in_axes, out_axes, kwargs_axes)``; certifies that examples are
        independent, which enables per-example derivatives and blocking.
      implementation: ``'auto'`` (default), ``'jacobian_contraction'``,
        ``'ntk_vector_products'``, ``'structured'``, or NT's integers 0..3.
      memory_budget: bytes of working memory per block (``None``: no blocking).

    Example:
      >>> import jax.numpy as jnp
      >>> f = lambda p, x: x @ p
      >>> empirical_ntk_fn(f)(jnp.eye(2), None, jnp.ones((2, 3))).tolist()
      [[1.0, 0.0], [0.0, 1.0]]
    """
    impl = _canon_impl(implementation)
    vm = vmap_triple(vmap_axes)
    cache: dict = {}

    def _jitted(choice, lab_key, has_x2, kw_keys):
        key = (choice, lab_key, has_x2, kw_keys)
        if key not in cache:
            def run(x1, x2, params, kwargs):
                pb = Problem(f, params, kwargs, vm, "empirical_ntk_fn")
                o1 = pb.out_shape(x1)
                o2 = o1 if x2 is None else pb.out_shape(x2)
                lab = Labels(o1, o2, trace_axes, diagonal_axes)
                return _BLOCKS[choice](pb, x1, x2, lab)
            cache[key] = jax.jit(run, static_argnums=()) if not has_x2 else jax.jit(run)
        return cache[key]

    def ntk_fn(x1, x2, params, **apply_fn_kwargs):
        pb = Problem(f, params, apply_fn_kwargs, vm, "empirical_ntk_fn")
        o1 = pb.out_shape(x1)
        o2 = o1 if x2 is None else pb.out_shape(x2)
        lab = Labels(o1, o2, trace_axes, diagonal_axes)
        choice = impl
        costs = None
        if impl == NtkImplementation.AUTO or (memory_budget is not None and vm is not None):
            shape_key = ("cost", tuple(tree_map(jnp.shape, tree_leaves((x1, x2)))))
            if shape_key not in cache:
                cache[shape_key] = ntk_cost_model(f, params, x1, x2, trace_axes,
                                                  diagonal_axes, vmap_axes, **apply_fn_kwargs)
            costs = cache[shape_key]
        if impl == NtkImplementation.AUTO:
            choice = _NAMES[cheapest(costs)]
        kw_keys = tuple(sorted(apply_fn_kwargs))

        def block(a, b):
            fn = _jitted(choice, None, b is not None, kw_keys)
            return fn(a, b, params, apply_fn_kwargs)

        if vm is None or memory_budget is None:
            return block(x1, x2)
        in_ax, out_ax, _ = vm
        ox = out_ax % len(o1)
        if ox in lab.trace or ox in lab.diag or apply_fn_kwargs:
            return block(x1, x2)
        name = {v: k for k, v in _NAMES.items() if k != "structured_derivatives"}[choice]
        n1 = n_examples(x1, in_ax)
        n2 = n1 if x2 is None else n_examples(x2, in_ax)
        b1, b2 = batch_sizes(costs[name], n1, n2, memory_budget)
        if b1 >= n1 and b2 >= n2:
            return block(x1, x2)
        # Output positions of the example axes in the NT layout.
        pos1 = lab.out.index(lab.o1[ox])
        pos2 = lab.out.index(lab.o2[ox])
        if in_ax == 0 and all(isinstance(v, jax.Array) for v in (x1, x2) if v is not None):
            return _blocked_ntk(block, lab, pos1, pos2, x1, x2, max(1, min(b1, b2)))
        xs2 = x1 if x2 is None else x2
        rows = []
        for s1 in range(0, n1, b1):
            xa = take(x1, in_ax, s1, min(n1, s1 + b1))
            cols = []
            for s2 in range(0, n2, b2):
                xb = take(xs2, in_ax, s2, min(n2, s2 + b2))
                same = x2 is None and s1 == s2 and b1 == b2
                cols.append(block(xa, None if same else xb))
            rows.append(jnp.concatenate(cols, axis=pos2))
        return jnp.concatenate(rows, axis=pos1)

    return ntk_fn


def _blocked_ntk(block, lab: "Labels", pos1: int, pos2: int, x1, x2, size: int):
    """The NTK of batched array inputs in ``size x size`` blocks of examples, in one compiled loop
    (:func:`infntk.blocking.blocked_kernel`: in-place writes, and with ``x2 = None`` only the
    blocks on and above the diagonal, the rest transposed), so memory stays at one block's."""
    front = [lab.out[pos1], lab.out[pos2]] + [c for i, c in enumerate(lab.out) if i not in (pos1, pos2)]
    partner = {}
    for a, b in zip(lab.o1, lab.o2):
        partner[a], partner[b] = b, a
    perm = tuple(front.index(partner[c]) for c in front)

    def run(a, b):
        return (jnp.moveaxis(block(a, b), (pos1, pos2), (0, 1)),)

    out = blocked_kernel(run, x1, x2, size, (perm,))[0]
    return jnp.moveaxis(out, (0, 1), (pos1, pos2))


def empirical_nngp_fn(f: Callable, trace_axes=(-1,), diagonal_axes=()) -> Callable:
    r"""Returns ``nngp_fn(x1, x2, params, **kwargs)``: :math:`\frac{1}{|T|} f(x_1) f(x_2)^\top`.

    Output layout as :func:`empirical_ntk_fn` (neural-tangents 0.6.5 conventions).

    Example:
      >>> import jax.numpy as jnp
      >>> nngp = empirical_nngp_fn(lambda p, x: x * p)
      >>> nngp(jnp.ones((2, 4)), None, 2.0).tolist()
      [[4.0, 4.0], [4.0, 4.0]]
    """
    def nngp_fn(x1, x2, params, **apply_fn_kwargs):
        out1 = f(params, x1, **apply_fn_kwargs)
        out2 = out1 if x2 is None else f(params, x2, **apply_fn_kwargs)

        def gram(a, b):
            lab = Labels(a.shape, b.shape, trace_axes, diagonal_axes)
            spec = f"{''.join(lab.o1)},{''.join(lab.o2)}->{''.join(lab.out)}"
            return contract(spec, a, b) / lab.size
        return tree_map(gram, out1, out2)
    return nngp_fn


def empirical_kernel_fn(f: Callable, trace_axes=(-1,), diagonal_axes=(), vmap_axes=None,
                        implementation: Union[str, int, NtkImplementation] = "auto",
                        memory_budget: Optional[float] = DEFAULT_MEMORY_BUDGET) -> Callable:
    """Returns ``kernel_fn(x1, x2, get, params, **kwargs)`` for NNGP and/or NTK.

    ``get``: ``'nngp'`` or ``'ntk'`` (returns the array), a tuple of those (returns a
    namedtuple ``EmpiricalKernel`` with those fields), or ``None`` (both).

    Example:
      >>> import jax.numpy as jnp
      >>> kfn = empirical_kernel_fn(lambda p, x: x @ p)
      >>> k = kfn(jnp.eye(2), None, None, jnp.ones((2, 1)))
      >>> k.ntk.tolist(), k.nngp.tolist()
      ([[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]])
    """
    fns = {
        "nngp": empirical_nngp_fn(f, trace_axes, diagonal_axes),
        "ntk": empirical_ntk_fn(f, trace_axes, diagonal_axes, vmap_axes, implementation,
                                memory_budget),
    }

    def kernel_fn(x1, x2, get, params, **apply_fn_kwargs):
        single, names = canonicalize_get(get, tuple(fns), "empirical_kernel_fn")
        vals = {g: fns[g](x1, x2, params, **apply_fn_kwargs) for g in names}
        return package(vals, single, names, "EmpiricalKernel")
    return kernel_fn


def empirical_ntk_vp_fn(f: Callable, x1, x2, params, **apply_fn_kwargs) -> Callable:
    r"""Returns ``v -> \Theta(x_1, x_2) v`` without forming the NTK (one VJP, one JVP).

    ``v`` has the shape of ``f(params, x2)``; the result that of ``f(params, x1)``.
    No trace over output axes is applied (full kernel).
    """
    xs2 = x1 if x2 is None else x2

    def vp(v):
        t = jax.vjp(lambda p: f(p, xs2, **apply_fn_kwargs), params)[1](v)[0]
        return jax.jvp(lambda p: f(p, x1, **apply_fn_kwargs), (params,), (t,))[1]
    return vp
