r"""A neural-tangents-compatible facade: ``from infntk import stax``.

Every function has the name and signature of its ``neural_tangents.stax`` (0.6.5) counterpart and
returns an ``(init_fn, apply_fn, kernel_fn)`` triple, so a neural-tangents model ports by changing
one import. ``kernel_fn(x1, x2=None, get=None)`` returns the array for ``get='nngp'``/``'ntk'``, a
named tuple for a tuple of names, and the :class:`~infntk.kernel.Kernel` state for ``None``.
Conventions (NHWC, ``W_std``/``b_std`` scaling, paddings, parameterizations) are the same.

The functions are not written one by one: each public layer that the registry
(:mod:`infntk.layers.registry`) puts in the stax facade gets a function of the same name whose
signature is its class's, plus the arguments of neural-tangents that infntk's layers do not take
(:data:`NT_ONLY`: accepted, checked to hold the one value infntk supports, dropped).

Example:
    >>> import jax.numpy as jnp
    >>> from infntk import stax
    >>> init_fn, apply_fn, kernel_fn = stax.serial(stax.Dense(512, W_std=1.5), stax.Relu(), stax.Dense(1))
    >>> kernel_fn(jnp.ones((3, 4)), None, "ntk").shape
    (3, 3)
"""
from __future__ import annotations

import inspect

from . import layers as L
from .errors import InfntkError
from .layers import registry


class Triple(tuple):
    """``(init_fn, apply_fn, kernel_fn)`` that also remembers the infntk layer it came from."""

    layer: L.Layer

    def __new__(cls, layer: L.Layer):
        def kernel_fn(x1, x2=None, get=None, **kwargs):
            if kwargs:
                raise InfntkError(f"{layer.label}: kernel_fn got unsupported arguments {sorted(kwargs)}.")
            return layer.kernel(x1, x2, get)

        self = super().__new__(cls, (layer.init, layer.apply, kernel_fn))
        self.layer = layer
        return self


def _layer(t) -> L.Layer:
    if isinstance(t, Triple):
        return t.layer
    if isinstance(t, L.Layer):
        return t
    raise InfntkError(f"stax: expected a layer made by infntk.stax, got {type(t).__name__}.")



#: neural-tangents 0.6.5's arguments that infntk's layers do not take, by stax name: the argument
#: they follow in neural-tangents' signature (``None``: they come last) and their defaults, as each
#: layer class declares them (``stax_extra_arguments``).
#: ``do_stabilize`` is neural-tangents' switch for a numerically stabler ReLU-family kernel; infntk's
#: duals are always evaluated in the stable form (angles from q11 q22 - q12^2), so it is accepted and
#: has nothing left to do.
NT_ONLY = {name: registry.get(name).stax_extra_arguments for name in registry.names("stax")
           if isinstance(registry.get(name), type) and registry.get(name).stax_extra_arguments[1]}

_NT_ONLY_TYPES = dict(batch_axis="int", channel_axis="int", batch_axis_out="int",
                      do_stabilize="bool", dimension_numbers="Optional[tuple[str, str, str]]")

#: Channels-last ``dimension_numbers`` by number of spatial axes (the only layout supported).
_CHANNELS_LAST = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC"),
                  3: ("NDHWC", "DHWIO", "NDHWC")}


def _check_nt_only(name: str, nt: dict, given: dict) -> None:
    """Refuse values of neural-tangents-only arguments that infntk does not support."""
    axes = {k: v for k, v in NT_ONLY[name][1].items() if k.endswith(("_axis", "_axis_out"))}
    if any(nt[k] != v for k, v in axes.items()):
        only = " and ".join(f"{k}={v}" for k, v in axes.items())
        layout = " (channels last)" if "channel_axis" in axes else ""
        got = ", ".join(f"{k}={nt[k]}" for k in axes)
        raise InfntkError(f"{name}: only {only}{layout} are supported, got {got}.")
    numbers = nt.get("dimension_numbers")
    if numbers is not None:
        expected = _CHANNELS_LAST.get(len(tuple(given["filter_shape"])))
        if tuple(numbers) != expected:
            raise InfntkError(f"{name}: only channels-last dimension_numbers {expected} are "
                              f"supported, got {numbers!r}.")


def _class_facade(name: str, cls) -> tuple:
    """``name(*args, **kwargs) -> Triple(cls(...))`` with neural-tangents' signature."""
    after, extra = NT_ONLY.get(name, (None, {}))
    params = list(inspect.signature(cls).parameters.values())
    at = len(params) if after is None else [p.name for p in params].index(after) + 1
    params[at:at] = [inspect.Parameter(k, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=v,
                                       annotation=_NT_ONLY_TYPES.get(k, inspect.Parameter.empty))
                     for k, v in extra.items()]
    sig = inspect.Signature(params, return_annotation="Triple")

    def fn(*args, **kwargs):
        try:
            given = dict(sig.bind(*args, **kwargs).arguments)
        except TypeError as e:
            raise TypeError(f"{name}{sig}: {e}") from None
        nt = {k: given.pop(k, v) for k, v in extra.items()}
        if nt:
            _check_nt_only(name, nt, given)
        return Triple(cls(**given))

    return fn, sig


def _combinator_facade(name: str, combine) -> tuple:
    """``name(*triples) -> Triple(combine(*layers))`` (``serial``, ``parallel``)."""

    def fn(*layers):
        return Triple(combine(*(_layer(t) for t in layers)))

    return fn, inspect.signature(combine).replace(return_annotation="Triple")


def _facade(name: str):
    obj = registry.get(name)
    fn, sig = (_class_facade if isinstance(obj, type) else _combinator_facade)(name, obj)
    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = __name__
    fn.__signature__ = sig
    summary = (inspect.getdoc(obj) or "").split("\n\n")[0]
    fn.__doc__ = (f"neural-tangents' ``stax.{name}``: the ``(init_fn, apply_fn, kernel_fn)`` of "
                  f"``infntk.{name}``.\n\n{summary}")
    return fn


for _name in registry.names("stax"):
    globals()[_name] = _facade(_name)

__all__ = ["Triple", "NT_ONLY", *registry.names("stax")]
