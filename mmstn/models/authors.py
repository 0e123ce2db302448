"""Readers for the small files of the authors' 3DMM-STN release (Apache-2.0, ``anilbas/3DMMasSTN``).

* ``util/landmarks/Landmarks{21,68}_{BFM,112,224}.anl``: landmark vertex indices, one number per line,
  ``%`` starts a comment, **1-based** (MATLAB). :func:`read_anl` returns them 0-based.
* ``util/BFM_UV.mat``: variable ``UV``, float64 53490×2 in [0, 1], the symmetric Tutte flattening of
  the BFM 2009 mesh (docs/conventions.md §9.1). u grows with model x (viewer's right), v with model y (up), so it
  already follows :class:`~mmstn.models.morphable.MorphableModel`'s "v up" convention.
* :func:`uv_mirror_map` pairs every vertex (u, v) with the vertex at (1 − u, v): for the BFM flattening this
  is exact (to 6e−17) and gives the left/right mirror of the mesh, with the 220 vertices on u = 0.5 as
  fixed points.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mmstn.errors import ModelFileError, check_file, check_finite_field
from mmstn.models.matfile import read_mat_variables
from mmstn.runtime import atomic_write

__all__ = ["BFM_UV_VERTICES", "load_bfm_uv", "read_anl", "uv_mirror_map", "write_bfm_uv"]

#: Number of vertices of the BFM 2009 mesh that ``BFM_UV.mat`` indexes.
BFM_UV_VERTICES = 53490

_TOKEN_SPLIT = re.compile(r"[\s,;]+")


def read_anl(path: str | Path) -> np.ndarray:
    """Read one of the authors' ``.anl`` landmark files.

    Args:
        path: the ``.anl`` file: integers separated by whitespace/newlines, ``%`` comments.

    Returns:
        (L,) int64 array of **0-based** vertex indices (the file's 1-based numbers minus one).

    Raises:
        ModelFileError: missing file, a token that is not a positive integer, or no numbers at all.
    """
    path = check_file(path, "landmark file")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ModelFileError(path, f"cannot read landmark file ({exc.strerror or exc})") from exc
    values: list[int] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        body = line.split("%", 1)[0].strip()
        if not body:
            continue
        for token in _TOKEN_SPLIT.split(body):
            if not token:
                continue
            try:
                number = float(token)
            except ValueError:
                raise ModelFileError(path, f"line {line_no}: {token!r} is not a vertex index") from None
            if not number.is_integer() or number < 1:
                raise ModelFileError(
                    path, f"line {line_no}: {token!r} is not a 1-based vertex index (a positive integer)"
                )
            values.append(int(number))
    if not values:
        raise ModelFileError(path, "no landmark indices found (only comments or blank lines)")
    return np.asarray(values, dtype=np.int64) - 1


def load_bfm_uv(path: str | Path, *, n_vertices: int | None = BFM_UV_VERTICES) -> np.ndarray:
    """Read the per-vertex UV coordinates ``UV`` from the authors' ``BFM_UV.mat``.

    Args:
        path: ``BFM_UV.mat`` (MATLAB v5; v7.3 copies are read too).
        n_vertices: expected number of rows (53490 for the BFM 2009); ``None`` skips the check.

    Returns:
        (N, 2) float64 array in [0, 1]: column 0 = u (grows with model x), column 1 = v (grows with model y).

    Raises:
        ModelFileError: missing/unreadable file, no ``UV`` variable, wrong size or values outside [0, 1].
    """

    uv = np.asarray(read_mat_variables(path, ["UV"])["UV"], dtype=np.float64)
    check_finite_field(path, "UV", uv)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ModelFileError(path, f"UV has size {uv.shape}, expected N×2")
    if n_vertices is not None and uv.shape[0] != n_vertices:
        raise ModelFileError(path, f"UV has {uv.shape[0]} rows but the model has {n_vertices} vertices")
    if not np.all(np.isfinite(uv)) or uv.min() < 0.0 or uv.max() > 1.0:
        raise ModelFileError(path, "UV values must be finite and lie in [0, 1]")
    return uv


def write_bfm_uv(path: str | Path, uv: np.ndarray) -> Path:
    """Write per-vertex UVs as the authors' ``BFM_UV.mat`` (MATLAB v5, variable ``UV``, float64 N×2 in [0, 1]).

    The same convention :func:`load_bfm_uv` reads: u grows with model x, v with model y. Any mesh may be
    written, not only the BFM's 53490 vertices; read it back with ``load_bfm_uv(path, n_vertices=None)``.

    Raises:
        ValueError: ``uv`` is not a finite N×2 array in [0, 1] (the message says which).
    """
    from scipy.io import savemat

    uv = np.asarray(uv, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2 or len(uv) == 0:
        raise ValueError(f"uv must be an N×2 array, got shape {uv.shape}")
    if not np.isfinite(uv).all() or uv.min() < 0.0 or uv.max() > 1.0:
        raise ValueError("uv must be finite and lie in [0, 1] (the unit square of the flattening)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a file object, not a name: savemat would append ".mat" to a name without it
    with atomic_write(path) as fh:
        savemat(fh, {"UV": uv}, do_compression=True, oned_as="column")
    return path


def uv_mirror_map(uv: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Mirror map from an exactly left/right-symmetric UV layout.

    Vertex ``i`` at (u, v) is paired with the unique vertex at (1 − u, v) (within ``tol``); vertices on
    u = 0.5 pair with themselves.

    Args:
        uv: (N, 2) texture coordinates in [0, 1].
        tol: largest accepted distance in UV units between (1 − u, v) and the partner. Must be smaller than
            the smallest distance between two vertices (1.5e−5 for ``BFM_UV.mat``, 4.6e−4 for the SFM 3448).

    Returns:
        (N,) int64 array ``mirror`` with ``mirror[mirror[i]] == i``.

    Raises:
        ValueError: some vertices have no partner, an ambiguous one, or the pairing is not an involution.
    """
    from scipy.spatial import cKDTree

    uv = np.asarray(uv, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2 or uv.shape[0] < 1:
        raise ValueError(f"uv must have shape (N, 2), got {uv.shape}")
    reflected = np.column_stack([1.0 - uv[:, 0], uv[:, 1]])
    k = min(2, uv.shape[0])
    dist, idx = cKDTree(uv).query(reflected, k=k)
    if k == 1:
        dist, idx = dist[:, None], idx[:, None]
    unmatched = dist[:, 0] > tol
    if unmatched.any():
        worst = int(np.argmax(dist[:, 0]))
        raise ValueError(
            f"{int(unmatched.sum())} of {uv.shape[0]} vertices have no mirror partner within tol={tol:g} "
            f"(worst: vertex {worst}, distance {dist[worst, 0]:.3g})"
        )
    if k == 2 and np.any(dist[:, 1] <= tol):
        raise ValueError(f"some vertices have two candidates within tol={tol:g}; lower tol")
    mirror = idx[:, 0].astype(np.int64)
    if not np.array_equal(mirror[mirror], np.arange(uv.shape[0])):
        raise ValueError("the UV pairing is not an involution (mirror[mirror[i]] != i for some vertices)")
    return mirror
