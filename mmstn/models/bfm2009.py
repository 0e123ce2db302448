"""Basel Face Model 2009 (``PublicMM1/01_MorphableModel.mat``) and the MATLAB file reading it needs.

The file holds (docs/conventions.md §10.1), with N = 53490 vertices and K = 199 components:

=========== ============ ==========================================================================
variable    MATLAB size  meaning
=========== ============ ==========================================================================
``shapeMU`` 3N×1         mean shape, interleaved [x1 y1 z1 x2 …], micrometres
``shapePC`` 3N×K         orthonormal principal directions (unit-norm columns)
``shapeEV`` K×1          standard deviations (not variances), micrometres
``texMU``   3N×1         mean albedo, interleaved RGB in 0..255
``texPC``   3N×K         orthonormal colour directions
``texEV``   K×1          colour standard deviations, 0..255 units
``tl``      F×3          triangles, 1-based, clockwise seen from the front
``segbin``  N×4          segment masks (not used here)
=========== ============ ==========================================================================

:func:`load_bfm2009` converts to the :class:`~mmstn.models.morphable.MorphableModel` conventions:
µm → mm (÷ 1000), ``basis[k] = shapePC[:, k] · shapeEV[k]`` so that α ~ N(0, I), colour ÷ 255,
0-based triangles with two indices swapped (clockwise → counter-clockwise from the front).

Copies of the file exist both as MATLAB v5 and v7.3 MAT-files; :func:`mmstn.models.matfile.read_mat_variables`
reads both.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mmstn.errors import ModelFileError, check_finite_field
from mmstn.models.authors import load_bfm_uv, read_anl, uv_mirror_map
from mmstn.models.matfile import read_mat_variables
from mmstn.models.morphable import MorphableModel

__all__ = [
    "BFM2009_LICENCE",
    "ccw_from_clockwise",
    "front_normal",
    "load_bfm2009",
    "read_mat_variables",  # re-exported from mmstn.models.matfile
    "validate_triangles",
]

#: Licence line printed with every model built from the BFM 2009.
BFM2009_LICENCE = (
    "Basel Face Model 2009 (University of Basel): non-commercial research use under the BFM licence "
    "agreement; do not redistribute"
)

_MICROMETRES_PER_MM = 1000.0


# --------------------------------------------------------------------------- mesh helpers
def ccw_from_clockwise(triangles: np.ndarray) -> np.ndarray:
    """Reverse the winding of every triangle by swapping its last two indices: (F, 3) → (F, 3)."""
    triangles = np.asarray(triangles)
    return np.ascontiguousarray(triangles[:, [0, 2, 1]])


def front_normal(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unit direction of the area-weighted sum of the face normals (p1 − p0) × (p2 − p0).

    For an open face mask in the BFM frame this is close to +z when the triangles are counter-clockwise
    seen from the front and close to −z when they are clockwise.

    Args:
        vertices: (N, 3) positions (any unit).
        triangles: (F, 3) 0-based indices.

    Returns:
        (3,) float64 unit vector (zeros for a degenerate mesh).
    """
    v = np.asarray(vertices, dtype=np.float64)
    t = np.asarray(triangles, dtype=np.int64)
    n = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]]).sum(axis=0)
    norm = float(np.linalg.norm(n))
    return n / norm if norm > 0 else n


def validate_triangles(path: str | Path, tl: np.ndarray, n_vertices: int, *, one_based: bool) -> np.ndarray:
    """Check a triangle list read from ``path`` and return it as 0-based int64 (F, 3).

    Args:
        path: the file it came from (for error messages).
        tl: (F, 3) (or (3, F) when F != 3) integer-valued indices.
        n_vertices: N; every index must address a vertex.
        one_based: subtract one (MATLAB files).

    Raises:
        ModelFileError: wrong size, non-integer values, empty list or indices out of range.
    """
    tl = np.asarray(tl)
    if tl.ndim != 2 or 3 not in tl.shape:
        raise ModelFileError(path, f"triangle list has size {tl.shape}, expected F×3")
    if tl.shape[1] != 3:
        tl = tl.T
    if np.issubdtype(tl.dtype, np.floating):
        if not np.all(np.isfinite(tl)) or np.any(tl != np.round(tl)):
            raise ModelFileError(path, "triangle list holds non-integer values")
    tri = tl.astype(np.int64) - (1 if one_based else 0)
    if tri.size == 0:
        raise ModelFileError(path, "triangle list is empty")
    lo, hi = int(tri.min()), int(tri.max())
    if lo < 0 or hi >= n_vertices:
        shift, base = (1, "1-based") if one_based else (0, "0-based")
        raise ModelFileError(
            path,
            f"triangle indices run {lo + shift}..{hi + shift} ({base}) but the model has {n_vertices} vertices",
        )
    return tri


def _pca_basis(
    path: Path, pc: np.ndarray, sd: np.ndarray, n_vertices: int, what: str, scale: float = 1.0
) -> np.ndarray:
    """(3N, K) directions × (K,) standard deviations × ``scale`` → (K, N, 3) basis, float32."""
    pc = np.asarray(pc)
    sd = np.asarray(sd, dtype=np.float64).reshape(-1)
    if pc.ndim != 2 or pc.shape[0] != 3 * n_vertices:
        raise ModelFileError(path, f"{what} directions have size {pc.shape}, expected {3 * n_vertices}×K")
    if sd.size != pc.shape[1]:
        raise ModelFileError(path, f"{what}: {pc.shape[1]} directions but {sd.size} standard deviations")
    if not np.all(np.isfinite(sd)) or np.any(sd < 0):
        raise ModelFileError(path, f"{what} standard deviations must be finite and non-negative")
    basis = (pc.astype(np.float32, copy=False) * (sd * scale).astype(np.float32)[None, :]).T
    return np.ascontiguousarray(basis).reshape(pc.shape[1], n_vertices, 3)


# --------------------------------------------------------------------------- loader
def load_bfm2009(
    path: str | Path,
    *,
    with_texture: bool = True,
    landmarks_anl: str | Path | Sequence[str | Path] | None = None,
    uv_path: str | Path | None = None,
) -> MorphableModel:
    """Load ``01_MorphableModel.mat`` as a :class:`MorphableModel` in mm with α ~ N(0, I).

    Args:
        path: the BFM 2009 ``.mat`` file (MATLAB v5 or v7.3).
        with_texture: also read ``texMU``/``texPC``/``texEV`` into ``colour`` (N, 3) and
            ``texture_basis`` (K, N, 3), both in [0, 1] units.
        landmarks_anl: one or more of the authors' ``.anl`` files indexing the BFM vertices
            (``Landmarks21_BFM.anl``, ``Landmarks68_BFM.anl``); a 21-entry file becomes
            ``landmarks["aflw21"]``, a 68-entry file ``landmarks["ibug68"]``.
        uv_path: the authors' ``BFM_UV.mat``; sets ``uv`` (N, 2) and the ``mirror`` map derived from the
            exact left/right symmetry of the flattening.

    Returns:
        A model with N = 53490 vertices, D = K = 199 identity components (``n_identity = K``),
        mean (N, 3) and basis (K, N, 3) in millimetres, triangles counter-clockwise from the front.

    Raises:
        ModelFileError: a file is missing, unreadable, truncated or inconsistent.
    """

    path = Path(path)
    shape_names = ["shapeMU", "shapePC", "shapeEV", "tl"]
    tex_names = ["texMU", "texPC", "texEV"] if with_texture else []
    var = read_mat_variables(path, shape_names + tex_names)
    for name, value in var.items():
        check_finite_field(path, name, value)  # NaN/inf would only surface later, without the file's name

    mu = np.asarray(var["shapeMU"]).reshape(-1)
    if mu.size == 0 or mu.size % 3:
        raise ModelFileError(path, f"shapeMU has {mu.size} values, expected 3N (interleaved xyz)")
    n = mu.size // 3
    mean = mu.astype(np.float32).reshape(n, 3) / _MICROMETRES_PER_MM
    basis = _pca_basis(path, var["shapePC"], var["shapeEV"], n, "shapePC/shapeEV", 1.0 / _MICROMETRES_PER_MM)
    triangles = ccw_from_clockwise(validate_triangles(path, var["tl"], n, one_based=True))

    colour = texture_basis = None
    if with_texture:
        tex_mu = np.asarray(var["texMU"]).reshape(-1)
        if tex_mu.size != 3 * n:
            raise ModelFileError(path, f"texMU has {tex_mu.size} values, expected {3 * n}")
        colour = tex_mu.astype(np.float32).reshape(n, 3) / 255.0
        texture_basis = _pca_basis(path, var["texPC"], var["texEV"], n, "texPC/texEV", 1.0 / 255.0)

    landmarks: dict[str, np.ndarray] = {}
    if landmarks_anl is not None:
        files = [landmarks_anl] if isinstance(landmarks_anl, (str, Path)) else list(landmarks_anl)
        for anl in files:
            key, idx = _landmark_set(Path(anl), read_anl(anl), n)
            landmarks[key] = idx

    uv = mirror = None
    if uv_path is not None:
        uv = load_bfm_uv(uv_path, n_vertices=n)
        try:
            mirror = uv_mirror_map(uv)
        except ValueError as exc:
            raise ModelFileError(uv_path, f"UV map is not exactly mirror-symmetric: {exc}") from exc

    return MorphableModel(
        name="BFM 2009",
        mean=mean,
        basis=basis,
        n_identity=basis.shape[0],
        triangles=triangles,
        landmarks=landmarks,
        uv=uv,
        colour=colour,
        texture_basis=texture_basis,
        mirror=mirror,
        licence=BFM2009_LICENCE,
        source=str(path),
    )


def _landmark_set(path: Path, idx: np.ndarray, n_vertices: int) -> tuple[str, np.ndarray]:
    """Name a landmark index list by its length and check it indexes this model."""
    names = {21: "aflw21", 68: "ibug68"}
    if idx.size not in names:
        raise ModelFileError(path, f"{idx.size} landmark indices; expected 21 (AFLW) or 68 (iBUG)")
    if int(idx.max()) >= n_vertices:
        raise ModelFileError(
            path,
            f"landmark index {int(idx.max()) + 1} (1-based) exceeds the model's {n_vertices} vertices; "
            "is this the landmark file of a resampled grid (…_112/…_224) instead of …_BFM?",
        )
    return names[idx.size], idx
