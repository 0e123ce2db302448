"""A small, exactly mirror-symmetric disk mesh for tests and benchmarks of the UV chapter.

The left half of a disk of radius ``radius`` mm is filled with jittered grid points, its boundary with points on
the semicircle and on the midline x = 0; a Delaunay triangulation of that half is mirrored to the right
(winding swapped so both halves stay counter-clockwise seen from the front) and lifted to a dome with a nose
bump. Midline vertices have x = 0 exactly and are the fixed points of the mirror map.

This is independent of :mod:`mmstn.models.builtin` (the project's synthetic face model) so that the UV code can
be tested on a mesh whose construction it controls.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import Delaunay

from mmstn.models.morphable import MorphableModel

__all__ = ["symmetric_disk_mesh", "symmetric_disk_model"]


def symmetric_disk_mesh(
    n_vertices: int = 2000, seed: int = 0, radius: float = 80.0, jitter: float = 0.3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An exactly mirror-symmetric triangulated dome.

    Args:
        n_vertices: approximate number of vertices of the whole mesh.
        seed: NumPy seed of the jitter.
        radius: disk radius in mm.
        jitter: interior point jitter as a fraction of the point spacing.

    Returns:
        V (N, 3) float64 mm, F (F, 3) int64 counter-clockwise seen from +z, mirror (N,) int64 involution.
        Vertex order: left vertices (x < 0), then the midline (x = 0, bottom to top), then the mirrored left.
    """
    rng = np.random.default_rng(seed)
    R = float(radius)
    h = R * np.sqrt(np.pi / max(int(n_vertices), 20))
    m = round(2 * R / h) + 1
    mid = np.stack([np.zeros(m), np.linspace(-R, R, m)], axis=1)
    n_arc = max(round(np.pi * R / h) - 1, 3)
    ang = np.linspace(np.pi / 2, 3 * np.pi / 2, n_arc + 2)[1:-1]
    arc = R * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    g = np.arange(-R, R + h, h)
    gx, gy = np.meshgrid(g, g, indexing="ij")
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
    pts[:, 1] += 0.5 * h * (np.round(pts[:, 0] / h) % 2)  # hexagonal-ish rows
    pts += rng.uniform(-jitter * h, jitter * h, size=pts.shape)
    keep = (pts[:, 0] < -0.5 * h) & (np.linalg.norm(pts, axis=1) < R - 0.5 * h)
    inner = pts[keep]
    left2 = np.concatenate([inner, arc])
    nl = left2.shape[0]
    half2 = np.concatenate([left2, mid])
    tri = Delaunay(half2).simplices.astype(np.int64)
    a = half2[tri[:, 1]] - half2[tri[:, 0]]
    b = half2[tri[:, 2]] - half2[tri[:, 0]]
    area = 0.5 * (a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])
    tri = tri[np.abs(area) > 1e-9 * h * h]
    area = area[np.abs(area) > 1e-9 * h * h]
    tri[area < 0] = tri[area < 0][:, [0, 2, 1]]
    # full mesh: left (0..nl-1), midline (nl..nl+m-1), right (nl+m..)
    right2 = left2 * np.array([-1.0, 1.0])
    P = np.concatenate([left2, mid, right2])
    mirror = np.concatenate([np.arange(nl) + nl + m, np.arange(nl, nl + m), np.arange(nl)]).astype(np.int64)
    tri_r = mirror[tri][:, [0, 2, 1]]
    F = np.concatenate([tri, tri_r])
    x, y = P[:, 0], P[:, 1]
    r2 = (x**2 + y**2) / R**2
    z = 0.45 * R * (1.0 - r2) + 0.3 * R * np.exp(-(x**2 + (y + 0.05 * R) ** 2) / (2 * (0.12 * R) ** 2))
    z += 0.04 * R * np.cos(3.0 * y / R) * np.exp(-(x**2) / (0.5 * R) ** 2)
    V = np.stack([x, y, z], axis=1)
    return V, F, mirror


_LANDMARKS_LEFT = {  # AFLW-21 positions (x, y) as fractions of the radius, viewer's left half
    0: (-0.56, 0.38),
    1: (-0.38, 0.42),
    2: (-0.15, 0.38),  # brows
    6: (-0.50, 0.19),
    7: (-0.35, 0.20),
    8: (-0.20, 0.19),  # eyes
    12: (-0.95, 0.0),
    13: (-0.15, -0.12),
    17: (-0.28, -0.44),  # ear, nose left, mouth left
}
_LANDMARKS_MID = {14: -0.06, 18: -0.44, 20: -0.85}  # nose centre, mouth centre, chin (y / radius)
_PAIRS = {0: 5, 1: 4, 2: 3, 6: 11, 7: 10, 8: 9, 12: 16, 13: 15, 17: 19}


def symmetric_disk_model(
    n_vertices: int = 2000, seed: int = 0, radius: float = 80.0, n_components: int = 6
) -> MorphableModel:
    """A :class:`MorphableModel` on :func:`symmetric_disk_mesh` with a smooth random basis and colour.

    Basis components are smooth displacement fields of 1–4 mm RMS (so α ~ N(0, I) gives face-sized changes),
    the colour is a smooth RGB field in [0, 1] with a 2-component texture basis, and ``landmarks["aflw21"]``
    holds 21 mirror-consistent vertices at face-like positions.
    """
    V, F, mirror = symmetric_disk_mesh(n_vertices, seed, radius)
    rng = np.random.default_rng(seed + 1)
    x, y = V[:, 0] / radius, V[:, 1] / radius
    basis = []
    for k in range(n_components):
        fx, fy, ph = rng.uniform(0.5, 2.5), rng.uniform(0.5, 2.5), rng.uniform(0, 2 * np.pi, size=3)
        field = np.stack(
            [np.sin(fx * np.pi * x + ph[i]) * np.cos(fy * np.pi * y + ph[(i + 1) % 3]) for i in range(3)], axis=1
        )
        field *= (4.0 / (k + 1)) / np.sqrt(np.mean(np.sum(field**2, axis=1)))
        basis.append(field)
    colour = np.stack([0.6 + 0.25 * np.cos(2 * x), 0.45 + 0.2 * np.sin(1.5 * y + 0.3), 0.35 + 0.2 * x * y], axis=1)
    tex = np.stack([0.05 * np.stack([np.cos(3 * y)] * 3, axis=1), 0.03 * np.stack([x, y, x * y], axis=1)])
    xy = V[:, :2] / radius
    left = np.flatnonzero(V[:, 0] < 0)
    mid = np.flatnonzero(mirror == np.arange(len(V)))
    lm = np.full(21, -1, dtype=np.int64)
    for i, p in _LANDMARKS_LEFT.items():
        j = left[np.argmin(np.sum((xy[left] - np.asarray(p)) ** 2, axis=1))]
        lm[i] = j
        lm[_PAIRS[i]] = mirror[j]
    for i, yy in _LANDMARKS_MID.items():
        lm[i] = mid[np.argmin(np.abs(xy[mid, 1] - yy))]
    return MorphableModel(
        name="symmetric disk",
        mean=torch.as_tensor(V, dtype=torch.float32),
        basis=torch.as_tensor(np.stack(basis), dtype=torch.float32),
        n_identity=n_components,
        triangles=torch.as_tensor(F),
        landmarks={"aflw21": torch.as_tensor(lm)},
        colour=torch.as_tensor(np.clip(colour, 0, 1), dtype=torch.float32),
        texture_basis=torch.as_tensor(tex, dtype=torch.float32),
        mirror=torch.as_tensor(mirror),
        licence="Apache-2.0 (generated in code)",
        source="built in code (mmstn.uv.synthetic)",
    )
