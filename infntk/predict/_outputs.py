"""Output containers and the ``get`` convention shared by the prediction functions (internal)."""
from __future__ import annotations

import collections
from typing import Any, Dict, NamedTuple, Tuple

from ..errors import InfntkError


class Gaussian(NamedTuple):
    """A ``(mean, covariance)`` pair.

    Attributes:
        mean: shape of the function outputs (leading time axes first, if any).
        covariance: shape of the corresponding NNGP/NTK matrix (pairs of sample axes interleaved).
    """

    mean: Any
    covariance: Any


_TUPLES: Dict[Tuple[str, Tuple[str, ...]], type] = {}


def namedtuple_class(name: str, fields: Tuple[str, ...]) -> type:
    key = (name, fields)
    if key not in _TUPLES:
        _TUPLES[key] = collections.namedtuple(name, fields)
    return _TUPLES[key]


def canonicalize_get(get: Any, allowed: Tuple[str, ...], where: str) -> Tuple[bool, Tuple[str, ...]]:
    """``(is_single_string, tuple of lower-case names)``; ``None`` means ``('nngp', 'ntk')``."""
    if get is None:
        return False, ("nngp", "ntk")
    single = isinstance(get, str)
    names = (get,) if single else tuple(get)
    if not names:
        raise InfntkError(f"{where}: `get` must be non-empty.")
    if not all(isinstance(g, str) for g in names):
        raise InfntkError(f"{where}: `get` must be a string or a tuple of strings, got {get!r}.")
    names = tuple(g.lower() for g in names)
    if len(set(names)) < len(names):
        raise InfntkError(f"{where}: entries of `get` must be unique, got {get!r}.")
    bad = [g for g in names if g not in allowed]
    if bad:
        raise InfntkError(f"{where}: `get` can only contain {allowed}, got {tuple(bad)}.")
    return single, names


def package(out: Dict[str, Any], single: bool, names: Tuple[str, ...], name: str = "Gaussians") -> Any:
    """A single value for a string ``get``, else a namedtuple ``name`` with fields in ``get`` order."""
    if single:
        return out[names[0]]
    return namedtuple_class(name, names)(*(out[g] for g in names))


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
