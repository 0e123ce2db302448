"""Axis-angle → rotation matrix (Rodrigues' formula) with the Gallego–Yezzi derivative (``vl_nnr2R.m``).

Forward. With θ = ‖r‖ and K = [r]× the cross-product matrix of r,

    R(r) = I + a(θ)·K + b(θ)·K²,   a = sin θ / θ,   b = (1 − cos θ) / θ² = 2·(sin(θ/2) / θ)².

Written with a and b (not with the unit axis r/θ) the formula is smooth at r = 0, where R = I. For
θ < :data:`SMALL_ANGLE` both coefficients come from their Taylor series in θ², so no 0/0 is ever formed
and plain autograd is NaN-free at r = 0. The half-angle form of b avoids the cancellation in 1 − cos θ.

Derivative (Gallego & Yezzi, "A compact formula for the derivative of a 3-D rotation in exponential
coordinates", J. Math. Imaging Vis. 2015), for r ≠ 0:

    ∂R/∂r_i = ( r_i·[r]× + [ r × ((I − R) e_i) ]× ) · R / ‖r‖²,

where e_i is the i-th canonical basis vector. (I − R) is formed as −(a·K + b·K²), without subtracting
two nearly equal matrices, so the formula keeps full relative precision down to small θ. It has no
singularity at θ = π. At θ → 0 the quotient is 0/0; there the hand-written backward differentiates
the a/b form instead,

    ∂R/∂r_i = a·[e_i]× + b·([e_i]×K + K[e_i]×) + r_i·(c·K + d·K²),
    c = a′(θ)/θ = (θ cos θ − sin θ)/θ³,   d = b′(θ)/θ = (θ sin θ − 2(1 − cos θ))/θ⁴,

with a, b, c, d from their Taylor series, so that exactly at r = 0 it gives ∂R/∂r_i = [e_i]×, as the
authors' code does.

Shapes: r (B, 3) radians (axis × angle); R (B, 3, 3), R[b, i, j] = R_ij, acting on column vectors
(x′ = R x).
"""

from __future__ import annotations

import torch
from torch import nn

from mmstn.layers._common import Backend, check_backend, check_tensor

__all__ = ["SMALL_ANGLE", "RodriguesFunction", "Rotation", "naive_rodrigues", "rodrigues", "rodrigues_jacobian", "skew"]

#: Below this angle (radians) the Taylor series of a, b, c, d replace the closed forms. The series are
#: kept to θ⁴, so their truncation error at the threshold is below 1e-24.
SMALL_ANGLE: float = 1e-4


def skew(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrix [v]×, so that [v]× w = v × w.

    Args:
        v: (..., 3).

    Returns:
        (..., 3, 3).
    """
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape[:-1], 3, 3)


def _coefficients(theta2: torch.Tensor, with_derivatives: bool = False) -> tuple[torch.Tensor, ...]:
    """a, b (and c, d) as functions of θ² (shape (B,)), Taylor-safe, differentiable everywhere."""
    small = theta2 < SMALL_ANGLE**2
    safe = torch.where(small, torch.ones_like(theta2), theta2)  # keeps the unused branch finite
    th = safe.sqrt()
    s, c_ = torch.sin(th), torch.cos(th)
    sh = torch.sin(0.5 * th)
    x = theta2  # Taylor branch variable (θ²); small, so these polynomials are exact to rounding
    a = torch.where(small, 1 - x / 6 + x * x / 120, s / th)
    b = torch.where(small, 0.5 - x / 24 + x * x / 720, 2 * (sh / th) ** 2)
    if not with_derivatives:
        return a, b
    one_minus_cos = 2 * sh * sh
    c = torch.where(small, -1 / 3 + x / 30 - x * x / 840, (th * c_ - s) / (safe * th))
    d = torch.where(small, -1 / 12 + x / 180 - x * x / 6720, (th * s - 2 * one_minus_cos) / (safe * safe))
    return a, b, c, d


def _rodrigues_plain(r: torch.Tensor) -> torch.Tensor:
    """R = I + aK + bK² with differentiable, Taylor-safe coefficients (the autograd backend)."""
    theta2 = (r * r).sum(-1)
    a, b = _coefficients(theta2)
    k = skew(r)
    eye = torch.eye(3, dtype=r.dtype, device=r.device).expand_as(k)
    return eye + a[:, None, None] * k + b[:, None, None] * (k @ k)


def rodrigues_jacobian(r: torch.Tensor, rotation: torch.Tensor | None = None) -> torch.Tensor:
    """∂R/∂r by the Gallego–Yezzi formula (Taylor form below :data:`SMALL_ANGLE`).

    Args:
        r: axis-angle vectors, (B, 3), radians.
        rotation: R(r), (B, 3, 3), if already computed.

    Returns:
        J, (B, 3, 3, 3) with J[b, i] = ∂R/∂r_i (a 3×3 matrix).
    """
    theta2 = (r * r).sum(-1)
    a, b, c, d = _coefficients(theta2, with_derivatives=True)
    k = skew(r)
    k2 = k @ k
    if rotation is None:
        eye = torch.eye(3, dtype=r.dtype, device=r.device)
        rotation = eye + a[:, None, None] * k + b[:, None, None] * k2
    basis_skew = skew(torch.eye(3, dtype=r.dtype, device=r.device))  # [e_i]×, (3, 3, 3)

    # Gallego–Yezzi: (r_i K + [r × (I − R) e_i]×) R / θ²
    i_minus_r = -(a[:, None, None] * k + b[:, None, None] * k2)  # (B, 3, 3), column i = (I − R) e_i
    v = torch.linalg.cross(r[:, :, None].expand_as(i_minus_r), i_minus_r, dim=1)  # column i = r × (I−R)e_i
    inner = r[:, :, None, None] * k[:, None] + skew(v.transpose(1, 2))  # (B, 3[i], 3, 3)
    safe = torch.where(theta2 > 0, theta2, torch.ones_like(theta2))
    gy = inner @ rotation[:, None] / safe[:, None, None, None]

    # Taylor form near r = 0: a [e_i]× + b ([e_i]× K + K [e_i]×) + r_i (c K + d K²)
    ek = basis_skew[None] @ k[:, None]
    ke = k[:, None] @ basis_skew[None]
    taylor = (
        a[:, None, None, None] * basis_skew[None]
        + b[:, None, None, None] * (ek + ke)
        + r[:, :, None, None] * (c[:, None, None] * k + d[:, None, None] * k2)[:, None]
    )
    small = (theta2 < SMALL_ANGLE**2)[:, None, None, None]
    return torch.where(small, taylor, gy)


class RodriguesFunction(torch.autograd.Function):
    """R(r) with the hand-written Gallego–Yezzi backward: dr_i = Σ_jk dR_jk · (∂R/∂r_i)_jk."""

    @staticmethod
    def forward(ctx, r: torch.Tensor) -> torch.Tensor:
        rot = _rodrigues_plain(r)
        ctx.save_for_backward(r, rot)
        return rot

    @staticmethod
    def backward(ctx, grad_rot: torch.Tensor):
        r, rot = ctx.saved_tensors
        jac = rodrigues_jacobian(r, rot)
        return torch.einsum("bjk,bijk->bi", grad_rot, jac)


def rodrigues(r: torch.Tensor, backend: Backend = "analytic") -> torch.Tensor:
    """Rotation matrices from axis-angle vectors (Rodrigues' formula).

    Args:
        r: (B, 3) axis-angle vectors, radians (direction = axis, norm = angle). r = 0 gives I exactly.
        backend: ``"analytic"`` (Gallego–Yezzi backward) or ``"autograd"`` (Taylor-safe closed form).

    Returns:
        R, (B, 3, 3), orthonormal with det 1, acting on column vectors.
    """
    check_backend(backend)
    check_tensor("r", r, 2, (3,))
    if backend == "analytic":
        return RodriguesFunction.apply(r)
    return _rodrigues_plain(r)


class Rotation(nn.Module):
    """nn.Module wrapper of :func:`rodrigues`: (B, 3) radians → (B, 3, 3)."""

    def __init__(self, backend: Backend = "analytic") -> None:
        super().__init__()
        self.backend = check_backend(backend)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return rodrigues(r, self.backend)


# ------------------------------------------------------------------------------- a counter-example
def naive_rodrigues(r: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula written the textbook way, with θ = ‖r‖ and the unit axis k = r/θ.

    A counter-example for the notebook: autograd through ``r / ‖r‖`` is 0/0 at r = 0, so its gradient there is
    NaN (the layer :func:`mmstn.layers.rodrigues` uses Taylor-safe coefficients instead).

    Args:
        r: (B, 3).

    Returns:
        (B, 3, 3).
    """
    theta = r.norm(dim=-1, keepdim=True)
    k = r / theta
    x, y, z = k.unbind(-1)
    o = torch.zeros_like(x)
    kx = torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(-1, 3, 3)
    eye = torch.eye(3, dtype=r.dtype, device=r.device).expand_as(kx)
    th = theta[..., None]
    return eye + torch.sin(th) * kx + (1 - torch.cos(th)) * (kx @ kx)
