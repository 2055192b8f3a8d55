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
code written in the style of ``jax.example_libraries.stax``: when a model is built, every run
``FanOut(n) >> parallel(...) >> ... >> FanInSum()`` (or ``FanInConcat``) is rewritten into one
``Sum`` (or concatenation) of its branches, so that a model is a plain fold of layers; errors keep
naming the fan-in layer and its position in the model as written. ``FanInConcat(axis)`` along a *spatial*
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

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InfntkError
from ..kernel import Kernel
from ..plan import with_position
from . import nonlinear, spatial
from .base import Layer, check_positive_int, frozen
from .identity import Identity


@frozen
class Serial(Layer):
    """Layers applied one after another; ``spans[i]``: how many layers of the model as written
    ``layers[i]`` stands for (a rewritten ``FanOut >> parallel >> FanIn*`` run stands for several)."""

    named_in = ()  # written with >> (stax: serial)
    layers: tuple
    spans: Optional[tuple] = None

    def __post_init__(self):
        if self.spans is None:
            object.__setattr__(self, "spans", (1,) * len(self.layers))

    @classmethod
    def of(cls, *layers: Layer) -> "Serial":
        flat, spans = [], []
        for layer in layers:
            flat.extend(layer.series)
            spans.extend(layer.spans)
        flat, spans = _rewrite_fan_out(flat, spans)
        return cls(tuple(flat), tuple(spans))

    def __repr__(self) -> str:
        return " >> ".join(_wrap(l) for l in self.layers)

    @property
    def label(self) -> str:
        return "serial model"

    @property
    def series(self) -> tuple:
        return self.layers

    @property
    def positions(self) -> tuple:
        ends = np.cumsum(self.spans) - 1
        return tuple(int(e) for e in ends)

    def output_shape(self, input_shape):
        shape = input_shape
        for layer, pos in zip(self.layers, self.positions):
            shape = with_position(pos, lambda: layer.output_shape(shape))
        return shape

    def init(self, key, input_shape):
        params = []
        shape = input_shape
        for layer, pos in zip(self.layers, self.positions):
            key, sub = jax.random.split(key)
            shape, p = with_position(pos, lambda: layer.init(sub, shape))
            params.append(p)
        return shape, tuple(params)

    def apply(self, params, x, **kwargs):
        if len(params) != len(self.layers):
            raise self.error(f"expects {len(self.layers)} parameter entries, got {len(params)}.")
        for layer, pos, p in zip(self.layers, self.positions, params):
            x = with_position(pos, lambda: layer.apply(p, x, **kwargs))
        return x

    def needs_full(self, out_full: bool) -> bool:
        for layer in reversed(self.layers):
            out_full = layer.needs_full(out_full)
        return out_full

    def kernel_map(self, k, ops):
        from ..driver import fold
        return fold(self, k, ops)

    def has_linear(self) -> bool:
        return any(l.has_linear() for l in self.layers)

    def ends_fresh(self) -> bool:
        for sub in reversed(self.layers):
            if sub.ends_fresh():
                return True
            if not sub.passes_fresh():
                return False
        return False

    def passes_fresh(self) -> bool:
        return all(l.passes_fresh() for l in self.layers)


def _rewrite_fan_out(layers: list, spans: list):
    """Every run ``FanOut(n) >> parallel(...)* >> FanIn*`` as the one branching layer it is."""
    out, out_spans, i = [], [], 0
    while i < len(layers):
        n = layers[i].fan_out
        j = i + 1
        while n is not None and j < len(layers) and layers[j].parallel_layers is not None \
                and len(layers[j].parallel_layers) == n:
            j += 1
        combined = None
        if n is not None and j < len(layers):
            chains = [[p.parallel_layers[b] for p in layers[i + 1:j]] for b in range(n)]
            branches = tuple(Identity() if not c else c[0] if len(c) == 1 else Serial.of(*c)
                             for c in chains)
            combined = layers[j].fan_in(branches)
        if combined is None:
            out.append(layers[i])
            out_spans.append(spans[i])
            i += 1
        else:
            out.append(combined)
            out_spans.append(sum(spans[i:j + 1]))
            i = j + 1
    return out, out_spans


class _Branching(Layer):
    """Branches fed the same input (``Sum``, ``Concat``, ``ConcatAlong``); ``origin``: the label
    of the stax fan-in layer it was rewritten from, if any (named in errors)."""

    @property
    def label(self) -> str:
        return self.origin or repr(self)

    @property
    def step_name(self) -> str:
        return self.origin or type(self).__name__

    def needs_full(self, out_full: bool) -> bool:
        return any(b.needs_full(out_full) for b in self.branches)

    def has_linear(self) -> bool:
        return any(b.has_linear() for b in self.branches)

    def ends_fresh(self) -> bool:
        return all(b.ends_fresh() for b in self.branches)

    def init(self, key, input_shape):
        keys = jax.random.split(key, len(self.branches))
        out = [b.init(kk, input_shape) for b, kk in zip(self.branches, keys)]
        return self.combine_shapes([o[0] for o in out]), tuple(o[1] for o in out)

    def output_shape(self, input_shape):
        return self.combine_shapes([b.output_shape(input_shape) for b in self.branches])

    def branch_kernels(self, k, ops) -> list:
        return [ops.run(b, k, i) for i, b in enumerate(self.branches)]


@frozen
class Sum(_Branching):
    """Branches fed the same input, outputs added (see the module docstring)."""

    branches: tuple
    origin: Optional[str] = None
    recursion_kind = "sum"
    named_in = ()  # written with +

    @classmethod
    def of(cls, *branches: Layer) -> "Sum":
        return cls(tuple(p for b in branches for p in b.summands))

    @property
    def summands(self) -> tuple:
        return self.branches if self.origin is None else (self,)

    def __repr__(self) -> str:
        return "(" + " + ".join(_wrap(b) for b in self.branches) + ")"

    def combine_shapes(self, shapes):
        return fan_in_sum_shape(self, shapes)

    def apply(self, params, x, **kwargs):
        ys = [b.apply(p, x, **kwargs) for b, p in zip(self.branches, params)]
        total = ys[0]
        for y in ys[1:]:
            total = total + y
        return total

    def kernel_map(self, k: Kernel, ops) -> Kernel:
        return sum_kernels(self, self.branch_kernels(k, ops),
                           [b.has_linear() for b in self.branches], ops)


@frozen
class Concat(_Branching):
    """Branches fed the same input, outputs concatenated along channels."""

    branches: tuple
    origin: Optional[str] = None
    recursion_kind = "concat"
    named_in = ()  # written with |

    @classmethod
    def of(cls, *branches: Layer) -> "Concat":
        return cls(tuple(p for b in branches for p in b.concatenands))

    @property
    def concatenands(self) -> tuple:
        return self.branches if self.origin is None else (self,)

    def __repr__(self) -> str:
        return "(" + " | ".join(_wrap(b) for b in self.branches) + ")"

    def combine_shapes(self, shapes):
        return fan_in_concat_shape(self, shapes)

    def apply(self, params, x, **kwargs):
        return jnp.concatenate([b.apply(p, x, **kwargs) for b, p in zip(self.branches, params)], -1)

    def kernel_map(self, k: Kernel, ops) -> Kernel:
        return concat_kernels(self, self.branch_kernels(k, ops), ops)


@frozen
class ConcatAlong(_Branching):
    """Branches fed the same input, concatenated along ``axis`` (stax's ``FanInConcat(axis)``
    after ``FanOut`` and ``parallel``): the channel axis (as :class:`Concat`) or a spatial axis
    (pairwise uncorrelated Gaussian branches, :func:`concat_spatial_kernels`)."""

    branches: tuple
    axis: int
    origin: Optional[str] = None
    recursion_kind = "fan_in_concat"

    def __repr__(self) -> str:
        return (f"FanOut({len(self.branches)}) >> parallel("
                + ", ".join(repr(b) for b in self.branches) + f") >> FanInConcat(axis={self.axis})")

    def combine_shapes(self, shapes):
        return FanInConcat(self.axis).output_shape(list(shapes))

    def apply(self, params, x, **kwargs):
        return FanInConcat(self.axis).apply((), [b.apply(p, x, **kwargs)
                                                 for b, p in zip(self.branches, params)])

    def kernel_map(self, k: Kernel, ops) -> Kernel:
        ks = self.branch_kernels(k, ops)
        ndim = len(ks[0].shape1)
        a = FanInConcat(self.axis).resolved_axis(ndim)
        if a == ndim - 1:
            return concat_kernels(self, ks, ops)
        return concat_spatial_kernels(self, ks, a - 1, [b.ends_fresh() for b in self.branches], ops)


# -- stax-style multi-input plumbing (finite network on lists; kernels after the rewrite) ---------

_NEEDS_REWRITE = ("has a kernel only inside a FanOut(n) >> parallel(...) >> FanInSum()/FanInConcat() "
                  "run (a list of inputs has no single kernel).")


@frozen
class FanOut(Layer):
    """Copy the input into ``num`` branches (a list flows on to ``parallel``)."""

    named_in = ("stax",)

    num: int

    def __post_init__(self):
        object.__setattr__(self, "num", check_positive_int(self.num, "num", "FanOut"))

    @property
    def fan_out(self):
        return self.num

    def output_shape(self, input_shape):
        return [tuple(input_shape)] * self.num

    def apply(self, params, x, **kwargs):
        return [x] * self.num

    def kernel_map(self, k, ops):
        raise self.error(_NEEDS_REWRITE)


@frozen
class Parallel(Layer):
    """Apply one layer to each input of a list (stax's ``parallel``)."""

    named_in = ()  # stax spells it parallel(...)

    layers: tuple

    @property
    def parallel_layers(self):
        return self.layers

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

    def kernel_map(self, k, ops):
        raise self.error(_NEEDS_REWRITE)


@frozen
class FanInSum(Layer):
    """Add a list of inputs (stax's ``FanInSum``)."""

    named_in = ("stax",)

    def fan_in(self, branches):
        return Sum(tuple(branches), origin=self.label)

    def output_shape(self, input_shape):
        if not isinstance(input_shape, list):
            raise self.error("expects a list of inputs (after FanOut and parallel).")
        return fan_in_sum_shape(self, input_shape)

    def apply(self, params, xs, **kwargs):
        total = xs[0]
        for x in xs[1:]:
            total = total + x
        return total

    def kernel_map(self, k, ops):
        raise self.error("expects a list of inputs (after FanOut and parallel).")


@frozen
class FanInConcat(Layer):
    """Concatenate a list of inputs along ``axis``: the channel axis (-1; any branches, see
    :func:`concat_kernels`) or a spatial axis (pairwise uncorrelated Gaussian branches, see
    :func:`concat_spatial_kernels`). The batch axis (0) has no kernel and is refused."""

    named_in = ("stax",)

    axis: int = -1

    def __post_init__(self):
        if isinstance(self.axis, bool) or not isinstance(self.axis, (int, np.integer)):
            raise self.error(f"axis must be an integer, got {self.axis!r}.")
        object.__setattr__(self, "axis", int(self.axis))

    @property
    def label(self) -> str:
        return f"FanInConcat(axis={self.axis})"

    def fan_in(self, branches):
        if self.axis == -1:
            return Concat(tuple(branches), origin=self.label)
        return ConcatAlong(tuple(branches), self.axis, origin=self.label)

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

    def kernel_map(self, k, ops):
        raise self.error("expects a list of inputs (after FanOut and parallel).")


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


def sum_kernels(layer: Layer, ks: Sequence[Kernel], linear: Sequence[bool], ops) -> Kernel:
    r"""Kernel of a sum of branches (see the module docstring)."""
    fan_in_sum_shape(layer, [k.shape1 for k in ks])
    # branches without a linear layer: elementwise maps of the same source -> add the maps
    elementwise = [k for k, lin in zip(ks, linear) if not lin]
    independent = [k for k, lin in zip(ks, linear) if lin]
    if elementwise:
        groups: list = []
        for k in elementwise:
            src, feat = nonlinear.source_and_feature(k)
            for g in groups:
                if src is not None and g[0] is not None and ops.same_source(g[0], src):
                    g[1].append(feat)
                    break
            else:
                groups.append((src, [feat], k))
        if len(groups) > 1:
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
                merged.append(ops.activate(nonlinear.combine_sum(layer, feats), src))
        independent = merged + independent
    out = independent[0]
    for k in independent[1:]:
        out = _add_independent(layer, out, k, ops)
    return out


def _add_independent(layer: Layer, ka: Kernel, kb: Kernel, ops) -> Kernel:
    def add(a, b):
        return None if a is None or b is None else a + b

    try:
        cross = nonlinear.cross_term(ka, kb, ops)
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


def concat_kernels(layer: Layer, ks: Sequence[Kernel], ops) -> Kernel:
    r"""Concatenation along channels: :math:`K = \sum_i (C_i / C) K_i`."""
    shape1 = fan_in_concat_shape(layer, [k.shape1 for k in ks])
    shape2 = fan_in_concat_shape(layer, [k.shape2 for k in ks])
    total = shape1[-1]

    def mix(name):
        parts = [getattr(k, name) for k in ks]
        if any(p is None for p in parts):
            return None
        out = parts[0] * ops.fraction(ks[0].shape1[-1], total)
        for k, p in zip(ks[1:], parts[1:]):
            out = out + p * ops.fraction(k.shape1[-1], total)
        return out

    return ks[0].replace(nngp=mix("nngp"), ntk=mix("ntk"), cov1=mix("cov1"), cov2=mix("cov2"),
                         shape1=shape1, shape2=shape2, is_input=False,
                         is_gaussian=all(k.is_gaussian and k.pre is None for k in ks),
                         pre=None, feature=None)


def concat_spatial_kernels(layer: Layer, ks: Sequence[Kernel], j: int,
                           fresh: Sequence[bool], ops) -> Kernel:
    r"""Concatenation along spatial axis ``j`` (0-based among the spatial axes) of pairwise
    uncorrelated centred Gaussian branches: block-diagonal covariance (module docstring).
    ``fresh[i]``: branch ``i`` ends in its own weights (``Layer.ends_fresh``)."""
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
    shared = [i for i, f in enumerate(fresh) if not f]
    if len(ks) > 1 and len(shared) > 1:
        raise layer.error(
            f"branches {shared[0]} and {shared[1]} are not known to be independent: concatenation "
            "along a spatial axis needs every pair of branches uncorrelated, i.e. at most one "
            "branch without its own Dense/Conv at its end (FanOut, then parallel(...) of such "
            "branches, then FanInConcat). neural-tangents assumes this without checking.")
    op = spatial.BlockConcat(j, getattr(layer, "axis", j + 1))
    out = ks[0].replace(shape1=shape1, shape2=shape2)

    def cat(name: str, role: str):
        parts = [getattr(k, name) for k in ks]
        return None if any(p is None for p in parts) else ops.block_concat(op, parts, out, role)

    return out.replace(nngp=cat("nngp", "nngp"), ntk=cat("ntk", "nngp"), cov1=cat("cov1", "cov1"),
                       cov2=cat("cov2", "cov2"), is_input=False, is_gaussian=True, pre=None,
                       feature=None)


def _wrap(layer: Layer) -> str:
    r = repr(layer)
    return f"({r})" if len(layer.series) > 1 else r
