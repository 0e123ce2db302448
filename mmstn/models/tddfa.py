"""The paper's expression basis: 3DDFA's FaceWarehouse expressions transferred onto the full BFM 2009.

3DDFA (Zhu et al., CVPR 2016) ships ``Model_Expression.mat`` with ``w_exp`` (3M×29, interleaved xyz,
BFM micrometres) on M = 53215 vertices: the BFM with 275 mouth-interior vertices removed. The authors'
``map_tddfa_to_basel.mat`` gives, for each 3DDFA vertex, its 0-based BFM vertex (uint16 1×53215).

Method-spec §3.3: for each expression column W (M×3) find BFM displacements D (N×3) minimising

    ‖L·D‖² + ‖S·D − W‖²,

with S the M×N selection matrix S[k, map[k]] = 1 and L the cotangent Laplacian of the BFM mean mesh,
L = −2 · ``igl.cotmatrix`` (L_ij = −(cot α_ij + cot β_ij), positive semi-definite). The normal equations
(LᵀL + SᵀS)·D = Sᵀ·W are solved once per xyz column. On the shared vertices D follows W (softly); on the
trimmed vertices it is the smoothest fill. The columns are **not** scaled by ``sigma_exp`` (as the authors
do), so one unit of an expression coefficient is one unit of ``w_exp``.

:func:`build_paper_model` assembles the paper's D = 10 model: 5 identity components (shapePC · shapeEV)
followed by the first 5 transferred expressions, all in millimetres.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from mmstn.errors import ModelFileError, check_finite_field
from mmstn.models.bfm2009 import load_bfm2009
from mmstn.models.matfile import read_mat_variables
from mmstn.models.morphable import MorphableModel

__all__ = [
    "PAPER_LICENCE",
    "TDDFA_LICENCE",
    "build_paper_model",
    "laplace_beltrami",
    "load_tddfa_expressions",
    "transfer_expressions",
]

#: Licence line of the 3DDFA expression model.
TDDFA_LICENCE = "3DDFA Model_Expression.mat (Zhu et al., CAS-CBSR): research use per the 3DDFA release terms"

#: Licence line of the paper's model (BFM 2009 identity + 3DDFA expressions + the authors' vertex map).
PAPER_LICENCE = (
    "BFM 2009 (University of Basel, non-commercial research only, no redistribution) + 3DDFA expressions "
    "(research use) + map_tddfa_to_basel.mat from the authors' 3DMM-STN release (Apache-2.0)"
)

_MICROMETRES_PER_MM = 1000.0


def load_tddfa_expressions(path_model_expression: str | Path, path_map: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read 3DDFA's expression basis and the 3DDFA → BFM vertex map.

    Args:
        path_model_expression: ``Model_Expression.mat`` (variable ``w_exp``, 3M×E, micrometres).
        path_map: ``map_tddfa_to_basel.mat`` (variable ``map_tddfa_to_basel``, 1×M, 0-based BFM indices).

    Returns:
        ``(w_exp, vertex_map)``: w_exp float64 (3M, E) exactly as stored (interleaved xyz, µm, unscaled);
        vertex_map int64 (M,), 0-based BFM vertex of each 3DDFA vertex.

    Raises:
        ModelFileError: a file is missing, unreadable, or the two files disagree on M.
    """

    w_exp = np.asarray(read_mat_variables(path_model_expression, ["w_exp"])["w_exp"], dtype=np.float64)
    raw_map = np.asarray(read_mat_variables(path_map, ["map_tddfa_to_basel"])["map_tddfa_to_basel"])
    check_finite_field(path_map, "map_tddfa_to_basel", raw_map)
    if raw_map.size == 0:
        raise ModelFileError(path_map, "map_tddfa_to_basel is empty")
    if raw_map.ndim != 2 or min(raw_map.shape) != 1:
        raise ModelFileError(path_map, f"map_tddfa_to_basel has size {raw_map.shape}, expected 1×M")
    if np.issubdtype(raw_map.dtype, np.floating) and np.any(raw_map != np.round(raw_map)):
        raise ModelFileError(path_map, "map_tddfa_to_basel holds non-integer values")
    vertex_map = raw_map.reshape(-1).astype(np.int64)
    if vertex_map.min() < 0:
        raise ModelFileError(path_map, "map_tddfa_to_basel holds negative indices")
    if np.unique(vertex_map).size != vertex_map.size:
        raise ModelFileError(path_map, "map_tddfa_to_basel maps two 3DDFA vertices to the same BFM vertex")
    if w_exp.ndim != 2 or w_exp.shape[0] != 3 * vertex_map.size:
        raise ModelFileError(
            path_model_expression,
            f"w_exp has size {w_exp.shape}, expected {3 * vertex_map.size}×E to match the {vertex_map.size} "
            f"vertices of {Path(path_map).name}",
        )
    check_finite_field(path_model_expression, "w_exp", w_exp)
    return w_exp, vertex_map


def laplace_beltrami(vertices: np.ndarray, triangles: np.ndarray) -> sp.csr_matrix:
    """The authors' Laplace–Beltrami matrix (``util/LaplaceBeltrami.m``): L = −2 · ``igl.cotmatrix``.

    L_ij = −(cot α_ij + cot β_ij) for each edge (i, j) (α, β the angles opposite the edge; one term on a
    boundary edge), L_ii = −Σ_j L_ij. Symmetric positive semi-definite, rows sum to zero, scale-free.
    This is **twice** :func:`mmstn.uv.laplacian.cotangent_laplacian` (−``igl.cotmatrix``); the factor matters
    here because the expression transfer weighs ‖L·D‖² against the data term without a weight.

    Args:
        vertices: (N, 3) positions (any unit).
        triangles: (F, 3) 0-based indices (winding irrelevant).

    Returns:
        (N, N) float64 CSR matrix.
    """
    v = np.asarray(vertices, dtype=np.float64)
    t = np.asarray(triangles, dtype=np.int64)
    n = v.shape[0]
    rows, cols, vals = [], [], []
    for k in range(3):  # the angle at corner k is opposite the edge (i, j)
        i, j, c = t[:, (k + 1) % 3], t[:, (k + 2) % 3], t[:, k]
        e1, e2 = v[i] - v[c], v[j] - v[c]
        cross = np.linalg.norm(np.cross(e1, e2), axis=1)
        dot = np.einsum("ij,ij->i", e1, e2)
        cot = np.divide(dot, cross, out=np.zeros_like(dot), where=cross > 0)
        rows += [i, j]
        cols += [j, i]
        vals += [-cot, -cot]
    off = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    off = off.tocsr()
    diag = -np.asarray(off.sum(axis=1)).reshape(-1)
    return (off + sp.diags(diag)).tocsr()


def _mesh_arrays(mesh: MorphableModel | tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(mesh, MorphableModel):
        return mesh.mean.detach().cpu().numpy(), mesh.triangles.cpu().numpy()
    vertices, triangles = mesh
    return np.asarray(vertices), np.asarray(triangles)


def transfer_expressions(
    bfm: MorphableModel | tuple[np.ndarray, np.ndarray],
    w_exp: np.ndarray,
    vertex_map: np.ndarray,
    n_expression: int = 5,
    *,
    w_exp_to_mm: float = 1.0 / _MICROMETRES_PER_MM,
) -> np.ndarray:
    """Transfer the first ``n_expression`` columns of ``w_exp`` to every BFM vertex (docs/conventions.md §3.3).

    Args:
        bfm: the BFM (its ``mean`` and ``triangles`` are used) or a ``(vertices (N, 3), triangles (F, 3))``
            pair. Only the mesh geometry matters, and cotangent weights do not depend on its unit.
        w_exp: (3M, E) displacements, interleaved xyz, on the M mapped vertices.
        vertex_map: (M,) 0-based BFM vertex of each row triple of ``w_exp``; all distinct.
        n_expression: how many leading columns to transfer.
        w_exp_to_mm: factor from ``w_exp`` units to millimetres (1/1000 for 3DDFA's micrometres).

    Returns:
        (n_expression, N, 3) float64 displacements in millimetres, unscaled (no ``sigma_exp``).
    """
    vertices, triangles = _mesh_arrays(bfm)
    n = vertices.shape[0]
    vertex_map = np.asarray(vertex_map, dtype=np.int64).reshape(-1)
    w_exp = np.asarray(w_exp, dtype=np.float64)
    m = vertex_map.size
    if w_exp.ndim != 2 or w_exp.shape[0] != 3 * m:
        raise ValueError(f"w_exp must have shape (3M, E) = ({3 * m}, E) for M={m} mapped vertices, got {w_exp.shape}")
    if not 1 <= n_expression <= w_exp.shape[1]:
        raise ValueError(f"n_expression={n_expression} must lie in [1, {w_exp.shape[1]}] (columns of w_exp)")
    if m == 0 or vertex_map.min() < 0 or vertex_map.max() >= n:
        raise ValueError(f"vertex_map must hold indices in [0, {n}) for the {n}-vertex mesh")
    if np.unique(vertex_map).size != m:
        raise ValueError("vertex_map must not repeat a vertex")

    laplacian = laplace_beltrami(vertices, triangles)
    select = sp.csr_matrix((np.ones(m), (np.arange(m), vertex_map)), shape=(m, n))
    system = (laplacian.T @ laplacian + select.T @ select).tocsc()
    # W_i = reshape(w_exp[:, i], 3, M)ᵀ; stack every (expression, xyz) column as one right-hand side.
    w = w_exp[:, :n_expression].reshape(m, 3, n_expression).transpose(0, 2, 1).reshape(m, 3 * n_expression)
    rhs = np.zeros((n, 3 * n_expression))
    rhs[vertex_map] = w  # Sᵀ·W
    solution = spla.splu(system, permc_spec="MMD_AT_PLUS_A").solve(rhs)
    return solution.reshape(n, n_expression, 3).transpose(1, 0, 2) * w_exp_to_mm


def build_paper_model(
    bfm_path: str | Path,
    expression_path: str | Path,
    map_path: str | Path,
    *,
    n_identity: int = 5,
    n_expression: int = 5,
    with_texture: bool = True,
    landmarks_anl: str | Path | Sequence[str | Path] | None = None,
    uv_path: str | Path | None = None,
) -> MorphableModel:
    """The paper's model: BFM 2009 identity components followed by transferred 3DDFA expressions.

    Args:
        bfm_path: ``01_MorphableModel.mat``.
        expression_path: 3DDFA ``Model_Expression.mat``.
        map_path: the authors' ``map_tddfa_to_basel.mat``.
        n_identity: leading BFM identity components kept (5 in the paper).
        n_expression: leading 3DDFA expressions transferred (5 in the paper).
        with_texture, landmarks_anl, uv_path: passed to :func:`~mmstn.models.bfm2009.load_bfm2009`.

    Returns:
        A model with N = 53490 vertices and D = n_identity + n_expression components (10 by default),
        mean and basis in millimetres, ``n_identity`` identity components first.

    Raises:
        ModelFileError: a file is missing or unreadable, or the map does not fit the BFM.
    """
    bfm = load_bfm2009(bfm_path, with_texture=with_texture, landmarks_anl=landmarks_anl, uv_path=uv_path)
    if not 1 <= n_identity <= bfm.n_identity:
        raise ValueError(f"n_identity={n_identity} must lie in [1, {bfm.n_identity}]")
    w_exp, vertex_map = load_tddfa_expressions(expression_path, map_path)
    if vertex_map.max() >= bfm.n_vertices:
        raise ModelFileError(
            map_path,
            f"maps to BFM vertex {int(vertex_map.max())} but {Path(bfm_path).name} has {bfm.n_vertices} vertices",
        )
    if n_expression > w_exp.shape[1]:
        raise ModelFileError(
            expression_path, f"w_exp has {w_exp.shape[1]} columns, fewer than n_expression={n_expression}"
        )
    expressions = transfer_expressions(bfm, w_exp, vertex_map, n_expression)
    basis = np.concatenate([bfm.basis[:n_identity].numpy(), expressions.astype(np.float32)], axis=0)
    return bfm.with_fields(
        name=f"BFM 2009 + 3DDFA expressions ({n_identity} identity + {n_expression} expression)",
        basis=basis,
        n_identity=n_identity,
        licence=PAPER_LICENCE,
        source=f"{bfm_path} + {expression_path} + {map_path}",
    )
