r"""Composition: series (``>>``), sums of branches (``+``) and concatenation (``|``).

* ``a >> b`` feeds ``a``'s output to ``b``.
* ``a + b`` feeds the same input to both and adds the outputs (a residual block is
  ``block + Identity()``). Branches that contain a linear layer are driven by fresh zero-mean weights,
  so they are independent of everything else at infinite width: their kernels add, plus the product
  of the channel means of any two branches that end in a non-centred nonlinearity. Branches without a
  linear layer are elementwise functions of the *same* input (``relu(h) + h``): their maps are added
  symbolically and the sum's dual is taken -- exactly, where neural-tangents refuses.
* ``a | b`` concatenates along channels: :math:`K = \sum_i \frac{C_i}{C} K_i`.

``serial``, ``parallel``, ``FanOut``, ``FanInSum`` and ``FanInConcat`` are the same operations for
code written in the style of ``jax.example_libraries.stax``.

Example:
    >>> import jax.numpy as jnp, infntk as nk
    >>> block = nk.Dense(16, W_std=1.5) >> nk.Relu() >> nk.Dense(16, W_std=1.5)
    >>> model = nk.Dense(16) >> (block + nk.Identity()) >> nk.Relu() >> nk.Dense(1)
    >>> model.kernel(jnp.ones((3, 4)), get="ntk").shape
    (3, 3)
"""
from __future__ import annotations

import math
from typing import Sequence

import jax

from ..errors import InfntkError
from ..kernel import Kernel, diagonalized
from . import nonlinear
from .base import Layer, check_positive_int, frozen


def has_linear(layer: Layer) -> bool:
    """Whether a layer (or any part of it) holds zero-mean weights (Dense, Conv)."""
    children = getattr(layer, "layers", None) or getattr(layer, "branches", None)
    if children is not None:
        return any(has_linear(c) for c in children)
    return bool(getattr(layer, "is_linear", False))


@frozen
class Serial(Layer):
    """Layers applied one after another."""

    layers: tuple

    @classmethod
    def of(cls, *layers: Layer) -> "Serial":
        flat = []
        for layer in layers:
            flat.extend(layer.layers if isinstance(layer, Serial) else (layer,))
        return cls(tuple(flat))

    def __repr__(self) -> str:
        return " >> ".join(_wrap(l) for l in self.layers)

    @property
    def label(self) -> str:
        return "serial model"

    def output_shape(self, input_shape):
        shape = input_shape
        for i, layer in enumerate(self.layers):
            shape = _with_position(i, layer, lambda: layer.output_shape(shape))
        return shape

    def init(self, key, input_shape):
        params = []
        shape = input_shape
        for i, layer in enumerate(self.layers):
            key, sub = jax.random.split(key)
            shape, p = _with_position(i, layer, lambda: layer.init(sub, shape))
            params.append(p)
        return shape, tuple(params)

    def apply(self, params, x, **kwargs):
        if len(params) != len(self.layers):
            raise self.error(f"expects {len(self.layers)} parameter entries, got {len(params)}.")
        for i, (layer, p) in enumerate(zip(self.layers, params)):
            x = _with_position(i, layer, lambda: layer.apply(p, x, **kwargs))
        return x

    def needs_full(self, out_full: bool) -> bool:
        for layer in reversed(self.layers):
            out_full = layer.needs_full(out_full)
        return out_full

    def kernel_map_model(self, k):
        return self.kernel_map(k, trim=True)

    def kernel_map(self, k, *, trim: bool = False):
        need = None
        if trim and not isinstance(k, list):
            # which inputs must keep the full spatial covariance, from the readout backwards
            out_shape = self.output_shape(k.shape1)
            full = (not isinstance(out_shape, list)) and len(out_shape) > 2
            need = []
            for layer in reversed(self.layers):
                full = layer.needs_full(full)
                need.append(full)
            need.reverse()
        for i, layer in enumerate(self.layers):
            if need is not None and not isinstance(k, list) and not need[i]:
                k = diagonalized(k)
            if isinstance(layer, FanInSum) and i > 0 and isinstance(self.layers[i - 1], Parallel):
                linear = self.layers[i - 1].branch_has_linear
                k = _with_position(i, layer, lambda: sum_kernels(layer, k, list(linear)))
            else:
                k = _with_position(i, layer, lambda: layer.kernel_map(k))
        return k



@frozen
class Sum(Layer):
    """Branches fed the same input, outputs added (see the module docstring)."""

    branches: tuple

    @classmethod
    def of(cls, *branches: Layer) -> "Sum":
        flat = []
        for b in branches:
            flat.extend(b.branches if isinstance(b, Sum) else (b,))
        return cls(tuple(flat))

    def __repr__(self) -> str:
        return "(" + " + ".join(_wrap(b) for b in self.branches) + ")"

    @property
    def label(self) -> str:
        return repr(self)

    def output_shape(self, input_shape):
        shapes = [b.output_shape(input_shape) for b in self.branches]
        return fan_in_sum_shape(self, shapes)

    def init(self, key, input_shape):
        keys = jax.random.split(key, len(self.branches))
        out = [b.init(kk, input_shape) for b, kk in zip(self.branches, keys)]
        fan_in_sum_shape(self, [o[0] for o in out])
        return out[0][0], tuple(o[1] for o in out)

    def apply(self, params, x, **kwargs):
        ys = [b.apply(p, x, **kwargs) for b, p in zip(self.branches, params)]
        total = ys[0]
        for y in ys[1:]:
            total = total + y
        return total

    def needs_full(self, out_full: bool) -> bool:
        return any(b.needs_full(out_full) for b in self.branches)

    def kernel_map(self, k: Kernel) -> Kernel:
        return sum_kernels(self, [b.kernel_map(k) for b in self.branches],
                           [has_linear(b) for b in self.branches])


@frozen
class Concat(Layer):
    """Branches fed the same input, outputs concatenated along channels."""

    branches: tuple

    @classmethod
    def of(cls, *branches: Layer) -> "Concat":
        flat = []
        for b in branches:
            flat.extend(b.branches if isinstance(b, Concat) else (b,))
        return cls(tuple(flat))

    def __repr__(self) -> str:
        return "(" + " | ".join(_wrap(b) for b in self.branches) + ")"

    @property
    def label(self) -> str:
        return repr(self)

    def output_shape(self, input_shape):
        return fan_in_concat_shape(self, [b.output_shape(input_shape) for b in self.branches])

    def init(self, key, input_shape):
        keys = jax.random.split(key, len(self.branches))
        out = [b.init(kk, input_shape) for b, kk in zip(self.branches, keys)]
        return fan_in_concat_shape(self, [o[0] for o in out]), tuple(o[1] for o in out)

    def apply(self, params, x, **kwargs):
        import jax.numpy as jnp
        return jnp.concatenate([b.apply(p, x, **kwargs) for b, p in zip(self.branches, params)], -1)

    def needs_full(self, out_full: bool) -> bool:
        return any(b.needs_full(out_full) for b in self.branches)

    def kernel_map(self, k: Kernel) -> Kernel:
        return concat_kernels(self, [b.kernel_map(k) for b in self.branches])


# -- stax-style multi-input plumbing ------------------------------------------------------------

@frozen
class FanOut(Layer):
    """Copy the input into ``num`` branches (a list flows on to ``parallel``)."""

    num: int

    def __post_init__(self):
        object.__setattr__(self, "num", check_positive_int(self.num, "num", "FanOut"))

    def output_shape(self, input_shape):
        return [tuple(input_shape)] * self.num

    def apply(self, params, x, **kwargs):
        return [x] * self.num

    def kernel_map(self, k):
        return [k] * self.num


@frozen
class Parallel(Layer):
    """Apply one layer to each input of a list (stax's ``parallel``)."""

    layers: tuple

    def __repr__(self) -> str:
        return "parallel(" + ", ".join(repr(l) for l in self.layers) + ")"

    def _check(self, xs):
        if not isinstance(xs, list) or len(xs) != len(self.layers):
            n = len(xs) if isinstance(xs, list) else 1
            raise self.error(f"expects a list of {len(self.layers)} inputs (use FanOut first), got {n}.")

    def output_shape(self, input_shape):
        self._check(input_shape)
        return [l.output_shape(s) for l, s in zip(self.layers, input_shape)]

    def init(self, key, input_shape):
        self._check(input_shape)
        keys = jax.random.split(key, len(self.layers))
        out = [l.init(kk, s) for l, kk, s in zip(self.layers, keys, input_shape)]
        return [o[0] for o in out], tuple(o[1] for o in out)

    def apply(self, params, xs, **kwargs):
        self._check(xs)
        return [l.apply(p, x, **kwargs) for l, p, x in zip(self.layers, params, xs)]

    def needs_full(self, out_full: bool) -> bool:
        return any(l.needs_full(out_full) for l in self.layers)

    def kernel_map(self, ks):
        self._check(ks)
        return [l.kernel_map(k) for l, k in zip(self.layers, ks)]

    @property
    def branch_has_linear(self) -> tuple:
        return tuple(has_linear(l) for l in self.layers)


@frozen
class FanInSum(Layer):
    """Add a list of inputs (stax's ``FanInSum``)."""

    def output_shape(self, input_shape):
        if not isinstance(input_shape, list):
            raise self.error("expects a list of inputs (after FanOut and parallel).")
        return fan_in_sum_shape(self, input_shape)

    def apply(self, params, xs, **kwargs):
        total = xs[0]
        for x in xs[1:]:
            total = total + x
        return total

    def kernel_map(self, ks):
        if not isinstance(ks, list):
            raise self.error("expects a list of inputs (after FanOut and parallel).")
        return sum_kernels(self, ks, None)


@frozen
class FanInConcat(Layer):
    """Concatenate a list of inputs along ``axis`` (only the channel axis, -1, has a kernel)."""

    axis: int = -1

    def __post_init__(self):
        if self.axis != -1:
            raise self.error("only concatenation along the channel axis (-1) is supported; other "
                             f"axes have no infinite-width channel structure (got axis={self.axis}).")

    def output_shape(self, input_shape):
        if not isinstance(input_shape, list):
            raise self.error("expects a list of inputs (after FanOut and parallel).")
        return fan_in_concat_shape(self, input_shape)

    def apply(self, params, xs, **kwargs):
        import jax.numpy as jnp
        return jnp.concatenate(xs, axis=-1)

    def kernel_map(self, ks):
        if not isinstance(ks, list):
            raise self.error("expects a list of inputs (after FanOut and parallel).")
        return concat_kernels(self, ks)


def serial(*layers: Layer) -> Serial:
    """``serial(a, b, c)`` is ``a >> b >> c``."""
    if not layers:
        raise InfntkError("serial: needs at least one layer.")
    return Serial.of(*layers)


def parallel(*layers: Layer) -> Parallel:
    """Apply ``layers[i]`` to the ``i``-th input of a list (after ``FanOut``)."""
    if not layers:
        raise InfntkError("parallel: needs at least one layer.")
    return Parallel(tuple(layers))


# -- the kernel arithmetic of branches ----------------------------------------------------------

def fan_in_sum_shape(layer: Layer, shapes) -> tuple:
    first = tuple(shapes[0])
    for i, s in enumerate(shapes[1:], 1):
        if tuple(s) != first:
            raise layer.error(f"branches must produce the same shape to be added; branch 0 gives "
                              f"{first}, branch {i} gives {tuple(s)}.")
    return first


def fan_in_concat_shape(layer: Layer, shapes) -> tuple:
    first = tuple(shapes[0])
    for i, s in enumerate(shapes[1:], 1):
        if tuple(s[:-1]) != first[:-1]:
            raise layer.error(f"branches must agree in all but the channel axis to be concatenated; "
                              f"branch 0 gives {first}, branch {i} gives {tuple(s)}.")
    return first[:-1] + (sum(s[-1] for s in shapes),)


def sum_kernels(layer: Layer, ks: Sequence[Kernel], linear) -> Kernel:
    r"""Kernel of a sum of branches (see the module docstring)."""
    fan_in_sum_shape(layer, [k.shape1 for k in ks])
    linear_known = linear is not None
    if linear is None:  # stax-style FanInSum without structure: group by source
        linear = [False] * len(ks)
    # branches without a linear layer: elementwise maps of the same source -> add the maps
    elementwise = [k for k, lin in zip(ks, linear) if not lin]
    independent = [k for k, lin in zip(ks, linear) if lin]
    if elementwise:
        groups: list = []
        for k in elementwise:
            src, feat = nonlinear.source_and_feature(k)
            for g in groups:
                if g[0] is src:
                    g[1].append(feat)
                    break
            else:
                groups.append((src, [feat], k))
        if len(groups) > 1 and linear_known:
            raise layer.error("cannot add these branches: branches without a linear layer must be "
                              "elementwise maps of the same pre-activation (a LayerNorm or pooling "
                              "inside one of them changes it); put the nonlinearity in a separate "
                              "branch or add a linear layer.")
        merged = []
        for src, feats, k in groups:
            if len(feats) == 1:
                merged.append(k)
            elif src is None:
                raise layer.error("cannot add these branches: one is neither Gaussian nor an "
                                  "elementwise function of one Gaussian pre-activation.")
            else:
                merged.append(nonlinear.evaluate(nonlinear.combine_sum(layer, feats), src))
        independent = merged + independent
    out = independent[0]
    for k in independent[1:]:
        out = _add_independent(layer, out, k)
    return out


def _add_independent(layer: Layer, ka: Kernel, kb: Kernel) -> Kernel:
    def add(a, b):
        return None if a is None or b is None else a + b

    try:
        cross = nonlinear.cross_term(ka, kb)
    except ValueError:
        raise layer.error("cannot add these branches: one ends in a non-Gaussian feature whose "
                          "channel mean is unknown, and the other's mean is not zero.") from None
    nngp, cov1, cov2 = add(ka.nngp, kb.nngp), add(ka.cov1, kb.cov1), add(ka.cov2, kb.cov2)
    if cross is not None:
        nngp, cov1 = nngp + cross[0], cov1 + cross[1]
        cov2 = None if cov2 is None else cov2 + cross[2]
    return ka.replace(nngp=nngp, ntk=add(ka.ntk, kb.ntk), cov1=cov1, cov2=cov2,
                      is_gaussian=ka.is_gaussian and kb.is_gaussian and ka.pre is None and kb.pre is None,
                      is_input=False, pre=None, feature=None)


def concat_kernels(layer: Layer, ks: Sequence[Kernel]) -> Kernel:
    r"""Concatenation along channels: :math:`K = \sum_i (C_i / C) K_i`."""
    shape1 = fan_in_concat_shape(layer, [k.shape1 for k in ks])
    shape2 = fan_in_concat_shape(layer, [k.shape2 for k in ks])
    total = shape1[-1]

    def mix(name):
        parts = [getattr(k, name) for k in ks]
        if any(p is None for p in parts):
            return None
        out = parts[0] * (ks[0].shape1[-1] / total)
        for k, p in zip(ks[1:], parts[1:]):
            out = out + p * (k.shape1[-1] / total)
        return out

    return ks[0].replace(nngp=mix("nngp"), ntk=mix("ntk"), cov1=mix("cov1"), cov2=mix("cov2"),
                         shape1=shape1, shape2=shape2, is_input=False,
                         is_gaussian=all(k.is_gaussian and k.pre is None for k in ks),
                         pre=None, feature=None)


def _with_position(i: int, layer: Layer, fn):
    try:
        return fn()
    except InfntkError as e:
        msg = str(e)
        if msg.startswith("layer #"):
            raise
        raise InfntkError(f"layer #{i} {msg}") from None


def _wrap(layer: Layer) -> str:
    r = repr(layer)
    return f"({r})" if isinstance(layer, Serial) else r
