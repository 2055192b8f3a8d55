r"""The layer protocol: one immutable object, four faces of the same mathematics.

Every layer is a frozen dataclass with

* ``output_shape(input_shape)`` -- the finite network's output shape; validates the input and
  raises :class:`~infntk.errors.InfntkError` naming the layer when it cannot follow its input;
* ``init(key, input_shape) -> (output_shape, params)`` and ``apply(params, x)`` -- the finite
  network at the widths the layer was given;
* ``kernel_map(k, ops) -> k`` -- the infinite-width map on the :class:`~infntk.kernel.Kernel` state,
  written once against the operations ``ops`` (:mod:`infntk.ops`): the same code computes the kernel
  on arrays and writes the recursion on sympy;
* ``needs_full(out_full) -> bool`` -- whether the layer needs the full spatial covariance of its
  input, given whether its consumers need it of its output. The composed model asks this once,
  from the readout backwards, and every layer then sees the cheapest layout that is still exact.

``a >> b`` composes in series, ``a + b`` sums two branches fed the same input, ``a | b``
concatenates two branches along channels.

Example:
    >>> import jax, jax.numpy as jnp
    >>> import infntk as nk
    >>> model = nk.Dense(8) >> nk.Relu() >> nk.Dense(1)
    >>> x = jnp.ones((3, 5))
    >>> model.kernel(x, get="ntk").shape
    (3, 3)
    >>> model.init(jax.random.PRNGKey(0), x.shape)[0]
    (3, 1)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InfntkError
from ..kernel import Kernel
from .. import blocking, driver, finite

Shape = tuple
Get = Union[None, str, Sequence[str]]


def _is_concrete(x) -> bool:
    try:
        np.asarray(x)
        return True
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return False


class Layer:
    """Base class of every infntk layer (see the module docstring)."""

    # -- facts a layer declares (read by the planner and by branching; never its class) ---------
    #: The layer holds zero-mean weights (Dense, Conv): its output is an odd function of them.
    is_linear = False
    #: A weightless layer that maps an odd function of fresh weights to another one (pooling,
    #: Flatten, Identity, LayerNorm): what a branch ends in after its last weight layer.
    keeps_fresh = False
    #: ``FanOut``: how many copies of its input it makes; ``None`` for every other layer.
    fan_out = None
    #: ``parallel``: the layers it applies to the inputs of a list; ``None`` for every other layer.
    parallel_layers = None
    #: What the symbolic recursion calls this kind of step (``Step.kind``).
    recursion_kind = "layer"
    #: The facades that spell this layer by name (:mod:`infntk.layers.registry`): architecture
    #: strings and ``infntk.stax``.
    named_in = ("arch", "stax")
    #: neural-tangents 0.6.5's stax arguments this layer does not take, accepted by ``infntk.stax``
    #: with their one supported value: ``(the argument they follow, or None: last, {name: default})``.
    stax_extra_arguments = (None, {})

    # -- to be provided by layers ---------------------------------------------------------------
    def output_shape(self, input_shape: Shape) -> Shape:
        raise NotImplementedError

    def init(self, key, input_shape: Shape):
        """Finite-width parameters: ``(output_shape, params)``."""
        shape = input_shape if isinstance(input_shape, list) else tuple(input_shape)
        return self.output_shape(shape), ()

    def apply(self, params, x, **kwargs):
        raise NotImplementedError

    def kernel_map(self, k: Kernel, ops) -> Kernel:
        """The infinite-width map, written against ``ops`` (:mod:`infntk.ops`)."""
        raise NotImplementedError

    def needs_full(self, out_full: bool) -> bool:
        return out_full

    # -- structure (composite layers override) --------------------------------------------------
    @property
    def series(self) -> tuple:
        """The layers this one applies in series: ``(self,)`` unless it is a ``Serial``."""
        return (self,)

    @property
    def positions(self) -> tuple:
        """The position of each of :attr:`series` in the user's model, for error messages."""
        return (None,)

    @property
    def spans(self) -> tuple:
        """How many layers of the model as written each of :attr:`series` stands for."""
        return (1,)

    @property
    def summands(self) -> tuple:
        """The branches this layer adds: ``(self,)`` unless it is a ``Sum``."""
        return (self,)

    @property
    def concatenands(self) -> tuple:
        """The branches this layer concatenates along channels: ``(self,)`` unless a ``Concat``."""
        return (self,)

    def fan_in(self, branches: tuple):
        """For ``FanInSum``/``FanInConcat``: the branching layer that ``FanOut >> parallel(...) >>
        self`` is (``branches`` are the per-branch models); ``None`` for every other layer."""
        return None

    def has_linear(self) -> bool:
        """Whether the layer (or any part of it) holds zero-mean weights."""
        return bool(self.is_linear)

    def ends_fresh(self) -> bool:
        """Whether its output is an odd function of zero-mean weights drawn inside it (see
        :func:`infntk.layers.branching.concat_spatial_kernels`)."""
        return bool(self.is_linear)

    def passes_fresh(self) -> bool:
        return bool(self.keeps_fresh)

    # -- naming ---------------------------------------------------------------------------------
    @property
    def label(self) -> str:
        """Short human name used in error messages, e.g. ``Conv(8, (3, 3))``."""
        return repr(self)

    @property
    def step_name(self) -> str:
        """The name of this layer's step in a printed recursion."""
        return self.label

    def error(self, message: str) -> InfntkError:
        return InfntkError(f"{self.label}: {message}")

    # -- algebra --------------------------------------------------------------------------------
    def __rshift__(self, other: "Layer") -> "Layer":
        from .branching import Serial
        return Serial.of(self, _as_layer(other, ">>"))

    def __add__(self, other: "Layer") -> "Layer":
        from .branching import Sum
        return Sum.of(self, _as_layer(other, "+"))

    def __or__(self, other: "Layer") -> "Layer":
        from .branching import Concat
        return Concat.of(self, _as_layer(other, "|"))

    # -- the infinite-width kernel --------------------------------------------------------------
    def input_kernel(self, x1, x2=None, get: Get = ("nngp", "ntk")) -> Kernel:
        """The kernel state of the raw inputs, in the layout this model needs."""
        x1, x2 = self._check_inputs(x1, x2)
        return driver.input_state(self, x1, x2, get)

    def recursion(self, **kwargs):
        """The symbolic kernel recursion of this model (see :mod:`infntk.recursion`)."""
        from ..recursion import recursion
        return recursion(self, **kwargs)

    def kernel(self, x1, x2=None, get: Get = None):
        r"""Exact infinite-width kernels between ``x1`` and ``x2`` (``None``: ``x2 = x1``).

        ``get`` is ``'nngp'`` or ``'ntk'`` (returns the array), a tuple of names (returns a
        named tuple with those fields), or ``None`` (returns the full :class:`Kernel` state).
        The whole recursion is compiled once per model, ``get`` and input shapes; it also runs
        under a caller's ``jax.jit(model.kernel, static_argnames='get')``. Called eagerly, a
        non-finite result from finite inputs raises :class:`InfntkError` naming the first layer
        whose output overflowed (:mod:`infntk.finite`); under a caller's ``jit`` nothing can be
        checked while tracing -- use :func:`infntk.check_finite` on the result.
        """
        x1, x2 = self._check_inputs(x1, x2)
        self.output_shape(tuple(x1.shape))            # validates the whole architecture
        if x2 is not None:
            self.output_shape(tuple(x2.shape))
        get_key = get if (get is None or isinstance(get, str)) else tuple(get)
        driver.get_names(get_key)
        out = driver.compiled_kernel(self, get_key, blocking.TARGET_ENTRIES)(x1, x2)
        if _is_concrete(x1) and (x2 is None or _is_concrete(x2)):
            try:
                finite.check_finite(out, self.label)
            except InfntkError:
                finite.diagnose(self, x1, x2, get_key)   # names the first non-finite layer
                raise
        return out

    def _check_inputs(self, x1, x2):
        xs = []
        for name, x in (("x1", x1), ("x2", x2)):
            if x is None:
                xs.append(None)
                continue
            if not hasattr(x, "shape") or not hasattr(x, "dtype"):
                x = jnp.asarray(x)
            if jnp.issubdtype(x.dtype, jnp.complexfloating):
                raise InfntkError(f"{self.label}: {name} is complex ({x.dtype}); the kernels are "
                                  "defined for real inputs (pass the real and imaginary parts as "
                                  "separate features).")
            if not jnp.issubdtype(x.dtype, jnp.floating):
                x = jnp.asarray(x, dtype=jnp.result_type(float))
            if x.ndim < 2:
                raise InfntkError(
                    f"{self.label}: {name} must have a batch axis and a feature axis, "
                    f"got shape {tuple(x.shape)}.")
            if _is_concrete(x) and not bool(np.all(np.isfinite(np.asarray(x)))):
                bad = int(np.size(x) - np.count_nonzero(np.isfinite(np.asarray(x))))
                raise InfntkError(f"{self.label}: {name} contains {bad} NaN or infinite value(s).")
            xs.append(x)
        x1, x2 = xs
        if x2 is not None:
            if x1.shape[1:] != x2.shape[1:]:
                raise InfntkError(
                    f"{self.label}: x1 and x2 must agree in every axis but the batch axis; "
                    f"got x1 {tuple(x1.shape)} and x2 {tuple(x2.shape)} (feature-size mismatch).")
            if x1.dtype != x2.dtype:
                dt = jnp.promote_types(x1.dtype, x2.dtype)
                x1, x2 = x1.astype(dt), x2.astype(dt)
        return x1, x2


def _as_layer(other: Any, op: str) -> Layer:
    if not isinstance(other, Layer):
        raise InfntkError(f"cannot combine a layer with {type(other).__name__!r} by {op!r}: "
                          "both sides must be infntk layers.")
    return other


def check_std(value, name: str, where: str, allow_none: bool = False):
    """Validate a standard deviation hyperparameter (finite, non-negative)."""
    if value is None:
        if allow_none:
            return None
        raise InfntkError(f"{where}: {name} must be a number, got None.")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InfntkError(f"{where}: {name} must be a number, got {value!r}.") from None
    if not np.isfinite(v) or v < 0:
        raise InfntkError(f"{where}: {name} must be finite and non-negative, got {value!r}.")
    return v


def check_positive_int(value, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InfntkError(f"{where}: {name} must be a positive integer, got {value!r}.")
    return int(value)


def check_int_tuple(value, name: str, where: str, length: Optional[int] = None) -> tuple:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,)
    bad = InfntkError(f"{where}: {name} must be a tuple of positive integers, got {value!r}.")
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise bad
    try:
        out = tuple(check_positive_int(v, name, where) for v in value)
    except InfntkError:
        raise bad from None
    if not out:
        raise InfntkError(f"{where}: {name} must not be empty.")
    if length is not None and len(out) != length:
        raise InfntkError(f"{where}: {name} must have {length} entries, got {value!r}.")
    return out


def gaussian_required(layer: Layer, k: Kernel) -> None:
    """Raise when a layer whose closed form needs Gaussian input gets something else."""
    if not k.is_gaussian:
        raise layer.error("its input is not Gaussian here (it follows a nonlinearity that no "
                          "linear layer has re-Gaussianised), and no closed form is known for "
                          "this combination.")


def frozen(cls):
    """Decorator: a frozen, hashable dataclass with value equality (for layers)."""
    return dataclasses.dataclass(frozen=True, eq=True, repr=True)(cls)
