r"""The cost model: FLOPs and working memory of each NTK implementation, from the shapes alone.

``implementation='auto'`` takes the implementation of least :func:`score` (FLOPs plus
``_BYTE_WEIGHT`` FLOP-equivalents per byte of working memory), and :func:`batch_sizes` splits the
examples into the largest blocks whose modelled working memory fits ``memory_budget``
(default ``DEFAULT_MEMORY_BUDGET``).
"""
from __future__ import annotations

import math
import string
from typing import Optional

import jax
import jax.numpy as jnp
from jax.tree_util import tree_flatten, tree_leaves, tree_unflatten

from .layout import Labels, Problem, n_elements, n_examples, single_array, take, vmap_triple
from .structured import Structured

DEFAULT_MEMORY_BUDGET = 2 ** 30
"""Default working-memory budget in bytes for one block of the kernel."""


def _forward_flops(pb: Problem, x) -> float:
    """FLOPs of one forward pass on x (XLA cost analysis, else 2 * #params * N)."""
    try:
        ca = jax.jit(pb.full_f(x)).lower(pb.params).cost_analysis()
        if isinstance(ca, (list, tuple)):
            ca = ca[0]
        fl = float(ca.get("flops", 0.0))
        if fl > 0:
            return fl
    except Exception:  # pragma: no cover - backend without cost analysis
        pass
    n_p = sum(n_elements(jnp.shape(a)) for a in tree_leaves(pb.params))
    return 2.0 * n_p * n_examples(x, 0)


def ntk_cost_model(f, params, x1, x2=None, trace_axes=(-1,), diagonal_axes=(),
                   vmap_axes=None, **apply_fn_kwargs) -> dict:
    """Estimated FLOPs and peak bytes of each NTK implementation for these shapes.

    Model (N examples per side, K outputs per example, |P| parameters, F forward
    FLOPs per example, a reverse pass ~ 3F):

    * jacobian_contraction: :math:`3 F K (N_1+N_2) + N_1 N_2 K^2 |P|` (one side
      only when ``x2 is None``);
      memory :math:`(N_1+N_2) K |P|`.
    * ntk_vector_products: :math:`3 F K N_2 + 3 F K N_1 N_2`;
      memory :math:`N_2 K |P|`.
    * structured: :math:`2 F K (N_1+N_2)` (cotangents only) plus, per tapped leaf, the optimal
      ``opt_einsum`` cost of the four-factor contraction; memory of the factors.

    Returns ``{name: {'flops': float, 'bytes': float, 'bytes_terms': (a1, a2, c)}}``, where a block
    of ``b1 x b2`` examples needs about ``a1 b1 + a2 b2 + c b1 b2`` bytes (per-example derivatives
    scale with each side, the output and pairwise intermediates with both).
    """
    import opt_einsum

    vm = vmap_triple(vmap_axes)
    pb = Problem(f, params, apply_fn_kwargs, vm, "ntk_cost_model")
    xs2 = x1 if x2 is None else x2
    o1, o2 = pb.out_shape(x1), pb.out_shape(xs2)
    ax = 0 if vm is None else vm[1] % len(o1)
    n1, n2 = o1[ax], o2[ax]
    k = max(1, n_elements(o1) // max(n1, 1))
    n_p = sum(n_elements(jnp.shape(a)) for a in tree_leaves(params))
    item = jnp.dtype(jnp.result_type(*tree_leaves(params))).itemsize
    fwd = _forward_flops(pb, x1) / max(n1, 1)
    lab = Labels(o1, o2, trace_axes, diagonal_axes)
    kk = k * k / max(lab.size, 1) if lab.size > 1 else k * k
    sides = n1 if x2 is None else n1 + n2  # x2=None: one set of derivatives
    res = {
        "jacobian_contraction": {
            "flops": 3 * fwd * k * sides + n1 * n2 * kk * n_p,
            "bytes": (n1 + n2) * k * n_p * item,
            "bytes_terms": (k * n_p * item, k * n_p * item, kk * item)},
        "ntk_vector_products": {
            "flops": 3 * fwd * k * n2 + 3 * fwd * k * n1 * n2,
            "bytes": n2 * k * n_p * item + n1 * n2 * k * item,
            "bytes_terms": (0.0, k * n_p * item, k * item)},
    }
    # structured: analyse one example.
    try:
        leaves, treedef = tree_flatten(params)
        x0 = take(x1, 0 if vm is None else vm[0], 0, 1)

        def g(ls, x):
            return single_array(f(tree_unflatten(treedef, ls), x, **apply_fn_kwargs),
                                 "ntk_cost_model")
        st = Structured(g, leaves, x0)
        # cotangents only (no weight gradients): ~ 2 forward passes per output.
        fl, by = 2 * fwd * k * sides, 0.0
        side, pair = 0.0, 0.0
        for t in st.taps:
            y_roles, h_roles = st.term_specs(t.leaf)
            if t.kind == "leaf":
                w = n_elements(st.jaxpr.invars[t.leaf].aval.shape)
                fl += n1 * n2 * kk * w
                by += (n1 + n2) * k * w * item
                side += k * w * item
                continue
            eqn = st.jaxpr.eqns[t.eqn]
            y_shape = eqn.outvars[0].aval.shape
            if t.kind == "dot":
                h_shape = eqn.invars[1 - t.wpos].aval.shape
            else:
                dn = eqn.params["dimension_numbers"]
                w_shape = eqn.invars[1].aval.shape
                r = n_elements(w_shape) // w_shape[dn.rhs_spec[0]]
                h_shape = tuple(r if a == dn.out_spec[1] else s for a, s in enumerate(y_shape))
            letters = iter(string.ascii_letters)
            names = {}

            def nm(role, side):
                key = role if role[0] in ("S", "R") else (role, side)
                if key not in names:
                    names[key] = next(letters)
                return names[key]
            a1, b2, ii, jj = next(letters), next(letters), next(letters), next(letters)
            sizes = {a1: k, b2: k, ii: n1, jj: n2}
            g1 = ii + a1 + "".join(nm(r, 1) for r in y_roles)
            g2 = jj + b2 + "".join(nm(r, 2) for r in y_roles)
            h1 = ii + "".join(nm(r, 1) for r in h_roles)
            h2 = jj + "".join(nm(r, 2) for r in h_roles)
            for spec_s, shp in ((g1[2:], y_shape), (g2[2:], y_shape),
                                (h1[1:], h_shape), (h2[1:], h_shape)):
                for c, s in zip(spec_s, shp):
                    sizes[c] = s
            shapes = [tuple(sizes[c] for c in s) for s in (g1, h1, h2, g2)]
            out = ii + jj + ("" if lab.size > 1 and k > 1 else a1 + b2)
            if lab.size > 1 and k > 1:
                g2 = g2.replace(b2, a1)
                shapes[3] = tuple(sizes[c] if c != a1 else k for c in g2)
            _, info = opt_einsum.contract_path(f"{g1},{h1},{h2},{g2}->{out}", *shapes,
                                               shapes=True, optimize="optimal")
            fl += float(info.opt_cost)
            by += (n1 + n2) * (k * n_elements(y_shape) + n_elements(h_shape)) * item
            by += float(info.largest_intermediate) * item
            side += (k * n_elements(y_shape) + n_elements(h_shape)) * item
            pair = max(pair, float(info.largest_intermediate) * item / max(n1 * n2, 1))
        res["structured"] = {"flops": fl, "bytes": by, "bytes_terms": (side, side, pair)}
    except Exception as e:  # pragma: no cover - analysis failed: never pick it
        res["structured"] = {"flops": math.inf, "bytes": math.inf, "error": repr(e)}
    return res


_BYTE_WEIGHT = 4.0
"""FLOP-equivalents per byte of working memory in the 'auto' score (memory traffic)."""


def score(cost: dict) -> float:
    """'auto' ranks implementations by FLOPs plus a memory-traffic term."""
    return cost["flops"] + _BYTE_WEIGHT * cost["bytes"]


def cheapest(costs: dict) -> str:
    """The name of the implementation of least :func:`score` in :func:`ntk_cost_model`'s result."""
    return min(costs, key=lambda name: score(costs[name]))


def batch_sizes(cost: dict, n1: int, n2: int, memory_budget: Optional[float]):
    """The largest blocks ``(b1, b2)`` (the same size on both sides, capped by ``n1``, ``n2``) whose
    modelled working memory ``a1 b1 + a2 b2 + c b1 b2`` fits the budget; at least one example."""
    if memory_budget is None:
        return n1, n2
    a1, a2, c = cost.get("bytes_terms", (0.0, 0.0, cost["bytes"] / max(n1 * n2, 1)))

    def need(b):
        b1, b2 = min(b, n1), min(b, n2)
        return a1 * b1 + a2 * b2 + c * b1 * b2

    lo, hi = 1, max(n1, n2)
    if need(hi) <= memory_budget:
        return n1, n2
    while lo < hi:  # need() grows with b: the largest b that fits
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if need(mid) <= memory_budget else (lo, mid - 1)
    return min(lo, n1), min(lo, n2)
