r"""The ``'structured'`` NTK implementation (Novak, Sohl-Dickstein, Schoenholz 2022, "Fast Finite
Width Neural Tangent Kernel").

A weight :math:`W` consumed (possibly through a scalar rescaling) by one ``dot_general`` or
``conv_general_dilated`` :math:`y = h\,W` has :math:`\partial y_{ps}/\partial W_{rs'} = h_{pr}\,
\delta_{ss'}`, so its NTK term is the four-factor contraction

.. math:: \Theta_W = \sum_{p,q,r,s} G^{(1)}_{a p s}\, h^{(1)}_{p r}\, h^{(2)}_{q r}\, G^{(2)}_{b q s},
          \qquad G = \partial f / \partial y,

evaluated in the cheapest order (``opt_einsum``). :class:`Structured` finds the taps
(:mod:`.jaxpr`) and computes the factors :math:`G` (one reverse pass with zero probes added to the
tapped outputs) and :math:`h` (layer inputs, or patches for convolutions); other leaves fall back to
their exact Jacobians. The terms are contracted one leaf at a time; with ``x2 = None`` each side's
weight Jacobian is formed once (in slices under ``chunked_einsum.SLICE_BYTES``) and contracted with
itself.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.tree_util import tree_flatten, tree_leaves, tree_map, tree_unflatten

from .. import chunked_einsum
from ..chunked_einsum import contract
from ..errors import InfntkError
from ..fusion import divide_by_one
from .jaxpr import eval_jaxpr, plan_taps
from .layout import HIGHEST, Labels, Problem, n_elements, single_array, std_basis


class Structured:
    """Structured-derivative factors of one function ``g(leaves, x)``."""

    def __init__(self, g, leaves, x_example):
        flat_x, self.x_tree = tree_flatten(x_example)
        self.n_leaves = len(leaves)
        spec = [jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a))
                for a in list(leaves) + flat_x]

        def flat_g(*args):
            ls, xs = args[:self.n_leaves], args[self.n_leaves:]
            return g(list(ls), tree_unflatten(self.x_tree, list(xs)))

        with jax.disable_jit():
            closed = jax.make_jaxpr(flat_g)(*spec)
        self.jaxpr, self.consts = closed.jaxpr, closed.consts
        if len(self.jaxpr.outvars) != 1:
            raise InfntkError("empirical_ntk_fn: f must return a single array.")
        self.taps = plan_taps(self.jaxpr, self.n_leaves)
        self.out_aval = self.jaxpr.outvars[0].aval

    def _probe_shapes(self):
        shapes = {}
        for t in self.taps:
            if t.kind == "leaf":
                av = self.jaxpr.invars[t.leaf].aval
            else:
                av = self.jaxpr.eqns[t.eqn].outvars[0].aval
            shapes[t.leaf] = (tuple(av.shape), av.dtype)
        return shapes

    def factors(self, leaves, x):
        """Returns ({leaf: G}, {leaf: H}) for one input (batch) x.

        G has shape ``out.shape + probe.shape``; H is the (rescaled) layer input for
        'dot', the patches for 'conv', absent for 'leaf'.
        """
        flat_x = tree_leaves(x)
        shapes = self._probe_shapes()
        probes = {li: jnp.zeros(s, d) for li, (s, d) in shapes.items()}
        captures = set()
        for t in self.taps:
            if t.kind != "leaf":
                captures.add((t.eqn, 1 - t.wpos))
                captures.update(t.scales)

        def run(pr):
            eqn_probes = {t.eqn: pr[t.leaf] for t in self.taps if t.kind != "leaf"}
            leaf_probes = {t.leaf: pr[t.leaf] for t in self.taps if t.kind == "leaf"}
            outs, cap = eval_jaxpr(self.jaxpr, self.consts, list(leaves) + flat_x,
                                    eqn_probes, leaf_probes, captures)
            return outs[0], cap

        out, vjp_fn, cap = jax.vjp(run, probes, has_aux=True)
        basis = std_basis(out.shape, out.dtype)
        gs = jax.vmap(lambda e: vjp_fn(e)[0])(basis)
        gs = {li: g.reshape(out.shape + g.shape[1:]) for li, g in gs.items()}
        hs = {}
        for t in self.taps:
            if t.kind == "leaf":
                continue
            h = cap[(t.eqn, 1 - t.wpos)]
            scale = 1.0
            for s in t.scales:
                scale = scale * cap[s]
            if t.kind == "conv":
                h = self._patches(t, h)
            hs[t.leaf] = h * scale
        return gs, hs

    def _patches(self, t, h):
        eqn = self.jaxpr.eqns[t.eqn]
        p = eqn.params
        dn = p["dimension_numbers"]
        w_shape = eqn.invars[1].aval.shape
        filt = tuple(w_shape[d] for d in dn.rhs_spec[2:])
        return lax.conv_general_dilated_patches(
            h, filt, p["window_strides"], p["padding"], p["lhs_dilation"],
            p["rhs_dilation"], dn, precision=HIGHEST)

    def term_specs(self, leaf):
        """(G axis roles, H axis roles) for a tapped leaf.

        Roles are ('P', i) for position axes (shared between G and H on one side),
        ('S', i) for weight-free axes shared across sides, ('R', i) for weight
        contracted axes shared across sides, ('W', i) for leaf axes.
        """
        t = self.taps[leaf]
        if t.kind == "leaf":
            nd = len(self.jaxpr.invars[leaf].aval.shape)
            return [("W", i) for i in range(nd)], None
        eqn = self.jaxpr.eqns[t.eqn]
        if t.kind == "dot":
            (lc, rc), _ = eqn.params["dimension_numbers"]
            h_contract = (lc, rc)[1 - t.wpos]
            w_contract = (lc, rc)[t.wpos]
            h_nd = len(eqn.invars[1 - t.wpos].aval.shape)
            w_nd = len(eqn.invars[t.wpos].aval.shape)
            h_roles, p_roles = [], []
            for a in range(h_nd):
                if a in h_contract:
                    h_roles.append(("R", list(h_contract).index(a)))
                else:
                    h_roles.append(("P", len(p_roles)))
                    p_roles.append(h_roles[-1])
            s_roles = [("S", i) for i, a in enumerate(range(w_nd)) if a not in w_contract]
            s_roles = [("S", i) for i in range(len(s_roles))]
            y_roles = p_roles + s_roles if t.wpos == 1 else s_roles + p_roles
            return y_roles, h_roles
        # conv: y and patches share the output layout; feature axis differs.
        dn = eqn.params["dimension_numbers"]
        nd = len(eqn.outvars[0].aval.shape)
        feat = dn.out_spec[1]
        y_roles = [("S", 0) if a == feat else ("P", a) for a in range(nd)]
        h_roles = [("R", 0) if a == feat else ("P", a) for a in range(nd)]
        return y_roles, h_roles


def _contract_structured(lab: Labels, st: Structured, side1, side2, ex_axis):
    """Sum over leaves of the four-factor contractions (NT layout output)."""
    gs1, hs1 = side1
    gs2, hs2 = side2
    symmetric = side1 is side2
    total = None
    for t in st.taps:
        lb = lab.fork()
        y_roles, h_roles = st.term_specs(t.leaf)
        if total is not None:
            # one leaf's term at a time: its factors reach the contraction only once the terms
            # before it are summed, so no two leaves' intermediates are alive together
            gs1, hs1, gs2, hs2 = _sequenced(total, gs1, hs1, gs2, hs2, t.leaf)
        shared = {}

        def letter(role, side):
            key = role if role[0] in ("S", "R", "W") else (role, side)
            if key not in shared:
                shared[key] = lb.new()
            return shared[key]

        def o_letters(o, side):
            if ex_axis is None:
                return "".join(o)
            # per-example arrays: example axis first, then the other out axes.
            return o[ex_axis] + "".join(c for k, c in enumerate(o) if k != ex_axis)

        g1 = o_letters(lab.o1, 1) + "".join(letter(r, 1) for r in y_roles)
        g2 = o_letters(lab.o2, 2) + "".join(letter(r, 2) for r in y_roles)
        out = "".join(lab.out)
        if h_roles is None:
            spec = f"{g1},{g2}->{out}"
            term = contract(spec, gs1[t.leaf], gs2[t.leaf])
        else:
            e1 = lab.o1[ex_axis] if ex_axis is not None else ""
            e2 = lab.o2[ex_axis] if ex_axis is not None else ""
            h1 = e1 + "".join(letter(r, 1) for r in h_roles)
            h2 = e2 + "".join(letter(r, 2) for r in h_roles)
            spec = f"{g1},{h1},{h2},{g2}->{out}"
            ops = (gs1[t.leaf], hs1[t.leaf], hs2[t.leaf], gs2[t.leaf])
            if symmetric and _pairs_sides_first(spec, ops):
                term = _symmetric_term(g1, h1, g2, h2, out, ops[0], ops[1])
            else:
                term = contract(spec, *ops)
        total = term if total is None else total + term
    return total / lab.size


def _sequenced(total, gs1, hs1, gs2, hs2, leaf):
    """One leaf's factors made to depend on the sum of the terms before it, so that XLA schedules
    one leaf's contraction at a time and never holds two leaves' intermediates (per-example weight
    Jacobians) together. The factors are divided by a factor that is exactly 1 unless that sum is
    NaN (``fusion.divide_by_one``; an optimisation barrier does not survive XLA:CPU's pipeline):
    bitwise unchanged, and a NaN sum stays NaN."""
    witness = jnp.reshape(total, (-1,))[0]

    def dep(d):
        return {**d, leaf: divide_by_one(d[leaf], witness)} if d.get(leaf) is not None else d
    if gs1 is gs2 and hs1 is hs2:
        gs1, hs1 = dep(gs1), dep(hs1)
        return gs1, hs1, gs1, hs1
    return dep(gs1), dep(hs1), dep(gs2), dep(hs2)


def _pairs_sides_first(spec: str, ops) -> bool:
    """Whether the optimal order of ``g1, h1, h2, g2`` contracts each side's pair first (the
    per-example weight Jacobians), then the two results."""
    import opt_einsum

    path, _ = opt_einsum.contract_path(spec, *[o.shape for o in ops], shapes=True,
                                       optimize="optimal")
    # (0, 1) takes g1, h1 and appends their product: [h2, g2, J1]; (0, 1) again takes h2, g2.
    return [tuple(sorted(p)) for p in path[:2]] == [(0, 1), (0, 1)]


def _symmetric_term(g1: str, h1: str, g2: str, h2: str, out: str, g, h):
    """``g1,h1,h2,g2->out`` when both sides are the same arrays: the side-1 product
    :math:`J = g_1 h_1` (the per-example weight Jacobian) is formed once and contracted with itself
    under the side-2 labels, instead of forming the same numbers twice in two layouts."""
    rest = h2 + g2 + out
    j1 = "".join(dict.fromkeys(c for c in g1 + h1 if c in rest))
    rename = dict(zip(g1 + h1, g2 + h2))
    j2 = "".join(rename[c] for c in j1)
    sizes = {**dict(zip(g1, g.shape)), **dict(zip(h1, h.shape))}
    jac_bytes = n_elements([sizes[c] for c in j1]) * jnp.dtype(jnp.result_type(g, h)).itemsize
    # weight axes of g alone, summed in the Gram product: J can be formed a slice at a time
    free = [c for c in g1 if c in j1 and c not in h1 and c not in out and rename[c] == c]
    slices = _jacobian_slices(jac_bytes, [sizes[c] for c in free])
    if slices is None:
        jac = jnp.einsum(f"{g1},{h1}->{j1}", g, h, precision=HIGHEST)
        return contract(f"{j1},{j2}->{out}", jac, jac)
    letter, width = free[slices[0]], slices[1]
    axis = g1.index(letter)

    def body(i, acc):
        part = lax.dynamic_slice_in_dim(g, i * width, width, axis)
        jac = jnp.einsum(f"{g1},{h1}->{j1}", part, h, precision=HIGHEST)
        return acc + jnp.einsum(f"{j1},{j2}->{out}", jac, jac, precision=HIGHEST)

    both = {**sizes, **{rename[c]: sizes[c] for c in rename}}   # side 2: the same arrays
    acc = jnp.zeros(tuple(both[c] for c in out), jnp.result_type(g, h))
    return lax.fori_loop(0, sizes[letter] // width, body, acc)


def _jacobian_slices(jac_bytes: float, extents):
    """``(index into extents, width)``: the first weight axis that can be cut into slices whose
    per-example Jacobians stay under ``chunked_einsum.SLICE_BYTES``, or None (small, or no axis)."""
    limit = chunked_einsum.SLICE_BYTES
    if jac_bytes <= limit:
        return None
    want = math.ceil(jac_bytes / limit)
    for i, extent in enumerate(extents):
        width = chunked_einsum.slice_width(extent, want) if extent >= want else None
        if width is not None:
            return i, width
    return None


def block_structured(pb: Problem, x1, x2, lab: Labels):
    """The NTK of ``x1`` against ``x2`` (``None``: ``x1``) by structured derivatives."""
    leaves, treedef = tree_flatten(pb.params)
    if pb.vm is None:
        def g(ls, x):
            return single_array(pb.f(tree_unflatten(treedef, ls), x, **pb.kwargs), pb.fname)
        st = Structured(g, leaves, x1)
        s1 = st.factors(leaves, x1)
        s2 = s1 if x2 is None else Structured(g, leaves, x2).factors(leaves, x2)
        return _contract_structured(lab, st, s1, s2, None)
    in_ax, out_ax, kw_ax = pb.vm
    gex = pb.example_fn()
    kwb = pb.kw_batched()
    kw_in = {k: kw_ax[k] for k in kwb}

    def g(ls, xk):
        xi, kwi = xk
        return gex(tree_unflatten(treedef, ls), xi, kwi)

    def example(x):
        return tree_map(lambda a: jnp.take(a, 0, axis=in_ax % a.ndim), x)

    kw0 = {k: tree_map(lambda a: jnp.take(a, 0, axis=kw_in[k] % a.ndim), v)
           for k, v in kwb.items()}
    st = Structured(g, leaves, (example(x1), kw0))
    fac = jax.vmap(lambda xi, kwi: st.factors(leaves, (xi, kwi)), in_axes=(in_ax, kw_in))
    s1 = fac(x1, kwb)
    s2 = s1 if x2 is None else fac(x2, kwb)
    return _contract_structured(lab, st, s1, s2, out_ax % len(lab.o1))
