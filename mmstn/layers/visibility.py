"""Self-occlusion by back-face testing, the visibility mask, and an exact occlusion reference.

The authors' visibility layer (``vl_nnvisibilitymask.m`` + ``util/visibilityNotSelf.m``) computes
per-vertex normals of the *rotated* 3-D shape X′ and calls a vertex visible when its normal points
towards the camera. The orthographic camera looks along −z, so with our counter-clockwise winding
(:mod:`mmstn.models.morphable`) and the standard face normal n_f = (p1 − p0) × (p2 − p0):

    visible ⇔ n_z > 0   (``strict=True``, our default)      or   n_z ≥ 0  (``strict=False``, the authors')

The authors' reversed cross product on their clockwise faces is the same vector, so the two tests
differ only where n_z is exactly 0. The mask carries no gradient (the authors' backward returns zeros);
everything here runs under ``torch.no_grad()``.

Vertex normals, options
-----------------------
``weighting`` (how the incident faces' normals are combined):

* ``"area"``: Σ_f n_f with the unnormalised n_f (|n_f| = 2·area) — area weighting;
* ``"angle"``: Σ_f φ_f(v)·n_f/|n_f|, φ the corner angle at v — the usual angle weighting;
* ``"angle_area"``: Σ_f φ_f(v)·n_f — what the authors' code forms (angle × unnormalised normal).

``rule``:

* ``"accumulate"``: the sums above (the sound vertex normal);
* ``"last_write"``: the authors' ``util/visibilityNotSelf.m``. It accumulates with one statement per
  corner slot k, ``N(tri(:, k), :) = N(tri(:, k), :) + w_k``. Inside one statement the right-hand side is
  read before any write, so for a vertex that sits in slot k of several faces only the *last* such face
  (in face order) survives; across the three statements the contributions add. Each vertex normal is
  therefore Σ_k w_k(last face with the vertex in slot k). The authors' faces are ours with corners 1 and 2
  swapped; since the three slots are summed, the result does not depend on the order in which they are
  written (``corner_order`` is kept for the layer's options, :data:`AUTHORS_CORNER_ORDER`), only on the
  face order.

For a visibility *mask* only the sign of n_z matters. With area weighting n_z depends only on the x
and y coordinates: it is twice the signed area of each projected triangle, summed per vertex. For a
model whose triangles are :func:`~mmstn.layers.grid.grid_triangles` (in any order / cyclic rotation)
the sums are done with slices of the (G, G) layout instead of scatter/gather — see
:func:`grid_vertex_normals`. They equal the mesh formula exactly (same additions, other order).
With ``rule="last_write"`` the weights do matter for the sign, since the three surviving corners can come
from faces of opposite orientation; the mask takes the sign from the faces' n_z where they agree and
evaluates the weighted sum only where they do not (:meth:`VisibilityMask.visible`), and
:func:`grid_last_write_normal_z` gives the full values on a grid by slices.

Exact reference
---------------
:func:`occlusion_visibility` casts a ray from every vertex towards the camera (+z) and reports whether
it leaves the mesh without hitting another triangle (a z-buffer at the vertices, exact, in NumPy).
With ``backface_culling=True`` it also requires n_z > 0, i.e. "seen from the front and not hidden".
:func:`mislabelled_fraction` compares a back-face mask with it (the paper: about 5 % mislabelled).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from mmstn.errors import ShapeError
from mmstn.layers._common import check_tensor
from mmstn.layers.grid import grid_triangles

__all__ = [
    "AUTHORS_CORNER_ORDER",
    "Rule",
    "VisibilityMask",
    "Weighting",
    "backface_visibility",
    "corner_angles",
    "face_normals",
    "grid_last_write_normal_z",
    "grid_layout",
    "grid_normal_z",
    "grid_vertex_normals",
    "last_write_sources",
    "mislabelled_fraction",
    "occlusion_visibility",
    "ray_blocked",
    "unoccluded",
    "vertex_normals",
    "visibility_mask",
]

Weighting = Literal["area", "angle", "angle_area"]
Rule = Literal["accumulate", "last_write"]
_WEIGHTINGS = ("area", "angle", "angle_area")
_RULES = ("accumulate", "last_write")

#: The order in which the authors' code writes the corners, expressed on our (CCW) faces.
AUTHORS_CORNER_ORDER: tuple[int, int, int] = (0, 2, 1)


def _check_options(weighting: str, rule: str, corner_order: tuple[int, ...]) -> None:
    if weighting not in _WEIGHTINGS:
        raise ValueError(f"weighting must be one of {_WEIGHTINGS}, got {weighting!r}")
    if rule not in _RULES:
        raise ValueError(f"rule must be one of {_RULES}, got {rule!r}")
    if sorted(corner_order) != [0, 1, 2]:
        raise ValueError(f"corner_order must be a permutation of (0, 1, 2), got {corner_order}")


def _check_faces(faces: torch.Tensor, n: int) -> torch.Tensor:
    faces = torch.as_tensor(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or torch.is_floating_point(faces):
        raise ShapeError(f"faces must be an integer tensor of shape (F, 3), got {tuple(faces.shape)}")
    faces = faces.long()
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= n):
        raise ShapeError(f"faces index vertices outside [0, {n}) (0-based indices expected)")
    return faces


# ----------------------------------------------------------------------------------- mesh formulas
def face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unnormalised face normals n_f = (p1 − p0) × (p2 − p0), |n_f| = 2·area.

    Args:
        vertices: (B, N, 3).
        faces: (F, 3) int64, 0-based, counter-clockwise seen from the front.

    Returns:
        (B, F, 3); towards +z for faces that face the camera.
    """
    b = vertices.shape[0]
    p = vertices.index_select(1, faces.reshape(-1)).view(b, -1, 3, 3)
    return torch.linalg.cross(p[:, :, 1] - p[:, :, 0], p[:, :, 2] - p[:, :, 0], dim=-1)


def _angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle between vectors (..., 3), in [0, π], via atan2(|a × b|, a·b) (accurate at 0 and π)."""
    return torch.atan2(torch.linalg.cross(a, b, dim=-1).norm(dim=-1), (a * b).sum(-1))


def corner_angles(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Interior angles of every triangle at its three corners.

    Args:
        vertices: (B, N, 3).
        faces: (F, 3) int64.

    Returns:
        (B, F, 3) radians; column k is the angle at corner k (the three sum to π).
    """
    b = vertices.shape[0]
    p = vertices.index_select(1, faces.reshape(-1)).view(b, -1, 3, 3)
    p0, p1, p2 = p.unbind(2)
    return torch.stack([_angle(p1 - p0, p2 - p0), _angle(p2 - p1, p0 - p1), _angle(p0 - p2, p1 - p2)], -1)


def _corner_weighted(vertices: torch.Tensor, faces: torch.Tensor, weighting: str) -> torch.Tensor:
    """(B, F, 3 corners, 3) weighted normal contributions of every face corner."""
    n = face_normals(vertices, faces)
    if weighting == "area":
        return n[:, :, None, :].expand(-1, -1, 3, -1)
    ang = corner_angles(vertices, faces)
    if weighting == "angle":
        n = n / n.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(n.dtype).tiny)
    return ang[..., None] * n[:, :, None, :]


def _corner_weighted_z(vertices: torch.Tensor, faces: torch.Tensor, weighting: str) -> torch.Tensor:
    """(B, 3F) z component of :func:`_corner_weighted`, flat index 3·face + corner.

    The mask path needs only z, so it skips the full (B, F, 3, 3) tensor: every corner angle of a face is
    atan2(|n_f|, e·e′) with the same |n_f| = 2·area, so one cross product per face serves all three corners.
    """
    b = vertices.shape[0]
    p = vertices.index_select(1, faces.reshape(-1)).view(b, -1, 3, 3)
    p0, p1, p2 = p.unbind(2)
    e01, e02, e12 = p1 - p0, p2 - p0, p2 - p1
    n = torch.linalg.cross(e01, e02, dim=-1)
    nz = n[..., 2]
    if weighting == "area":
        return nz[..., None].expand(-1, -1, 3).reshape(b, -1)
    norm = n.norm(dim=-1)
    dots = torch.stack([(e01 * e02).sum(-1), -(e01 * e12).sum(-1), (e02 * e12).sum(-1)], -1)  # corners 0, 1, 2
    ang = torch.atan2(norm[..., None].expand_as(dots), dots)
    if weighting == "angle":
        nz = nz / norm.clamp_min(torch.finfo(n.dtype).tiny)
    return (ang * nz[..., None]).reshape(b, -1)


def last_write_sources(
    faces: torch.Tensor, n_vertices: int, corner_order: tuple[int, int, int] = (0, 1, 2)
) -> torch.Tensor:
    """For each corner slot and vertex, the face corner that survives one MATLAB indexed-add statement.

    ``N(tri(:, k), :) = N(tri(:, k), :) + w_k`` keeps, for a vertex repeated in column k, the write of the
    *last* face in face order; the three statements (one per slot, in ``corner_order``) then add up.

    Args:
        faces: (F, 3) int64.
        n_vertices: N.
        corner_order: the order of the slots (rows of the result); it does not change the sum.

    Returns:
        (3, N) int64 flat indices 3·face + corner, row j for slot ``corner_order[j]``; −1 where the vertex
        is in no face at that slot.
    """
    f = np.asarray(torch.as_tensor(faces).cpu().numpy(), dtype=np.int64)
    src = np.full((3, n_vertices), -1, dtype=np.int64)
    for j, k in enumerate(corner_order):
        last = np.full(n_vertices, -1, dtype=np.int64)
        np.maximum.at(last, f[:, k], np.arange(f.shape[0], dtype=np.int64))  # last face with v at slot k
        hit = last >= 0
        src[j, hit] = 3 * last[hit] + k
    return torch.from_numpy(src).to(torch.as_tensor(faces).device)


def vertex_normals(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    weighting: Weighting = "area",
    rule: Rule = "accumulate",
    corner_order: tuple[int, int, int] = (0, 1, 2),
) -> torch.Tensor:
    """Per-vertex normals of a triangle mesh (general mesh formula, scatter/gather).

    Args:
        vertices: (B, N, 3).
        faces: (F, 3) int64, 0-based, CCW seen from the front.
        weighting: ``"area"``, ``"angle"`` or ``"angle_area"`` (module docstring).
        rule: ``"accumulate"`` (sum over incident faces) or ``"last_write"`` (the authors' loop).
        corner_order: corner write order for ``"last_write"``.

    Returns:
        (B, N, 3) unnormalised vertex normals (zero for vertices in no face).
    """
    check_tensor("vertices", vertices, 3, (3,))
    _check_options(weighting, rule, corner_order)
    faces = _check_faces(faces, vertices.shape[1])
    b, n = vertices.shape[:2]
    contrib = _corner_weighted(vertices, faces, weighting)  # (B, F, 3, 3)
    if rule == "accumulate":
        out = vertices.new_zeros(b, n, 3)
        for k in range(3):
            out.index_add_(1, faces[:, k], contrib[:, :, k])
        return out
    src = last_write_sources(faces, n, corner_order)  # (3, N)
    flat = contrib.reshape(b, -1, 3)
    out = vertices.new_zeros(b, n, 3)
    for row in src:  # one indexed-add statement per slot; their contributions add
        out = out + flat.index_select(1, row.clamp_min(0)) * (row >= 0)[None, :, None]
    return out


# ---------------------------------------------------------------------------------- grid formulas
def grid_layout(faces: torch.Tensor, grid_size: int) -> Literal["exact", "same_set"] | None:
    """Whether ``faces`` are the canonical grid triangulation (:func:`~mmstn.layers.grid.grid_triangles`).

    Returns:
        ``"exact"`` if identical (same order and corners), ``"same_set"`` if the same oriented triangles
        in another order or cyclic corner rotation, ``None`` otherwise (e.g. clockwise faces).
    """
    g = int(grid_size)
    faces = torch.as_tensor(faces).long().cpu()
    ref = grid_triangles(g)
    if faces.shape != ref.shape:
        return None
    if torch.equal(faces, ref):
        return "exact"

    def canon(f: torch.Tensor) -> torch.Tensor:
        shift = f.argmin(1)
        idx = (shift[:, None] + torch.arange(3)[None]) % 3
        r = f.gather(1, idx)
        key = (r[:, 0] * g * g + r[:, 1]) * g * g + r[:, 2]
        return key.sort().values

    return "same_set" if torch.equal(canon(faces), canon(ref)) else None


def _cells(p: torch.Tensor):
    """TL, BL, TR, BR corner views of a (B, G, G, ...) grid, each (B, G−1, G−1, ...)."""
    return p[:, :-1, :-1], p[:, 1:, :-1], p[:, :-1, 1:], p[:, 1:, 1:]


def _scatter_cells(out: torch.Tensor, tl, bl, tr, br) -> torch.Tensor:
    """Add per-cell corner contributions (each (B, G−1, G−1, ...)) into a (B, G, G, ...) tensor."""
    out[:, :-1, :-1] += tl
    out[:, 1:, :-1] += bl
    out[:, :-1, 1:] += tr
    out[:, 1:, 1:] += br
    return out


def _grid_face_normal_z(xy: torch.Tensor, g: int) -> tuple[torch.Tensor, torch.Tensor]:
    """z of the unnormalised normals of the two triangles of every cell: (B, G−1, G−1) each."""
    b = xy.shape[0]
    x = xy[..., 0].reshape(b, g, g)
    y = xy[..., 1].reshape(b, g, g)
    xtl, xbl, xtr, xbr = _cells(x)
    ytl, ybl, ytr, ybr = _cells(y)
    # T1 = (TL, BL, TR): (BL − TL) × (TR − TL);  T2 = (BR, TR, BL): (TR − BR) × (BL − BR)
    n1 = (xbl - xtl) * (ytr - ytl) - (ybl - ytl) * (xtr - xtl)
    n2 = (xtr - xbr) * (ybl - ybr) - (ytr - ybr) * (xbl - xbr)
    return n1, n2


def grid_normal_z(vertices: torch.Tensor, grid_size: int) -> torch.Tensor:
    """z of the area-weighted vertex normals of a grid model, from slices of the (G, G) layout.

    Uses only x and y (n_z is twice the signed projected area), so 2-D projected points work too.

    Args:
        vertices: (B, N, 3) or (B, N, 2), N = G², canonical grid triangulation.
        grid_size: G.

    Returns:
        (B, N): equal to ``vertex_normals(vertices, grid_triangles(G))[..., 2]``.
    """
    g = int(grid_size)
    n1, n2 = _grid_face_normal_z(vertices, g)
    both = n1 + n2
    out = vertices.new_zeros(vertices.shape[0], g, g)
    return _scatter_cells(out, n1, both, both, n2).reshape(vertices.shape[0], g * g)


def _grid_cell_normals(vertices: torch.Tensor, grid_size: int):
    """G, B, the cell corners (TL, BL, TR, BR) and the unnormalised normals of the two triangles of every
    cell, T1 = (TL, BL, TR) and T2 = (BR, TR, BL), each (B, G − 1, G − 1, 3)."""
    check_tensor("vertices", vertices, 3, (3,))
    g = int(grid_size)
    b = vertices.shape[0]
    if vertices.shape[1] != g * g:
        raise ShapeError(f"vertices must hold G² = {g * g} points, got {vertices.shape[1]}")
    tl, bl, tr, br = _cells(vertices.reshape(b, g, g, 3))
    n1 = torch.linalg.cross(bl - tl, tr - tl, dim=-1)
    n2 = torch.linalg.cross(tr - br, bl - br, dim=-1)
    return g, b, (tl, bl, tr, br), n1, n2


def grid_vertex_normals(vertices: torch.Tensor, grid_size: int, weighting: Weighting = "area") -> torch.Tensor:
    """Accumulated vertex normals of a grid model (canonical triangulation) without scatter/gather.

    Args:
        vertices: (B, N, 3), N = G².
        grid_size: G.
        weighting: ``"area"``, ``"angle"`` or ``"angle_area"``.

    Returns:
        (B, N, 3), equal (to rounding) to ``vertex_normals(vertices, grid_triangles(G), weighting)``.
    """
    _check_options(weighting, "accumulate", (0, 1, 2))
    g, b, (tl, bl, tr, br), n1, n2 = _grid_cell_normals(vertices, grid_size)
    out = vertices.new_zeros(b, g, g, 3)
    if weighting == "area":
        both = n1 + n2
        return _scatter_cells(out, n1, both, both, n2).reshape(b, g * g, 3)
    a1 = (_angle(bl - tl, tr - tl), _angle(tr - bl, tl - bl), _angle(tl - tr, bl - tr))  # at TL, BL, TR
    a2 = (_angle(tr - br, bl - br), _angle(bl - tr, br - tr), _angle(br - bl, tr - bl))  # at BR, TR, BL
    if weighting == "angle":
        tiny = torch.finfo(vertices.dtype).tiny
        n1 = n1 / n1.norm(dim=-1, keepdim=True).clamp_min(tiny)
        n2 = n2 / n2.norm(dim=-1, keepdim=True).clamp_min(tiny)
    w = [a[..., None] for a in a1 + a2]
    return _scatter_cells(out, w[0] * n1, w[1] * n1 + w[5] * n2, w[2] * n1 + w[4] * n2, w[3] * n2).reshape(b, g * g, 3)


def grid_last_write_normal_z(
    vertices: torch.Tensor, grid_size: int, weighting: Weighting = "angle_area"
) -> torch.Tensor:
    """z of the ``rule="last_write"`` vertex normals of a grid model, from slices of the (G, G) layout.

    Only for faces exactly :func:`~mmstn.layers.grid.grid_triangles` (G) (same order): cell (r, c) holds
    faces 2·(r(G − 1) + c) = T1 = (TL, BL, TR) and the next one T2 = (BR, TR, BL). A vertex (r, c) appears
    in each slot of at most two faces, one T1 and one T2; the later of the two in face order survives:

    * slot 0: T1 of cell (r, c) (as TL), else T2 of cell (r − 1, c − 1) (as BR);
    * slot 1: T2 of cell (r, c − 1) (as TR), else T1 of cell (r − 1, c) (as BL);
    * slot 2: T1 of cell (r, c − 1) (as TR), else T2 of cell (r − 1, c) (as BL).

    (For G > 2 the first candidate is always the later face; for G = 2 the two never meet.) Each slot is
    filled by writing the earlier candidate, then the later one over it, and the three slots are added.

    Args:
        vertices: (B, G², 3) rotated vertices.
        grid_size: G.
        weighting: ``"area"``, ``"angle"`` or ``"angle_area"``.

    Returns:
        (B, G²): equal (to rounding) to ``vertex_normals(vertices, grid_triangles(G), weighting,
        "last_write")[..., 2]``.
    """
    _check_options(weighting, "last_write", (0, 1, 2))
    g, b, (tl, bl, tr, br), n1, n2 = _grid_cell_normals(vertices, grid_size)
    if weighting == "area":
        c1 = (n1[..., 2],) * 3
        c2 = (n2[..., 2],) * 3
    else:
        z1, z2 = n1[..., 2], n2[..., 2]
        if weighting == "angle":
            tiny = torch.finfo(vertices.dtype).tiny
            z1 = z1 / n1.norm(dim=-1).clamp_min(tiny)
            z2 = z2 / n2.norm(dim=-1).clamp_min(tiny)
        # corner angles in slot order: T1 at TL, BL, TR; T2 at BR, TR, BL
        c1 = tuple(a * z1 for a in (_angle(bl - tl, tr - tl), _angle(tr - bl, tl - bl), _angle(tl - tr, bl - tr)))
        c2 = tuple(a * z2 for a in (_angle(tr - br, bl - br), _angle(bl - tr, br - tr), _angle(br - bl, tr - bl)))
    out = vertices.new_zeros(b, g, g)
    for earlier, later in (
        ((slice(1, None), slice(1, None), c2[0]), (slice(None, -1), slice(None, -1), c1[0])),  # slot 0
        ((slice(1, None), slice(None, -1), c1[1]), (slice(None, -1), slice(1, None), c2[1])),  # slot 1
        ((slice(1, None), slice(None, -1), c2[2]), (slice(None, -1), slice(1, None), c1[2])),  # slot 2
    ):
        slot = vertices.new_zeros(b, g, g)
        for rows, cols, val in (earlier, later):  # the later face's write replaces the earlier one's
            slot[:, rows, cols] = val
        out += slot
    return out.reshape(b, g * g)


# ----------------------------------------------------------------------------------------- masks
def backface_visibility(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    weighting: Weighting = "area",
    rule: Rule = "accumulate",
    strict: bool = True,
    corner_order: tuple[int, int, int] = (0, 1, 2),
    grid_size: int | None = None,
) -> torch.Tensor:
    """Back-face visibility of every vertex: visible ⇔ n_z > 0 (``strict``) or n_z ≥ 0.

    Args:
        vertices: (B, N, 3) rotated vertices (camera looks along −z).
        faces: (F, 3) int64, CCW seen from the front.
        weighting, rule, corner_order: see :func:`vertex_normals`.
        strict: ``True`` for n_z > 0, ``False`` for the authors' n_z ≥ 0.
        grid_size: G, to allow the fast grid path when ``faces`` are the grid triangulation.

    Returns:
        (B, N) bool, no gradient.
    """
    layer = VisibilityMask(
        faces,
        grid_size,
        weighting=weighting,
        rule=rule,
        strict=strict,
        corner_order=corner_order,
        n_vertices=vertices.shape[1],
    )
    return layer.visible(vertices)


def visibility_mask(
    vertices: torch.Tensor,
    grid_size: int,
    faces: torch.Tensor | None = None,
    weighting: Weighting = "area",
    rule: Rule = "accumulate",
    strict: bool = True,
) -> torch.Tensor:
    """The visibility mask of a grid model as an image.

    Args:
        vertices: (B, G², 3) rotated vertices X′ (before projection).
        grid_size: G.
        faces: (F, 3); default :func:`~mmstn.layers.grid.grid_triangles` (G).
        weighting, rule, strict: see :func:`backface_visibility`.

    Returns:
        (B, 1, G, G) of 0/1 in the vertices' dtype, pixel (row, col) ↔ vertex row·G + col; no gradient.
    """
    faces = grid_triangles(grid_size, vertices.device) if faces is None else faces
    return VisibilityMask(faces, grid_size, weighting=weighting, rule=rule, strict=strict)(vertices)


class VisibilityMask(nn.Module):
    """The visibility-mask layer with its topology pre-processed once.

    Args:
        faces: (F, 3) int64, CCW seen from the front.
        grid_size: G when the model is a G×G grid model (enables the slice-based fast path and the
            image-shaped output); ``None`` for a general mesh (then only :meth:`visible` works).
        weighting, rule, strict, corner_order: see :func:`vertex_normals` / :func:`backface_visibility`.
        n_vertices: N, when ``grid_size`` is ``None`` (default: ``faces.max() + 1``).

    ``forward(vertices)``: (B, G², 3) → (B, 1, G, G) 0/1 mask, detached.
    """

    faces: torch.Tensor
    sources: torch.Tensor
    source_faces: torch.Tensor
    has_source: torch.Tensor

    def __init__(
        self,
        faces: torch.Tensor,
        grid_size: int | None = None,
        weighting: Weighting = "area",
        rule: Rule = "accumulate",
        strict: bool = True,
        corner_order: tuple[int, int, int] = (0, 1, 2),
        n_vertices: int | None = None,
    ) -> None:
        super().__init__()
        _check_options(weighting, rule, tuple(corner_order))
        faces = torch.as_tensor(faces)
        if grid_size is not None:
            n = int(grid_size) ** 2
        elif n_vertices is not None:
            n = int(n_vertices)
        else:
            n = int(faces.max()) + 1
        faces = _check_faces(faces, n)
        self.grid_size = None if grid_size is None else int(grid_size)
        self.n_vertices = n
        self.weighting, self.rule, self.strict = weighting, rule, bool(strict)
        self.corner_order = tuple(corner_order)
        self.layout = None if grid_size is None else grid_layout(faces, self.grid_size)
        self.register_buffer("faces", faces.clone(), persistent=False)
        src = last_write_sources(faces, n, self.corner_order) if rule == "last_write" else torch.empty(0).long()
        self.register_buffer("sources", src, persistent=False)  # (3, N): 3·face + corner per slot, −1 for none
        self.register_buffer("source_faces", src.clamp_min(0) // 3, persistent=False)
        self.register_buffer("has_source", src >= 0, persistent=False)

    def normal_z(self, vertices: torch.Tensor) -> torch.Tensor:
        """The z component of the chosen vertex normals, (B, N, 3) → (B, N); no gradient.

        For ``rule="last_write"`` it is the z of Σ_k w_k over the three surviving face corners (one per
        slot): the corner weights differ between the slots, so they are needed for the sign as well.
        """
        check_tensor("vertices", vertices, 3, (3,))
        if vertices.shape[1] != self.n_vertices:
            raise ShapeError(f"vertices must hold N = {self.n_vertices} points, got {vertices.shape[1]}")
        with torch.no_grad():
            v = vertices.detach()
            g = self.grid_size
            if self.rule == "last_write":
                if self.layout == "exact":
                    return grid_last_write_normal_z(v, g, self.weighting)
                contrib_z = _corner_weighted_z(v, self.faces, self.weighting)  # (B, 3F)
                out = v.new_zeros(v.shape[0], self.n_vertices)
                for row, ok in zip(self.sources, self.has_source, strict=True):
                    out = out + contrib_z.index_select(1, row.clamp_min(0)) * ok
                return out
            if self.layout is not None:
                if self.weighting == "area":
                    return grid_normal_z(v, g)
                return grid_vertex_normals(v, g, self.weighting)[..., 2]
            return vertex_normals(v, self.faces, self.weighting, "accumulate")[..., 2]

    def _last_write_sign_z(self, v: torch.Tensor) -> torch.Tensor:
        """(B, N) with the sign of the ``last_write`` n_z everywhere, and its exact value where it needs one.

        The corner weights are ≥ 0 (and > 0 on a face with n_z ≠ 0), so where the (up to three) surviving
        faces of a vertex agree in the sign of their n_z, that is the sign of the weighted sum: ±1 or 0 is
        returned. Only where they disagree (a thin band along the silhouette) are the weighted contributions
        computed, for those vertices' surviving corners alone, in the order :meth:`normal_z` adds them.
        """
        b = v.shape[0]
        if self.layout == "exact":
            n1, n2 = _grid_face_normal_z(v, self.grid_size)
            face_z = torch.stack([n1, n2], -1).reshape(b, -1)  # (B, F) in face order
        else:
            xy = v[..., :2].index_select(1, self.faces.reshape(-1)).view(b, -1, 3, 2)
            e1, e2 = xy[:, :, 1] - xy[:, :, 0], xy[:, :, 2] - xy[:, :, 0]
            face_z = e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]
        src_z = face_z.index_select(1, self.source_faces.reshape(-1)).view(b, 3, -1) * self.has_source
        pos, neg = (src_z > 0).any(1), (src_z < 0).any(1)
        out = pos.to(v.dtype) - neg.to(v.dtype)
        mixed = pos & neg
        if not bool(mixed.any()):
            return out
        bi, vi = mixed.nonzero(as_tuple=True)  # (M,) each
        rows = self.sources[:, vi]  # (3, M) flat 3·face + corner, one row per slot
        ok = rows >= 0
        corner = rows.clamp_min(0) % 3
        tri = self.faces[self.source_faces[:, vi]]  # (3, M, 3)
        p = v[bi[None, :, None].expand_as(tri), tri]  # (3, M, 3 corners, 3)
        n = torch.linalg.cross(p[:, :, 1] - p[:, :, 0], p[:, :, 2] - p[:, :, 0], dim=-1)
        w = n[..., 2]
        if self.weighting != "area":
            idx = [((corner + j) % 3)[..., None, None].expand(-1, -1, 1, 3) for j in range(3)]
            pick = [p.gather(2, i).squeeze(2) for i in idx]  # the surviving corner, then the next two
            ang = _angle(pick[1] - pick[0], pick[2] - pick[0])  # the angle at the surviving corner
            if self.weighting == "angle":
                w = w / n.norm(dim=-1).clamp_min(torch.finfo(v.dtype).tiny)
            w = ang * w
        exact = v.new_zeros(vi.shape[0])
        for k in range(3):  # the slots in the order normal_z adds them
            exact = exact + w[k] * ok[k]
        out[bi, vi] = exact
        return out

    def visible(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) rotated vertices → (B, N) bool visibility."""
        if self.rule == "last_write":
            check_tensor("vertices", vertices, 3, (3,))
            if vertices.shape[1] != self.n_vertices:
                raise ShapeError(f"vertices must hold N = {self.n_vertices} points, got {vertices.shape[1]}")
            with torch.no_grad():
                nz = self._last_write_sign_z(vertices.detach())
        else:
            nz = self.normal_z(vertices)
        return nz > 0 if self.strict else nz >= 0

    def forward(self, vertices: torch.Tensor) -> torch.Tensor:
        if self.grid_size is None:
            raise ValueError("VisibilityMask needs grid_size to return an image; use .visible() for meshes")
        g = self.grid_size
        return self.visible(vertices).to(vertices.dtype).view(vertices.shape[0], 1, g, g)

    def extra_repr(self) -> str:
        return (
            f"G={self.grid_size}, weighting={self.weighting!r}, rule={self.rule!r}, "
            f"strict={self.strict}, layout={self.layout!r}"
        )


# ------------------------------------------------------------------------------- exact reference
def unoccluded(v: np.ndarray, f: np.ndarray, rel_tol: float = 1e-7, query: np.ndarray | None = None) -> np.ndarray:
    """For one mesh: True where the ray from a vertex towards +z crosses no triangle that does not contain it.

    Args:
        v: float64 (N, 3) rotated vertices; f: int (F, 3) faces; rel_tol: see :func:`ray_blocked`.
        query: optional int (Q,) vertices to test (default all): only they are binned, so a few landmarks
            of a large mesh cost about one pass over its triangles.

    Returns:
        bool (N,) or (Q,).
    """
    n = v.shape[0]
    qv = np.arange(n) if query is None else np.asarray(query, dtype=np.int64)
    p = v[:, :2]
    scale = float(np.ptp(v, axis=0).max()) or 1.0
    a, b, c = p[f[:, 0]], p[f[:, 1]], p[f[:, 2]]
    lo, hi = np.minimum(np.minimum(a, b), c), np.maximum(np.maximum(a, b), c)  # (F, 2); 5× faster than .min(1)
    med = float(np.median((hi - lo).max(1)))
    h = med if med > 0 else scale / max(np.sqrt(n), 1.0)
    h = max(h, scale * 1e-6)
    origin = p.min(0) - h
    ncell = np.floor((p.max(0) - origin) / h).astype(np.int64) + 2
    # vertices → cells, sorted by cell key
    vc = np.floor((p[qv] - origin) / h).astype(np.int64)
    vkey = vc[:, 0] * ncell[1] + vc[:, 1]
    order = np.argsort(vkey, kind="stable")  # positions in qv
    skey = vkey[order]
    # triangles → every cell their bounding box overlaps
    c0 = np.floor((lo - origin) / h).astype(np.int64)
    c1 = np.floor((hi - origin) / h).astype(np.int64)
    span = c1 - c0 + 1
    cnt = span[:, 0] * span[:, 1]
    t_id = np.repeat(np.arange(f.shape[0]), cnt)
    local = np.arange(t_id.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    ci = c0[t_id, 0] + local // span[t_id, 1]
    cj = c0[t_id, 1] + local % span[t_id, 1]
    key = ci * ncell[1] + cj
    start = np.searchsorted(skey, key, "left")
    stop = np.searchsorted(skey, key, "right")
    m = stop - start
    cand_t = np.repeat(t_id, m)
    cand_q = order[np.repeat(start, m) + (np.arange(m.sum()) - np.repeat(np.cumsum(m) - m, m))]
    cand_v = qv[cand_q]
    # drop the triangles the vertex belongs to
    keep = (f[cand_t] != cand_v[:, None]).all(1)
    cand_t, cand_v, cand_q = cand_t[keep], cand_v[keep], cand_q[keep]
    hit = ray_blocked(v, f, cand_t, cand_v, rel_tol)
    occluded = np.zeros(len(qv), dtype=bool)
    occluded[cand_q[hit]] = True
    return ~occluded


def ray_blocked(v: np.ndarray, f: np.ndarray, tri_id: np.ndarray, vert_id: np.ndarray, rel_tol: float) -> np.ndarray:
    """For candidate (triangle, vertex) pairs: does the triangle block the ray from the vertex towards +z?

    The decisions every exact-visibility path shares: an edge-inclusive point-in-triangle test in the image
    plane (a ray through another triangle's edge or corner is blocked), degenerate (edge-on) triangles never
    block, and the triangle must lie more than ``rel_tol`` × the mesh's largest extent in front of the vertex.

    Args:
        v: (N, 3) rotated vertices; f: (F, 3) faces; tri_id, vert_id: (P,) candidate pairs.

    Returns:
        bool (P,).
    """
    p, z = v[:, :2], v[:, 2]
    scale = float(np.ptp(v, axis=0).max()) or 1.0
    tri = p[f[tri_id]]
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    q = p[vert_id]
    det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    ok = np.abs(det) > (1e-12 * scale * scale)
    det = np.where(ok, det, 1.0)
    l1 = ((q[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (q[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])) / det
    l2 = ((b[:, 0] - a[:, 0]) * (q[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (q[:, 0] - a[:, 0])) / det
    l0 = 1 - l1 - l2
    bary_tol = 1e-9
    inside = ok & (l0 >= -bary_tol) & (l1 >= -bary_tol) & (l2 >= -bary_tol)
    zt = z[f[tri_id]]
    depth = l0 * zt[:, 0] + l1 * zt[:, 1] + l2 * zt[:, 2]
    return inside & (depth > z[vert_id] + rel_tol * scale)


def occlusion_visibility(
    vertices: torch.Tensor | np.ndarray,
    faces: torch.Tensor | np.ndarray,
    backface_culling: bool = False,
    rel_tol: float = 1e-7,
) -> torch.Tensor:
    """Exact visibility by ray casting along the viewing direction (orthographic camera along −z).

    A vertex is unoccluded when the ray from it towards the camera (+z) crosses no triangle that does
    not contain the vertex, i.e. when it is the front-most surface point at its pixel (a z-buffer
    evaluated exactly at the vertices). Triangles are binned on a uniform grid of the image plane, so
    the cost is about linear in N + F.

    Args:
        vertices: (N, 3) or (B, N, 3) rotated vertices.
        faces: (F, 3) int, 0-based.
        backface_culling: also require n_z > 0 (area-weighted vertex normal), i.e. "seen from the
            front and not hidden" — the right reference for an open surface such as a face mask, whose
            back side would be inside the head.
        rel_tol: depth tolerance relative to the mesh size.

    Rays through another triangle's edge or corner count as blocked. On a closed convex mesh this
    agrees with the back-face test except at rim vertices whose normal points slightly away from the
    camera while their ray grazes past the polyhedron (a band of O(1/√N) vertices).

    Returns:
        bool tensor (N,) or (B, N): True = visible.
    """
    v = torch.as_tensor(vertices)
    squeeze = v.ndim == 2
    if squeeze:
        v = v[None]
    check_tensor("vertices", v, 3, (3,))
    f = _check_faces(torch.as_tensor(faces), v.shape[1])
    vn = v.detach().cpu().double().numpy()
    fn = f.cpu().numpy()
    out = torch.from_numpy(np.stack([unoccluded(vn[i], fn, rel_tol) for i in range(vn.shape[0])]))
    if backface_culling:
        nz = vertex_normals(v.detach().double(), f, "area")[..., 2].cpu()
        out = out & (nz > 0)
    out = out.to(v.device)
    return out[0] if squeeze else out


def mislabelled_fraction(approx: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """Fraction of vertices on which two visibility labellings disagree.

    Args:
        approx, exact: bool (..., N).

    Returns:
        (...,) float64 in [0, 1].
    """
    if approx.shape != exact.shape:
        raise ShapeError(f"approx {tuple(approx.shape)} and exact {tuple(exact.shape)} differ in shape")
    return (approx.bool() != exact.bool()).double().mean(-1)
