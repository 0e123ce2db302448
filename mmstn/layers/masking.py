"""Masking: W = V ∘ M, the sampled image times the (detached) visibility mask (``vl_nnvisibility.m``).

Shapes: sampled V (B, C, G, G); mask M (B, 1, G, G) of 0/1 (broadcast over channels) or (B, C, G, G);
result W (B, C, G, G).

Derivatives: dV = M ∘ dW; the mask gets no gradient (dM = 0 — the authors' code comments it out), so
M is detached on the autograd backend too.
"""

from __future__ import annotations

import torch
from torch import nn

from mmstn.errors import ShapeError
from mmstn.layers._common import Backend, check_backend, check_tensor

__all__ = ["MaskFunction", "Masking", "apply_mask"]


class MaskFunction(torch.autograd.Function):
    """W = V·M with the hand-written backward dV = M·dW, dM = 0."""

    @staticmethod
    def forward(ctx, sampled: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(mask)
        return sampled * mask

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (mask,) = ctx.saved_tensors
        return grad_out * mask, None


def apply_mask(sampled: torch.Tensor, mask: torch.Tensor, backend: Backend = "analytic") -> torch.Tensor:
    """Zero the samples of invisible vertices.

    Args:
        sampled: (B, C, G, G), the sampler's output V.
        mask: (B, 1, G, G) or (B, C, G, G), 0/1; treated as a constant (detached).
        backend: ``"analytic"`` or ``"autograd"``.

    Returns:
        (B, C, G, G).
    """
    check_backend(backend)
    check_tensor("sampled", sampled, 4)
    check_tensor("mask", mask, 4)
    if (
        mask.shape[0] != sampled.shape[0]
        or mask.shape[2:] != sampled.shape[2:]
        or mask.shape[1]
        not in (
            1,
            sampled.shape[1],
        )
    ):
        raise ShapeError(
            f"mask {tuple(mask.shape)} does not broadcast to sampled {tuple(sampled.shape)}; "
            "expected (B, 1, G, G) or (B, C, G, G)"
        )
    mask = mask.detach()
    if backend == "analytic":
        return MaskFunction.apply(sampled, mask)
    return sampled * mask


class Masking(nn.Module):
    """nn.Module wrapper of :func:`apply_mask`: ((B, C, G, G), (B, 1, G, G)) → (B, C, G, G)."""

    def __init__(self, backend: Backend = "analytic") -> None:
        super().__init__()
        self.backend = check_backend(backend)

    def forward(self, sampled: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return apply_mask(sampled, mask, self.backend)
