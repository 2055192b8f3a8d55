r"""The one registry of public layers, derived from the package's exports.

Every name in ``infntk.layers.__all__`` (one import line per layer file in
``infntk/layers/__init__.py``) is looked at here, and what the rest of the library needs to know
about it is read off the exported object itself -- never from a list of names:

* :func:`names` ``("arch")`` -- the layers that architecture strings may call
  (:data:`infntk.arch.LAYERS`, and from it the command line's layer list);
* :func:`names` ``("stax")`` -- the functions of the neural-tangents facade :mod:`infntk.stax`;
* :func:`is_activation` -- activations (subclasses of ``Elementwise``), listed apart in help texts;
* :func:`width_argument` -- the argument that sets a layer's width, for layers that hold weights
  (``is_linear``): what ``--width`` and the convergence studies change;
* :func:`layer_classes` -- every concrete public layer class (the contract tests must cover each).

The rules, in order:

1. a function (``serial``, ``parallel``) builds a layer out of layers: only the stax facade spells
   it; architecture strings write ``>>``, ``+`` and ``|`` instead;
2. a ``Layer`` subclass that is not itself a dataclass (``Layer``, ``Elementwise``) is a base class
   and is named nowhere;
3. every other layer class is named by the facades its ``named_in`` lists (:data:`FACADES`; the
   default on ``Layer`` is both): a class whose arguments are not literals says ``named_in = ()``.

Example:
    >>> from infntk.layers import registry
    >>> "Relu" in registry.names("arch"), "serial" in registry.names("arch")
    (True, False)
    >>> registry.width_argument("Dense"), registry.is_activation("Erf")
    ('out_dim', True)
"""
from __future__ import annotations

import functools
import inspect

from ..errors import InfntkError

#: The places that spell layers by name: architecture strings and the ``stax`` facade.
FACADES = ("arch", "stax")



@functools.lru_cache(maxsize=None)
def _exports() -> dict:
    from .. import layers

    return {name: getattr(layers, name) for name in layers.__all__}


def _is_layer_class(obj) -> bool:
    from .base import Layer

    return isinstance(obj, type) and issubclass(obj, Layer)


def _is_concrete(cls) -> bool:
    """A layer class with its own dataclass fields (a base class such as ``Elementwise`` has none)."""
    return "__dataclass_fields__" in vars(cls)


def named_in(name: str) -> tuple:
    """The facades (:data:`FACADES`) that spell the public layer ``name``."""
    obj = _exports().get(name)
    if _is_layer_class(obj):
        if not _is_concrete(obj):
            return ()
        found = tuple(obj.named_in)
        bad = [f for f in found if f not in FACADES]
        if bad:
            raise InfntkError(f"{name}.named_in: unknown facade(s) {bad}; expected some of {FACADES}.")
        return found
    if inspect.isfunction(obj):
        return ("stax",)
    return ()


@functools.lru_cache(maxsize=None)
def names(facade: str) -> tuple:
    """The public names that ``facade`` (``"arch"`` or ``"stax"``) spells, in export order."""
    if facade not in FACADES:
        raise InfntkError(f"registry: unknown facade {facade!r}; expected one of {FACADES}.")
    return tuple(n for n in _exports() if facade in named_in(n))


def get(name: str):
    """The exported class or function called ``name`` (``KeyError`` if there is none)."""
    return _exports()[name]


def layer_classes() -> dict:
    """Every concrete public layer class, name -> class, in export order."""
    return {n: o for n, o in _exports().items() if _is_layer_class(o) and _is_concrete(o)}


def is_activation(name: str) -> bool:
    """Whether the public layer ``name`` is an activation (an ``Elementwise`` subclass)."""
    from .activations import Elementwise

    obj = _exports().get(name)
    return isinstance(obj, type) and issubclass(obj, Elementwise)


def width_argument(name: str):
    """The argument that sets the width of ``name`` (its first), if it holds weights; else None."""
    obj = _exports().get(name)
    if not (_is_layer_class(obj) and _is_concrete(obj) and getattr(obj, "is_linear", False)):
        return None
    return next(iter(inspect.signature(obj).parameters), None)
