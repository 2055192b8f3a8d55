r"""The ``get`` convention and the named results every public kernel function returns.

``get`` names the quantities a caller wants: ``None`` (the function's default, usually
``('nngp', 'ntk')``), one name (the result is that value itself) or a sequence of names (the result
is a named tuple with those fields, in that order). :func:`canonicalize_get` is the one normaliser
of ``get`` in infntk and :func:`package` the one factory of named results; the named tuple classes
are created once per ``(name, fields)`` and cached, so results of the same kind compare and pickle
alike.

Example:
    >>> single, names = canonicalize_get(("ntk", "nngp"), ("nngp", "ntk"), "kernel")
    >>> single, names
    (False, ('ntk', 'nngp'))
    >>> package({"nngp": 1.0, "ntk": 2.0}, single, names, "Kernels")
    Kernels(ntk=2.0, nngp=1.0)
    >>> package({"nngp": 1.0}, *canonicalize_get("nngp", ("nngp", "ntk"), "kernel"))
    1.0
"""
from __future__ import annotations

import collections
from typing import Any, Dict, Mapping, Optional, Tuple

from .errors import InfntkError

__all__ = ["canonicalize_get", "package", "namedtuple_class", "DEFAULT_GET"]

#: What ``get=None`` means unless a function says otherwise.
DEFAULT_GET: Tuple[str, ...] = ("nngp", "ntk")

_TUPLES: Dict[Tuple[str, Tuple[str, ...]], type] = {}


def namedtuple_class(name: str, fields: Tuple[str, ...]) -> type:
    """The named tuple class ``name`` with ``fields`` (created once, then cached)."""
    key = (name, tuple(fields))
    if key not in _TUPLES:
        _TUPLES[key] = collections.namedtuple(name, fields)
    return _TUPLES[key]


def canonicalize_get(get: Any, allowed: Optional[Tuple[str, ...]], where: str,
                     default: Tuple[str, ...] = DEFAULT_GET) -> Tuple[bool, Tuple[str, ...]]:
    """``(is_single_string, tuple of lower-case names)``; ``None`` means ``default``.

    ``allowed=None`` accepts any name: for a function that passes ``get`` on to a model whose names
    it does not know (:func:`infntk.tiling.kernel_matrix`), which then reports a missing one.

    Raises :class:`~infntk.errors.InfntkError` naming ``where`` for an empty ``get``, entries that
    are not non-empty strings, repeated entries and names outside ``allowed``.
    """
    if get is None:
        return False, tuple(default)
    single = isinstance(get, str)
    names = (get,) if single else tuple(get) if isinstance(get, (tuple, list)) else None
    if names == ():
        raise InfntkError(f"{where}: `get` must be non-empty.")
    if names is None or not all(isinstance(g, str) and g for g in names):
        raise InfntkError(f"{where}: `get` must be a non-empty string or a tuple of them, got {get!r}.")
    names = tuple(g.lower() for g in names)
    if len(set(names)) < len(names):
        raise InfntkError(f"{where}: entries of `get` must be unique, got {get!r}.")
    bad = [] if allowed is None else [g for g in names if g not in allowed]
    if bad:
        raise InfntkError(f"{where}: unknown get={bad[0]!r}; expected some of {tuple(allowed)}.")
    return single, names


def package(out: Mapping[str, Any], single: bool, names: Tuple[str, ...],
            name: str = "Kernels") -> Any:
    """A single value for a string ``get``, else a named tuple ``name`` with fields in ``get`` order."""
    if single:
        return out[names[0]]
    return namedtuple_class(name, tuple(names))(*(out[g] for g in names))
