"""Tests of mmstn.models.meshtools on small synthetic meshes."""

from __future__ import annotations

import numpy as np
import pytest

from mmstn.models import meshtools as mt


def grid_mesh(n: int = 8, hole: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A symmetric (2n+1)x(2n+1) grid on [-1, 1]^2 (z = bump), optionally with a square hole in the middle."""
    xs = np.linspace(-1, 1, 2 * n + 1)
    X, Y = np.meshgrid(xs, xs)
    V = np.stack([X.ravel(), Y.ravel(), 1 - 0.3 * (X.ravel() ** 2 + Y.ravel() ** 2)], 1)
    m = 2 * n + 1
    F = []
    for i in range(m - 1):
        for j in range(m - 1):
            if hole and abs(i - n + 0.5) < 1 and abs(j - n + 0.5) < 2:
                continue
            a, b, c, d = i * m + j, i * m + j + 1, (i + 1) * m + j + 1, (i + 1) * m + j
            F += [[a, b, c], [a, c, d]]
    return V, np.array(F)


def test_boundary_loops_and_close_holes() -> None:
    V, F = grid_mesh()
    loops = mt.boundary_loops(F)
    assert len(loops) == 2 and len(loops[0]) == 4 * 16
    V2, F2 = mt.close_holes(V, F)
    assert len(mt.boundary_loops(F2)) == 1 and len(V2) == len(V) + 1
    und = np.sort(np.concatenate([F2[:, [0, 1]], F2[:, [1, 2]], F2[:, [2, 0]]]), 1)
    _, counts = np.unique(und, axis=0, return_counts=True)
    assert counts.max() == 2
    # orientation kept: every interior directed edge appears once each way
    E = np.concatenate([F2[:, [0, 1]], F2[:, [1, 2]], F2[:, [2, 0]]])
    assert len(np.unique(E, axis=0)) == len(E)


def test_crop_reindexes_and_keeps_largest() -> None:
    V, F = grid_mesh(hole=False)
    Va = np.concatenate([V, V + np.array([5.0, 0, 0])])
    Fa = np.concatenate([F, F[:10] + len(V)])
    V2, F2, idx = mt.crop(Va, Fa, np.ones(len(Va), bool))
    assert len(V2) == len(V) and F2.max() < len(V2)
    np.testing.assert_array_equal(V2, Va[idx])


def test_mirror_map_and_errors() -> None:
    V, F = grid_mesh()
    m = mt.mirror_map(V, F)
    np.testing.assert_allclose(V[m] * [-1, 1, 1], V, atol=1e-12)
    assert np.array_equal(m[m], np.arange(len(V)))
    with pytest.raises(mt.MeshError, match="no mirror partner"):
        mt.mirror_map(V + np.array([0.3, 0, 0]), F)


def test_symmetrise_is_exact() -> None:
    V, F = grid_mesh()
    rng = np.random.default_rng(0)
    Vn = V + rng.normal(0, 1e-3, V.shape)
    V2, _F2, mir, src = mt.symmetrise(Vn, F)
    assert np.array_equal(V2[mir] * [-1, 1, 1], V2)
    B = rng.normal(size=(3, len(Vn), 3))[:, src]
    Bs = mt.symmetrise_field(B, mir)
    assert np.array_equal(Bs[:, mir] * [-1, 1, 1], Bs)
    with pytest.raises(mt.MeshError, match="symmetry plane"):
        mt.symmetrise(V + np.array([3.0, 0, 0]), F)


def test_symmetrise_keeps_a_thin_part_along_the_plane() -> None:
    """Two columns squeezed to 0.02 of x = 0 (a septum) stay two: only self-partnered vertices are snapped."""
    V, F = grid_mesh(hole=False)
    V[np.isclose(np.abs(V[:, 0]), 0.125), 0] *= 0.16  # inside rel_tol * median edge of the plane
    assert np.sum(np.abs(V[:, 0]) <= 0.25 * mt.median_edge_length(V, F)) == 3 * 17
    V2, F2, mir, _src = mt.symmetrise(V, F)
    assert (len(V2), len(F2)) == (len(V), len(F))
    assert np.sum(mir == np.arange(len(V2))) == 17  # the x = 0 column only
    assert np.array_equal(mt.mirror_map(V2, F2), mir)
    assert len(mt.boundary_loops(F2)) == 1


def test_symmetrise_errors_name_the_problem() -> None:
    V, F = grid_mesh(hole=False)
    flat = V[:, [2, 1, 0]] * np.array([0.0, 1.0, 1.0])  # the whole sheet in the plane x = 0
    with pytest.raises(mt.MeshError, match="lie on the plane x = 0"):
        mt.symmetrise(flat, F)
    folded = V.copy()
    folded[:, 0] = -np.abs(V[:, 0])
    folded[:, 2] += 0.3 * V[:, 0]  # the right half folded onto the left side, off its surface
    with pytest.raises(mt.MeshError, match="folds over the plane"):
        mt.symmetrise(folded, F)
    slit = V.copy()
    slit[(slit[:, 0] == 0) & (slit[:, 1] > 0.4), 0] = 0.06  # a stretch of the midline row off the plane
    with pytest.raises(mt.MeshError, match="slit"):
        mt.symmetrise(slit, F)


def test_orthogonalise_basis() -> None:
    rng = np.random.default_rng(1)
    B = rng.normal(size=(5, 20, 3)) * np.arange(1, 6)[:, None, None]
    C, s = mt.orthogonalise_basis(B)
    X = C.reshape(5, -1)
    G = X @ X.T
    np.testing.assert_allclose(G - np.diag(np.diag(G)), 0, atol=1e-8)
    assert np.all(np.diff(s) <= 0)
    # same covariance as the input modes with N(0, I) weights
    np.testing.assert_allclose(X.T @ X, B.reshape(5, -1).T @ B.reshape(5, -1), atol=1e-8)


def test_check_mesh_errors() -> None:
    V, F = grid_mesh()
    bad = V.copy()
    bad[0, 0] = np.nan
    with pytest.raises(mt.MeshError, match="NaN"):
        mt.check_mesh(bad, F)
    with pytest.raises(mt.MeshError, match="degenerate"):
        mt.check_mesh(V, np.concatenate([F, [[0, 0, 1]]]))
    with pytest.raises(mt.MeshError, match="non-manifold"):
        extra = np.array([[F[0, 0], F[0, 1], len(V)], [F[0, 1], F[0, 0], len(V) + 1]])
        mt.check_mesh(np.concatenate([V, [[0, 0, 5.0], [0, 1, 5.0]]]), np.concatenate([F, extra]))


def test_close_holes_on_a_stack_of_shapes_gives_each_its_own_rim_mean() -> None:
    V, F = grid_mesh()
    stack = np.stack([V, V * 2.0 + 1.0])
    S2, F2 = mt.close_holes(stack, F)
    V2, G2 = mt.close_holes(V, F)
    assert S2.shape == (2, len(V) + 1, 3) and np.array_equal(F2, G2)
    np.testing.assert_allclose(S2[0], V2)
    np.testing.assert_allclose(S2[1, -1], 2.0 * V2[-1] + 1.0)


def test_close_model_holes_keeps_the_model_linear_and_its_mirror_map() -> None:
    import torch

    from mmstn.models import MorphableModel

    V, F = grid_mesh()
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(3, len(V), 3))
    mirror = mt.mirror_map(V * 40, F)  # x → −x of the symmetric grid (in mm)
    model = MorphableModel.from_arrays(V * 40, F, basis=basis, mirror=mirror, colour=np.full((len(V), 3), 0.5))
    closed = mt.close_model_holes(model)
    assert closed.n_vertices == model.n_vertices + 1 and len(mt.boundary_loops(closed.triangles.numpy())) == 1
    alpha = torch.tensor([[0.3, -1.2, 0.7]], dtype=closed.dtype)
    rim = mt.boundary_loops(F)[1]
    np.testing.assert_allclose(
        closed.shape(alpha)[0, -1].numpy(), model.shape(alpha)[0, rim].mean(0).numpy(), atol=1e-4
    )
    assert int(closed.mirror[-1]) == model.n_vertices  # the central hole is its own mirror image
    assert mt.close_model_holes(closed) is closed  # nothing left to close
