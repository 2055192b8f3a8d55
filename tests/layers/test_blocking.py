"""Direct tests of infntk/blocking.py: every block layout reproduces the unblocked map."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infntk import blocking

jax.config.update("jax_enable_x64", True)


def pairwise(a, b):
    """A pairwise map with a full spatial-pair layout ``(N1, N2, S, S')``: row i of ``a`` against
    row j of ``b`` only (what every kernel map guarantees), with x2=None marked on the diagonal."""
    same = b is None
    b = a if same else b
    g = jnp.einsum("is,jt->ijst", a, b)
    marker = jnp.eye(a.shape[0])[:, :, None, None] if same else 0.0
    return g, jnp.tanh(g) + marker


@pytest.mark.parametrize("n", [5, 7, 9, 16])
@pytest.mark.parametrize("block", [1, 2, 3, 4, 8])
def test_blocked_equals_direct_x2_none(n, block):
    x = jnp.asarray(np.random.default_rng(n).normal(size=(n, 3)))
    ref = pairwise(x, None)
    perm = blocking.swap_permutation(4, 1, False)
    got = jax.jit(lambda x: blocking.blocked_kernel(pairwise, x, None, block, (perm, perm)))(x)
    for a, b in zip(got, ref):
        # pair (i, j) and its transpose both hold exact pairwise values; the diagonal pairs come
        # from x2=None blocks (the +1 marker), never from an off-diagonal block
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("n1,n2", [(5, 3), (7, 7), (2, 9)])
@pytest.mark.parametrize("block", [1, 2, 3, 4])
def test_blocked_equals_direct_x2(n1, n2, block):
    rng = np.random.default_rng(n1 * 10 + n2)
    x1, x2 = (jnp.asarray(rng.normal(size=(n, 3))) for n in (n1, n2))
    ref = pairwise(x1, x2)
    got = blocking.blocked_kernel(pairwise, x1, x2, block, ((1, 0, 3, 2),) * 2)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("n,block,expect", [(2000, 256, 250), (5, 2, 2), (7, 3, 3), (9, 4, 3),
                                            (4, 8, 4), (10, 1, 1)])
def test_even_blocks(n, block, expect):
    b = blocking._even(block, n)
    assert b == expect
    blocks, starts = blocking._row_blocks(jnp.arange(n), b)
    # the blocks cover every input, each a run of real inputs, the last one ending at n
    assert sorted(set(np.asarray(blocks).ravel().tolist())) == list(range(n))
    assert int(starts[-1]) + b == n


@pytest.mark.parametrize("per_pair,itemsize,expect", [
    (256 * 256, 4, 2), (256 * 256, 8, 1),    # Myrtle-like 16x16: 1 MiB per quantity at most
    (64 * 64, 4, 8), (64 * 64, 8, 4),        # CNN-GAP 8x8: isqrt(32) = 5, rounded down to 4
    (10 ** 7, 4, 1)])                        # a single pair over budget still makes a block
def test_full_layout_block(per_pair, itemsize, expect):
    b = blocking.full_layout_block(per_pair, itemsize)
    assert b == expect and b & (b - 1) == 0
    assert b == 1 or b * b * per_pair * itemsize <= 4 * blocking.FULL_LAYOUT_FACTOR * blocking.TARGET_ENTRIES
