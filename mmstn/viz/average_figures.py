"""Figures for the averaging chapter: the paper's Figs. 7 and 8, how an average sharpens, and the scores."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from mmstn.averaging.photo import PHOTO_SOURCE_LABELS

__all__ = [
    "GUIDE_LANDMARKS",
    "fig_correspondence",
    "fig_masked_vs_plain",
    "fig_photo_sources",
    "fig_psnr_curve",
    "fig_sharpening",
    "fig_subject_averages",
    "fig_subject_outputs",
    "guide_rows",
]

#: Guide lines of Fig. 7: name → 0-based AFLW-21 landmarks whose grid rows are averaged.
GUIDE_LANDMARKS: dict[str, tuple[int, ...]] = {"eyes": (7, 10), "nose": (14,), "mouth": (17, 18, 19)}

_GUIDE_COLOURS = {"eyes": "#33ddff", "nose": "#ffdd33", "mouth": "#ff5577"}


def _rgb(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] → (H, W, 3) for ``imshow``."""
    x = x.detach().cpu().float()
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return x.clamp(0, 1).permute(1, 2, 0).numpy()


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)


def guide_rows(grid_model_or_stn, landmarks: Mapping[str, Sequence[int]] = GUIDE_LANDMARKS) -> dict[str, float]:
    """Rows of the flattened image where the eyes, the nose tip and the mouth sit: name → row (0 = top).

    Args:
        grid_model_or_stn: a grid model (with ``landmarks["aflw21"]``) or an :class:`~mmstn.stn.STN3DMM`.
        landmarks: name → AFLW-21 indices averaged into one row.
    """
    if hasattr(grid_model_or_stn, "generator"):
        idx = grid_model_or_stn.generator.landmark_indices
        g = grid_model_or_stn.generator.grid_size
    else:
        idx = grid_model_or_stn.landmarks["aflw21"]
        g = math.isqrt(int(grid_model_or_stn.n_vertices))
    rows = (idx.long() // g).double()
    return {name: float(rows[list(ks)].mean()) for name, ks in landmarks.items()}


def _guides(ax, rows: Mapping[str, float] | None, width: int, label: bool = False) -> None:
    for name, r in (rows or {}).items():
        ax.axhline(r, color=_GUIDE_COLOURS.get(name, "w"), lw=0.8, alpha=0.9)
        if label:
            ax.text(width + 1, r, name, color="k", fontsize=7, va="center", ha="left", clip_on=False)


def fig_subject_outputs(images: Sequence[torch.Tensor], flattened: Sequence[torch.Tensor],
                        masks: Sequence[torch.Tensor] | None = None, rows: Mapping[str, float] | None = None,
                        average: torch.Tensor | None = None, title: str = "", size: float = 1.55) -> Figure:
    """Paper Fig. 7: several images of one person (top) and their flattened outputs (bottom).

    The same feature lands on the same row of every output whatever the pose: the guide lines (``rows``,
    from :func:`guide_rows`) cross the eyes, nose tip and mouth of each.

    Args:
        images: K crops (3, H, W).
        flattened: K outputs (3, G, G).
        masks: K visibility masks (1, G, G) or (G, G); invisible cells are shown black.
        rows: name → row of the guide lines.
        average: (3, G, G) an average to show in an extra column.
        title: the figure title.
        size: inches per panel.
    """
    k = len(images)
    cols = k + (average is not None)
    fig, axes = plt.subplots(2, cols, figsize=(size * cols + 0.4, size * 2 + 0.35), squeeze=False)
    for j in range(k):
        axes[0, j].imshow(_rgb(images[j]))
        w = flattened[j].detach().cpu().float()
        if masks is not None:
            m = masks[j].detach().cpu().float().reshape(1, *w.shape[-2:])
            w = w * m
        axes[1, j].imshow(_rgb(w), interpolation="nearest")
        _guides(axes[1, j], rows, w.shape[-1])
        axes[0, j].set_title(f"image {j + 1}", fontsize=8)
    if average is not None:
        axes[0, k].axis("off")
        axes[0, k].text(0.5, 0.5, "average of\nall images", ha="center", va="center", fontsize=8,
                        transform=axes[0, k].transAxes)
        axes[1, k].imshow(_rgb(average), interpolation="nearest")
        _guides(axes[1, k], rows, average.shape[-1], label=True)
    for ax in axes.flat:
        _off(ax)
    axes[0, 0].set_ylabel("input", fontsize=8)
    axes[1, 0].set_ylabel("flattened", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.03, right=0.93 if average is not None else 0.99, bottom=0.01, top=0.86,
                        wspace=0.05, hspace=0.12)
    return fig


def fig_subject_averages(averages: Sequence, truths: Sequence[torch.Tensor] | None = None, ncols: int = 5,
                         size: float = 1.7, title: str = "", plain: bool = False) -> Figure:
    """Paper Fig. 8: the subjects' visibility-normalised averages, titled with how many images each averages.

    Black where no image saw the cell.

    Args:
        averages: :class:`~mmstn.averaging.SubjectAverage` s.
        truths: optional true textures (3, G, G), one per average, drawn under each (synthetic subjects).
        ncols: averages per row.
        size: inches per panel.
        title: the figure title.
        plain: show the plain means instead.
    """
    n = len(averages)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    per = 2 if truths is not None else 1
    fig, axes = plt.subplots(nrows * per, ncols, figsize=(size * ncols, (size + 0.25) * nrows * per + 0.3),
                             squeeze=False)
    for ax in axes.flat:
        _off(ax)
        ax.axis("off")
    for k, a in enumerate(averages):
        r, c = divmod(k, ncols)
        ax = axes[r * per, c]
        ax.axis("on")
        img = a.plain if plain else a.average
        ax.imshow(_rgb(img), interpolation="nearest")
        ax.set_title(f"{a.name}: {a.n_images} images", fontsize=8)
        if truths is not None:
            ax2 = axes[r * per + 1, c]
            ax2.axis("on")
            ax2.imshow(_rgb(truths[k]), interpolation="nearest")
            ax2.set_title("true texture", fontsize=7, color="0.35")
    top = 1.0
    if title:
        fig.suptitle(title, fontsize=10)
        top = 1.0 - 0.35 / fig.get_figheight()  # room for the title above the panel titles
    fig.tight_layout(pad=0.3, h_pad=0.4, w_pad=0.3, rect=(0.0, 0.0, 1.0, top))
    return fig


def fig_sharpening(averages: Mapping[int, torch.Tensor], true: torch.Tensor | None = None,
                   psnr: Mapping[int, float] | None = None, size: float = 1.6, title: str = "") -> Figure:
    """One subject's visibility-normalised average after n = 1, 2, 4, … images (and its true texture).

    Args:
        averages: n → (3, G, G) average after the first n images.
        true: (3, G, G) the true texture.
        psnr: n → PSNR (dB) to print under each panel.
        size: inches per panel.
        title: the figure title.
    """
    ns = sorted(averages)
    cols = len(ns) + (true is not None)
    fig, axes = plt.subplots(1, cols, figsize=(size * cols, size + 0.55), squeeze=False)
    for j, n in enumerate(ns):
        ax = axes[0, j]
        ax.imshow(_rgb(averages[n]), interpolation="nearest")
        ax.set_title(f"n = {n}", fontsize=8)
        if psnr is not None and n in psnr:
            ax.set_xlabel(f"{psnr[n]:.1f} dB", fontsize=8)
        _off(ax)
    if true is not None:
        ax = axes[0, -1]
        ax.imshow(_rgb(true), interpolation="nearest")
        ax.set_title("true texture", fontsize=8)
        _off(ax)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(pad=0.3, w_pad=0.3)
    return fig


def fig_masked_vs_plain(average, size: float = 2.3) -> Figure:
    """The two averages of one subject side by side, and the number of images that saw each cell.

    Args:
        average: a :class:`~mmstn.averaging.SubjectAverage`.
        size: inches per panel.
    """
    fig, axes = plt.subplots(1, 3, figsize=(size * 3 + 0.6, size + 0.5))
    axes[0].imshow(_rgb(average.plain), interpolation="nearest")
    axes[0].set_title("plain mean Σ W / n", fontsize=9)
    axes[1].imshow(_rgb(average.average), interpolation="nearest")
    axes[1].set_title("masked: Σ W·M / Σ M", fontsize=9)
    im = axes[2].imshow(average.count.numpy(), cmap="viridis", vmin=0, vmax=max(average.n_images, 1),
                        interpolation="nearest")
    axes[2].set_title("Σ M: images that saw the cell", fontsize=9)
    for ax in axes:
        _off(ax)
    fig.colorbar(im, ax=axes[2], fraction=0.046, pad=0.03)
    fig.suptitle(f"{average.name}: {average.n_images} images", fontsize=10)
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 0.92))
    return fig


def fig_psnr_curve(ns: Sequence[int], curves: Mapping[str, np.ndarray], title: str = "") -> Figure:
    """PSNR of the average against the true texture as a function of the number of images.

    Args:
        ns: the image counts.
        curves: label → array (S, len(ns)) of per-subject PSNRs (dB); the mean is drawn bold, each subject thin.
        title: the axes title.
    """
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    x = np.asarray(ns, dtype=float)
    for k, (label, c) in enumerate(curves.items()):
        arr = np.atleast_2d(np.asarray(c, dtype=float))
        colour = f"C{k}"
        for row in arr:
            ax.plot(x, row, color=colour, lw=0.6, alpha=0.35)
        ax.plot(x, arr.mean(0), "o-", color=colour, lw=2, ms=4, label=f"{label} (mean of {len(arr)})")
    ax.set_xscale("log", base=2)
    ax.set_xticks(x)
    ax.set_xticklabels([str(int(n)) for n in ns])
    ax.set_xlabel("number of images averaged")
    ax.set_ylabel("PSNR vs true texture (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title or "the average sharpens as images are added", fontsize=10)
    fig.tight_layout()
    return fig


def fig_correspondence(scores: Mapping[str, object], matrix: str | None = None) -> Figure:
    """Correspondence scores: within- vs between-subject distance per method, and one distance matrix.

    Args:
        scores: label → :class:`~mmstn.averaging.CorrespondenceScore`.
        matrix: which score's (N, N) distance matrix to draw (default: the first); images sorted by subject.
    """
    labels = list(scores)
    key = labels[0] if matrix is None else matrix
    fig, axes = plt.subplots(1, 2, figsize=(9.2, 3.5), gridspec_kw={"width_ratios": [1.25, 1]})
    ax = axes[0]
    x = np.arange(len(labels))
    within = [scores[k].within for k in labels]  # type: ignore[attr-defined]
    between = [scores[k].between for k in labels]  # type: ignore[attr-defined]
    ax.bar(x - 0.2, within, 0.4, label="same person")
    ax.bar(x + 0.2, between, 0.4, label="different people")
    for i, k in enumerate(labels):
        s = scores[k]
        ax.text(i, max(within[i], between[i]) * 1.02, f"ratio {s.ratio:.2f}\nNN {s.nn_accuracy:.0%}",  # type: ignore[attr-defined]
                ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("RMS difference on cells both saw")
    ax.set_ylim(0, max(max(within), max(between)) * 1.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("within vs between subjects", fontsize=10)
    s = scores[key]
    order = np.argsort(s.subject_ids, kind="stable")  # type: ignore[attr-defined]
    d = s.distances[np.ix_(order, order)]  # type: ignore[attr-defined]
    im = axes[1].imshow(d, cmap="magma_r", interpolation="nearest")
    ids = s.subject_ids[order]  # type: ignore[attr-defined]
    edges = np.flatnonzero(np.diff(ids)) + 0.5
    for e in edges:
        axes[1].axhline(e, color="w", lw=0.6)
        axes[1].axvline(e, color="w", lw=0.6)
    axes[1].set_title(f"pairwise distances ({key}), by subject", fontsize=10)
    axes[1].set_xticks([])
    axes[1].set_yticks([])
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.03)
    fig.tight_layout()
    return fig


def fig_photo_sources(results: Mapping[str, Any], size: float = 1.5, title: str = "") -> Figure:
    """One row of per-person averages per θ source (the paper's Fig. 8 layout in each row), each row labelled
    with its source and correspondence ratio. Black: cells no photo saw.

    Args:
        results: source → :class:`~mmstn.averaging.photo.PhotoAverages`
            (:func:`mmstn.averaging.average_photo_subjects`).
    """
    rows = list(results.values())
    ids = list(dict.fromkeys(s for r in rows for s in r.averages))
    fig, axes = plt.subplots(len(rows), len(ids), figsize=(size * len(ids) + 0.4, (size + 0.3) * len(rows) + 0.3),
                             squeeze=False)
    for i, r in enumerate(rows):
        avs = r.averages
        for j, s in enumerate(ids):
            ax = axes[i, j]
            _off(ax)
            if s in avs:
                ax.imshow(_rgb(avs[s].average), interpolation="nearest")
                head = f"{avs[s].name}: {avs[s].n_images}" if i == 0 else f"{avs[s].n_images}"
                ax.set_title(head, fontsize=7)
            if j == 0:
                ratio = "" if r.score is None else f"\nratio {r.score.ratio:.3f}"
                ax.set_ylabel(f"{PHOTO_SOURCE_LABELS.get(r.source, r.source)}{ratio}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.3, h_pad=0.3, w_pad=0.2)
    return fig
