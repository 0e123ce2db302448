"""Figures for chapter 8: resampling (the 3DMM-STN) against model-based reconstruction (paper Fig. 9).

Every function returns a matplotlib ``Figure`` (save it with :func:`mmstn.viz.save_figure`). Flattened images
are (3, G, G) tensors, masks (1, G, G), images (3, H, W), all in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mmstn.comparison import Comparison
from mmstn.data.detailed_subjects import SubjectImages
from mmstn.render.shading import SH_NAMES, sh_basis
from mmstn.scores import detail_layer
from mmstn.viz.style import MASKED_VALUE

__all__ = [
    "DEFAULT_ZOOM",
    "fig_detail_layers",
    "fig_fit_recovery",
    "fig_resampling_vs_reconstruction",
    "fig_retained_detail",
    "fig_sh_basis",
    "fig_subjects",
    "grid_rgb",
]

#: The cheek window (row0, row1, col0, col1) of a 112-grid shown enlarged, scaled to other G.
DEFAULT_ZOOM: tuple[float, float, float, float] = (0.30, 0.62, 0.12, 0.44)


def grid_rgb(x: torch.Tensor, mask: torch.Tensor | None = None, background: float = MASKED_VALUE) -> np.ndarray:
    """(3, G, G) (and an optional (1, G, G) mask) → (G, G, 3) array for ``imshow``; masked-out cells black,
    as in every other figure (:data:`mmstn.viz.style.MASKED_VALUE`)."""
    img = x.detach().cpu().float().clamp(0, 1).permute(1, 2, 0).numpy()
    if mask is not None:
        m = mask.detach().cpu().float()[0].numpy()[..., None] > 0.5
        img = np.where(m, img, background)
    return img


def _show(ax: Axes, img: np.ndarray, title: str | None = None, fontsize: int = 8) -> None:
    ax.imshow(img, interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=fontsize)
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)


def _zoom_slice(G: int, zoom: tuple[float, float, float, float]) -> tuple[slice, slice]:
    r0, r1, c0, c1 = (round(z * G) for z in zoom)
    return slice(r0, r1), slice(c0, c1)


def _face_crop(pixels: torch.Tensor, margin: float = 0.12) -> tuple[slice, slice]:
    """A square window around the True pixels of an (H, W) mask, enlarged by ``margin`` of its side."""
    h, w = pixels.shape
    rows, cols = torch.nonzero(pixels, as_tuple=True)
    if rows.numel() == 0:
        return slice(0, h), slice(0, w)
    r0, r1, c0, c1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
    side = int(max(r1 - r0, c1 - c0) * (1 + 2 * margin))
    side = min(side, h, w)
    rc, cc = (r0 + r1) // 2, (c0 + c1) // 2
    r0 = int(np.clip(rc - side // 2, 0, h - side))
    c0 = int(np.clip(cc - side // 2, 0, w - side))
    return slice(r0, r0 + side), slice(c0, c0 + side)


def fig_sh_basis(size: int = 96, scale: float = 1.6) -> Figure:
    """The nine SH basis functions on the hemisphere facing the camera (orthographic view; red > 0 > blue).

    The value at a pixel is Y_j(n) for the sphere's normal n there; the colour scale is common to all nine.
    """
    t = np.linspace(-1.0, 1.0, size)
    x, y = np.meshgrid(t, -t)
    inside = x**2 + y**2 <= 1.0
    z = np.sqrt(np.clip(1.0 - x**2 - y**2, 0.0, None))
    n = torch.from_numpy(np.stack([x, y, z], -1))
    Y = sh_basis(n.reshape(-1, 3)).numpy().reshape(size, size, 9)
    vmax = float(np.abs(Y[inside]).max())
    fig, axes = plt.subplots(1, 9, figsize=(9 * scale * 0.62, scale * 0.95))
    labels = ["l=0", "l=1, y", "l=1, z", "l=1, x", "l=2, xy", "l=2, yz", "l=2, 3z²−1", "l=2, xz", "l=2, x²−y²"]
    for j, ax in enumerate(axes):
        img = np.where(inside, Y[..., j], np.nan)
        ax.imshow(img, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(f"{SH_NAMES[j]}\n{labels[j]}", fontsize=7)
        ax.axis("off")
    fig.tight_layout(pad=0.3)
    return fig


def fig_fit_recovery(beta_true: torch.Tensor, beta_fit: Mapping[str, torch.Tensor], sh_true: torch.Tensor,
                     sh_fit: Mapping[str, torch.Tensor]) -> Figure:
    """Known against recovered coefficients: texture β (bars per component) and the 27 SH coefficients.

    Args:
        beta_true: (K,); beta_fit: label → (K,) for one or more fits.
        sh_true: (3, 9); sh_fit: label → (3, 9).
    """
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 3.0), gridspec_kw={"width_ratios": [1, 2.2]})
    k = np.arange(len(beta_true))
    n = len(beta_fit) + 1
    w = 0.8 / n
    axes[0].bar(k - 0.4 + w / 2, beta_true.numpy(), w, label="true", color="0.3")
    for i, (name, b) in enumerate(beta_fit.items()):
        axes[0].bar(k - 0.4 + w * (i + 1.5), b.detach().numpy(), w, label=name)
    axes[0].set_xticks(k)
    axes[0].set_xlabel("texture component k")
    axes[0].set_ylabel("β_k")
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].legend(fontsize=7)
    j = np.arange(27)
    axes[1].bar(j - 0.4 + w / 2, sh_true.reshape(-1).numpy(), w, label="true", color="0.3")
    for i, (name, s) in enumerate(sh_fit.items()):
        axes[1].bar(j - 0.4 + w * (i + 1.5), s.detach().reshape(-1).numpy(), w, label=name)
    axes[1].set_xticks(j)
    axes[1].set_xticklabels([f"{c}{name}" for c in "RGB" for name in SH_NAMES], rotation=90, fontsize=6)
    axes[1].set_ylabel("SH coefficient ℓ")
    axes[1].axhline(0, color="k", lw=0.5)
    for x in (8.5, 17.5):
        axes[1].axvline(x, color="0.7", lw=0.8)
    fig.tight_layout()
    return fig


def fig_resampling_vs_reconstruction(
    comparison: Comparison,
    indices: Sequence[int],
    *,
    truth: torch.Tensor | None = None,
    zoom: tuple[float, float, float, float] = DEFAULT_ZOOM,
    recon_label: str = "model-based fit (stand-in)",
    crop: bool = True,
    size: float = 1.75,
) -> Figure:
    """Paper Fig. 9 for several images: input, model-based reconstruction rendered, its flattened texture, the
    3DMM-STN output, and enlarged cheeks of both flattened images (plus the true texture when given).

    Args:
        comparison: :func:`mmstn.comparison.compare_methods` output.
        indices: which images (rows).
        truth: optional (P, 3, G, G) true shaded textures, shown last.
        zoom: (row0, row1, col0, col1) fractions of G for the enlarged window (drawn as a box).
        recon_label: how the reconstruction is labelled (ours stands in for regression networks).
        crop: show the images cropped to a square around the compared face pixels.
        size: inches per panel.
    """
    cols = 7 if truth is not None else 6
    fig, axes = plt.subplots(len(indices), cols, figsize=(cols * size, len(indices) * size * 1.02), squeeze=False)
    G = comparison.stn_output.shape[-1]
    rs, cs = _zoom_slice(G, zoom)
    titles = ["input", f"{recon_label}:\nrendered", "its flattened\ntexture", "3DMM-STN output\n(resampled input)",
              "cheek: flattened\nreconstruction", "cheek: 3DMM-STN\noutput", "true texture\n(synthetic)"]
    for row, i in enumerate(indices):
        m = comparison.mask[i]
        rec, stn_out = grid_rgb(comparison.reconstruction[i], m), grid_rgb(comparison.stn_output[i], m)
        fr, fc = _face_crop(comparison.pixels[i]) if crop else (slice(None), slice(None))
        panels = [
            comparison.images[i].permute(1, 2, 0).clamp(0, 1).numpy()[fr, fc],
            comparison.reconstruction_images[i].permute(1, 2, 0).clamp(0, 1).numpy()[fr, fc],
            rec,
            stn_out,
            rec[rs, cs],
            stn_out[rs, cs],
        ]
        if truth is not None:
            panels.append(grid_rgb(truth[i], m))
        for c, img in enumerate(panels):
            _show(axes[row, c], img, titles[c] if row == 0 else None)
        for c in (2, 3):
            axes[row, c].add_patch(plt.Rectangle((cs.start - 0.5, rs.start - 0.5), cs.stop - cs.start,
                                                 rs.stop - rs.start, fill=False, ec="yellow", lw=0.8))
    fig.tight_layout(pad=0.3, h_pad=0.2, w_pad=0.2)
    return fig


def fig_detail_layers(
    layers: Mapping[str, torch.Tensor],
    mask: torch.Tensor,
    sigma: float = 1.5,
    zoom: tuple[float, float, float, float] | None = None,
    size: float = 2.2,
) -> Figure:
    """Detail layers D(x) = x − L_σ(x) (:func:`mmstn.scores.detail_layer`), luminance, one common grey scale.

    Args:
        layers: label → (3, G, G) flattened image (e.g. true texture, STN output, reconstruction).
        mask: (1, G, G) the cells compared.
        sigma: low-pass σ in cells.
        zoom: optional window (fractions of G) to show instead of the whole grid.
    """
    ds = {}
    for name, x in layers.items():
        d, interior = detail_layer(x.double(), mask, sigma)
        ds[name] = (d.mean(0).numpy(), interior[0].numpy() > 0.5)
    vmax = max(float(np.percentile(np.abs(d[m]), 99)) for d, m in ds.values() if m.any())
    fig, axes = plt.subplots(1, len(ds), figsize=(len(ds) * size, size * 1.1), squeeze=False)
    for ax, (name, (d, m)) in zip(axes[0], ds.items(), strict=True):
        img = np.where(m, d, np.nan)
        if zoom is not None:
            rs, cs = _zoom_slice(d.shape[0], zoom)
            img = img[rs, cs]
        # masked cells black, as in every flattened-face figure
        ax.imshow(img, cmap=plt.get_cmap("gray").with_extremes(bad="black"), vmin=-vmax, vmax=vmax,
                  interpolation="nearest")
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"detail layers x − L_σ(x), σ = {sigma:g} cells (grey scale ±{vmax:.3f})", fontsize=9)
    fig.tight_layout(pad=0.3, rect=(0.0, 0.0, 1.0, 0.9))
    return fig


def fig_retained_detail(
    components: Sequence[int],
    recon: Mapping[str, Sequence[float]],
    stn: Mapping[str, float],
    spectra: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    cutoff: float | None = None,
) -> Figure:
    """Retained detail against the number of texture components, and radial power spectra.

    Args:
        components: K values (x axis).
        recon: score name → values of the reconstruction for each K (solid lines).
        stn: score name → the 3DMM-STN output's value (dashed line of the same colour; it has no K).
        spectra: optional label → (frequencies, power) from :func:`mmstn.scores.radial_power_spectrum`.
        cutoff: the detail layer's half-power frequency, marked on the spectra.
    """
    n = 2 if spectra else 1
    fig, axes = plt.subplots(1, n, figsize=(5.4 * n, 3.5), squeeze=False)
    ax = axes[0, 0]
    for i, (name, values) in enumerate(recon.items()):
        colour = f"C{i}"
        ax.plot(components, values, "o-", color=colour, label=f"reconstruction: {name}")
        if name in stn:
            ax.axhline(stn[name], color=colour, ls="--", label=f"3DMM-STN output: {name}")
    ax.set_xlabel("texture components K in the fit")
    ax.set_ylabel("score (1 = all of the true detail)")
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center right")
    if spectra:
        ax = axes[0, 1]
        for name, (f, p) in spectra.items():
            ax.semilogy(f, p, label=name, lw=1.8)
        if cutoff is not None:
            ax.axvline(cutoff, color="k", lw=0.8, ls=":", label=f"detail cut-off {cutoff:.3f}")
        ax.set_xlabel("spatial frequency (cycles per grid cell)")
        ax.set_ylabel("power")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def fig_subjects(subjects: SubjectImages, image_index: int = 0, size: float = 1.6) -> Figure:
    """The synthetic subjects: one image each, the true albedo on the grid, the PCA part the model can
    represent, and the detail it cannot (true albedo ÷ PCA albedo, luminance, grey = 1).

    Args:
        subjects: :func:`mmstn.data.detailed_subjects.sample_subjects` output.
        image_index: which image of each subject to show.
    """
    S = subjects.n_subjects
    fig, axes = plt.subplots(4, S, figsize=(S * size, 4 * size * 1.02), squeeze=False)
    rows = ["image", "true albedo", "PCA part\n(c̄ + Σ β_k T_k)", "detail outside\nthe PCA span"]
    for s in range(S):
        img = subjects.images[s, image_index]
        fr, fc = _face_crop(subjects.face_mask[s, image_index])
        ratio = (subjects.albedo[s] / subjects.model_albedo[s].clamp_min(1e-3)).mean(0).numpy()
        panels = [img.permute(1, 2, 0).clamp(0, 1).numpy()[fr, fc], grid_rgb(subjects.albedo[s]),
                  grid_rgb(subjects.model_albedo[s])]
        for r, p in enumerate(panels):
            _show(axes[r, s], p, f"subject {s}" if r == 0 else None)
        axes[3, s].imshow(ratio, cmap="gray", vmin=0.6, vmax=1.4, interpolation="nearest")
        axes[3, s].set_xticks([])
        axes[3, s].set_yticks([])
    for r, name in enumerate(rows):
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.tight_layout(pad=0.3, h_pad=0.3, w_pad=0.2)
    return fig
