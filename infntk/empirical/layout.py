r"""The problem an empirical kernel solves and the layout of its output.

:class:`Problem` holds ``f``, its parameters, keyword arguments and ``vmap_axes`` (which certify that
examples are independent, so per-example derivatives and blocks are allowed). :class:`Labels` gives
each output axis of ``f(x1)`` and ``f(x2)`` its einsum letter and describes the kernel's layout,
exactly as neural-tangents 0.6.5: traced axes are summed pairwise and divided by their size
:math:`|T|`, diagonal axes appear once, every other axis twice, zipped.

Example:
    >>> lab = Labels((5, 3), (4, 3), trace_axes=(-1,), diagonal_axes=())
    >>> lab.shape, lab.size
    ((5, 4), 3)
"""
from __future__ import annotations

import string

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.tree_util import tree_leaves, tree_map

from ..errors import InfntkError

HIGHEST = lax.Precision.HIGHEST
"""Precision of the contractions whose operands are formed here (never TF32/bf16 passes)."""


def n_elements(shape) -> int:
    """Number of entries of an array of ``shape``."""
    return int(np.prod(shape, dtype=np.int64))


def _canon_axes(axes, ndim: int, what: str) -> tuple[int, ...]:
    if axes is None:
        axes = ()
    if isinstance(axes, int):
        axes = (axes,)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise InfntkError(f"empirical kernel: {what} axis {a} out of range for "
                              f"an output of rank {ndim}.")
        out.append(a % ndim)
    return tuple(sorted(set(out)))


class Labels:
    """Allocates einsum letters and describes the kernel's output layout.

    Out axis ``k`` of f(x1) / f(x2) gets: a shared letter if it is traced or
    diagonal, otherwise one letter per side; the output is zipped as in NT.
    """

    def __init__(self, shape1, shape2, trace_axes, diagonal_axes):
        ndim = len(shape1)
        if len(shape2) != ndim:
            raise InfntkError("empirical kernel: f(x1) and f(x2) have different ranks "
                              f"{shape1} vs {shape2}.")
        self.trace = _canon_axes(trace_axes, ndim, "trace")
        self.diag = _canon_axes(diagonal_axes, ndim, "diagonal")
        if set(self.trace) & set(self.diag):
            raise InfntkError("empirical kernel: an axis cannot be both in trace_axes "
                              "and diagonal_axes.")
        for k in self.trace + self.diag:
            if shape1[k] != shape2[k]:
                raise InfntkError(
                    f"empirical kernel: output axis {k} is traced/diagonal but has "
                    f"sizes {shape1[k]} and {shape2[k]} for x1 and x2.")
        self._free = iter(string.ascii_letters)
        self.o1, self.o2, self.out = [], [], []
        for k in range(ndim):
            if k in self.trace or k in self.diag:
                c = self.new()
                self.o1.append(c)
                self.o2.append(c)
                if k in self.diag:
                    self.out.append(c)
            else:
                c1, c2 = self.new(), self.new()
                self.o1.append(c1)
                self.o2.append(c2)
                self.out += [c1, c2]
        self.size = int(np.prod([shape1[k] for k in self.trace], dtype=np.int64))
        self.shape = []
        for k in range(ndim):
            if k in self.diag:
                self.shape.append(shape1[k])
            elif k not in self.trace:
                self.shape += [shape1[k], shape2[k]]
        self.shape = tuple(self.shape)

    def new(self, n: int = 1):
        if n == 1:
            return next(self._free)
        return [next(self._free) for _ in range(n)]

    def fork(self):
        """A copy whose fresh-letter allocator restarts after the output letters."""
        other = object.__new__(Labels)
        other.__dict__.update(self.__dict__)
        used = set(self.o1) | set(self.o2)
        other._free = iter([c for c in string.ascii_letters if c not in used])
        return other

    def reduce_full(self, k_full):
        """Full kernel of layout ``O1 + O2`` -> NT layout (trace/diagonal applied)."""
        spec = "".join(self.o1) + "".join(self.o2) + "->" + "".join(self.out)
        return jnp.einsum(spec, k_full) / self.size


def vmap_triple(vmap_axes):
    """``(in_axis, out_axis, kwargs_axes)`` from ``vmap_axes`` (an int or that triple), or None."""
    if vmap_axes is None:
        return None
    if isinstance(vmap_axes, tuple) and len(vmap_axes) == 3:
        in_ax, out_ax, kw_ax = vmap_axes
    else:
        in_ax, out_ax, kw_ax = vmap_axes, vmap_axes, {}
    if not isinstance(in_ax, int) or not isinstance(out_ax, int):
        raise InfntkError("empirical_ntk_fn: vmap_axes must be an int or a triple "
                          "(in_axis: int, out_axis: int, kwargs_axes: dict).")
    return in_ax, out_ax, dict(kw_ax or {})


def single_array(out, fname):
    """The one array ``f`` returned (an error naming ``fname`` for anything else)."""
    leaves = tree_leaves(out)
    if len(leaves) != 1 or not hasattr(leaves[0], "shape"):
        raise InfntkError(f"{fname}: f(params, x) must return a single array; got "
                          f"{jax.tree_util.tree_structure(out)}.")
    return leaves[0]


def n_examples(x, axis):
    """Number of examples of the inputs ``x`` (a pytree) along ``axis``."""
    leaves = tree_leaves(x)
    return leaves[0].shape[axis]


def take(x, axis, start, stop):
    """Examples ``start:stop`` of the inputs ``x`` (a pytree) along ``axis``."""
    return tree_map(lambda a: lax.slice_in_dim(a, start, stop, axis=axis % a.ndim), x)


class Problem:
    """One kernel evaluation: f, params, inputs, kwargs and axis conventions."""

    def __init__(self, f, params, kwargs, vm, fname):
        self.f, self.params, self.kwargs, self.vm, self.fname = f, params, kwargs, vm, fname

    def full_f(self, x):
        kw = self.kwargs
        return lambda p: single_array(self.f(p, x, **kw), self.fname)

    def example_fn(self):
        """f on one example (batch axis removed in x, kwargs and output)."""
        in_ax, out_ax, kw_ax = self.vm

        def g(p, xi, kwi):
            xe = tree_map(lambda a: jnp.expand_dims(a, in_ax % (a.ndim + 1)), xi)
            kw = dict(self.kwargs)
            for k, ax in kw_ax.items():
                kw[k] = tree_map(lambda a: jnp.expand_dims(a, ax % (a.ndim + 1)), kwi[k])
            out = single_array(self.f(p, xe, **kw), self.fname)
            return jnp.squeeze(out, out_ax % out.ndim)
        return g

    def kw_batched(self):
        _, _, kw_ax = self.vm
        return {k: self.kwargs[k] for k in kw_ax}

    def out_shape(self, x):
        return jax.eval_shape(lambda p: single_array(self.f(p, x, **self.kwargs),
                                                      self.fname), self.params).shape


def std_basis(shape, dtype):
    """All standard basis arrays of ``shape``, stacked: shape ``(n_elements(shape),) + shape``."""
    n = n_elements(shape)
    return jnp.eye(n, dtype=dtype).reshape((n,) + tuple(shape))
