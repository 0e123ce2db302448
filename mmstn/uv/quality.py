"""How good is a UV map? Fold-overs, angle and area distortion, mirror symmetry, boundary counts.

Every function takes 3-D vertices ``V`` (N, 3) in millimetres (any unit works: only ratios and angles
are reported), 0-based triangles ``F`` (F, 3) and UVs ``uv`` (N, 2) in [0, 1]², v up.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mmstn.uv.laplacian import corner_angles_np

__all__ = [
    "UVQuality",
    "angle_distortion",
    "area_distortion",
    "flipped_triangles",
    "signed_uv_areas",
    "square_boundary_counts",
    "symmetry_error",
    "uv_quality",
]


def signed_uv_areas(uv: np.ndarray, F: np.ndarray) -> np.ndarray:
    """Signed area of every triangle in the UV plane, shape (F,), in UV units² (positive = counter-clockwise)."""
    uv = np.asarray(uv, dtype=np.float64)
    F = np.asarray(F, dtype=np.int64)
    a = uv[F[:, 1]] - uv[F[:, 0]]
    b = uv[F[:, 2]] - uv[F[:, 0]]
    return 0.5 * (a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])


def flipped_triangles(uv: np.ndarray, F: np.ndarray, *, rel_eps: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Fold-over and degenerate triangles of a UV map.

    A triangle is *flipped* when its signed UV area has the opposite sign to the majority of triangles,
    and *degenerate* when its |area| is at most ``rel_eps`` times the mean |area| (e.g. three vertices on
    one straight side of the UV square).

    Returns:
        (flipped, degenerate): two boolean arrays of shape (F,).
    """
    area = signed_uv_areas(uv, F)
    scale = float(np.mean(np.abs(area))) if area.size else 0.0
    degenerate = np.abs(area) <= rel_eps * scale
    majority = 1.0 if np.sum(area > 0) >= np.sum(area < 0) else -1.0
    flipped = (~degenerate) & (np.sign(area) == -majority)
    return flipped, degenerate


def angle_distortion(V: np.ndarray, F: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Per-corner |angle in UV − angle in 3-D|, shape (F, 3), **degrees** (0 for a conformal map)."""
    uv3 = np.concatenate([np.asarray(uv, dtype=np.float64), np.zeros((len(uv), 1))], axis=1)
    return np.degrees(np.abs(corner_angles_np(uv3, F) - corner_angles_np(V, F)))


def area_distortion(V: np.ndarray, F: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Per-triangle log(a_uv / a_3d) of *normalised* areas (each divided by its total), shape (F,).

    0 means the triangle keeps its share of the surface; +log 2 means it got twice its share. Degenerate
    triangles (zero area in either domain) give ±inf or nan; callers filter with ``np.isfinite``.
    """
    V = np.asarray(V, dtype=np.float64)
    F = np.asarray(F, dtype=np.int64)
    a3 = 0.5 * np.linalg.norm(np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]]), axis=1)
    a2 = np.abs(signed_uv_areas(uv, F))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(a2 / a2.sum()) - np.log(a3 / a3.sum())


def symmetry_error(uv: np.ndarray, mirror: np.ndarray) -> float:
    """max_i ‖uv[mirror[i]] − (1 − u_i, v_i)‖_∞ (0 for an exactly mirror-symmetric map)."""
    uv = np.asarray(uv, dtype=np.float64)
    mirror = np.asarray(mirror, dtype=np.int64)
    target = np.stack([1.0 - uv[:, 0], uv[:, 1]], axis=1)
    return float(np.max(np.abs(uv[mirror] - target))) if len(uv) else 0.0


def square_boundary_counts(uv: np.ndarray, tol: float = 0.0) -> dict[str, int]:
    """How many vertices sit on each side of the unit square and either side of u = 0.5.

    Returns a dict with keys ``"u=0"``, ``"u=1"``, ``"v=0"``, ``"v=1"`` (vertices within ``tol`` of that side;
    a corner counts for two sides), ``"left"`` (u < 0.5 − tol), ``"midline"`` (|u − 0.5| ≤ tol) and
    ``"right"`` (u > 0.5 + tol). For the authors' ``BFM_UV.mat`` these are 173, 173, 65, 105, 26635, 220,
    26635 (docs/conventions.md §9.1).
    """
    uv = np.asarray(uv, dtype=np.float64)
    u, v = uv[:, 0], uv[:, 1]
    return {
        "u=0": int(np.sum(np.abs(u) <= tol)),
        "u=1": int(np.sum(np.abs(u - 1.0) <= tol)),
        "v=0": int(np.sum(np.abs(v) <= tol)),
        "v=1": int(np.sum(np.abs(v - 1.0) <= tol)),
        "left": int(np.sum(u < 0.5 - tol)),
        "midline": int(np.sum(np.abs(u - 0.5) <= tol)),
        "right": int(np.sum(u > 0.5 + tol)),
    }


@dataclass(frozen=True)
class UVQuality:
    """Summary numbers of a UV map (see :func:`uv_quality`).

    Attributes:
        n_triangles: triangles measured.
        n_flipped: fold-overs (signed UV area opposite to the majority).
        n_degenerate: triangles with (numerically) zero UV area.
        angle_error_mean_deg: mean per-corner |angle_uv − angle_3d|, degrees, over non-degenerate triangles.
        angle_error_max_deg: the maximum of the same.
        log_area_ratio_mean: mean of log(normalised uv area / normalised 3-D area) (area-weighted by 3-D area).
        log_area_ratio_std: its standard deviation (unweighted), the usual "area distortion" number.
        log_area_ratio_maxabs: max |log ratio|.
        symmetry_error: max ‖uv[mirror[i]] − (1 − u_i, v_i)‖_∞, or ``None`` without a mirror map.
        in_unit_square: whether every UV lies in [0, 1]².
    """

    n_triangles: int
    n_flipped: int
    n_degenerate: int
    angle_error_mean_deg: float
    angle_error_max_deg: float
    log_area_ratio_mean: float
    log_area_ratio_std: float
    log_area_ratio_maxabs: float
    symmetry_error: float | None
    in_unit_square: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def summary(self) -> str:
        """One line for notebooks and logs."""
        sym = "n/a" if self.symmetry_error is None else f"{self.symmetry_error:.1e}"
        return (
            f"{self.n_triangles} triangles: {self.n_flipped} flipped, {self.n_degenerate} degenerate; "
            f"angle error mean {self.angle_error_mean_deg:.2f}° (max {self.angle_error_max_deg:.1f}°); "
            f"log area ratio std {self.log_area_ratio_std:.3f} (max |.| {self.log_area_ratio_maxabs:.2f}); "
            f"symmetry error {sym}; inside [0,1]²: {self.in_unit_square}"
        )


def uv_quality(V: np.ndarray, F: np.ndarray, uv: np.ndarray, mirror: np.ndarray | None = None) -> UVQuality:
    """Measure a UV map of the mesh (V (N, 3), F (F, 3)); ``mirror`` (N,) adds the symmetry error."""
    V = np.asarray(V, dtype=np.float64)
    F = np.asarray(F, dtype=np.int64)
    uv = np.asarray(uv, dtype=np.float64)
    flipped, degenerate = flipped_triangles(uv, F)
    ok = ~degenerate
    ang = angle_distortion(V, F[ok], uv)
    lar = area_distortion(V, F[ok], uv)
    finite = np.isfinite(lar)
    lar = lar[finite]
    a3 = 0.5 * np.linalg.norm(np.cross(V[F[ok, 1]] - V[F[ok, 0]], V[F[ok, 2]] - V[F[ok, 0]]), axis=1)[finite]
    return UVQuality(
        n_triangles=int(F.shape[0]),
        n_flipped=int(flipped.sum()),
        n_degenerate=int(degenerate.sum()),
        angle_error_mean_deg=float(ang.mean()) if ang.size else 0.0,
        angle_error_max_deg=float(ang.max()) if ang.size else 0.0,
        log_area_ratio_mean=float(np.average(lar, weights=a3)) if lar.size and a3.sum() > 0 else 0.0,
        log_area_ratio_std=float(lar.std()) if lar.size else 0.0,
        log_area_ratio_maxabs=float(np.abs(lar).max()) if lar.size else 0.0,
        symmetry_error=None if mirror is None else symmetry_error(uv, mirror),
        in_unit_square=bool(np.all((uv >= 0.0) & (uv <= 1.0))),
    )


