"""kernel_matrix on a Dask LocalCluster (loopback only): same bits as local, survives a worker kill."""

import json
import os
import signal
import threading
import time

import numpy as np
import pytest

from _tiling_helpers import inputs
from infntk.errors import InfntkError
from infntk.tiling import kernel_matrix
from infntk.tiling.testing import ArcCosine, PixelPairs, Slow

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    cl = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
        dashboard_address=None, worker_dashboard_address=None,
    )
    client = distributed.Client(cl, set_as_default=False)
    try:
        yield cl, client
    finally:
        client.close()
        cl.close()


def test_dask_matches_local_bitwise(cluster, tmp_path):
    cl, client = cluster
    x1, x2 = inputs(32, (4, 4, 1), 1), inputs(20, (4, 4, 1), 2)  # whole tiles: few shapes to compile
    m = PixelPairs()
    local = kernel_matrix(m, x1, tile=8, progress=False)
    remote = kernel_matrix(m, x1, tile=8, scheduler=client, progress=False)
    np.testing.assert_array_equal(remote.ntk, local.ntk)
    np.testing.assert_array_equal(remote.nngp, local.nngp)
    # by address, rectangular, into a store
    local2 = kernel_matrix(m, x1, x2, get="ntk", tile=(8, 5), progress=False)
    stored = kernel_matrix(m, x1, x2, get="ntk", tile=(8, 5), scheduler=cl.scheduler_address,
                           store=tmp_path / "k", progress=False, load=True)
    np.testing.assert_array_equal(stored, local2)


def test_dask_survives_worker_kill(cluster, tmp_path):
    cl, client = cluster
    model = Slow(ArcCosine(), 0.15)
    x = inputs(48)
    path = tmp_path / "k"
    total = 21  # 6 x 6 grid, upper triangle
    pids = client.run(os.getpid)
    victim = sorted(pids)[0]
    state = {}

    def killer():
        deadline = time.time() + 60
        while time.time() < deadline:
            done = len(list((path / "tiles").glob("r*_c*.json"))) if (path / "tiles").exists() else 0
            if done >= 3:
                state["done_at_kill"] = done
                os.kill(pids[victim], signal.SIGKILL)
                return
            time.sleep(0.01)

    th = threading.Thread(target=killer)
    th.start()
    k = kernel_matrix(model, x, tile=8, scheduler=client, store=path, progress=False, load=True)
    th.join()
    assert 3 <= state["done_at_kill"] < total  # killed mid-run
    new_pids = client.run(os.getpid)
    assert pids[victim] not in new_pids.values()  # that process is gone (the nanny restarts one)
    records = [json.loads(p.read_text()) for p in (path / "tiles").glob("r*_c*.json")]
    assert len(records) == total
    ref = kernel_matrix(model, x, tile=8, progress=False)
    np.testing.assert_array_equal(k.nngp, ref.nngp)
    np.testing.assert_array_equal(k.ntk, ref.ntk)


def test_bad_scheduler():
    with pytest.raises(InfntkError, match="scheduler must be"):
        kernel_matrix(ArcCosine(), inputs(5), tile=2, scheduler=42, progress=False)
