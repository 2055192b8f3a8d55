"""Tile planning under a memory budget: the memory model is explicit and checked."""

import dataclasses

import jax
import numpy as np
import pytest

from infntk.errors import InfntkError
from infntk.tiling import MemoryModel, plan_tiles
from infntk.tiling.plan import estimate_memory, even_side, parse_bytes
from infntk.tiling.testing import ArcCosine, PixelPairs


def test_parse_bytes():
    assert parse_bytes(1000) == 1000
    assert parse_bytes("512MB") == 512 * 10**6
    assert parse_bytes("2GiB") == 2 * 2**30
    assert parse_bytes("1.5 kib") == 1536
    for bad in ("lots", "-3MB", 0, True, "5 parsecs"):
        with pytest.raises(InfntkError, match="memory_budget"):
            parse_bytes(bad)


def test_memory_model_max_square_is_tight():
    m = MemoryModel(per_pair=24.0, per_row=80.0, fixed=1000.0, source="test")
    for budget in (1e4, 1e6, 3.3e7):
        t = m.max_square(budget)
        assert m.bytes(t, t) <= budget < m.bytes(t + 1, t + 1)
    assert m.max_square(500.0) == 0


def _compiled_bytes(model, n, feat, dtype=np.float64):
    a = jax.ShapeDtypeStruct((n,) + feat, dtype)
    s = jax.jit(lambda u, v: model.kernel(u, v)).lower(a, a).compile().memory_analysis()
    return s.argument_size_in_bytes + s.output_size_in_bytes + s.temp_size_in_bytes


def test_compiled_estimate_bounds_real_tiles():
    # The fitted model (from probes of 8, 16, 32 rows) must bound XLA's own figure for bigger tiles.
    model, feat = PixelPairs(), (4, 4, 2)
    mem = estimate_memory(model, np.zeros((1,) + feat), None, ("nngp", "ntk"), np.float64)
    assert mem.source in ("compiled", "jaxpr")
    # (HW)^2 = 256 position pairs, several float64 temporaries each: at least 256 * 8 bytes per pair.
    assert mem.per_pair >= 256 * 8
    for n in (48, 96):
        actual = _compiled_bytes(model, n, feat)
        assert actual <= mem.bytes(n, n) <= 3 * actual


def test_plan_respects_budget_and_shape():
    x = np.zeros((1000, 10))
    budget = 4 * 10**6
    p = plan_tiles(ArcCosine(), x, None, memory_budget=budget)
    t = p.tile[0]
    assert p.symmetric and p.tile == (t, t) and p.budget == budget
    assert 2 * p.memory.bytes(t, t) <= budget  # two tiles in flight per device
    # The fewest tiles the budget allows, cut evenly (sides differ by less than 8 per tile).
    g = p.grid[0]
    assert g == -(-1000 // p.memory.max_square(budget / 2)) > 1
    assert len(p.tiles()) == g * (g + 1) // 2
    sides = [tl.r1 - tl.r0 for tl in p.tiles()]
    assert max(sides) - min(sides) <= 8 * g
    # A bigger budget gives bigger tiles; a spatial model gives smaller ones than a dense one.
    assert plan_tiles(ArcCosine(), x, None, memory_budget=16 * budget).tile[0] > t
    xi = np.zeros((1000, 8, 8, 1))
    assert plan_tiles(PixelPairs(), xi, None, memory_budget=budget).tile[0] < t


def test_even_side_keeps_the_tile_count_and_evens_the_sides():
    for n in range(1, 260):
        for t in range(1, n + 3):
            s = even_side(n, t)
            g = -(-n // min(t, n))
            assert s <= min(t, n) and -(-n // s) == g, (n, t, s)
            last = n - (g - 1) * s
            assert 0 < last and s - last <= (8 * g if s >= 64 else g - 1), (n, t, s)
    # The digits scale run: 1797 rows under a 1528-row limit -> two tiles of 904 and 893 rows,
    # not 1528 and 269.
    assert even_side(1797, 1528) == 904


def test_plan_uses_model_hint():
    @dataclasses.dataclass(frozen=True)
    class Hinted(ArcCosine):
        def kernel_bytes_per_pair(self, input_shape):
            assert input_shape == (10,)
            return 1000.0

    p = plan_tiles(Hinted(), np.zeros((500, 10)), None, memory_budget=2 * 10**6)
    assert p.memory.source == "hint" and p.memory.per_pair == 1000.0
    t = p.tile[0]
    assert 2 * p.memory.bytes(t, t) <= 2 * 10**6  # two tiles in flight
    assert p.grid[0] == -(-500 // p.memory.max_square(10**6))  # as few tiles as the hint allows


def test_plan_covers_matrix_exactly():
    for shape, tile, sym in (((37, 37), 8, True), ((37, 20), (8, 6), False), ((5, 5), 10, True)):
        x1 = np.zeros((shape[0], 2))
        x2 = None if sym else np.zeros((shape[1], 2))
        p = plan_tiles(ArcCosine(), x1, x2, tile=tile)
        cover = np.zeros(shape, int)
        for t in p.tiles():
            cover[t.r0:t.r1, t.c0:t.c1] += 1
            if t.mirror:
                cover[t.c0:t.c1, t.r0:t.r1] += 1
        np.testing.assert_array_equal(cover, 1)


def test_plan_errors():
    x = np.zeros((100, 3))
    with pytest.raises(InfntkError, match="too small"):
        plan_tiles(ArcCosine(), x, None, memory_budget=100)
    with pytest.raises(InfntkError, match="square tiles"):
        plan_tiles(ArcCosine(), x, None, tile=(4, 8))
    with pytest.raises(InfntkError, match="tile"):
        plan_tiles(ArcCosine(), x, None, tile=0)


def test_plan_splits_for_workers():
    from infntk.tiling.plan import TILES_PER_WORKER
    one = plan_tiles(ArcCosine(), np.zeros((64, 3)), None, memory_budget="1GB", workers=1)
    assert len(one.tiles()) == 1  # fits: one tile, no split
    for workers in (2, 4):
        p = plan_tiles(ArcCosine(), np.zeros((64, 3)), None, memory_budget="1GB", workers=workers)
        assert len(p.tiles()) >= TILES_PER_WORKER * workers
        q = plan_tiles(ArcCosine(), np.zeros((64, 3)), np.zeros((40, 3)), memory_budget="1GB",
                       workers=workers)
        assert len(q.tiles()) >= TILES_PER_WORKER * workers


def test_jaxpr_fallback_bounds_compiled(monkeypatch):
    # Backends without a memory analysis: the jaxpr bound (I/O + all intermediates, nothing freed)
    # is used; it is an upper bound, so not below XLA's own figure.
    import infntk.tiling.plan as plan_mod

    model, feat = PixelPairs(), (4, 4, 2)
    exact = estimate_memory(model, np.zeros((1,) + feat), None, ("nngp", "ntk"), np.float64)
    monkeypatch.setattr(plan_mod, "_compiled_bytes", lambda fn, a: None)
    rough = estimate_memory(model, np.zeros((1,) + feat), None, ("nngp", "ntk"), np.float64)
    assert rough.source == "jaxpr"
    for n in (16, 64):
        assert rough.bytes(n, n) >= _compiled_bytes(model, n, feat)
        assert rough.bytes(n, n) >= exact.bytes(n, n) / 3  # the fitted exact model is itself <= 3x XLA
