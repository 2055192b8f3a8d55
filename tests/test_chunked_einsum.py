"""Sliced pairwise contractions (infntk/chunked_einsum.py) against plain einsum."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from infntk import chunked_einsum
from infntk.chunked_einsum import contract, contract_pair, slice_plan

SPECS = [
    # (spec, shapes): Gram-like, traced output axis, four-factor structured terms, outer product
    ("nf,mf->nm", [(6, 40), (5, 40)]),
    ("nkf,mkf->nm", [(4, 3, 30), (5, 3, 30)]),
    ("nkf,mlf->nkml", [(4, 3, 30), (5, 2, 30)]),
    ("npS,npR,mqR,mqS->nm", [(4, 6, 8), (4, 6, 9), (3, 6, 9), (3, 6, 8)]),
    ("nkpS,npR,mqR,mkqS->nkm", [(4, 2, 6, 8), (4, 6, 9), (3, 6, 9), (3, 2, 6, 8)]),
    ("nf,mg->nfmg", [(3, 4), (2, 5)]),
]


@pytest.mark.parametrize("spec,shapes", SPECS, ids=[s for s, _ in SPECS])
@pytest.mark.parametrize("slice_bytes", [1, 64, 2 ** 30])
def test_contract_equals_einsum(spec, shapes, slice_bytes):
    """Slicing reorders the sum over one axis only: float64 agreement to rounding."""
    rng = np.random.default_rng(0)
    ops = [jnp.asarray(rng.normal(size=s)) for s in shapes]   # float64 (tests/conftest.py)
    ref = jnp.einsum(spec, *ops, precision=jax.lax.Precision.HIGHEST)
    got = contract(spec, *ops, slice_bytes=slice_bytes)
    assert got.shape == ref.shape and got.dtype == ref.dtype == jnp.float64
    scale = float(jnp.abs(ref).max())
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13 * scale)


def test_slice_plan():
    # small operands: whole
    assert slice_plan("nf,mf->nm", (4, 8), (4, 8), 8, slice_bytes=1024) is None
    # 32 x 576 float64 = 144 KiB, slices <= 16 KiB: 9 slices of 64
    letter, width = slice_plan("nf,mf->nm", (32, 576), (32, 576), 8, slice_bytes=16 * 1024)
    assert letter == "f" and width == 64
    # 10 slices wanted: the widest divisor of 576 that makes at least 10 is 48
    assert slice_plan("nf,mf->nm", (32, 576), (32, 576), 8, slice_bytes=15 * 1024)[1] == 48
    assert 32 * width * 8 <= 16 * 1024
    # the largest summed axis is the one sliced
    assert slice_plan("nkf,mkf->nm", (32, 10, 576), (32, 10, 576), 8, 65536)[0] == "f"
    # an output as large as the operands (no trace): whole
    assert slice_plan("nkf,mlf->nkml", (128, 10, 64), (128, 10, 64), 8, 1024) is None
    # nothing summed: whole
    assert slice_plan("nf,mg->nfmg", (300, 4), (300, 5), 8, 64) is None
    # a prime extent has no divisor but itself and 1: more than MAX_SLICES slices -> whole
    p = 521
    assert chunked_einsum.MAX_SLICES < p
    assert slice_plan("nf,mf->nm", (8, p), (8, p), 8, 8) is None


def test_compiled_slices_bound_the_working_set():
    """The point: for a Gram product of a computed operand (here per-example Jacobian-shaped, the
    four axes of a structured NTK term) XLA:CPU stores the operand and a transposed copy of it;
    sliced, the copy is one slice."""
    a = jax.ShapeDtypeStruct((8, 10, 64, 144), jnp.float32)   # 2.9 MB

    def temp(fn):
        m = jax.jit(fn).lower(a).compile().memory_analysis()
        if m is None:  # pragma: no cover - backend without memory analysis
            pytest.skip("no memory analysis on this backend")
        return m.temp_size_in_bytes

    def gram(slice_bytes):
        return lambda x: contract_pair("nkSR,mkSR->nm", jnp.sin(x), jnp.sin(x),
                                       slice_bytes=slice_bytes)
    operand = 8 * 10 * 64 * 144 * 4
    whole, sliced = temp(gram(2 ** 40)), temp(gram(2 ** 16))
    assert whole >= 2 * operand, (whole, operand)      # the operand and its transposed copy
    assert sliced <= 1.1 * operand, (sliced, operand)   # the operand and one slice
