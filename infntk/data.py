"""Data sources for the ``infntk`` command: bundled scikit-learn sets and user files.

A *source* is one of

- ``digits`` (1797 x 64, pixel values scaled to [0, 1]), ``digits:images`` (1797 x 8 x 8 x 1,
  channels-last, for convolutional models), ``iris``, ``wine``, ``breast_cancer`` -- the data sets
  bundled with scikit-learn (no download);
- a path to ``.npy`` (features only), ``.npz`` (named arrays ``x``/``X`` and optionally ``y``/``Y``)
  or ``.csv`` (numeric columns; ``label_column`` picks the label by name or index; a header row is
  detected when the first row is not numeric; a non-numeric label column is encoded as classes).

Everything is validated: shape, dtype, NaN/inf, that there is one label per sample. Problems raise
:class:`DataError` naming the file and what is wrong. Pickles are never loaded.

Example:
    >>> ds = load("iris")
    >>> ds.x.shape, ds.y.shape, ds.classes
    ((150, 4), (150,), 3)
"""

from __future__ import annotations

import csv
import os
import zipfile
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from infntk.errors import InfntkError

__all__ = ["DataError", "Dataset", "BUNDLED", "load", "split", "one_hot", "standardize"]

BUNDLED = ("digits", "digits:images", "iris", "wine", "breast_cancer")
#: Refuse files bigger than this many elements (a guard against loading a mistake into memory).
MAX_ELEMENTS = 200_000_000


class DataError(InfntkError):
    """A data source that cannot be used; the message names the source and the problem."""


@dataclass(frozen=True)
class Dataset:
    """Features ``x`` (N, ...) float, labels ``y`` (N,) or (N, k) or None.

    ``classes``: number of classes when ``y`` holds integer class labels 0..C-1, else None.
    ``class_names``: the original label values (strings or numbers) when known.
    """

    name: str
    x: np.ndarray
    y: Optional[np.ndarray] = None
    classes: Optional[int] = None
    class_names: tuple = field(default=())

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def take(self, idx) -> "Dataset":
        return Dataset(self.name, self.x[idx], None if self.y is None else self.y[idx],
                       self.classes, self.class_names)


def _bundled(name: str) -> Dataset:
    try:
        from sklearn import datasets
    except ImportError:  # pragma: no cover - scikit-learn is in the cli/test extras
        raise DataError(f"{name}: the bundled data sets need scikit-learn "
                        "(pip install 'infntk[cli]')") from None
    base = name.split(":")[0]
    loader = {"digits": datasets.load_digits, "iris": datasets.load_iris,
              "wine": datasets.load_wine, "breast_cancer": datasets.load_breast_cancer}[base]
    b = loader()
    x = np.asarray(b.data, dtype=np.float64)
    if base == "digits":
        x = x / 16.0
        if name == "digits:images":
            x = x.reshape(-1, 8, 8, 1)
    y = np.asarray(b.target, dtype=np.int64)
    names = tuple(str(t) for t in getattr(b, "target_names", range(int(y.max()) + 1)))
    return Dataset(name, x, y, int(y.max()) + 1, names)


def _fail(source: str, what: str) -> DataError:
    return DataError(f"{source}: {what}")


def _check_array(source: str, role: str, a, allow_int_labels: bool = False) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == object or a.dtype.kind in "OSUVMm":
        raise _fail(source, f"{role} has dtype {a.dtype}; a numeric array is needed")
    if a.dtype.kind == "c":
        raise _fail(source, f"{role} is complex; real numbers are needed")
    if a.size > MAX_ELEMENTS:
        raise _fail(source, f"{role} has {a.size} elements; at most {MAX_ELEMENTS} are accepted")
    if a.ndim == 0:
        raise _fail(source, f"{role} is a scalar; an array with one row per sample is needed")
    if a.shape[0] == 0:
        raise _fail(source, f"{role} is empty (shape {a.shape})")
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            i = np.argwhere(bad)[0]
            kind = "NaN" if np.isnan(a[tuple(i)]) else "inf"
            raise _fail(source, f"{role} has {int(bad.sum())} non-finite value(s) "
                                f"(first: {kind} at index {tuple(int(j) for j in i)})")
    return a


def _labels(source: str, y) -> tuple[np.ndarray, Optional[int], tuple]:
    """Validate labels; integer-valued 1-D labels become classes 0..C-1."""
    y = _check_array(source, "y", y)
    if y.ndim > 2:
        raise _fail(source, f"y has shape {y.shape}; labels must be (N,) or (N, k)")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 1 and (y.dtype.kind in "biu" or np.all(np.mod(y, 1) == 0)):
        values, codes = np.unique(y, return_inverse=True)
        if len(values) <= max(2, min(1000, y.shape[0] // 2)):
            return codes.astype(np.int64), int(len(values)), tuple(
                str(v.item() if hasattr(v, "item") else v) for v in values)
    return y.astype(np.float64), None, ()


def _finish(source: str, x, y, classes=None, names=()) -> Dataset:
    x = _check_array(source, "x", x)
    if x.ndim == 1:
        x = x[:, None]
    if x.dtype.kind == "b":
        x = x.astype(np.float64)
    x = x.astype(np.float64) if x.dtype.kind in "iu" else x
    if x.dtype.kind != "f":
        raise _fail(source, f"x has dtype {x.dtype}; numbers are needed")
    if x.shape[1:] and int(np.prod(x.shape[1:])) == 0:
        raise _fail(source, f"x has no features (shape {x.shape})")
    if y is not None:
        if classes is None:
            y, classes, names = _labels(source, y)
        if y.shape[0] != x.shape[0]:
            raise _fail(source, f"{x.shape[0]} samples in x but {y.shape[0]} labels in y; "
                                "one label per sample is needed")
    return Dataset(source, x.astype(np.float64), y, classes, tuple(names))


def _load_npy(path: str) -> Dataset:
    try:
        x = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise _fail(path, "holds Python objects (a pickle); infntk never loads pickles — "
                              "save a numeric array") from None
        raise _fail(path, f"not a valid .npy file ({e})") from None
    except (OSError, EOFError) as e:
        raise _fail(path, f"cannot read .npy file ({e})") from None
    if isinstance(x, np.lib.npyio.NpzFile):  # an .npz saved under a .npy name
        x.close()
        return _load_npz(path)
    return _finish(path, x, None)


def _load_npz(path: str) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            kx = next((k for k in ("x", "X") if k in keys), None)
            if kx is None:
                raise _fail(path, f"no array named 'x' or 'X' (found: {', '.join(keys) or 'none'})")
            ky = next((k for k in ("y", "Y") if k in keys), None)
            x = z[kx]
            y = z[ky] if ky else None
    except DataError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise _fail(path, "holds Python objects (a pickle); infntk never loads pickles — "
                              "save numeric arrays") from None
        raise _fail(path, f"not a valid .npz file ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise _fail(path, f"cannot read .npz file ({type(e).__name__}: {e})") from None
    return _finish(path, x, y)


def _number(s: str) -> Optional[float]:
    try:
        return float(s)
    except ValueError:
        return None


def _load_csv(path: str, label_column) -> Dataset:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            sample = f.read(65536)
            f.seek(0)
            try:
                dialect = csv.Sniffer().sniff(sample, delimiters=",;\t ")
            except csv.Error:
                dialect = csv.excel
            rows = [r for r in csv.reader(f, dialect) if r and any(c.strip() for c in r)]
    except UnicodeDecodeError:
        raise _fail(path, "is not a UTF-8 text file") from None
    except OSError as e:
        raise _fail(path, f"cannot read ({e.strerror or e})") from None
    except csv.Error as e:
        raise _fail(path, f"not a valid CSV file ({e})") from None
    if not rows:
        raise _fail(path, "is empty")
    rows = [[c.strip() for c in r] for r in rows]
    header = None
    # A header row: some column is a number below it but not in it (a text label column is text
    # in every row, so it does not make the first row a header).
    if len(rows) > 1 and any(_number(a) is None and _number(b) is not None
                             for a, b in zip(rows[0], rows[1])):
        header, rows = rows[0], rows[1:]
    elif len(rows) == 1 and all(_number(c) is None for c in rows[0]):
        raise _fail(path, "has a header but no data rows")
    if not rows:
        raise _fail(path, "has a header but no data rows")
    width = len(rows[0])
    for i, r in enumerate(rows):
        if len(r) != width:
            line = i + 1 + (header is not None)
            raise _fail(path, f"line {line} has {len(r)} columns, expected {width}")
    lab = None
    if label_column is not None:
        lc = str(label_column)
        if header is not None and lc in header:
            lab = header.index(lc)
        else:
            try:
                lab = int(lc)
            except ValueError:
                cols = ", ".join(header) if header else "none (no header row)"
                raise _fail(path, f"no column named {lc!r} (columns: {cols})") from None
            if not -width <= lab < width:
                raise _fail(path, f"label column {lab} out of range: the file has {width} columns")
            lab %= width
        if width < 2:
            raise _fail(path, "has only the label column; features are needed")
    feat = [j for j in range(width) if j != lab]
    x = np.empty((len(rows), len(feat)), dtype=np.float64)
    for i, r in enumerate(rows):
        for jj, j in enumerate(feat):
            v = _number(r[j])
            if v is None:
                line = i + 1 + (header is not None)
                name = f" ({header[j]!r})" if header else ""
                hint = "" if label_column is not None else \
                    "; if it is the label, pass --label-column"
                raise _fail(path, f"line {line}, column {j}{name}: {r[j]!r} is not a number{hint}")
            x[i, jj] = v
    y = classes = None
    names: tuple = ()
    if lab is not None:
        raw = [r[lab] for r in rows]
        nums = [_number(v) for v in raw]
        if all(v is not None for v in nums):
            y = np.asarray(nums, dtype=np.float64)
        else:
            values = sorted(set(raw))
            index = {v: k for k, v in enumerate(values)}
            y = np.asarray([index[v] for v in raw], dtype=np.int64)
            classes, names = len(values), tuple(values)
    return _finish(path, x, y, classes, names)


def load(source: str, label_column=None, limit: Optional[int] = None) -> Dataset:
    """Load a data source (see the module docstring); ``limit`` keeps the first ``limit`` samples."""
    if not isinstance(source, str) or not source:
        raise DataError("no data source given; use digits, iris, wine, breast_cancer or a file "
                        "(.npy, .npz, .csv)")
    if source in BUNDLED:
        ds = _bundled(source)
    else:
        ext = os.path.splitext(source)[1].lower()
        if ext not in (".npy", ".npz", ".csv"):
            import difflib

            close = difflib.get_close_matches(source, BUNDLED, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DataError(f"{source}: unknown data source{hint}; use one of "
                            f"{', '.join(BUNDLED)} or a .npy/.npz/.csv file")
        if not os.path.exists(source):
            raise DataError(f"{source}: no such file")
        if not os.path.isfile(source):
            raise DataError(f"{source}: not a regular file")
        if label_column is not None and ext != ".csv":
            raise DataError(f"{source}: --label-column applies to .csv files only")
        if ext in (".npy", ".npz"):
            try:
                with open(source, "rb") as f:
                    magic = f.read(6)
            except OSError as e:
                raise DataError(f"{source}: cannot read ({e.strerror or e})") from None
            if magic.startswith(b"PK"):
                ext = ".npz"
            elif magic == b"\x93NUMPY":
                ext = ".npy"
            else:
                raise DataError(f"{source}: not a NumPy file (.npy/.npz content expected; "
                                "save with numpy.save or numpy.savez)")
        ds = {".npy": _load_npy, ".npz": _load_npz}.get(ext, None)
        ds = ds(source) if ds else _load_csv(source, label_column)
    if limit is not None:
        if limit < 1:
            raise DataError(f"{source}: limit must be at least 1, got {limit}")
        ds = ds.take(slice(0, limit))
    return ds


def subset(ds: Dataset, limit: int, seed: Optional[int] = 0) -> Dataset:
    """``limit`` samples of ``ds``: a seeded random draw, or the first ``limit`` with ``seed=None``.

    Several bundled sets are sorted by class (iris, wine), so the first samples can be a single
    class; a random draw keeps the classes' mix (``limit`` above ``ds.n`` keeps everything).
    """
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise DataError(f"{ds.name}: limit must be a positive integer, got {limit!r}")
    if limit >= ds.n:
        return ds
    idx = np.arange(limit) if seed is None else np.sort(np.random.default_rng(seed).permutation(ds.n)[:limit])
    return ds.take(idx)


def split(ds: Dataset, train_fraction: float = 0.5, seed: Optional[int] = 0):
    """Train/test split: first ``train_fraction`` of the samples train, the rest test.

    With ``seed`` not None the samples are shuffled first (deterministically): several bundled sets
    (iris, wine) are sorted by class, and a plain first-half split would hide whole classes.
    """
    if not 0 < train_fraction < 1:
        raise DataError(f"train fraction must be in (0, 1), got {train_fraction}")
    n = ds.n
    n_train = int(round(n * train_fraction))
    if n_train < 1 or n_train >= n:
        raise DataError(f"{ds.name}: {n} samples are too few to split into train and test")
    idx = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
    return ds.take(idx[:n_train]), ds.take(idx[n_train:])


def one_hot(y: np.ndarray, classes: int) -> np.ndarray:
    """Targets for kernel regression: one-hot rows (C columns)."""
    return np.eye(classes, dtype=np.float64)[y]


def standardize(train: np.ndarray, *others: np.ndarray):
    """Zero mean, unit variance per feature using the training set's statistics."""
    axes = tuple(range(train.ndim - 1)) if train.ndim > 2 else (0,)
    mu = train.mean(axis=axes, keepdims=True)
    sd = train.std(axis=axes, keepdims=True)
    sd = np.where(sd > 0, sd, 1.0)
    return tuple((a - mu) / sd for a in (train,) + others)
