"""Photometric augmentation: what separates a render from a photograph, drawn per image.

Rendered training faces are clean, sharp and saturated; photos are blurred, noisy, grey or tinted, darker
or brighter, with less contrast. :func:`photometric_augment` changes only pixel values, never geometry, so
every label (landmarks, θ, visibility) stays exact. It draws from an explicit :class:`torch.Generator`, so a
training step's augmentation depends on (seed, step) only and an interrupted run resumes to the same bits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["photometric_augment"]


def _gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image (B, C, H, W) by its own σ (B,) in pixels (σ = 0: unchanged); separable, 9 taps."""
    r = 4
    x = torch.arange(-r, r + 1, dtype=images.dtype, device=images.device)
    s = sigma.clamp_min(1e-3)[:, None]
    k = torch.exp(-0.5 * (x[None] / s) ** 2)
    k = k / k.sum(1, keepdim=True)  # (B, 9); σ → 0 gives a delta
    b, c, h, w = images.shape
    flat = images.reshape(1, b * c, h, w)
    kk = k.repeat_interleave(c, 0)
    flat = F.conv2d(F.pad(flat, (r, r, 0, 0), mode="replicate"), kk[:, None, None, :], groups=b * c)
    flat = F.conv2d(F.pad(flat, (0, 0, r, r), mode="replicate"), kk[:, None, :, None], groups=b * c)
    return flat.reshape(b, c, h, w)


def photometric_augment(images: torch.Tensor, generator: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """Random brightness, contrast, saturation (grey with probability 0.25), colour cast, blur and noise.

    Args:
        images: (B, 3, H, W) in [0, 1].
        generator: the random stream (on the CPU); the same state gives the same result.
        strength: scales every range (0: unchanged).

    Returns:
        (B, 3, H, W) in [0, 1], same dtype and device.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
    b = images.shape[0]

    def u(lo: float, hi: float, n: int = 1) -> torch.Tensor:
        x = torch.rand(b, n, generator=generator, dtype=torch.float64)
        return (lo + (hi - lo) * x).to(images.device, images.dtype)

    a = float(strength)
    out = images
    grey = out.mul(out.new_tensor([0.299, 0.587, 0.114])[None, :, None, None]).sum(1, keepdim=True)
    keep = u(1 - 0.5 * a, 1 + 0.3 * a)  # saturation
    keep = torch.where(u(0, 1) < 0.25 * min(a, 1.0), torch.zeros_like(keep), keep)  # grey photos
    out = grey + keep[:, :, None, None] * (out - grey)
    cast = u(1 - 0.1 * a, 1 + 0.1 * a, 3)
    out = out * cast[:, :, None, None]
    mean = out.mean((1, 2, 3), keepdim=True)
    out = mean + u(1 - 0.4 * a, 1 + 0.3 * a)[:, :, None, None] * (out - mean)  # contrast
    out = out * u(1 - 0.4 * a, 1 + 0.3 * a)[:, :, None, None]  # brightness
    sigma = u(0, 1.5 * a)[:, 0] * (u(0, 1)[:, 0] < 0.5)
    out = _gaussian_blur(out, sigma)
    noise = torch.randn(out.shape, generator=generator, dtype=torch.float64).to(out.device, out.dtype)
    out = out + noise * u(0, 0.03 * a)[:, :, None, None]
    return out.clamp(0, 1)
