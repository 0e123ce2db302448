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

from mmstn.layers.rotation import rodrigues

__all__ = [
    "angles_to_axis_angle",
    "axis_angle_to_angles",
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
    "rotation_error_deg",
    "rotation_from_angles",
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
    """Rodrigues: (…, 3) axis-angle, radians → (…, 3, 3). Differentiable, exact at r = 0.

    Any batch shape; the formula is the STN's own (:func:`mmstn.layers.rotation.rodrigues`, autograd backend).
    """
    flat = r.reshape(-1, 3)
    return rodrigues(flat, "autograd").reshape(*r.shape[:-1], 3, 3)


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


# ----------------------------------------------------------------------------------------- degrees
def rotation_from_angles(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """Rotation matrix (3, 3) for angles in degrees, in mmstn's one convention R = R_z(roll)·R_y(yaw)·R_x(pitch)
    (:mod:`mmstn.transforms`): positive yaw turns the nose to the viewer's right, positive pitch tilts it
    down, positive roll turns the face counter-clockwise in the image."""
    return euler_to_matrix_np(*np.deg2rad([yaw, pitch, roll]))


def angles_to_axis_angle(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Axis-angle r (3,) radians of R = R_z(roll)·R_y(yaw)·R_x(pitch), angles in degrees (:mod:`mmstn.transforms`)."""
    return matrix_to_axis_angle_np(euler_to_matrix_np(*np.deg2rad([yaw, pitch, roll])))


def axis_angle_to_angles(r) -> tuple[float, float, float]:
    """Inverse of :func:`angles_to_axis_angle`: (yaw, pitch, roll) in degrees."""
    yaw, pitch, roll = np.rad2deg(matrix_to_euler_np(axis_angle_to_matrix_np(np.asarray(r, dtype=np.float64))))
    return float(yaw), float(pitch), float(roll)


# ------------------------------------------------------------------------------------------ errors
def rotation_error_deg(r_a: torch.Tensor, r_b: torch.Tensor) -> torch.Tensor:
    """Geodesic angle (degrees) between the rotations of two axis-angle batches (B, 3) → (B,)."""
    ra, rb = axis_angle_to_matrix(r_a.double()), axis_angle_to_matrix(r_b.double())
    cos = ((ra.transpose(-1, -2) @ rb).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))
