"""The reconstruction explorer of notebook 08: how much of a face a model-based fit explains as K grows.

Like the other explorers (:mod:`mmstn.viz.widgets`), it draws a matplotlib figure into an ``ipywidgets.Image``
(PNG), so it works in a browser, under nbval and in plain Python tests, where setting a control's ``value`` runs
the same callback a reader triggers. Fits are cached per (K, lighting), so moving back is instant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch

from mmstn.models.morphable import MorphableModel
from mmstn.reconstruction import TextureFit, fit_texture, render_reconstruction
from mmstn.scores import photometric_error, retained_detail
from mmstn.stn import STN3DMM
from mmstn.viz.mesh import figure_to_png
from mmstn.viz.recon_figures import _face_crop, grid_rgb

__all__ = ["ReconstructionExplorer", "ReconstructionView", "reconstruction_explorer"]


@dataclass
class ReconstructionView:
    """One fit as the explorer shows it.

    Attributes:
        fit: the :class:`~mmstn.reconstruction.TextureFit`.
        rendered: (3, H, W) the reconstruction rendered over the input.
        flattened: (3, G, G) the rendered reconstruction resampled by the STN.
        image_rmse: photometric error against the input over the fitted face pixels.
        detail: detail energy of the flattened reconstruction relative to the STN output's (σ = 1.5 cells).
        pixels: (H, W) bool, the face pixels compared in the image.
    """

    fit: TextureFit
    rendered: torch.Tensor
    flattened: torch.Tensor
    image_rmse: float
    detail: float
    pixels: torch.Tensor


@dataclass
class ReconstructionExplorer:
    """A texture-component slider and a lighting checkbox, redrawing the model-based reconstruction live.

    Attributes:
        stn: the STN; model: its grid model (colour and texture basis); image: (3, H, W); theta: (6 + D,).
        components: ``IntSlider`` for K, 0 (mean albedo) .. the full basis — the first slider of :attr:`widget`.
        lighting: ``Checkbox``: model the light with 9 SH coefficients per channel (else a colour gain).
        image_widget: the ``ipywidgets.Image`` holding the current figure (PNG).
        status: a ``Label`` with the current scores.
        widget: the box to display.
        renders: figures drawn so far (1 after construction).
        last: the :class:`ReconstructionView` shown.
    """

    stn: STN3DMM
    model: MorphableModel
    image: torch.Tensor
    theta: torch.Tensor
    components: widgets.IntSlider
    lighting: widgets.Checkbox
    image_widget: widgets.Image
    status: widgets.Label
    widget: widgets.Box
    renders: int = 0
    last: ReconstructionView | None = None
    _cache: dict[tuple[int, bool], ReconstructionView] = field(default_factory=dict, repr=False)

    def view(self, k: int | None = None, lighting: bool | None = None) -> ReconstructionView:
        """The fit for K = ``k`` and ``lighting`` (default: the controls' values), computed once and cached."""
        key = (int(self.components.value if k is None else k), bool(self.lighting.value if lighting is None
                                                                     else lighting))
        if key not in self._cache:
            fit = fit_texture(self.stn, self.image, self.theta, key[0], key[1], model=self.model)
            rec = render_reconstruction(self.stn, fit, background=self.image)
            dtype = self.stn.generator.morphable.mean.dtype
            with torch.no_grad():
                flat = self.stn(rec.image[None].to(dtype), fit.theta[None].to(dtype)).sampled[0].float()
            pix = torch.from_numpy(rec.valid)[None]
            self._cache[key] = ReconstructionView(
                fit=fit,
                rendered=rec.image,
                flattened=flat,
                image_rmse=float(photometric_error(rec.image, self.image, pix)),
                detail=float(retained_detail(flat, fit.target, fit.mask).energy_ratio),
                pixels=pix[0],
            )
        return self._cache[key]

    def render(self, *_: object) -> None:
        """Redraw for the current controls: input, rendered and flattened reconstruction, STN output, residual."""
        v = self.view()
        fit = v.fit
        m = fit.mask
        resid = ((v.flattened - fit.target).abs().mean(0) * m[0]).numpy()
        resid = np.where(m[0].numpy() > 0.5, resid, np.nan)
        fig, axes = plt.subplots(1, 5, figsize=(12.5, 2.9))
        light = "SH lighting (27 coefficients)" if fit.lighting else "colour gain only (no lighting model)"
        fr, fc = _face_crop(v.pixels)
        panels = [
            (self.image.permute(1, 2, 0).clamp(0, 1).numpy()[fr, fc], "input"),
            (v.rendered.permute(1, 2, 0).clamp(0, 1).numpy()[fr, fc],
             f"reconstruction, K = {fit.n_components}\n({'SH lighting' if fit.lighting else 'colour gain only'})"),
            (grid_rgb(v.flattened, m), "its flattened texture"),
            (grid_rgb(fit.target, m), "3DMM-STN output"),
        ]
        for ax, (img, title) in zip(axes[:4], panels, strict=True):
            ax.imshow(img, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        im = axes[4].imshow(resid, cmap="magma", vmin=0.0, vmax=0.15, interpolation="nearest")
        axes[4].set_title("|flattened reconstruction − output|", fontsize=9)
        axes[4].axis("off")
        fig.colorbar(im, ax=axes[4], fraction=0.046, pad=0.02)
        fig.tight_layout()
        self.image_widget.value = figure_to_png(fig)
        self.status.value = (f"K = {fit.n_components}, {light}: image RMSE {v.image_rmse:.4f}; grid RMSE "
                             f"{fit.rmse:.4f}; detail energy {v.detail:.2f} of the 3DMM-STN output's")
        self.last = v
        self.renders += 1


def reconstruction_explorer(
    stn: STN3DMM,
    model: MorphableModel,
    image: torch.Tensor,
    theta: torch.Tensor,
    n_components: int = 2,
    lighting: bool = True,
) -> ReconstructionExplorer:
    """Build the live reconstruction explorer of notebook 08.

    Args:
        stn: the STN; model: its grid model with colour and texture basis.
        image: (3, H, W) the input; theta: (6 + D,) or (1, 6 + D) (fitted or true).
        n_components: the slider's start (it runs from 0 to the model's K).
        lighting: the checkbox's start.
    """
    if model.colour is None:
        raise ValueError(f"model {model.name!r} has no colour; the explorer needs a texture model")
    k_max = 0 if model.texture_basis is None else int(model.texture_basis.shape[0])
    slider = widgets.IntSlider(value=int(np.clip(n_components, 0, k_max)), min=0, max=k_max, step=1,
                               description="texture K", continuous_update=False)
    check = widgets.Checkbox(value=bool(lighting), description="model lighting (SH)", indent=False)
    img = widgets.Image(format="png")
    status = widgets.Label()
    box = widgets.VBox([widgets.HBox([slider, check]), status, img])
    theta = theta.reshape(-1)
    ex = ReconstructionExplorer(stn, model, image, theta, slider, check, img, status, box)
    for control in (slider, check):
        control.observe(ex.render, names="value")
    ex.render()
    return ex
