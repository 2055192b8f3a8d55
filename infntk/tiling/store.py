"""The on-disk store of a tiled Gram matrix: zarr arrays, a manifest, per-tile completion records.

Layout of ``PATH``::

    manifest.json        what was computed: model repr + sha256, inputs' sha256/shape/dtype, get,
                         dtype, shape, tile, symmetric, infntk version (written once, atomically)
    nngp/, ntk/          one chunked zarr array per requested kernel, chunk = tile, fill NaN
    tiles/r{i}_c{j}.json completion record of tile (i, j): its bounds and the sha256 of the bytes of
                         every block written for it (and of its mirror in a symmetric matrix)

The completion protocol: a tile's data is written into the zarr chunks *first*; only then is its
record written to a temporary file, flushed, fsync-ed and renamed into place (``os.replace`` is
atomic). So at any instant of a ``kill -9`` a tile is either recorded, with a checksum of data that
was fully written before, or unrecorded -- and an unrecorded tile is recomputed. On resume every
record is checked against the bytes in the store; a mismatch (e.g. a chunk lost to a power cut,
which ``kill -9`` cannot cause) drops the record and the tile is recomputed as well.

Only JSON and zarr arrays are ever read back: no pickles.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile
import uuid

import numpy as np

from infntk.errors import InfntkError

FORMAT = "infntk-tiled-gram/1"
MANIFEST = "manifest.json"
RECORDS = "tiles"


def sha256_bytes(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def describe_array(x) -> dict:
    """sha256 of the bytes, shape and dtype of an input array (for the manifest)."""
    x = np.ascontiguousarray(x)
    h = hashlib.sha256()
    h.update(repr((tuple(x.shape), x.dtype.str)).encode())
    h.update(x.tobytes())
    return {"sha256": h.hexdigest(), "shape": list(x.shape), "dtype": x.dtype.str}


def describe_model(model) -> dict:
    r = repr(model)
    if " at 0x" in r:
        raise InfntkError(
            f"kernel_matrix: the repr of {type(model).__name__} contains a memory address ({r!r}), so a "
            "store cannot recognise it on resume; give the model a deterministic __repr__ "
            "(e.g. make it a frozen dataclass)"
        )
    return {"repr": r, "sha256": hashlib.sha256(r.encode()).hexdigest()}


def _atomic_write_json(path: pathlib.Path, obj) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


_LABELS = {
    "format": "store format",
    "model": "model",
    "x1": "inputs x1",
    "x2": "inputs x2",
    "symmetric": "symmetry (x2=None or not)",
    "get": "get",
    "dtype": "dtype",
    "shape": "shape",
    "tile": "tile size",
    "infntk_version": "infntk version",
}


def _differences(stored: dict, wanted: dict) -> list:
    out = []
    for key, label in _LABELS.items():
        a, b = stored.get(key), wanted.get(key)
        if a == b:
            continue
        if key == "model":
            a = f"{(a or {}).get('repr')!r} (sha256 {(a or {}).get('sha256', '')[:12]})"
            b = f"{b['repr']!r} (sha256 {b['sha256'][:12]})"
        elif key in ("x1", "x2") and isinstance(a, dict) and isinstance(b, dict):
            a = f"sha256 {a['sha256'][:12]} shape {tuple(a['shape'])} dtype {a['dtype']}"
            b = f"sha256 {b['sha256'][:12]} shape {tuple(b['shape'])} dtype {b['dtype']}"
        out.append(f"{label}: store has {a}, this call has {b}")
    return out


class TileStore:
    """A tiled Gram matrix on disk (see the module docstring)."""

    def __init__(self, path, manifest: dict):
        self.path = pathlib.Path(path)
        self.manifest = manifest
        self.names = tuple(manifest["get"])
        self.arrays = {}

    # -- opening --------------------------------------------------------------------------
    @classmethod
    def open_or_create(cls, path, manifest: dict, explicit_tile: bool) -> "TileStore":
        """Open the store at ``path`` if its manifest matches ``manifest`` (the tile size only has
        to match when ``explicit_tile``; otherwise the stored one is adopted), else create it.
        A store written for something else raises :class:`InfntkError` naming what differs."""
        path = pathlib.Path(path)
        mpath = path / MANIFEST
        if mpath.exists():
            stored = json.loads(mpath.read_text())
            wanted = dict(manifest)
            if not explicit_tile:
                wanted["tile"] = stored.get("tile")
            diffs = _differences(stored, wanted)
            if diffs:
                raise InfntkError(
                    f"kernel_matrix: the store at {str(path)!r} was written for a different "
                    "computation; " + "; ".join(diffs)
                    + ". Use another store path (or delete this one) to compute it anew."
                )
            manifest = stored
        else:
            if path.exists() and any(path.iterdir()):
                raise InfntkError(
                    f"kernel_matrix: {str(path)!r} exists, is not empty and has no {MANIFEST}; "
                    "it is not an infntk store -- refusing to write into it"
                )
            path.mkdir(parents=True, exist_ok=True)
            _atomic_write_json(mpath, dict(manifest, format=FORMAT))
            manifest = json.loads(mpath.read_text())
        (path / RECORDS).mkdir(exist_ok=True)
        store = cls(path, manifest)
        store._ensure_arrays()
        return store

    @classmethod
    def open(cls, path, mode: str = "r") -> "TileStore":
        """Open an existing store (no manifest check), read-only unless ``mode='r+'``."""
        path = pathlib.Path(path)
        mpath = path / MANIFEST
        if not mpath.exists():
            raise InfntkError(f"StoredGram: {str(path)!r} is not an infntk store (no {MANIFEST})")
        store = cls(path, json.loads(mpath.read_text()))
        import zarr

        for name in store.names:
            store.arrays[name] = zarr.open_array(store=str(path / name), mode=mode)
        return store

    def _ensure_arrays(self) -> None:
        import zarr

        m = self.manifest
        have_records = any(self.record_paths())
        for name in self.names:
            apath = str(self.path / name)
            try:
                arr = zarr.open_array(store=apath, mode="r+")
                ok = tuple(arr.shape) == tuple(m["shape"]) and tuple(arr.chunks) == tuple(m["tile"])
            except Exception:  # noqa: BLE001 -- missing or half-created array metadata
                arr, ok = None, False
            if not ok:
                if have_records:
                    raise InfntkError(
                        f"kernel_matrix: the store at {str(self.path)!r} has completion records but its "
                        f"{name!r} array is missing or damaged; delete the store to recompute"
                    )
                arr = zarr.create(
                    shape=tuple(m["shape"]), chunks=tuple(m["tile"]), dtype=np.dtype(m["dtype"]),
                    fill_value=np.nan, store=apath, overwrite=True,
                )
            self.arrays[name] = arr

    # -- completion records ---------------------------------------------------------------
    def record_paths(self):
        d = self.path / RECORDS
        return sorted(p for p in d.glob("r*_c*.json")) if d.exists() else []

    def read_records(self) -> dict:
        out = {}
        for p in self.record_paths():
            try:
                rec = json.loads(p.read_text())
                out[(int(rec["i"]), int(rec["j"]))] = rec
            except (ValueError, KeyError, OSError):
                continue  # unreadable record: the tile counts as not done
        return out

    def _blocks(self, rec):
        """(name, key, slices) of every block a record covers."""
        r0, r1, c0, c1 = rec["rows"] + rec["cols"]
        for name in self.names:
            yield name, "tile", (slice(r0, r1), slice(c0, c1))
            if rec.get("mirror"):
                yield name, "mirror", (slice(c0, c1), slice(r0, r1))

    def verify(self, rec) -> bool:
        try:
            for name, key, sl in self._blocks(rec):
                if sha256_bytes(np.asarray(self.arrays[name][sl])) != rec["sha256"][name][key]:
                    return False
        except Exception:  # noqa: BLE001 -- an unreadable chunk is a failed check
            return False
        return True

    def finished(self, verify: bool = True) -> dict:
        """Tiles recorded as done (and, with ``verify``, whose bytes still match): {(i, j): record}.
        Records that fail the check are deleted."""
        done = {}
        for key, rec in self.read_records().items():
            if verify and not self.verify(rec):
                (self.path / RECORDS / f"r{key[0]}_c{key[1]}.json").unlink(missing_ok=True)
                continue
            done[key] = rec
        return done

    def write_tile(self, tile, blocks: dict, run_id: str) -> None:
        """Write the data of ``tile`` ({name: (t1, t2) array}), then its completion record."""
        sums = {}
        for name in self.names:
            a = np.ascontiguousarray(blocks[name], dtype=np.dtype(self.manifest["dtype"]))
            self.arrays[name][tile.r0:tile.r1, tile.c0:tile.c1] = a
            sums[name] = {"tile": sha256_bytes(a)}
            if tile.mirror:
                at = np.ascontiguousarray(a.T)
                self.arrays[name][tile.c0:tile.c1, tile.r0:tile.r1] = at
                sums[name]["mirror"] = sha256_bytes(at)
        rec = {
            "i": tile.i, "j": tile.j, "rows": [tile.r0, tile.r1], "cols": [tile.c0, tile.c1],
            "mirror": tile.mirror, "sha256": sums, "run": run_id,
        }
        _atomic_write_json(self.path / RECORDS / f"{tile.name}.json", rec)


def new_run_id() -> str:
    return uuid.uuid4().hex
