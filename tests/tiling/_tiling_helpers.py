"""Shared data and reference values for the tiling tests."""

import numpy as np


def inputs(n, feat=(3,), seed=0):
    return np.random.default_rng(seed).normal(size=(n,) + tuple(feat))


def assert_close_to_direct(tiled, direct):
    """Tiled vs one-shot kernels differ only by float64 rounding in the matmuls, amplified on the
    diagonal by arccos' sqrt singularity at cos(theta) = 1: |d theta| <~ sqrt(2 * 4 eps) ~ 3e-8, so
    entries may differ by ~1e-8 relative there and by a few eps elsewhere."""
    d = np.asarray(direct)
    t = np.asarray(tiled)
    off = ~np.eye(*d.shape, dtype=bool) if d.shape[0] == d.shape[1] else np.ones(d.shape, bool)
    np.testing.assert_allclose(t, d, rtol=1e-7, atol=0)
    np.testing.assert_allclose(t[off], d[off], rtol=1e-7, atol=0)
