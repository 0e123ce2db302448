"""The paper's symmetric Tutte embedding: flatten one half of the face onto [0, 0.5] × [0, 1], reflect.

Method (paper §2.3; docs/conventions.md §9.2):

1. **Cut.** Midline vertices are the fixed points of the mirror map. A non-midline vertex i is on the
   *left* (the viewer's left, model x < 0) when x_i < x_mirror(i). The *half* is every triangle whose
   vertices are all left-or-midline. It must be a topological disk: one boundary loop, Euler
   characteristic 1, with the midline on that loop. A hole that crosses the midline (the Surrey model's
   open mouth) is allowed: the rim of its left half joins the midline on the u = 0.5 side, so in UV the hole
   closes into a slit (rim vertices and their mirrors share UVs). Holes inside one half must be filled first.
2. **Boundary.** The half's boundary loop is mapped to the rectangle [0, 0.5] × [0, 1]:
   the midline to the side u = 0.5 (its lower end, smaller y, at v = 0 and its upper end at v = 1);
   the outer boundary, walked from the upper midline end to the lower one, to the other three sides
   through two *corners*, the vertices placed at (0, 1) and (0, 0). On every side the vertices are spaced
   by cumulative 3-D chord length of the mean shape.
3. **Interior.** Each interior vertex is a weighted average of its neighbours (a Tutte / harmonic map):
   L_II U_I = −L_IB U_B with L = diag(W·1) − W, W one of the weightings in :mod:`mmstn.uv.laplacian`,
   solved with a sparse LU factorisation (``scipy.sparse.linalg.splu`` with the COLAMD ordering, both UV
   columns at once: about 0.1 s for a 27k-vertex half on 2 cores; the MMD_AT_PLUS_A ordering takes 100×
   longer, and Jacobi-preconditioned CG is 3–4× slower). Mean-value weights give a non-symmetric system.
4. **Reflect.** The right vertex mirror(i) gets (1 − u_i, v_i); midline vertices have u = 0.5 exactly.

Conventions pinned here:

* u increases with model x (the viewer's right), v with model y (up); the left half fills u ∈ [0, 0.5].
* ``corners="extreme"`` (default): the outer-boundary vertices extreme in the directions (−1, +1) and
  (−1, −1) of *normalised* frontal coordinates x̂ = (x − x_mid) / max|x − x_mid| and
  ŷ = (y − y_c) / (half the boundary's y-extent), where x_mid is the mean x of the midline and y_c the centre
  of the half-boundary's y-range; i.e. the top-lateral and bottom-lateral "45°" points. For a round disk
  this gives sides whose 3-D lengths are in the proportion 1 : 2 : 1 of the UV sides (0.5 : 1 : 0.5).
  ``corners="arclength"`` puts them at 1/4 and 3/4 of the outer boundary's chord length (uniform
  boundary speed). A pair of vertex indices ``(top, bottom)`` fixes them explicitly.
* Triangles counter-clockwise seen from the front stay counter-clockwise in UV (positive signed area).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from mmstn.models.meshtools import boundary_loops, check_mesh
from mmstn.models.morphable import MorphableModel
from mmstn.uv.laplacian import Weighting, laplacian_from_weights, weight_matrix
from mmstn.uv.quality import UVQuality, uv_quality
from mmstn.uv.symmetry import mirror_topology_mismatch

__all__ = [
    "FoldOverWarning",
    "HoleWarning",
    "MeshLike",
    "UVEmbedding",
    "boundary_loops",
    "boundary_sides",
    "quality_table",
    "symmetric_tutte",
]

#: A :class:`MorphableModel` (its mean, triangles and mirror are used) or a tuple (V (N, 3), F (F, 3), mirror (N,)).
MeshLike = MorphableModel | tuple[np.ndarray, np.ndarray, np.ndarray]
Corners = Literal["extreme", "arclength"] | tuple[int, int]
Repair = Literal["mean_value", "clamp"] | None


class FoldOverWarning(UserWarning):
    """A UV map has flipped (folded-over) triangles; the message says how many and how to repair it."""


class HoleWarning(UserWarning):
    """The mesh has holes: several boundary loops, or a hole collapsed onto the centre line (u = 0.5)."""


_CLOSE_HOLES = "mmstn.models.meshtools.close_holes"


@dataclass(frozen=True)
class UVEmbedding:
    """The result of :func:`symmetric_tutte`.

    Attributes:
        uv: (N, 2) float64 UVs of every vertex in [0, 1]², v up; exactly mirror-symmetric.
        weights: the weighting actually used for the final map (e.g. ``"mean_value"`` after a repair).
        requested_weights: the weighting asked for.
        repaired_with: ``None``, or the repair that was applied because the requested map folded over.
        half_vertices: (H,) sorted original indices of the flattened half (left + midline vertices).
        half_triangles: (F_h, 3) original-index triangles of the half.
        midline: (M,) original indices of the midline (mirror fixed points), ordered bottom (v = 0) to top.
        boundary: (B,) original indices of the half's boundary loop, starting at the bottom midline end and
            going up the midline, then along the top, the outer side and the bottom.
        corners: original indices of the four rectangle corners: ``"bottom_mid"`` (0.5, 0), ``"top_mid"``
            (0.5, 1), ``"top_outer"`` (0, 1), ``"bottom_outer"`` (0, 0).
        n_negative_weights: off-diagonal entries of W below zero (cotangent weights on obtuse pairs).
        quality: measures of the full map (:class:`mmstn.uv.quality.UVQuality`).
        solve_seconds: wall time of the sparse factorisation and solve.
        topology_mismatch: triangles without a mirror-image triangle (0 for a symmetric triangulation).
        slit_vertices: left vertices on the rim of a hole that crosses the midline (e.g. an open mouth), placed
            on u = 0.5 with the midline; they and their mirrors share UVs, so the hole closes into a slit.
    """

    uv: np.ndarray
    weights: str
    requested_weights: str
    repaired_with: str | None
    half_vertices: np.ndarray
    half_triangles: np.ndarray
    midline: np.ndarray
    boundary: np.ndarray
    corners: dict[str, int]
    n_negative_weights: int
    quality: UVQuality
    solve_seconds: float
    topology_mismatch: int = 0
    slit_vertices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def n_flipped(self) -> int:
        """Fold-over triangles in the full map."""
        return self.quality.n_flipped


def _mesh_arrays(mesh: MeshLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if isinstance(mesh, MorphableModel):
        if mesh.mirror is None:
            raise ValueError(
                f"model {mesh.name!r} has no mirror map; the symmetric embedding needs one. Build it with "
                "mmstn.uv.symmetry.mirror_from_positions(V) or mirror_from_uv(uv)."
            )
        V = mesh.mean.detach().cpu().double().numpy()
        F = mesh.triangles.cpu().numpy()
        mirror = mesh.mirror.cpu().numpy()
    else:
        V, F, mirror = mesh
    V = np.asarray(V, dtype=np.float64)
    F = np.asarray(F, dtype=np.int64)
    mirror = np.asarray(mirror, dtype=np.int64)
    n = V.shape[0]
    if V.ndim != 2 or V.shape[1] != 3:
        raise ValueError(f"V must have shape (N, 3), got {V.shape}")
    if F.ndim != 2 or F.shape[1] != 3 or F.min() < 0 or F.max() >= n:
        raise ValueError(f"F must be (F, 3) 0-based indices into {n} vertices")
    if mirror.shape != (n,) or not np.array_equal(mirror[mirror], np.arange(n)):
        raise ValueError("mirror must be an involution of shape (N,): mirror[mirror[i]] == i")
    return V, F, mirror


def _chord_params(V: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Cumulative 3-D chord length along ``path`` normalised to [0, 1] (exactly 0 and 1 at the ends)."""
    seg = np.linalg.norm(np.diff(V[path], axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 0:
        return np.linspace(0.0, 1.0, len(path))
    t = s / s[-1]
    t[-1] = 1.0
    return t


def _pick_corners(V: np.ndarray, outer: np.ndarray, midline_x: float, corners: Corners, mirror: np.ndarray):
    """Positions (in ``outer``, the path top-mid → bottom-mid) of the (0, 1) and (0, 0) corners."""
    m = len(outer)
    if m < 4:
        raise ValueError(f"the outer boundary of the half has only {m} vertices; need at least 4 for two corners")
    inner = np.arange(1, m - 1)
    if isinstance(corners, str) and corners == "extreme":
        xy = V[outer, :2]
        dx = xy[:, 0] - midline_x
        w = np.max(np.abs(dx))
        yc = 0.5 * (xy[:, 1].max() + xy[:, 1].min())
        h = 0.5 * (xy[:, 1].max() - xy[:, 1].min())
        xh = dx / (w if w > 0 else 1.0)
        yh = (xy[:, 1] - yc) / (h if h > 0 else 1.0)
        i_top = int(inner[np.argmax((-xh + yh)[inner])])
        i_bot = int(inner[np.argmax((-xh - yh)[inner])])
    elif isinstance(corners, str) and corners == "arclength":
        t = _chord_params(V, outer)
        i_top = int(inner[np.argmin(np.abs(t[inner] - 0.25))])
        i_bot = int(inner[np.argmin(np.abs(t[inner] - 0.75))])
    elif isinstance(corners, (tuple, list)) and len(corners) == 2:
        pos = {int(v): k for k, v in enumerate(outer)}
        found = []
        for c in corners:
            c = int(c)
            if c not in pos and int(mirror[c]) in pos:
                c = int(mirror[c])  # a right-side corner: use its left partner
            if c not in pos or pos[c] in (0, m - 1):
                raise ValueError(f"corner vertex {c} is not on the outer boundary of the left half (between the ends)")
            found.append(pos[c])
        i_top, i_bot = found
    else:
        raise ValueError(f"corners={corners!r}: use 'extreme', 'arclength' or a (top, bottom) pair of vertex indices")
    if not i_top < i_bot:
        raise ValueError(
            f"corner choice {corners!r} put the top corner (outer position {i_top}) after the bottom one "
            f"({i_bot}); pass corners='arclength' or explicit vertex indices"
        )
    return i_top, i_bot


def _warn_holes(F: np.ndarray, slit: np.ndarray) -> None:
    """Warn (:class:`HoleWarning`) about several boundary loops and about rims collapsed onto u = 0.5."""
    loops = boundary_loops(F)
    if len(loops) > 1:
        sizes = sorted((len(lp) for lp in loops), reverse=True)
        warnings.warn(
            f"symmetric_tutte: the mesh has {len(loops)} boundary loops (sizes {sizes[:6]}), i.e. "
            f"{len(loops) - 1} hole(s) besides the outer boundary; close them with {_CLOSE_HOLES} "
            "for a smooth map",
            HoleWarning,
            stacklevel=3,
        )
    if slit.size:
        warnings.warn(
            f"symmetric_tutte: {slit.size} vertices on the rim of a hole that crosses the centre line (e.g. an "
            "open mouth) are collapsed onto u = 0.5 with their mirrors: the hole becomes a zero-width slit. "
            f"Close it first with {_CLOSE_HOLES}",
            HoleWarning,
            stacklevel=3,
        )


def _solve_harmonic(W: sp.csr_matrix, interior: np.ndarray, bnd: np.ndarray, ub: np.ndarray) -> np.ndarray:
    """Solve L_II U_I = −L_IB U_B with L = diag(W·1) − W; returns U_I (|I|, 2)."""
    L = laplacian_from_weights(W)
    LI = L[interior]
    A = LI[:, interior].tocsc()
    rhs = -(LI[:, bnd] @ ub)
    lu = splu(A, permc_spec="COLAMD")
    return lu.solve(np.ascontiguousarray(rhs))


def _half_structure(V: np.ndarray, F: np.ndarray, mirror: np.ndarray) -> dict[str, object]:
    """Classify vertices and triangles, extract the half, its boundary loop and the midline order."""
    check_mesh(V, F, name="the mesh to flatten", one_piece=True)
    n = V.shape[0]
    idx = np.arange(n)
    mid = mirror == idx
    if not mid.any():
        raise ValueError("the mirror map has no fixed points, so there is no midline to cut along")
    pair = ~mid
    tie = pair & (V[:, 0] == V[mirror, 0])
    if tie.any():
        raise ValueError(f"{int(tie.sum())} mirror pairs have equal x, so their side is undefined")
    left = pair & (V[:, 0] < V[mirror, 0])
    right = pair & ~left
    nl = left[F].sum(axis=1)
    nr = right[F].sum(axis=1)
    straddle = (nl > 0) & (nr > 0)
    if straddle.any():
        raise ValueError(
            f"{int(straddle.sum())} triangles join a left and a right vertex directly; the midline vertices "
            "(fixed points of the mirror) do not form a cut path through the mesh"
        )
    flat = (nl == 0) & (nr == 0)
    if flat.any():
        raise ValueError(f"{int(flat.sum())} triangles have only midline vertices; the cut is ambiguous there")
    half_tri = F[nl > 0]
    half_v = np.unique(half_tri)
    expect = np.flatnonzero(left | mid)
    if not np.array_equal(half_v, expect):
        missing = np.setdiff1d(expect, half_v)
        raise ValueError(
            f"{missing.size} left/midline vertices (e.g. {missing[:5].tolist()}) belong to no left triangle"
        )
    loops = boundary_loops(half_tri)
    if len(loops) != 1:
        sizes = sorted((len(lp) for lp in loops), reverse=True)
        raise ValueError(
            f"the left half has {len(loops)} boundary loops (sizes {sizes[:6]}), not 1: it is not a disk. "
            f"Fill the holes (e.g. eyes, mouth) before flattening, e.g. with {_CLOSE_HOLES}."
        )
    e = np.sort(np.concatenate([half_tri[:, [0, 1]], half_tri[:, [1, 2]], half_tri[:, [2, 0]]]), axis=1)
    n_edges = np.unique(e[:, 0] * n + e[:, 1]).size
    euler = half_v.size - n_edges + half_tri.shape[0]
    if euler != 1:
        raise ValueError(f"the left half has Euler characteristic {euler}, not 1: it is not a disk")
    loop = loops[0]
    on_mid = mid[loop]
    if on_mid.sum() != mid.sum():
        raise ValueError(
            f"{int(mid.sum() - on_mid.sum())} midline vertices are interior to the left half; the midline is not a cut"
        )
    if on_mid.all():
        raise ValueError("the half's whole boundary is midline; there is no outer boundary to map")
    starts = np.flatnonzero(on_mid & ~np.roll(on_mid, 1))  # first vertex of each midline run
    if starts.size == 1:
        first = int(starts[0])
    else:
        # Holes that cross the midline (an open mouth) make the half's boundary leave the midline and come
        # back. The gap between runs that lies on the mesh's outer boundary is the outer side; the other gaps
        # (half-hole rims) join the u = 0.5 side and close into slits.
        full = boundary_loops(F)
        lengths = [np.linalg.norm(np.diff(V[np.r_[lp, lp[:1]]], axis=0), axis=1).sum() for lp in full]
        on_outer = np.isin(loop, full[int(np.argmax(lengths))])
        ends = np.flatnonzero(on_mid & ~np.roll(on_mid, -1))  # last vertex of each run
        cand = []
        for e in ends:
            nxt = starts[starts > e]
            s_next = int(nxt[0]) if nxt.size else int(starts[0]) + loop.size
            gap = np.arange(e + 1, s_next) % loop.size
            if gap.size and on_outer[gap].all():
                cand.append(s_next % loop.size)
        if len(cand) != 1:
            raise ValueError(
                f"the midline splits into {starts.size} runs along the half's boundary and {len(cand)} of the gaps "
                f"between them lie on the outer boundary (expected 1); fill the holes that cross the midline with "
                f"{_CLOSE_HOLES}"
            )
        first = cand[0]
    loop = np.roll(loop, -first)
    on_mid = mid[loop]
    last = int(np.flatnonzero(on_mid)[-1])
    side = loop[: last + 1]  # the u = 0.5 side: midline runs and any half-hole rims between them
    if V[side[0], 1] > V[side[-1], 1]:  # make it run bottom (small y) -> top
        loop = np.roll(loop[::-1], side.size)
        side = loop[: side.size]
    midline = side[mid[side]]
    outer = np.concatenate([loop[side.size - 1 :], loop[:1]])  # top-mid ... bottom-mid
    return {
        "left": left,
        "mid": mid,
        "half_tri": half_tri,
        "half_v": half_v,
        "loop": loop,
        "midline": midline,
        "side": side,
        "outer": outer,
    }


def symmetric_tutte(
    mesh: MeshLike,
    weights: Weighting = "cotan",
    corners: Corners = "extreme",
    repair: Repair = None,
    *,
    warn: bool = True,
) -> UVEmbedding:
    """The paper's symmetric Tutte flattening of a mirror-symmetric face mesh onto the unit square.

    Args:
        mesh: a :class:`MorphableModel` with a ``mirror`` map (its mean shape is flattened), or a tuple
            (V (N, 3) mm, F (F, 3) 0-based, mirror (N,)).
        weights: ``"cotan"`` (the paper's conformal weights), ``"mean_value"`` (Floater; never folds for
            this convex boundary), ``"uniform"`` (Tutte; never folds) or ``"cotan_clamped"``.
        corners: how to choose the outer-boundary vertices mapped to (0, 1) and (0, 0): ``"extreme"``,
            ``"arclength"`` or an explicit ``(top, bottom)`` pair of vertex indices (module docstring).
        repair: what to do when the map has fold-overs: ``None`` keeps it and warns; ``"mean_value"``
            re-solves with mean-value weights; ``"clamp"`` re-solves with negative cotangent weights set to
            zero (usually enough, not guaranteed). A warning is still raised if the repaired map folds.
        warn: set ``False`` to suppress the :class:`FoldOverWarning` (the count stays in ``quality``).

    Returns:
        :class:`UVEmbedding` with ``uv`` (N, 2) in [0, 1]², u(mirror(i)) = 1 − u(i), midline at u = 0.5.
    """
    V, F, mirror = _mesh_arrays(mesh)
    n = V.shape[0]
    s = _half_structure(V, F, mirror)
    half_v: np.ndarray = s["half_v"]  # type: ignore[assignment]
    half_tri: np.ndarray = s["half_tri"]  # type: ignore[assignment]
    loop: np.ndarray = s["loop"]  # type: ignore[assignment]
    midline: np.ndarray = s["midline"]  # type: ignore[assignment]
    side_mid: np.ndarray = s["side"]  # type: ignore[assignment]
    outer: np.ndarray = s["outer"]  # type: ignore[assignment]
    if warn:
        _warn_holes(F, side_mid[~s["mid"][side_mid]])  # type: ignore[index]
    left: np.ndarray = s["left"]  # type: ignore[assignment]

    midline_x = float(V[midline, 0].mean())
    i_top, i_bot = _pick_corners(V, outer, midline_x, corners, mirror)

    # boundary positions on the rectangle [0, 0.5] x [0, 1]
    ub = np.zeros((n, 2))
    t = _chord_params(V, side_mid)
    ub[side_mid] = np.stack([np.full_like(t, 0.5), t], axis=1)
    top = outer[: i_top + 1]
    t = _chord_params(V, top)
    ub[top] = np.stack([0.5 * (1.0 - t), np.ones_like(t)], axis=1)
    side = outer[i_top : i_bot + 1]
    t = _chord_params(V, side)
    ub[side] = np.stack([np.zeros_like(t), 1.0 - t], axis=1)
    bottom = outer[i_bot:]
    t = _chord_params(V, bottom)
    ub[bottom] = np.stack([0.5 * t, np.zeros_like(t)], axis=1)

    # local indexing of the half
    local = np.full(n, -1, dtype=np.int64)
    local[half_v] = np.arange(half_v.size)
    Fl = local[half_tri]
    Vh = V[half_v]
    is_b = np.zeros(half_v.size, dtype=bool)
    is_b[local[loop]] = True
    bnd_l = np.flatnonzero(is_b)
    int_l = np.flatnonzero(~is_b)
    ub_l = ub[half_v[bnd_l]]

    def solve(kind: str) -> tuple[np.ndarray, int, float]:
        W = weight_matrix(Vh, Fl, kind)  # type: ignore[arg-type]
        n_neg = int(np.sum(W.data < 0))
        t0 = time.perf_counter()
        uvi = _solve_harmonic(W, int_l, bnd_l, ub_l) if int_l.size else np.zeros((0, 2))
        dt = time.perf_counter() - t0
        uv = np.zeros((n, 2))
        uv[half_v[bnd_l]] = ub_l
        uv[half_v[int_l]] = uvi
        uv[side_mid, 0] = 0.5
        li = np.flatnonzero(left)
        uv[mirror[li], 0] = 1.0 - uv[li, 0]
        uv[mirror[li], 1] = uv[li, 1]
        return uv, n_neg, dt

    uv, n_neg, dt = solve(weights)
    q = uv_quality(V, F, uv, mirror)
    used: str = weights
    repaired: str | None = None
    if q.n_flipped and repair is not None:
        if repair not in ("mean_value", "clamp"):
            raise ValueError(f"repair={repair!r}: use None, 'mean_value' or 'clamp'")
        kind = "mean_value" if repair == "mean_value" else "cotan_clamped"
        first = q.n_flipped
        uv, n_neg, dt2 = solve(kind)
        dt += dt2
        q = uv_quality(V, F, uv, mirror)
        used, repaired = kind, repair
        extra_note = f" (the {weights!r} map had {first}; repaired with {repair!r})"
    else:
        extra_note = ""
    if q.n_flipped and warn:
        # Only cotangent weights can go negative; with positive weights the cause is the mesh or boundary.
        if used.startswith("cotan"):
            cause = "Negative cotangent weights on obtuse triangles cause this"
        else:
            cause = (
                f"The {used!r} weights are all positive, so the cause is the mesh: non-manifold or duplicated "
                "triangles, several boundary loops or a boundary collapsed onto the centre line "
                "(mmstn.models.meshtools.close_holes fixes holes)"
            )
        warnings.warn(
            f"symmetric_tutte({weights!r}): {q.n_flipped} of {q.n_triangles} triangles are folded over in UV"
            f"{extra_note}. {cause}; pass "
            "repair='mean_value' (guaranteed bijective for the convex square boundary) or repair='clamp'.",
            FoldOverWarning,
            stacklevel=2,
        )
    return UVEmbedding(
        uv=uv,
        weights=used,
        requested_weights=weights,
        repaired_with=repaired,
        half_vertices=half_v,
        half_triangles=half_tri,
        midline=midline,
        boundary=loop,
        corners={
            "bottom_mid": int(side_mid[0]),
            "top_mid": int(side_mid[-1]),
            "top_outer": int(outer[i_top]),
            "bottom_outer": int(outer[i_bot]),
        },
        n_negative_weights=n_neg,
        quality=q,
        solve_seconds=dt,
        topology_mismatch=mirror_topology_mismatch(F, mirror),
        slit_vertices=side_mid[~s["mid"][side_mid]],  # type: ignore[index]
    )


def boundary_sides(emb: UVEmbedding) -> dict[str, np.ndarray]:
    """Split the half's boundary loop into its four sides, each a vertex path (original indices).

    ``"midline"`` runs bottom_mid → top_mid (u = 0.5), ``"top"`` top_mid → top_outer (v = 1), ``"outer"``
    top_outer → bottom_outer (u = 0) and ``"bottom"`` bottom_outer → bottom_mid (v = 0); consecutive sides
    share their corner vertex.
    """
    loop = np.asarray(emb.boundary)
    pos = {int(v): k for k, v in enumerate(loop)}
    p_tm, p_to, p_bo = (pos[emb.corners[k]] for k in ("top_mid", "top_outer", "bottom_outer"))
    return {
        "midline": loop[: p_tm + 1],
        "top": loop[p_tm : p_to + 1],
        "outer": loop[p_to : p_bo + 1],
        "bottom": np.concatenate([loop[p_bo:], loop[:1]]),
    }


def quality_table(embeddings: Mapping[str, UVEmbedding]) -> str:
    """A fixed-width text table of each embedding's quality (rounded: stable across platforms)."""
    head = (f"{'weighting':<11} {'w<0':>5} {'flipped':>7} {'angle mean':>10} {'angle max':>9} "
            f"{'log-area std':>12} {'max |.|':>7} {'symmetric':>9}")
    rows = [head, "-" * len(head)]
    for name, e in embeddings.items():
        q = e.quality
        sym = "yes" if q.symmetry_error is not None and q.symmetry_error < 1e-12 else "no"
        rows.append(f"{name:<11} {e.n_negative_weights:>5d} {q.n_flipped:>7d} {q.angle_error_mean_deg:>9.1f}° "
                    f"{q.angle_error_max_deg:>8.0f}° {q.log_area_ratio_std:>12.2f} {q.log_area_ratio_maxabs:>7.2f} "
                    f"{sym:>9}")
    return "\n".join(rows)
