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
3. every other layer class is named by architecture strings and by the stax facade, unless its class
   says otherwise with ``named_in``, a tuple of the facades (:data:`FACADES`) that name it.

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

# ``named_in`` of the classes that are not named by both facades, until the attribute is declared on
# the class itself (a declaration there wins over this table; the tests ask that every entry here is
# still undeclared by its class, so the table empties as the attributes move). name -> named_in.
_NAMED_IN_UNTIL_ON_CLASS = {
    # arguments that are not literals: a sympy expression, or layers (the algebra writes >>, +, |;
    # stax spells these serial/parallel)
    "Activation": (),
    "Serial": (),
    "Sum": (),
    "Concat": (),
    "Parallel": (),
    # plumbing of lists of inputs: meaningful only with stax's parallel, so stax only
    "FanOut": ("stax",),
    "FanInSum": ("stax",),
    "FanInConcat": ("stax",),
}


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


def declared_named_in(cls):
    """``named_in`` as declared by ``cls`` or a base class below ``Layer``; ``None`` if none does
    (a default on ``Layer`` itself does not count, so the interim table above still applies)."""
    from .base import Layer

    return next((tuple(vars(c)["named_in"]) for c in cls.__mro__
                 if c is not Layer and "named_in" in vars(c)), None)


def named_in(name: str) -> tuple:
    """The facades (:data:`FACADES`) that spell the public layer ``name``."""
    obj = _exports().get(name)
    if _is_layer_class(obj):
        if not _is_concrete(obj):
            return ()
        found = declared_named_in(obj)
        if found is None:
            found = _NAMED_IN_UNTIL_ON_CLASS.get(name, FACADES)
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
