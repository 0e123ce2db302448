"""Rotate 3-D points: X′ = R·X per image (``vl_nnrotate3D.m``).

Shapes: points X (B, N, 3) millimetres, stored one point per row, so the layer computes
X′ = X·Rᵀ (each row x_n ↦ R x_n); R (B, 3, 3); result X′ (B, N, 3) millimetres.

Derivatives (dX′ the incoming gradient, (B, N, 3)): dX = dX′·R (i.e. Rᵀ applied to each row) and
dR = dX′ᵀ·X, dR_jk = Σ_n dX′_nj X_nk — the authors' "dX = Rᵀ dX′, dR = dX′ Xᵀ" in the row layout.
Rotation is about the model origin (for the BFM, a point inside the head, docs/conventions.md §2.2).
"""

from __future__ import annotations

import torch
from torch import nn

from mmstn.errors import ShapeError
from mmstn.layers._common import Backend, check_backend, check_tensor

__all__ = ["Rotate3D", "RotateFunction", "rotate_points"]


class RotateFunction(torch.autograd.Function):
    """X′ = X Rᵀ with the hand-written backward dX = dX′ R, dR = dX′ᵀ X."""

    @staticmethod
    def forward(ctx, points: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(points, rotation)
        return torch.bmm(points, rotation.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        points, rotation = ctx.saved_tensors
        d_points = torch.bmm(grad_out, rotation) if ctx.needs_input_grad[0] else None
        d_rot = torch.bmm(grad_out.transpose(1, 2), points) if ctx.needs_input_grad[1] else None
        return d_points, d_rot


def rotate_points(points: torch.Tensor, rotation: torch.Tensor, backend: Backend = "analytic") -> torch.Tensor:
    """Rotate each image's points: x′_n = R x_n.

    Args:
        points: (B, N, 3), millimetres.
        rotation: (B, 3, 3).
        backend: ``"analytic"`` or ``"autograd"``.

    Returns:
        (B, N, 3), millimetres.
    """
    check_backend(backend)
    check_tensor("points", points, 3, (3,))
    check_tensor("rotation", rotation, 3, (3, 3))
    if rotation.shape[0] != points.shape[0]:
        raise ShapeError(f"rotation has batch {rotation.shape[0]} but points have batch {points.shape[0]}")
    if backend == "analytic":
        return RotateFunction.apply(points, rotation)
    return points @ rotation.transpose(1, 2)


class Rotate3D(nn.Module):
    """nn.Module wrapper of :func:`rotate_points`: ((B, N, 3), (B, 3, 3)) → (B, N, 3)."""

    def __init__(self, backend: Backend = "analytic") -> None:
        super().__init__()
        self.backend = check_backend(backend)

    def forward(self, points: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
        return rotate_points(points, rotation, self.backend)
