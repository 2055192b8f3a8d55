"""The on-disk store: resume, refusal of a foreign store, damaged tiles, and kill -9."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from _tiling_helpers import inputs
from infntk.errors import InfntkError
from infntk.tiling import StoredGram, kernel_matrix
from infntk.tiling.store import TileStore
from infntk.tiling.testing import ArcCosine, PixelPairs, Slow


def _records(path):
    return {
        (r["i"], r["j"]): r
        for r in (json.loads(p.read_text()) for p in (path / "tiles").glob("r*_c*.json"))
    }


def test_store_roundtrip_and_manifest(tmp_path):
    x = inputs(30, (4, 4, 1))
    m = PixelPairs()
    path = tmp_path / "k"
    k = kernel_matrix(m, x, tile=8, store=path, progress=False)
    assert isinstance(k.ntk, StoredGram)
    ref = kernel_matrix(m, x, tile=8, progress=False)
    np.testing.assert_array_equal(k.ntk.to_numpy(), ref.ntk)
    np.testing.assert_array_equal(k.nngp[...], ref.nngp)
    man = json.loads((path / "manifest.json").read_text())
    assert man["model"]["repr"] == repr(m) and len(man["model"]["sha256"]) == 64
    assert man["x1"]["shape"] == [30, 4, 4, 1] and man["x2"] is None and man["symmetric"]
    assert man["get"] == ["nngp", "ntk"] and man["tile"] == [8, 8] and man["dtype"] == "<f8"
    assert "infntk_version" in man
    assert len(_records(path)) == 10  # 4 x 4 grid, upper triangle
    loaded = kernel_matrix(m, x, tile=8, store=path, progress=False, load=True)
    assert isinstance(loaded.ntk, np.ndarray)
    np.testing.assert_array_equal(loaded.ntk, ref.ntk)


def test_resume_skips_finished_and_redoes_damaged(tmp_path):
    x = inputs(40)
    m = ArcCosine()
    path = tmp_path / "k"
    ref = kernel_matrix(m, x, tile=8, progress=False)
    kernel_matrix(m, x, tile=8, store=path, progress=False)
    first = _records(path)
    assert len(first) == 15
    st = TileStore.open(path, mode="r+")
    # 1. a tile whose data changed after its record (bit rot): the checksum fails -> recomputed.
    st.arrays["ntk"][8:16, 16:24] = 0.0
    # 2. a tile written but killed before its record: no record -> recomputed.
    (path / "tiles" / "r0_c3.json").unlink()
    st.arrays["nngp"][0:8, 24:32] = np.nan
    # 3. a damaged mirror block is caught too.
    st.arrays["nngp"][32:40, 0:8] = 1.0
    # no tile argument: the stored tile size is adopted
    k = kernel_matrix(m, x, store=path, progress=False, load=True)
    np.testing.assert_array_equal(k.ntk, ref.ntk)
    np.testing.assert_array_equal(k.nngp, ref.nngp)
    second = _records(path)
    redone = {key for key in second if second[key]["run"] != first[key]["run"]}
    assert redone == {(1, 2), (0, 3), (0, 4)}


def test_refuses_foreign_store(tmp_path):
    x = inputs(20)
    path = tmp_path / "k"
    kernel_matrix(ArcCosine(), x, tile=8, store=path, progress=False)
    with pytest.raises(InfntkError, match=r"model: store has 'ArcCosine\(W_std=1.5"):
        kernel_matrix(ArcCosine(W_std=2.0), x, tile=8, store=path, progress=False)
    with pytest.raises(InfntkError, match="inputs x1"):
        kernel_matrix(ArcCosine(), x + 1e-9, tile=8, store=path, progress=False)
    with pytest.raises(InfntkError, match="dtype"):
        kernel_matrix(ArcCosine(), x, tile=8, store=path, progress=False, dtype=np.float32)
    with pytest.raises(InfntkError, match="get"):
        kernel_matrix(ArcCosine(), x, get="ntk", tile=8, store=path, progress=False)
    with pytest.raises(InfntkError, match="tile size"):
        kernel_matrix(ArcCosine(), x, tile=4, store=path, progress=False)
    with pytest.raises(InfntkError, match="symmetry"):
        kernel_matrix(ArcCosine(), x, x, tile=8, store=path, progress=False)
    other = tmp_path / "notastore"
    other.mkdir()
    (other / "data.txt").write_text("mine")
    with pytest.raises(InfntkError, match="not an infntk store"):
        kernel_matrix(ArcCosine(), x, tile=8, store=other, progress=False)

    class Anonymous:
        def kernel(self, x1, x2=None, get="nngp"):
            return ArcCosine().kernel(x1, x2, get=get)

    with pytest.raises(InfntkError, match="memory address"):
        kernel_matrix(Anonymous(), x, tile=8, store=tmp_path / "k2", progress=False)


def test_stored_gram_matvec(tmp_path):
    x1, x2 = inputs(45, (3,), 3), inputs(31, (3,), 4)
    k = kernel_matrix(ArcCosine(), x1, x2, get="ntk", tile=(8, 6), store=tmp_path / "k", progress=False)
    dense = k.to_numpy()
    rng = np.random.default_rng(5)
    v, vv, u = rng.normal(size=31), rng.normal(size=(31, 3)), rng.normal(size=45)
    np.testing.assert_allclose(k.matvec(v), dense @ v, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(k @ vv, dense @ vv, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(k.rmatvec(u), dense.T @ u, rtol=1e-12, atol=1e-12)
    with pytest.raises(InfntkError, match="matvec"):
        k.matvec(np.ones(45))
    # A symmetric stored Gram matrix drives scipy's conjugate gradients without being loaded.
    from scipy.sparse.linalg import cg

    kernel_matrix(ArcCosine(), x1, tile=8, store=tmp_path / "s", progress=False)
    g = StoredGram.open(tmp_path / "s", get="nngp")
    np.testing.assert_array_equal(g.diagonal(), np.diagonal(g.to_numpy()))
    a = g.to_numpy() + 0.1 * np.eye(45)
    b = rng.normal(size=45)
    op = g.as_linear_operator()
    from scipy.sparse.linalg import LinearOperator

    shifted = LinearOperator(op.shape, matvec=lambda w: g.matvec(w) + 0.1 * w, dtype=op.dtype)
    sol, info = cg(shifted, b, rtol=1e-12, atol=0, maxiter=500)
    assert info == 0
    np.testing.assert_allclose(sol, np.linalg.solve(a, b), rtol=1e-8, atol=1e-10)


def test_stored_gram_refuses_incomplete(tmp_path):
    x = inputs(20)
    path = tmp_path / "k"
    kernel_matrix(ArcCosine(), x, tile=8, store=path, progress=False)
    (path / "tiles" / "r0_c1.json").unlink()
    with pytest.raises(InfntkError, match="incomplete"):
        StoredGram.open(path, get="ntk")
    with pytest.raises(InfntkError, match="holds"):
        StoredGram.open(path, get="cov1", require_complete=False)


_CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from infntk.tiling import kernel_matrix
    from infntk.tiling.testing import ArcCosine, Slow
    import jax
    assert len(jax.local_devices()) == 2
    x = np.load(sys.argv[1])
    kernel_matrix(Slow(ArcCosine(), {delay}), x, tile=8, store=sys.argv[2], progress=False)
    print("FINISHED")
    """
)


def test_kill_minus_9_loses_nothing(tmp_path):
    delay = 0.1
    model = Slow(ArcCosine(), delay)
    x = inputs(64)
    np.save(tmp_path / "x.npy", x)
    path = tmp_path / "k"
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(delay=delay))
    env = dict(os.environ, JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "x.npy"), str(path)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    try:
        while len(_records(path)) < 6 if (path / "tiles").exists() else True:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, "child made no progress"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL and b"FINISHED" not in out
    before = _records(path)
    total = 36  # 8 x 8 grid, upper triangle
    assert 6 <= len(before) < total
    k = kernel_matrix(model, x, store=path, progress=False, load=True)
    after = _records(path)
    assert len(after) == total
    # finished tiles were kept (same run, same checksum), exactly the others were computed now
    kept = {key for key in after if key in before and after[key] == before[key]}
    assert kept == set(before)
    assert len({after[key]["run"] for key in after if key not in before}) == 1
    ref = kernel_matrix(model, x, tile=8, progress=False)  # uninterrupted, in memory
    np.testing.assert_array_equal(k.nngp, ref.nngp)
    np.testing.assert_array_equal(k.ntk, ref.ntk)
