"""Resample a morphable model onto the regular G×G UV grid that becomes the STN's output image.

Grid layout (docs/conventions.md §2.4, the authors' ``resampleModel.m``): grid vertex k = row·G + col (0-based,
row-major over the output image) sits at

    u = col / (G − 1)        (left → right)
    v = 1 − row / (G − 1)    (top → bottom; the top row is v = 1, the forehead)

so the square's edges are sampled exactly (align-corners style) and ``values.reshape(G, G, …)`` is an upright
image of the unwrapped face. The mirror of grid vertex (row, col) is (row, G − 1 − col).

Grid triangles: two per cell, **counter-clockwise seen from the front** (u right, v up), which is the authors'
clockwise pair [(a,b), (a,b+1), (a+1,b)], [(a+1,b+1), (a+1,b), (a,b+1)] with the last two indices swapped:
[(a,b), (a+1,b), (a,b+1)] and [(a+1,b+1), (a,b+1), (a+1,b)], where (a, b) = (row, col).

Each grid point is located in the UV triangulation of the source mesh (``matplotlib.tri`` trapezoid-map
trifinder); points it cannot place (on the boundary up to rounding, in a fold-over or a hole) are snapped to
the nearest triangle by closest-point barycentrics. The mean, every basis vector, the colour and the texture
basis are then blended with the same barycentric weights (:class:`GridResampler`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import matplotlib.tri as mtri
import numpy as np
import scipy.sparse as sp
import torch
from scipy.spatial import cKDTree

from mmstn.layers.grid import grid_triangles
from mmstn.models.landmarks import flip_permutation
from mmstn.models.morphable import MorphableModel
from mmstn.uv.quality import flipped_triangles

__all__ = [
    "GridResampler",
    "grid_mirror",
    "grid_uv",
    "landmarks_to_grid",
    "resample_to_grid",
]


def grid_uv(G: int) -> np.ndarray:
    """UVs of the G×G grid vertices, shape (G², 2), float64; vertex k = row·G + col (module docstring)."""
    if G < 2:
        raise ValueError(f"G={G}: the grid needs at least 2×2 vertices")
    t = np.arange(G, dtype=np.float64) / (G - 1)
    u = np.tile(t, G)
    v = np.repeat(1.0 - t, G)
    return np.stack([u, v], axis=1)


def grid_mirror(G: int) -> np.ndarray:
    """Mirror map of the grid, shape (G²,), int64: (row, col) ↦ (row, G − 1 − col)."""
    r, c = np.divmod(np.arange(G * G), G)
    return (r * G + (G - 1 - c)).astype(np.int64)


def _barycentric(p: np.ndarray, tri_xy: np.ndarray) -> np.ndarray:
    """Barycentric coordinates of points p (M, 2) in triangles tri_xy (M, 3, 2); shape (M, 3)."""
    a, b, c = tri_xy[:, 0], tri_xy[:, 1], tri_xy[:, 2]
    v0, v1, v2 = b - a, c - a, p - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    safe = np.where(den == 0, 1.0, den)
    l1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / safe
    l2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / safe
    return np.stack([1.0 - l1 - l2, l1, l2], axis=1)


def _closest_on_segment(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parameter t ∈ [0, 1] and squared distance of the closest point a + t(b − a) to p; arrays (..., 2)."""
    d = b - a
    dd = np.sum(d * d, axis=-1)
    t = np.clip(np.sum((p - a) * d, axis=-1) / np.where(dd > 0, dd, 1.0), 0.0, 1.0)
    q = a + t[..., None] * d
    return t, np.sum((p - q) ** 2, axis=-1)


def _snap(points: np.ndarray, uv: np.ndarray, F: np.ndarray, usable: np.ndarray, k: int = 24):
    """Nearest usable triangle and closest-point barycentrics for points outside the triangulation."""
    cand_tris = np.flatnonzero(usable)
    centroids = uv[F[cand_tris]].mean(axis=1)
    k = min(k, cand_tris.size)
    _, nn = cKDTree(centroids).query(points, k=k)
    nn = cand_tris[np.asarray(nn).reshape(len(points), k)]  # (M, k)
    tri = uv[F[nn]]  # (M, k, 3, 2)
    p = np.broadcast_to(points[:, None, :], (len(points), k, 2))
    bary_in = _barycentric(p.reshape(-1, 2), tri.reshape(-1, 3, 2)).reshape(len(points), k, 3)
    inside = np.all(bary_in >= 0, axis=2)
    best_d = np.where(inside, 0.0, np.inf)
    best_bary = np.where(inside[..., None], bary_in, 0.0)
    for e in range(3):  # distance to each edge, barycentrics of the closest point on it
        i, j = e, (e + 1) % 3
        t, d2 = _closest_on_segment(p, tri[:, :, i], tri[:, :, j])
        better = d2 < best_d
        bb = np.zeros((len(points), k, 3))
        bb[..., i] = 1.0 - t
        bb[..., j] = t
        best_d = np.where(better, d2, best_d)
        best_bary = np.where(better[..., None], bb, best_bary)
    pick = np.argmin(best_d, axis=1)
    rows = np.arange(len(points))
    return nn[rows, pick], best_bary[rows, pick], np.sqrt(best_d[rows, pick])


@dataclass(frozen=True)
class GridResampler:
    """Barycentric interpolation from a mesh's vertices to the G×G grid (reusable for any per-vertex data).

    Attributes:
        G: grid size.
        n_source: N, vertices of the source mesh.
        triangle: (G²,) index of the source triangle holding each grid point.
        vertices: (G², 3) the three source vertices of that triangle.
        bary: (G², 3) barycentric weights (non-negative, sum 1).
        snapped: (G²,) bool, True for points placed by nearest-triangle snapping (outside or in a fold-over).
        snap_distance: (G²,) UV distance moved by snapping (0 for located points).
        matrix: scipy CSR (G², N) interpolation matrix (rows sum to 1).
        method: ``"trifinder"``, or ``"snap"`` when the UV triangulation overlaps itself (fold-overs) and every
            point was placed by nearest triangle.
        source_uv: (N, 2) the UVs the resampler was built from (used to place landmarks).
    """

    G: int
    n_source: int
    triangle: np.ndarray
    vertices: np.ndarray
    bary: np.ndarray
    snapped: np.ndarray
    snap_distance: np.ndarray
    matrix: sp.csr_matrix
    method: str = "trifinder"
    source_uv: np.ndarray | None = None

    @classmethod
    def from_uv(cls, uv: np.ndarray, triangles: np.ndarray, G: int) -> GridResampler:
        """Locate the grid points of :func:`grid_uv` in the UV triangulation (uv (N, 2), triangles (F, 3))."""
        uv = np.asarray(uv, dtype=np.float64)
        F = np.asarray(triangles, dtype=np.int64)
        pts = grid_uv(G)
        flipped, degenerate = flipped_triangles(uv, F)
        usable = ~(flipped | degenerate)
        tri_idx = np.full(len(pts), -1, dtype=np.int64)
        # Vertices sharing a UV (the two rims of a slit, see mmstn.uv.embedding) are merged for point
        # location only; the trapezoid map rejects duplicate points. Triangle ids are unchanged.
        uniq, inv = np.unique(uv, axis=0, return_inverse=True)
        method = "trifinder"
        try:
            T = mtri.Triangulation(uniq[:, 0], uniq[:, 1], inv.reshape(-1)[F], mask=~usable)
            tri_idx = np.asarray(T.get_trifinder()(pts[:, 0], pts[:, 1]), dtype=np.int64)
        except (ValueError, RuntimeError):
            method = "snap"  # overlapping triangles (fold-overs): place every point by nearest triangle
        bary = np.zeros((len(pts), 3))
        found = tri_idx >= 0
        if found.any():
            b = _barycentric(pts[found], uv[F[tri_idx[found]]])
            bary[found] = np.clip(b, 0.0, None)
        dist = np.zeros(len(pts))
        miss = np.flatnonzero(~found)
        if miss.size:
            t, b, d = _snap(pts[miss], uv, F, usable)
            tri_idx[miss], bary[miss], dist[miss] = t, b, d
        bary /= bary.sum(axis=1, keepdims=True)
        verts = F[tri_idx]
        rows = np.repeat(np.arange(len(pts)), 3)
        M = sp.csr_matrix((bary.ravel(), (rows, verts.ravel())), shape=(len(pts), uv.shape[0]))
        return cls(G, uv.shape[0], tri_idx, verts, bary, ~found, dist, M, method, uv)

    def apply(self, values, axis: int = 0):
        """Interpolate per-vertex ``values`` to the grid along ``axis`` (length N there → G² in the result).

        Accepts NumPy arrays and torch tensors (torch stays differentiable, dtype and device kept), e.g. a
        mean (N, 3) → (G², 3), or a basis (D, N, 3) with ``axis=1`` → (D, G², 3).
        """
        if values.shape[axis] != self.n_source:
            raise ValueError(f"values have {values.shape[axis]} entries on axis {axis}, the mesh has {self.n_source}")
        if isinstance(values, torch.Tensor):
            x = values.movedim(axis, 0)
            idx = torch.as_tensor(self.vertices, device=x.device)
            w = torch.as_tensor(self.bary, dtype=x.dtype if x.is_floating_point() else torch.float64, device=x.device)
            g = x[idx]  # (G², 3, ...)
            w = w.reshape(*w.shape, *([1] * (g.ndim - 2)))
            return (g * w).sum(dim=1).movedim(0, axis)
        x = np.moveaxis(np.asarray(values), axis, 0)
        out = self.matrix @ x.reshape(self.n_source, -1).astype(np.float64, copy=False)
        return np.moveaxis(np.asarray(out).reshape(len(self.bary), *x.shape[1:]), 0, axis)

    def resample_model(self, model: MorphableModel, uv: np.ndarray | None = None) -> MorphableModel:
        """The model on the grid: mean, basis, colour, texture basis interpolated; grid faces, UVs, mirror.

        Landmarks are mapped by :func:`landmarks_to_grid` using ``uv`` (default: the UVs this resampler was
        built from). The result
        keeps the model's dtype, ``n_identity``, licence; its name is "<model> on a GxG grid".
        """
        if model.n_vertices != self.n_source:
            raise ValueError(f"model has {model.n_vertices} vertices, the resampler was built for {self.n_source}")
        uv_src = self.source_uv if uv is None else np.asarray(uv, dtype=np.float64)
        dt, dev = model.dtype, model.device

        def interp(t: torch.Tensor | None, axis: int) -> torch.Tensor | None:
            if t is None:
                return None
            out = self.apply(t.detach().cpu().double().numpy(), axis=axis)
            return torch.as_tensor(out, dtype=dt, device=dev)

        G = self.G
        if uv_src is None and model.landmarks:
            raise ValueError("pass uv= (the source UVs) to place the landmarks on the grid")
        landmarks = {
            key: torch.as_tensor(landmarks_to_grid(idx.cpu().numpy(), uv_src, G), device=dev)
            for key, idx in model.landmarks.items()
        }
        return replace(
            model,
            name=f"{model.name} on a {G}x{G} grid",
            mean=interp(model.mean, 0),
            basis=interp(model.basis, 1),
            triangles=grid_triangles(G, dev),
            landmarks=landmarks,
            uv=torch.as_tensor(grid_uv(G), dtype=dt, device=dev),
            colour=interp(model.colour, 0),
            texture_basis=interp(model.texture_basis, 1),
            mirror=torch.as_tensor(grid_mirror(G), device=dev),
            source=f"{model.source} (resampled onto a {G}x{G} UV grid)" if model.source else f"{G}x{G} UV grid",
        )


def landmarks_to_grid(indices: np.ndarray, uv: np.ndarray, G: int, flip: np.ndarray | None = None) -> np.ndarray:
    """Map landmark vertex indices of the source mesh to grid vertex indices, mirror-consistently.

    Each landmark goes to the grid vertex nearest its UV: col = round(u (G−1)), row = round((1 − v)(G−1)).
    With a flip permutation (default: the AFLW-21 / iBUG-68 one for 21 / 68 landmarks, none otherwise):

    * a pair (l, flip(l)) is placed from the average of its own UV and the reflected partner's,
      (½(u_l + 1 − u_l'), ½(v_l + v_l')), so the two land in the same row at columns c and G − 1 − c
      (at most one cell from each landmark's own nearest vertex for a near-symmetric UV map);
    * a midline landmark (flip(l) = l) goes to column (G − 1) // 2: the centre column for odd G and, for
      even G (no centre column), the one just left of u = 0.5, as in the authors' 112 and 224 files
      (docs/conventions.md §3.5, e.g. column 55 for G = 112).

    Undefined landmarks (index −1) stay −1. Returns int64 (L,).
    """
    idx = np.asarray(indices, dtype=np.int64)
    uv = np.asarray(uv, dtype=np.float64)
    L = idx.size
    if flip is None and L in (21, 68):
        flip = flip_permutation(L)
    out = np.full(L, -1, dtype=np.int64)
    valid = idx >= 0
    u = np.where(valid, uv[np.where(valid, idx, 0), 0], np.nan)
    v = np.where(valid, uv[np.where(valid, idx, 0), 1], np.nan)
    us, vs = u.copy(), v.copy()
    mid = np.zeros(L, dtype=bool)
    if flip is not None:
        flip = np.asarray(flip, dtype=np.int64)
        both = valid & valid[flip]
        us = np.where(both, 0.5 * (u + 1.0 - u[flip]), u)
        vs = np.where(both, 0.5 * (v + v[flip]), v)
        mid = flip == np.arange(L)
    col = np.rint(np.nan_to_num(us) * (G - 1)).astype(np.int64)
    row = np.rint((1.0 - np.nan_to_num(vs)) * (G - 1)).astype(np.int64)
    col[mid] = (G - 1) // 2
    if flip is not None:
        # make pairs exactly mirror-consistent: the landmark with u < 0.5 decides, its partner mirrors it
        pair = valid & valid[flip] & ~mid
        lead = pair & (us <= 0.5) & ((us < 0.5) | (np.arange(L) < flip))
        col[flip[lead]] = G - 1 - col[lead]
        row[flip[lead]] = row[lead]
    col = np.clip(col, 0, G - 1)
    row = np.clip(row, 0, G - 1)
    out[valid] = (row * G + col)[valid]
    return out


def resample_to_grid(
    model: MorphableModel, uv: np.ndarray | torch.Tensor | None = None, G: int = 112
) -> MorphableModel:
    """Resample ``model`` onto the G×G UV grid (module docstring); ``uv`` (N, 2) defaults to ``model.uv``.

    Returns the grid model: G² vertices, 2(G−1)² counter-clockwise triangles, mean/basis/colour/texture
    basis interpolated, ``uv`` = :func:`grid_uv`, ``mirror`` = :func:`grid_mirror`, landmarks on grid
    vertices. To reuse the interpolation (e.g. for textures), build a :class:`GridResampler` once.
    """
    if uv is None:
        if model.uv is None:
            raise ValueError(
                f"model {model.name!r} has no uv; pass uv= (e.g. symmetric_tutte(model).uv) or a model with UVs"
            )
        uv = model.uv
    uv_np = uv.detach().cpu().double().numpy() if isinstance(uv, torch.Tensor) else np.asarray(uv, np.float64)
    return GridResampler.from_uv(uv_np, model.triangles.cpu().numpy(), G).resample_model(model)
