"""Entry-by-entry comparison with an honest per-entry scale.

A kernel matrix K (NNGP or NTK) is a Gram matrix -- of the outputs, or of the parameter gradients --
so it is positive semi-definite and obeys Cauchy-Schwarz entry by entry:

    |K(x_i, x_j)| <= sqrt(K(x_i, x_i) K(x_j, x_j)) =: s_ij.

s_ij is the natural magnitude of entry (i, j): an off-diagonal entry that is small because the two
inputs are nearly orthogonal in feature space comes out of sums and differences of terms of size s_ij,
so its rounding error is relative to s_ij, not to itself. The bar is therefore

    |a_ij - b_ij| <= rtol * max(|b_ij|, s_ij)

with b the neural-tangents reference. On the diagonal this is a plain relative error; nowhere does it
loosen the bar to the largest entry of the matrix (a tiny entry next to a huge one still has to match
to rtol of its own row/column scale). For kernels that keep spatial axes (no readout), s is taken as
the largest |diagonal| over the batch-diagonal blocks (a scalar), as the positional Cauchy-Schwarz
structure is not exposed in a layout-independent way.
"""
from __future__ import annotations

import numpy as np


def entry_scale(ref: np.ndarray, diag1: np.ndarray, diag2: np.ndarray) -> np.ndarray:
    """Per-entry Cauchy-Schwarz scale s_ij = sqrt(|K_ii| |K_jj|) for a (N1, N2) kernel."""
    if ref.ndim == 2:
        return np.sqrt(np.abs(diag1)[:, None] * np.abs(diag2)[None, :])
    return np.full(ref.shape, max(np.max(np.abs(diag1)), np.max(np.abs(diag2))))


def batch_diagonal(k_full: np.ndarray) -> np.ndarray:
    """Diagonal over the two batch axes of a (N, N, ...) kernel: (N,) for 2-D, else (N, ...)."""
    return np.stack([k_full[i, i] for i in range(k_full.shape[0])])


def relative_errors(a: np.ndarray, b: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """|a - b| / max(|b|, s), entry by entry; 0/0 (both exactly zero with zero scale) is 0."""
    den = np.maximum(np.abs(b), scale)
    err = np.abs(a - b)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(err == 0, 0.0, err / den)
    return np.where(np.isfinite(a) & np.isfinite(b), rel, np.inf)


def describe(name: str, a: np.ndarray, b: np.ndarray, scale: np.ndarray, rtol: float) -> str:
    rel = relative_errors(a, b, scale)
    idx = np.unravel_index(np.argmax(rel), rel.shape)
    bad = int(np.sum(rel > rtol))
    return (f"{name}: max rel err {rel[idx]:.3e} (bar {rtol:g}) at {tuple(int(i) for i in idx)}: "
            f"infntk {a[idx]!r} vs neural-tangents {b[idx]!r} (scale {scale[idx]:.3e}); "
            f"{bad}/{rel.size} entries over the bar; nan/inf: infntk {int(np.sum(~np.isfinite(a)))}"
            f", neural-tangents {int(np.sum(~np.isfinite(b)))}")
