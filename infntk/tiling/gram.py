r"""A Gram matrix read lazily from a store, tile by tile.

:class:`StoredGram` wraps one (N1, N2) chunked zarr array (or any 2-d array) and offers the blocked
products an iterative solver needs without ever holding the matrix whole:

.. math::
   (K v)_{I} = \sum_{J} K_{IJ}\, v_{J},

looping over the chunks :math:`K_{IJ}` (one tile in memory at a time, the accumulator of one row
band). ``matvec`` accepts a vector (N2,) or a block of vectors (N2, k). Pass ``gram.matvec`` to a
conjugate-gradient solver (e.g. ``infntk.predict``'s, which accepts a matvec callable), or use
:meth:`StoredGram.as_linear_operator` with :mod:`scipy.sparse.linalg`.

Example:
    >>> import numpy as np
    >>> g = StoredGram(np.arange(6.0).reshape(2, 3), block=(1, 2))
    >>> g.matvec(np.ones(3))
    array([ 3., 12.])
"""

from __future__ import annotations

import numpy as np

from infntk.errors import InfntkError


class StoredGram:
    """Lazily read Gram matrix with a blocked ``matvec``.

    Args:
      array: a 2-d zarr array (or numpy array).
      block: (rows, cols) of the blocks read at once; default the array's chunks (= tiles).
    """

    def __init__(self, array, block=None):
        if len(array.shape) != 2:
            raise InfntkError(f"StoredGram: expected a 2-d array, got shape {tuple(array.shape)}")
        self.array = array
        chunks = getattr(array, "chunks", None)
        if block is None:
            block = tuple(chunks) if chunks is not None else tuple(array.shape)
        self.block = tuple(max(1, int(b)) for b in block)

    @classmethod
    def open(cls, path, get: str = "ntk", require_complete: bool = True) -> "StoredGram":
        """Open kernel ``get`` of the store at ``path`` (written by ``kernel_matrix(..., store=path)``).
        With ``require_complete`` a store with unfinished tiles is refused."""
        from infntk.tiling.plan import TilePlan
        from infntk.tiling.store import TileStore

        st = TileStore.open(path)
        if get not in st.arrays:
            raise InfntkError(f"StoredGram: the store at {str(path)!r} holds {st.names}, not {get!r}")
        if require_complete:
            m = st.manifest
            plan = TilePlan(tuple(m["shape"]), tuple(m["tile"]), bool(m["symmetric"]))
            missing = len(plan.tiles()) - len(st.read_records())
            if missing:
                raise InfntkError(
                    f"StoredGram: the store at {str(path)!r} is incomplete ({missing} tiles missing); "
                    "rerun kernel_matrix with the same arguments to finish it"
                )
        return cls(st.arrays[get])

    @property
    def shape(self):
        return tuple(self.array.shape)

    @property
    def dtype(self):
        return np.dtype(self.array.dtype)

    def __getitem__(self, idx):
        return np.asarray(self.array[idx])

    def __array__(self, dtype=None, copy=None):
        a = np.asarray(self.array[...])
        return a if dtype is None else a.astype(dtype)

    def to_numpy(self) -> np.ndarray:
        return np.asarray(self.array[...])

    def _bands(self, n, b):
        return [(s, min(s + b, n)) for s in range(0, n, b)]

    def matvec(self, v) -> np.ndarray:
        """:math:`K v` for v of shape (N2,) or (N2, k), reading one block at a time."""
        v = np.asarray(v)
        n1, n2 = self.shape
        if v.shape[:1] != (n2,) or v.ndim > 2:
            raise InfntkError(f"StoredGram.matvec: expected v of shape ({n2},) or ({n2}, k), got {v.shape}")
        out = np.zeros((n1,) + v.shape[1:], np.result_type(self.dtype, v.dtype))
        cols = self._bands(n2, self.block[1])
        for r0, r1 in self._bands(n1, self.block[0]):
            acc = out[r0:r1]
            for c0, c1 in cols:
                acc += np.asarray(self.array[r0:r1, c0:c1]) @ v[c0:c1]
        return out

    __matmul__ = matvec

    def rmatvec(self, v) -> np.ndarray:
        """:math:`K^\\top v`, blockwise."""
        v = np.asarray(v)
        n1, n2 = self.shape
        if v.shape[:1] != (n1,) or v.ndim > 2:
            raise InfntkError(f"StoredGram.rmatvec: expected v of shape ({n1},) or ({n1}, k), got {v.shape}")
        out = np.zeros((n2,) + v.shape[1:], np.result_type(self.dtype, v.dtype))
        rows = self._bands(n1, self.block[0])
        for c0, c1 in self._bands(n2, self.block[1]):
            acc = out[c0:c1]
            for r0, r1 in rows:
                acc += np.asarray(self.array[r0:r1, c0:c1]).T @ v[r0:r1]
        return out

    def diagonal(self) -> np.ndarray:
        n = min(self.shape)
        b = self.block[0]
        return np.concatenate([np.diagonal(np.asarray(self.array[s:e, s:e])) for s, e in self._bands(n, b)])

    def as_linear_operator(self):
        """A :class:`scipy.sparse.linalg.LinearOperator` backed by the blocked products."""
        from scipy.sparse.linalg import LinearOperator

        return LinearOperator(self.shape, matvec=self.matvec, rmatvec=self.rmatvec,
                              matmat=self.matvec, dtype=self.dtype)

    def __repr__(self):
        return f"StoredGram(shape={self.shape}, dtype={self.dtype}, block={self.block})"
