"""The prediction functions' output container and their reading of kernels by name (internal).

``get`` itself is normalised by :func:`infntk.results.canonicalize_get`; a tuple ``get`` returns
the named tuple :data:`GAUSSIANS` (:func:`infntk.results.package`).
"""
from __future__ import annotations

from typing import Any, NamedTuple

from ..errors import InfntkError


class Gaussian(NamedTuple):
    """A ``(mean, covariance)`` pair.

    Attributes:
        mean: shape of the function outputs (leading time axes first, if any).
        covariance: shape of the corresponding NNGP/NTK matrix (pairs of sample axes interleaved).
    """

    mean: Any
    covariance: Any


GAUSSIANS = "Gaussians"
"""Name of the named tuple a tuple ``get`` returns (one field per name)."""


def get_attr(k: Any, g: str, where: str, what: str) -> Any:
    """``k`` itself for an array, ``k.<g>`` (or ``k[g]`` for a dict) for a kernel object."""
    if k is None:
        return None
    if isinstance(k, dict):
        v = k.get(g)
    elif hasattr(k, "shape") or callable(k):
        return k
    else:
        v = getattr(k, g, None)
    if v is None:
        raise InfntkError(f"{where}: `{what}` has no `{g}` kernel; compute it with get=('nngp', 'ntk').")
    return v


def has_attr(k: Any, g: str) -> bool:
    if isinstance(k, dict):
        return k.get(g) is not None
    if hasattr(k, "shape") or callable(k):
        return False
    return getattr(k, g, None) is not None
