r"""Empirical (finite-width) NNGP and NTK of any JAX function ``f(params, x)``.

Signatures and output conventions follow ``neural_tangents`` 0.6.5
(``nt.empirical_ntk_fn``, ``nt.empirical_nngp_fn``, ``nt.empirical_kernel_fn``):

.. math::

    \mathrm{NNGP}(x_1, x_2) = \frac{1}{|T|}\, f(x_1) f(x_2)^\top, \qquad
    \Theta(x_1, x_2) = \frac{1}{|T|}\, \sum_{w}
        \frac{\partial f(x_1)}{\partial w} \frac{\partial f(x_2)}{\partial w}^\top,

where the products run over ``trace_axes`` (their pair of axes is summed and the
result **averaged**: divided by :math:`|T|`, the product of their sizes, exactly as
neural-tangents does), ``diagonal_axes`` appear once in the output, and every other
output axis appears twice, zipped: an ``f(x)`` of shape ``(N, K)`` with
``trace_axes=()`` gives a kernel of shape ``(N1, N2, K, K)``.

Four NTK implementations give the same numbers (to float precision):

* ``'jacobian_contraction'``: per-example Jacobians :math:`J = \partial f/\partial w`
  by reverse mode, contracted leaf by leaf.
* ``'ntk_vector_products'``: columns :math:`\Theta e = J_1 (J_2^\top e)` by a VJP then a
  JVP, for every output basis vector :math:`e`; never forms a Jacobian.
* ``'structured'``: structured derivatives (Novak, Sohl-Dickstein, Schoenholz 2022,
  "Fast Finite Width Neural Tangent Kernel"). The function is traced to a jaxpr
  (``jax.make_jaxpr``, public API). A weight :math:`W` consumed (possibly through a
  scalar rescaling) by a single ``dot_general`` or ``conv_general_dilated``
  :math:`y = h\,W` has :math:`\partial y_{ps}/\partial W_{rs'} = h_{pr}\,\delta_{ss'}`,
  so its NTK term is the four-factor contraction

  .. math:: \Theta_W = \sum_{p,q,r,s} G^{(1)}_{a p s}\, h^{(1)}_{p r}\,
            h^{(2)}_{q r}\, G^{(2)}_{b q s}, \qquad G = \partial f / \partial y,

  evaluated in the cheapest order (``opt_einsum``), which never materialises
  :math:`\partial f/\partial W` when that is more expensive (dense layers: cost
  :math:`O(N_1 N_2 (n_\text{in} + K^2 n_\text{out}))` instead of
  :math:`O(N_1 N_2 K^2 n_\text{in} n_\text{out})`). Convolutions use patches
  (``lax.conv_general_dilated_patches``). Any other use of a parameter leaf
  (biases, shared weights, exotic primitives) falls back, for that leaf only, to its
  exact Jacobian, so the method is sound for every ``f``; the cotangents
  :math:`G` for all leaves come from one reverse pass with zero "probes" added to
  the tapped pre-activations.
* ``'auto'``: picks the cheapest of the three from a FLOP model of the shapes.

All computations are split into blocks of examples so that the estimated working
memory stays under ``memory_budget`` bytes (only when ``vmap_axes`` certifies that
examples are independent; otherwise the whole batch is done at once).

The package, one concept per module:

* :mod:`.kernels` -- the public functions and the choice and blocking of an implementation;
* :mod:`.implementations` -- the Jacobian-contraction and NTK-vector-product routes;
* :mod:`.structured` -- the structured-derivative route; :mod:`.jaxpr` -- the jaxpr tools it uses;
* :mod:`.cost` -- the cost model (FLOPs and working memory per implementation, block sizes);
* :mod:`.layout` -- the problem (``f``, parameters, ``vmap_axes``) and the output layout.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from infntk.empirical import empirical_ntk_fn
    >>> def f(p, x):
    ...     return jnp.tanh(x @ p[0]) @ p[1]
    >>> k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    >>> params = (jax.random.normal(k1, (3, 16)), jax.random.normal(k2, (16, 2)))
    >>> x = jax.random.normal(k3, (5, 3))
    >>> ntk = empirical_ntk_fn(f, vmap_axes=0, implementation='structured')(x, None, params)
    >>> ntk.shape
    (5, 5)
"""
from __future__ import annotations

from .cost import DEFAULT_MEMORY_BUDGET, ntk_cost_model
from .kernels import (NtkImplementation, empirical_kernel_fn, empirical_nngp_fn, empirical_ntk_fn,
                      empirical_ntk_vp_fn)

__all__ = [
    "NtkImplementation",
    "empirical_ntk_fn",
    "empirical_nngp_fn",
    "empirical_kernel_fn",
    "empirical_ntk_vp_fn",
    "ntk_cost_model",
    "DEFAULT_MEMORY_BUDGET",
]
