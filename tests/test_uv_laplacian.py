"""Edge weights: cotangent (against libigl), mean value (Floater) and uniform, on hand-made and generated meshes."""

from __future__ import annotations

import numpy as np
import pytest

from mmstn.uv.laplacian import (
    corner_angles_np,
    cotangent_laplacian,
    cotangent_weights,
    laplacian_from_weights,
    mean_value_weights,
    uniform_weights,
    weight_matrix,
)
from mmstn.uv.synthetic import symmetric_disk_mesh


@pytest.fixture(scope="module")
def dome():
    V, F, _ = symmetric_disk_mesh(800, seed=3)
    return V, F


def _hexagon_fan() -> tuple[np.ndarray, np.ndarray]:
    """A regular unit hexagon around the origin: 7 vertices, 6 equilateral triangles."""
    ang = np.arange(6) * np.pi / 3
    V = np.concatenate([[[0.0, 0.0, 0.0]], np.stack([np.cos(ang), np.sin(ang), np.zeros(6)], axis=1)])
    F = np.array([[0, 1 + k, 1 + (k + 1) % 6] for k in range(6)], dtype=np.int64)
    return V, F


def test_cotangent_laplacian_is_minus_igl_cotmatrix(dome):
    igl = pytest.importorskip("igl", reason="libigl (the 'geometry' extra) is not installed")
    V, F = dome
    L = cotangent_laplacian(V, F)
    ref = igl.cotmatrix(V, F.astype(np.int64))
    assert abs(L + ref).max() < 1e-12
    assert abs(L - L.T).max() < 1e-14
    assert np.allclose(np.asarray(L.sum(axis=1)).ravel(), 0.0, atol=1e-12)


def test_cotangent_weights_of_equilateral_fan():
    V, F = _hexagon_fan()
    W = cotangent_weights(V, F).toarray()
    # spoke: two 60° opposite angles -> ½(2 cot 60°) = 1/√3; rim edge: one 60° angle -> ½ cot 60°
    assert np.allclose(W[0, 1:], 1 / np.sqrt(3), atol=1e-14)
    assert np.isclose(W[1, 2], 0.5 / np.sqrt(3), atol=1e-14)
    assert np.all(np.diag(W) == 0)


def test_cotangent_negative_on_obtuse_pair_and_clamp():
    # two triangles sharing edge 0-1 whose opposite angles are both 120°: w = ½(2 cot 120°) < 0
    h = np.tan(np.radians(30)) * 0.5
    V = np.array([[0.0, 0, 0], [1.0, 0, 0], [0.5, h, 0], [0.5, -h, 0]])
    F = np.array([[0, 1, 2], [1, 0, 3]])
    W = cotangent_weights(V, F)
    assert np.isclose(W[0, 1], -1 / np.sqrt(3), atol=1e-14)
    Wc = cotangent_weights(V, F, clamp_negative=True)
    assert Wc[0, 1] == 0 and (Wc.data >= 0).all()


def test_mean_value_weights_hand_computed_and_asymmetric():
    V, F = _hexagon_fan()
    W = mean_value_weights(V, F).toarray()
    # every angle is 60°: w_0j = (tan 30° + tan 30°) / 1
    assert np.allclose(W[0, 1:], 2 * np.tan(np.radians(30)), atol=1e-14)
    # rim vertex 1: the spoke 1-0 lies in two triangles (60° at vertex 1 in each), the rim edge 1-2 in one
    assert np.isclose(W[1, 0], 2 * np.tan(np.radians(30)), atol=1e-14)
    assert np.isclose(W[1, 2], np.tan(np.radians(30)), atol=1e-14)
    V2 = V.copy()
    V2[0, :2] = [0.3, -0.1]  # off-centre: no longer symmetric
    W2 = mean_value_weights(V2, F)
    assert abs(W2 - W2.T).max() > 1e-3
    assert (W2.data > 0).all()


@pytest.mark.parametrize("kind", ["cotan", "mean_value"])
def test_linear_precision_on_a_planar_mesh(kind):
    """Both weightings reproduce linear functions: Σ_j w_ij (p_j − p_i) = 0 at interior vertices of a flat mesh."""
    V, F, _ = symmetric_disk_mesh(600, seed=1)
    V = V.copy()
    V[:, 2] = 0.0
    L = laplacian_from_weights(weight_matrix(V, F, kind))
    interior = np.ones(len(V), dtype=bool)
    e = np.sort(np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]]), axis=1)
    uniq, cnt = np.unique(e, axis=0, return_counts=True)
    interior[uniq[cnt == 1].ravel()] = False
    r = L @ V[:, :2]
    assert np.abs(r[interior]).max() < 1e-9 * np.abs(V).max()


def test_uniform_weights_are_the_adjacency(dome):
    V, F = dome
    W = uniform_weights(F, len(V))
    assert set(np.unique(W.data)) == {1.0}
    e = np.sort(np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]]), axis=1)
    assert W.nnz == 2 * len(np.unique(e, axis=0))
    igl = pytest.importorskip("igl", reason="libigl (the 'geometry' extra) is not installed")
    assert abs(W - igl.adjacency_matrix(F.astype(np.int64))).max() == 0


def test_corner_angles_sum_to_pi(dome):
    V, F = dome
    assert np.allclose(corner_angles_np(V, F).sum(axis=1), np.pi, atol=1e-12)


def test_unknown_weighting_is_named():
    V, F = _hexagon_fan()
    with pytest.raises(ValueError, match="mean_value"):
        weight_matrix(V, F, "conformal")  # type: ignore[arg-type]
