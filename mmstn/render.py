"""A vectorised z-buffer rasteriser for orthographic renderings of a morphable model.

Used to make images with exact ground truth (the synthetic data, notebook figures) and as the exact
occlusion reference for the back-face visibility approximation. Pure numpy, no per-triangle Python loop:
every triangle's bounding box is expanded into candidate pixels in one batch, candidates inside the
triangle are kept, and the nearest one per pixel wins.

Pixel frame: 0-based pixel centres, x to the right (column), y down (row). Depth: larger is nearer
(the BFM's z points towards the viewer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "Fragments",
    "Lighting",
    "RenderedFace",
    "pose_vertices",
    "posed_for_raster",
    "rasterize",
    "render_colours",
    "render_face",
]


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


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
    p = _np(points).astype(np.float64)
    f = _np(triangles).astype(np.int64)
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
    f = _np(triangles).astype(np.int64)
    vals = _np(vertex_values).astype(np.float64)
    h, w = fragments.face.shape
    out = np.empty((h, w, vals.shape[1]))
    out[...] = background
    m = fragments.mask
    tri = f[fragments.face[m]]  # (P, 3)
    out[m] = np.einsum("pk,pkc->pc", fragments.bary[m], vals[tri])
    return out


# ------------------------------------------------------------------------------ faces with known θ
@dataclass(frozen=True)
class Lighting:
    """Ambient + Lambert lighting of a rendered face.

    Attributes:
        ambient: ambient term.
        diffuse: Lambert term weight.
        direction: direction *towards* the light in the camera frame (x right, y up, z to the viewer).
    """

    ambient: float = 0.45
    diffuse: float = 0.6
    direction: tuple[float, float, float] = (0.3, 0.4, 1.0)


@dataclass
class RenderedFace:
    """One orthographic rendering of a morphable face with exact ground truth.

    Attributes:
        image: float32 tensor (3, H, W), RGB in [0, 1].
        mask: bool array (H, W), True on the face.
        points: tensor (N, 2), every vertex in the label frame (1-based column, y up).
        visible: bool array (N,), exact (z-buffer) visibility of every vertex.
        fragments: the rasterisation (visible triangle and barycentrics per pixel).
    """

    image: torch.Tensor
    mask: np.ndarray
    points: torch.Tensor
    visible: np.ndarray
    fragments: Fragments


def pose_vertices(model, theta: torch.Tensor, scale_base: str | float = "exp"):
    """Apply θ = (r, t, logs, α) to any morphable model (not only grid models).

    Args:
        model: a :class:`~mmstn.models.MorphableModel`.
        theta: (B, 6 + D) with D ≤ the model's components.
        scale_base: ``"exp"`` (paper) or ``"0.99"`` (authors' code).

    Returns:
        (points (B, N, 2) in the label frame, rotated shape (B, N, 3) in mm, scale (B, 1) px/mm).
    """
    from mmstn.layers.rotate import rotate_points
    from mmstn.layers.rotation import rodrigues
    from mmstn.layers.scale import log_scale_to_scale
    from mmstn.stn import split_theta

    theta = torch.as_tensor(theta, dtype=model.dtype)
    d = theta.shape[-1] - 6
    r, t, logs, alpha = split_theta(theta, d)
    rotated = rotate_points(model.shape(alpha), rodrigues(r, "autograd"), "autograd")
    s = log_scale_to_scale(logs, scale_base, "autograd")
    points = rotated[..., :2] * s[:, None, :] + t[:, None, :]
    return points, rotated, s


def posed_for_raster(model, theta: torch.Tensor, image_size: int, scale_base: str | float = "exp"):
    """Pose one face for rasterisation.

    Args:
        model: the morphable model; theta: (1, 6 + D); image_size: H = W; scale_base: see :func:`pose_vertices`.

    Returns:
        (points (1, N, 2) label frame, rotated (1, N, 3) mm, pixel-frame points with depth as a float64 array
        (N, 3) for :func:`rasterize`, unit vertex normals (N, 3) float64 of the rotated shape).
    """
    from mmstn.layers.grid import labels_to_pixels
    from mmstn.layers.visibility import vertex_normals

    with torch.no_grad():
        points, rotated, s = pose_vertices(model, theta, scale_base)
        pix = labels_to_pixels(points[0].double(), image_size)
        depth = rotated[0, :, 2].double() * s[0].double()
        p3 = torch.cat([pix, depth[:, None]], 1).numpy()
        normals = vertex_normals(rotated.double(), model.triangles, "area", "accumulate")[0]
        normals = normals / normals.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return points, rotated, p3, normals


def render_face(
    model,
    theta: torch.Tensor,
    *,
    image_size: int = 224,
    albedo: torch.Tensor | np.ndarray | None = None,
    lighting: Lighting = Lighting(),
    background: torch.Tensor | np.ndarray | None = None,
    scale_base: str | float = "exp",
) -> RenderedFace:
    """Render one face of ``model`` posed by θ with a z-buffer: orthographic, Lambert-lit, per-vertex colour.

    Args:
        model: the morphable model (its ``colour`` is the default albedo; grey when it has none).
        theta: (6 + D,) or (1, 6 + D): r (rad), t (label frame px), logs, α.
        image_size: H = W in pixels.
        albedo: optional (N, 3) per-vertex albedo in [0, 1] (e.g. a subject's texture).
        lighting: :class:`Lighting`.
        background: optional (3, H, W) or (H, W, 3) image in [0, 1]; black by default.
        scale_base: how logs maps to the scale (see :func:`pose_vertices`).

    Returns:
        :class:`RenderedFace`.
    """
    theta = torch.as_tensor(theta).reshape(1, -1)
    points, rotated, p3, normals = posed_for_raster(model, theta, image_size, scale_base)
    frag = rasterize(p3, model.triangles, image_size, image_size)
    light = np.asarray(lighting.direction, dtype=np.float64)
    light /= np.linalg.norm(light)
    lambert = np.clip(normals.numpy() @ light, 0.0, 1.0)
    if albedo is None:
        albedo = model.colour if model.colour is not None else torch.full((model.n_vertices, 3), 0.75)
    shade = lighting.ambient + lighting.diffuse * lambert
    vertex_rgb = np.clip(_np(albedo).astype(np.float64) * shade[:, None], 0.0, 1.0)
    if background is None:
        bg = np.zeros((image_size, image_size, 3))
    else:
        bg = _np(background).astype(np.float64)
        if bg.shape[0] == 3 and bg.shape[-1] != 3:
            bg = bg.transpose(1, 2, 0)
        if bg.shape != (image_size, image_size, 3):
            raise ValueError(f"background must be ({image_size}, {image_size}, 3) or (3, H, W), got {bg.shape}")
    img = render_colours(frag, model.triangles, vertex_rgb)
    img = np.where(frag.mask[..., None], img, bg)
    # exact visibility: the vertex is the front-most surface at its position (ray cast towards the viewer)
    from mmstn.layers.visibility import occlusion_visibility

    inside = (p3[:, 0] >= 0) & (p3[:, 0] <= image_size - 1) & (p3[:, 1] >= 0) & (p3[:, 1] <= image_size - 1)
    visible = occlusion_visibility(rotated[0].double(), model.triangles, backface_culling=True).numpy() & inside
    return RenderedFace(
        image=torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32)),
        mask=frag.mask,
        points=points[0],
        visible=visible,
        fragments=frag,
    )
