r"""Empirical (finite-width) NNGP and NTK of any JAX function ``f(params, x)``.

Signatures and output conventions follow ``neural_tangents`` 0.6.5
(``nt.empirical_ntk_fn``, ``nt.empirical_nngp_fn``, ``nt.empirical_kernel_fn``):

.. math::

    \mathrm{NNGP}(x_1, x_2) = \frac{1}{|T|}\, f(x_1) f(x_2)^\top, \qquad
    \Theta(x_1, x_2) = \frac{1}{|T|}\, \sum_{w}
        \frac{\partial f(x_1)}{\partial w} \frac{\partial f(x_2)}{\partial w}^\top,

where the products run over ``trace_axes`` (their pair of axes is summed and the
result **averaged**: divided by :math:`|T|`, the product of their sizes, exactly as
neural-tangents does), ``diagonal_axes`` appear once in the output, and every other
output axis appears twice, zipped: an ``f(x)`` of shape ``(N, K)`` with
``trace_axes=()`` gives a kernel of shape ``(N1, N2, K, K)``.

Four NTK implementations give the same numbers (to float precision):

* ``'jacobian_contraction'``: per-example Jacobians :math:`J = \partial f/\partial w`
  by reverse mode, contracted leaf by leaf.
* ``'ntk_vector_products'``: columns :math:`\Theta e = J_1 (J_2^\top e)` by a VJP then a
  JVP, for every output basis vector :math:`e`; never forms a Jacobian.
* ``'structured'``: structured derivatives (Novak, Sohl-Dickstein, Schoenholz 2022,
  "Fast Finite Width Neural Tangent Kernel"). The function is traced to a jaxpr
  (``jax.make_jaxpr``, public API). A weight :math:`W` consumed (possibly through a
  scalar rescaling) by a single ``dot_general`` or ``conv_general_dilated``
  :math:`y = h\,W` has :math:`\partial y_{ps}/\partial W_{rs'} = h_{pr}\,\delta_{ss'}`,
  so its NTK term is the four-factor contraction

  .. math:: \Theta_W = \sum_{p,q,r,s} G^{(1)}_{a p s}\, h^{(1)}_{p r}\,
            h^{(2)}_{q r}\, G^{(2)}_{b q s}, \qquad G = \partial f / \partial y,

  evaluated in the cheapest order (``opt_einsum``), which never materialises
  :math:`\partial f/\partial W` when that is more expensive (dense layers: cost
  :math:`O(N_1 N_2 (n_\text{in} + K^2 n_\text{out}))` instead of
  :math:`O(N_1 N_2 K^2 n_\text{in} n_\text{out})`). Convolutions use patches
  (``lax.conv_general_dilated_patches``). Any other use of a parameter leaf
  (biases, shared weights, exotic primitives) falls back, for that leaf only, to its
  exact Jacobian, so the method is sound for every ``f``; the cotangents
  :math:`G` for all leaves come from one reverse pass with zero "probes" added to
  the tapped pre-activations.
* ``'auto'``: picks the cheapest of the three from a FLOP model of the shapes.

All computations are split into blocks of examples so that the estimated working
memory stays under ``memory_budget`` bytes (only when ``vmap_axes`` certifies that
examples are independent; otherwise the whole batch is done at once).

Example:
    >>> import jax, jax.numpy as jnp
    >>> from infntk.empirical import empirical_ntk_fn
    >>> def f(p, x):
    ...     return jnp.tanh(x @ p[0]) @ p[1]
    >>> k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    >>> params = (jax.random.normal(k1, (3, 16)), jax.random.normal(k2, (16, 2)))
    >>> x = jax.random.normal(k3, (5, 3))
    >>> ntk = empirical_ntk_fn(f, vmap_axes=0, implementation='structured')(x, None, params)
    >>> ntk.shape
    (5, 5)
"""
from __future__ import annotations

import collections
import enum
import functools
import math
import string
from typing import Any, Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.tree_util import tree_flatten, tree_leaves, tree_map, tree_unflatten

from . import chunked_einsum
from .chunked_einsum import contract
from .fusion import divide_by_one

try:  # infntk.errors is owned by the core; keep this module importable without it.
    from infntk.errors import InfntkError
except Exception:  # pragma: no cover
    class InfntkError(ValueError):
        """Bad input to infntk."""

__all__ = [
    "NtkImplementation",
    "empirical_ntk_fn",
    "empirical_nngp_fn",
    "empirical_kernel_fn",
    "empirical_ntk_vp_fn",
    "ntk_cost_model",
    "DEFAULT_MEMORY_BUDGET",
]

DEFAULT_MEMORY_BUDGET = 2 ** 30
"""Default working-memory budget in bytes for one block of the kernel."""

_HIGHEST = lax.Precision.HIGHEST


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


# ---------------------------------------------------------------------------
# Axes bookkeeping: output layout exactly as neural-tangents.
# ---------------------------------------------------------------------------

def _canon_axes(axes, ndim: int, what: str) -> tuple[int, ...]:
    if axes is None:
        axes = ()
    if isinstance(axes, int):
        axes = (axes,)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise InfntkError(f"empirical kernel: {what} axis {a} out of range for "
                              f"an output of rank {ndim}.")
        out.append(a % ndim)
    return tuple(sorted(set(out)))


class _Labels:
    """Allocates einsum letters and describes the kernel's output layout.

    Out axis ``k`` of f(x1) / f(x2) gets: a shared letter if it is traced or
    diagonal, otherwise one letter per side; the output is zipped as in NT.
    """

    def __init__(self, shape1, shape2, trace_axes, diagonal_axes):
        ndim = len(shape1)
        if len(shape2) != ndim:
            raise InfntkError("empirical kernel: f(x1) and f(x2) have different ranks "
                              f"{shape1} vs {shape2}.")
        self.trace = _canon_axes(trace_axes, ndim, "trace")
        self.diag = _canon_axes(diagonal_axes, ndim, "diagonal")
        if set(self.trace) & set(self.diag):
            raise InfntkError("empirical kernel: an axis cannot be both in trace_axes "
                              "and diagonal_axes.")
        for k in self.trace + self.diag:
            if shape1[k] != shape2[k]:
                raise InfntkError(
                    f"empirical kernel: output axis {k} is traced/diagonal but has "
                    f"sizes {shape1[k]} and {shape2[k]} for x1 and x2.")
        self._free = iter(string.ascii_letters)
        self.o1, self.o2, self.out = [], [], []
        for k in range(ndim):
            if k in self.trace or k in self.diag:
                c = self.new()
                self.o1.append(c)
                self.o2.append(c)
                if k in self.diag:
                    self.out.append(c)
            else:
                c1, c2 = self.new(), self.new()
                self.o1.append(c1)
                self.o2.append(c2)
                self.out += [c1, c2]
        self.size = int(np.prod([shape1[k] for k in self.trace], dtype=np.int64))
        self.shape = []
        for k in range(ndim):
            if k in self.diag:
                self.shape.append(shape1[k])
            elif k not in self.trace:
                self.shape += [shape1[k], shape2[k]]
        self.shape = tuple(self.shape)

    def new(self, n: int = 1):
        if n == 1:
            return next(self._free)
        return [next(self._free) for _ in range(n)]

    def fork(self):
        """A copy whose fresh-letter allocator restarts after the output letters."""
        other = object.__new__(_Labels)
        other.__dict__.update(self.__dict__)
        used = set(self.o1) | set(self.o2)
        other._free = iter([c for c in string.ascii_letters if c not in used])
        return other

    def reduce_full(self, k_full):
        """Full kernel of layout ``O1 + O2`` -> NT layout (trace/diagonal applied)."""
        spec = "".join(self.o1) + "".join(self.o2) + "->" + "".join(self.out)
        return jnp.einsum(spec, k_full) / self.size


# ---------------------------------------------------------------------------
# vmap axes and per-example functions.
# ---------------------------------------------------------------------------

def _vmap_triple(vmap_axes):
    if vmap_axes is None:
        return None
    if isinstance(vmap_axes, tuple) and len(vmap_axes) == 3:
        in_ax, out_ax, kw_ax = vmap_axes
    else:
        in_ax, out_ax, kw_ax = vmap_axes, vmap_axes, {}
    if not isinstance(in_ax, int) or not isinstance(out_ax, int):
        raise InfntkError("empirical_ntk_fn: vmap_axes must be an int or a triple "
                          "(in_axis: int, out_axis: int, kwargs_axes: dict).")
    return in_ax, out_ax, dict(kw_ax or {})


def _single_array(out, fname):
    leaves = tree_leaves(out)
    if len(leaves) != 1 or not hasattr(leaves[0], "shape"):
        raise InfntkError(f"{fname}: f(params, x) must return a single array; got "
                          f"{jax.tree_util.tree_structure(out)}.")
    return leaves[0]


def _n_examples(x, axis):
    leaves = tree_leaves(x)
    return leaves[0].shape[axis]


def _take(x, axis, start, stop):
    return tree_map(lambda a: lax.slice_in_dim(a, start, stop, axis=axis % a.ndim), x)


class _Problem:
    """One kernel evaluation: f, params, inputs, kwargs and axis conventions."""

    def __init__(self, f, params, kwargs, vm, fname):
        self.f, self.params, self.kwargs, self.vm, self.fname = f, params, kwargs, vm, fname

    def full_f(self, x):
        kw = self.kwargs
        return lambda p: _single_array(self.f(p, x, **kw), self.fname)

    def example_fn(self):
        """f on one example (batch axis removed in x, kwargs and output)."""
        in_ax, out_ax, kw_ax = self.vm

        def g(p, xi, kwi):
            xe = tree_map(lambda a: jnp.expand_dims(a, in_ax % (a.ndim + 1)), xi)
            kw = dict(self.kwargs)
            for k, ax in kw_ax.items():
                kw[k] = tree_map(lambda a: jnp.expand_dims(a, ax % (a.ndim + 1)), kwi[k])
            out = _single_array(self.f(p, xe, **kw), self.fname)
            return jnp.squeeze(out, out_ax % out.ndim)
        return g

    def kw_batched(self):
        _, _, kw_ax = self.vm
        return {k: self.kwargs[k] for k in kw_ax}

    def out_shape(self, x):
        return jax.eval_shape(lambda p: _single_array(self.f(p, x, **self.kwargs),
                                                      self.fname), self.params).shape


def _std_basis(shape, dtype):
    n = int(np.prod(shape, dtype=np.int64))
    return jnp.eye(n, dtype=dtype).reshape((n,) + tuple(shape))


# ---------------------------------------------------------------------------
# Structured derivatives: jaxpr analysis (public API only) and a tiny interpreter.
# ---------------------------------------------------------------------------

_SCALE_PRIMS = ("mul",)
_PASS_PRIMS = ("convert_element_type", "copy", "copy_p")


def _is_literal(v) -> bool:
    return hasattr(v, "val") and not hasattr(v, "count")


def _same(a, b) -> bool:
    return a is b


def _consumers(jaxpr, var):
    res = []
    for i, eqn in enumerate(jaxpr.eqns):
        for pos, v in enumerate(eqn.invars):
            if not _is_literal(v) and _same(v, var):
                res.append((i, pos))
    return res


def _in_outvars(jaxpr, var):
    return any((not _is_literal(v)) and _same(v, var) for v in jaxpr.outvars)


def _size(shape):
    return int(np.prod(shape, dtype=np.int64))


class _Tap(collections.namedtuple(
        "_Tap", "leaf kind eqn wpos scales")):
    """How one parameter leaf is differentiated.

    kind: 'leaf' (exact Jacobian of this leaf), 'dot' or 'conv' (structured: the
    probe sits on the output of eqn, whose operand ``wpos`` is (a rescaling of) the
    leaf); scales: list of (eqn index, operand position) of scalar factors.
    """


def _plan(jaxpr, n_leaves):
    """Decide a tap per parameter leaf."""
    taps = []
    for li in range(n_leaves):
        var = jaxpr.invars[li]
        tap = _Tap(li, "leaf", None, None, ())
        cur, scales = var, []
        for _ in range(8):  # follow a short chain of rescalings
            if _in_outvars(jaxpr, cur):
                break
            cons = _consumers(jaxpr, cur)
            if len(cons) != 1:
                break
            ei, pos = cons[0]
            eqn = jaxpr.eqns[ei]
            name = eqn.primitive.name
            if name in _SCALE_PRIMS and len(eqn.invars) == 2:
                other = eqn.invars[1 - pos]
                if _size(other.aval.shape) == 1 and len(other.aval.shape) == 0:
                    scales.append((ei, 1 - pos))
                    cur = eqn.outvars[0]
                    continue
                break
            if name in _PASS_PRIMS:
                cur = eqn.outvars[0]
                continue
            if name == "dot_general":
                (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
                other = eqn.invars[1 - pos]
                if not lb and not rb and not (not _is_literal(other) and _same(other, cur)):
                    tap = _Tap(li, "dot", ei, pos, tuple(scales))
            elif name == "conv_general_dilated" and pos == 1:
                p = eqn.params
                if p.get("feature_group_count", 1) == 1 and p.get("batch_group_count", 1) == 1:
                    tap = _Tap(li, "conv", ei, pos, tuple(scales))
            break
        taps.append(tap)
    return taps


def _bind_params(prim, params):
    """``get_bind_params`` returns (subfuns, params) in older jax, params in newer."""
    if not hasattr(prim, "get_bind_params"):  # pragma: no cover
        return [], params
    r = prim.get_bind_params(params)
    if isinstance(r, tuple) and len(r) == 2 and isinstance(r[1], dict):
        return list(r[0]), r[1]
    return [], r


def _eval_jaxpr(jaxpr, consts, args, eqn_probes, leaf_probes, captures):
    """Evaluate a jaxpr, adding probes to outputs of selected equations.

    eqn_probes: {eqn index: array added to that eqn's (single) output};
    leaf_probes: {invar index: array added to that input};
    captures: set of (eqn index, operand position) whose values are returned.
    """
    env = {}

    def read(v):
        return v.val if _is_literal(v) else env[v]

    for v, c in zip(jaxpr.constvars, consts):
        env[v] = c
    for i, (v, a) in enumerate(zip(jaxpr.invars, args)):
        env[v] = a + leaf_probes[i] if i in leaf_probes else a
    captured = {}
    for i, eqn in enumerate(jaxpr.eqns):
        invals = [read(v) for v in eqn.invars]
        for pos in range(len(invals)):
            if (i, pos) in captures:
                captured[(i, pos)] = invals[pos]
        prim = eqn.primitive
        subfuns, bind_params = _bind_params(prim, eqn.params)
        outs = prim.bind(*subfuns, *invals, **bind_params)
        if not prim.multiple_results:
            outs = [outs]
        if i in eqn_probes:
            outs = [outs[0] + eqn_probes[i]] + list(outs[1:])
        for v, o in zip(eqn.outvars, outs):
            env[v] = o
    return [read(v) for v in jaxpr.outvars], captured


class _Structured:
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
        self.taps = _plan(self.jaxpr, self.n_leaves)
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
            outs, cap = _eval_jaxpr(self.jaxpr, self.consts, list(leaves) + flat_x,
                                    eqn_probes, leaf_probes, captures)
            return outs[0], cap

        out, vjp_fn, cap = jax.vjp(run, probes, has_aux=True)
        basis = _std_basis(out.shape, out.dtype)
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
            p["rhs_dilation"], dn, precision=_HIGHEST)

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


def _contract_structured(lab: _Labels, st: _Structured, side1, side2, ex_axis):
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
    jac_bytes = _size([sizes[c] for c in j1]) * jnp.dtype(jnp.result_type(g, h)).itemsize
    # weight axes of g alone, summed in the Gram product: J can be formed a slice at a time
    free = [c for c in g1 if c in j1 and c not in h1 and c not in out and rename[c] == c]
    slices = _jacobian_slices(jac_bytes, [sizes[c] for c in free])
    if slices is None:
        jac = jnp.einsum(f"{g1},{h1}->{j1}", g, h, precision=_HIGHEST)
        return contract(f"{j1},{j2}->{out}", jac, jac)
    letter, width = free[slices[0]], slices[1]
    axis = g1.index(letter)

    def body(i, acc):
        part = lax.dynamic_slice_in_dim(g, i * width, width, axis)
        jac = jnp.einsum(f"{g1},{h1}->{j1}", part, h, precision=_HIGHEST)
        return acc + jnp.einsum(f"{j1},{j2}->{out}", jac, jac, precision=_HIGHEST)

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


# ---------------------------------------------------------------------------
# The three NTK block computations (one block of x1 against one block of x2).
# ---------------------------------------------------------------------------

def _block_structured(pb: _Problem, x1, x2, lab: _Labels):
    leaves, treedef = tree_flatten(pb.params)
    if pb.vm is None:
        def g(ls, x):
            return _single_array(pb.f(tree_unflatten(treedef, ls), x, **pb.kwargs), pb.fname)
        st = _Structured(g, leaves, x1)
        s1 = st.factors(leaves, x1)
        s2 = s1 if x2 is None else _Structured(g, leaves, x2).factors(leaves, x2)
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
    st = _Structured(g, leaves, (example(x1), kw0))
    fac = jax.vmap(lambda xi, kwi: st.factors(leaves, (xi, kwi)), in_axes=(in_ax, kw_in))
    s1 = fac(x1, kwb)
    s2 = s1 if x2 is None else fac(x2, kwb)
    return _contract_structured(lab, st, s1, s2, out_ax % len(lab.o1))


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


def _chunked_vmap(fn, args, in_axes, n: int, item_bytes: float):
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


def _forward_bytes(pb: _Problem, x) -> float:
    """Bytes of all values one forward pass on x creates (its jaxpr's equation outputs)."""
    jaxpr = jax.make_jaxpr(pb.full_f(x))(pb.params).jaxpr
    total = 0.0
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            aval = v.aval
            if hasattr(aval, "shape") and hasattr(aval, "dtype"):
                total += _size(aval.shape) * jnp.dtype(aval.dtype).itemsize
    return total


def _jacobians(pb: _Problem, x):
    """Per-leaf Jacobians with the out axes first (examples at fx axis if vmap)."""
    if pb.vm is None:
        return jax.jacrev(pb.full_f(x))(pb.params)
    in_ax, out_ax, kw_ax = pb.vm
    gex = pb.example_fn()
    kwb = pb.kw_batched()
    kw_in = {k: kw_ax[k] for k in kwb}
    n = _n_examples(x, in_ax)
    return _chunked_vmap(lambda xi, kwi: jax.jacrev(lambda p: gex(p, xi, kwi))(pb.params),
                         (x, kwb), (in_ax, kw_in), n, _jacobian_bytes(pb, x, n))


def _jacobian_bytes(pb: _Problem, x, n: int) -> float:
    """Bytes of one example's Jacobian (outputs per example x parameters)."""
    out_size = _size(pb.out_shape(x)) // max(n, 1)
    return out_size * sum(_size(jnp.shape(a)) * jnp.dtype(jnp.result_type(a)).itemsize
                          for a in tree_leaves(pb.params))


def _block_jacobian(pb: _Problem, x1, x2, lab: _Labels):
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


def _block_ntk_vp(pb: _Problem, x1, x2, lab: _Labels):
    xs2 = x1 if x2 is None else x2
    f1 = pb.full_f(x1)
    if pb.vm is None:
        f2 = pb.full_f(xs2)
        out2, vjp_fn = jax.vjp(f2, pb.params)
        basis = _std_basis(out2.shape, out2.dtype)

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
        basis = _std_basis(o.shape, o.dtype)
        return jax.vmap(lambda e: vjp_fn(e)[0])(basis)

    n_ex = _n_examples(xs2, in_ax)
    ts = _chunked_vmap(tangents, (xs2, kwb), (in_ax, kw_in), n_ex,
                       _jacobian_bytes(pb, xs2, n_ex))  # (N2, K2, *P)
    n2, k2 = tree_leaves(ts)[0].shape[:2]
    flat = tree_map(lambda a: a.reshape((n2 * k2,) + a.shape[2:]), ts)
    # one column is a forward pass (primal and tangent) over all of x1
    col_bytes = 2.0 * _forward_bytes(pb, x1)
    cols = _chunked_vmap(lambda t: jax.jvp(f1, (pb.params,), (t,))[1], (flat,), (0,),
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


_BLOCKS = {
    NtkImplementation.JACOBIAN_CONTRACTION: _block_jacobian,
    NtkImplementation.NTK_VECTOR_PRODUCTS: _block_ntk_vp,
    NtkImplementation.STRUCTURED_DERIVATIVES: _block_structured,
}


# ---------------------------------------------------------------------------
# Cost model (FLOPs and bytes per block) for 'auto' and batching.
# ---------------------------------------------------------------------------

def _forward_flops(pb: _Problem, x) -> float:
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
    n_p = sum(_size(jnp.shape(a)) for a in tree_leaves(pb.params))
    return 2.0 * n_p * _n_examples(x, 0)


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

    vm = _vmap_triple(vmap_axes)
    pb = _Problem(f, params, apply_fn_kwargs, vm, "ntk_cost_model")
    xs2 = x1 if x2 is None else x2
    o1, o2 = pb.out_shape(x1), pb.out_shape(xs2)
    ax = 0 if vm is None else vm[1] % len(o1)
    n1, n2 = o1[ax], o2[ax]
    k = max(1, _size(o1) // max(n1, 1))
    n_p = sum(_size(jnp.shape(a)) for a in tree_leaves(params))
    item = jnp.dtype(jnp.result_type(*tree_leaves(params))).itemsize
    fwd = _forward_flops(pb, x1) / max(n1, 1)
    lab = _Labels(o1, o2, trace_axes, diagonal_axes)
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
        x0 = _take(x1, 0 if vm is None else vm[0], 0, 1)

        def g(ls, x):
            return _single_array(f(tree_unflatten(treedef, ls), x, **apply_fn_kwargs),
                                 "ntk_cost_model")
        st = _Structured(g, leaves, x0)
        # cotangents only (no weight gradients): ~ 2 forward passes per output.
        fl, by = 2 * fwd * k * sides, 0.0
        side, pair = 0.0, 0.0
        for t in st.taps:
            y_roles, h_roles = st.term_specs(t.leaf)
            if t.kind == "leaf":
                w = _size(st.jaxpr.invars[t.leaf].aval.shape)
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
                r = _size(w_shape) // w_shape[dn.rhs_spec[0]]
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
            by += (n1 + n2) * (k * _size(y_shape) + _size(h_shape)) * item
            by += float(info.largest_intermediate) * item
            side += (k * _size(y_shape) + _size(h_shape)) * item
            pair = max(pair, float(info.largest_intermediate) * item / max(n1 * n2, 1))
        res["structured"] = {"flops": fl, "bytes": by, "bytes_terms": (side, side, pair)}
    except Exception as e:  # pragma: no cover - analysis failed: never pick it
        res["structured"] = {"flops": math.inf, "bytes": math.inf, "error": repr(e)}
    return res


# ---------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------

_BYTE_WEIGHT = 4.0
"""FLOP-equivalents per byte of working memory in the 'auto' score (memory traffic)."""


def _score(cost: dict) -> float:
    """'auto' ranks implementations by FLOPs plus a memory-traffic term."""
    return cost["flops"] + _BYTE_WEIGHT * cost["bytes"]


def _batch_sizes(cost: dict, n1: int, n2: int, memory_budget: Optional[float]):
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
    vm = _vmap_triple(vmap_axes)
    cache: dict = {}

    def _jitted(choice, lab_key, has_x2, kw_keys):
        key = (choice, lab_key, has_x2, kw_keys)
        if key not in cache:
            def run(x1, x2, params, kwargs):
                pb = _Problem(f, params, kwargs, vm, "empirical_ntk_fn")
                o1 = pb.out_shape(x1)
                o2 = o1 if x2 is None else pb.out_shape(x2)
                lab = _Labels(o1, o2, trace_axes, diagonal_axes)
                return _BLOCKS[choice](pb, x1, x2, lab)
            cache[key] = jax.jit(run, static_argnums=()) if not has_x2 else jax.jit(run)
        return cache[key]

    def ntk_fn(x1, x2, params, **apply_fn_kwargs):
        pb = _Problem(f, params, apply_fn_kwargs, vm, "empirical_ntk_fn")
        o1 = pb.out_shape(x1)
        o2 = o1 if x2 is None else pb.out_shape(x2)
        lab = _Labels(o1, o2, trace_axes, diagonal_axes)
        choice = impl
        costs = None
        if impl == NtkImplementation.AUTO or (memory_budget is not None and vm is not None):
            shape_key = ("cost", tuple(tree_map(jnp.shape, tree_leaves((x1, x2)))))
            if shape_key not in cache:
                cache[shape_key] = ntk_cost_model(f, params, x1, x2, trace_axes,
                                                  diagonal_axes, vmap_axes, **apply_fn_kwargs)
            costs = cache[shape_key]
        if impl == NtkImplementation.AUTO:
            name = min(costs, key=lambda n: _score(costs[n]))
            choice = _NAMES[name]
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
        n1 = _n_examples(x1, in_ax)
        n2 = n1 if x2 is None else _n_examples(x2, in_ax)
        b1, b2 = _batch_sizes(costs[name], n1, n2, memory_budget)
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
            xa = _take(x1, in_ax, s1, min(n1, s1 + b1))
            cols = []
            for s2 in range(0, n2, b2):
                xb = _take(xs2, in_ax, s2, min(n2, s2 + b2))
                same = x2 is None and s1 == s2 and b1 == b2
                cols.append(block(xa, None if same else xb))
            rows.append(jnp.concatenate(cols, axis=pos2))
        return jnp.concatenate(rows, axis=pos1)

    return ntk_fn


def _blocked_ntk(block, lab: "_Labels", pos1: int, pos2: int, x1, x2, size: int):
    """The NTK of batched array inputs in ``size x size`` blocks of examples, in one compiled loop
    (:func:`infntk.blocking.blocked_kernel`: in-place writes, and with ``x2 = None`` only the
    blocks on and above the diagonal, the rest transposed), so memory stays at one block's."""
    from .blocking import blocked_kernel

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
            lab = _Labels(a.shape, b.shape, trace_axes, diagonal_axes)
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
        if get is None:
            get = ("nngp", "ntk")
        single = isinstance(get, str)
        gets = (get,) if single else tuple(get)
        for g in gets:
            if g not in fns:
                raise InfntkError(f"empirical_kernel_fn: unknown get={g!r}; expected "
                                  "'nngp' and/or 'ntk'.")
        vals = {g: fns[g](x1, x2, params, **apply_fn_kwargs) for g in gets}
        if single:
            return vals[get]
        return collections.namedtuple("EmpiricalKernel", gets)(**vals)
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
