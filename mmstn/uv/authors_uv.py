"""The authors' released UV map ``util/BFM_UV.mat`` (docs/conventions.md §9.1), as a reference for our embedding.

Reading is delegated to :func:`mmstn.models.authors.load_bfm_uv`; when that module is unavailable a small
``scipy.io.loadmat`` reader is used instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmstn.errors import ModelFileError
from mmstn.uv.quality import square_boundary_counts
from mmstn.uv.symmetry import mirror_from_uv

__all__ = ["BFM_UV_FACTS", "describe_uv_layout", "load_authors_uv"]

#: Facts about ``BFM_UV.mat`` that the file must reproduce (docs/conventions.md §9.1).
BFM_UV_FACTS: dict[str, int] = {
    "n_vertices": 53490,
    "left": 26635,
    "midline": 220,
    "right": 26635,
    "u=0": 173,
    "u=1": 173,
    "v=0": 65,
    "v=1": 105,
}


def _read_with_scipy(path: Path) -> np.ndarray:
    import scipy.io

    if not path.is_file():
        raise ModelFileError(path, "no such file")
    try:
        data = scipy.io.loadmat(str(path), variable_names=["UV"])
    except Exception as exc:  # scipy raises several types for non-MAT input
        raise ModelFileError(path, f"not a readable MAT-file ({type(exc).__name__}: {exc})") from exc
    if "UV" not in data:
        raise ModelFileError(path, "no variable 'UV'")
    uv = np.asarray(data["UV"], dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ModelFileError(path, f"UV has size {uv.shape}, expected N×2")
    return uv


def load_authors_uv(path: str | Path) -> np.ndarray:
    """Read ``BFM_UV.mat``: float64 (53490, 2), u to the viewer's right, v up, in [0, 1]²."""
    path = Path(path)
    try:
        from mmstn.models.authors import load_bfm_uv
    except ImportError:
        return _read_with_scipy(path)
    return load_bfm_uv(path)


def describe_uv_layout(uv: np.ndarray) -> dict[str, object]:
    """Counts of vertices on the square's sides and about u = 0.5, plus the exact-symmetry error.

    Returns :func:`mmstn.uv.quality.square_boundary_counts` (exact comparisons), ``"n_vertices"`` and
    ``"symmetry_error"`` (max distance from (1 − u, v) to its mirror vertex; ``nan`` if not symmetric).
    """
    uv = np.asarray(uv, dtype=np.float64)
    out: dict[str, object] = {"n_vertices": int(uv.shape[0]), **square_boundary_counts(uv)}
    try:
        m = mirror_from_uv(uv, tol=1e-9)
        out["symmetry_error"] = float(np.max(np.abs(uv[m] - np.stack([1 - uv[:, 0], uv[:, 1]], 1))))
    except ValueError:
        out["symmetry_error"] = float("nan")
    return out
