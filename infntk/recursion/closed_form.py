r"""The whole network's kernels as one sympy expression, and one fused JAX function of it.

For a fully-connected model (Dense, activations, LayerNorm, Identity, sums and concatenations of
branches) the per-layer recursions substitute into each other, starting from the input statistics

.. math:: K^{(0)} = \frac{x\cdot x'}{d} = \texttt{xy},\quad
          K^{(0)}_{11} = \frac{\|x\|^2}{d} = \texttt{xx},\quad
          K^{(0)}_{22} = \frac{\|x'\|^2}{d} = \texttt{yy},\quad \Theta^{(0)} = 0

(the input kernel of :meth:`infntk.kernel.Kernel.from_inputs`), keeping the two variance tracks
:math:`K_{11}^{(l)} = T(K_{11}^{(l-1)}, K_{11}^{(l-1)}, K_{11}^{(l-1)})`, ... alongside. The result
is ``(nngp, ntk)`` in ``xx, xy, yy`` (and ``d`` for standard-parameterized models whose input
dimension was not given). Duals computed only numerically (``method == 'quadrature'``) and spatial
layers have no such closed form: :class:`~infntk.recursion.steps.NotSymbolic` (an
:class:`~infntk.errors.InfntkError`) says which layer.

:func:`compile_closed_form` lambdifies both expressions together -- common subexpressions shared --
onto ``jax.numpy`` through :mod:`infntk.dual.compile`'s stability rewrites (clipped ``acos``/``asin``,
clamped fractional powers, zero-variance inputs).

Example:
    >>> import infntk as nk, sympy as sp
    >>> from infntk.recursion import XX, XY, YY
    >>> model = nk.Dense(8, W_std=2.0, b_std=1.0) >> nk.Monomial(2) >> nk.Dense(1, W_std=1.0)
    >>> nngp, ntk = model.recursion().closed_form()
    >>> sp.expand(nngp - ((4*XX + 1) * (4*YY + 1) + 2 * (4*XY + 1)**2))
    0
"""
from __future__ import annotations

import functools
from typing import Callable

import jax.numpy as jnp
import sympy as sp

from ..dual import Q11, Q12, Q22
from ..dual import compile as _compile
from ..errors import InfntkError
from .steps import NotSymbolic, exact
from .symbols import STATE_OF, XX, XY, YY, param_symbol

__all__ = ["closed_form", "compile_closed_form"]

#: How each state symbol reads in the equation of a pair (``'nngp'``) or of an input's own
#: covariance (``'cov1'``, ``'cov2'``: the pair at x' = x): which field of the state it stands for.
_FIELD = {
    "nngp": {"K": "k12", "K11": "k11", "K22": "k22", "Θ": "t12"},
    "cov1": {"K": "k11", "K11": "k11", "K22": "k11"},
    "cov2": {"K": "k22", "K11": "k22", "K22": "k22"},
}


def _closed_operator(step, e):
    """The sympy definition of a named operator application (duals), or :class:`NotSymbolic`."""
    role, feat = e.func.role, e.func.payload
    if role == "linear":
        raise NotSymbolic(f"closed_form: {step.name} acts on the spatial covariance; the closed "
                          "form in (xx, xy, yy) exists only for fully-connected models.")
    name = getattr(feat, "name", "") or feat.phi
    if role == "m":
        if feat.mean is None:
            raise NotSymbolic(f"closed_form: the mean of {name} is computed by quadrature; it has "
                              "no symbolic form.")
        return sp.sympify(feat.mean).xreplace({Q11: e.args[0]})
    expr = feat.nngp if role == "T" else feat.dnngp
    if expr is None:
        what = "dual" if role == "T" else "derivative dual"
        raise NotSymbolic(f"closed_form: the {what} of {name} is computed by {feat.method}; it "
                          "has no symbolic form.")
    q11, q12, q22 = e.args
    return expr.xreplace({Q11: q11, Q12: q12, Q22: q22})


def _substitute(step, expr, env, role, params):
    def sub(sym):
        if sym in STATE_OF:
            label, kind = STATE_OF[sym]
            return env[label][_FIELD[role][kind]]
        return params.get(sym, sym)
    expr = sp.sympify(expr)
    expr = expr.xreplace({s: sub(s) for s in expr.free_symbols})
    return _close_operators(step, expr)


def _close_operators(step, expr):
    """Every named operator in ``expr`` replaced by its sympy definition (innermost first)."""
    return expr.replace(lambda e: bool(getattr(getattr(e, "func", None), "role", "")),
                        lambda e: _closed_operator(step, e))


def _fold(steps, env, mode: str, parameters: dict):
    last = None
    for step in steps:
        for _, branch in step.branches:
            _fold(branch, env, mode, parameters)
        params = {}
        for sym, value in step.params:
            if mode == "symbolic" and str(sym) != "n":
                params[sym] = param_symbol(str(sym), step.label_out)
                parameters[params[sym]] = value
            else:
                params[sym] = exact(value)
        out = {r: _substitute(step, step.nngp, env, r, params) for r in ("nngp", "cov1", "cov2")}
        env[step.label_out] = {"k12": out["nngp"], "k11": out["cov1"], "k22": out["cov2"]}
        env[step.label_out]["t12"] = _substitute(step, step.ntk, env, "nngp", params)
        last = step.label_out
    return last


@functools.lru_cache(maxsize=128)
def closed_form(rec, params: str = "numeric"):
    """``(nngp, ntk, parameters)``: the model's kernels in ``xx, xy, yy`` and, for
    ``params='symbolic'``, the map from the per-layer hyperparameter symbols to their values."""
    if params not in ("numeric", "symbolic"):
        raise InfntkError(f"closed_form: params must be 'numeric' or 'symbolic', got {params!r}.")
    if len(rec.shape) > 2:
        raise NotSymbolic("closed_form: the input has spatial axes; the closed form in (xx, xy, yy) "
                          "exists only for fully-connected models.")
    env = {(0,): {"k12": XY, "k11": XX, "k22": YY, "t12": sp.S.Zero}}
    parameters: dict = {}
    last = _fold(rec.steps, env, params, parameters)
    if len(rec.steps[-1].shape_out) > 2:
        raise NotSymbolic("closed_form: the model's output has spatial axes.")
    return sp.sympify(env[last]["k12"]), sp.sympify(env[last]["t12"]), parameters
@functools.lru_cache(maxsize=128)
def _lambdified(nngp: sp.Expr, ntk: sp.Expr) -> Callable:
    # the input statistics are variances and a covariance: compile them as Q11, Q12, Q22 so that the
    # zero-variance rules of infntk.dual.compile apply to them too
    to_q = {XX: Q11, XY: Q12, YY: Q22}
    exprs = [_compile.rewrite_stable(sp.sympify(e).xreplace(to_q)) for e in (nngp, ntk)]
    namespace = getattr(_compile, "_NAMESPACE", {})
    return sp.lambdify((Q11, Q12, Q22), exprs, modules=[namespace, "jax"], cse=True)


def compile_closed_form(nngp: sp.Expr, ntk: sp.Expr) -> Callable:
    """One ``jax.numpy`` function ``(xx, xy, yy) -> (nngp, ntk)`` of the two closed forms
    (broadcasting, jit-able, dtype-preserving)."""
    free = (sp.sympify(nngp).free_symbols | sp.sympify(ntk).free_symbols) - {XX, XY, YY}
    if free:
        raise InfntkError(f"compile: the closed form still depends on {sorted(map(str, free))}; "
                          "pass input_shape to recursion() (for d) or params='numeric'.")
    raw = _lambdified(sp.sympify(nngp), sp.sympify(ntk))

    def fn(xx, xy, yy):
        xs = [jnp.asarray(v) for v in (xx, xy, yy)]
        dtype = jnp.result_type(*xs)
        if not jnp.issubdtype(dtype, jnp.floating):
            dtype = jnp.result_type(float)
        xs = [v.astype(dtype) for v in xs]
        shape = jnp.broadcast_shapes(*(v.shape for v in xs))
        a, b = raw(*xs)
        return (jnp.broadcast_to(jnp.asarray(a).astype(dtype), shape),
                jnp.broadcast_to(jnp.asarray(b).astype(dtype), shape))

    fn.__doc__ = "(xx, xy, yy) -> (nngp, ntk), compiled from the closed form of the recursion."
    return fn
