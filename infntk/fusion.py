r"""Fusion boundaries: keep XLA from recomputing a kernel recursion's intermediate arrays.

XLA fuses a cheap elementwise producer into *each* of its consumers, recomputing it rather than
writing it to memory. In a layer recursion that is the wrong trade: a layer's output is read by
several consumers of the next layer (the three shifted windows of a convolution on each spatial
axis; ``q12`` and the angle of an arc-cosine dual), whose own outputs are in turn fused into the
layer after, so the work of early layers is repeated a number of times that grows with depth. On
4 x [Conv, Relu] + GlobalAvgPool (64 inputs of 8 x 8, float32, 2 CPU cores) the fused program
spent half its time in such recomputed chains.

XLA does not duplicate *expensive* operations (divisions, square roots, transcendental functions)
into several consumers. :func:`materialize` therefore ends a value in a division by a factor that
is exactly one wherever the value is a number,

.. math:: \operatorname{materialize}(x) = x \,/\, [\,x \text{ if } x \text{ is NaN else } 1\,],

which is bitwise ``x`` (a division by one is exact, NaN stays NaN; subnormals flush to zero, as in
any XLA:CPU arithmetic) and cannot be simplified away
at compile time, so the value is computed once and stored. The derivative is the identity.
``jax.lax.optimization_barrier`` does not do this job on CPU: it is removed before fusion.

Example:
    >>> import jax.numpy as jnp
    >>> x = jnp.array([1.5, -0.0, jnp.inf, jnp.nan])
    >>> materialize(x)
    Array([ 1.5, -0. ,  inf,  nan], dtype=float32)
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["materialize", "divide_by_one"]


def divide_by_one(x, witness):
    """``x`` divided by a factor that is 1 unless ``witness`` is NaN (then NaN): an expensive root."""
    one = jnp.ones((), x.dtype)
    return x / jnp.where(jnp.isnan(witness), witness.astype(x.dtype), one)


@jax.custom_jvp
def materialize(x):
    """``x``, bitwise, computed once and stored (see the module docstring)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        return x
    return divide_by_one(x, x)


@materialize.defjvp
def _materialize_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return materialize(x), t
