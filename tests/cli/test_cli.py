"""The ``infntk`` command, driven as a real subprocess (plus in-process checks of the plumbing)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from infntk.arch import parse_model

MLP = "Dense(512, W_std=1.5, b_std=0.05) >> Relu() >> Dense(1, W_std=1.5)"


def infntk(*args, check=None, env=None):
    """Run ``python -m infntk.cli ARGS``; returns the CompletedProcess."""
    e = dict(os.environ, COLUMNS="200", NO_COLOR="1", JAX_PLATFORMS="cpu")
    e.pop("INFNTK_DEBUG", None)
    e.update(env or {})
    p = subprocess.run([sys.executable, "-m", "infntk.cli", *args], capture_output=True, text=True,
                       env=e, timeout=300)
    if check is not None:
        assert p.returncode == check, (p.returncode, p.stdout, p.stderr)
    return p


def no_traceback(p):
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout, p.stderr


# ------------------------------------------------------------------------------------ describe

def test_describe_json_matches_the_model():
    p = infntk("describe", MLP, "--input-shape", "4", "--json", check=0)
    r = json.loads(p.stdout)
    model = parse_model(MLP)
    import jax
    _, params = model.init(jax.random.PRNGKey(0), (1, 4))
    n = sum(int(np.size(a)) for a in jax.tree_util.tree_leaves(params))
    assert r["total_params"] == n > 0
    assert [row["layer"] for row in r["layers"]] == [
        "Dense(512, W_std=1.5, b_std=0.05)", "Relu()", "Dense(1, W_std=1.5)"]
    assert r["layers"][0]["output_shape"] == ["N", 512] and r["output_shape"] == ["N", 1]
    assert sum(row["params"] for row in r["layers"]) == n
    # the same text as the library's own recursion of the model
    assert r["recursion"] == model.recursion(input_shape=(1, 4)).text()
    assert "Relu()" in r["recursion"] and r["recursion_format"] == "text"


def test_describe_table_and_width():
    arch = "Conv(8, (3, 3), padding='SAME') >> (Relu() + Identity()) >> GlobalAvgPool() >> Dense(1)"
    p = infntk("describe", arch, "--width", "16", check=0)
    no_traceback(p)
    assert "Conv(16, (3, 3), padding='SAME')" in p.stdout   # hidden width replaced
    assert "(N, 8, 8, 16)" in p.stdout and "sum of 2 branches" in p.stdout
    assert "Dense(1)" in p.stdout


@pytest.mark.parametrize("arch, col, needle", [
    ("Dense(512) >> Relux() >> Dense(1)", 14, "did you mean 'Relu'"),
    ("Dense(512) >> __import__('os').system('touch {marker}')", 14, "attribute access"),
    ("Dense(512, W_sdt=1.5)", 11, "did you mean 'W_std'"),
])
def test_bad_arch_exits_2_with_caret(arch, col, needle, tmp_path):
    marker = tmp_path / "pwned"
    arch = arch.replace("{marker}", str(marker))
    p = infntk("describe", arch, check=2)
    no_traceback(p)
    assert not marker.exists()
    lines = p.stderr.rstrip("\n").splitlines()
    assert lines[0].startswith("infntk: error: bad architecture:") and needle in lines[0], p.stderr
    shown, carets = lines[-2], lines[-1]
    assert arch[:40] in shown
    at = carets.index("^")
    assert shown[at:at + 8] == arch[col:col + 8], p.stderr


def test_bad_arch_json_error_and_debug():
    p = infntk("describe", "Dense(", "--json", check=2)
    r = json.loads(p.stdout)
    assert r["ok"] is False and r["exit_code"] == 2 and "never closed" in r["error"]
    p = infntk("--debug", "describe", "Dense(1) >> Relux()", check=2)
    assert "Traceback" in p.stderr


# ------------------------------------------------------------------------------------ kernel

def test_kernel_to_file_and_no_overwrite(tmp_path):
    out = tmp_path / "k.npz"
    p = infntk("kernel", MLP, "--data", "iris", "--limit", "30", "--out", str(out), "--json", check=0)
    r = json.loads(p.stdout)
    assert r["shape"] == [30, 30] and r["out"] == str(out)
    with np.load(out, allow_pickle=False) as z:
        got = {k: z[k] for k in ("nngp", "ntk")}
        assert str(z["arch"]) == MLP
    from infntk.data import load
    x = load("iris").x[:30]
    want = parse_model(MLP).kernel(x, None, get=("nngp", "ntk"))
    np.testing.assert_allclose(got["nngp"], want.nngp, rtol=1e-12)
    np.testing.assert_allclose(got["ntk"], want.ntk, rtol=1e-12)
    assert r["summary"]["ntk"]["max"] == pytest.approx(float(np.max(want.ntk)))

    stamp = out.stat().st_mtime_ns
    p = infntk("kernel", MLP, "--data", "iris", "--limit", "30", "--out", str(out), check=2)
    no_traceback(p)
    assert "exists" in p.stderr and "--force" in p.stderr
    assert out.stat().st_mtime_ns == stamp
    # --force overwrites; --tile goes through the tiled backend (infntk.kernel_matrix).
    p = infntk("kernel", MLP, "--data", "iris", "--limit", "30", "--get", "ntk", "--out", str(out),
               "--force", "--tile", "16", "--json", check=0)
    assert json.loads(p.stdout)["backend"] == "tiled"
    with np.load(out, allow_pickle=False) as z:
        assert "ntk" in z.files and "nngp" not in z.files
        np.testing.assert_allclose(z["ntk"], want.ntk, rtol=1e-12)


def test_bad_data_file_exits_2(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,label\n1,2,0\n3,oops,1\n")
    p = infntk("kernel", MLP, "--data", str(bad), "--label-column", "label", "--out",
               str(tmp_path / "k.npz"), check=2)
    no_traceback(p)
    assert str(bad) in p.stderr and "'oops' is not a number" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "k.npz").exists()
    nan = tmp_path / "nan.npz"
    np.savez(nan, x=np.array([[0.0, np.nan]]), y=np.array([0]))
    p = infntk("predict", MLP, "--data", str(nan), "--json", check=2)
    r = json.loads(p.stdout)
    assert str(nan) in r["error"] and "NaN" in r["error"]


# ------------------------------------------------------------------------------------ predict

def _reference_accuracy(arch, name, limit=None, kernel="ntk", diag_reg=1e-4):
    """An independent route: the split and kernel regression written out with numpy."""
    from infntk import data as D
    ds = D.load(name)
    if limit:   # --limit draws its samples with --seed (0), in their original order
        ds = ds.take(np.sort(np.random.default_rng(0).permutation(ds.n)[:limit]))
    perm = np.random.default_rng(0).permutation(ds.n)
    half = int(round(ds.n * 0.5))
    tr, te = perm[:half], perm[half:]
    mu, sd = ds.x[tr].mean(0), ds.x[tr].std(0)
    sd[sd == 0] = 1
    xtr, xte = (ds.x[tr] - mu) / sd, (ds.x[te] - mu) / sd
    model = parse_model(arch)
    ktt = np.asarray(model.kernel(xtr, None, get=kernel))
    kst = np.asarray(model.kernel(xte, xtr, get=kernel))
    y = np.eye(ds.classes)[ds.y[tr]]
    reg = diag_reg * np.trace(ktt) / len(ktt)
    mean = kst @ np.linalg.solve(ktt + reg * np.eye(len(ktt)), y)
    return float(np.mean(mean.argmax(1) == ds.y[te])), float(np.mean((mean - np.eye(ds.classes)[ds.y[te]]) ** 2))


@pytest.mark.parametrize("name, limit", [("iris", None), ("digits", 400)])
def test_predict_matches_reference(name, limit):
    args = ["predict", MLP, "--data", name, "--json"] + (["--limit", str(limit)] if limit else [])
    r = json.loads(infntk(*args, check=0).stdout)
    acc, mse = _reference_accuracy(MLP, name, limit)
    assert r["accuracy"] == pytest.approx(acc, abs=1e-12)
    assert r["mse"] == pytest.approx(mse, rel=1e-6)
    assert r["accuracy"] > r["baseline_accuracy"] + 0.3
    assert r["n_train"] + r["n_test"] == (limit or 150)


def test_predict_limit_draws_samples_before_the_split():
    # iris is sorted by class: its first 16 samples are one class; --limit draws across classes
    from infntk import data as D
    assert len(set(D.load("iris").take(slice(0, 16)).y)) == 1
    assert len(set(D.subset(D.load("iris"), 16, seed=0).y)) == 3
    assert len(set(D.subset(D.load("iris"), 16, seed=None).y)) == 1
    r = json.loads(infntk("predict", MLP, "--data", "iris", "--limit", "16", "--json", check=0).stdout)
    assert r["n_train"] + r["n_test"] == 16 and r["accuracy"] > r["baseline_accuracy"]


def test_predict_text_output_nngp_finite_time():
    p = infntk("predict", "Dense(256) >> Erf() >> Dense(1)", "--data", "wine", "--kernel", "nngp",
               "--t", "50", check=0)
    no_traceback(p)
    assert "NNGP (t = 50" in p.stdout and "test accuracy" in p.stdout


def test_bad_usage_exits_2():
    p = infntk("predict", MLP, "--data", "iris", "--t", "soon", check=2)
    assert "--t" in p.stderr
    p = infntk("predict", MLP, check=2)  # missing --data: click's usage error
    assert "--data" in p.stderr
    p = infntk("kernel", MLP, "--data", "irsi", "--out", "x.npz", check=2)
    assert "did you mean 'iris'" in p.stderr


# ------------------------------------------------------------------------------------ help, others

def test_help_everywhere_shows_examples():
    from typer.testing import CliRunner

    from infntk.cli import app
    runner = CliRunner()
    for args in ([], ["describe"], ["kernel"], ["predict"], ["converge"], ["study"],
                 ["study", "alignment"], ["demo"]):
        r = runner.invoke(app, args + ["--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
        assert r.exit_code == 0, (args, r.output)
        assert "Examples" in r.output and "infntk " in r.output, args


def test_help_lists_the_architecture_layers():
    """The root help's layer list is arch.LAYERS (derived from the layer registry), activations apart."""
    from typer.testing import CliRunner

    from infntk.arch import LAYERS
    from infntk.cli import app, layer_list
    from infntk.layers.registry import is_activation
    text = layer_list()
    head, acts = text.removeprefix("Layers: ").removesuffix(".").split(" and the activations ")
    assert head.split(", ") == [n for n in LAYERS if not is_activation(n)]
    assert acts.split(", ") == [n for n in LAYERS if is_activation(n)]
    r = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "1000", "NO_COLOR": "1"})
    assert r.exit_code == 0 and text in " ".join(r.output.replace("│", " ").split())


def test_computation_failure_exits_1(monkeypatch, capsys):
    """A failure inside the computation: exit 1, one line, no traceback (in-process)."""
    from infntk import cli
    from infntk.cli import common

    def boom(*a, **k):
        raise RuntimeError("device lost")

    monkeypatch.setattr(common, "load_model",
                        lambda arch, width=None: (None, type("M", (), {"kernel": boom})(), arch))
    monkeypatch.setattr("infntk.cli.predict.load_model", common.load_model)
    monkeypatch.setattr("infntk.cli.predict.load_data",
                        lambda *a, **k: __import__("infntk.data").data.load("iris"))
    with pytest.raises(SystemExit) as e:
        cli.main(["predict", "Dense(1)", "--data", "iris"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "RuntimeError: device lost" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------ studies, demo

def test_study_smoke(tmp_path):
    out = tmp_path / "lin"
    p = infntk("study", "linearization", "--quick", "--n-train", "20", "--n-test", "20",
               "--epochs", "1", "--width", "4", "--out", str(out), "--json", check=0)
    r = json.loads(p.stdout)
    assert r["ok"] and r["study"] == "linearization"
    acc = r["result"]["test_acc"]
    assert set(acc) >= {"network", "linear_at_init", "linear_at_trained"}
    assert all(0 <= v <= 1 for v in acc.values())
    assert (out / "linearization_mlp.json").exists()
    # the directory is not empty now: refused without --force, before any work
    p = infntk("study", "linearization", "--quick", "--out", str(out), check=2)
    assert "--force" in p.stderr


def test_converge(tmp_path):
    args = ["converge", "Dense(8) >> Erf() >> Dense(1)", "--widths", "4,8", "--seeds", "3",
            "--limit", "3", "--n-boot", "10", "--json"]
    out = tmp_path / "conv"
    r = json.loads(infntk(*args, "--out", str(out), check=0).stdout)
    res = r["result"]
    assert r["ok"] and res["widths"] == [4, 8] and res["seeds"] == 3
    assert {"nngp", "ntk"} <= set(res["fits"])
    # the exact kernels it compared against are the model's own
    from infntk import data as D
    x = D.standardize(D.load("iris", limit=3).x)[0]
    want = parse_model("Dense(8) >> Erf() >> Dense(1)").kernel(x, None, get="ntk")
    np.testing.assert_allclose(np.array(res["exact"]["ntk"]), want, rtol=1e-10)
    assert (out / "result.json").exists()
