"""kernel_matrix on local devices: equals the one-shot kernel, symmetric exactly, validates input."""

import dataclasses

import numpy as np
import pytest

from _tiling_helpers import assert_close_to_direct, inputs
from infntk.errors import InfntkError
from infntk.tiling import kernel_matrix
from infntk.tiling.testing import ArcCosine, PixelPairs


@pytest.mark.parametrize("tile", [7, 16, 50, 64])
def test_symmetric_matches_direct(tile):
    x = inputs(50)
    m = ArcCosine()
    k = kernel_matrix(m, x, tile=tile, progress=False)
    ref = m.kernel(x, None)
    assert_close_to_direct(k.nngp, ref.nngp)
    assert_close_to_direct(k.ntk, ref.ntk)
    np.testing.assert_array_equal(k.ntk, k.ntk.T)  # mirrored and symmetrised exactly
    np.testing.assert_array_equal(k.nngp, k.nngp.T)


def test_rectangular_and_single_get():
    x1, x2 = inputs(23, (4, 4, 2), 1), inputs(18, (4, 4, 2), 2)  # ragged last row of tiles
    m = PixelPairs()
    k = kernel_matrix(m, x1, x2, get="ntk", tile=(5, 6), progress=False)
    assert isinstance(k, np.ndarray) and k.shape == (23, 18)
    np.testing.assert_allclose(k, m.kernel(x1, x2, get="ntk"), rtol=1e-12, atol=0)


def test_off_diagonal_tiles_are_bitwise_those_of_the_model():
    # An off-diagonal tile is exactly model.kernel(x[I], x[J]) -- no reassociation by the tiler.
    x = inputs(24)
    m = ArcCosine()
    k = kernel_matrix(m, x, get="nngp", tile=8, progress=False)
    import jax

    direct = np.asarray(jax.jit(lambda a, b: m.kernel(a, b, get="nngp"))(x[:8], x[16:24]))
    np.testing.assert_array_equal(k[:8, 16:24], direct)
    np.testing.assert_array_equal(k[16:24, :8], direct.T)


@pytest.mark.parametrize("n, programs", [(62, 2), (50, 4)])
def test_ragged_tiles_close_to_full_run_padded(n, programs):
    # Tiles of 16 on 62 rows: 16, 16, 16, 14 -- the last (>= 7/8 of 16) is computed padded to 16
    # and cropped, so the whole grid runs two compiled programs (diagonal, off-diagonal). On 50
    # rows the last tile has 2 rows: padding it would cost more than its own compilations.
    from infntk.tiling.local import jitted
    m = ArcCosine(W_std=1.0 + n / 1000)  # a model of its own: a fresh compilation cache
    x = inputs(n, seed=n)
    k = kernel_matrix(m, x, tile=16, progress=False)
    assert jitted(m, ("nngp", "ntk"))._cache_size() == programs
    ref = m.kernel(x, None)
    assert_close_to_direct(k.nngp, ref.nngp)
    assert_close_to_direct(k.ntk, ref.ntk)
    np.testing.assert_array_equal(k.ntk, k.ntk.T)
    # the cropped corner of a padded off-diagonal tile is that of the unpadded call, to rounding
    import jax
    direct = np.asarray(jax.jit(lambda a, b: m.kernel(a, b, get="ntk"))(x[:16], x[48:]))
    np.testing.assert_allclose(k.ntk[:16, 48:], direct, rtol=1e-13, atol=0)


def test_budgeted_run_matches_and_progress_bar(capsys):
    x = inputs(40, (4, 4, 1))
    m = PixelPairs()
    k = kernel_matrix(m, x, get=("ntk",), memory_budget="2MB", progress=True)
    assert k._fields == ("ntk",)
    assert_close_to_direct(k.ntk, m.kernel(x, None, get="ntk"))
    assert "kernel_matrix" in capsys.readouterr().err


def test_float32():
    x = inputs(30)
    k = kernel_matrix(ArcCosine(), x, get="nngp", tile=8, dtype=np.float32, progress=False)
    assert k.dtype == np.float32
    ref = np.asarray(ArcCosine().kernel(x, None, get="nngp"))
    # float32 rounding (eps 1.2e-7) of O(1) intermediates, relative to the largest entry.
    np.testing.assert_allclose(k, ref, rtol=0, atol=16 * 1.2e-7 * np.abs(ref).max())


def test_bad_input():
    x = inputs(10)
    m = ArcCosine()
    with pytest.raises(InfntkError, match="x2 of shape"):
        kernel_matrix(m, x, inputs(5, (4,)), progress=False)
    with pytest.raises(InfntkError, match="x1 must be"):
        kernel_matrix(m, np.zeros(5), progress=False)
    with pytest.raises(InfntkError, match="`get` must be"):
        kernel_matrix(m, x, get=(), progress=False)
    with pytest.raises(InfntkError, match="dtype must be floating"):
        kernel_matrix(m, x, dtype=np.int32, progress=False)
    with pytest.raises(InfntkError, match="no kernel"):
        kernel_matrix(object(), x, tile=4, progress=False)
    with pytest.raises(InfntkError, match="returned no 'cov'"):
        kernel_matrix(m, x, get=("nngp", "cov"), tile=4, progress=False)

    @dataclasses.dataclass(frozen=True)
    class PerPosition:
        def kernel(self, x1, x2=None, get="nngp"):
            return np.zeros((len(x1), len(x1 if x2 is None else x2), 3))

    with pytest.raises(InfntkError, match="shape"):
        kernel_matrix(PerPosition(), x, get="nngp", tile=4, progress=False)


def test_infntk_model():
    import infntk as nk
    m = nk.Dense(512, W_std=1.5, b_std=0.05) >> nk.Relu() >> nk.Dense(1, W_std=1.5, b_std=0.05)
    x = inputs(30, (5,))
    k = kernel_matrix(m, x, tile=8, progress=False)
    ref = m.kernel(x, None, get=("nngp", "ntk"))
    assert_close_to_direct(k.nngp, ref.nngp)
    assert_close_to_direct(k.ntk, ref.ntk)


def test_non_finite_inputs_and_tiles_are_refused(tmp_path):
    import infntk as nk
    x = inputs(12, (3,))
    m = ArcCosine()
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InfntkError, match=r"kernel_matrix: x1 contains 1 NaN or infinite value"):
        kernel_matrix(m, bad, tile=4, progress=False)
    with pytest.raises(InfntkError, match=r"kernel_matrix: x2 contains 1 NaN"):
        kernel_matrix(m, x, bad, tile=4, progress=False)
    with pytest.raises(InfntkError, match=r"kernel_matrix: x1 is complex"):
        kernel_matrix(m, x * (1 + 1j), tile=4, progress=False)
    # a kernel that overflows: no tile holding inf/NaN is ever recorded as finished, and the error
    # names the layer (an infntk model) or the tile (any other model)
    exp = nk.Dense(3, W_std=3.0) >> nk.Exp(b=50.0) >> nk.Dense(1)
    store = tmp_path / "k.zarr"
    with pytest.raises(InfntkError, match=r"layer #1 Exp\(a=1.0, b=50.0\): its output is not finite"):
        kernel_matrix(exp, x, tile=4, store=store, progress=False)
    from infntk.tiling import store as store_mod
    assert not list((store / store_mod.RECORDS).glob("*.json"))  # every tile overflows here

    @dataclasses.dataclass(frozen=True)
    class Overflowing:
        def kernel(self, x1, x2=None, get="nngp"):
            k = np.ones((len(x1), len(x1 if x2 is None else x2)))
            k[0, 0] = np.inf
            return k

    with pytest.raises(InfntkError, match=r"kernel_matrix: tile \(0, 0\) \(rows 0:4, columns 0:4\) "
                                          r"has non-finite nngp values; it is not recorded"):
        kernel_matrix(Overflowing(), x, get="nngp", tile=4, progress=False)
