"""Convergence of finite-width empirical kernels to the analytic limit (infntk.studies.convergence).

Rates (diffrax-style order tests): the log-log slope of the NTK fluctuation against width must be
consistent with -1/2 — the bootstrap 95% interval contains -1/2 and is narrower than 0.3 — and the
Monte Carlo NNGP estimator's error against the number of samples has slope -1/2. Seeds are fixed.
"""
import json
import os

import jax
import numpy as np
import pytest

import infntk as nk
from infntk.errors import InfntkError
from infntk.studies.convergence import (kernel_metrics, resolve_model_fn, run, run_study,
                                        sample_kernels)

FULL = os.environ.get("INFNTK_FULL") == "1"


def _dense(w):
    return nk.Dense(w, W_std=2 ** 0.5, b_std=0.1) >> nk.Relu() >> nk.Dense(w, W_std=2 ** 0.5, b_std=0.1)


def _conv(w):
    return (nk.Conv(w, (3, 3), padding="SAME", W_std=2 ** 0.5, b_std=0.1) >> nk.Relu()
            >> nk.Flatten() >> nk.Dense(w, W_std=2 ** 0.5, b_std=0.1))


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def _assert_rate(res, kernel="ntk", theory=-0.5, max_width=0.3):
    f = res.fits[kernel]["fluct"]
    assert f["lo"] <= theory <= f["hi"], (kernel, f)
    assert f["hi"] - f["lo"] < max_width, (kernel, f)


def test_dense_ntk_fluctuation_slope():
    res = run_study(_dense, [32, 64, 128, 256, 512], 32, _x((5, 6)), dtype="float32",
                    n_boot=500, progress=False)
    _assert_rate(res)
    assert res.theory["bias"] is None  # one hidden layer: the empirical kernels are unbiased
    for k in ("ntk", "nngp"):  # the mean over seeds agrees with the exact kernel within noise
        m = res.metrics[k]
        assert all(b <= 4 * n for b, n in zip(m["bias_raw"], m["noise"])), m


def test_conv_ntk_fluctuation_slope():
    res = run_study(_conv, [16, 32, 64, 128, 256], 32, _x((3, 4, 4, 1), 1), dtype="float32",
                    n_boot=500, progress=False)
    _assert_rate(res)


@pytest.mark.slow
@pytest.mark.skipif(not FULL, reason="several minutes: set INFNTK_FULL=1")
@pytest.mark.parametrize("name", ["dense_relu", "conv_gap", "resnet"])
def test_validation_config_slopes(name, tmp_path):
    from validation import runner
    cfg = runner.load_config(name)
    prof = cfg["profiles"]["cpu"]
    prof.pop("bias", None)
    s = runner.run_config(cfg, "cpu", str(tmp_path), n_boot=300, progress=False)
    for label, d in s["studies"].items():
        f = d["fits"]["ntk"]["fluct"]
        assert f["lo"] - 0.1 <= -0.5 <= f["hi"] + 0.1, (label, f)


def test_mc_estimator_slope():
    from validation import stats
    model = nk.Dense(16, W_std=2 ** 0.5, b_std=0.1) >> nk.Relu() >> nk.Dense(16, W_std=2 ** 0.5)
    x = _x((4, 5))
    keys = jax.random.split(jax.random.PRNGKey(3), 2048)
    a, _, _ = sample_kernels(model, x, keys, ntk_channels=0, dtype="float32")
    r = stats.mc_estimator(a, model.kernel(x, None, get="nngp"), [4, 8, 16, 32, 64, 128, 256],
                           n_boot=300)
    assert r["lo"] <= -0.5 <= r["hi"] and r["hi"] - r["lo"] < 0.3, r


def test_resume_after_interrupt(tmp_path):
    x = _x((3, 4))
    ref = run_study(_dense, [8, 16, 32], 4, x, out=str(tmp_path / "ref"), n_boot=50, progress=False)

    def stop(w, rec):
        if w == 8:
            raise KeyboardInterrupt
    out = str(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        run_study(_dense, [8, 16, 32], 4, x, out=out, n_boot=50, progress=False, on_width=stop)
    assert sorted(f for f in os.listdir(out) if f.startswith("width_")) == ["width_000008.json"]
    seen = []
    res = run_study(_dense, [8, 16, 32], 4, x, out=out, n_boot=50, progress=False,
                    on_width=lambda w, rec: seen.append(w))
    assert res.resumed == [8] and seen == [8, 16, 32]
    for k in ("nngp", "ntk"):
        for w in (8, 16, 32):
            np.testing.assert_allclose(res.samples[k][w], ref.samples[k][w], rtol=1e-12)
    assert res.fits == ref.fits
    # a different configuration in the same directory is refused, not silently mixed
    with pytest.raises(InfntkError, match="different configuration"):
        run_study(_dense, [8, 16], 5, x, out=out, n_boot=50, progress=False)


def test_sampler_compiles_once_per_model_and_shape():
    # A resumed or repeated study reuses the compiled sampler: inputs are an argument, not a
    # constant baked into the program, and the program is cached per (model, channels, dtype).
    from infntk.studies.convergence import _sampler
    model = _dense(4)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    a1, b1, _ = sample_kernels(model, _x((3, 4)), keys, dtype="float32")
    a2, b2, _ = sample_kernels(model, _x((3, 4), 1), keys, dtype="float32")
    fn = _sampler(model, 1, np.float32)
    assert fn is _sampler(_dense(4), 1, np.float32) and fn._cache_size() == 1
    assert not np.allclose(a1, a2)  # new inputs, same program
    out = fn(keys, np.asarray(_x((3, 4), 1), np.float32))
    np.testing.assert_array_equal(np.asarray(out[0], np.float64), a2)
    np.testing.assert_array_equal(np.asarray(out[1], np.float64), b2)


def test_jacobian_contraction_matches_empirical_ntk_fn():
    from infntk.empirical import empirical_ntk_fn
    model, x = _conv(8), _x((3, 4, 4, 1))
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    a, b, _ = sample_kernels(model, x, keys, ntk_channels=2)
    for s in range(3):
        _, p = model.init(keys[s], x.shape)
        f = lambda p, x: model.apply(p, x)[:, :2]
        ref = empirical_ntk_fn(f, vmap_axes=0, implementation="jacobian_contraction")(x, None, p)
        np.testing.assert_allclose(b[s], ref, rtol=1e-10, atol=1e-12)
        out = model.apply(p, x)
        np.testing.assert_allclose(a[s], out @ out.T / out.shape[1], rtol=1e-10)


def test_metrics_and_model_specs():
    k = np.eye(2)
    s = np.stack([k * 1.1, k * 0.9, k * 1.0])
    m = kernel_metrics(s, k)
    assert m["bias_raw"] == pytest.approx(0.0, abs=1e-12) and m["bias"] == 0.0
    assert m["fluct"] == pytest.approx(0.1, rel=1e-12)
    fn, _ = resolve_model_fn("Dense(512) >> Relu() >> Dense(1)")
    assert fn(8).layers[0].out_dim == 8 and fn(8).layers[-1].out_dim == 8
    fn, _ = resolve_model_fn("Dense({w}) >> Relu() >> Dense(1)")
    assert fn(8).layers[-1].out_dim == 1
    fn, _ = resolve_model_fn(_dense(4) >> nk.Relu() >> nk.Dense(3), readout_width=False)
    assert fn(8).layers[0].out_dim == 8 and fn(8).layers[-1].out_dim == 3
    with pytest.raises(InfntkError, match="widths"):
        run_study(_dense, [8], 4, _x((3, 4)))


def test_cli_entry_point(tmp_path):
    d = run(arch="Dense(512) >> Relu() >> Dense(1)", x=_x((3, 4)), widths=[8, 16], seeds=3,
            out=str(tmp_path), n_boot=20)
    assert {"summary", "model", "fits"} <= set(d)
    assert "ntk.fluct.slope" in d["summary"]
    with open(tmp_path / "result.json") as fh:
        assert json.load(fh)["widths"] == [8, 16]
    assert (tmp_path / "report.md").exists() and (tmp_path / "convergence.png").exists()
