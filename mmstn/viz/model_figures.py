"""Figures of a morphable model for notebook 01: views, principal components, landmarks, random faces."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from mmstn.layers.visibility import vertex_normals
from mmstn.models.morphable import MorphableModel, sample_alpha
from mmstn.transforms import rotation_from_angles
from mmstn.viz.mesh import draw_mesh

__all__ = ["fig_components", "fig_landmarks", "fig_random_faces", "fig_three_views"]

#: Views used throughout: frontal, three-quarter and profile (yaw in degrees, towards the viewer's right).
VIEWS: tuple[tuple[str, float], ...] = (("front", 0.0), ("three-quarter", 45.0), ("profile", 90.0))


def fig_three_views(model: MorphableModel, alpha: torch.Tensor | None = None, size: float = 3.2) -> Figure:
    """The shape X(α) (mean when ``alpha`` is None) shaded from the front, at 45° and in profile."""
    x = model.shape(alpha)
    fig, axes = plt.subplots(1, len(VIEWS), figsize=(size * len(VIEWS), size * 1.1), layout="constrained")
    for ax, (title, yaw) in zip(axes, VIEWS, strict=True):
        draw_mesh(ax, x, model.triangles, R=rotation_from_angles(yaw=yaw), colour=model.colour)
        ax.set_title(f"{title} (yaw {yaw:.0f}°)")
    fig.suptitle(model.name)
    return fig


def fig_components(
    model: MorphableModel, kind: str = "identity", n: int = 3, sigma: float = 3.0, size: float = 2.4
) -> Figure:
    """Rows: the first ``n`` identity (or expression) components; columns: −σ·k, mean, +σ·k.

    The ±σ faces are coloured by their signed displacement along the mean face's outward normal (mm; red
    out of the face, blue into it, one colour bar per row), so −σ and +σ read as opposites; the mean is shown
    in its albedo.
    """
    if kind not in ("identity", "expression"):
        raise ValueError(f"kind={kind!r}: use 'identity' or 'expression'")
    offset = 0 if kind == "identity" else model.n_identity
    available = model.n_identity if kind == "identity" else model.n_expression
    n = min(n, available)
    if n == 0:
        raise ValueError(f"model {model.name!r} has no {kind} components")
    fig, axes = plt.subplots(n, 3, figsize=(3 * size + 0.8, n * size * 1.05), squeeze=False, layout="constrained")
    cmap = plt.get_cmap("RdBu_r")
    normals = vertex_normals(model.mean.double()[None], model.triangles, "area")[0]
    normals = (normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)).numpy()
    for row in range(n):
        k = offset + row
        alphas = torch.zeros(3, model.n_components, dtype=model.dtype)
        alphas[0, k], alphas[2, k] = -sigma, sigma
        shapes = model.shape(alphas)
        signed = ((shapes - model.mean).numpy() * normals[None]).sum(-1)  # (3, N) mm along the normal
        vmax = float(np.abs(signed).max()) or 1.0
        norm = plt.Normalize(-vmax, vmax)
        for col in range(3):
            colour = model.colour if col == 1 else cmap(norm(signed[col]))[:, :3]
            draw_mesh(axes[row, col], shapes[col], model.triangles, R=rotation_from_angles(yaw=30), colour=colour)
            label = ["−", "", "+"][col]
            title = f"{kind} {row + 1}: {label}{sigma:g}σ" if col != 1 else "mean"
            axes[row, col].set_title(title, fontsize=9)
        fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[row, :], shrink=0.8,
                     label="along normal (mm)")
    return fig


def fig_landmarks(model: MorphableModel, size: float = 4.5) -> Figure:
    """The mean face with its landmark sets: AFLW-21 numbered as in the paper, and iBUG-68 if present."""
    sets = [k for k in ("aflw21", "ibug68") if k in model.landmarks]
    fig, axes = plt.subplots(1, max(1, len(sets)), figsize=(size * max(1, len(sets)), size), squeeze=False)
    for ax, key in zip(axes[0], sets or ["none"], strict=True):
        v = draw_mesh(ax, model.mean, model.triangles, colour=model.colour)
        if key == "none":
            ax.set_title("no landmarks")
            continue
        idx = model.landmarks[key].numpy()
        ok = idx >= 0
        pts = v[idx[ok]]
        ax.scatter(pts[:, 0], pts[:, 1], s=14, c="tab:cyan", edgecolors="k", linewidths=0.5, zorder=3)
        if key == "aflw21":
            for j, p in zip(np.flatnonzero(ok), pts, strict=True):
                ax.annotate(str(j + 1), p[:2], xytext=(3, 3), textcoords="offset points", fontsize=7, color="w")
        ax.set_title(f"{key}: {int(ok.sum())} points")
    fig.tight_layout()
    return fig


def fig_random_faces(model: MorphableModel, n: int = 6, seed: int = 0, size: float = 2.4) -> Figure:
    """``n`` faces X(α) with α drawn from the prior, at a slight three-quarter view."""
    alphas = sample_alpha(model, n, seed)
    shapes = model.shape(alphas)
    fig, axes = plt.subplots(1, n, figsize=(n * size, size * 1.1), layout="constrained")
    for i, ax in enumerate(np.atleast_1d(axes)):
        draw_mesh(ax, shapes[i], model.triangles, R=rotation_from_angles(yaw=20), colour=model.colour)
        ax.set_title(f"‖α‖ = {float(alphas[i].norm()):.1f}", fontsize=9)
    fig.suptitle("faces drawn from the prior α ~ N(0, I)")
    return fig
