r"""Kernel maps of elementwise features of one Gaussian pre-activation.

An activation :math:`\phi` applied to a centred Gaussian feature with covariance :math:`K` and NTK
:math:`\Theta` gives (Cho & Saul 2009; Lee et al. 2018; Jacot et al. 2018)

.. math::
    K' = T_\phi(K_{11}, K_{12}, K_{22}),\qquad \Theta' = T'_\phi(K_{11}, K_{12}, K_{22})\,\Theta,

with the dual :math:`T_\phi(q_{11}, q_{12}, q_{22}) = \mathbb E[\phi(u)\phi(v)]` and its derivative
dual :math:`T'_\phi = \partial T_\phi/\partial q_{12} = \mathbb E[\phi'(u)\phi'(v)]` (Price's theorem).

neural-tangents stops there: the output of a nonlinearity is not Gaussian, so a second nonlinearity,
a residual sum ``relu(h) + h`` or a LayerNorm after an activation has no Gaussian closed form. But
the feature is still an *elementwise function of one Gaussian pre-activation* ``h``, and infntk keeps
it that way: the state remembers ``h``'s Gaussian kernel (``Kernel.pre``) and the map
(``Kernel.feature``), composes further elementwise maps symbolically (:math:`\psi\circ\phi`,
:math:`\phi + \psi`), and evaluates the composite's dual against ``h``. A following linear layer makes
the features Gaussian again.

LayerNorm of such a feature (channel statistics concentrate at infinite width) is the feature
:math:`(\phi(h) - m_\phi(q))/\sqrt{T_\phi(q, q, q) - m_\phi(q)^2}` with
:math:`m_\phi(q) = \mathbb E[\phi(\sqrt q z)]`, whose dual follows from :math:`T_\phi` and
:math:`m_\phi`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from ..fusion import materialize
from ..kernel import Kernel

#: ``jax.lax.optimization_barrier`` (public since jax 0.4.26). On older JAX (0.4.23, the
#: neural-tangents cross-check) there is no public barrier and none is applied: the variances on the
#: batch diagonal may then differ from ``q12`` by an ulp inside the dual (about 1e-8 relative at
#: correlation 1 for arc-cosine duals, far below the cross-check's tolerance).
_optimization_barrier = getattr(jax.lax, "optimization_barrier", lambda x: x)


def evaluate(feature, base: Kernel, layer_label: str = "") -> Kernel:
    """The state of ``feature(h)`` for the Gaussian pre-activation state ``base`` of ``h``."""
    q11, q22 = base.pair_variances("nngp")
    q12 = base.nngp
    if base.cov2 is None:
        # x2 = x1: the pre-activation's batch diagonal and the per-input variances q11 = q22 come
        # out of different fusions of the preceding linear maps (one may contract to an FMA), so
        # they can differ by an ulp; set them equal so both duals see rho exactly 1 there.
        # The barrier keeps XLA from re-associating the products inside the dual differently on
        # the two sides (it folds constants into q11 q22 but not into q12^2 when it can see they
        # come from one number), so equal inputs stay bitwise equal products (GramDet).
        n = q12.shape[0]
        q12 = q12.at[jnp.arange(n), jnp.arange(n)].set(base.cov1)
        q11, q12, q22 = _optimization_barrier((q11, q12, q22))
    ntk = None
    if base.ntk is not None and hasattr(feature, "joint_fn"):
        nngp, dnngp = feature.joint_fn(q11, q12, q22)
        ntk = dnngp * base.ntk
    else:
        nngp = feature.nngp_fn(q11, q12, q22)
        if base.ntk is not None:
            ntk = feature.dnngp_fn(q11, q12, q22) * base.ntk
    a, b = base.pair_variances("cov1")
    cov1 = feature.nngp_fn(a, base.cov1, b)
    cov2 = None
    if base.cov2 is not None:
        a, b = base.pair_variances("cov2")
        cov2 = feature.nngp_fn(a, base.cov2, b)
    else:
        # x2 = x1: K(x, x) and the per-input covariance are the same numbers. Computed in two
        # fusions they can differ by an ulp, which a dual with a square-root branch at rho = 1
        # (arcsin/arccos types) turns into ~1e-8, and the next such layer into ~1e-4. Writing the
        # variances back onto the batch diagonal keeps every layer's rho exactly 1 there.
        n = nngp.shape[0]
        nngp = nngp.at[jnp.arange(n), jnp.arange(n)].set(cov1)
    # Stored once: the next layers read these arrays several times (see infntk.fusion).
    nngp, ntk, cov1, cov2 = (None if a is None else materialize(a) for a in (nngp, ntk, cov1, cov2))
    return base.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, is_gaussian=False,
                        is_input=False, pre=base, feature=feature)


def source_and_feature(k: Kernel):
    """``(h, phi)`` such that the state ``k`` is ``phi(h)`` with ``h`` Gaussian; ``(None, None)`` if
    ``k`` is not an elementwise function of one Gaussian pre-activation."""
    if k.pre is not None:
        return k.pre, k.feature
    if k.is_gaussian:
        return k, None
    return None, None


def apply_elementwise(layer, k: Kernel, ops) -> Kernel:
    """Kernel map of an elementwise layer whose map has the Dual ``layer.dual``."""
    base, inner = source_and_feature(k)
    if base is None:
        raise layer.error(
            "its input is neither Gaussian nor an elementwise function of one Gaussian "
            "pre-activation (e.g. it follows pooling or a concatenation of nonlinear features "
            "without a linear layer in between); no infinite-width closed form is known.")
    feature = layer.dual if inner is None else compose(layer, inner)
    return ops.activate(feature, base)


def compose(layer, inner):
    """The Dual of ``layer``'s map applied after the elementwise map ``inner``."""
    from ..dual import X, dual_from_expr
    phi = getattr(inner, "phi", None)
    if phi is None:
        raise layer.error(f"cannot follow {getattr(inner, 'name', 'this feature')}: its map has no "
                          "symbolic form to compose with.")
    return dual_from_expr(layer.dual.phi.subs(X, phi), X)


def combine_sum(layer, parts) -> Any:
    """The Dual of a sum of elementwise maps of the same Gaussian pre-activation."""
    from ..dual import X, dual_from_expr
    exprs = []
    for p in parts:
        if p is None:
            exprs.append(X)
            continue
        phi = getattr(p, "phi", None)
        if phi is None:
            raise layer.error(f"cannot add {getattr(p, 'name', 'a feature')} to another branch: "
                              "its map has no symbolic form.")
        exprs.append(phi)
    total = exprs[0]
    for e in exprs[1:]:
        total = total + e
    return dual_from_expr(total, X)


@dataclasses.dataclass(frozen=True)
class NormalisedFeature:
    r"""LayerNorm of an elementwise feature: :math:`(\phi(h) - m(q))/s(q)`, exact at infinite width.

    Its dual is :math:`(T_\phi(q_{11}, q_{12}, q_{22}) - m(q_{11}) m(q_{22}))/(s(q_{11}) s(q_{22}))` with
    :math:`s(q)^2 = T_\phi(q,q,q) - m(q)^2 + \epsilon`, and its derivative dual is
    :math:`T'_\phi/(s(q_{11}) s(q_{22}))` (the statistics are constants at infinite width). The
    formula is written once (:meth:`dual`) for any implementation of :math:`T_\phi, T'_\phi, m_\phi`:
    arrays here, sympy operators in the printed recursion.
    """

    inner: Any
    eps: float = 0.0
    name: str = "LayerNorm"
    phi = None  # depends on q: cannot be composed symbolically

    def dual(self, T, dT, m, sqrt, q11, q12, q22, eps=None, clip=lambda v: v):
        """``(nngp, dnngp)`` of the normalised feature from the inner feature's ``T, dT, m``."""
        eps = self.eps if eps is None else eps
        m1, m2 = m(q11), m(q22)
        s1 = sqrt(clip(T(q11, q11, q11) - m1 * m1) + eps)
        s2 = sqrt(clip(T(q22, q22, q22) - m2 * m2) + eps)
        return (T(q11, q12, q22) - m1 * m2) / (s1 * s2), dT(q11, q12, q22) / (s1 * s2)

    def _array_dual(self, q11, q12, q22):
        i = self.inner
        return self.dual(i.nngp_fn, i.dnngp_fn, i.mean_fn, jnp.sqrt, q11, q12, q22,
                         clip=lambda v: jnp.maximum(v, 0.0))

    def nngp_fn(self, q11, q12, q22):
        return self._array_dual(q11, q12, q22)[0]

    def dnngp_fn(self, q11, q12, q22):
        return self._array_dual(q11, q12, q22)[1]

    def mean_fn(self, q):
        return jnp.zeros_like(q)


def branch_means(k: Kernel, ops, role: str = "nngp"):
    """Channel means ``(m(x1), m(x2))`` of a branch's features, broadcast against the covariance
    of ``role``; ``None`` when they are zero (centred Gaussian features); raises when unknown."""
    if k.pre is not None:
        q11, q22 = ops.pair_variances(k.pre, role)
        return ops.mean(k.feature, q11), ops.mean(k.feature, q22)
    if k.is_gaussian:
        return None
    raise ValueError("unknown channel mean")


def cross_term(ka: Kernel, kb: Kernel, ops):
    r"""Cross-covariance of two branches driven by independent Gaussians, both orders:
    :math:`m_a(x) m_b(x') + m_b(x) m_a(x')` for ``(nngp, cov1, cov2)``; ``None`` if it vanishes."""
    if branch_means(ka, ops) is None or branch_means(kb, ops) is None:
        return None

    def term(role):
        (a1, a2), (b1, b2) = branch_means(ka, ops, role), branch_means(kb, ops, role)
        return a1 * b2 + b1 * a2

    return term("nngp"), term("cov1"), None if ka.cov2 is None else term("cov2")
