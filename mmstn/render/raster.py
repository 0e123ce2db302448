"""The rasteriser: triangles in the pixel frame → the nearest surface per pixel, and per-vertex values
interpolated over it.

Pure numpy, no per-triangle Python loop: every triangle's bounding box is expanded into candidate pixels in
one batch, candidates inside the triangle are kept, and the nearest one per pixel wins (a z-buffer).

Pixel frame: 0-based pixel centres, x to the right (column), y down (row). Depth: larger is nearer
(the BFM's z points towards the viewer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmstn.runtime import as_numpy

__all__ = ["Fragments", "composite", "rasterize", "render_colours"]



@dataclass
class Fragments:
    """The nearest surface per pixel.

    Attributes:
        face: int64 array (H, W), index of the visible triangle, −1 for background.
        bary: float64 array (H, W, 3), barycentric weights of that triangle's vertices (0 on background).
        depth: float64 array (H, W), interpolated depth of the visible surface (−inf on background).
    """

    face: np.ndarray
    bary: np.ndarray
    depth: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """bool array (H, W): True where a triangle covers the pixel."""
        return self.face >= 0


def rasterize(points, triangles, height: int, width: int, *, cull_backfaces: bool = False,
              max_candidates: int = 4_000_000) -> Fragments:
    """Rasterise triangles given in the pixel frame with a z-buffer.

    Args:
        points: (N, 3) vertex positions: column x, row y (0-based pixel centres, y down) and depth
            (larger = nearer).
        triangles: (F, 3) vertex indices, counter-clockwise seen from the front (in the y-up frame of the
            model; in this y-down pixel frame they appear clockwise).
        height: image height H in pixels.
        width: image width W in pixels.
        cull_backfaces: drop triangles facing away from the viewer before rasterising.
        max_candidates: bound on candidate pixels processed at once (memory control).

    Returns:
        :class:`Fragments` with the visible triangle, barycentrics and depth per pixel.
    """
    p = as_numpy(points).astype(np.float64)
    f = as_numpy(triangles).astype(np.int64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {p.shape}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"triangles must have shape (F, 3), got {f.shape}")
    a, b, c = p[f[:, 0]], p[f[:, 1]], p[f[:, 2]]
    # Signed area in the y-down frame: front faces (CCW in y-up) have negative area here.
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    keep = np.abs(area) > 1e-12
    if cull_backfaces:
        keep &= area < 0
    fid = np.flatnonzero(keep)
    xs = np.stack([a[fid, 0], b[fid, 0], c[fid, 0]], 1)
    ys = np.stack([a[fid, 1], b[fid, 1], c[fid, 1]], 1)
    x0 = np.clip(np.ceil(xs.min(1)), 0, width - 1).astype(np.int64)
    x1 = np.clip(np.floor(xs.max(1)), 0, width - 1).astype(np.int64)
    y0 = np.clip(np.ceil(ys.min(1)), 0, height - 1).astype(np.int64)
    y1 = np.clip(np.floor(ys.max(1)), 0, height - 1).astype(np.int64)
    inside_img = (xs.max(1) >= 0) & (xs.min(1) <= width - 1) & (ys.max(1) >= 0) & (ys.min(1) <= height - 1)
    w = np.where(inside_img, x1 - x0 + 1, 0).clip(min=0)
    h = np.where(inside_img, y1 - y0 + 1, 0).clip(min=0)
    n_cand = w * h

    zbuf = np.full(height * width, -np.inf)
    best = np.full(height * width, -1, dtype=np.int64)
    best_bary = np.zeros((height * width, 3))

    # Process triangles in chunks so the candidate arrays stay bounded.
    order = np.argsort(n_cand)
    cum = np.cumsum(n_cand[order])
    start = 0
    while start < len(order):
        stop = int(np.searchsorted(cum, (cum[start - 1] if start else 0) + max_candidates, side="right"))
        stop = max(stop, start + 1)
        sel = order[start:stop]
        start = stop
        counts = n_cand[sel]
        total = int(counts.sum())
        if total == 0:
            continue
        tri = np.repeat(sel, counts)
        local = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        px = x0[tri] + local % w[tri]
        py = y0[tri] + local // w[tri]
        g = fid[tri]
        ax_, ay_ = a[g, 0], a[g, 1]
        e1x, e1y = b[g, 0] - ax_, b[g, 1] - ay_
        e2x, e2y = c[g, 0] - ax_, c[g, 1] - ay_
        dx, dy = px - ax_, py - ay_
        inv = 1.0 / area[g]
        l1 = (dx * e2y - dy * e2x) * inv
        l2 = (e1x * dy - e1y * dx) * inv
        l0 = 1.0 - l1 - l2
        tol = -1e-9
        ok = (l0 >= tol) & (l1 >= tol) & (l2 >= tol)
        if not ok.any():
            continue
        l0, l1, l2, px, py, g = l0[ok], l1[ok], l2[ok], px[ok], py[ok], g[ok]
        z = l0 * a[g, 2] + l1 * b[g, 2] + l2 * c[g, 2]
        pix = py * width + px
        # Nearest candidate per pixel within the chunk, then merge with the running buffer.
        srt = np.lexsort((z, pix))
        last = np.r_[pix[srt][1:] != pix[srt][:-1], True]
        win = srt[last]
        wp = pix[win]
        better = z[win] > zbuf[wp]
        wp, win = wp[better], win[better]
        zbuf[wp] = z[win]
        best[wp] = g[win]
        best_bary[wp] = np.stack([l0[win], l1[win], l2[win]], 1)
    return Fragments(
        face=best.reshape(height, width),
        bary=best_bary.reshape(height, width, 3),
        depth=zbuf.reshape(height, width),
    )


def render_colours(fragments: Fragments, triangles, vertex_values, background=0.0) -> np.ndarray:
    """Interpolate per-vertex values (N, C) over the visible triangles → image (H, W, C)."""
    f = as_numpy(triangles).astype(np.int64)
    vals = as_numpy(vertex_values).astype(np.float64)
    h, w = fragments.face.shape
    out = np.empty((h, w, vals.shape[1]))
    out[...] = background
    m = fragments.mask
    tri = f[fragments.face[m]]  # (P, 3)
    out[m] = np.einsum("pk,pkc->pc", fragments.bary[m], vals[tri])
    return out


def composite(image: np.ndarray, mask: np.ndarray, background: np.ndarray | None) -> np.ndarray:
    """``image`` (H, W, C) where ``mask`` (H, W) is True, ``background`` (H, W, C) elsewhere (as is when None)."""
    if background is None:
        return image
    return np.where(mask[..., None], image, background)
