"""Independent reference for Gaussian expectations (numpy only; shares no code with infntk.dual).

E[f(u) g(v)] for (u, v) ~ N(0, [[q11, q12], [q12, q22]]) is written as
E_u[f(u) E[g(v) | u]] with v | u ~ N(mu(u), s^2), mu = q12/q11 u, s^2 = q22 - q12^2/q11. Both
integrals are taken in standardised coordinates over [-L, L] (L = 12: the Gaussian mass outside is
< 1e-32), split at the breakpoints of f and g (kinks and jumps), with Gauss-Legendre on each piece.
Each piece is smooth, so the rule converges geometrically; ``n`` nodes per piece. The degenerate
case s = 0 (|rho| = 1) is exact: E[g(v) | u] = g(mu(u)).
"""
import functools

import numpy as np

L = 12.0


@functools.lru_cache(maxsize=None)
def _leggauss(n):
    return np.polynomial.legendre.leggauss(n)


def _pieces(breaks, n):
    """Gauss-Legendre nodes/weights on [-L, L] split at ``breaks`` (standardised coordinates)."""
    pts = sorted({-L, L, *[b for b in breaks if -L < b < L]})
    x0, w0 = _leggauss(n)
    xs, ws = [], []
    for a, b in zip(pts[:-1], pts[1:]):
        xs.append((b - a) / 2 * x0 + (a + b) / 2)
        ws.append((b - a) / 2 * w0)
    return np.concatenate(xs), np.concatenate(ws)


def _pdf(t):
    return np.exp(-t * t / 2) / np.sqrt(2 * np.pi)


def expect2(f, g, q11, q12, q22, breaks=(0.0,), n=160):
    """E[f(u) g(v)] (scalars q11 > 0, q22 >= 0, |q12| <= sqrt(q11 q22))."""
    s1 = np.sqrt(q11)
    t1, w1 = _pieces([b / s1 for b in breaks], n)
    u = s1 * t1
    mu = q12 / q11 * u
    s2 = max(q22 - q12 * q12 / q11, 0.0)
    if s2 <= 1e-300:
        inner = g(mu)
    else:
        s = np.sqrt(s2)
        x0, w0 = _leggauss(n)
        cuts = [np.full_like(mu, -L)]
        cuts += [np.clip((b - mu) / s, -L, L) for b in sorted(breaks)]
        cuts += [np.full_like(mu, L)]
        inner = np.zeros_like(u)
        for a, b in zip(cuts[:-1], cuts[1:]):
            t2 = (b - a)[:, None] / 2 * x0 + ((a + b) / 2)[:, None]
            w2 = (b - a)[:, None] / 2 * w0
            inner += np.sum(w2 * _pdf(t2) * g(mu[:, None] + s * t2), axis=1)
    return float(np.sum(w1 * _pdf(t1) * f(u) * inner))


def expect1(f, q, breaks=(0.0,), n=400):
    """E[f(sqrt(q) z)]."""
    s = np.sqrt(q)
    t, w = _pieces([b / s for b in breaks], n)
    return float(np.sum(w * _pdf(t) * f(s * t)))
