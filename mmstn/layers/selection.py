"""Landmark selection: L = Y[:, idx] (``vl_nnselection.m``).

Equivalent to multiplying by a 0/1 selection matrix S (N × L) with S[idx_l, l] = 1.

Shapes: points (B, N, k) (k = 2 or 3); indices (L,) 0-based vertex indices; result (B, L, k).

Derivative: the incoming gradient (B, L, k) is scattered back (added) into rows ``idx`` of a zero
(B, N, k) tensor; repeated indices accumulate.
"""

from __future__ import annotations

import torch
from torch import nn

from mmstn.errors import ShapeError
from mmstn.layers._common import Backend, check_backend, check_tensor

__all__ = ["LandmarkSelection", "SelectFunction", "select_vertices"]


class SelectFunction(torch.autograd.Function):
    """Y[:, idx] with the hand-written backward: index_add of the gradient into rows ``idx``."""

    @staticmethod
    def forward(ctx, points: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(indices)
        ctx.n = points.shape[1]
        return points.index_select(1, indices)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (indices,) = ctx.saved_tensors
        b, _, k = grad_out.shape
        d = grad_out.new_zeros(b, ctx.n, k).index_add_(1, indices, grad_out)
        return d, None


def select_vertices(points: torch.Tensor, indices: torch.Tensor, backend: Backend = "analytic") -> torch.Tensor:
    """Gather the points of some vertices (e.g. the 21 AFLW landmarks).

    Args:
        points: (B, N, k).
        indices: (L,) int64, 0-based, each in [0, N).
        backend: ``"analytic"`` or ``"autograd"``.

    Returns:
        (B, L, k).
    """
    check_backend(backend)
    check_tensor("points", points, 3)
    if indices.ndim != 1 or indices.dtype != torch.int64:
        raise ShapeError(f"indices must be a 1-D int64 tensor, got {tuple(indices.shape)} {indices.dtype}")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= points.shape[1]):
        raise ShapeError(f"indices must lie in [0, {points.shape[1]}) (0-based vertex indices)")
    if backend == "analytic":
        return SelectFunction.apply(points, indices)
    return points.index_select(1, indices)


class LandmarkSelection(nn.Module):
    """nn.Module holding landmark indices (a buffer): (B, N, k) → (B, L, k)."""

    indices: torch.Tensor

    def __init__(self, indices: torch.Tensor, backend: Backend = "analytic") -> None:
        super().__init__()
        self.backend = check_backend(backend)
        self.register_buffer("indices", torch.as_tensor(indices, dtype=torch.int64).reshape(-1).clone())

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return select_vertices(points, self.indices, self.backend)
