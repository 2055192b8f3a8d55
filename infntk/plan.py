r"""The planning pass: a model as a flat list of steps, each with the layout it receives.

A model is a fold of its layers (``Serial``); branches (``Sum``, ``Concat``) are layers whose
kernel maps run their own sub-plans. :func:`plan` walks the top level once and records, per step,

* the layer and its position in the user's model (for error messages; a ``FanOut >> parallel >>
  FanIn*`` run that the model rewrote into one branching layer keeps the position of its fan-in);
* the shapes of the finite features it receives and produces (validated here, so every kernel
  call checks the whole architecture before computing anything);
* ``is_linear`` (the layer holds zero-mean weights) and ``ends_fresh`` (its output is an odd
  function of weights drawn inside it), as the layer declares them;
* ``full_in``: whether it must receive the full spatial covariance, decided from the readout
  backwards by each layer's own ``needs_full(out_full)`` (only pooling-type layers ask for it),
  so every layer sees the cheapest layout that is still exact. ``None`` inside branches: the
  layout is kept as it arrives.

Which layers are linear, keep the state Gaussian, or pass on "fresh" weights are facts the layers
declare themselves (``is_linear``, ``keeps_fresh``, ``has_linear()``, ``ends_fresh()``); the planner
asks no layer for its class.

Example:
    >>> import infntk as nk
    >>> model = nk.Conv(4, (3, 3)) >> nk.Relu() >> nk.GlobalAvgPool() >> nk.Dense(1)
    >>> [(s.position, s.full_in) for s in plan(model, (1, 8, 8, 2)).steps]
    [(0, True), (1, True), (2, True), (3, False)]
    >>> [s.full_in for s in plan(nk.Conv(4, (3, 3)) >> nk.Flatten(), (1, 8, 8, 2)).steps]
    [False, False]
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

from .errors import InfntkError


@dataclasses.dataclass(frozen=True)
class PlanStep:
    """One layer of a plan (see the module docstring)."""

    layer: Any
    index: int
    position: Optional[int]
    shape_in: Any
    shape_out: Any
    full_in: Optional[bool]
    is_linear: bool = False
    ends_fresh: bool = False


@dataclasses.dataclass(frozen=True)
class Plan:
    """The steps of a model for one input shape; ``input_full``: the input kernel's layout."""

    steps: tuple
    input_full: bool
    output_shape: Any


def with_position(position: Optional[int], fn: Callable):
    """Run ``fn``, prefixing an :class:`InfntkError` with ``layer #position`` (once)."""
    if position is None:
        return fn()
    try:
        return fn()
    except InfntkError as e:
        msg = str(e)
        if msg.startswith("layer #"):
            raise
        raise InfntkError(f"layer #{position} {msg}") from None


def has_spatial_axes(shape) -> bool:
    if isinstance(shape, list):
        return any(len(s) > 2 for s in shape)
    return len(shape) > 2


def plan(model, input_shape, trim: bool = True) -> Plan:
    """The plan of ``model`` for inputs of ``input_shape`` (batch axis included).

    ``trim=False`` keeps whatever layout arrives (branches of a sum or concatenation)."""
    layers = model.series
    positions = model.positions
    shapes = [tuple(input_shape)]
    for layer, pos in zip(layers, positions):
        shapes.append(with_position(pos, lambda: layer.output_shape(shapes[-1])))
    need = [None] * len(layers)
    if trim:
        full = has_spatial_axes(shapes[-1])
        for i in range(len(layers) - 1, -1, -1):
            full = layers[i].needs_full(full)
            need[i] = full
    steps = tuple(PlanStep(layer, i, pos, shapes[i], shapes[i + 1],
                           None if need[i] is None else bool(need[i] and len(shapes[i]) > 2),
                           layer.has_linear(), layer.ends_fresh())
                  for i, (layer, pos) in enumerate(zip(layers, positions)))
    input_full = bool(trim and len(input_shape) > 2 and need and need[0])
    return Plan(steps=steps, input_full=input_full, output_shape=shapes[-1])
