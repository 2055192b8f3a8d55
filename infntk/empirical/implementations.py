r"""The ``'jacobian_contraction'`` and ``'ntk_vector_products'`` NTK implementations.

* Jacobian contraction: per-example Jacobians :math:`J = \partial f/\partial w` by reverse mode,
  contracted leaf by leaf, :math:`\Theta = \sum_w J^{(1)}_w J^{(2)\top}_w`.
* NTK-vector products: columns :math:`\Theta e = J_1 (J_2^\top e)` by a VJP then a JVP, for every
  output basis vector :math:`e`; never forms a Jacobian of both sides.

Per-example derivatives and columns are computed ``MAP_CHUNK_BYTES`` of results at a time
(:func:`chunked_vmap`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.tree_util import tree_flatten, tree_leaves, tree_map, tree_unflatten

from ..chunked_einsum import contract
from .layout import Labels, Problem, n_elements, n_examples, std_basis

MAP_CHUNK_BYTES = 4 * 2 ** 20
"""Per-example derivatives (the Jacobian route) and tangent columns (the vector-product route) are
computed this many bytes of results at a time, in a compiled loop: vmapping all of them at once
lets XLA build intermediates several times the size of the results (a batched weight-gradient
convolution transposes its activations once per cotangent)."""


def _flat_axes(args, in_axes):
    """Per-leaf batch axes (int or None) of ``args`` for vmap-style ``in_axes`` (one entry per
    argument: an int, None, or a pytree prefix of that argument)."""
    axes = []
    for arg, ax in zip(args, in_axes):
        if ax is None or isinstance(ax, int):
            axes += [ax] * len(tree_leaves(arg))
            continue
        prefix, tdef = tree_flatten(ax, is_leaf=lambda v: v is None)
        for a, sub in zip(prefix, tdef.flatten_up_to(arg)):
            axes += [a] * len(tree_leaves(sub))
    return axes


def chunked_vmap(fn, args, in_axes, n: int, item_bytes: float):
    """``jax.vmap(fn, in_axes, out_axes=0)(*args)`` over ``n`` items, evaluated in chunks of
    ``MAP_CHUNK_BYTES // item_bytes`` items in a compiled loop that writes each chunk's results in
    place (the last chunk is moved back to end at ``n``, recomputing a few items, so no ragged
    remainder needs a concatenation: that would copy all the results once more)."""
    chunk = max(1, int(MAP_CHUNK_BYTES // max(item_bytes, 1)))
    if chunk >= n:
        return jax.vmap(fn, in_axes=in_axes)(*args)
    leaves, tdef = tree_flatten(list(args))
    axes = _flat_axes(args, in_axes)
    vaxes = [None if ax is None else ax % leaf.ndim for leaf, ax in zip(leaves, axes)]

    def call(start):
        part = [leaf if ax is None else lax.dynamic_slice_in_dim(leaf, start, chunk, ax)
                for leaf, ax in zip(leaves, vaxes)]
        return jax.vmap(lambda *ls: fn(*tree_unflatten(tdef, list(ls))), in_axes=vaxes)(*part)

    shapes = jax.eval_shape(call, 0)
    out = tree_map(lambda s: jnp.zeros((n,) + s.shape[1:], s.dtype), shapes)

    def body(i, acc):
        start = jnp.minimum(i * chunk, n - chunk)
        res = call(start)
        return tree_map(lambda a, r: lax.dynamic_update_slice_in_dim(a, r, start, 0), acc, res)

    return lax.fori_loop(0, -(-n // chunk), body, out)


def _forward_bytes(pb: Problem, x) -> float:
    """Bytes of all values one forward pass on x creates (its jaxpr's equation outputs)."""
    jaxpr = jax.make_jaxpr(pb.full_f(x))(pb.params).jaxpr
    total = 0.0
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            aval = v.aval
            if hasattr(aval, "shape") and hasattr(aval, "dtype"):
                total += n_elements(aval.shape) * jnp.dtype(aval.dtype).itemsize
    return total


def _jacobians(pb: Problem, x):
    """Per-leaf Jacobians with the out axes first (examples at fx axis if vmap)."""
    if pb.vm is None:
        return jax.jacrev(pb.full_f(x))(pb.params)
    in_ax, out_ax, kw_ax = pb.vm
    gex = pb.example_fn()
    kwb = pb.kw_batched()
    kw_in = {k: kw_ax[k] for k in kwb}
    n = n_examples(x, in_ax)
    return chunked_vmap(lambda xi, kwi: jax.jacrev(lambda p: gex(p, xi, kwi))(pb.params),
                         (x, kwb), (in_ax, kw_in), n, _jacobian_bytes(pb, x, n))


def _jacobian_bytes(pb: Problem, x, n: int) -> float:
    """Bytes of one example's Jacobian (outputs per example x parameters)."""
    out_size = n_elements(pb.out_shape(x)) // max(n, 1)
    return out_size * sum(n_elements(jnp.shape(a)) * jnp.dtype(jnp.result_type(a)).itemsize
                          for a in tree_leaves(pb.params))


def block_jacobian(pb: Problem, x1, x2, lab: Labels):
    """The NTK of ``x1`` against ``x2`` (``None``: ``x1``) by contracting per-leaf Jacobians."""
    j1 = _jacobians(pb, x1)
    j2 = j1 if x2 is None else _jacobians(pb, x2)
    ndim = len(lab.o1)
    ex = None if pb.vm is None else pb.vm[1] % ndim

    def o_letters(o):
        if ex is None:
            return "".join(o)
        return o[ex] + "".join(c for k, c in enumerate(o) if k != ex)

    total = 0.0
    for a, b in zip(tree_leaves(j1), tree_leaves(j2)):
        lb = lab.fork()
        pn = a.ndim - ndim
        w = "".join(lb.new() for _ in range(pn))
        spec = f"{o_letters(lab.o1)}{w},{o_letters(lab.o2)}{w}->{''.join(lab.out)}"
        total = total + contract(spec, a, b)
    return total / lab.size


def block_ntk_vp(pb: Problem, x1, x2, lab: Labels):
    """The NTK of ``x1`` against ``x2`` (``None``: ``x1``), one column per output of ``x2``."""
    xs2 = x1 if x2 is None else x2
    f1 = pb.full_f(x1)
    if pb.vm is None:
        f2 = pb.full_f(xs2)
        out2, vjp_fn = jax.vjp(f2, pb.params)
        basis = std_basis(out2.shape, out2.dtype)

        def col(e):
            t = vjp_fn(e)[0]
            return jax.jvp(f1, (pb.params,), (t,))[1]
        cols = lax.map(col, basis) if basis.shape[0] > 4096 else jax.vmap(col)(basis)
        # cols: (prod O2, O1...) -> O1 + O2
        o1nd = cols.ndim - 1
        k_full = jnp.moveaxis(cols, 0, -1).reshape(cols.shape[1:] + out2.shape)
        del o1nd
        return lab.reduce_full(k_full)
    in_ax, out_ax, kw_ax = pb.vm
    gex = pb.example_fn()
    kwb = pb.kw_batched()
    kw_in = {k: kw_ax[k] for k in kwb}

    def tangents(xi, kwi):
        fi = lambda p: gex(p, xi, kwi)  # noqa: E731
        o, vjp_fn = jax.vjp(fi, pb.params)
        basis = std_basis(o.shape, o.dtype)
        return jax.vmap(lambda e: vjp_fn(e)[0])(basis)

    n_ex = n_examples(xs2, in_ax)
    ts = chunked_vmap(tangents, (xs2, kwb), (in_ax, kw_in), n_ex,
                       _jacobian_bytes(pb, xs2, n_ex))  # (N2, K2, *P)
    n2, k2 = tree_leaves(ts)[0].shape[:2]
    flat = tree_map(lambda a: a.reshape((n2 * k2,) + a.shape[2:]), ts)
    # one column is a forward pass (primal and tangent) over all of x1
    col_bytes = 2.0 * _forward_bytes(pb, x1)
    cols = chunked_vmap(lambda t: jax.jvp(f1, (pb.params,), (t,))[1], (flat,), (0,),
                         n2 * k2, col_bytes)  # (N2*K2, *O1)
    out2_shape = pb.out_shape(xs2)
    ndim = len(out2_shape)
    ox = out_ax % ndim
    rest = tuple(s for k, s in enumerate(out2_shape) if k != ox)
    cols = cols.reshape((n2,) + rest + cols.shape[1:])
    # (N2, rest2..., O1...) -> (O1..., O2...) with N2 at ox.
    o1nd = cols.ndim - 1 - len(rest)
    perm = list(range(1 + len(rest), cols.ndim))
    o2 = list(range(1, 1 + len(rest)))
    o2.insert(ox, 0)
    k_full = jnp.transpose(cols, perm + o2)
    del o1nd
    return lab.reduce_full(k_full)
