"""Figures for chapter 6 (training the localiser): the initial θ, loss curves, the paper's Fig. 6 strip,
landmark error against yaw, and one prediction at a glance."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from mmstn.layers.grid import labels_to_pixels
from mmstn.viz.style import plain_log_ticks, point_style, to_rgb

__all__ = [
    "fig_error_vs_yaw",
    "fig_initial_projection",
    "fig_loss_curves",
    "fig_prediction",
    "fig_strip",
    "smooth",
]

PAPER_ERROR_PX = 2.35


def _off(ax, title: str = "") -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def _points(ax, pts: torch.Tensor | None, h: int, role: str, size: float = 10, label: str | None = None) -> None:
    if pts is None:
        return
    p = labels_to_pixels(torch.as_tensor(pts).detach().float(), h).numpy()
    ax.scatter(p[:, 0], p[:, 1], label=label, **point_style(role, size))


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Running mean over ``window`` entries (NaNs ignored), same length as ``values``."""
    v = np.asarray(values, dtype=float)
    if window <= 1 or v.size == 0:
        return v
    ok = ~np.isnan(v)
    c = np.cumsum(np.where(ok, v, 0.0))
    n = np.cumsum(ok)
    c = np.concatenate([[0.0], c])
    n = np.concatenate([[0], n])
    idx = np.arange(1, v.size + 1)
    lo = np.maximum(idx - window, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (c[idx] - c[lo]) / (n[idx] - n[lo])


def fig_initial_projection(image: torch.Tensor, landmarks: torch.Tensor, labels: torch.Tensor | None = None,
                           title: str = "") -> Figure:
    """The mean face's landmarks under the initial θ (vermilion x) over an image, with the image's labels (yellow o).

    Args:
        image: (3, S, S); landmarks, labels: (21, 2) label frame.
    """
    fig, ax = plt.subplots(figsize=(3.6, 3.6))
    ax.imshow(to_rgb(image))
    _points(ax, labels, image.shape[-2], "label", label="labels")
    _points(ax, landmarks, image.shape[-2], "start", label="initial θ")
    ax.legend(fontsize=7, loc="lower right")
    _off(ax, title)
    fig.tight_layout()
    return fig


def fig_loss_curves(history: Sequence[dict[str, float]], window: int = 25, title: str = "") -> Figure:
    """Each loss term, the objective, the learning rate and the landmark errors against the step.

    Args:
        history: metrics rows (``mmstn.train.read_metrics``): step, loss, landmark, prior, siamese, symmetry, lr,
            train_landmark_error_px, val_landmark_error_px.
        window: running-mean window for the noisy per-batch values (the raw values are drawn faintly).
    """
    steps = np.array([r["step"] for r in history], dtype=float)
    panels = [("loss", "objective"), ("landmark", "landmark term (px²)"), ("prior", "prior ‖α‖²"),
              ("siamese", "siamese"), ("symmetry", "symmetry"), ("lr", "learning rate")]
    fig, axes = plt.subplots(2, 4, figsize=(14, 5.6))
    flat = axes.ravel()
    for ax, (key, name) in zip(flat, panels, strict=False):
        v = np.array([r.get(key, np.nan) for r in history], dtype=float)
        if key != "lr":
            ax.plot(steps, v, color="0.75", lw=0.6)
            ax.plot(steps, smooth(v, window), lw=1.6)
            if np.nanmin(v) > 0:
                ax.set_yscale("log")
                plain_log_ticks(ax)
        else:
            ax.plot(steps, v, lw=1.6)
        ax.set_title(name, fontsize=9)
        ax.grid(True, alpha=0.3)
    ax = flat[6]
    train_err = np.array([r.get("train_landmark_error_px", np.nan) for r in history], dtype=float)
    val_err = np.array([r.get("val_landmark_error_px", np.nan) for r in history], dtype=float)
    ax.plot(steps, smooth(train_err, window), label="train batch (running mean)")
    ok = ~np.isnan(val_err)
    ax.plot(steps[ok], val_err[ok], "o-", label="validation")
    ax.axhline(PAPER_ERROR_PX, color="k", ls="--", lw=0.8, label="paper: 2.35 px (AFLW)")
    ax.set_yscale("log")
    plain_log_ticks(ax)
    ax.set_title("mean landmark error (px, 224²)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    ax = flat[7]
    ips = np.array([r.get("images_per_s", np.nan) for r in history], dtype=float)
    ax.plot(steps, smooth(ips, window))
    ax.set_title("throughput (images/s, with mirrors)", fontsize=9)
    ax.grid(True, alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("step")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def fig_strip(rows: Sequence[dict[str, torch.Tensor]], titles: Sequence[str] | None = None) -> Figure:
    """The paper's Fig. 6 for several images, one row each: input with the true (yellow o) and estimated (blue +)
    landmarks; the estimated shape rendered in the estimated pose; the sampled image V; the visibility mask M;
    the output W = V ∘ M.

    Args:
        rows: dicts with ``image`` (3, S, S), ``render`` (3, S, S), ``sampled`` (3, G, G), ``mask`` (1, G, G),
            ``flattened`` (3, G, G), ``landmarks`` (21, 2) estimated, optional ``labels`` (21, 2).
        titles: a label per row (e.g. the error).
    """
    n = len(rows)
    cols = ("input: labels (o), estimate (+)", "estimated shape and pose", "sampled V", "mask M",
            "output W = V ∘ M")
    fig, axes = plt.subplots(n, 5, figsize=(12.5, 2.55 * n), squeeze=False)
    for i, row in enumerate(rows):
        h = row["image"].shape[-2]
        ax = axes[i, 0]
        ax.imshow(to_rgb(row["image"]))
        _points(ax, row.get("labels"), h, "label", 7)
        _points(ax, row["landmarks"], h, "estimate", 7)
        ax.set_ylabel(titles[i] if titles else "", fontsize=8)
        axes[i, 1].imshow(to_rgb(row["render"]))
        axes[i, 2].imshow(to_rgb(row["sampled"]))
        axes[i, 3].imshow(to_rgb(row["mask"]), vmin=0, vmax=1)
        axes[i, 4].imshow(to_rgb(row["flattened"]))
        for j in range(5):
            _off(axes[i, j], cols[j] if i == 0 else "")
    fig.tight_layout()
    return fig


def fig_error_vs_yaw(yaw_deg: np.ndarray, error_px: np.ndarray, bins: int = 12, title: str = "") -> Figure:
    """Landmark error of every validation image against its true yaw, with the per-bin median.

    Args:
        yaw_deg: (N,) true yaw, degrees; error_px: (N,) mean landmark error, px.
    """
    yaw, err = np.asarray(yaw_deg, dtype=float), np.asarray(error_px, dtype=float)
    fig, ax = plt.subplots(figsize=(6.8, 3.6))
    ax.scatter(yaw, err, s=8, alpha=0.5, label="validation images")
    edges = np.linspace(-90, 90, bins + 1)
    centres, medians = [], []
    for a, b in itertools.pairwise(edges):
        sel = (yaw >= a) & (yaw < b)
        if sel.any():
            centres.append((a + b) / 2)
            medians.append(np.median(err[sel]))
    ax.plot(centres, medians, "o-", color="C3", label="median per 15° bin")
    ax.axhline(PAPER_ERROR_PX, color="k", ls="--", lw=0.8, label="paper: 2.35 px")
    ax.set_yscale("log")
    plain_log_ticks(ax)
    ax.set_xlabel("true yaw (degrees)")
    ax.set_ylabel("mean landmark error (px)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def fig_prediction(image: torch.Tensor, landmarks: torch.Tensor, labels: torch.Tensor | None,
                   flattened: torch.Tensor, mask: torch.Tensor, title: str = "") -> Figure:
    """One localiser prediction: the image with labels (yellow o) and estimated landmarks (blue +), and the
    flattened output W with its mask.

    Args:
        image: (3, S, S); landmarks, labels: (21, 2); flattened: (3, G, G); mask: (1, G, G).
    """
    fig, axes = plt.subplots(1, 3, figsize=(9.0, 3.2))
    axes[0].imshow(to_rgb(image))
    _points(axes[0], labels, image.shape[-2], "label", 9)
    _points(axes[0], landmarks, image.shape[-2], "estimate", 9)
    _off(axes[0], title or "labels (o), estimate (+)")
    axes[1].imshow(to_rgb(flattened))
    _off(axes[1], "flattened W")
    axes[2].imshow(to_rgb(mask), vmin=0, vmax=1)
    _off(axes[2], "visibility M")
    fig.tight_layout()
    return fig
