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

__all__ = ["nodes", "gauss_hermite_dual", "gauss_hermite_mean", "kinks", "split_gauss_dual", "split_gauss_mean"]


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


# ------------------------------------------------------------------ kink-aware quadrature

def kinks(expr) -> tuple:
    r"""Real points where a sympy activation ``expr`` (in ``X``) may be non-smooth.

    The arguments of ``Max``, ``Min``, ``Abs``, ``Heaviside``, ``sign`` and the relations of
    ``Piecewise`` conditions, solved for ``X = b``; only finite real solutions are kept. An empty
    tuple means no kink was found (smooth as far as this analysis can tell).
    """
    import sympy as sp

    from .symbols import X
    candidates = []
    for atom in expr.atoms(sp.Max, sp.Min):
        args = atom.args
        candidates += [a - b for i, a in enumerate(args) for b in args[i + 1:]]
    for atom in expr.atoms(sp.Abs, sp.Heaviside, sp.sign):
        candidates.append(atom.args[0])
    for atom in expr.atoms(sp.Piecewise):
        for _, cond in atom.args:
            for rel in (cond.atoms(sp.core.relational.Relational) if cond not in (True, False) else ()):
                candidates.append(rel.lhs - rel.rhs)
    points = set()
    for c in candidates:
        if X not in c.free_symbols:
            continue
        try:
            sol = sp.solveset(c, X, domain=sp.S.Reals)
        except Exception:  # noqa: BLE001 -- an unsolvable condition just adds no split point
            continue
        if isinstance(sol, sp.FiniteSet):
            points |= {float(s) for s in sol if s.is_real and s.is_finite}
    return tuple(sorted(points))


@functools.lru_cache(maxsize=64)
def _legendre(n: int):
    t, w = np.polynomial.legendre.leggauss(int(n))
    return t, w


_LIMIT = 10.0   # the standard normal mass beyond |z| = 10 is 1.5e-23


def _segments(points, lo, hi):
    """Sorted segment edges ``[lo, p_1, ..., p_k, hi]`` with the ``p`` clipped into ``[lo, hi]``."""
    p = jnp.clip(jnp.stack(points, -1), lo[..., None], hi[..., None]) if points else None
    edges = [jnp.full_like(lo, 1.0) * lo] + ([] if p is None else [jnp.sort(p, -1)[..., i]
                                                                   for i in range(p.shape[-1])])
    return edges + [jnp.full_like(lo, 1.0) * hi]


def _nodes_on(edges, t, w):
    """Gauss–Legendre nodes and N(0,1)-weighted weights on consecutive segments; shapes (..., K n)."""
    zs, ws = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        mid, half = (a + b)[..., None] / 2, (b - a)[..., None] / 2
        z = mid + half * t
        zs.append(z)
        ws.append(half * w * jnp.exp(-z * z / 2) * float(1 / np.sqrt(2 * np.pi)))
    return jnp.concatenate(zs, -1), jnp.concatenate(ws, -1)


def split_gauss_dual(phi: Callable, breakpoints: tuple, per_segment: int = 64) -> Callable:
    r"""``(q11, q12, q22) -> E[phi(u) phi(v)]`` for a ``phi`` with kinks or jumps at ``breakpoints``.

    With :math:`u = \sqrt{q_{11}} z_1` and :math:`v = \sqrt{q_{22}}(\rho z_1 + \sqrt{1-\rho^2} z_2)`,
    the outer integral over :math:`z_1` is split at :math:`b/\sqrt{q_{11}}` and the inner one over
    :math:`z_2` at :math:`(b/\sqrt{q_{22}} - \rho z_1)/\sqrt{1-\rho^2}`, so each Gauss–Legendre panel
    sees a smooth integrand and converges spectrally (plain Gauss–Hermite only algebraically).
    """
    t_np, w_np = _legendre(per_segment)
    bps = tuple(float(b) for b in breakpoints)

    def fn(q11, q12, q22):
        q11, q12, q22 = (jnp.asarray(a) for a in (q11, q12, q22))
        dtype = jnp.result_type(q11, q12, q22)
        if not jnp.issubdtype(dtype, jnp.floating):
            dtype = jnp.result_type(float)
        q11, q12, q22 = jnp.broadcast_arrays(*(a.astype(dtype) for a in (q11, q12, q22)))
        t, w = jnp.asarray(t_np, dtype), jnp.asarray(w_np, dtype)
        rho = _correlation(q11, q12, q22)
        s1 = jnp.sqrt(jnp.maximum(q11, 0.0))
        s2 = jnp.sqrt(jnp.maximum(q22, 0.0))
        c = jnp.sqrt(jnp.maximum(1.0 - rho * rho, 0.0))
        lo, hi = jnp.full_like(q11, -_LIMIT), jnp.full_like(q11, _LIMIT)
        big = jnp.asarray(2 * _LIMIT, dtype)

        def safe_div(num, den):
            ok = den > 0
            return jnp.where(ok, num / jnp.where(ok, den, 1.0), jnp.where(num >= 0, big, -big))

        z1, w1 = _nodes_on(_segments([safe_div(jnp.full_like(q11, b), s1) for b in bps], lo, hi), t, w)
        outer = w1 * phi(s1[..., None] * z1)                     # (..., K n)
        # inner integral for every outer node
        zz1 = z1
        lo2, hi2 = jnp.full_like(zz1, -_LIMIT), jnp.full_like(zz1, _LIMIT)
        inner_pts = [safe_div(b / jnp.where(s2 > 0, s2, 1.0)[..., None] - rho[..., None] * zz1,
                              jnp.broadcast_to(c[..., None], zz1.shape)) for b in bps]
        z2, w2 = _nodes_on(_segments(inner_pts, lo2, hi2), t, w)   # (..., K n, K n)
        v = s2[..., None, None] * (rho[..., None, None] * zz1[..., None] + c[..., None, None] * z2)
        inner = jnp.sum(w2 * phi(v), -1)
        return jnp.sum(outer * inner, -1)

    return jax.jit(fn)


def split_gauss_mean(phi: Callable, breakpoints: tuple, per_segment: int = 64) -> Callable:
    """``q -> E[phi(sqrt(q) z)]`` with Gauss–Legendre panels split at the kinks."""
    t_np, w_np = _legendre(per_segment)
    bps = tuple(float(b) for b in breakpoints)

    def fn(q):
        q = jnp.asarray(q)
        dtype = q.dtype if jnp.issubdtype(q.dtype, jnp.floating) else jnp.result_type(float)
        q = q.astype(dtype)
        s = jnp.sqrt(jnp.maximum(q, 0.0))
        t, w = jnp.asarray(t_np, dtype), jnp.asarray(w_np, dtype)
        lo, hi = jnp.full_like(q, -_LIMIT), jnp.full_like(q, _LIMIT)
        pts = [jnp.where(s > 0, b / jnp.where(s > 0, s, 1.0), jnp.sign(b) * 2 * _LIMIT) for b in bps]
        z, wz = _nodes_on(_segments(pts, lo, hi), t, w)
        return jnp.sum(wz * phi(s[..., None] * z), -1)

    return jax.jit(fn)
