"""2-D translation: Y″ = Y′ + t (``vl_nntranslate2D.m``).

Shapes: points (B, N, 2) label-frame pixels; t (B, 2) pixels (the localiser's θ[3:5]); result (B, N, 2).
In the authors' setting t is initialised to (112, 112), the centre of a 224×224 crop in the label
frame, so the model origin projects to the image centre.

Derivatives: dY′ = dY″ and dt = Σ_n dY″_n.
"""

from __future__ import annotations

import torch
from torch import nn

from mmstn.errors import ShapeError
from mmstn.layers._common import Backend, check_backend, check_tensor

__all__ = ["Translate2D", "TranslateFunction", "translate_2d"]


class TranslateFunction(torch.autograd.Function):
    """Y″ = Y′ + t with the hand-written backward dY′ = dY″, dt = Σ_n dY″."""

    @staticmethod
    def forward(ctx, points: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return points + t[:, None, :]

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        d_points = grad_out if ctx.needs_input_grad[0] else None
        d_t = grad_out.sum(1) if ctx.needs_input_grad[1] else None
        return d_points, d_t


def translate_2d(points: torch.Tensor, t: torch.Tensor, backend: Backend = "analytic") -> torch.Tensor:
    """Translate each image's 2-D points by its own offset.

    Args:
        points: (B, N, 2).
        t: (B, 2), same units as ``points`` (label-frame pixels in the STN).
        backend: ``"analytic"`` or ``"autograd"``.

    Returns:
        (B, N, 2).
    """
    check_backend(backend)
    check_tensor("points", points, 3, (2,))
    check_tensor("t", t, 2, (2,))
    if t.shape[0] != points.shape[0]:
        raise ShapeError(f"t has batch {t.shape[0]} but points have batch {points.shape[0]}")
    if backend == "analytic":
        return TranslateFunction.apply(points, t)
    return points + t[:, None, :]


class Translate2D(nn.Module):
    """nn.Module wrapper of :func:`translate_2d`: ((B, N, 2), (B, 2)) → (B, N, 2)."""

    def __init__(self, backend: Backend = "analytic") -> None:
        super().__init__()
        self.backend = check_backend(backend)

    def forward(self, points: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return translate_2d(points, t, self.backend)
