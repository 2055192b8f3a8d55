"""The layer registry (infntk/layers/registry.py) and what is derived from it.

A new layer touches its own file, one export line (infntk/layers/__init__.py) and one entry in
tests/layers/registry.py; these tests check that everything else follows: architecture strings, the
stax facade, the command line's layer list, and that the contract tests cover every layer class.
"""
import dataclasses
import inspect
import os
import runpy

import pytest

import infntk
import infntk.layers as L
from infntk import arch, stax
from infntk.layers import registry
from infntk.layers.base import Layer

from .registry import REGISTRY

CONTRACT_REGISTRY = os.path.join(os.path.dirname(__file__), "registry.py")


def test_exports_are_written_once():
    """infntk re-exports every public layer of infntk.layers, which lists each once."""
    assert len(L.__all__) == len(set(L.__all__))
    assert set(L.__all__) <= set(infntk.__all__)
    assert all(getattr(infntk, n) is getattr(L, n) for n in L.__all__)
    namespace = {}
    exec("from infntk import *", namespace)  # noqa: S102 -- a fixed string, the star-import itself
    assert set(L.__all__) <= set(namespace)


def test_facades_read_the_registry():
    assert arch.LAYERS == registry.names("arch")
    made = {n for n, v in vars(stax).items() if inspect.isfunction(v) and v.__module__ == stax.__name__
            and not n.startswith("_")}
    assert made == set(registry.names("stax")) and set(stax.__all__) >= made
    assert arch.WIDTH_LAYERS == tuple(n for n in arch.LAYERS if registry.width_argument(n))


def test_registry_rules():
    """What each facade names follows from the exported objects, not from a list of names."""
    for name in L.__all__:
        obj = getattr(L, name)
        facades = registry.named_in(name)
        if inspect.isfunction(obj):  # combinators (serial, parallel): stax only
            assert facades == ("stax",), name
        elif not dataclasses.is_dataclass(obj):  # base classes (Layer, Elementwise): nowhere
            assert facades == (), name
        else:
            assert set(facades) <= set(registry.FACADES), name
    # Everything architecture strings accept is a layer class the stax facade offers too.
    assert set(registry.names("arch")) <= set(registry.names("stax"))
    assert all(dataclasses.is_dataclass(registry.get(n)) for n in registry.names("arch"))
    assert [n for n in registry.names("arch") if registry.width_argument(n)] == ["Dense", "Conv"]
    assert registry.width_argument("Dense") == "out_dim" and registry.width_argument("Conv") == "out_chan"
    assert registry.is_activation("Relu") and not registry.is_activation("Dense")
    with pytest.raises(infntk.InfntkError, match="unknown facade"):
        registry.names("cli")


def test_named_in_is_declared_by_the_classes():
    """What each facade names is read off the classes: the composites and plumbing declare it."""
    assert registry.named_in("Activation") == () and registry.named_in("Sum") == ()
    assert registry.named_in("FanOut") == ("stax",) and registry.named_in("Dense") == ("arch", "stax")


def test_stax_facade_has_neural_tangents_extras_only_where_listed():
    """Each stax function takes its class's arguments plus the NT_ONLY ones, in neural-tangents'
    order (the full comparison with neural-tangents' signatures is in crosscheck/)."""
    assert set(stax.NT_ONLY) <= set(registry.names("stax"))
    for name in registry.names("stax"):
        obj = registry.get(name)
        got = list(inspect.signature(getattr(stax, name)).parameters)
        if not isinstance(obj, type):
            assert got == list(inspect.signature(obj).parameters), name
            continue
        extra = list(stax.NT_ONLY.get(name, (None, {}))[1])
        assert [p for p in got if p not in extra] == list(inspect.signature(obj).parameters), name
        assert set(got) - set(inspect.signature(obj).parameters) == set(extra), name
    assert stax.Dense(3, 1.5, None, 0, -1, "standard").layer == L.Dense(3, 1.5, None, "standard")
    assert stax.ABRelu(-0.3, 1.2, True).layer == L.ABRelu(-0.3, 1.2)
    assert stax.serial(stax.Dense(2), stax.Relu()).layer == L.Dense(2) >> L.Relu()
    triple = stax.FanInConcat(axis=1)
    assert isinstance(triple, stax.Triple) and triple.layer == L.FanInConcat(1)
    with pytest.raises(infntk.InfntkError, match=r"Flatten: only batch_axis=0 and batch_axis_out=0"):
        stax.Flatten(batch_axis_out=1)
    with pytest.raises(infntk.InfntkError, match=r"channels-last dimension_numbers"):
        stax.Conv(2, (3, 3), dimension_numbers=("NCHW", "OIHW", "NCHW"))
    assert stax.Conv(2, (3,), dimension_numbers=("NWC", "WIO", "NWC")).layer == L.Conv(2, (3,))
    with pytest.raises(TypeError, match=r"Relu\(do_stabilize"):
        stax.Relu(True, 1)


# -- every public layer class is in the contract tests ---------------------------------------------

def _classes_in(model) -> set:
    """The classes of every layer inside ``model`` (its dataclass fields, recursively)."""
    seen, stack = set(), [model]
    while stack:
        layer = stack.pop()
        seen.add(type(layer))
        for f in dataclasses.fields(layer) if dataclasses.is_dataclass(layer) else ():
            value = getattr(layer, f.name)
            stack += [v for v in (value if isinstance(value, (tuple, list)) else (value,))
                      if isinstance(v, Layer)]
    return seen


def _constructed_by_contract_registry(monkeypatch) -> set:
    """The public layer classes constructed while tests/layers/registry.py builds its models."""
    built = set()

    def traced(init):
        def __init__(self, *args, **kwargs):
            built.add(type(self))
            init(self, *args, **kwargs)
        return __init__

    for cls in registry.layer_classes().values():
        monkeypatch.setattr(cls, "__init__", traced(cls.__init__))
    runpy.run_path(CONTRACT_REGISTRY)
    return built


def test_every_public_layer_class_has_a_contract_entry(monkeypatch):
    """Every concrete public layer class is inside some entry's model of tests/layers/registry.py;
    stax plumbing that the model rewrites into Sum/Concat when it is built (FanOut, parallel,
    FanIn*) counts when building the entries constructs it."""
    inside = set().union(*(_classes_in(model) for model, _ in REGISTRY.values()))
    missing = {n for n, c in registry.layer_classes().items() if c not in inside}
    if missing:
        built = _constructed_by_contract_registry(monkeypatch)
        missing = {n for n in missing if registry.get(n) not in built}
    assert not missing, (f"public layers without an entry in tests/layers/registry.py: "
                         f"{sorted(missing)}")
