"""Figures for chapters 3 and 4: the grid generator's layers, the sampler, visibility and masking.

Conventions used by every figure here:

* points are in the **label frame** (1-based column x, y up, as the STN produces them);
* an image drawn with :func:`imshow_label_frame` uses ``extent = (0.5, W + 0.5, 0.5, H + 0.5)``, so label
  coordinates can be plotted directly on it (pixel centres sit at integer label coordinates);
* G×G arrays (grids, masks, flattened faces) are drawn with row 0 at the top, the layout of the output image.

:func:`check_gradients` is the gradient check the notebooks print for every layer: the hand-written backward
against the ``"autograd"`` backend (or another reference) and against finite differences in float64.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from mmstn.layers.grid import grid_coefficients, grid_to_pixels, labels_to_pixels
from mmstn.layers.rotation import rodrigues, rodrigues_jacobian
from mmstn.layers.visibility import grid_normal_z
from mmstn.models.morphable import MorphableModel
from mmstn.runtime import as_numpy
from mmstn.transforms import rotation_from_angles
from mmstn.viz.mesh import draw_mesh
from mmstn.viz.style import to_rgb

__all__ = [
    "component_label",
    "fig_align_corners",
    "fig_alpha_effect",
    "fig_generator_configs",
    "fig_label_frames",
    "fig_mislabelled_sweep",
    "fig_projection",
    "fig_rotate_about_origin",
    "fig_rotation_effect",
    "fig_sampling",
    "fig_sampling_grid",
    "fig_scale_bases",
    "fig_stn_strip",
    "fig_translation",
    "fig_visibility_compare",
    "grid_outline",
    "imshow_label_frame",
]


# ------------------------------------------------------------------------------------------ helpers

def imshow_label_frame(ax: Axes, image: torch.Tensor, ticks: bool = True) -> None:
    """Draw a (C, H, W) image so that label-frame coordinates (1-based x, y up) can be plotted on it directly.

    The pixel in 1-based row ρ and column c is centred at label (c, H + 1 − ρ).
    """
    h, w = image.shape[-2:]
    ax.imshow(to_rgb(image), extent=(0.5, w + 0.5, 0.5, h + 0.5), origin="upper", interpolation="nearest")
    ax.set_xlim(0.5, w + 0.5)
    ax.set_ylim(0.5, h + 0.5)
    if ticks:
        ax.set_xticks([1, w // 2, w])
        ax.set_yticks([1, h // 2, h])
        ax.tick_params(labelsize=7)
        ax.set_xlabel("x (label frame)", fontsize=8)
        ax.set_ylabel("y (label frame, up)", fontsize=8)
    else:
        ax.set_xticks([])
        ax.set_yticks([])


def _show_grid_image(ax: Axes, img, title: str, **kw) -> None:
    """A G×G array or (C, G, G) tensor, row 0 at the top."""
    if isinstance(img, torch.Tensor) and img.ndim == 3:
        img = to_rgb(img)
    ax.imshow(as_numpy(img), interpolation="nearest", **kw)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def grid_outline(points: torch.Tensor, grid_size: int) -> np.ndarray:
    """The border of a G×G grid model's points, (N, 2) → closed polyline (4G − 3, 2).

    Row 0 left to right (the forehead), the last column downwards, the last row right to left (the chin),
    the first column upwards: the outline of the flattened region, i.e. of the face.
    """
    g = int(grid_size)
    p = as_numpy(points).reshape(g, g, -1)[..., :2]
    return np.concatenate([p[0, :], p[1:, -1], p[-1, -2::-1], p[-2::-1, 0]], 0)


def _wireframe(ax: Axes, points: torch.Tensor, grid_size: int, step: int, **kw) -> None:
    """Every ``step``-th row and column of the grid as polylines (label-frame points)."""
    g = int(grid_size)
    p = as_numpy(points).reshape(g, g, 2)
    idx = sorted({*range(0, g, step), g - 1})
    kw = {"lw": 0.5, "color": "cyan", "alpha": 0.8, **kw}
    for i in idx:
        ax.plot(p[i, :, 0], p[i, :, 1], **kw)
        ax.plot(p[:, i, 0], p[:, i, 1], **kw)


def component_label(model: MorphableModel, k: int) -> str:
    """'identity 1', 'expression 2', ... for coefficient k (0-based) of ``model``."""
    if k < model.n_identity:
        return f"identity {k + 1}"
    return f"expression {k - model.n_identity + 1}"


# ----------------------------------------------------------------------------------- gradient checks
# ------------------------------------------------------------------------------ chapter 3 figures
def fig_alpha_effect(
    grid_model: MorphableModel, components: Sequence[int] = (0, 1, 5), amount: float = 3.0, yaw: float = 50.0,
    size: float = 2.6,
) -> Figure:
    """Layer 1: what one coefficient does to the face. One row per component: the shape at α_k = −amount and
    +amount (seen at ``yaw``), and ‖P_k‖ per vertex in the G×G layout (mm per unit of α_k).
    """
    g = math.isqrt(grid_model.n_vertices)
    comps = list(components)
    fig, axes = plt.subplots(len(comps), 3, figsize=(3 * size, len(comps) * size), squeeze=False)
    view = rotation_from_angles(yaw=yaw)
    centre = as_numpy(grid_model.mean).mean(0)
    lims = []
    for row, k in enumerate(comps):
        for col, sign in enumerate((-1.0, 1.0)):
            alpha = torch.zeros(grid_model.n_components, dtype=grid_model.dtype)
            alpha[k] = sign * amount
            v = draw_mesh(axes[row, col], grid_model.shape(alpha), grid_model.triangles, R=view,
                          colour=grid_model.colour, centre=centre)
            lims.append((v[:, 0].min(), v[:, 0].max(), v[:, 1].min(), v[:, 1].max()))
            axes[row, col].set_title(f"{component_label(grid_model, k)}: α = {sign * amount:+.0f}", fontsize=9)
        mag = as_numpy(grid_model.basis[k].norm(dim=-1)).reshape(g, g)
        im = axes[row, 2].imshow(mag, cmap="magma", interpolation="nearest")
        axes[row, 2].set_title(f"‖P_{k + 1}‖ per vertex (mm), G×G", fontsize=9)
        axes[row, 2].axis("off")
        fig.colorbar(im, ax=axes[row, 2], fraction=0.046, pad=0.02).ax.tick_params(labelsize=7)
    lo = np.min(lims, 0)
    hi = np.max(lims, 0)
    pad = 4.0
    for row in range(len(comps)):
        for col in range(2):
            axes[row, col].set_xlim(lo[0] - pad, hi[1] + pad)
            axes[row, col].set_ylim(lo[2] - pad, hi[3] + pad)
    fig.tight_layout()
    return fig


def fig_rotation_effect(grid_model: MorphableModel, angle_deg: float = 25.0, step: int = 9, size: float = 3.0
                        ) -> Figure:
    """Layer 2: the face rotated by r = angle·e_i for i = x, y, z, with the 2-D part of the derivative
    ∂(R X)/∂r_i (from :func:`~mmstn.layers.rodrigues_jacobian`) drawn as arrows on visible vertices.
    """
    g = math.isqrt(grid_model.n_vertices)
    x = grid_model.mean.double()
    names = ("r_x: pitch (nose down)", "r_y: yaw (nose to the right)", "r_z: roll (anticlockwise)")
    fig, axes = plt.subplots(1, 3, figsize=(3 * size, size * 1.1))
    sel = torch.zeros(g, g, dtype=torch.bool)
    sel[::step, ::step] = True
    sel = sel.reshape(-1)
    for i, ax in enumerate(axes):
        r = torch.zeros(1, 3, dtype=torch.float64)
        r[0, i] = math.radians(angle_deg)
        rot = rodrigues(r)
        xr = x @ rot[0].T
        draw_mesh(ax, xr, grid_model.triangles, colour=grid_model.colour, centre=np.zeros(3))
        vel = x @ rodrigues_jacobian(r)[0, i].T  # ∂(R x)/∂r_i for every vertex, mm per radian
        vis = grid_normal_z(xr[None], g)[0] > 0
        m = sel & vis
        p, d = as_numpy(xr[m]), as_numpy(vel[m])
        ax.quiver(p[:, 0], p[:, 1], d[:, 0], d[:, 1], color="crimson", angles="xy", scale_units="xy", scale=4.0,
                  width=0.006)
        ax.plot([0], [0], "k+", ms=8, mew=1.5)
        ax.set_title(f"r = {angle_deg:.0f}° · e_{'xyz'[i]}\n{names[i]}", fontsize=9)
    fig.suptitle("arrows: ∂(R X)/∂r_i · 0.25 rad (the motion of a further 0.25 rad); +: the model origin", fontsize=9)
    fig.tight_layout()
    return fig


def fig_rotate_about_origin(shape: torch.Tensor, rotated: torch.Tensor, size: float = 3.4) -> Figure:
    """Layer 3: X′ = R X rotates about the model origin, not about the face's centroid.

    Drawn for a G×G grid model: seen from above, the row of vertices through the nose tip; seen by the camera,
    the face outline (the grid's border) and the same row; before (grey) and after (blue) the rotation.

    Args:
        shape: (N, 3) X, mm.
        rotated: (N, 3) X′ = R X, mm.
    """
    x, xr = as_numpy(shape), as_numpy(rotated)
    g = math.isqrt(x.shape[0])
    nose_row = int(np.argmax(x[:, 2])) // g
    c, cr = x.mean(0), xr.mean(0)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size, size))
    views = ((axes[0], (0, 2), "seen from above (x, z): the nose row"),
             (axes[1], (0, 1), "seen by the camera (x, y)"))
    for ax, (i, j), title in views:
        for pts, colour, name in ((x, "0.6", "X"), (xr, "tab:blue", "X′ = R X")):
            row = pts.reshape(g, g, 3)[nose_row]
            ax.plot(row[:, i], row[:, j], color=colour, lw=1.5, label=name)
            if j == 1:
                o = grid_outline(torch.from_numpy(pts[:, [0, 1]]), g)
                ax.plot(o[:, 0], o[:, 1], color=colour, lw=1.5)
        ax.plot([0], [0], "k+", ms=10, mew=2, label="origin")
        ax.plot([c[i], cr[i]], [c[j], cr[j]], "r.-", ms=8, label="centroid")
        ax.set_aspect("equal")
        ax.set_xlabel(f"{'xyz'[i]} (mm)", fontsize=8)
        ax.set_ylabel(f"{'xyz'[j]} (mm)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def fig_projection(rotated: torch.Tensor, every: int = 3, size: float = 3.4) -> Figure:
    """Layer 4: orthographic projection keeps (x′, y′) and drops the depth z′ (shown as colour)."""
    x = as_numpy(rotated)[::every]
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 0.6, size))
    vmin, vmax = x[:, 2].min(), x[:, 2].max()
    axes[0].scatter(x[:, 2], x[:, 1], s=1, c=x[:, 2], cmap="viridis", vmin=vmin, vmax=vmax)
    left = vmax + 25
    axes[0].axvline(left, color="k", lw=1.5)
    for yy in np.linspace(x[:, 1].min(), x[:, 1].max(), 6):
        axes[0].annotate("", xy=(left, yy), xytext=(left - 22, yy), arrowprops={"arrowstyle": "->", "color": "0.4"})
    axes[0].text(left + 2, x[:, 1].max(), "image\nplane", fontsize=7, va="top")
    axes[0].set_xlabel("z′ (mm, towards the camera)", fontsize=8)
    axes[0].set_ylabel("y′ (mm)", fontsize=8)
    axes[0].set_title("X′ seen from the side", fontsize=9)
    sc = axes[1].scatter(x[:, 0], x[:, 1], s=1, c=x[:, 2], cmap="viridis", vmin=vmin, vmax=vmax)
    axes[1].set_xlabel("x′ (mm)", fontsize=8)
    axes[1].set_title("Y = (x′, y′); colour: the dropped z′", fontsize=9)
    for ax in axes:
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
    fig.colorbar(sc, ax=axes[1], fraction=0.046, pad=0.02).ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def fig_scale_bases(projected: torch.Tensor, grid_size: int, t: tuple[float, float] = (112.0, 112.0),
                    s0: float = 0.8, size: float = 3.1) -> Figure:
    """Layer 5: s = exp(logs) (the paper) against s = 0.99^logs (the authors' code).

    Left: s against logs for both bases. Middle and right: the face outline (the grid's border) at three
    log-scales for each base, centred on ``t``: the same sizes need 100× larger logs with the opposite sign.

    Args:
        projected: (N, 2) projected points Y, mm.
        grid_size: G.
        t: translation, label frame.
        s0: the middle scale (px/mm).
    """
    fig, axes = plt.subplots(1, 3, figsize=(3 * size + 0.4, size))
    ls = np.linspace(-2, 2, 201)
    axes[0].semilogy(ls, np.exp(ls), lw=2, label="exp(logs) (paper)")
    axes[0].semilogy(ls, 0.99**ls, lw=2, ls="--", label="0.99^logs (code)")
    axes[0].axhline(1.0, color="k", lw=0.5)
    axes[0].set_xlabel("logs", fontsize=8)
    axes[0].set_ylabel("s (log axis)", fontsize=8)
    axes[0].set_yticks([0.2, 0.5, 1, 2, 5])
    axes[0].set_yticklabels(["0.2", "0.5", "1", "2", "5"])
    axes[0].minorticks_off()
    axes[0].legend(fontsize=7)
    axes[0].tick_params(labelsize=7)
    axes[0].set_title("s against logs", fontsize=9)
    outline = grid_outline(projected, grid_size)
    colours = ("tab:orange", "k", "tab:green")
    for ax, kappa, name, base0 in ((axes[1], 1.0, "exp", math.log(s0)),
                                   (axes[2], math.log(0.99), "0.99", math.log(s0) / math.log(0.99))):
        step = 0.3 if kappa == 1.0 else 0.3 / abs(kappa)
        for colour, delta in zip(colours, (-step, 0.0, step), strict=True):
            logs = base0 + delta
            s = math.exp(kappa * logs)
            o = outline * s + np.asarray(t)
            ax.plot(o[:, 0], o[:, 1], color=colour, lw=1.4, label=f"logs = {logs:+.1f}: s = {s:.2f}")
        ax.plot(*t, "k+", ms=8)
        ax.set_xlim(0.5, 224.5)
        ax.set_ylim(0.5, 224.5)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=1, frameon=False)
        ax.set_title(f"s = {name}^logs" if name == "0.99" else "s = exp(logs)", fontsize=9)
    fig.tight_layout()
    return fig


def fig_translation(image: torch.Tensor, scaled: torch.Tensor, grid_size: int,
                    translations: Sequence[tuple[float, float]] = ((112.0, 112.0), (80.0, 140.0)), size: float = 3.6
                    ) -> Figure:
    """Layer 6: Y″ = s·Y + t in the label frame, drawn over the image for a few t.

    Args:
        image: (C, H, W).
        scaled: (N, 2) s·Y (before translation), pixels.
        grid_size: G.
        translations: the t to draw (label frame).
    """
    fig, ax = plt.subplots(figsize=(size, size))
    imshow_label_frame(ax, image)
    outline = grid_outline(scaled, grid_size)
    colours = ("cyan", "orange", "lime", "magenta")
    for colour, t in zip(colours, translations, strict=False):
        o = outline + np.asarray(t)
        ax.plot(o[:, 0], o[:, 1], color=colour, lw=1.2)
        ax.plot(*t, "+", color=colour, ms=10, mew=2)
        ax.annotate(f"t = ({t[0]:.0f}, {t[1]:.0f})", t, xytext=(5, 5), textcoords="offset points", color=colour,
                    fontsize=8, bbox={"facecolor": "black", "alpha": 0.6, "pad": 1, "edgecolor": "none"})
    ax.set_title("Y″ = s·Y + t (label frame)", fontsize=9)
    fig.tight_layout()
    return fig


def fig_label_frames(size: int = 4, fig_size: float = 4.2) -> Figure:
    """Layer 7: the label frame against the sampler frame on a tiny size×size image.

    Pixels are drawn in 0-based pixel coordinates (x0 right, y0 down). Black: pixel centres with their
    label-frame coordinates (1-based x, y up). Blue: where the ``"pixel"`` normalisation makes
    ``grid_sample(align_corners=True)`` read those label points (exactly at the centres). Red: where the
    authors' (X − W/2)/(W/2) normalisation reads them, x0 = X·(W − 1)/W, y0 = (H − Y)·(H − 1)/H.
    """
    w = h = int(size)
    fig, ax = plt.subplots(figsize=(fig_size, fig_size))
    for r in range(h):
        for c in range(w):
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=(r + c) % 2 == 0, color="0.92", ec="0.6"))
    cols, rows = np.meshgrid(np.arange(w), np.arange(h))
    lab = torch.tensor(np.stack([cols.ravel() + 1, h - rows.ravel()], -1), dtype=torch.float64)
    ax.plot(cols.ravel(), rows.ravel(), "ko", ms=4)
    for (x0, y0), (xl, yl) in zip(np.stack([cols.ravel(), rows.ravel()], -1), as_numpy(lab), strict=True):
        ax.text(x0, y0 - 0.12, f"({xl:.0f}, {yl:.0f})", ha="center", va="bottom", fontsize=8)
    for frame, colour, marker in (("pixel", "tab:blue", "s"), ("matconvnet", "tab:red", "x")):
        ox, dx, oy, dy = grid_coefficients(frame, (h, w))
        gx, gy = (lab[:, 0] - ox) / dx, (oy - lab[:, 1]) / dy
        read = as_numpy(grid_to_pixels(torch.stack([gx, gy], -1), (h, w)))
        ax.plot(read[:, 0], read[:, 1], marker, color=colour, ms=7, mfc="none", mew=1.5,
                label=f"read with the {frame!r} normalisation")
    ax.set_xlim(-0.6, w - 0.4)
    ax.set_ylim(h - 0.4, -0.6)
    ax.set_aspect("equal")
    ax.set_xticks(range(w))
    ax.set_yticks(range(h))
    ax.set_xlabel("x0 = column (0-based)", fontsize=8)
    ax.set_ylabel("y0 = row (0-based, down)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    ax.set_title(f"{w}×{h} pixels: centres labelled (x, y) in the label frame", fontsize=9)
    fig.tight_layout()
    return fig


def fig_sampling_grid(image: torch.Tensor, points: torch.Tensor, grid: torch.Tensor, step: int = 8,
                      size: float = 3.2) -> Figure:
    """Layer 7: the G×G layout. Left: every ``step``-th grid vertex over the image, coloured by its column,
    with row 0 (the top of the output, the forehead) in red and vertex k = 0 marked. Middle and right: the
    two channels of the grid, g_x and g_y, as G×G images (vertex k = row·G + col at pixel (row, col)).

    Args:
        image: (C, H, W).
        points: (N, 2) label-frame points; grid: (G, G, 2).
    """
    g = grid.shape[0]
    p = as_numpy(points).reshape(g, g, 2)
    fig, axes = plt.subplots(1, 3, figsize=(3 * size + 0.8, size))
    imshow_label_frame(axes[0], image)
    rr, cc = np.meshgrid(np.arange(0, g, step), np.arange(0, g, step), indexing="ij")
    axes[0].scatter(p[rr, cc, 0], p[rr, cc, 1], s=3, c=cc, cmap="viridis")
    axes[0].plot(p[0, :, 0], p[0, :, 1], "r-", lw=1.5, label="row 0")
    axes[0].plot(*p[0, 0], "wo", ms=6, mec="k", label="k = 0")
    axes[0].legend(fontsize=7, loc="lower right")
    axes[0].set_title("grid vertices, coloured by column", fontsize=9)
    for ax, ch, name in ((axes[1], 0, "g_x = grid[row, col, 0]"), (axes[2], 1, "g_y = grid[row, col, 1]")):
        im = ax.imshow(as_numpy(grid[..., ch]), cmap="coolwarm", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("col", fontsize=8)
        ax.set_ylabel("row", fontsize=8)
        ax.tick_params(labelsize=7)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def fig_generator_configs(image: torch.Tensor, points: torch.Tensor, reads: Mapping[str, torch.Tensor],
                          zoom: tuple[float, float] | None = None, half: float = 3.0, size: float = 3.4) -> Figure:
    """Two grid normalisations of the same points: where the sampler reads, and how far apart.

    Args:
        image: (C, H, W).
        points: (N, 2) label-frame points (the same for both configurations).
        reads: two entries name → (G, G, 2) 0-based pixel positions the sampler reads
            (:func:`~mmstn.layers.grid_to_pixels` of each grid).
        zoom: label-frame centre of the zoomed window (default: the mean point).
        half: half-width of the zoomed window, pixels.
    """
    (n1, r1), (n2, r2) = list(reads.items())[:2]
    h = image.shape[-2]
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 0.6, size))
    ax = axes[0]
    ax.imshow(to_rgb(image), interpolation="nearest")
    p = as_numpy(points)
    cx, cy = (p.mean(0) if zoom is None else np.asarray(zoom, dtype=float))
    x0c, y0c = cx - 1, h - cy  # 0-based pixel coordinates of the zoom centre
    ax.set_xlim(x0c - half - 0.5, x0c + half + 0.5)
    ax.set_ylim(y0c + half + 0.5, y0c - half - 0.5)
    for v in np.arange(math.floor(x0c - half) - 0.5, x0c + half + 1):  # pixel boundaries
        ax.axvline(v, color="w", lw=0.5, alpha=0.7)
    for v in np.arange(math.floor(y0c - half) - 0.5, y0c + half + 1):
        ax.axhline(v, color="w", lw=0.5, alpha=0.7)
    px = as_numpy(labels_to_pixels(torch.as_tensor(points, dtype=torch.float64), h))
    a, b = as_numpy(r1).reshape(-1, 2), as_numpy(r2).reshape(-1, 2)
    inside = (np.abs(px[:, 0] - x0c) < half) & (np.abs(px[:, 1] - y0c) < half)
    ax.plot(px[inside, 0], px[inside, 1], "k.", ms=4, label="label point (as a pixel position)")
    ax.plot(a[inside, 0], a[inside, 1], "s", color="tab:blue", mfc="none", ms=5, label=f"read: {n1}")
    ax.plot(b[inside, 0], b[inside, 1], "x", color="tab:red", ms=5, label=f"read: {n2}")
    ax.set_title("zoom: where the sampler reads", fontsize=9)
    ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.04), frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    d = np.linalg.norm(as_numpy(r1) - as_numpy(r2), axis=-1)
    im = axes[1].imshow(d, cmap="magma", interpolation="nearest", vmin=0, vmax=max(1.0, float(d.max())))
    axes[1].set_title(f"|read({n1}) − read({n2})| (px), G×G", fontsize=9)
    axes[1].axis("off")
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.02).ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ chapter 4 figures
def fig_align_corners(size: int = 4, sample: tuple[float, float] = (1.35, 2.6), fig_size: float = 3.4) -> Figure:
    """Pixel centres and the normalised grid coordinate, ``align_corners=True`` against ``False``.

    With ``True`` (the STN's, MatConvNet's) −1 and +1 are the centres of the first and last pixels,
    x0 = (g + 1)/2·(W − 1); with ``False`` they are the outer edges, x0 = ((g + 1)·W − 1)/2. The left panel
    also shows one sample point (0-based ``sample`` = (x0, y0)) with its four taps and bilinear weights.
    """
    w = h = int(size)
    fig, axes = plt.subplots(1, 2, figsize=(2 * fig_size, fig_size + 0.3))
    for ax, aligned in zip(axes, (True, False), strict=True):
        for r in range(h):
            for c in range(w):
                ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=(r + c) % 2 == 0, color="0.92", ec="0.6"))
        cols, rows = np.meshgrid(np.arange(w), np.arange(h))
        ax.plot(cols.ravel(), rows.ravel(), "ko", ms=3)
        gvals = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
        pos = (gvals + 1) / 2 * (w - 1) if aligned else ((gvals + 1) * w - 1) / 2
        ax.set_xticks(pos)
        ax.set_xticklabels([f"{v:g}" for v in gvals], fontsize=7)
        ax.xaxis.tick_top()
        ax.set_yticks(pos)
        ax.set_yticklabels([f"{v:g}" for v in gvals], fontsize=7)
        for v in pos[[0, -1]]:
            ax.axvline(v, color="tab:blue", lw=1, ls="--")
            ax.axhline(v, color="tab:blue", lw=1, ls="--")
        ax.set_xlim(-0.7, w - 0.3)
        ax.set_ylim(h - 0.3, -0.7)
        ax.set_aspect("equal")
        ax.set_title(f"align_corners={aligned}: g = ±1 at the {'pixel centres' if aligned else 'outer edges'}",
                     fontsize=9, y=1.12)
        ax.set_ylabel("g_y", fontsize=8)
    xs, ys = sample
    ax = axes[0]
    ax.plot(xs, ys, "r*", ms=11)
    fx, fy = xs - math.floor(xs), ys - math.floor(ys)
    for dx in (0, 1):
        for dy in (0, 1):
            wgt = (fx if dx else 1 - fx) * (fy if dy else 1 - fy)
            tx, ty = math.floor(xs) + dx, math.floor(ys) + dy
            ax.plot([xs, tx], [ys, ty], "r-", lw=0.8 + 3 * wgt)
            ax.text(tx + 0.06, ty + 0.28, f"{wgt:.2f}", color="crimson", fontsize=7)
    ax.set_xlabel(f"sample at (x0, y0) = ({xs}, {ys}): four taps and their weights", fontsize=8)
    fig.tight_layout()
    return fig


def fig_sampling(image: torch.Tensor, points: torch.Tensor, sampled: Mapping[str, torch.Tensor], step: int = 8,
                 size: float = 3.0) -> Figure:
    """The sampler: the grid over the image, the sampled G×G image V for one normalisation, and |ΔV| between two.

    Args:
        image: (C, H, W).
        points: (N, 2) label-frame points.
        sampled: name → V (C, G, G); the first is shown, the first two are differenced.
    """
    (n1, v1), (n2, v2) = list(sampled.items())[:2]
    g = v1.shape[-1]
    fig, axes = plt.subplots(1, 3, figsize=(3 * size + 0.5, size))
    imshow_label_frame(axes[0], image, ticks=False)
    _wireframe(axes[0], points, g, step)
    axes[0].set_title("the grid over the input", fontsize=9)
    _show_grid_image(axes[1], v1, f"V = sampler(U, grid), {n1}")
    diff = (v1 - v2).abs().amax(0)
    im = axes[2].imshow(as_numpy(diff), cmap="magma", interpolation="nearest", vmin=0)
    axes[2].set_title(f"|V({n1}) − V({n2})|", fontsize=9)
    axes[2].axis("off")
    fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.02).ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def fig_visibility_compare(backface: torch.Tensor, exact: torch.Tensor, image: torch.Tensor | None = None,
                           points: torch.Tensor | None = None, title: str = "", size: float = 2.9) -> Figure:
    """Back-face visibility against the exact (ray-cast) visibility.

    Args:
        backface, exact: (G, G) or (N,) bool masks (vertex k = row·G + col).
        image, points: optional (C, H, W) image and (N, 2) label-frame points; if given, a fourth panel marks
            the mislabelled vertices on the image.
        title: a suptitle.

    Colours of the comparison: white both visible, black both hidden, red visible by back-face but occluded,
    blue hidden by back-face but actually visible.
    """
    n = backface.numel()
    g = math.isqrt(n)
    bf = as_numpy(backface.reshape(g, g)).astype(bool)
    ex = as_numpy(exact.reshape(g, g)).astype(bool)
    cmp_img = np.zeros((g, g, 3))
    cmp_img[bf & ex] = 1.0
    cmp_img[bf & ~ex] = (0.85, 0.1, 0.1)
    cmp_img[~bf & ex] = (0.1, 0.3, 0.95)
    panels = 4 if image is not None and points is not None else 3
    fig, axes = plt.subplots(1, panels, figsize=(panels * size, size + 0.2))
    _show_grid_image(axes[0], bf, "back-face mask M", cmap="gray", vmin=0, vmax=1)
    _show_grid_image(axes[1], ex, "exact (ray cast + back faces)", cmap="gray", vmin=0, vmax=1)
    frac = float((bf != ex).mean())
    _show_grid_image(axes[2], cmp_img, f"disagree: {100 * frac:.1f} % of vertices")
    if panels == 4:
        imshow_label_frame(axes[3], image, ticks=False)
        p = as_numpy(points).reshape(g, g, 2)
        for m, colour in ((bf & ~ex, "red"), (~bf & ex, "blue")):
            axes[3].scatter(p[m][:, 0], p[m][:, 1], s=1.5, c=colour)
        axes[3].set_title("mislabelled vertices on the image", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def fig_mislabelled_sweep(yaws_deg: np.ndarray, curves: Mapping[str, np.ndarray], paper: float = 0.05,
                          size: tuple[float, float] = (6.0, 3.3)) -> Figure:
    """Fraction of vertices the back-face test mislabels, against yaw, one curve per configuration."""
    fig, ax = plt.subplots(figsize=size)
    for name, v in curves.items():
        ax.plot(yaws_deg, 100 * np.asarray(v, dtype=float), "o-", ms=3, lw=1.5, label=name)
    ax.axhline(100 * paper, color="k", lw=0.8, ls="--", label=f"paper: about {100 * paper:.0f} %")
    ax.set_xlabel("yaw (degrees)")
    ax.set_ylabel("mislabelled vertices (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def fig_stn_strip(images: torch.Tensor | Sequence[torch.Tensor], outputs: Sequence, names: Sequence[str],
                  n_points: int = 14, size: float = 2.3) -> Figure:
    """The paper's Fig. 6 strip, one row per STN output: input, projected grid points (visible cyan, hidden
    red), sampled V, mask M, and W = V·M.

    Args:
        images: one (C, H, W) image for all rows, or one per row.
        outputs: :class:`~mmstn.stn.STNOutput` s (batch element 0 is drawn).
        names: row labels.
        n_points: about this many grid points are drawn per row and column of the grid.
    """
    rows = len(outputs)
    if isinstance(images, torch.Tensor) and images.ndim == 3:
        images = [images] * rows
    fig, axes = plt.subplots(rows, 5, figsize=(5 * size, rows * size + 0.1), squeeze=False)
    titles = ("input U", "projected grid", "sampled V", "mask M", "W = V·M")
    for i, (img, out, name) in enumerate(zip(images, outputs, names, strict=True)):
        g = out.mask.shape[-1]
        step = max(1, g // n_points)
        imshow_label_frame(axes[i, 0], img, ticks=False)
        imshow_label_frame(axes[i, 1], img, ticks=False)
        p = as_numpy(out.points[0]).reshape(g, g, 2)
        m = as_numpy(out.mask[0, 0]).astype(bool)
        sub = np.zeros((g, g), dtype=bool)
        sub[::step, ::step] = True
        dense = np.zeros((g, g), dtype=bool)
        dense[:: max(1, step // 2), :: max(1, step // 2)] = True
        for sel, colour in ((sub & m, "cyan"), (dense & ~m, "red")):
            axes[i, 1].scatter(p[sel][:, 0], p[sel][:, 1], s=1.2, c=colour)
        _show_grid_image(axes[i, 2], out.sampled[0], "")
        _show_grid_image(axes[i, 3], out.mask[0, 0], "", cmap="gray", vmin=0, vmax=1)
        _show_grid_image(axes[i, 4], out.flattened[0], "")
        for j, t in enumerate(titles):
            axes[i, j].set_title(t if i == 0 else "", fontsize=9)
        axes[i, 0].set_ylabel(name, fontsize=9)
    fig.tight_layout()
    return fig
