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
code written in the style of ``jax.example_libraries.stax``. ``FanInConcat(axis)`` along a *spatial*
axis (as neural-tangents 0.6.5) stacks the branches' positions: for centred Gaussian branches that
are pairwise uncorrelated, the covariance of the concatenated feature is block-diagonal along that
axis,

.. math::
    K_{p p'} = \begin{cases} K^{(i)}_{p - o_i,\, p' - o_i} & p, p' \text{ both in branch } i
    \text{ (offset } o_i) \\ 0 & \text{otherwise,} \end{cases}

and likewise :math:`\Theta` (the cross blocks of the NTK vanish because each is linear in some
branch's zero-mean weights). On the diagonal spatial layout this is a plain concatenation. Two
branches are known to be uncorrelated when at least one of them ends in its own ``Dense``/``Conv``
(possibly followed by pooling, ``Flatten``, ``Identity`` or ``LayerNorm``): its output is then an
odd function of weights the other branch never sees. infntk checks this, where neural-tangents
assumes it.

Example:
    >>> import jax.numpy as jnp, infntk as nk
    >>> block = nk.Dense(16, W_std=1.5) >> nk.Relu() >> nk.Dense(16, W_std=1.5)
    >>> model = nk.Dense(16) >> (block + nk.Identity()) >> nk.Relu() >> nk.Dense(1)
    >>> model.kernel(jnp.ones((3, 4)), get="ntk").shape
    (3, 3)
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InfntkError
from ..kernel import Kernel, diagonalized
from . import nonlinear, self_covariance
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
            elif isinstance(layer, FanInConcat):
                fresh = self._fresh_branches(i)
                k = _with_position(i, layer, lambda: layer.kernel_map(k, fresh=fresh))
            else:
                k = _with_position(i, layer, lambda: layer.kernel_map(k))
            if not isinstance(layer, Serial):
                k = self_covariance.tap(k)
        return k

    def _fresh_branches(self, i: int) -> Optional[list]:
        """For the list that reaches layer ``i``: which branches end in their own weights (see
        :func:`ends_fresh`), following the ``parallel`` layers right before it; ``None`` when
        unknown (no ``parallel`` there)."""
        j = i
        while j > 0 and isinstance(self.layers[j - 1], Parallel):
            j -= 1
        chain = self.layers[j:i]
        if not chain or len({len(p.layers) for p in chain}) != 1:
            return None
        return [ends_fresh(Serial.of(*(p.layers[b] for p in chain)))
                for b in range(len(chain[0].layers))]


def ends_fresh(layer: Layer) -> bool:
    """Whether the layer's output is an odd function of zero-mean weights drawn inside it, so that
    it is uncorrelated with (and its NTK has no cross term with) any feature computed without them:
    it ends in a ``Dense``/``Conv``, possibly followed by layers that keep that property."""
    if isinstance(layer, Serial):
        for sub in reversed(layer.layers):
            if ends_fresh(sub):
                return True
            if not _passes_fresh(sub):
                return False
        return False
    if isinstance(layer, (Sum, Concat)):
        return all(ends_fresh(b) for b in layer.branches)
    return bool(getattr(layer, "is_linear", False))


def _passes_fresh(layer: Layer) -> bool:
    """Weightless layers that map an odd function of fresh weights to another one."""
    from .identity import Identity
    from .normalization import LayerNorm
    from .pooling import AvgPool, Flatten, GlobalAvgPool
    if isinstance(layer, Serial):
        return all(_passes_fresh(sub) for sub in layer.layers)
    return isinstance(layer, (Identity, LayerNorm, AvgPool, GlobalAvgPool, Flatten))


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
    """Concatenate a list of inputs along ``axis``: the channel axis (-1; any branches, see
    :func:`concat_kernels`) or a spatial axis (pairwise uncorrelated Gaussian branches, see
    :func:`concat_spatial_kernels`). The batch axis (0) has no kernel and is refused."""

    axis: int = -1

    def __post_init__(self):
        if isinstance(self.axis, bool) or not isinstance(self.axis, (int, np.integer)):
            raise self.error(f"axis must be an integer, got {self.axis!r}.")
        object.__setattr__(self, "axis", int(self.axis))

    @property
    def label(self) -> str:
        return f"FanInConcat(axis={self.axis})"

    def resolved_axis(self, ndim: int) -> int:
        """``axis`` as a non-negative index into inputs with ``ndim`` axes (validated)."""
        if not -ndim <= self.axis < ndim:
            raise self.error(f"axis {self.axis} is out of range for inputs with {ndim} axes.")
        a = self.axis % ndim
        if a == 0:
            raise self.error("cannot concatenate along the batch axis (0): inputs are the rows of "
                             "the kernel, not features; concatenate the data instead.")
        return a

    def output_shape(self, input_shape):
        if not isinstance(input_shape, list):
            raise self.error("expects a list of inputs (after FanOut and parallel).")
        ndim = len(input_shape[0])
        a = self.resolved_axis(ndim)
        if a == ndim - 1:
            return fan_in_concat_shape(self, input_shape)
        return fan_in_concat_spatial_shape(self, input_shape, a)

    def apply(self, params, xs, **kwargs):
        self.output_shape([tuple(x.shape) for x in xs])
        return jnp.concatenate(xs, axis=self.axis)

    def kernel_map(self, ks, fresh: Optional[Sequence[bool]] = None):
        """``fresh[i]``: branch ``i`` ends in its own weights (:func:`ends_fresh`); given by the
        enclosing ``serial`` from the ``parallel`` before this layer, ``None`` when unknown."""
        if not isinstance(ks, list):
            raise self.error("expects a list of inputs (after FanOut and parallel).")
        ndim = len(ks[0].shape1)
        a = self.resolved_axis(ndim)
        if a == ndim - 1:
            return concat_kernels(self, ks)
        return concat_spatial_kernels(self, ks, a - 1, fresh)


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


def fan_in_concat_spatial_shape(layer: Layer, shapes, axis: int) -> tuple:
    first = tuple(shapes[0])
    for i, s in enumerate(shapes[1:], 1):
        s = tuple(s)
        if len(s) != len(first) or s[:axis] + s[axis + 1:] != first[:axis] + first[axis + 1:]:
            raise layer.error(f"branches must agree in every axis but axis {axis} to be "
                              f"concatenated along it; branch 0 gives {first}, branch {i} gives {s}.")
    return first[:axis] + (sum(s[axis] for s in shapes),) + first[axis + 1:]


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


def concat_spatial_kernels(layer: Layer, ks: Sequence[Kernel], j: int,
                           fresh: Optional[Sequence[bool]]) -> Kernel:
    r"""Concatenation along spatial axis ``j`` (0-based among the spatial axes) of pairwise
    uncorrelated centred Gaussian branches: block-diagonal covariance (module docstring)."""
    shape1 = fan_in_concat_spatial_shape(layer, [k.shape1 for k in ks], j + 1)
    shape2 = fan_in_concat_spatial_shape(layer, [k.shape2 for k in ks], j + 1)
    for i, k in enumerate(ks):
        if k.is_input:
            raise layer.error(f"branch {i} is the raw input, which is not a Gaussian feature: "
                              "concatenation along a spatial axis needs every branch to end in a "
                              "linear layer (Dense/Conv, then pooling/Flatten/LayerNorm at most), "
                              "as in neural-tangents.")
        if not k.is_gaussian or k.pre is not None:
            raise layer.error(f"branch {i} is not Gaussian (it ends in a nonlinearity): "
                              "concatenation along a spatial axis is only known for centred "
                              "Gaussian branches (neural-tangents refuses this too); add a "
                              "Dense/Conv at the end of the branch.")
    if len({k.diagonal_spatial for k in ks}) != 1:
        raise layer.error("branches reach it in different spatial layouts; this is an internal "
                          "inconsistency, please report it.")
    shared = [i for i, f in enumerate(fresh if fresh is not None else [False] * len(ks)) if not f]
    if len(ks) > 1 and len(shared) > 1:
        raise layer.error(
            f"branches {shared[0]} and {shared[1]} are not known to be independent: concatenation "
            "along a spatial axis needs every pair of branches uncorrelated, i.e. at most one "
            "branch without its own Dense/Conv at its end (FanOut, then parallel(...) of such "
            "branches, then FanInConcat). neural-tangents assumes this without checking.")
    diag = ks[0].diagonal_spatial

    def cat(name: str, lead: int):
        parts = [getattr(k, name) for k in ks]
        if any(p is None for p in parts):
            return None
        if diag:
            return jnp.concatenate(parts, axis=lead + j)
        # full layout: axes (lead + 2j, lead + 2j + 1) are the pair of positions along axis j
        row, col = lead + 2 * j, lead + 2 * j + 1
        sizes = [p.shape[col] for p in parts]
        blocks = []
        for i, p in enumerate(parts):
            pads = [(0, 0)] * p.ndim
            pads[col] = (sum(sizes[:i]), sum(sizes[i + 1:]))
            blocks.append(jnp.pad(p, pads))
        return jnp.concatenate(blocks, axis=row)

    return ks[0].replace(nngp=cat("nngp", 2), ntk=cat("ntk", 2), cov1=cat("cov1", 1),
                         cov2=cat("cov2", 1), shape1=shape1, shape2=shape2, is_input=False,
                         is_gaussian=True, pre=None, feature=None)


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
