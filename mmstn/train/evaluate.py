"""Validation metrics of a localiser: landmark error (the paper's 2.35 px), NME, and on synthetic data the
errors of pose, shape and the flattened output against the ground truth.

Per image (:func:`evaluate`):

* ``landmark_error_px``: mean Euclidean distance over the visible landmarks, in pixels of the 224² crop
  (label frame) — the quantity behind the paper's "average landmarking error of 2.35 pixels";
* ``nme_box``: that error divided by the face-box size √(w·h) of the labelled landmarks (visible ones
  when the data has no ground truth for the others), in %;
* with a true θ (synthetic data; its scale is s = exp(logs)):
  ``rotation_error_deg`` (geodesic angle between the rotations), ``yaw_deg`` (the true yaw),
  ``alpha_rmse`` (RMS of α̂ − α over the D coefficients, in standard deviations), ``shape_rmse_mm`` (RMS
  vertex distance between the estimated and the true shape, pose removed), and ``flattened_error`` (mean
  absolute colour difference, over cells visible in both, between the STN's output at θ̂ and at the true θ
  on the same image: how wrong the flattened face is).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mmstn.fitting import landmark_error
from mmstn.localiser import Localiser
from mmstn.render import render_face
from mmstn.stn import STN3DMM
from mmstn.theta import THETA_ALPHA, THETA_R, Theta, ThetaConvention
from mmstn.transforms import axis_angle_to_matrix, matrix_to_euler, rotation_error_deg

__all__ = ["EvalResult", "evaluate", "predict", "stn_rows", "truth_in_stn_frame", "yaw_pitch_roll_deg"]


@dataclass
class EvalResult:
    """What :func:`evaluate` returns.

    Attributes:
        summary: means (and the landmark error's median) over the images, keyed like ``per_image``, plus
            ``n_images``.
        per_image: metric name → float64 array (N,).
        theta: (N, 6 + D) predicted θ (STN frame: the STN config's scale base).
        landmarks: (N, 21, 2) predicted landmarks (label frame).
    """

    summary: dict[str, float]
    per_image: dict[str, np.ndarray]
    theta: torch.Tensor
    landmarks: torch.Tensor


def truth_in_stn_frame(theta: torch.Tensor, stn: STN3DMM, truth_scale_rate: float = 1.0) -> torch.Tensor:
    """Convert a true θ (B, 6 + D) whose scale is s = exp(κ_t·logs) into the STN's convention s = exp(κ·logs)."""
    truth = Theta.from_tensor(theta, ThetaConvention(scale_base=math.exp(truth_scale_rate)))
    return truth.as_tensor_for(stn.config)


def yaw_pitch_roll_deg(r: torch.Tensor) -> torch.Tensor:
    """(B, 3) axis-angle → (B, 3) (yaw, pitch, roll), degrees, of R = R_z(roll) R_y(yaw) R_x(pitch) (synthetic data)."""
    yaw, pitch, roll = matrix_to_euler(axis_angle_to_matrix(r.detach().double().cpu()))
    return torch.rad2deg(torch.stack([yaw, pitch, roll], -1))


def _batches(dataset, batch_size: int, n: int):
    for a in range(0, n, batch_size):
        items = [dataset[i] for i in range(a, min(a + batch_size, n))]
        keys = [k for k in items[0] if all(k in s for s in items)]
        yield {k: torch.stack([torch.as_tensor(s[k]) for s in items]) for k in keys}


@torch.no_grad()
def stn_rows(localiser: Localiser, stn: STN3DMM, mesh, samples: Sequence[dict]) -> list[dict[str, torch.Tensor]]:
    """What the network sees, per sample (the paper's Fig. 6; :func:`mmstn.viz.train_figures.fig_strip`).

    Args:
        localiser, stn: the localiser and the STN its θ is meant for.
        mesh: the morphable model before resampling (the grid model's shape space), rendered at θ̂.
        samples: dicts with ``image`` (3, S, S) and ``landmarks21`` (21, 2).

    Returns:
        per sample: ``image``, ``render`` (the estimated shape in the estimated pose), ``sampled`` (V),
        ``mask`` (M), ``flattened`` (W = V·M), ``landmarks`` (estimated) and ``labels``.
    """
    rows = []
    for smp in samples:
        theta = predict(localiser, smp["image"][None])
        out = stn(smp["image"][None], theta)
        render = render_face(mesh, theta[0], scale_base=stn.config.scale_base).image
        rows.append({"image": smp["image"], "render": render, "sampled": out.sampled[0], "mask": out.mask[0],
                     "flattened": out.flattened[0], "landmarks": out.landmarks[0], "labels": smp["landmarks21"]})
    return rows


@torch.no_grad()
def predict(localiser: Localiser, images: torch.Tensor) -> torch.Tensor:
    """θ (B, 6 + D) for images (B, 3, H, W) with the localiser in eval mode (its mode is restored)."""
    was = localiser.training
    localiser.eval()
    try:
        return localiser(images).float()
    finally:
        localiser.train(was)


@torch.no_grad()
def evaluate(
    localiser: Localiser,
    stn: STN3DMM,
    dataset: Sequence[dict] | torch.utils.data.Dataset,
    *,
    batch_size: int = 32,
    max_images: int | None = None,
    device: str | torch.device | None = None,
    truth_scale_rate: float = 1.0,
    flattened: bool = True,
) -> EvalResult:
    """Evaluate a localiser on a dataset of sample dicts (``image``, ``landmarks21``, ``vis21``[, ``theta``]).

    Args:
        localiser: image (B, 3, S, S) → θ; evaluated in eval mode (its mode is restored afterwards).
        stn: the STN θ is meant for.
        dataset: indexable samples (a Dataset or a list).
        batch_size: images per forward pass.
        max_images: evaluate the first ``max_images`` only.
        device: default: the localiser's device.
        truth_scale_rate: κ of the true θ's scale s = exp(κ·logs) (1: the synthetic data's exp).
        flattened: also compute ``flattened_error`` (one more STN pass per batch).

    Returns:
        :class:`EvalResult` (module docstring for the metrics).
    """
    n = len(dataset) if max_images is None else min(int(max_images), len(dataset))
    if n == 0:
        raise ValueError("evaluate: the dataset is empty")
    dev = next(localiser.parameters()).device if device is None else torch.device(device)
    cols: dict[str, list[np.ndarray]] = {}
    thetas, lms = [], []

    def add(name: str, v: torch.Tensor) -> None:
        cols.setdefault(name, []).append(v.detach().double().cpu().numpy())

    for batch in _batches(dataset, batch_size, n):
        img = batch["image"].to(dev)
        labels, vis = batch["landmarks21"].to(dev), batch["vis21"].to(dev)
        theta = predict(localiser, img)
        out = stn(img, theta)
        err = landmark_error(out.landmarks, labels, vis)
        add("landmark_error_px", err)
        box_pts = labels if "theta" in batch else torch.where(vis[..., None] > 0, labels, labels.new_tensor(math.nan))
        lo = torch.where(box_pts.isnan(), math.inf, box_pts).amin(1)
        hi = torch.where(box_pts.isnan(), -math.inf, box_pts).amax(1)
        size = ((hi - lo).clamp(min=1e-6).prod(-1)).sqrt()
        add("nme_box", 100.0 * err / size)
        if "theta" in batch:
            truth = truth_in_stn_frame(batch["theta"].to(dev).float(), stn, truth_scale_rate)
            add("rotation_error_deg", rotation_error_deg(theta[:, THETA_R], truth[:, THETA_R]))
            add("yaw_deg", yaw_pitch_roll_deg(truth[:, THETA_R])[:, 0])
            d_alpha = theta[:, THETA_ALPHA] - truth[:, THETA_ALPHA]
            add("alpha_rmse", d_alpha.square().mean(-1).sqrt())
            morph = stn.generator.morphable
            d_shape = morph(theta[:, THETA_ALPHA]) - morph(truth[:, THETA_ALPHA])  # (B, N, 3), the mean cancels
            add("shape_rmse_mm", d_shape.square().sum(-1).mean(-1).sqrt())
            if flattened:
                ref = stn(img, truth)
                both = out.mask * ref.mask
                diff = ((out.flattened - ref.flattened).abs() * both).sum((1, 2, 3))
                add("flattened_error", diff / (both.sum((1, 2, 3)) * img.shape[1]).clamp(min=1))
        thetas.append(theta.cpu())
        lms.append(out.landmarks.cpu())
    per_image = {k: np.concatenate(v) for k, v in cols.items()}
    summary: dict[str, float] = {"n_images": float(n)}
    for k, v in per_image.items():
        if k != "yaw_deg":
            summary[k] = float(np.mean(v))
    summary["landmark_error_median_px"] = float(np.median(per_image["landmark_error_px"]))
    return EvalResult(summary, per_image, torch.cat(thetas), torch.cat(lms))
