r"""Taylor models of a network around its parameters.

:func:`linearize` returns the first-order model (Lee et al. 2019)

.. math:: f^{\mathrm{lin}}(w, x) = f(w_0, x) + \partial_w f(w_0, x)\,(w - w_0),

computed with one JVP (no Jacobian is formed); :func:`taylor_expand` the order-``d``
model :math:`\sum_{k \le d} \frac{1}{k!} D^k f(w_0, x)[w - w_0]^{\otimes k}` by nested
JVPs. Same semantics and signatures as ``neural_tangents.linearize`` /
``neural_tangents.taylor_expand`` (0.6.5).

Example:
    >>> import jax.numpy as jnp
    >>> f = lambda p, x: jnp.sin(p * x)
    >>> f_lin = linearize(f, 1.0)
    >>> float(f_lin(1.0, 2.0)) == float(jnp.sin(2.0))
    True
"""
from __future__ import annotations

from typing import Any, Callable

import jax
from jax.tree_util import tree_map

from infntk.errors import InfntkError

__all__ = ["linearize", "taylor_expand"]


def _sub(a, b):
    return tree_map(lambda u, v: u - v, a, b)


def _add(a, b):
    return tree_map(lambda u, v: u + v, a, b)


def linearize(f: Callable, params: Any) -> Callable:
    """First-order Taylor expansion of ``f(params, *args, **kwargs)`` around ``params``.

    Returns ``f_lin(new_params, *args, **kwargs)``.
    """
    def f_lin(p, *args, **kwargs):
        dparams = _sub(p, params)
        out, tangent = jax.jvp(lambda q: f(q, *args, **kwargs), (params,), (dparams,))
        return _add(out, tangent)
    return f_lin


def taylor_expand(f: Callable, params: Any, degree: int) -> Callable:
    r"""Order-``degree`` Taylor expansion of ``f`` around ``params``.

    :math:`f_d(w) = \sum_{k=0}^{d} \frac{1}{k!} \frac{d^k}{dt^k} f(w_0 + t\,(w - w_0))|_{t=0}`,
    evaluated by nesting JVPs along the direction ``w - w0`` (Horner form, as NT).
    """
    if not isinstance(degree, int) or degree < 0:
        raise InfntkError(f"taylor_expand: degree must be a non-negative int, got {degree!r}.")

    def expand(g, dparams, k):
        # g(w0) + (1/(k+1)) * D[...]: Horner scheme on the directional derivatives.
        if k == degree:
            return g(params)

        def g_jvp(p):
            return jax.jvp(g, (p,), (dparams,))[1]
        rest = expand(g_jvp, dparams, k + 1)
        return _add(g(params), tree_map(lambda r: r / (k + 1), rest))

    def f_tayl(p, *args, **kwargs):
        dparams = _sub(p, params)
        return expand(lambda q: f(q, *args, **kwargs), dparams, 0)
    return f_tayl
