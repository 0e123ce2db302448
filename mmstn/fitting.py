"""Fitting θ to images by gradient descent through the grid generator (the authors' ``demo.m``).

The localiser is replaced by free parameters: θ = (r, t, logs, α) of each image is optimised directly
from the losses of :mod:`mmstn.losses`, on a normalised parametrisation θ = θ₀ + σ ∘ z where σ gives
each component a natural unit (0.1 rad, 5 px, 5 % of scale, one standard deviation). Optimisers:

* ``"lbfgs"`` (default): L-BFGS with a strong-Wolfe line search, first on the pose alone, then on
  everything; converges in tens of iterations. Yaw and the x-translation are strongly coupled (the head
  turns about the model origin, inside the head), a narrow valley that first-order methods crawl along.
* ``"adam"``: Adam with a cosine-decayed step (for comparison, and for the appearance losses).
* ``"authors"``: plain gradient descent with the step 1e−6 and the α gradient boosted ×101, stopped when
  the loss changes by less than 1, exactly as ``demo.m`` (slow; for comparison).

The initial pose (:func:`initial_theta`) aligns the mean shape's landmarks to the labels: for a few yaw
angles it solves scale and translation in closed form and keeps the best fit.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Literal

import torch

from mmstn.data.flip import component_parity, mirror_theta
from mmstn.errors import ShapeError, check_finite
from mmstn.layers.rotation import rodrigues
from mmstn.layers.scale import scale_rate
from mmstn.losses import LossWeights, landmark_loss, prior_loss, siamese_loss, symmetry_loss
from mmstn.stn import STN3DMM
from mmstn.theta import THETA_ALPHA, THETA_LOGS, THETA_R, THETA_T, Theta, ThetaConvention, make_theta, split_theta
from mmstn.uv.resample import grid_mirror

__all__ = ["FitResult", "fit", "initial_theta", "landmark_error", "loss_landscape"]

#: Weights used for fitting: the authors' landmark weight, a prior ten times theirs and no appearance terms.
#: With the authors' 0.1, fits to real photos push ‖α‖ to 15–25 (implausible shapes with self-occluding eye
#: sockets) to gain a fraction of a pixel; 1.0 keeps ‖α‖ near √D at about 0.7 px more landmark error.
FIT_WEIGHTS = LossWeights(landmark=0.8998, prior=1.0, siamese=0.0, symmetry=0.0)


@dataclass
class FitResult:
    """Result of :func:`fit`.

    Attributes:
        theta: (B, 6 + D) fitted θ.
        flattened: (B, C, G, G) the STN output at the fitted θ.
        mask: (B, 1, G, G) its visibility mask.
        landmarks: (B, L, 2) fitted landmark positions (label frame).
        history: per iteration: ``"loss"`` (the objective) and ``"landmark_error"`` (mean Euclidean
            distance over visible landmarks, px).
        iterations: objective evaluations run (one entry of ``history`` each).
        convention: the θ convention of ``theta`` (the STN's scale base); :meth:`params` gives a Theta.
    """

    theta: torch.Tensor
    flattened: torch.Tensor
    mask: torch.Tensor
    landmarks: torch.Tensor
    history: dict[str, list[float]] = field(default_factory=dict)
    iterations: int = 0
    convention: ThetaConvention | None = None

    def params(self) -> Theta:
        """The fitted θ as a :class:`~mmstn.theta.Theta` carrying the STN's convention."""
        return Theta.from_tensor(self.theta, self.convention)


def landmark_error(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean Euclidean distance (px) over visible landmarks, per image: (B, L, 2) × 2 → (B,)."""
    d = (pred - target).norm(dim=-1)
    w = torch.ones_like(d) if weight is None else (weight > 0).to(d.dtype)
    d = torch.where(w > 0, d, torch.zeros_like(d))
    return d.sum(-1) / w.sum(-1).clamp(min=1)


def initial_theta(
    stn: STN3DMM,
    labels: torch.Tensor,
    weight: torch.Tensor | None = None,
    yaws_deg: tuple[float, ...] = (-60, -45, -30, -15, 0, 15, 30, 45, 60),
) -> torch.Tensor:
    """A sensible starting θ from landmark labels: the mean shape, the best of a few yaw angles, and the
    least-squares scale and translation that align its landmarks with the labels.

    Args:
        stn: the STN (its grid model's landmark set and scale base are used).
        labels: (B, L, 2) landmark labels in the label frame.
        weight: (B, L) confidences (0 = invisible).
        yaws_deg: candidate yaw angles, degrees.

    Returns:
        θ (B, 6 + D) with α = 0.
    """
    gen = stn.generator
    idx = gen.landmark_indices
    if labels.ndim != 3 or labels.shape[1:] != (idx.numel(), 2):
        raise ShapeError(f"labels must have shape (B, {idx.numel()}, 2), got {tuple(labels.shape)}")
    b = labels.shape[0]
    w = torch.ones(labels.shape[:2], dtype=labels.dtype) if weight is None else (weight > 0).to(labels.dtype)
    labels = torch.where(w[..., None] > 0, labels, torch.zeros_like(labels))  # invisible labels may be NaN
    mean_lm = gen.morphable.mean[idx].to(labels.dtype)  # (L, 3)
    best_err = torch.full((b,), math.inf, dtype=labels.dtype)
    best = torch.zeros(b, 6, dtype=labels.dtype)
    kappa = scale_rate(gen.config.scale_base)
    for yaw in yaws_deg:
        r = torch.tensor([0.0, math.radians(yaw), 0.0], dtype=labels.dtype)
        rot = rodrigues(r[None], "autograd")[0]
        xy = (mean_lm @ rot.T)[:, :2]  # (L, 2)
        # weighted Procrustes without rotation: min_s,t Σ w ‖s·xy + t − y‖²
        wsum = w.sum(1, keepdim=True).clamp(min=1)
        mx = (w[..., None] * xy).sum(1) / wsum
        my = (w[..., None] * labels).sum(1) / wsum
        xc, yc = xy - mx[:, None], labels - my[:, None]
        s = (w[..., None] * xc * yc).sum((1, 2)) / (w[..., None] * xc * xc).sum((1, 2)).clamp(min=1e-9)
        s = s.clamp(min=1e-3)
        t = my - s[:, None] * mx
        err = (w * ((s[:, None, None] * xy + t[:, None] - labels) ** 2).sum(-1)).sum(1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        cand = torch.cat([r.expand(b, 3), t, (torch.log(s) / kappa)[:, None]], 1)
        best = torch.where(better[:, None], cand, best)
    alpha = torch.zeros(b, gen.n_components, dtype=labels.dtype)
    return make_theta(best[:, THETA_R], best[:, THETA_T], best[:, THETA_LOGS], alpha)


def fit(
    stn: STN3DMM,
    images: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor | None = None,
    *,
    theta0: torch.Tensor | Theta | None = None,
    n_iter: int = 300,
    lr: float = 0.05,
    weights: LossWeights = FIT_WEIGHTS,
    method: Literal["lbfgs", "adam", "authors"] = "lbfgs",
    mirrored_images: torch.Tensor | None = None,
) -> FitResult:
    """Optimise θ for a batch of images from landmark labels (and optional appearance losses).

    Args:
        stn: the assembled STN on a grid model.
        images: (B, C, H, W) images (the symmetry and siamese terms read them).
        labels: (B, L, 2) landmark labels in the label frame.
        weight: (B, L) landmark confidences, 0 for invisible (default: all 1).
        theta0: starting θ (B, 6 + D) in the STN's convention, or a :class:`~mmstn.theta.Theta` (converted);
            default :func:`initial_theta`.
        n_iter: iterations (``"authors"``: an upper bound).
        lr: Adam step on the normalised parameters.
        weights: loss weights; symmetry/siamese are evaluated only when their weight is non-zero.
        method: ``"adam"`` or ``"authors"`` (see the module docstring).
        mirrored_images: for the siamese term, the horizontally mirrored images (their θ is the
            mirrored θ of the same fit, :func:`mmstn.data.flip.mirror_theta`).

    Returns:
        :class:`FitResult`.

    Raises:
        ValueError: the model has no shape basis (D = 0) and no landmarks (nothing to fit).

    Warns:
        UserWarning: an image has no visible landmark (weight all 0) and no appearance term is on: its θ stays
            at the start (scale and translation are then meaningless).
    """
    if images.ndim != 4:
        raise ShapeError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    if stn.generator.n_components == 0 and stn.generator.landmark_indices.numel() == 0:
        raise ValueError(
            f"fit() needs landmarks or a shape basis, but the STN's model has D = 0 components and no "
            f"{stn.config.landmark_set!r} landmarks: there is nothing to fit (use a model with that landmark set)"
        )
    check_finite("labels", torch.where(torch.isnan(labels), 0.0, labels))
    dtype = stn.generator.morphable.mean.dtype
    images, labels = images.to(dtype), labels.to(dtype)
    w = torch.ones(labels.shape[:2], dtype=dtype) if weight is None else weight.to(dtype)
    blind = (w.reshape(w.shape[0], -1) > 0).sum(1) == 0 if w.numel() else torch.ones(labels.shape[0], dtype=torch.bool)
    if bool(blind.any()):
        who = blind.nonzero().flatten().tolist()
        extra = "" if (weights.symmetry or weights.siamese) else "; only the prior is fitted and θ keeps its start"
        warnings.warn(
            f"fit(): image(s) {who[:10]} have no visible landmark (weight all 0){extra} — their scale and "
            "translation are not estimated", UserWarning, stacklevel=2,
        )
    if isinstance(theta0, Theta):
        theta0 = theta0.as_tensor_for(stn.config.theta_convention)
    theta0 = initial_theta(stn, labels, w) if theta0 is None else theta0.detach().to(dtype)
    split_theta(theta0, stn.generator.n_components)  # validates shape and finiteness
    d = stn.generator.n_components
    kappa = abs(scale_rate(stn.config.scale_base))
    unit = torch.tensor([0.1] * 3 + [5.0] * 2 + [0.05 / kappa] + [1.0] * d, dtype=dtype)
    z = torch.zeros_like(theta0, requires_grad=True)
    history: dict[str, list[float]] = {"loss": [], "landmark_error": []}
    need_image = weights.symmetry != 0 or weights.siamese != 0
    if weights.siamese and mirrored_images is not None:
        # the reflection's θ follows from θ through the grid's mirror map (column c ↔ G − 1 − c)
        grid = SimpleNamespace(name="grid model", basis=stn.generator.morphable.basis,
                               mirror=grid_mirror(stn.generator.grid_size))
        parity = component_parity(grid)

    # Landmarks need only their own vertices: pose a landmark-only copy of the model (21 instead of G²).
    idx = stn.generator.landmark_indices
    mean_lm, basis_lm = stn.generator.morphable.mean[idx], stn.generator.morphable.basis[:, idx]
    rate = scale_rate(stn.config.scale_base)

    def landmark_points(theta: torch.Tensor) -> torch.Tensor:
        r, t, logs, alpha = split_theta(theta, d)
        shape = mean_lm + torch.einsum("bd,dlc->blc", alpha, basis_lm)
        rotated = shape @ rodrigues(r, "autograd").transpose(-1, -2)
        return rotated[..., :2] * torch.exp(rate * logs)[:, None, :] + t[:, None, :]

    def objective(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lm = landmark_points(theta)
        total = weights.landmark * landmark_loss(lm, labels, w, "mean")
        total = total + weights.prior * prior_loss(theta[:, THETA_ALPHA], "mean")
        if need_image:
            out = stn(images, theta)
            if weights.symmetry:
                total = total + weights.symmetry * symmetry_loss(out.flattened, out.mask)
            if weights.siamese and mirrored_images is not None:
                mirrored = stn(mirrored_images.to(dtype), mirror_theta(theta, grid, images.shape[3], parity))
                total = total + weights.siamese * siamese_loss(out.flattened, out.mask, mirrored.flattened,
                                                               mirrored.mask)
        return total, lm

    if method == "lbfgs":
        # Stage 1 fits the pose with α held at its start, stage 2 everything: with few landmarks and an
        # orthographic camera, shape could otherwise absorb a wrong yaw (yaw and t_x are also strongly
        # coupled because the head turns about the model origin, a valley that L-BFGS follows well).
        z.requires_grad_(True)
        for frozen_alpha, budget in ((True, n_iter // 3), (False, n_iter - n_iter // 3)):
            keep = torch.ones_like(z)
            if frozen_alpha:
                keep[:, THETA_ALPHA] = 0  # zero gradients keep L-BFGS's steps at zero there
            opt = torch.optim.LBFGS([z], lr=1.0, max_iter=max(budget, 1), history_size=20,
                                    line_search_fn="strong_wolfe", tolerance_grad=1e-10, tolerance_change=1e-14)

            def closure(opt: torch.optim.LBFGS = opt, keep: torch.Tensor = keep) -> torch.Tensor:
                opt.zero_grad()
                loss, lm = objective(theta0 + unit * z)
                loss.backward()
                z.grad *= keep
                history["loss"].append(float(loss.detach()))
                history["landmark_error"].append(float(landmark_error(lm.detach(), labels, w).mean()))
                return loss

            opt.step(closure)
    elif method == "adam":
        opt = torch.optim.Adam([z], lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(n_iter, 1), eta_min=lr * 0.02)
        # The pose goes first: α is held at its start for the first third, since with few landmarks
        # and an orthographic camera shape can otherwise absorb a wrong yaw (a local minimum).
        pose_only = torch.ones_like(z)
        pose_only[:, THETA_ALPHA] = 0
        for it in range(1, n_iter + 1):
            opt.zero_grad()
            loss, lm = objective(theta0 + unit * z)
            loss.backward()
            if it <= n_iter // 3:
                z.grad *= pose_only
            opt.step()
            sched.step()
            history["loss"].append(float(loss.detach()))
            history["landmark_error"].append(float(landmark_error(lm.detach(), labels, w).mean()))
    elif method == "authors":
        theta = theta0.clone().requires_grad_(True)
        previous = math.inf
        for _ in range(n_iter):
            loss, lm = objective(theta)
            (grad,) = torch.autograd.grad(loss * images.shape[0], theta)  # demo.m sums over images
            grad[:, THETA_ALPHA] *= 101.0  # dα ← dα + 100·dα
            with torch.no_grad():
                theta -= 1e-6 * grad
            history["loss"].append(float(loss.detach()))
            history["landmark_error"].append(float(landmark_error(lm.detach(), labels, w).mean()))
            if abs(previous - history["loss"][-1]) < 1.0:
                break
            previous = history["loss"][-1]
        z = ((theta.detach() - theta0) / unit).requires_grad_(False)
    else:
        raise ValueError(f"method={method!r}: use 'lbfgs', 'adam' or 'authors'")
    theta = (theta0 + unit * z).detach()
    with torch.no_grad():
        out = stn(images, theta)
    return FitResult(theta=theta, flattened=out.flattened, mask=out.mask, landmarks=out.landmarks,
                     history=history, iterations=len(history["loss"]), convention=stn.config.theta_convention)


def loss_landscape(
    stn: STN3DMM,
    image: torch.Tensor,
    labels: torch.Tensor,
    theta: torch.Tensor,
    yaw_offsets_deg,
    *,
    weight: torch.Tensor | None = None,
    mirrored_image: torch.Tensor | None = None,
    mirrored_theta: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The losses as functions of a yaw offset added to θ's axis-angle y component.

    Args:
        stn: the STN.
        image: (C, H, W) one image; labels: (L, 2) its landmarks (label frame); theta: (6 + D,) its true θ.
        yaw_offsets_deg: 1-D sequence of offsets, degrees.
        weight: (L,) landmark confidences.
        mirrored_image, mirrored_theta: the reflected image and its (fixed, correct) θ; with them the
            siamese term compares the offset fit of the image with the reflection's fit.

    Returns:
        ``{"landmark", "symmetry", "siamese"?}`` → tensors (K,) with the per-offset values.
    """
    offsets = torch.as_tensor(yaw_offsets_deg, dtype=theta.dtype)
    thetas = theta.reshape(1, -1).repeat(len(offsets), 1)
    thetas[:, THETA_R.start + 1] += torch.deg2rad(offsets)  # the axis-angle y component
    images = image[None].expand(len(offsets), -1, -1, -1)
    w = torch.ones(len(offsets), labels.shape[0], dtype=theta.dtype) if weight is None else \
        weight.reshape(1, -1).expand(len(offsets), -1)
    with torch.no_grad():
        out = stn(images, thetas)
        lm = ((out.landmarks - labels[None]) ** 2).sum(-1)
        curves = {
            "landmark": (w * lm).sum(-1),
            "symmetry": torch.stack([symmetry_loss(out.flattened[k : k + 1], out.mask[k : k + 1])
                                     for k in range(len(offsets))]),
        }
        if mirrored_image is not None and mirrored_theta is not None:
            ref = stn(mirrored_image[None], mirrored_theta.reshape(1, -1))
            curves["siamese"] = torch.stack([
                siamese_loss(out.flattened[k : k + 1], out.mask[k : k + 1], ref.flattened, ref.mask)
                for k in range(len(offsets))
            ])
    return curves
