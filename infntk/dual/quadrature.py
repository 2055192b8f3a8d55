r"""Gauss–Hermite quadrature of Gaussian expectations, in ``jax.numpy`` (jit-able, broadcasting).

The last-resort route for an activation with no closed form and no usable Hermite expansion:

.. math::
    T(q_{11}, q_{12}, q_{22}) = \sum_{i,j} w_i w_j\,
      \phi\big(\sqrt{q_{11}}\,z_i\big)\,
      \phi\big(\sqrt{q_{22}}\,(\rho z_i + \sqrt{1-\rho^2}\,z_j)\big),
    \qquad \rho = q_{12}/\sqrt{q_{11} q_{22}},

with the probabilists' Gauss–Hermite nodes :math:`z_i` and weights :math:`w_i` (summing to 1). It is
exact for polynomials of degree :math:`< 2n` in each variable and converges spectrally for smooth
:math:`\phi`; for a kink the error decays only algebraically, which is why this is the last resort.
Memory is :math:`O(n)` per entry: the outer sum is a ``lax.scan`` over the nodes.

Example:
    >>> import jax.numpy as jnp
    >>> t = gauss_hermite_dual(jnp.tanh, 32)
    >>> round(float(t(1.0, 1.0, 1.0)), 6)   # E[tanh(z)^2]
    0.394294
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["nodes", "gauss_hermite_dual", "gauss_hermite_mean"]


@functools.lru_cache(maxsize=64)
def nodes(degree: int):
    """Probabilists' Gauss–Hermite nodes and weights normalised to sum to 1 (numpy float64)."""
    z, w = np.polynomial.hermite_e.hermegauss(int(degree))
    return z, w / w.sum()


def _correlation(q11, q12, q22):
    p = q11 * q22
    pos = p > 0
    rho = jnp.where(pos, q12 / jnp.sqrt(jnp.where(pos, p, 1.0)), 0.0)
    return jnp.clip(rho, -1.0, 1.0)


def gauss_hermite_dual(phi: Callable, degree: int) -> Callable:
    """``(q11, q12, q22) -> E[phi(u) phi(v)]`` by ``degree x degree`` Gauss–Hermite quadrature.

    ``phi`` is an elementwise ``jax.numpy`` function. The returned function broadcasts, keeps
    the floating dtype of its arguments, and is jit-able and differentiable.
    """
    z_np, w_np = nodes(degree)

    def fn(q11, q12, q22):
        q11, q12, q22 = (jnp.asarray(a) for a in (q11, q12, q22))
        dtype = jnp.result_type(q11, q12, q22)
        if not jnp.issubdtype(dtype, jnp.floating):
            dtype = jnp.result_type(float)
        q11, q12, q22 = (a.astype(dtype) for a in (q11, q12, q22))
        q11, q12, q22 = jnp.broadcast_arrays(q11, q12, q22)
        z = jnp.asarray(z_np, dtype)
        w = jnp.asarray(w_np, dtype)
        rho = _correlation(q11, q12, q22)
        s1 = jnp.sqrt(jnp.maximum(q11, 0.0))
        s2 = jnp.sqrt(jnp.maximum(q22, 0.0))
        c = jnp.sqrt(jnp.maximum(1.0 - rho * rho, 0.0))

        def step(acc, zw):
            zi, wi = zw
            inner = phi(s2[..., None] * (rho[..., None] * zi + c[..., None] * z)) @ w
            return acc + wi * phi(s1 * zi) * inner, None

        out, _ = jax.lax.scan(step, jnp.zeros(q11.shape, dtype), (z, w))
        return out

    return jax.jit(fn)


def gauss_hermite_mean(phi: Callable, degree: int) -> Callable:
    """``q -> E[phi(sqrt(q) z)]`` by ``degree``-point Gauss–Hermite quadrature."""
    z_np, w_np = nodes(degree)

    def fn(q):
        q = jnp.asarray(q)
        dtype = q.dtype if jnp.issubdtype(q.dtype, jnp.floating) else jnp.result_type(float)
        q = q.astype(dtype)
        z = jnp.asarray(z_np, dtype)
        w = jnp.asarray(w_np, dtype)
        return phi(jnp.sqrt(jnp.maximum(q, 0.0))[..., None] * z) @ w

    return jax.jit(fn)
