"""Horizontal flip of a face sample, and the mirrored θ that renders the flipped face.

Image: columns reversed. Landmarks (label frame, W = image width): x′ = W + 1 − x, y′ = y, then the list is
reordered by :func:`mmstn.models.landmarks.flip_permutation` (left brow ↔ right brow, …), coordinates and
visibilities alike (the authors' ``refineData`` + ``syncFlippedLandmarks.m``, docs/conventions.md §6). Landmarks
without annotation — stored at (0, 0) with visibility 0 — stay at (0, 0), as in the authors' code
(x′ = (W + 1 − x)·[x ≠ 0]). The flip is an involution.

Mirror consistency. Let M = diag(−1, 1, 1) and ``mirror`` the model's vertex symmetry map. If the model is
mirror-symmetric (M·μ[mirror] = μ and M·P_k[mirror] = p_k·P_k with parity p_k = ±1), the flipped rendering
of θ = (r, t, logs, α) is the rendering of

    r′ = (r_x, −r_y, −r_z)   (M R(r) M = R(−M r)),   t′ = (W + 1 − t_x, t_y),   logs′ = logs,   α′_k = p_k α_k,

lit from the mirrored light direction (−l_x, l_y, l_z), with the albedo mirrored likewise (:func:`mirror_theta`,
:func:`component_parity`). Exactly so for the built-in model, whose components are each exactly symmetric
or antisymmetric; approximately for the BFM.
"""

from __future__ import annotations

from typing import Literal

import torch

from mmstn.errors import ShapeError
from mmstn.models.landmarks import flip_permutation
from mmstn.theta import THETA_ALPHA, THETA_R, THETA_T

__all__ = [
    "component_parity",
    "flip_image",
    "flip_landmarks",
    "flip_sample",
    "mirror_light_direction",
    "mirror_theta",
]


def flip_image(image: torch.Tensor) -> torch.Tensor:
    """Reverse the last (width) axis: (…, H, W) → (…, H, W). Works for images (C, H, W) and masks (H, W)."""
    return torch.flip(image, dims=[-1])


def flip_landmarks(
    landmarks: torch.Tensor, visible: torch.Tensor | None, width: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Flip label-frame landmarks of an image of width ``width``.

    Args:
        landmarks: (…, L, 2), L = 21 (AFLW) or 68 (iBUG), label frame (1-based column, y up).
        visible: (…, L) visibility or None.
        width: W, pixels.

    Returns:
        (landmarks (…, L, 2), visible (…, L) or None): x′ = W + 1 − x, reordered by the flip permutation;
        points at (0, 0) with visibility 0 (no annotation) stay at (0, 0).
    """
    if landmarks.ndim < 2 or landmarks.shape[-1] != 2:
        raise ShapeError(f"landmarks must have shape (..., L, 2), got {tuple(landmarks.shape)}")
    n = landmarks.shape[-2]
    perm = torch.as_tensor(flip_permutation(n), device=landmarks.device)
    x, y = landmarks[..., 0], landmarks[..., 1]
    missing = (x == 0) & (y == 0)
    if visible is not None:
        if visible.shape != landmarks.shape[:-1]:
            raise ShapeError(f"visible must have shape {tuple(landmarks.shape[:-1])}, got {tuple(visible.shape)}")
        missing = missing & (visible <= 0)
    xf = torch.where(missing, torch.zeros_like(x), (width + 1) - x)
    out = torch.stack([xf, y], dim=-1).index_select(-2, perm)
    return out, (None if visible is None else visible.index_select(-1, perm))


def component_parity(model, which: Literal["shape", "texture"] = "shape", tol: float = 1e-4) -> torch.Tensor:
    """Parity of each basis component under the model's mirror map: +1 symmetric, −1 antisymmetric, 0 neither.

    Shape components are compared as M·P_k[mirror] with P_k (M = diag(−1, 1, 1)); texture components as
    T_k[mirror] with T_k. ``tol`` is relative to the component's largest entry.

    Returns:
        float tensor (D,) (or (K,) for ``"texture"``).
    """
    if model.mirror is None:
        raise ValueError(f"model {model.name!r} has no mirror map; parity is undefined")
    basis = model.basis if which == "shape" else model.texture_basis
    if basis is None:
        return torch.zeros(0)
    flip = torch.tensor([-1.0, 1.0, 1.0] if which == "shape" else [1.0, 1.0, 1.0], dtype=basis.dtype)
    mirrored = basis[:, model.mirror] * flip
    scale = basis.abs().amax(dim=(1, 2)).clamp(min=1e-30)
    sym = (mirrored - basis).abs().amax(dim=(1, 2)) <= tol * scale
    anti = (mirrored + basis).abs().amax(dim=(1, 2)) <= tol * scale
    return sym.to(basis.dtype) - anti.to(basis.dtype) * (~sym).to(basis.dtype)


def mirror_theta(theta: torch.Tensor, model, image_width: int, parity: torch.Tensor | None = None) -> torch.Tensor:
    """θ′ whose rendering is the horizontal flip of θ's (module docstring).

    Args:
        theta: (B, 6 + D) or (6 + D,).
        model: the morphable model (for the parity of the shape components).
        image_width: W, pixels.
        parity: (D,) precomputed :func:`component_parity`; computed when omitted.

    Raises:
        ValueError: a component is neither symmetric nor antisymmetric (the model is not mirror-symmetric).
    """
    th = torch.as_tensor(theta)
    d = th.shape[-1] - 6
    if parity is None:
        parity = component_parity(model)[:d]
    if (parity[:d] == 0).any():
        bad = torch.nonzero(parity[:d] == 0).flatten().tolist()
        raise ValueError(f"model {model.name!r}: components {bad} are neither symmetric nor antisymmetric")
    out = th.clone()
    r, t = out[..., THETA_R], out[..., THETA_T]  # views into out
    r[..., 1:] = -th[..., THETA_R][..., 1:]  # r′ = (r_x, −r_y, −r_z)
    t[..., 0] = image_width + 1 - th[..., THETA_T][..., 0]  # t′ = (W + 1 − t_x, t_y)
    out[..., THETA_ALPHA] = th[..., THETA_ALPHA] * parity[:d].to(th.dtype)
    return out


def mirror_light_direction(direction: tuple[float, float, float]) -> tuple[float, float, float]:
    """The mirrored light direction (−x, y, z) (camera frame, x to the right)."""
    x, y, z = (float(v) for v in direction)
    return (-x, y, z)


def flip_sample(sample: dict, model=None) -> dict:
    """Flip a sample dict as returned by the datasets of :mod:`mmstn.data`.

    ``image`` (3, H, W) and ``mask`` (H, W) are mirrored; ``landmarks21``/``vis21`` and
    ``landmarks68``/``vis68`` are flipped with :func:`flip_landmarks`. A ``theta`` is replaced by
    :func:`mirror_theta` when ``model`` is given and dropped otherwise (it cannot be mirrored without the
    model's symmetry). Other entries are copied unchanged.
    """
    out = dict(sample)
    width = int(sample["image"].shape[-1])
    out["image"] = flip_image(sample["image"])
    if "mask" in sample:
        out["mask"] = flip_image(torch.as_tensor(sample["mask"]))
    for pts, vis in (("landmarks21", "vis21"), ("landmarks68", "vis68")):
        if pts in sample:
            out[pts], v = flip_landmarks(sample[pts], sample.get(vis), width)
            if v is not None:
                out[vis] = v
    if "theta" in sample:
        if model is None:
            del out["theta"]
        else:
            out["theta"] = mirror_theta(sample["theta"], model, width)
    return out
