"""Log-scale → scale, and 2-D scaling (``vl_nnlogScale2Scale.m``, ``vl_nnscale2D.m``).

The localiser predicts a log-scale; the layer turns it into a positive scale s = base^logs =
exp(κ·logs) with κ = ln(base). Two bases matter (docs/conventions.md §0.2):

* :attr:`ScaleBase.EXP` (κ = 1): the paper's s = exp(logs);
* :attr:`ScaleBase.MATCONVNET` (κ = ln 0.99 ≈ −0.01005): the authors' released code, s = 0.99^logs —
  sign-flipped and about 100× less sensitive than exp.

Any other positive base can be passed as a float.

Shapes: logs (B, 1), unit-free; s (B, 1), pixels per millimetre in the STN; points (B, N, 2).

Derivatives: ds/dlogs = κ·s; for Y′ = s·Y, dY = s·dY′ and ds = Σ_{n,c} dY′_nc Y_nc.
"""

from __future__ import annotations

import math
from enum import Enum

import torch
from torch import nn

from mmstn.errors import ShapeError
from mmstn.layers._common import Backend, check_backend, check_tensor

__all__ = [
    "LogScaleFunction",
    "LogScaleToScale",
    "Scale2D",
    "Scale2DFunction",
    "ScaleBase",
    "log_scale_to_scale",
    "scale_2d",
    "scale_rate",
]


class ScaleBase(str, Enum):
    """The base of s = base^logs."""

    EXP = "exp"  #: the paper: s = exp(logs)
    MATCONVNET = "0.99"  #: the authors' code: s = 0.99^logs


def scale_rate(base: ScaleBase | str | float) -> float:
    """κ = ln(base), so that s = exp(κ·logs). ``"exp"`` → 1, ``"0.99"`` → ln 0.99."""
    if isinstance(base, (int, float)) and not isinstance(base, bool):
        if base <= 0 or base == 1:
            raise ValueError(f"scale base must be positive and not 1, got {base}")
        return math.log(float(base))
    try:
        base = ScaleBase(base)
    except ValueError:
        raise ValueError(
            f"scale_base must be one of {[b.value for b in ScaleBase]} or a positive float, got {base!r}"
        ) from None
    return 1.0 if base is ScaleBase.EXP else math.log(0.99)


class LogScaleFunction(torch.autograd.Function):
    """s = exp(κ·logs) with the hand-written backward dlogs = κ·s·ds."""

    @staticmethod
    def forward(ctx, logs: torch.Tensor, kappa: float) -> torch.Tensor:
        s = torch.exp(kappa * logs)
        ctx.save_for_backward(s)
        ctx.kappa = kappa
        return s

    @staticmethod
    def backward(ctx, grad_s: torch.Tensor):
        (s,) = ctx.saved_tensors
        return ctx.kappa * s * grad_s, None


def log_scale_to_scale(
    logs: torch.Tensor, base: ScaleBase | str | float = ScaleBase.EXP, backend: Backend = "analytic"
) -> torch.Tensor:
    """s = base^logs.

    Args:
        logs: (B, 1) log-scales.
        base: :class:`ScaleBase` (``"exp"`` or ``"0.99"``) or a positive float.
        backend: ``"analytic"`` or ``"autograd"``.

    Returns:
        s, (B, 1), positive.
    """
    check_backend(backend)
    check_tensor("logs", logs, 2, (1,))
    kappa = scale_rate(base)
    if backend == "analytic":
        return LogScaleFunction.apply(logs, kappa)
    return torch.exp(kappa * logs)


class Scale2DFunction(torch.autograd.Function):
    """Y′ = s·Y with the hand-written backward dY = s·dY′, ds = Σ dY′∘Y."""

    @staticmethod
    def forward(ctx, points: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(points, s)
        return points * s[:, :, None]

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        points, s = ctx.saved_tensors
        d_points = grad_out * s[:, :, None] if ctx.needs_input_grad[0] else None
        d_s = (grad_out * points).sum((1, 2))[:, None] if ctx.needs_input_grad[1] else None
        return d_points, d_s


def scale_2d(points: torch.Tensor, s: torch.Tensor, backend: Backend = "analytic") -> torch.Tensor:
    """Scale each image's 2-D points by its own factor (isotropic).

    Args:
        points: (B, N, 2), millimetres in the STN.
        s: (B, 1), e.g. pixels per millimetre.
        backend: ``"analytic"`` or ``"autograd"``.

    Returns:
        (B, N, 2).
    """
    check_backend(backend)
    check_tensor("points", points, 3, (2,))
    check_tensor("s", s, 2, (1,))
    if s.shape[0] != points.shape[0]:
        raise ShapeError(f"s has batch {s.shape[0]} but points have batch {points.shape[0]}")
    if backend == "analytic":
        return Scale2DFunction.apply(points, s)
    return points * s[:, :, None]


class LogScaleToScale(nn.Module):
    """nn.Module wrapper of :func:`log_scale_to_scale`: (B, 1) → (B, 1)."""

    def __init__(self, base: ScaleBase | str | float = ScaleBase.EXP, backend: Backend = "analytic") -> None:
        super().__init__()
        self.base = base
        self.kappa = scale_rate(base)
        self.backend = check_backend(backend)

    def forward(self, logs: torch.Tensor) -> torch.Tensor:
        return log_scale_to_scale(logs, self.base, self.backend)

    def extra_repr(self) -> str:
        return f"base={self.base!r}, kappa={self.kappa:.6g}"


class Scale2D(nn.Module):
    """nn.Module wrapper of :func:`scale_2d`: ((B, N, 2), (B, 1)) → (B, N, 2)."""

    def __init__(self, backend: Backend = "analytic") -> None:
        super().__init__()
        self.backend = check_backend(backend)

    def forward(self, points: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return scale_2d(points, s, self.backend)
