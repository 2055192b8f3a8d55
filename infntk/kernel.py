r"""The infinite-width kernel state that layers transform.

For inputs ``x1`` of shape ``(N1, *S, C)`` and ``x2`` of shape ``(N2, *S, C)`` (channels last, ``S``
the spatial shape, possibly empty) a :class:`Kernel` holds, for the features at the current depth
(channels treated as infinitely many i.i.d. copies):

* ``nngp`` -- the covariance :math:`K(x_1, x_2)` between the two batches,
* ``ntk``  -- the neural tangent kernel :math:`\Theta(x_1, x_2)` (``None`` when not requested),
* ``cov1``, ``cov2`` -- each input's covariance with itself (batch-diagonal), which activations
  need for their variances; ``cov2 is None`` means ``x2`` is ``x1``.

The spatial layout is either *full* (``nngp`` of shape ``(N1, N2, S1, S1', ..., Sd, Sd')``, pairs
of positions interleaved) or *diagonal* (``(N1, N2, S1, ..., Sd)``, the covariance of equal
positions only). The composed model decides which layout each layer sees: only pooling-type layers
need the full spatial covariance, so a conv stack read out by ``Flatten`` costs :math:`O(|S|)` per
pair of inputs rather than :math:`O(|S|^2)`.

The state is a JAX pytree: arrays are leaves, layout facts are static.

Example:
    >>> import jax.numpy as jnp
    >>> from infntk.kernel import Kernel
    >>> k = Kernel.from_inputs(jnp.ones((2, 3)), None, diagonal_spatial=True)
    >>> k.nngp.shape, k.cov2 is None
    ((2, 2), True)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax
import jax.numpy as jnp

Array = Any

_STATIC = ("shape1", "shape2", "diagonal_spatial", "is_gaussian", "is_input", "feature", "compute_ntk")
_CHILDREN = ("nngp", "ntk", "cov1", "cov2", "pre")


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True)
class Kernel:
    """NNGP/NTK state of a network's features at one depth (see the module docstring).

    Attributes:
        nngp, ntk, cov1, cov2: arrays as described in the module docstring.
        pre: for a non-Gaussian feature that is an elementwise function of one Gaussian
            pre-activation, the Gaussian pre-activation's state; ``None`` otherwise.
        shape1, shape2: shapes of the finite features (batch first, channels last).
        diagonal_spatial: True for the diagonal spatial layout, False for the full one.
        is_gaussian: the features are a centred Gaussian process (true after any linear layer).
        is_input: the state describes the raw inputs (no layer applied yet).
        feature: with ``pre``, the elementwise map (an :class:`infntk.dual.Dual`) that takes the
            Gaussian pre-activation to these features.
        compute_ntk: whether the NTK is tracked.
    """

    nngp: Array
    ntk: Optional[Array]
    cov1: Array
    cov2: Optional[Array]
    shape1: tuple
    shape2: tuple
    diagonal_spatial: bool = True
    is_gaussian: bool = True
    is_input: bool = False
    pre: Optional["Kernel"] = None
    feature: Any = None
    compute_ntk: bool = True

    # -- pytree -------------------------------------------------------------------------------
    def tree_flatten(self):
        return tuple(getattr(self, f) for f in _CHILDREN), tuple(getattr(self, f) for f in _STATIC)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(**dict(zip(_CHILDREN, children)), **dict(zip(_STATIC, aux)))

    def replace(self, **changes) -> "Kernel":
        """A copy with the given fields changed."""
        return dataclasses.replace(self, **changes)

    # -- layout facts ---------------------------------------------------------------------------
    @property
    def x1_is_x2(self) -> bool:
        return self.cov2 is None

    @property
    def spatial_ndim(self) -> int:
        return len(self.shape1) - 2

    @property
    def spatial1(self) -> tuple:
        return tuple(self.shape1[1:-1])

    @property
    def spatial2(self) -> tuple:
        return tuple(self.shape2[1:-1])

    def variance1(self) -> Array:
        """Per-position variance of x1's features, shape ``(N1, *S)``."""
        return _diagonal_of(self.cov1, self.spatial_ndim, 1, self.diagonal_spatial)

    def variance2(self) -> Array:
        """Per-position variance of x2's features, shape ``(N2, *S)``."""
        cov = self.cov1 if self.cov2 is None else self.cov2
        return _diagonal_of(cov, self.spatial_ndim, 1, self.diagonal_spatial)

    def pair_variances(self, which: str = "nngp"):
        """Variances ``(q11, q22)`` broadcastable against ``nngp`` (``which='nngp'``), or against
        ``cov1``/``cov2`` (``which='cov1'``/``'cov2'``), in this state's layout."""
        if which == "nngp":
            return pair_broadcast(self.variance1(), self.variance2(), self, lead=2)
        v = self.variance1() if which == "cov1" else self.variance2()
        return pair_broadcast(v, v, self, lead=1)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_inputs(cls, x1: Array, x2: Optional[Array], diagonal_spatial: bool,
                    compute_ntk: bool = True) -> "Kernel":
        r"""The input kernel: :math:`K(x, x')_{s s'} = \frac{1}{C}\sum_c x_{s c} x'_{s' c}`.

        The NTK of the inputs is zero (they carry no parameters).
        """
        nngp = _outer(x1, x1 if x2 is None else x2, diagonal_spatial)
        # with x2 = x1 the variances are read off nngp's batch diagonal, bit for bit, so that every
        # later layer sees correlation exactly 1 there (arc-cosine duals are sqrt-sensitive at 1)
        cov1 = batch_diagonal(nngp) if x2 is None else _self_outer(x1, diagonal_spatial)
        cov2 = None if x2 is None else _self_outer(x2, diagonal_spatial)
        ntk = jnp.zeros_like(nngp) if compute_ntk else None
        return cls(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2,
                   shape1=tuple(x1.shape), shape2=tuple((x1 if x2 is None else x2).shape),
                   diagonal_spatial=diagonal_spatial, is_gaussian=True, is_input=True,
                   compute_ntk=compute_ntk)


def _letters(n: int, offset: int = 0) -> str:
    return "".join(chr(ord("a") + offset + i) for i in range(n))


def _outer(x1: Array, x2: Array, diagonal_spatial: bool) -> Array:
    d = x1.ndim - 2
    s1 = _letters(d, 0)
    if diagonal_spatial or d == 0:
        spec = f"n{s1}z,m{s1}z->nm{s1}"
    else:
        s2 = _letters(d, 6)
        out = "".join(a + b for a, b in zip(s1, s2))
        spec = f"n{s1}z,m{s2}z->nm{out}"
    return jnp.einsum(spec, x1, x2, precision=jax.lax.Precision.HIGHEST) / x1.shape[-1]


def _self_outer(x: Array, diagonal_spatial: bool) -> Array:
    d = x.ndim - 2
    s1 = _letters(d, 0)
    if diagonal_spatial or d == 0:
        return jnp.einsum(f"n{s1}z,n{s1}z->n{s1}", x, x, precision=jax.lax.Precision.HIGHEST) / x.shape[-1]
    s2 = _letters(d, 6)
    out = "".join(a + b for a, b in zip(s1, s2))
    return jnp.einsum(f"n{s1}z,n{s2}z->n{out}", x, x, precision=jax.lax.Precision.HIGHEST) / x.shape[-1]


def _diagonal_of(cov: Array, d: int, batch_ndim: int, diagonal_spatial: bool) -> Array:
    """Per-position variances from a (batch-diagonal) covariance of either layout."""
    if diagonal_spatial or d == 0:
        return cov
    out = cov
    # successively take the diagonal of each interleaved pair (axes batch_ndim+i, batch_ndim+i+1)
    for i in range(d):
        out = jnp.diagonal(out, axis1=batch_ndim + i, axis2=batch_ndim + i + 1)
        out = jnp.moveaxis(out, -1, batch_ndim + i)
    return out


def pair_broadcast(v1: Array, v2: Array, k: "Kernel", lead: int):
    """Broadcast per-position quantities ``v1: (N1, *S)``, ``v2: (N2, *S)`` against a covariance of
    ``k``'s layout: against ``nngp`` (``lead=2``: ``v1[:, None]``, ``v2[None]``) or against a
    batch-diagonal ``cov`` (``lead=1``). In the full layout ``v1`` varies along the first position
    of each interleaved pair and ``v2`` along the second."""
    if lead == 2:
        v1, v2 = jnp.expand_dims(v1, 1), jnp.expand_dims(v2, 0)
    d = k.spatial_ndim
    if k.diagonal_spatial or d == 0:
        return v1, v2
    idx1 = [slice(None)] * lead
    idx2 = [slice(None)] * lead
    for _ in range(d):
        idx1 += [slice(None), None]
        idx2 += [None, slice(None)]
    return v1[tuple(idx1)], v2[tuple(idx2)]


def diagonalized(k: "Kernel") -> "Kernel":
    """The same state in the diagonal spatial layout (drops the off-diagonal covariances)."""
    if k.diagonal_spatial or k.spatial_ndim == 0:
        return k
    d = k.spatial_ndim
    return k.replace(
        nngp=_diagonal_of(k.nngp, d, 2, False),
        ntk=None if k.ntk is None else _diagonal_of(k.ntk, d, 2, False),
        cov1=k.variance1(), cov2=None if k.cov2 is None else k.variance2(),
        pre=None if k.pre is None else diagonalized(k.pre), diagonal_spatial=True)


def batch_diagonal(a: Array) -> Array:
    """``a[n, n, ...]`` for every ``n``: the batch diagonal of an ``(N, N, ...)`` covariance."""
    return jnp.moveaxis(jnp.diagonal(a, axis1=0, axis2=1), -1, 0)
