"""θ estimators for averaging: ``(images (B, 3, H, W), landmarks (B, 21, 2) | None, vis (B, 21) | None) → θ``.

Fitting to landmarks, a trained localiser, the shipped localiser when there is one, and a fixed frontal θ
(the no-alignment baseline).
"""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace
from typing import Literal

import torch
from torch import nn

from mmstn.averaging._types import Estimator
from mmstn.data.synthetic import reference_scale
from mmstn.fitting import fit
from mmstn.localiser import Localiser
from mmstn.stn import STN3DMM
from mmstn.theta import Theta
from mmstn.train.checkpoint import DEFAULT_LOCALISER, CheckpointError, load_pretrained
from mmstn.train.model import data_model


def _need_landmarks(landmarks: torch.Tensor | None, name: str) -> torch.Tensor:
    if landmarks is None:
        raise ValueError(f"{name} needs landmarks (B, 21, 2); this source has none: use a landmarks JSON, the "
                         "detector (mmstn.detect) or a localiser")
    return landmarks


def fitting_estimator(stn: STN3DMM, n_iter: int = 60, method: Literal["lbfgs", "adam", "authors"] = "lbfgs",
                      batch_size: int = 64) -> Estimator:
    """Estimator that fits θ to each image's landmarks (:func:`mmstn.fitting.fit`, landmark and prior terms).

    The fit never looks at the pixels, so it is as good as the landmarks are. θ does not depend on the grid
    size: fit with a G = 112 STN and flatten with any other STN of the same model and scale base.

    Args:
        stn: the STN whose grid model and scale base define θ.
        n_iter: L-BFGS evaluations per batch (a third on the pose alone).
        method: :func:`~mmstn.fitting.fit`'s optimiser.
        batch_size: images fitted together (the objectives are independent; one L-BFGS run per batch).

    Returns:
        ``estimate(images (B, 3, H, W), landmarks (B, 21, 2), vis (B, 21) | None) → θ (B, 6 + D)``.
    """
    def estimate(images: torch.Tensor, landmarks: torch.Tensor | None, vis: torch.Tensor | None) -> torch.Tensor:
        lm = _need_landmarks(landmarks, "fitting_estimator")
        out = []
        for a in range(0, images.shape[0], batch_size):
            b = a + batch_size
            w = None if vis is None else vis[a:b]
            out.append(fit(stn, images[a:b], lm[a:b], w, n_iter=n_iter, method=method).theta)
        return torch.cat(out).float()

    estimate.description = f"per-image fitting to the landmarks ({method}, {n_iter} iterations)"  # type: ignore[attr-defined]
    return estimate


def localiser_estimator(localiser: nn.Module, *, logs_factor: float = 1.0, batch_size: int = 32,
                        device: torch.device | str | None = None) -> Estimator:
    """Estimator from any network image (B, 3, H, W) in [0, 1] → θ (B, 6 + D) (the trained localiser).

    Args:
        localiser: the network (put in eval mode; run without gradients).
        logs_factor: multiplies θ's log-scale column, to move θ between scale bases (κ_net / κ_stn, e.g.
            ln 0.99 for a network trained with s = 0.99^logs used with an ``exp`` STN).
        batch_size: images per forward pass.
        device: where to run it (default: where its parameters are).

    Returns:
        ``estimate(images, landmarks=None, vis=None) → θ (B, 6 + D)`` on the CPU (landmarks are ignored).
    """
    params = list(localiser.parameters())
    dev = torch.device(device) if device is not None else (params[0].device if params else torch.device("cpu"))

    def estimate(images: torch.Tensor, landmarks: torch.Tensor | None = None,
                 vis: torch.Tensor | None = None) -> torch.Tensor:
        localiser.eval()
        out = []
        with torch.no_grad():
            for a in range(0, images.shape[0], batch_size):
                out.append(localiser(images[a : a + batch_size].to(dev)).detach().float().cpu())
        theta = torch.cat(out)
        if logs_factor != 1.0:
            p = Theta.from_tensor(theta)  # only the logs column is rescaled, by the ratio κ_net / κ_stn
            theta = replace(p, logs=p.logs * logs_factor).tensor()
        return theta

    estimate.description = f"the localiser network ({type(localiser).__name__})"  # type: ignore[attr-defined]
    return estimate


def frontal_estimator(stn: STN3DMM, image_size: int = 224, scale: float | None = None) -> Estimator:
    """The "no alignment" baseline: every image gets the same θ, the mean face seen frontally, centred, at the
    synthetic data's reference scale — flattening then amounts to a fixed crop-and-warp of the image.

    Args:
        stn: the STN whose model and scale base define θ.
        image_size: the crops' side (the face is centred at ((S + 1)/2, (S + 1)/2) in the label frame).
        scale: s in px/mm (default :func:`mmstn.data.synthetic.reference_scale` of the STN's model).
    """
    mean = stn.generator.morphable.mean.detach().cpu().double()
    idx = stn.generator.landmark_indices
    s = reference_scale(SimpleNamespace(mean=mean, landmarks={"aflw21": idx}), image_size=image_size) \
        if scale is None else float(scale)
    xy = mean[idx, :2] if idx.numel() else mean[:, :2]
    box_centre = (xy.amin(0) + xy.amax(0)) / 2  # as the synthetic data: the landmark box is centred
    theta = Theta(r=torch.zeros(1, 3), t=((image_size + 1) / 2.0 - s * box_centre).float()[None],
                  logs=torch.tensor([[math.log(s) / stn.config.scale_rate]]),
                  alpha=torch.zeros(1, stn.generator.n_components), convention=stn.config.theta_convention
                  ).tensor()[0]

    def estimate(images: torch.Tensor, landmarks: torch.Tensor | None = None,
                 vis: torch.Tensor | None = None) -> torch.Tensor:
        return theta.expand(images.shape[0], -1).clone()

    estimate.description = "one fixed frontal θ for every image (no alignment)"  # type: ignore[attr-defined]
    return estimate


def localiser_model_mismatch(model_name: str, stn: STN3DMM, *, tolerance: float = 0.03) -> str | None:
    """Why θ from a localiser trained for the morphable model ``model_name`` cannot drive ``stn`` (None: it can).

    θ's shape coefficients and scale only mean something for the model the network was trained on: the θ of
    a localiser of the cartoon face (``"builtin"``) fitted to the ICT face's grid model would silently
    mis-place every cell. The check compares :func:`mmstn.train.model.data_model` ``(model_name)`` with the
    STN's grid model: the same number of components, and a mean shape with the same bounding box (within
    ``tolerance`` of its diagonal; a grid model's box is its mesh's whatever G and the Tutte weights, while
    the cartoon and ICT faces differ by more than 10 %).

    Args:
        model_name: the localiser's ``TrainConfig.model`` (``"ict"``, ``"builtin"``).
        stn: the STN that will flatten the images with the localiser's θ.
        tolerance: allowed difference of the box corners, as a fraction of the box diagonal.

    Returns:
        None when they agree, else a sentence saying what differs.
    """
    try:
        model = data_model(model_name)
    except (KeyError, ValueError) as exc:
        return f"its model {model_name!r} is unknown to mmstn.train ({exc})"
    if model.n_components != stn.generator.n_components:
        return (f"it predicts θ for {model.n_components} components of the {model_name!r} face, the STN has "
                f"{stn.generator.n_components}")
    ref = model.mean.detach().cpu().double()
    mine = stn.generator.morphable.mean.detach().cpu().double()
    a = torch.cat([ref.amin(0), ref.amax(0)])
    b = torch.cat([mine.amin(0), mine.amax(0)])
    diag = float((ref.amax(0) - ref.amin(0)).norm())
    gap = float((a - b).abs().max())
    if gap > tolerance * diag:
        return (f"it was trained on the {model_name!r} face ({model.name}), and the STN's grid model is another "
                f"face (mean shapes' boxes differ by {gap:.0f} mm)")
    return None


def load_shipped_localiser(name: str = DEFAULT_LOCALISER, *, for_stn: STN3DMM | None = None,
                           device: str | torch.device = "cpu") -> tuple[Localiser | None, float | None, str]:
    """The localiser checkpoint shipped with mmstn (:func:`mmstn.train.checkpoint.load_pretrained`), or None
    with the reason when it cannot be used.

    Args:
        name: the shipped checkpoint (default :data:`~mmstn.train.checkpoint.DEFAULT_LOCALISER`).
        for_stn: the STN the θ will drive. A localiser trained for another morphable model
            (``TrainConfig.model``) is refused (None is returned, with :func:`localiser_model_mismatch`'s
            reason) instead of silently mis-placing every cell.
        device: where to put the network.

    Returns:
        (localiser or None, κ of the scale base its θ is in (s = exp(κ·logs)) or None, a sentence saying what
        was found).
    """
    try:
        localiser, stn, config = load_pretrained(name, device=device)
    except CheckpointError as exc:  # package data missing or damaged: the caller falls back to fitting
        return None, None, f"no shipped localiser ({exc})"
    label = f"the shipped localiser {config.name or name}"
    if for_stn is not None:
        why = localiser_model_mismatch(config.model, for_stn)
        if why is not None:
            return None, None, f"{label} refused: {why}"
    convention = localiser.convention if localiser.convention is not None else stn.config.theta_convention
    return localiser, float(convention.scale_rate), label


def default_estimator(stn: STN3DMM, n_iter: int = 60, prefer: Literal["auto", "localiser", "fitting"] = "auto"
                      ) -> tuple[Estimator, str]:
    """The shipped localiser when available (``prefer="auto"``), else per-image fitting.

    A shipped localiser trained for another morphable model than ``stn``'s grid model is not used
    (:func:`localiser_model_mismatch`): ``"auto"`` then fits, ``"localiser"`` raises and says why.

    Returns:
        (estimator, a sentence naming the one chosen and why).
    """
    if prefer != "fitting":
        net, kappa, why = load_shipped_localiser(for_stn=stn)
        if net is not None:
            factor = 1.0 if kappa is None else kappa / stn.config.scale_rate
            return localiser_estimator(net, logs_factor=factor), f"θ from {why}"
        if prefer == "localiser":
            raise RuntimeError(why)
    else:
        why = "fitting requested"
    est = fitting_estimator(stn, n_iter=n_iter)
    return est, f"θ from {est.description} — {why}"  # type: ignore[attr-defined]
