"""Jaxpr tools for the structured route: which parameter leaves feed a ``dot_general`` or a
``conv_general_dilated`` directly (:func:`plan_taps`), and a small interpreter that evaluates a
jaxpr with probes added to chosen values and captures chosen operands (:func:`eval_jaxpr`).

Only jax's public API is used (``jax.make_jaxpr``, ``Primitive.bind``); a leaf used any other way
(biases, shared weights, other primitives) is tapped as ``'leaf'``: its exact Jacobian.
"""
from __future__ import annotations

import collections

from .layout import n_elements

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


class Tap(collections.namedtuple(
        "Tap", "leaf kind eqn wpos scales")):
    """How one parameter leaf is differentiated.

    kind: 'leaf' (exact Jacobian of this leaf), 'dot' or 'conv' (structured: the
    probe sits on the output of eqn, whose operand ``wpos`` is (a rescaling of) the
    leaf); scales: list of (eqn index, operand position) of scalar factors.
    """


def plan_taps(jaxpr, n_leaves):
    """Decide a tap per parameter leaf."""
    taps = []
    for li in range(n_leaves):
        var = jaxpr.invars[li]
        tap = Tap(li, "leaf", None, None, ())
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
                if n_elements(other.aval.shape) == 1 and len(other.aval.shape) == 0:
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
                    tap = Tap(li, "dot", ei, pos, tuple(scales))
            elif name == "conv_general_dilated" and pos == 1:
                p = eqn.params
                if p.get("feature_group_count", 1) == 1 and p.get("batch_group_count", 1) == 1:
                    tap = Tap(li, "conv", ei, pos, tuple(scales))
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


def eval_jaxpr(jaxpr, consts, args, eqn_probes, leaf_probes, captures):
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
