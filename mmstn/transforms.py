"""Rotation conversions: Euler angles ↔ rotation matrix ↔ axis-angle, in torch and numpy.

Euler convention (the one used everywhere in mmstn's API, :class:`mmstn.theta.Theta` included)::

    R = Rz(roll) · Ry(yaw) · Rx(pitch)

applied to column vectors (x′ = R x), right-handed, with Rx(a) = [[1, 0, 0], [0, cos a, −sin a],
[0, sin a, cos a]], Ry(b) = [[cos b, 0, sin b], [0, 1, 0], [−sin b, 0, cos b]] and
Rz(c) = [[cos c, −sin c, 0], [sin c, cos c, 0], [0, 0, 1]]. Pitch is applied first, then yaw, then
roll. The functions take and return **radians**; :class:`~mmstn.theta.Theta` exposes degrees. Yaw is
recovered in [−90°, 90°] (gimbal lock at ±90°: roll absorbs the ambiguity, pitch is set to 0).

Axis-angle r (…, 3): the rotation by |r| radians about r/|r| (Rodrigues), as θ's r columns.

Shapes: Euler angles (…,) each; matrices (…, 3, 3); axis-angle (…, 3). The numpy functions wrap the torch
ones (float64).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "axis_angle_to_euler",
    "axis_angle_to_matrix",
    "axis_angle_to_matrix_np",
    "euler_to_axis_angle",
    "euler_to_axis_angle_np",
    "euler_to_matrix",
    "euler_to_matrix_np",
    "matrix_to_axis_angle",
    "matrix_to_axis_angle_np",
    "matrix_to_euler",
    "matrix_to_euler_np",
]


def _as_tensor(x: torch.Tensor | float) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=torch.float64)


def euler_to_matrix(
    yaw: torch.Tensor | float, pitch: torch.Tensor | float, roll: torch.Tensor | float
) -> torch.Tensor:
    """R = Rz(roll)·Ry(yaw)·Rx(pitch) from angles in radians, each (…,) (broadcast) → (…, 3, 3)."""
    yaw, pitch, roll = torch.broadcast_tensors(_as_tensor(yaw), _as_tensor(pitch), _as_tensor(roll))
    ca, sa = torch.cos(pitch), torch.sin(pitch)
    cb, sb = torch.cos(yaw), torch.sin(yaw)
    cc, sc = torch.cos(roll), torch.sin(roll)
    # the product Rz·Ry·Rx written out, row by row
    rows = [
        [cc * cb, cc * sb * sa - sc * ca, cc * sb * ca + sc * sa],
        [sc * cb, sc * sb * sa + cc * ca, sc * sb * ca - cc * sa],
        [-sb, cb * sa, cb * ca],
    ]
    return torch.stack([torch.stack(row, -1) for row in rows], -2)


def matrix_to_euler(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(…, 3, 3) rotation → (yaw, pitch, roll) in radians, each (…,), for R = Rz(roll)·Ry(yaw)·Rx(pitch)."""
    m = matrix
    yaw = torch.asin((-m[..., 2, 0]).clamp(-1.0, 1.0))
    cb = torch.sqrt(m[..., 0, 0] ** 2 + m[..., 1, 0] ** 2)
    locked = cb < 1e-9
    pitch = torch.where(locked, torch.zeros_like(yaw), torch.atan2(m[..., 2, 1], m[..., 2, 2]))
    # at gimbal lock only roll − sign(yaw)·pitch is defined; with pitch = 0 roll comes from the second column
    roll_locked = torch.atan2(-m[..., 0, 1], m[..., 1, 1])
    roll = torch.where(locked, roll_locked, torch.atan2(m[..., 1, 0], m[..., 0, 0]))
    return yaw, pitch, roll


def axis_angle_to_matrix(r: torch.Tensor) -> torch.Tensor:
    """Rodrigues: (…, 3) axis-angle, radians → (…, 3, 3). Differentiable, exact at r = 0."""
    angle = r.norm(dim=-1, keepdim=True)[..., None]  # (…, 1, 1)
    zero = torch.zeros_like(r[..., 0])
    k = torch.stack(
        [torch.stack([zero, -r[..., 2], r[..., 1]], -1),
         torch.stack([r[..., 2], zero, -r[..., 0]], -1),
         torch.stack([-r[..., 1], r[..., 0], zero], -1)], -2)  # [r]×
    small = angle < 1e-8
    safe = torch.where(small, torch.ones_like(angle), angle)
    a = torch.where(small, 1 - angle**2 / 6, torch.sin(safe) / safe)
    b = torch.where(small, 0.5 - angle**2 / 24, (1 - torch.cos(safe)) / safe**2)
    eye = torch.eye(3, dtype=r.dtype, device=r.device).expand(k.shape)
    return eye + a * k + b * (k @ k)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """(…, 3, 3) rotation → (…, 3) axis-angle with |r| ∈ [0, π], radians (via a unit quaternion, stable
    near 0 and π)."""
    m = matrix
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # four candidate quaternions; the one with the largest denominator is well conditioned
    cands = torch.stack([
        torch.stack([1 + tr, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                     m[..., 1, 0] - m[..., 0, 1]], -1),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
                     m[..., 1, 0] + m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0]], -1),
        torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] + m[..., 0, 1],
                     1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], m[..., 2, 1] + m[..., 1, 2]], -1),
        torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] + m[..., 1, 2],
                     1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1),
    ], -2)  # (…, 4, 4), row i ∝ q
    diag = torch.stack([1 + tr, 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
                        1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
                        1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1)
    best = diag.argmax(-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    q = torch.where(q[..., :1] < 0, -q, q)  # w ≥ 0 → angle ≤ π
    vn = q[..., 1:].norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(vn, q[..., :1])
    small = vn < 1e-12
    factor = torch.where(small, torch.full_like(vn, 2.0), angle / torch.where(small, torch.ones_like(vn), vn))
    return q[..., 1:] * factor


def euler_to_matrix_np(yaw: np.ndarray | float, pitch: np.ndarray | float, roll: np.ndarray | float) -> np.ndarray:
    """numpy :func:`euler_to_matrix` (radians) → (…, 3, 3) float64."""
    return euler_to_matrix(*(torch.as_tensor(np.asarray(a, np.float64)) for a in (yaw, pitch, roll))).numpy()


def matrix_to_euler_np(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy :func:`matrix_to_euler` → (yaw, pitch, roll) radians."""
    out = matrix_to_euler(torch.as_tensor(np.asarray(matrix, np.float64)))
    return out[0].numpy(), out[1].numpy(), out[2].numpy()


def axis_angle_to_matrix_np(r: np.ndarray) -> np.ndarray:
    """numpy :func:`axis_angle_to_matrix` → (…, 3, 3) float64."""
    return axis_angle_to_matrix(torch.as_tensor(np.asarray(r, np.float64))).numpy()


def matrix_to_axis_angle_np(matrix: np.ndarray) -> np.ndarray:
    """numpy :func:`matrix_to_axis_angle` → (…, 3) float64."""
    return matrix_to_axis_angle(torch.as_tensor(np.asarray(matrix, np.float64))).numpy()


def euler_to_axis_angle(
    yaw: torch.Tensor | float, pitch: torch.Tensor | float, roll: torch.Tensor | float
) -> torch.Tensor:
    """Axis-angle (…, 3) of R = Rz(roll)·Ry(yaw)·Rx(pitch), angles in radians."""
    return matrix_to_axis_angle(euler_to_matrix(yaw, pitch, roll))


def axis_angle_to_euler(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(yaw, pitch, roll) radians of the axis-angle r (…, 3)."""
    return matrix_to_euler(axis_angle_to_matrix(r))


def euler_to_axis_angle_np(yaw: np.ndarray | float, pitch: np.ndarray | float, roll: np.ndarray | float) -> np.ndarray:
    """numpy :func:`euler_to_axis_angle` (radians) → (…, 3) float64."""
    return matrix_to_axis_angle_np(euler_to_matrix_np(yaw, pitch, roll))
