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
from .steps import Ctx, NotSymbolic, input_state, walk
from .symbols import XX, XY, YY

__all__ = ["closed_form", "compile_closed_form"]


@functools.lru_cache(maxsize=128)
def closed_form(model, input_shape=None, params: str = "numeric"):
    """``(nngp, ntk, parameters)``: the model's kernels in ``xx, xy, yy`` and, for
    ``params='symbolic'``, the map from the per-layer hyperparameter symbols to their values."""
    ctx = Ctx(display=False, params=params)
    out, _ = walk(model, input_state(input_shape, ctx), ctx)
    if isinstance(out, list):
        raise InfntkError("closed_form: the model ends in a list of branches (FanOut/parallel "
                          "without a FanInSum or FanInConcat).")
    if out.spatial:
        raise NotSymbolic("closed_form: the model's output has spatial axes.")
    return sp.sympify(out.k12), sp.sympify(out.t12), dict(ctx.parameters)


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
