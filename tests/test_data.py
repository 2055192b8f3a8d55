"""Data sources: bundled sets, .npy/.npz/.csv files, validation messages, no pickles."""

import numpy as np
import pytest

from infntk import data as D
from infntk.data import DataError, load
from infntk.errors import InfntkError


@pytest.mark.parametrize("name, shape, classes", [
    ("digits", (1797, 64), 10), ("digits:images", (1797, 8, 8, 1), 10), ("iris", (150, 4), 3),
    ("wine", (178, 13), 3), ("breast_cancer", (569, 30), 2)])
def test_bundled(name, shape, classes):
    ds = load(name)
    assert ds.x.shape == shape and ds.x.dtype == np.float64
    assert ds.y.shape == (shape[0],) and ds.classes == classes
    assert set(np.unique(ds.y)) == set(range(classes))
    assert np.all(np.isfinite(ds.x))


def test_digits_images_match_flat():
    flat, img = load("digits"), load("digits:images")
    np.testing.assert_array_equal(img.x.reshape(len(img.x), -1), flat.x)
    assert 0 <= flat.x.min() and flat.x.max() <= 1


def test_limit():
    assert load("iris", limit=10).x.shape == (10, 4)
    with pytest.raises(DataError):
        load("iris", limit=0)


def test_npy_npz_csv_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3))
    y = rng.integers(0, 3, size=12)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "d.npz", X=x, Y=y)
    np.savetxt(tmp_path / "d.csv", np.column_stack([x, y]), delimiter=",", header="a,b,c,label",
               comments="")
    a = load(str(tmp_path / "x.npy"))
    np.testing.assert_array_equal(a.x, x)
    assert a.y is None
    b = load(str(tmp_path / "d.npz"))
    np.testing.assert_array_equal(b.x, x)
    np.testing.assert_array_equal(b.y, np.unique(y, return_inverse=True)[1])
    c = load(str(tmp_path / "d.csv"), label_column="label")
    np.testing.assert_allclose(c.x, x, rtol=1e-15)
    np.testing.assert_array_equal(c.y, b.y)
    d = load(str(tmp_path / "d.csv"), label_column=-1)
    np.testing.assert_array_equal(d.y, b.y)


def test_csv_string_labels_and_no_header(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("1.5,2,setosa\n3,4,virginica\n5,6,setosa\n")
    ds = load(str(p), label_column=2)
    assert ds.classes == 2 and ds.class_names == ("setosa", "virginica")
    np.testing.assert_array_equal(ds.y, [0, 1, 0])
    np.testing.assert_array_equal(ds.x, [[1.5, 2], [3, 4], [5, 6]])


def err(tmp_path, name, write, **kw):
    p = tmp_path / name
    write(p)
    with pytest.raises(DataError) as e:
        load(str(p), **kw)
    assert str(p) in str(e.value)
    assert isinstance(e.value, InfntkError)
    return str(e.value)


def test_errors_name_file_and_problem(tmp_path):
    assert "NaN at index (1, 0)" in err(
        tmp_path, "nan.npz", lambda p: np.savez(p, x=np.array([[1.0], [np.nan]])))
    assert "inf" in err(tmp_path, "inf.npy", lambda p: np.save(p, np.array([[np.inf]])))
    assert "3 samples in x but 4 labels" in err(
        tmp_path, "n.npz", lambda p: np.savez(p, x=np.ones((3, 2)), y=np.ones(4)))
    assert "no array named 'x'" in err(tmp_path, "k.npz", lambda p: np.savez(p, a=np.ones(3)))
    assert "dtype <U" in err(tmp_path, "s.npz", lambda p: np.savez(p, x=np.array(["a", "b"])))
    assert "complex" in err(tmp_path, "c.npy", lambda p: np.save(p, np.ones(3) * 1j))
    assert "empty" in err(tmp_path, "e.npy", lambda p: np.save(p, np.ones((0, 3))))
    assert "not a NumPy file" in err(tmp_path, "j.npz", lambda p: p.write_bytes(b"hello"))
    assert "line 3, column 1" in err(tmp_path, "b.csv", lambda p: p.write_text("1,2\n3,4\n5,x\n"))
    assert "line 2 has 3 columns" in err(tmp_path, "r.csv", lambda p: p.write_text("1,2\n3,4,5\n"))
    assert "no column named 'lbl'" in err(
        tmp_path, "h.csv", lambda p: p.write_text("a,label\n1,2\n"), label_column="lbl")
    assert "out of range" in err(tmp_path, "o.csv", lambda p: p.write_text("1,2\n"), label_column=5)
    assert "is empty" in err(tmp_path, "z.csv", lambda p: p.write_text(""))
    assert "UTF-8" in err(tmp_path, "u.csv", lambda p: p.write_bytes(b"\xff\xfe\x00a"))
    assert "--label-column applies to .csv" in err(
        tmp_path, "l.npy", lambda p: np.save(p, np.ones((2, 2))), label_column=0)


def test_pickles_are_never_loaded(tmp_path, monkeypatch):
    import pickle

    class Boom:
        def __reduce__(self):
            return (pytest.fail, ("unpickled!",))

    p = tmp_path / "obj.npy"
    np.save(p, np.array([Boom()], dtype=object), allow_pickle=True)
    assert "pickle" in err(tmp_path, "obj.npy", lambda _: None)
    q = tmp_path / "obj.npz"
    np.savez(q, x=np.array([Boom()], dtype=object))
    assert "pickle" in err(tmp_path, "obj.npz", lambda _: None)
    r = tmp_path / "raw.npy"
    r.write_bytes(pickle.dumps(Boom()))
    assert "not a NumPy file" in err(tmp_path, "raw.npy", lambda _: None)


def test_unknown_source_suggests():
    with pytest.raises(DataError, match="did you mean 'digits'"):
        load("digit")
    with pytest.raises(DataError, match="no such file"):
        load("/nonexistent/file.csv")


def test_split_and_helpers():
    ds = load("iris")
    tr, te = D.split(ds, 0.5, seed=0)
    assert tr.n == 75 and te.n == 75
    assert set(np.unique(tr.y)) == {0, 1, 2}  # shuffled: every class is seen in training
    tr2, te2 = D.split(ds, 0.5, seed=None)  # plain first half / second half
    np.testing.assert_array_equal(tr2.x, ds.x[:75])
    with pytest.raises(DataError):
        D.split(D.Dataset("one", np.ones((1, 2))), 0.5)
    oh = D.one_hot(np.array([0, 2]), 3)
    np.testing.assert_array_equal(oh, [[1, 0, 0], [0, 0, 1]])
    a, b = D.standardize(tr.x, te.x)
    np.testing.assert_allclose(a.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(a.std(0), 1, rtol=1e-12)
