"""The 3DMM-STN's resampling against a model-based reconstruction of the same images (the paper's Fig. 9):
:func:`compare_methods` runs both at the same θ and :class:`Comparison` holds the outputs and their scores
(:mod:`mmstn.scores`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mmstn.errors import ShapeError
from mmstn.models.morphable import MorphableModel
from mmstn.reconstruction import fit_texture, render_reconstruction
from mmstn.render.grid import render_grid_colours
from mmstn.runtime import one_thread
from mmstn.scores import photometric_error, retained_detail

__all__ = ["Comparison", "compare_methods"]


@dataclass
class Comparison:
    """The 3DMM-STN output and a model-based reconstruction of the same images (:func:`compare_methods`).

    P images, G×G grid, H×W images. "Flattened" fields are unmasked; :attr:`mask` says which cells count.

    Attributes:
        images: (P, 3, H, W) the inputs.
        theta: (P, 6 + D) the θ used for both methods.
        stn_output: (P, 3, G, G) the STN's samples V of the input.
        stn_mask: (P, 1, G, G) the STN's visibility mask.
        reconstruction: (P, 3, G, G) the rendered reconstruction sampled by the same STN at the same θ (the
            reconstruction's flattened texture, comparable cell by cell with ``stn_output``).
        reconstruction_vertex: (P, 3, G, G) the fitted shading × albedo at every grid vertex.
        albedo: (P, 3, G, G) the fitted albedo c̄ + Σ β_k T_k.
        mask: (P, 1, G, G) the cells compared: those the fit used (visible, inside, clean samples).
        reconstruction_images: (P, 3, H, W) the reconstruction rendered over the input.
        stn_images: (P, 3, H, W) the STN output rendered back over the input.
        pixels: (P, H, W) bool, the pixels compared: covered by grid triangles with three used vertices (and
            inside the true face mask when one was given).
        fits: the :class:`~mmstn.reconstruction.TextureFit` of every image.
        truth, truth_pca: optional (P, 3, G, G) true shaded texture with and without the fine detail.
    """

    images: torch.Tensor
    theta: torch.Tensor
    stn_output: torch.Tensor
    stn_mask: torch.Tensor
    reconstruction: torch.Tensor
    reconstruction_vertex: torch.Tensor
    albedo: torch.Tensor
    mask: torch.Tensor
    reconstruction_images: torch.Tensor
    stn_images: torch.Tensor
    pixels: torch.Tensor
    fits: list = field(default_factory=list)
    truth: torch.Tensor | None = None
    truth_pca: torch.Tensor | None = None

    def method_outputs(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Method name → (flattened (P, 3, G, G), rendered image (P, 3, H, W))."""
        return {
            "3DMM-STN output": (self.stn_output, self.stn_images),
            "model-based reconstruction": (self.reconstruction, self.reconstruction_images),
        }

    @one_thread()
    def scores(self, sigma: float = 1.5) -> dict[str, dict[str, float]]:
        """Mean scores over the images, per method (the keys are the table's columns):

        * ``image RMSE``: :func:`photometric_error` of the rendered output against the input over :attr:`pixels`;
        * ``grid RMSE vs input``: against the STN's samples of the input over :attr:`mask` (0 for the STN output,
          which *is* that resampling);
        * ``grid RMSE vs truth``: against the true shaded texture (when known);
        * ``detail energy vs input`` / ``vs truth``: :func:`retained_detail` energy ratios (σ cells);
        * ``detail corr. vs truth``: the correlation of the detail layers;
        * ``out-of-span detail corr.``: the correlation with the detail the model cannot represent
          (``baseline=truth_pca``).
        """
        out: dict[str, dict[str, float]] = {}
        for name, (flat, img) in self.method_outputs().items():
            row = {
                "image RMSE": float(photometric_error(img, self.images, self.pixels[:, None]).nanmean()),
                "grid RMSE vs input": float(photometric_error(flat, self.stn_output, self.mask).nanmean()),
                "detail energy vs input": float(
                    retained_detail(flat, self.stn_output, self.mask, sigma).energy_ratio.nanmean()),
            }
            if self.truth is not None:
                d = retained_detail(flat, self.truth, self.mask, sigma)
                row["grid RMSE vs truth"] = float(photometric_error(flat, self.truth, self.mask).nanmean())
                row["detail energy vs truth"] = float(d.energy_ratio.nanmean())
                row["detail corr. vs truth"] = float(d.correlation.nanmean())
                if self.truth_pca is not None:
                    o = retained_detail(flat, self.truth, self.mask, sigma, baseline=self.truth_pca)
                    row["out-of-span detail corr."] = float(o.correlation.nanmean())
            out[name] = row
        return out


@one_thread()
def compare_methods(
    stn,
    model: MorphableModel,
    images: torch.Tensor,
    theta: torch.Tensor,
    n_components: int | None = None,
    lighting: bool = True,
    *,
    truth: torch.Tensor | None = None,
    truth_pca: torch.Tensor | None = None,
    face_mask: torch.Tensor | None = None,
    **fit_options,
) -> Comparison:
    """Run the 3DMM-STN and the model-based fit (:func:`mmstn.reconstruction.fit_texture`) on the same images.

    Args:
        stn: the STN; model: its grid model with colour and texture basis.
        images: (P, 3, H, W); theta: (P, 6 + D), fitted or true.
        n_components, lighting: passed to ``fit_texture``.
        truth, truth_pca: optional (P, 3, G, G) true textures (:class:`~mmstn.data.detailed_subjects.SubjectImages`).
        face_mask: optional (P, H, W) true face pixels (restricts the compared pixels).
        fit_options: further keyword arguments of ``fit_texture``.

    Returns:
        :class:`Comparison`.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ShapeError(f"images must have shape (P, 3, H, W), got {getattr(images, 'shape', type(images))}")
    if not isinstance(theta, torch.Tensor) or theta.ndim != 2 or theta.shape[0] != images.shape[0]:
        raise ShapeError(f"theta must have shape ({images.shape[0]}, 6 + D), got {getattr(theta, 'shape', None)}")
    dtype = stn.generator.morphable.mean.dtype
    keys = ("stn_output", "stn_mask", "reconstruction", "reconstruction_vertex", "albedo", "mask",
            "reconstruction_images", "stn_images", "pixels")
    acc: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    fits = []
    for i in range(images.shape[0]):
        f = fit_texture(stn, images[i], theta[i], n_components, lighting, model=model, **fit_options)
        rec = render_reconstruction(stn, f, background=images[i])
        with torch.no_grad():
            resampled = stn(rec.image[None].to(dtype), theta[i : i + 1].to(dtype)).sampled[0].float()
        back = render_grid_colours(stn, theta[i], f.target, background=images[i], visible=f.mask)
        pix = torch.from_numpy(rec.valid)
        if face_mask is not None:
            pix = pix & face_mask[i].bool()
        for k, v in zip(keys, (f.target, f.stn_mask, resampled, f.reconstruction_grid, f.albedo_grid, f.mask,
                               rec.image, back.image, pix), strict=True):
            acc[k].append(v)
        fits.append(f)
    return Comparison(images=images, theta=theta.detach().clone(), fits=fits, truth=truth, truth_pca=truth_pca,
                      **{k: torch.stack(v) for k, v in acc.items()})
