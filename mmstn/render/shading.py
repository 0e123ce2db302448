"""Shading: what colour each vertex of a posed face gets.

Two light models, both per vertex, on unit normals n in the camera frame (x right, y up, z towards the viewer):

* :class:`Lighting`, ambient + Lambert: shade = ambient + diffuse · max(n · d, 0), d the unit direction
  towards the light. The synthetic data, the figures and the test subjects are lit this way.
* Second-order real **spherical harmonics** (SH): shade_c(n) = Σ_j ℓ_cj Y_j(n) per colour channel, the light
  model of the model-based reconstructions (:mod:`mmstn.reconstruction`). The nine functions, in the order
  of :data:`SH_NAMES`, are

      Y₀₀ = c₀,  Y₁₋₁ = c₁ y,  Y₁₀ = c₁ z,  Y₁₁ = c₁ x,
      Y₂₋₂ = c₂ xy,  Y₂₋₁ = c₂ yz,  Y₂₀ = c₂₀ (3z² − 1),  Y₂₁ = c₂ xz,  Y₂₂ = c₂₂ (x² − y²),

  with c₀ = ½√(1/π) = 0.282095, c₁ = √(3/4π) = 0.488603, c₂ = ½√(15/π) = 1.092548,
  c₂₀ = ¼√(5/π) = 0.315392, c₂₂ = ¼√(15/π) = 0.546274: the **orthonormal** basis, ∫ Y_i Y_j dω = δ_ij over
  the sphere, so the coefficients ℓ (3, 9) are *irradiance* coefficients. For a distant environment with
  radiance coefficients L_j, ℓ_j = Â_l L_j with the clamped-cosine factors Â₀ = π, Â₁ = 2π/3, Â₂ = π/4
  (Ramamoorthi & Hanrahan 2001), :data:`SH_IRRADIANCE_FACTORS`; :func:`lambert_sh` converts a
  :class:`Lighting` into them.

:func:`shade_vertices` applies either to an albedo: colour = clip(albedo · shade · gain, 0, 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mmstn.errors import ShapeError, check_finite

__all__ = [
    "SH_CONSTANTS",
    "SH_IRRADIANCE_FACTORS",
    "SH_NAMES",
    "Lighting",
    "lambert_sh",
    "sh_basis",
    "sh_shading",
    "shade_vertices",
]


@dataclass(frozen=True)
class Lighting:
    """Ambient + Lambert lighting of a rendered face.

    Attributes:
        ambient: ambient term.
        diffuse: Lambert term weight.
        direction: direction *towards* the light in the camera frame (x right, y up, z to the viewer).
    """

    ambient: float = 0.45
    diffuse: float = 0.6
    direction: tuple[float, float, float] = (0.3, 0.4, 1.0)


# ----------------------------------------------------------------------------------- spherical harmonics
#: Names of the nine basis functions, in the order of :func:`sh_basis`.
SH_NAMES: tuple[str, ...] = ("Y00", "Y1-1", "Y10", "Y11", "Y2-2", "Y2-1", "Y20", "Y21", "Y22")

#: Normalisation constants c₀, c₁, c₂, c₂₀, c₂₂ of the orthonormal real SH (module docstring).
SH_CONSTANTS: dict[str, float] = {
    "c0": 0.5 * math.sqrt(1.0 / math.pi),
    "c1": math.sqrt(3.0 / (4.0 * math.pi)),
    "c2": 0.5 * math.sqrt(15.0 / math.pi),
    "c20": 0.25 * math.sqrt(5.0 / math.pi),
    "c22": 0.25 * math.sqrt(15.0 / math.pi),
}

#: Â_l per basis function: irradiance coefficient = Â_l × radiance coefficient (clamped-cosine convolution).
SH_IRRADIANCE_FACTORS: tuple[float, ...] = (math.pi,) + (2.0 * math.pi / 3.0,) * 3 + (math.pi / 4.0,) * 5


def sh_basis(normals: torch.Tensor, normalise: bool = True) -> torch.Tensor:
    """The nine orthonormal real SH functions of degree ≤ 2 at the given directions (module docstring).

    Args:
        normals: (..., 3) directions (x, y, z) in the camera frame; normalised first when ``normalise``
            (zero vectors stay zero and give Y₀₀ only).
        normalise: divide by the length.

    Returns:
        (..., 9) in the order of :data:`SH_NAMES`, same dtype as ``normals``.

    Raises:
        ShapeError: ``normals`` is not a floating-point tensor with last dimension 3.
        ValueError: ``normals`` holds NaN or inf.
    """
    if not isinstance(normals, torch.Tensor) or not torch.is_floating_point(normals):
        raise ShapeError(f"normals must be a floating-point tensor of shape (..., 3), got {type(normals).__name__}")
    if normals.ndim < 1 or normals.shape[-1] != 3:
        raise ShapeError(f"normals must have shape (..., 3), got {tuple(normals.shape)}")
    check_finite("normals", normals)
    n = normals
    if normalise:
        n = n / n.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(n.dtype).tiny)
    x, y, z = n.unbind(-1)
    c = SH_CONSTANTS
    return torch.stack(
        [
            torch.full_like(x, c["c0"]),
            c["c1"] * y,
            c["c1"] * z,
            c["c1"] * x,
            c["c2"] * x * y,
            c["c2"] * y * z,
            c["c20"] * (3.0 * z * z - 1.0),
            c["c2"] * x * z,
            c["c22"] * (x * x - y * y),
        ],
        dim=-1,
    )


def _check_sh(sh: torch.Tensor) -> torch.Tensor:
    if not isinstance(sh, torch.Tensor) or not torch.is_floating_point(sh):
        raise ShapeError(f"sh must be a floating-point tensor of shape (3, 9), got {type(sh).__name__}")
    if tuple(sh.shape) != (3, 9):
        raise ShapeError(f"sh must have shape (3, 9) (one row of 9 coefficients per colour), got {tuple(sh.shape)}")
    check_finite("sh", sh)
    return sh


def sh_shading(normals: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
    """Per-channel shading s_c(n) = Σ_j sh[c, j] Y_j(n).

    Args:
        normals: (..., 3) directions (normalised here).
        sh: (3, 9) irradiance coefficients per colour channel.

    Returns:
        (..., 3) shading (multiplies the albedo), same dtype as ``normals``.
    """
    sh = _check_sh(sh)
    return sh_basis(normals) @ sh.to(normals.dtype).T


_DEFAULT_LIGHT = Lighting()


def lambert_sh(lighting: Lighting = _DEFAULT_LIGHT, gain=(1.0, 1.0, 1.0)) -> torch.Tensor:
    """Order-2 SH coefficients (3, 9) of the project's ambient + Lambert light (:class:`Lighting`).

    The shading ``gain_c · (ambient + diffuse · max(n·d, 0))`` (d the unit direction towards the light) has
    irradiance coefficients ℓ_c0 = gain_c · (ambient / c₀ + diffuse · Â₀ Y₀₀(d)) and
    ℓ_cj = gain_c · diffuse · Â_l Y_j(d) for j > 0: a directional light is a delta of radiance, whose
    clamped-cosine convolution has the factors :data:`SH_IRRADIANCE_FACTORS`. The truncation at l = 2 is
    the only approximation: ¼ + ½ cos γ + (5/16)·(3 cos² γ − 1)/2 instead of max(cos γ, 0) at angle γ from
    the light, i.e. 1.0625 facing it, 0.0625 opposite, and at most 0.094 · ``diffuse`` off (at γ = 90°);
    the mean over the sphere is exact.

    Returns:
        float64 tensor (3, 9).
    """
    d = torch.as_tensor(lighting.direction, dtype=torch.float64)
    if d.shape != (3,) or float(d.norm()) == 0.0:
        raise ValueError(f"lighting.direction must be a non-zero 3-vector, got {lighting.direction}")
    y = sh_basis(d)
    factors = torch.tensor(SH_IRRADIANCE_FACTORS, dtype=torch.float64)
    row = lighting.diffuse * factors * y
    row[0] += lighting.ambient / SH_CONSTANTS["c0"]
    g = torch.as_tensor(gain, dtype=torch.float64).reshape(3, 1)
    return g * row[None]


def shade_vertices(
    normals: np.ndarray,
    albedo: np.ndarray,
    light: Lighting | torch.Tensor,
    gain: tuple[float, float, float] | np.ndarray = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """Per-vertex colours clip(albedo · shade(n) · gain, 0, 1).

    Args:
        normals: float (N, 3) unit vertex normals in the camera frame.
        albedo: float (N, 3) in [0, 1].
        light: a :class:`Lighting` (ambient + Lambert) or SH irradiance coefficients (3, 9).
        gain: per-channel multiplier of the shading (1 = white light).

    Returns:
        float64 (N, 3) in [0, 1].
    """
    n = np.asarray(normals, dtype=np.float64)
    if isinstance(light, Lighting):
        d = np.asarray(light.direction, dtype=np.float64)
        d = d / np.linalg.norm(d)
        shade = (light.ambient + light.diffuse * np.clip(np.einsum("nj,j->n", n, d), 0.0, 1.0))[:, None]
    else:
        shade = sh_shading(torch.from_numpy(n), light).numpy()
    return np.clip(np.asarray(albedo, dtype=np.float64) * shade * np.asarray(gain, dtype=np.float64), 0.0, 1.0)
