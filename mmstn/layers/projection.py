"""Orthographic projection along z: keep (x, y), drop z (``vl_nnprojection.m``).

Shapes: points (B, N, 3) millimetres → (B, N, 2) millimetres (x right, y up, still the model's
units; scale and translation turn them into label-frame pixels).

Derivative: dX′ = [dY, 0] — the gradient of the dropped depth is zero.
"""

from __future__ import annotations

import torch
from torch import nn

from mmstn.layers._common import Backend, check_backend, check_tensor

__all__ = ["OrthographicProjection", "ProjectionFunction", "orthographic_projection"]


class ProjectionFunction(torch.autograd.Function):
    """Y = X[..., :2] with the hand-written backward dX = [dY, 0]."""

    @staticmethod
    def forward(ctx, points: torch.Tensor) -> torch.Tensor:
        return points[..., :2].contiguous()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        return torch.nn.functional.pad(grad_out, (0, 1))


def orthographic_projection(points: torch.Tensor, backend: Backend = "analytic") -> torch.Tensor:
    """Orthographic projection of 3-D points onto the image plane.

    Args:
        points: (B, N, 3), millimetres.
        backend: ``"analytic"`` or ``"autograd"``.

    Returns:
        (B, N, 2): the x and y coordinates, millimetres.
    """
    check_backend(backend)
    check_tensor("points", points, 3, (3,))
    if backend == "analytic":
        return ProjectionFunction.apply(points)
    return points[..., :2]


class OrthographicProjection(nn.Module):
    """nn.Module wrapper of :func:`orthographic_projection`: (B, N, 3) → (B, N, 2)."""

    def __init__(self, backend: Backend = "analytic") -> None:
        super().__init__()
        self.backend = check_backend(backend)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return orthographic_projection(points, self.backend)
