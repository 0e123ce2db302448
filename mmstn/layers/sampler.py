"""The bilinear sampler (spatial-transformer sampling, Jaderberg et al. 2015; MatConvNet ``vl_nnbilinearsampler``).

For an output point i with 0-based pixel position (x_i, y_i) in an input U of size H×W (one channel)

    V_i = Σ_n Σ_m U_nm · max(0, 1 − |x_i − m|) · max(0, 1 − |y_i − n|)          (paper eq. 3)

with n = 0..H−1 (rows), m = 0..W−1 (columns); pixels outside the image count as zero. The grid holds
normalised coordinates, x_i = (g_x + 1)/2·(W − 1) and y_i = (g_y + 1)/2·(H − 1) (align-corners: −1
and +1 are the centres of the first and last pixels), so the sampler is exactly
``F.grid_sample(U, grid, mode="bilinear", padding_mode="zeros", align_corners=True)``.

Derivatives (the paper's, per channel):

    ∂V_i/∂U_nm = max(0, 1 − |x_i − m|)·max(0, 1 − |y_i − n|)
    ∂V_i/∂x_i  = Σ_n Σ_m U_nm · max(0, 1 − |y_i − n|) · { 0 if |m − x_i| ≥ 1;  1 if m ≥ x_i;  −1 if m < x_i }

and likewise for y_i; then ∂/∂g_x = ∂/∂x_i·(W − 1)/2. Only the four pixels around (x_i, y_i) have
non-zero weight. At integer x_i the function has a kink; this module and ``grid_sample`` both use
the one-sided derivative from the right, U(·, ⌊x⌋ + 1) − U(·, ⌊x⌋), there (the paper's case split
differs on that measure-zero set).

Shapes: image U (B, C, H, W); grid (B, Ho, Wo, 2) with grid[..., 0] = g_x (column), grid[..., 1] =
g_y (row); result V (B, C, Ho, Wo).

Backends of :func:`bilinear_sample`:

* ``"native"``: ``F.grid_sample`` (its backward is ATen's hand-written kernel) — the fast default;
* ``"analytic"``: :class:`BilinearSampleFunction`, the four-neighbour form with the paper's
  derivatives written out here;
* ``"reference"``: :func:`bilinear_sample_reference`, the double sum above evaluated literally over all
  pixels (O(Ho·Wo·(H + W)·C) memory, for tests only), differentiated by autograd.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mmstn.errors import ShapeError
from mmstn.layers._common import check_tensor

__all__ = [
    "SAMPLER_BACKENDS",
    "BilinearSampleFunction",
    "BilinearSampler",
    "SamplerBackend",
    "bilinear_sample",
    "bilinear_sample_reference",
]

SamplerBackend = Literal["native", "analytic", "reference"]
SAMPLER_BACKENDS: tuple[str, ...] = ("native", "analytic", "reference")


def _check(image: torch.Tensor, grid: torch.Tensor) -> None:
    check_tensor("image", image, 4)
    check_tensor("grid", grid, 4, (2,))
    if grid.shape[0] != image.shape[0]:
        raise ShapeError(f"grid has batch {grid.shape[0]} but image has batch {image.shape[0]}")
    if grid.dtype != image.dtype:
        raise ShapeError(f"grid dtype {grid.dtype} differs from image dtype {image.dtype}")


def _tent(x: torch.Tensor, lattice: torch.Tensor) -> torch.Tensor:
    """max(0, 1 − |x − m|) for every lattice point m: (B, P) × (M,) → (B, P, M).

    Written with the floor f = ⌊x⌋ and frac = x − f, as (1 − frac)·[m = f] + frac·[m = f + 1]: the same
    values, but autograd then gives the one-sided derivative I(f + 1) − I(f) on lattice lines (x = f
    exactly), as MatConvNet, ``grid_sample`` and the analytic backend do. Autograd of the |·| form would give
    the central difference there.
    """
    f = torch.floor(x).detach()
    frac = (x - f)[..., None]
    at_f = (lattice == f[..., None]).to(x.dtype)
    at_f1 = (lattice == f[..., None] + 1).to(x.dtype)
    return (1 - frac) * at_f + frac * at_f1


def bilinear_sample_reference(image: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """The paper's sum formula, evaluated over every pixel (slow; for tests).

    Args:
        image: (B, C, H, W).
        grid: (B, Ho, Wo, 2) normalised, align-corners convention.

    Returns:
        (B, C, Ho, Wo).
    """
    _check(image, grid)
    b, c, h, w = image.shape
    ho, wo = grid.shape[1:3]
    x = (grid[..., 0].reshape(b, -1) + 1) / 2 * (w - 1)  # (B, P) 0-based columns
    y = (grid[..., 1].reshape(b, -1) + 1) / 2 * (h - 1)  # (B, P) 0-based rows
    m = torch.arange(w, dtype=image.dtype, device=image.device)
    n = torch.arange(h, dtype=image.dtype, device=image.device)
    kx = _tent(x, m)  # (B, P, W): max(0, 1 − |x_i − m|)
    ky = _tent(y, n)  # (B, P, H): max(0, 1 − |y_i − n|)
    out = torch.einsum("bcnm,bpn,bpm->bcp", image, ky, kx)
    return out.reshape(b, c, ho, wo)


class BilinearSampleFunction(torch.autograd.Function):
    """Four-neighbour bilinear sampling with the paper's derivatives written by hand.

    The image is padded with one ring of zeros, so that every tap outside the image reads an exact 0 and
    the same four-tap formulas hold everywhere; ``padding_mode="zeros"`` semantics follow.
    """

    @staticmethod
    def forward(ctx, image: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        b, c, h, w = image.shape
        x = (grid[..., 0].reshape(b, 1, -1) + 1) * ((w - 1) / 2)  # (B, 1, P) 0-based columns
        y = (grid[..., 1].reshape(b, 1, -1) + 1) * ((h - 1) / 2)  # (B, 1, P) 0-based rows
        x0f, y0f = torch.floor(x), torch.floor(y)
        fx, fy = x - x0f, y - y0f  # fractional parts in [0, 1): the weights of the right / lower taps
        x0, y0 = x0f.long(), y0f.long()
        # taps in the padded image (+1); anything further out clamps onto the zero ring
        px = ((x0 + 1).clamp(0, w + 1), (x0 + 2).clamp(0, w + 1))
        py = ((y0 + 1).clamp(0, h + 1), (y0 + 2).clamp(0, h + 1))
        wp = w + 2
        idx = [py[j] * wp + px[i] for j in (0, 1) for i in (0, 1)]  # 00, 01, 10, 11 (row, column)
        padded = F.pad(image, (1, 1, 1, 1)).reshape(b, c, -1)
        u00, u01, u10, u11 = (padded.gather(2, k.expand(b, c, -1)) for k in idx)
        gx, gy = 1 - fx, 1 - fy
        out = gy * (gx * u00 + fx * u01) + fy * (gx * u10 + fx * u11)
        saved = [fx, fy, *idx]
        ctx.grid_shape = grid.shape
        ctx.image_shape = image.shape
        if ctx.needs_input_grad[1]:
            # ∂V/∂x = Σ_n k_y(n)·(U(n, ⌊x⌋ + 1) − U(n, ⌊x⌋)),  ∂V/∂y likewise, per channel
            saved += [gy * (u01 - u00) + fy * (u11 - u10), gx * (u10 - u00) + fx * (u11 - u01)]
        ctx.save_for_backward(*saved)
        return out.view(b, c, *grid.shape[1:3])

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        fx, fy, *rest = ctx.saved_tensors
        idx = rest[:4]
        b, c, h, w = ctx.image_shape
        g = grad_out.reshape(b, c, -1)
        d_image = d_grid = None
        if ctx.needs_input_grad[1]:
            dvdx, dvdy = rest[4:]
            dx = (g * dvdx).sum(1) * ((w - 1) / 2)
            dy = (g * dvdy).sum(1) * ((h - 1) / 2)
            d_grid = torch.stack([dx, dy], -1).view(ctx.grid_shape)
        if ctx.needs_input_grad[0]:
            # ∂V_i/∂U_nm = k_x·k_y: each output gradient goes to its four taps
            gx, gy = 1 - fx, 1 - fy
            weights = (gy * gx, gy * fx, fy * gx, fy * fx)
            d_pad = g.new_zeros(b, c, (h + 2) * (w + 2))
            for k, wk in zip(idx, weights, strict=True):
                d_pad.scatter_add_(2, k.expand(b, c, -1), g * wk)
            d_image = d_pad.view(b, c, h + 2, w + 2)[:, :, 1:-1, 1:-1]
        return d_image, d_grid


def bilinear_sample(image: torch.Tensor, grid: torch.Tensor, backend: SamplerBackend = "native") -> torch.Tensor:
    """Bilinear sampling with zero padding in the align-corners convention.

    Args:
        image: (B, C, H, W).
        grid: (B, Ho, Wo, 2), normalised (g_x, g_y) in [−1, 1] inside the image.
        backend: ``"native"`` (``F.grid_sample``), ``"analytic"`` or ``"reference"``.

    Returns:
        (B, C, Ho, Wo).
    """
    if backend not in SAMPLER_BACKENDS:
        raise ValueError(f"sampler backend must be one of {SAMPLER_BACKENDS}, got {backend!r}")
    _check(image, grid)
    if backend == "native":
        return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    if backend == "analytic":
        return BilinearSampleFunction.apply(image, grid)
    return bilinear_sample_reference(image, grid)


class BilinearSampler(nn.Module):
    """nn.Module wrapper of :func:`bilinear_sample`: ((B, C, H, W), (B, Ho, Wo, 2)) → (B, C, Ho, Wo)."""

    def __init__(self, backend: SamplerBackend = "native") -> None:
        super().__init__()
        if backend not in SAMPLER_BACKENDS:
            raise ValueError(f"sampler backend must be one of {SAMPLER_BACKENDS}, got {backend!r}")
        self.backend = backend

    def forward(self, image: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        return bilinear_sample(image, grid, self.backend)
