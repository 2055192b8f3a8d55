"""Memory-bounded tiled Gram matrices: local devices or a Dask cluster, resumable on-disk stores.

* :func:`kernel_matrix` -- the Gram matrix of ``model.kernel`` in tiles sized to a memory budget,
  upper triangle only when ``x2 is None``, spread over local JAX devices or Dask workers, optionally
  into a chunked zarr store that survives ``kill -9`` and resumes.
* :class:`StoredGram` -- a stored matrix read lazily, with a blocked ``matvec`` for iterative solvers.
* :func:`plan_tiles` / :class:`TilePlan` / :class:`MemoryModel` -- how the tile size is chosen.

Example:
    >>> import numpy as np
    >>> from infntk.tiling import kernel_matrix
    >>> from infntk.tiling.testing import ArcCosine
    >>> kernel_matrix(ArcCosine(), np.ones((10, 2)), get="nngp", tile=4, progress=False).shape
    (10, 10)
"""

from infntk.tiling.gram import StoredGram
from infntk.tiling.matrix import kernel_matrix
from infntk.tiling.plan import MemoryModel, Tile, TilePlan, plan_tiles

__all__ = ["kernel_matrix", "StoredGram", "plan_tiles", "TilePlan", "Tile", "MemoryModel"]
