"""Basel Face Model 2017 (statismo HDF5: ``model2017-1_bfm_nomouth.h5``, ``model2017-1_face12_nomouth.h5``).

Layout read here (docs/conventions.md §10.2), with N vertices:

* ``shape/model/mean`` (3N,), interleaved xyz, **millimetres**;
  ``shape/model/pcaBasis`` (3N, K) with orthonormal columns; ``shape/model/pcaVariance`` (K,)
  **variances** (the basis is scaled by their square roots so that α ~ N(0, I));
* ``shape/representer/points`` (3, N) reference positions (only N is checked) and
  ``shape/representer/cells`` (3, M) 0-based triangles (transposed to (M, 3));
* ``expression/model/{mean, pcaBasis, pcaVariance}``, same layout, optional: the expression components
  follow the identity ones (``n_identity = K_shape``), and the expression mean is added to the shape mean,
  because the full model is the sum of the two PCA models;
* ``color/model/{mean, pcaBasis, pcaVariance}``, optional: interleaved RGB in [0, 1] (divided by 255 if a
  copy stores 0..255).

Frame and winding: the BFM 2017 shares the BFM 2009 frame (x to the viewer's right, y up, z towards the
viewer). The representer's cells are taken as counter-clockwise seen from the front (eos converts them
without reordering, and eos expects counter-clockwise faces), but the loader does not rely on that: it
computes the area-weighted mean normal of the mean face and swaps two indices of every triangle if it points
to −z. No BFM 2017 file was available to this code's authors; the fixtures in the tests follow the layout
above.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmstn.errors import ModelFileError, check_file, check_finite_field
from mmstn.models.bfm2009 import ccw_from_clockwise, front_normal, validate_triangles
from mmstn.models.morphable import MorphableModel

__all__ = ["BFM2017_LICENCE", "load_bfm2017"]

#: Licence line printed with models built from the BFM 2017.
BFM2017_LICENCE = (
    "Basel Face Model 2017 (University of Basel): non-commercial research use after registration; do not redistribute"
)


def _dataset(path: Path, f, key: str, *, required: bool = True) -> np.ndarray | None:
    import h5py

    if key not in f:
        if required:
            raise ModelFileError(path, f"missing HDF5 dataset {key!r}; is this a statismo/BFM 2017 model file?")
        return None
    node = f[key]
    if not isinstance(node, h5py.Dataset):
        raise ModelFileError(path, f"{key!r} is a group, expected a dataset")
    try:
        value = np.asarray(node[()])
    except Exception as exc:  # damaged chunks raise OSError/RuntimeError
        raise ModelFileError(path, f"cannot read {key!r} ({type(exc).__name__}: {exc}); truncated file?") from exc
    if not np.issubdtype(value.dtype, np.number):
        raise ModelFileError(path, f"{key!r} is not numeric (HDF5 dtype {value.dtype})")
    check_finite_field(path, key, value)
    return value


def _pca(path: Path, f, group: str, n_vertices: int | None, *, required: bool) -> tuple | None:
    """(mean (N, 3), basis (K, N, 3) scaled by sqrt(variance)) of one statismo PCA model, float32."""
    mean = _dataset(path, f, f"{group}/model/mean", required=required)
    if mean is None:
        return None
    basis = _dataset(path, f, f"{group}/model/pcaBasis")
    variance = _dataset(path, f, f"{group}/model/pcaVariance")
    mean = mean.astype(np.float32).reshape(-1)
    variance = variance.astype(np.float64).reshape(-1)
    if mean.size == 0 or mean.size % 3:
        raise ModelFileError(path, f"{group}/model/mean has {mean.size} values, expected 3N")
    n = mean.size // 3
    if n_vertices is not None and n != n_vertices:
        raise ModelFileError(path, f"{group}/model/mean has {n} vertices but shape/model/mean has {n_vertices}")
    if basis.ndim != 2 or 3 * n not in basis.shape:
        raise ModelFileError(path, f"{group}/model/pcaBasis has size {basis.shape}, expected ({3 * n}, K)")
    if basis.shape[0] != 3 * n:
        basis = basis.T
    if variance.size != basis.shape[1]:
        raise ModelFileError(
            path, f"{group}: pcaBasis has {basis.shape[1]} columns but pcaVariance has {variance.size} values"
        )
    if not np.all(np.isfinite(variance)) or np.any(variance < 0):
        raise ModelFileError(path, f"{group}/model/pcaVariance must hold finite, non-negative variances")
    scaled = basis.astype(np.float32) * np.sqrt(variance).astype(np.float32)[None, :]
    return mean.reshape(n, 3), np.ascontiguousarray(scaled.T).reshape(basis.shape[1], n, 3)


def load_bfm2017(path: str | Path, *, with_texture: bool = True, with_expression: bool = True) -> MorphableModel:
    """Load a BFM 2017 statismo ``.h5`` file as a :class:`MorphableModel`.

    Args:
        path: ``model2017-1_bfm_nomouth.h5`` (N = 53149) or ``model2017-1_face12_nomouth.h5`` (N = 28588).
        with_texture: read the colour model into ``colour`` (N, 3) and ``texture_basis`` (K_c, N, 3).
        with_expression: append the expression components (and add the expression mean).

    Returns:
        mean (N, 3) and basis (K_shape + K_expr, N, 3) in millimetres, α ~ N(0, I), ``n_identity = K_shape``,
        triangles (M, 3) 0-based, counter-clockwise from the front.

    Raises:
        ModelFileError: missing/unreadable/truncated file or inconsistent sizes.
    """
    import h5py

    path = check_file(path, "statismo .h5 model file")
    try:
        f = h5py.File(str(path), "r")
    except Exception as exc:  # OSError for non-HDF5 or truncated files
        raise ModelFileError(path, f"not a readable HDF5 file, or truncated ({type(exc).__name__}: {exc})") from exc
    with f:
        shape_mean, shape_basis = _pca(path, f, "shape", None, required=True)
        n = shape_mean.shape[0]
        mean, parts, n_identity = shape_mean, [shape_basis], shape_basis.shape[0]
        if with_expression:
            expr = _pca(path, f, "expression", n, required=False)
            if expr is not None:
                mean = mean + expr[0]
                parts.append(expr[1])
        colour = texture_basis = None
        if with_texture:
            col = _pca(path, f, "color", n, required=False)
            if col is not None:
                scale = 255.0 if float(np.max(col[0])) > 1.5 else 1.0
                colour, texture_basis = col[0] / scale, col[1] / scale
        points = _dataset(path, f, "shape/representer/points", required=False)
        if points is not None and n not in points.shape:
            raise ModelFileError(path, f"shape/representer/points has size {points.shape}, expected (3, {n})")
        cells = _dataset(path, f, "shape/representer/cells")

    if cells.ndim == 2 and cells.shape[0] == 3:
        cells = cells.T  # statismo stores cells as 3×M
    triangles = validate_triangles(path, cells, n, one_based=False)
    if front_normal(mean, triangles)[2] < 0:
        triangles = ccw_from_clockwise(triangles)
    basis = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
    return MorphableModel(
        name=f"BFM 2017 ({path.stem})",
        mean=mean,
        basis=basis,
        n_identity=n_identity,
        triangles=triangles,
        colour=colour,
        texture_basis=texture_basis,
        licence=BFM2017_LICENCE,
        source=str(path),
    )
