"""Tiny honest versions of the seed-paper studies: outputs well-formed and finite."""
import json
import math
import os

import numpy as np
import pytest

from infntk.errors import InfntkError
from infntk.studies import (eigen_labels, eigenfunction_tasks, run_alignment,
                            run_eigenfunctions, run_linearization)
from infntk.studies.__main__ import main

TINY = dict(n_train=40, n_test=40, epochs=2, width=8)


def _finite(xs):
    return all(x is not None and math.isfinite(x) for x in xs)


def test_eigen_labels_balanced_and_valid():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 5))
    k = a @ a.T + 30 * np.ones((30, 30))  # positive kernel: Perron vector has one sign
    evals, tasks, balance, dropped = eigenfunction_tasks(k, [1, 2, 3])
    assert np.all(np.diff(evals) <= 1e-9)
    assert 1 in dropped and balance[1] == 0.0
    for kk, lab in tasks.items():
        assert set(np.unique(lab)) <= {-1.0, 1.0}
        assert balance[kk] >= 0.1
    assert eigen_labels([0.0, -1e-3, 2.0]).tolist() == [1.0, -1.0, 1.0]
    with pytest.raises(InfntkError, match="out of range"):
        eigenfunction_tasks(k, [31])


@pytest.mark.parametrize("arch", ["mlp", pytest.param("cnn", marks=pytest.mark.slow)])
def test_eigenfunctions_tiny(tmp_path, arch):
    res = run_eigenfunctions(arch, str(tmp_path), ks=(2, 3, 4), **TINY)
    assert res["tasks"], res["dropped_unbalanced"]
    for r in res["tasks"]:
        assert 0 <= r["net_test_acc"] <= 1 and 0 <= r["lin_test_acc"] <= 1
        assert r["minority"] >= 0.1
    assert _finite(res["eigenvalues_top"])
    data = json.loads((tmp_path / f"eigenfunctions_{arch}.json").read_text())
    assert data["study"] == "eigenfunctions"
    assert (tmp_path / f"eigenfunctions_{arch}.png").stat().st_size > 0


def test_alignment_tiny(tmp_path):
    res = run_alignment("mlp", str(tmp_path), kernel_subset=20, n_eigen=3, **TINY)
    h = res["history"]
    assert len(h["alignment"]) == TINY["epochs"] + 1 and _finite(h["alignment"])
    assert all(-1 <= a <= 1 for a in h["alignment"])
    assert h["ntk_rel_change"][0] == 0 and h["ntk_rel_change"][-1] > 0
    assert os.path.exists(tmp_path / "alignment_mlp.png")


def test_linearization_cli_tiny(tmp_path):
    assert main(["linearization", "--arch", "mlp", "--out", str(tmp_path), "--quick",
                 "--epochs", "1"]) == 0
    data = json.loads((tmp_path / "linearization_mlp.json").read_text())
    assert set(data["test_acc"]) >= {"network", "linear_at_init", "linear_at_trained"}
    assert _finite(data["test_acc"].values())
    # before training, the linearization at w_T is the network at w_T
    assert data["test_acc"]["linear_at_trained_before_training"] == data["test_acc"]["network"]


@pytest.mark.slow
def test_run_linearization_function(tmp_path):
    res = run_linearization("cnn", None, **TINY)
    assert _finite(res["test_acc"].values())
