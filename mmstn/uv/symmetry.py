"""Mirror maps: find them from UVs or positions, and check that a mesh's topology is mirror-symmetric.

A *mirror map* is an integer array ``mirror`` of shape (N,) with ``mirror[mirror[i]] == i``: vertex
``mirror[i]`` is the reflection of vertex ``i`` through the face's symmetry plane x = 0 (midline vertices map
to themselves). :class:`mmstn.models.morphable.MorphableModel` stores it in ``model.mirror``.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["mirror_from_positions", "mirror_from_uv", "mirror_topology_mismatch"]


def _nearest_involution(points: np.ndarray, reflected: np.ndarray, tol: float, what: str) -> np.ndarray:
    dist, idx = cKDTree(points).query(reflected, k=1)
    bad = np.flatnonzero(dist > tol)
    if bad.size:
        raise ValueError(
            f"{bad.size} of {len(points)} vertices have no mirror partner within tol={tol:g} in {what} "
            f"(largest gap {dist.max():.3g}); the mesh is not exactly mirror-symmetric there. "
            "Pass a larger tol, or supply the mirror map from the model's own symmetry list."
        )
    idx = idx.astype(np.int64)
    if not np.array_equal(idx[idx], np.arange(len(points))):
        n_bad = int(np.sum(idx[idx] != np.arange(len(points))))
        raise ValueError(f"nearest-neighbour mirror in {what} is not an involution for {n_bad} vertices")
    return idx


def mirror_from_uv(uv: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Mirror map of a mirror-symmetric UV map: ``mirror[i]`` is the vertex at (1 − u_i, v_i).

    Args:
        uv: (N, 2) texture coordinates in [0, 1]², e.g. the authors' ``BFM_UV.mat`` (which is symmetric
            to 6e−17, docs/conventions.md §9.1).
        tol: largest accepted distance in UV units between (1 − u_i, v_i) and its nearest vertex.

    Returns:
        int64 array (N,), an involution; vertices with u = 0.5 map to themselves.
    """
    uv = np.asarray(uv, dtype=np.float64)
    return _nearest_involution(uv, np.stack([1.0 - uv[:, 0], uv[:, 1]], axis=1), tol, "UV space")


def mirror_from_positions(V: np.ndarray, tol: float = 1e-6, x0: float = 0.0) -> np.ndarray:
    """Mirror map of a shape symmetric about the plane x = ``x0``: ``mirror[i]`` is the vertex nearest
    to (2·x0 − x_i, y_i, z_i), accepted within ``tol`` (same unit as ``V``, e.g. mm).

    Returns:
        int64 array (N,), an involution. Raises ``ValueError`` when the shape is not symmetric within tol.
    """
    V = np.asarray(V, dtype=np.float64)
    R = V.copy()
    R[:, 0] = 2.0 * x0 - R[:, 0]
    return _nearest_involution(V, R, tol, "3-D positions")


def mirror_topology_mismatch(F: np.ndarray, mirror: np.ndarray) -> int:
    """How many triangles have no mirror image in ``F`` (0 for a mirror-symmetric triangulation).

    The mirror image of triangle (a, b, c) is the triangle with vertex set {mirror[a], mirror[b], mirror[c]}.
    """
    F = np.asarray(F, dtype=np.int64)
    mirror = np.asarray(mirror, dtype=np.int64)
    n = int(max(F.max(), mirror.max())) + 1

    def keys(T: np.ndarray) -> np.ndarray:
        s = np.sort(T, axis=1)
        return (s[:, 0] * n + s[:, 1]) * n + s[:, 2]

    return int(np.sum(~np.isin(keys(mirror[F]), keys(F))))
