"""Figures of the symmetric Tutte embedding and the G×G grid for notebook 02 (paper §2.3 and Fig. 3).

Every function returns a matplotlib :class:`~matplotlib.figure.Figure`; nothing is shown or saved here
(notebooks call :func:`mmstn.viz.save_figure`). UV axes are drawn with u to the right and v up, so a UV
panel looks like the face seen from the front; grid *images* are drawn with row 0 (v = 1) at the top, as the
STN outputs them.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from mmstn.layers.grid import grid_triangles
from mmstn.models.landmarks import flip_permutation
from mmstn.models.morphable import MorphableModel
from mmstn.runtime import as_numpy
from mmstn.transforms import rotation_from_angles
from mmstn.uv.embedding import UVEmbedding, boundary_sides
from mmstn.uv.images import flattened_colour, geometry_image, grid_size
from mmstn.uv.laplacian import corner_angles_np, cotangent_weights
from mmstn.uv.quality import angle_distortion, area_distortion, flipped_triangles, square_boundary_counts
from mmstn.uv.resample import grid_uv
from mmstn.viz.mesh import draw_mesh

__all__ = [
    "CORNER_UV",
    "SIDE_COLOURS",
    "fig_authors_uv",
    "fig_distortion_histograms",
    "fig_fold_overs",
    "fig_geometry_images",
    "fig_grid_landmarks",
    "fig_grid_layout",
    "fig_grid_model",
    "fig_half_mesh",
    "fig_weightings",
]

#: Colours of the four sides of the half's rectangle [0, 0.5] × [0, 1] (and of the symmetry line).
SIDE_COLOURS: dict[str, str] = {"midline": "tab:red", "top": "tab:blue", "outer": "tab:green", "bottom": "tab:orange"}
#: Where :func:`mmstn.uv.symmetric_tutte` puts the four corners of the half.
CORNER_UV: dict[str, tuple[float, float]] = {
    "bottom_mid": (0.5, 0.0),
    "top_mid": (0.5, 1.0),
    "top_outer": (0.0, 1.0),
    "bottom_outer": (0.0, 0.0),
}
_WEIGHT_TITLES = {
    "cotan": "cotangent (the paper's)",
    "cotan_clamped": "cotangent, negatives clamped",
    "mean_value": "mean value (Floater)",
    "uniform": "uniform (Tutte)",
}



def _mesh(model: MorphableModel) -> tuple[np.ndarray, np.ndarray]:
    return as_numpy(model.mean).astype(np.float64), as_numpy(model.triangles).astype(np.int64)


def _edges(F: np.ndarray) -> np.ndarray:
    """Unique undirected edges (E, 2) of triangles F (F, 3)."""
    e = np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])
    return np.unique(np.sort(e, axis=1), axis=0)


def _draw_uv_edges(ax: Axes, uv: np.ndarray, F: np.ndarray, colour="0.35", lw: float = 0.25, alpha=1.0) -> None:
    """Mesh edges in UV (a LineCollection; duplicate UVs on a slit are fine)."""
    e = _edges(F)
    ax.add_collection(LineCollection(uv[e], colors=colour, linewidths=lw, alpha=alpha))


def _fill_uv(ax: Axes, uv: np.ndarray, F: np.ndarray, facecolors, **kw) -> PolyCollection:
    coll = PolyCollection(uv[F], facecolors=facecolors, edgecolors="none", antialiased=False, **kw)
    ax.add_collection(coll)
    return coll


def _uv_axes(ax: Axes, title: str | None = None, xlim=(0.0, 1.0), ylim=(0.0, 1.0)) -> None:
    pad = 0.02 * max(xlim[1] - xlim[0], ylim[1] - ylim[0])
    ax.set_xlim(xlim[0] - pad, xlim[1] + pad)
    ax.set_ylim(ylim[0] - pad, ylim[1] + pad)
    ax.set_aspect("equal")
    ax.set_xlabel("u")
    ax.set_ylabel("v")
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=9)


def _vertex_colours(model: MorphableModel) -> np.ndarray:
    return np.full((model.n_vertices, 3), 0.78) if model.colour is None else np.clip(as_numpy(model.colour), 0, 1)


def _draw_sides(ax: Axes, xy: np.ndarray, emb: UVEmbedding, lw: float = 2.2, labels: bool = True,
                inward: bool = False) -> None:
    """The four boundary sides as coloured paths and the corners as stars labelled with their UV.

    ``inward`` puts the corner labels inside the UV rectangle (for UV panels), else beside the corner.
    """
    for name, path in boundary_sides(emb).items():
        ax.plot(xy[path, 0], xy[path, 1], color=SIDE_COLOURS[name], lw=lw, zorder=4,
                label=f"{name} ({len(path)})" if labels else None, solid_capstyle="round")
    for name, v in emb.corners.items():
        ax.scatter(*xy[v, :2], s=70, marker="*", c="gold", edgecolors="k", linewidths=0.8, zorder=6)
        u0, v0 = CORNER_UV[name]
        if inward:
            dx, ha = (5, "left") if u0 == 0 else (-5, "right")
            dy, va = (5, "bottom") if v0 == 0 else (-5, "top")
        else:
            dx, dy, ha, va = 5, (-11 if v0 == 0 else 5), "left", "baseline"
        ax.annotate(f"({u0:g}, {v0:g})", xy[v, :2], xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                    fontsize=7, zorder=7, bbox={"boxstyle": "round,pad=0.15", "fc": "w", "ec": "none", "alpha": 0.8})


def fig_half_mesh(model: MorphableModel, emb: UVEmbedding, size: float = 3.6) -> Figure:
    """The flattened half and its boundary: front view (3-D) and UV, sides coloured, the 4 corners starred.

    Panels: (0) the mean face seen from the front, the half that is flattened in its albedo, the mirrored half
    greyed; (1) the half's triangles in UV on [0, 0.5] × [0, 1], the reflected half faint.
    """
    V, F = _mesh(model)
    half = np.zeros(model.n_vertices, dtype=bool)
    half[emb.half_vertices] = True
    colour = _vertex_colours(model)
    colour = np.where(half[:, None], colour, 0.55 + 0.35 * colour.mean(1, keepdims=True))
    fig, axes = plt.subplots(1, 2, figsize=(2.2 * size, size * 1.05), gridspec_kw={"width_ratios": [1.15, 1]})
    v = draw_mesh(axes[0], V, F, colour=colour)
    _draw_sides(axes[0], v, emb)
    axes[0].set_title(f"the half in 3-D: {emb.half_vertices.size} of {model.n_vertices} vertices", fontsize=9)

    ax = axes[1]
    uv = emb.uv
    _fill_uv(ax, uv, F, facecolors=np.where(half[F].all(1)[:, None], colour[F].mean(1), 0.93))
    _draw_uv_edges(ax, uv, emb.half_triangles, lw=0.2)
    ax.axvline(0.5, color="k", lw=0.6, ls="--", zorder=1)
    _draw_sides(ax, uv, emb, labels=False, inward=True)
    ax.text(0.75, 0.75, "reflected:\n(1 − u, v)", ha="center", va="center", fontsize=8, color="0.35")
    handles, labels = axes[0].get_legend_handles_labels()
    ax.legend(handles, labels, loc="center", bbox_to_anchor=(0.75, 0.35), fontsize=7,
              title="boundary side (vertices)", title_fontsize=7, framealpha=0.9)
    _uv_axes(ax, f"the half in UV: {emb.weights} weights")
    fig.tight_layout()
    return fig


def fig_weightings(model: MorphableModel, embeddings: Mapping[str, UVEmbedding], size: float = 2.7,
                   vmax: float = 1.5, edges: bool = True) -> Figure:
    """The UV maps of several weightings side by side.

    Row 0: the mesh in UV filled with its albedo (grey without colour), its edges drawn faintly if ``edges``,
    fold-over triangles filled red. Row 1: each triangle coloured by its area
    distortion log(share of UV area / share of 3-D area) (red: stretched, blue: shrunk), one colour bar.
    """
    V, F = _mesh(model)
    albedo = _vertex_colours(model)[F].mean(1)
    n = len(embeddings)
    fig, axes = plt.subplots(2, n, figsize=(size * n + 1.0, 2 * size + 0.5), squeeze=False)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)
    coll = None
    for k, (name, emb) in enumerate(embeddings.items()):
        uv = emb.uv
        flipped, _ = flipped_triangles(uv, F)
        ax = axes[0, k]
        _fill_uv(ax, uv, F, facecolors=albedo)
        if edges:
            _draw_uv_edges(ax, uv, F, colour="k", lw=0.12, alpha=0.35)
        if flipped.any():
            _fill_uv(ax, uv, F[flipped], facecolors="red", zorder=3)
        q = emb.quality
        _uv_axes(ax, f"{_WEIGHT_TITLES.get(name, name)}\n{q.n_flipped} flipped, "
                     f"angle error {q.angle_error_mean_deg:.1f}°")
        lar = np.nan_to_num(area_distortion(V, F, uv), nan=0.0, posinf=vmax, neginf=-vmax)
        ax = axes[1, k]
        coll = _fill_uv(ax, uv, F, facecolors=plt.get_cmap("RdBu_r")(norm(lar)))
        _uv_axes(ax, f"area distortion: std {q.log_area_ratio_std:.2f}")
    if coll is not None:
        sm = plt.cm.ScalarMappable(norm=norm, cmap="RdBu_r")
        fig.colorbar(sm, ax=axes.ravel().tolist(), shrink=0.45, anchor=(0.0, 0.05),
                     label="log(UV area share / 3-D area share)")
    for ax in axes[:, 1:].ravel():
        ax.set_ylabel("")
    return fig


def fig_distortion_histograms(model: MorphableModel, embeddings: Mapping[str, UVEmbedding],
                              size: float = 3.1) -> Figure:
    """Histograms per weighting: (0) per-triangle log area ratio, (1) per-corner angle error in degrees."""
    V, F = _mesh(model)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size * 1.25, size))
    for name, emb in embeddings.items():
        lar = area_distortion(V, F, emb.uv)
        lar = lar[np.isfinite(lar)]
        ang = angle_distortion(V, F, emb.uv).ravel()
        axes[0].hist(lar, bins=np.linspace(-2, 2, 81), histtype="step", lw=1.5, label=name)
        axes[1].hist(ang, bins=np.linspace(0, 60, 61), histtype="step", lw=1.5, label=name)
    axes[0].axvline(0, color="k", lw=0.6)
    axes[0].set_xlabel("log(UV area share / 3-D area share) per triangle")
    axes[1].set_xlabel("|angle in UV − angle in 3-D| per corner (°)")
    for ax in axes:
        ax.set_ylabel("count")
        ax.legend(fontsize=8)
        ax.tick_params(labelsize=8)
    axes[0].set_title("area distortion (0 = keeps its share)", fontsize=9)
    axes[1].set_title("angle distortion (0 = conformal)", fontsize=9)
    fig.tight_layout()
    return fig


def fig_fold_overs(V: np.ndarray, F: np.ndarray, embeddings: Mapping[str, UVEmbedding],
                   display_xy: np.ndarray | None = None, size: float = 2.7) -> Figure:
    """Where cotangent weights go negative and what that does to the map.

    Panel 0: the mesh's edges in the plane ``display_xy`` (N, 2) (default: x, y of ``V``), edges with a negative
    cotangent weight (the two opposite angles sum to more than 180°) in red. Then one UV panel per embedding,
    fold-over triangles filled red, with an inset zoomed on them when there are any.
    """
    V = np.asarray(V, dtype=np.float64)
    F = np.asarray(F, dtype=np.int64)
    xy = V[:, :2] if display_xy is None else np.asarray(display_xy, dtype=np.float64)
    n = 1 + len(embeddings)
    fig, axes = plt.subplots(1, n, figsize=(size * n, size * 1.1))
    W = cotangent_weights(V, F).tocoo()
    upper = W.row < W.col
    neg = upper & (W.data < 0)
    e_all = np.stack([W.row[upper], W.col[upper]], 1)
    e_neg = np.stack([W.row[neg], W.col[neg]], 1)
    ax = axes[0]
    ax.add_collection(LineCollection(xy[e_all], colors="0.6", linewidths=0.4))
    ax.add_collection(LineCollection(xy[e_neg], colors="red", linewidths=1.2))
    obtuse = corner_angles_np(V, F).max(1) > np.pi / 2
    ax.set_title(f"{int(neg.sum())} of {int(upper.sum())} edges with w < 0\n({int(obtuse.sum())} obtuse triangles "
                 "of " f"{len(F)})", fontsize=9)
    ax.autoscale_view()
    ax.set_aspect("equal")
    ax.axis("off")
    for ax, (name, emb) in zip(axes[1:], embeddings.items(), strict=True):
        flipped, _ = flipped_triangles(emb.uv, F)
        _draw_uv_edges(ax, emb.uv, F, lw=0.3)
        _fill_uv(ax, emb.uv, F[flipped], facecolors="red", alpha=0.8, zorder=3)
        _uv_axes(ax, f"{_WEIGHT_TITLES.get(name, name)}: {int(flipped.sum())} flipped")
        if flipped.any():
            pts = emb.uv[F[flipped]].reshape(-1, 2)
            lo, hi = pts.min(0), pts.max(0)
            half = 0.6 * max(hi - lo) + 0.01
            c = 0.5 * (lo + hi)
            ins = ax.inset_axes((0.55, 0.55, 0.43, 0.43))
            _draw_uv_edges(ins, emb.uv, F, lw=0.5)
            _fill_uv(ins, emb.uv, F[flipped], facecolors="red", alpha=0.6, zorder=3)
            ins.set_xlim(c[0] - half, c[0] + half)
            ins.set_ylim(c[1] - half, c[1] + half)
            ins.set_xticks([])
            ins.set_yticks([])
            ax.indicate_inset_zoom(ins, edgecolor="k")
    fig.tight_layout()
    return fig


def fig_grid_layout(uv: np.ndarray, triangles, G: int, colour=None, n_zoom: int = 4, size: float = 3.4) -> Figure:
    """The regular G×G grid over the flattened face, and how its vertices and triangles are numbered.

    Panel 0: the mesh in UV (filled with the per-vertex ``colour`` (N, 3) if given, else its edges), the G² grid
    points and the four corner vertices k = row·G + col. Panel 1: the
    top-left ``n_zoom``×``n_zoom`` vertices with their indices k and the two counter-clockwise triangles per cell
    (numbers at the centroids, arrows along the winding), drawn as seen from the front (u right, v up).
    """
    uv = np.asarray(uv, dtype=np.float64)
    F = as_numpy(triangles).astype(np.int64)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size, size))
    ax = axes[0]
    if colour is None:
        _draw_uv_edges(ax, uv, F, colour="0.6", lw=0.2)
    else:
        _fill_uv(ax, uv, F, facecolors=np.clip(as_numpy(colour), 0, 1)[F].mean(1))
    g = grid_uv(G)
    ax.scatter(g[:, 0], g[:, 1], s=max(0.25, 60.0 / G), c="k", alpha=0.7, linewidths=0, zorder=3)
    for k, (dx, dy, ha) in {0: (6, -6, "left"), G - 1: (-6, -6, "right"), G * (G - 1): (6, 6, "left"),
                            G * G - 1: (-6, 6, "right")}.items():
        r, c = divmod(k, G)
        ax.scatter(*g[k], s=40, c="gold", edgecolors="k", zorder=5)
        ax.annotate(f"k={k}\n(row {r}, col {c})", g[k], xytext=(dx, dy), textcoords="offset points", ha=ha,
                    fontsize=7, va="top" if dy < 0 else "bottom", zorder=6,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "w", "ec": "none", "alpha": 0.85})
    _uv_axes(ax, f"{G}×{G} grid over the flattened face")
    ax.set_xlabel("u = col / (G − 1)   (col →)", fontsize=8)
    ax.set_ylabel("v = 1 − row / (G − 1)   (row ↓)", fontsize=8)

    ax = axes[1]
    m = max(2, min(n_zoom, G))
    T = grid_triangles(G).numpy()
    r, c = np.divmod(np.arange(G * G), G)
    xy = np.stack([c, -r], axis=1).astype(float)  # seen from the front: col right, row down the page
    cells = [(a, b) for a in range(m - 1) for b in range(m - 1)]
    for a, b in cells:
        for t in (2 * (a * (G - 1) + b), 2 * (a * (G - 1) + b) + 1):
            p = xy[T[t]]
            ax.add_patch(plt.Polygon(p, closed=True, fc="tab:blue" if t % 2 == 0 else "tab:cyan", alpha=0.25,
                                     ec="k", lw=0.8))
            cen = p.mean(0)
            ax.text(*cen, f"t{t}", ha="center", va="center", fontsize=7)
            for i in range(3):  # winding arrows, shrunk towards the centroid
                s, e = p[i] + 0.3 * (cen - p[i]), p[(i + 1) % 3] + 0.3 * (cen - p[(i + 1) % 3])
                ax.annotate("", e, s, arrowprops={"arrowstyle": "->", "color": "0.3", "lw": 0.6})
    for k in np.flatnonzero((r < m) & (c < m)):
        ax.scatter(*xy[k], s=22, c="k", zorder=3)
        ax.annotate(f"{k}", xy[k], xytext=(3, 3), textcoords="offset points", fontsize=7, color="tab:red")
    ax.set_xticks(range(m))
    ax.set_yticks([-i for i in range(m)], [str(i) for i in range(m)])
    ax.set_xlabel("col")
    ax.set_ylabel("row")
    ax.set_xlim(-0.4, m - 0.6)
    ax.set_ylim(-(m - 0.6), 0.4)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
    ax.set_title(f"top-left corner: vertex k = row·{G} + col,\n2 counter-clockwise triangles per cell", fontsize=9)
    fig.tight_layout()
    return fig


def fig_grid_model(model: MorphableModel, grid_model: MorphableModel, every: int | None = None,
                   size: float = 3.0) -> Figure:
    """The original mesh next to the model resampled on the G×G grid (drawn by :func:`draw_mesh`).

    Panels: (0) the original mean, front; (1) the grid model's mean, front; (2) the grid model at yaw 40° with
    every ``every``-th grid row and column drawn as lines on the surface (default: about 14 lines each way).
    """
    G = grid_size(grid_model)
    every = every or max(1, G // 14)
    fig, axes = plt.subplots(1, 3, figsize=(3 * size, size * 1.12))
    draw_mesh(axes[0], model.mean, model.triangles, colour=model.colour)
    axes[0].set_title(f"original: {model.n_vertices} vertices,\n{model.n_triangles} triangles", fontsize=9)
    draw_mesh(axes[1], grid_model.mean, grid_model.triangles, colour=grid_model.colour)
    axes[1].set_title(f"resampled: {G}×{G} = {G * G} vertices,\n{grid_model.n_triangles} triangles", fontsize=9)
    R = rotation_from_angles(yaw=40)
    v = draw_mesh(axes[2], grid_model.mean, grid_model.triangles, R=R, colour=grid_model.colour)
    T = as_numpy(grid_model.triangles).astype(np.int64)
    p = v[T]
    fn = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    vn = np.zeros_like(v)
    for i in range(3):
        np.add.at(vn, T[:, i], fn)
    facing = (vn[:, 2] > 0).reshape(G, G)  # vertex normals towards the viewer: skip lines on the far side
    X = v.reshape(G, G, 3)[..., :2]
    idx = list(range(0, G, every)) + ([G - 1] if (G - 1) % every else [])
    segs = []
    for i in idx:
        for line, ok in ((X[i], facing[i]), (X[:, i], facing[:, i])):
            keep = ok[:-1] & ok[1:]
            segs.extend(np.stack([line[:-1], line[1:]], 1)[keep])
    axes[2].add_collection(LineCollection(segs, colors="k", linewidths=0.45, alpha=0.6))
    axes[2].set_title(f"grid rows and columns (every {every}th)\nat yaw 40°", fontsize=9)
    fig.tight_layout()
    return fig


def _grid_image_axes(ax: Axes, G: int, title: str) -> None:
    ax.set_title(title, fontsize=9)
    ticks = [0, (G - 1) // 2, G - 1]
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xlabel("col (u →)", fontsize=8)
    ax.set_ylabel("row (v ↓)", fontsize=8)
    ax.tick_params(labelsize=7)


def fig_geometry_images(grid_model: MorphableModel, size: float = 3.0) -> Figure:
    """The paper's Figure 3 on the grid model: the face in 3-D, its flattened colour and its geometry image.

    Panels: (0) the grid model's mean face, front; (1) the mean albedo as a G×G image; (2) the mean shape as a
    geometry image, x, y, z each scaled to [0, 1] and shown as red, green, blue.
    """
    G = grid_size(grid_model)
    fig, axes = plt.subplots(1, 3, figsize=(3 * size, size * 1.1))
    draw_mesh(axes[0], grid_model.mean, grid_model.triangles, colour=grid_model.colour)
    axes[0].set_title("mean face (grid model)", fontsize=9)
    if grid_model.colour is not None:
        axes[1].imshow(flattened_colour(grid_model), interpolation="nearest")
        _grid_image_axes(axes[1], G, f"flattened colour ({G}×{G})")
    else:
        axes[1].text(0.5, 0.5, "no colour in this model", ha="center", va="center")
        axes[1].axis("off")
    axes[2].imshow(geometry_image(grid_model), interpolation="nearest")
    _grid_image_axes(axes[2], G, "geometry image: (x, y, z) → (r, g, b)")
    fig.tight_layout()
    return fig


def _grid_rc(indices: np.ndarray, G: int) -> tuple[np.ndarray, np.ndarray]:
    r, c = np.divmod(np.asarray(indices, dtype=np.int64), G)
    return r, c


def fig_grid_landmarks(model: MorphableModel, uv: np.ndarray, grid_model: MorphableModel, key: str = "aflw21",
                       size: float = 3.6) -> Figure:
    """Landmarks in UV and on the grid.

    Panel 0: the source mesh in UV, each landmark at its own UV (circle) and at the grid vertex it is mapped to
    (cross), numbered 1..L. Panel 1: the flattened colour image (G×G) with the grid landmarks, mirror pairs
    joined by a line along their row, and the column (G − 1) // 2 used for the midline landmarks (dashed).
    """
    uv = np.asarray(uv, dtype=np.float64)
    _, F = _mesh(model)
    G = grid_size(grid_model)
    src = as_numpy(model.landmarks[key]).astype(np.int64)
    dst = as_numpy(grid_model.landmarks[key]).astype(np.int64)
    ok = (src >= 0) & (dst >= 0)
    g = grid_uv(G)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size, size * 1.05))
    ax = axes[0]
    _fill_uv(ax, uv, F, facecolors=_vertex_colours(model)[F].mean(1))
    _draw_uv_edges(ax, uv, F, colour="w", lw=0.15, alpha=0.5)
    p, q = uv[src[ok]], g[dst[ok]]
    ax.add_collection(LineCollection(np.stack([p, q], 1), colors="k", linewidths=0.8))
    ax.scatter(p[:, 0], p[:, 1], s=28, facecolors="none", edgecolors="tab:cyan", linewidths=1.3, zorder=4,
               label="landmark vertex")
    ax.scatter(q[:, 0], q[:, 1], s=28, marker="x", c="tab:red", linewidths=1.3, zorder=5, label="grid vertex")
    for j, pt in zip(np.flatnonzero(ok), p, strict=True):
        ax.annotate(str(j + 1), pt, xytext=(3, 3), textcoords="offset points", fontsize=6.5, color="w")
    ax.legend(loc="lower right", fontsize=7)
    _uv_axes(ax, f"{key} in UV and on the {G}×{G} grid")

    ax = axes[1]
    img = flattened_colour(grid_model) if grid_model.colour is not None else geometry_image(grid_model)
    ax.imshow(img, interpolation="nearest")
    r, c = _grid_rc(dst, G)
    L = len(dst)
    flip = flip_permutation(L) if L in (21, 68) else np.arange(L)
    for j in np.flatnonzero(ok & (flip > np.arange(L))):
        ax.plot([c[j], c[flip[j]]], [r[j], r[flip[j]]], color="w", lw=0.6, alpha=0.8)
    ax.axvline((G - 1) // 2, color="w", lw=0.6, ls="--")
    ax.scatter(c[ok], r[ok], s=22, marker="x", c="tab:red", linewidths=1.2, zorder=4)
    for j in np.flatnonzero(ok):
        ax.annotate(str(j + 1), (c[j], r[j]), xytext=(2, -8), textcoords="offset points", fontsize=6.5, color="w")
    _grid_image_axes(ax, G, f"on the flattened image: pairs at cols c and {G - 1} − c")
    fig.tight_layout()
    return fig


def fig_authors_uv(uv: np.ndarray, landmarks: np.ndarray | None = None, zoom=((0.46, 0.54), (0.435, 0.47)),
                   size: float = 3.6) -> Figure:
    """The authors' ``BFM_UV.mat`` as a scatter: left / midline / right vertices, and a zoom (mouth band).

    Panel 0: every vertex at its UV (left of u = 0.5 blue, on it red, right orange), the ``landmarks`` (vertex
    indices, optional) as stars. Panel 1: the region ``zoom`` = ((u0, u1), (v0, v1)).
    """
    uv = np.asarray(uv, dtype=np.float64)
    side = np.where(uv[:, 0] < 0.5, 0, np.where(uv[:, 0] > 0.5, 2, 1))
    colours = np.array(["tab:blue", "tab:red", "tab:orange"])[side]
    counts = square_boundary_counts(uv)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size, size * 1.05))
    sizes = np.array([[0.15, 1.5, 0.15], [2.0, 6.0, 2.0]])  # (panel, side): the midline drawn larger
    for ax, sz in zip(axes, sizes, strict=True):
        order = np.argsort(side == 1, kind="stable")  # midline on top
        ax.scatter(uv[order, 0], uv[order, 1], s=sz[side[order]], c=colours[order], linewidths=0, rasterized=True)
        if landmarks is not None:
            lm = np.asarray(landmarks, dtype=np.int64)
            lm = lm[lm >= 0]
            ax.scatter(uv[lm, 0], uv[lm, 1], s=40, marker="*", c="gold", edgecolors="k", linewidths=0.6, zorder=4)
    _uv_axes(axes[0], f"{len(uv)} vertices: {counts['left']} left, {counts['midline']} on u = 0.5, "
                      f"{counts['right']} right\nsides: u=0 {counts['u=0']}, u=1 {counts['u=1']}, "
                      f"v=0 {counts['v=0']}, v=1 {counts['v=1']}")
    (u0, u1), (v0, v1) = zoom
    axes[0].add_patch(plt.Rectangle((u0, v0), u1 - u0, v1 - v0, fill=False, ec="k", lw=0.8))
    _uv_axes(axes[1], f"zoom: u ∈ [{u0:g}, {u1:g}], v ∈ [{v0:g}, {v1:g}]", xlim=(u0, u1), ylim=(v0, v1))
    fig.tight_layout()
    return fig
