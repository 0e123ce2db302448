"""Sparse edge-weight matrices and graph Laplacians for flattening a triangle mesh.

Three weightings, all built in a few vectorised NumPy passes over the triangle array (no Python loop over
triangles):

* **cotangent** ("conformal", "harmonic"): w_ij = ½ (cot α_ij + cot β_ij), where α_ij and β_ij are the angles
  opposite the edge ij in its two triangles (one angle on a boundary edge). Symmetric. Negative on edges whose
  opposite angles sum to more than π, which is how a cotangent Tutte map can fold over.
* **mean value** (Floater 2003, "Mean value coordinates"): w_ij = (tan(δ_ij/2) + tan(γ_ij/2)) / ‖v_i − v_j‖,
  where δ_ij and γ_ij are the angles *at v_i* between the edge ij and the other edge of each of the two
  triangles that share ij. Always positive; **not symmetric** (row i holds the weights of vertex i).
* **uniform** (Tutte 1963): w_ij = 1 for every edge.

Sign convention. A *weight matrix* ``W`` (N, N) holds w_ij ≥ 0 off the diagonal and zeros on it. The
*Laplacian* is ``L = diag(W·1) − W`` (rows sum to zero, positive semi-definite for the symmetric
weightings). For the cotangent weights this is **minus** libigl's ``igl.cotmatrix`` (which is negative
semi-definite) and half of the authors' ``util/LaplaceBeltrami.m`` matrix (docs/conventions.md §3.3).

All functions take vertices ``V`` (N, 3) (or (N, 2)) in any length unit and 0-based triangles ``F`` (F, 3).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

from mmstn.layers.visibility import corner_angles as _corner_angles

__all__ = [
    "WEIGHTINGS",
    "Weighting",
    "corner_angles_np",
    "cotangent_laplacian",
    "cotangent_weights",
    "laplacian_from_weights",
    "mean_value_weights",
    "uniform_weights",
    "weight_matrix",
]

Weighting = Literal["cotan", "cotan_clamped", "mean_value", "uniform"]
#: The weightings :func:`weight_matrix` understands (``"cotan_clamped"``: cotangent with negative weights set to 0).
WEIGHTINGS: tuple[str, ...] = ("cotan", "cotan_clamped", "mean_value", "uniform")


def _check_mesh(V: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    V = np.asarray(V, dtype=np.float64)
    F = np.asarray(F)
    if V.ndim != 2 or V.shape[1] not in (2, 3):
        raise ValueError(f"V must have shape (N, 3) or (N, 2), got {V.shape}")
    if F.ndim != 2 or F.shape[1] != 3:
        raise ValueError(f"F must have shape (F, 3), got {F.shape}")
    if not np.issubdtype(F.dtype, np.integer):
        raise ValueError(f"F must hold integer vertex indices, got dtype {F.dtype}")
    if F.size and (F.min() < 0 or F.max() >= V.shape[0]):
        raise ValueError(f"F indexes vertices {F.min()}..{F.max()} but V has {V.shape[0]} rows (0-based expected)")
    if V.shape[1] == 2:
        V = np.concatenate([V, np.zeros((V.shape[0], 1))], axis=1)
    return V, F.astype(np.int64, copy=False)


def _cross_norm_and_dot(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise ‖a × b‖ and a·b for arrays of shape (M, 3)."""
    return np.linalg.norm(np.cross(a, b), axis=1), np.einsum("ij,ij->i", a, b)


def corner_angles_np(V: np.ndarray, F: np.ndarray) -> np.ndarray:
    """Interior angles of every triangle, shape (F, 3), radians; column c is the angle at corner ``F[:, c]``.

    The numpy view of :func:`mmstn.layers.visibility.corner_angles` (atan2(‖a × b‖, a·b), accurate near 0 and π).
    """
    V, F = _check_mesh(V, F)
    return _corner_angles(torch.from_numpy(V)[None], torch.from_numpy(F.astype(np.int64)))[0].numpy()


def _assemble(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n: int) -> sp.csr_matrix:
    """Sum duplicate (row, col) entries into an (n, n) CSR matrix."""
    W = sp.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()
    W.sum_duplicates()
    return W


def cotangent_weights(V: np.ndarray, F: np.ndarray, *, clamp_negative: bool = False) -> sp.csr_matrix:
    """Symmetric cotangent weights w_ij = ½(cot α_ij + cot β_ij), shape (N, N), zero diagonal.

    Args:
        V: vertices (N, 3) (any length unit; the weights are scale-free).
        F: 0-based triangles (F, 3).
        clamp_negative: set negative weights (edges whose opposite angles sum to more than π) to zero.
            This is a common repair for cotangent fold-overs; it is *not* a guarantee of a bijective map
            (use :func:`mean_value_weights` for that), but it removes the only source of non-convex
            combinations.

    Returns:
        ``scipy.sparse.csr_matrix`` (N, N), float64. Degenerate triangles (zero area) contribute nothing.
    """
    V, F = _check_mesh(V, F)
    n = V.shape[0]
    rows, cols, vals = [], [], []
    for c in range(3):
        i, j, k = F[:, c], F[:, (c + 1) % 3], F[:, (c + 2) % 3]
        a = V[i] - V[k]
        b = V[j] - V[k]
        cr, dt = _cross_norm_and_dot(a, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            cot = np.where(cr > 0, dt / np.where(cr > 0, cr, 1.0), 0.0)  # angle at k, opposite edge ij
        half = 0.5 * cot
        rows += [i, j]
        cols += [j, i]
        vals += [half, half]
    W = _assemble(np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), n)
    if clamp_negative:
        W.data = np.maximum(W.data, 0.0)
        W.eliminate_zeros()
    return W


def mean_value_weights(V: np.ndarray, F: np.ndarray) -> sp.csr_matrix:
    """Floater's mean-value weights, shape (N, N), positive, **asymmetric** (row i = weights of vertex i).

    For each triangle (i, j, k) with angle θ_i at i, the directed edges i→j and i→k each receive
    tan(θ_i / 2) / ‖v_i − v_{j or k}‖, so that w_ij = (tan(δ_ij/2) + tan(γ_ij/2)) / ‖v_i − v_j‖ after summing
    the two triangles on the edge. tan(θ/2) is evaluated as ‖a × b‖ / (‖a‖‖b‖ + a·b).

    Args:
        V: vertices (N, 3); lengths in any unit (the weights scale as 1/length, which does not change the map).
        F: 0-based triangles (F, 3).

    Returns:
        ``scipy.sparse.csr_matrix`` (N, N), float64.
    """
    V, F = _check_mesh(V, F)
    n = V.shape[0]
    rows, cols, vals = [], [], []
    for c in range(3):
        i, j, k = F[:, c], F[:, (c + 1) % 3], F[:, (c + 2) % 3]
        a = V[j] - V[i]
        b = V[k] - V[i]
        la = np.linalg.norm(a, axis=1)
        lb = np.linalg.norm(b, axis=1)
        cr, dt = _cross_norm_and_dot(a, b)
        den = la * lb + dt
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(den > 0, cr / np.where(den > 0, den, 1.0), 0.0)  # tan(θ_i / 2)
            wa = np.where(la > 0, t / np.where(la > 0, la, 1.0), 0.0)
            wb = np.where(lb > 0, t / np.where(lb > 0, lb, 1.0), 0.0)
        rows += [i, i]
        cols += [j, k]
        vals += [wa, wb]
    return _assemble(np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), n)


def uniform_weights(F: np.ndarray, n_vertices: int) -> sp.csr_matrix:
    """Tutte's uniform weights: w_ij = 1 for every mesh edge ij, shape (N, N), symmetric, zero diagonal."""
    F = np.asarray(F, dtype=np.int64)
    i = np.concatenate([F[:, 0], F[:, 1], F[:, 2]])
    j = np.concatenate([F[:, 1], F[:, 2], F[:, 0]])
    W = _assemble(np.concatenate([i, j]), np.concatenate([j, i]), np.ones(2 * i.size), n_vertices)
    W.data[:] = 1.0  # interior edges were counted twice (once per triangle and direction)
    return W


def weight_matrix(V: np.ndarray, F: np.ndarray, weights: Weighting = "cotan") -> sp.csr_matrix:
    """Dispatch on ``weights`` ∈ {"cotan", "cotan_clamped", "mean_value", "uniform"}; shape (N, N)."""
    if weights == "cotan":
        return cotangent_weights(V, F)
    if weights == "cotan_clamped":
        return cotangent_weights(V, F, clamp_negative=True)
    if weights == "mean_value":
        return mean_value_weights(V, F)
    if weights == "uniform":
        return uniform_weights(F, np.asarray(V).shape[0])
    raise ValueError(f"weights={weights!r}: choose one of {WEIGHTINGS}")


def laplacian_from_weights(W: sp.spmatrix) -> sp.csr_matrix:
    """The graph Laplacian L = diag(W·1) − W, shape (N, N): rows sum to zero, positive semi-definite if W ≥ 0."""
    W = sp.csr_matrix(W)
    return (sp.diags(np.asarray(W.sum(axis=1)).ravel()) - W).tocsr()


def cotangent_laplacian(V: np.ndarray, F: np.ndarray) -> sp.csr_matrix:
    """L = diag(W·1) − W for cotangent weights: equals ``-igl.cotmatrix(V, F)``; shape (N, N)."""
    return laplacian_from_weights(cotangent_weights(V, F))
