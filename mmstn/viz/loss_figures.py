"""Figures for chapter 4 (the losses and fitting): what each loss compares, loss landscapes, fits."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from mmstn.layers.grid import labels_to_pixels
from mmstn.losses import mirror_columns
from mmstn.viz.style import plain_log_ticks, point_style, to_rgb

__all__ = ["fig_fit", "fig_landscape", "fig_siamese_pair", "fig_symmetry_pair"]


def _show(ax, img, title: str, frame: bool = False) -> None:
    ax.imshow(img, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    if frame:  # keep the outline so that a white mask stays visible on a white page
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        ax.axis("off")


def fig_symmetry_pair(flattened: torch.Tensor, mask: torch.Tensor, title: str = "") -> Figure:
    """What the symmetry loss compares for one image: W, its mirror, the joint mask, |W − mirror(W)|.

    Args:
        flattened: (C, G, G) flattened face W.
        mask: (1, G, G) visibility M.
        title: a suptitle (e.g. the pose).
    """
    joint = mask * mirror_columns(mask)
    diff = ((flattened - mirror_columns(flattened)).abs() * joint).mean(0)
    fig, axes = plt.subplots(1, 4, figsize=(11, 3.0))
    _show(axes[0], to_rgb(flattened), "W (flattened)")
    _show(axes[1], to_rgb(mirror_columns(flattened)), "mirror(W): column c ↔ G−1−c")
    _show(axes[2], to_rgb(joint), "M · mirror(M): compared cells", frame=True)
    axes[3].imshow(diff.numpy(), cmap="magma", vmin=0, vmax=max(float(diff.max()), 1e-6))
    axes[3].set_title("|W − mirror(W)| on compared cells", fontsize=9)
    axes[3].axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def fig_siamese_pair(
    image: torch.Tensor, mirrored_image: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, m1: torch.Tensor,
    m2: torch.Tensor,
) -> Figure:
    """What the siamese loss compares: an image, its reflection, their flattened faces, and the second
    mirrored back so that the same surface point sits in the same cell."""
    fig, axes = plt.subplots(1, 5, figsize=(14, 3.0))
    _show(axes[0], to_rgb(image), "image")
    _show(axes[1], to_rgb(mirrored_image), "its reflection")
    _show(axes[2], to_rgb(w1 * m1), "W₁ (from the image)")
    _show(axes[3], to_rgb(w2 * m2), "W₂ (from the reflection)")
    _show(axes[4], to_rgb(mirror_columns(w2 * m2)), "mirror(W₂): compared with W₁")
    fig.tight_layout()
    return fig


def fig_landscape(yaw_offsets_deg: np.ndarray, curves: dict[str, np.ndarray], title: str = "") -> Figure:
    """Each loss (normalised to its maximum) as a function of the yaw offset from the true pose."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for name, values in curves.items():
        v = np.asarray(values, dtype=float)
        span = v.max() - v.min()
        ax.plot(yaw_offsets_deg, (v - v.min()) / (span if span > 0 else 1.0), label=name, lw=2)
    ax.axvline(0.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("yaw offset from the true pose (degrees)")
    ax.set_ylabel("loss (rescaled to [0, 1])")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def fig_fit(
    image: torch.Tensor,
    labels: torch.Tensor,
    fitted: torch.Tensor,
    flattened: torch.Tensor,
    mask: torch.Tensor,
    history: dict[str, list[float]],
    start: torch.Tensor | None = None,
) -> Figure:
    """A fit at a glance: the image with labels (yellow rings), start (vermilion x) and fit (blue +), the
    landmark error per iteration, and the flattened output with its mask.

    Args:
        image: (C, H, W); labels, fitted, start: (L, 2) label frame; flattened: (C, G, G); mask: (1, G, G).
    """
    h = image.shape[-2]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
    _show(axes[0], to_rgb(image), "labels (o), start (x), fit (+)")
    for pts, role in ((labels, "label"), (start, "start"), (fitted, "estimate")):
        if pts is not None:
            p = labels_to_pixels(pts.detach().float(), h).numpy()
            axes[0].scatter(p[:, 0], p[:, 1], **point_style(role))
    err = history.get("landmark_error", [])
    axes[1].semilogy(np.arange(1, len(err) + 1), np.maximum(err, 1e-3))
    plain_log_ticks(axes[1])
    axes[1].set_xlabel("objective evaluation")
    axes[1].set_ylabel("mean landmark error (px)")
    axes[1].grid(True, which="both", alpha=0.3)
    _show(axes[2], to_rgb(flattened * mask), "flattened output W = V·M")
    _show(axes[3], to_rgb(mask), "visibility mask M", frame=True)
    fig.tight_layout()
    return fig
