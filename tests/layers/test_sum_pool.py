"""SumPool and GlobalSumPool against the exact covariance of the finite linear network.

For a network that is linear in its parameters (one Conv under sum pooling) with parameters
theta ~ N(0, I) (NTK parameterization), each output channel is f(x) = J(x) theta, so
E[f(x) f(x')] = J(x) J(x')^T exactly -- no sampling and no infinite-width limit involved. That is
the NNGP the analytic kernel must give, to rounding, and (the network being linear) its NTK too.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import infntk as nk


def exact_covariance(model, x1, x2):
    """J(x1) J(x2)^T per output entry, for the first output channel of a linear model."""
    _, params = model.init(jax.random.PRNGKey(0), x1.shape)

    def f(p, x):
        return model.apply(p, x)[..., 0]   # (N, *S_out)

    flat = lambda tree: jnp.concatenate([a.reshape(a.shape[:f_nd] + (-1,)) for a in  # noqa: E731
                                         jax.tree_util.tree_leaves(tree)], axis=-1)
    j1, j2 = jax.jacobian(f)(params, x1), jax.jacobian(f)(params, x2)
    f_nd = f(params, x1).ndim
    j1, j2 = flat(j1), flat(j2)
    return jnp.einsum("n...p,m...p->nm...", j1, j2)   # (N1, N2) for outputs without spatial axes


CASES = {
    "SumPool-SAME": (nk.Conv(2, (2, 2), padding="SAME", W_std=1.3, b_std=0.2)
                     >> nk.SumPool((2, 3), (2, 1), padding="SAME") >> nk.GlobalSumPool(), (5, 5, 1)),
    "SumPool-VALID": (nk.Conv(2, (3, 2), W_std=0.7) >> nk.SumPool((2, 2), (1, 2))
                      >> nk.GlobalSumPool(), (6, 5, 2)),
    "SumPool-CIRCULAR-1D": (nk.Conv(2, (3,), padding="CIRCULAR", b_std=0.5)
                            >> nk.SumPool((3,), padding="CIRCULAR") >> nk.GlobalSumPool(), (7, 2)),
    "GlobalSumPool": (nk.Conv(3, (2, 2), W_std=1.1, b_std=0.3) >> nk.GlobalSumPool(), (4, 4, 2)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_is_the_exact_covariance_of_the_finite_linear_network(name):
    model, shape = CASES[name]
    rng = np.random.default_rng(3)
    x1 = jnp.asarray(rng.standard_normal((3,) + shape))
    x2 = jnp.asarray(rng.standard_normal((2,) + shape))
    want = exact_covariance(model, x1, x2)
    k = model.kernel(x1, x2, get=("nngp", "ntk"))
    np.testing.assert_allclose(k.nngp, want, rtol=1e-12, atol=1e-12 * float(jnp.abs(want).max()))
    np.testing.assert_allclose(k.ntk, want, rtol=1e-12, atol=1e-12 * float(jnp.abs(want).max()))


def test_sum_pool_is_window_size_times_average_pool():
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 5, 5, 3)))
    _, p = nk.SumPool((2, 3)).init(jax.random.PRNGKey(0), x.shape)
    np.testing.assert_allclose(nk.SumPool((2, 3)).apply(p, x),
                               6 * nk.AvgPool((2, 3)).apply((), x), rtol=1e-14)
    with pytest.raises(nk.InfntkError, match=r"SumPool\(\(9, 9\).*larger than the input"):
        nk.SumPool((9, 9)).output_shape((1, 5, 5, 3))
