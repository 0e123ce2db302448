"""Resampling onto the G×G grid: layout, winding, interpolation (checked by brute force), landmarks, images."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from mmstn.models.ict import ict_face_model
from mmstn.uv.embedding import FoldOverWarning, symmetric_tutte
from mmstn.uv.images import flattened_colour, geometry_image
from mmstn.uv.resample import (
    GridResampler,
    grid_mirror,
    grid_triangles,
    grid_uv,
    landmarks_to_grid,
    resample_to_grid,
)
from mmstn.uv.synthetic import symmetric_disk_model


@pytest.fixture(scope="module", params=["disk", "ict"])
def source(request):
    """(model, uv) for our symmetric disk model and the ICT face, flattened with mean-value weights."""
    if request.param == "disk":
        model = symmetric_disk_model(3000, seed=0)
    else:
        model = ict_face_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FoldOverWarning)
        uv = symmetric_tutte(model, weights="mean_value").uv
    return model, uv


@pytest.fixture(scope="module", params=[112, 57])
def grid(request, source):
    model, uv = source
    G = request.param
    rs = GridResampler.from_uv(uv, model.triangles.numpy(), G)
    return model, uv, G, rs, rs.resample_model(model, uv)


def test_grid_layout_row_major_u_right_v_up():
    G = 5
    uv = grid_uv(G)
    assert uv.shape == (25, 2)
    k = 2 * G + 3  # row 2, col 3
    assert np.allclose(uv[k], [3 / 4, 1 - 2 / 4], atol=0)
    assert tuple(uv[0]) == (0.0, 1.0) and tuple(uv[G - 1]) == (1.0, 1.0) and tuple(uv[-1]) == (1.0, 0.0)
    img = uv.reshape(G, G, 2)
    assert np.all(np.diff(img[..., 0], axis=1) > 0) and np.all(np.diff(img[..., 1], axis=0) < 0)


@pytest.mark.parametrize("G", [2, 5, 112])
def test_grid_triangles_are_the_authors_with_two_indices_swapped_and_ccw(G):
    T = grid_triangles(G)
    assert T.shape == (2 * (G - 1) ** 2, 3)
    if G == 112:
        assert T.shape[0] == 24642
    authors = []
    for a in range(G - 1):
        for b in range(G - 1):
            authors.append([a * G + b, a * G + b + 1, (a + 1) * G + b])
            authors.append([(a + 1) * G + b + 1, (a + 1) * G + b, a * G + b + 1])
    assert np.array_equal(T, np.asarray(authors)[:, [0, 2, 1]])
    uv = grid_uv(G)
    e1 = uv[T[:, 1]] - uv[T[:, 0]]
    e2 = uv[T[:, 2]] - uv[T[:, 0]]
    assert np.all(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0] > 0), "counter-clockwise with u right, v up"


def test_grid_mirror():
    G = 6
    m = grid_mirror(G)
    assert np.array_equal(m[m], np.arange(G * G))
    r, c = np.divmod(np.arange(G * G), G)
    assert np.array_equal(m, r * G + G - 1 - c)
    assert np.allclose(grid_uv(G)[m, 0], 1 - grid_uv(G)[:, 0], atol=1e-15)


def _brute_force_interpolate(uv, F, values, points):
    """Locate each point by testing every triangle (no acceleration structure) and blend ``values``.

    Triangles of zero UV area (on the ICT face, those with three vertices on one side of the square) cover no
    point and are left out."""
    out = []
    a, b, c = uv[F[:, 0]], uv[F[:, 1]], uv[F[:, 2]]
    den = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    F, a, b, c, den = F[den != 0], a[den != 0], b[den != 0], c[den != 0], den[den != 0]
    for p in points:
        l1 = ((p[0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (p[1] - a[:, 1])) / den
        l2 = ((b[:, 0] - a[:, 0]) * (p[1] - a[:, 1]) - (p[0] - a[:, 0]) * (b[:, 1] - a[:, 1])) / den
        l0 = 1 - l1 - l2
        inside = np.flatnonzero((l0 >= -1e-12) & (l1 >= -1e-12) & (l2 >= -1e-12))
        assert inside.size, f"grid point {p} is not covered by the UV triangulation"
        t = inside[0]
        out.append(l0[t] * values[F[t, 0]] + l1[t] * values[F[t, 1]] + l2[t] * values[F[t, 2]])
    return np.asarray(out)


def test_resampled_mean_equals_brute_force_interpolation(grid):
    model, uv, G, rs, gm = grid
    rng = np.random.default_rng(0)
    cells = rng.choice(G * G, size=60, replace=False)
    cells = np.concatenate([cells, [0, G - 1, G * G - 1, G * (G // 2)]])  # corners and an edge point too
    mean = model.mean.double().numpy()
    ref = _brute_force_interpolate(uv, model.triangles.numpy(), mean, grid_uv(G)[cells])
    got = gm.mean.double().numpy()[cells]
    assert np.abs(got - ref).max() < 1e-4  # float32 storage of the model (mm)
    assert np.abs(rs.apply(mean)[cells] - ref).max() < 1e-9
    assert not rs.snapped.any(), "every grid point of an exact square UV map is located, none snapped"
    assert rs.method == "trifinder"


def test_resampled_basis_keeps_its_prior_scale(grid, request):
    """Per-component RMS displacement (mm per unit α) survives resampling.

    The grid samples the UV square uniformly, so its RMS is the source RMS weighted by UV area (checked to
    5 %). The plain per-vertex RMS differs more where the mesh density varies: it is checked on the identity
    components only, to 20 % on the evenly meshed disk and to 75 % on the ICT face, finely meshed at the eyes
    and the mouth and coarsely at the rim (measured per-vertex ratios 0.83 to 1.69 at G = 112).
    """
    model, uv, _G, _rs, gm = grid
    tolerance = {"disk": 0.2, "ict": 0.75}[request.node.callspec.params["source"]]
    F = model.triangles.numpy()
    sq = model.basis.double().pow(2).sum(-1).numpy()  # (D, N)
    rms_grid = np.sqrt(gm.basis.double().pow(2).sum(-1).mean(-1).numpy())
    a = uv[F[:, 1]] - uv[F[:, 0]]
    b = uv[F[:, 2]] - uv[F[:, 0]]
    area = 0.5 * np.abs(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])
    w = np.zeros(model.n_vertices)
    np.add.at(w, F.ravel(), np.repeat(area / 3, 3))
    rms_uv = np.sqrt(sq @ (w / w.sum()))
    assert np.all(np.abs(rms_grid / rms_uv - 1) < 0.05), rms_grid / rms_uv
    k = model.n_identity
    ratio = rms_grid[:k] / np.sqrt(sq[:k].mean(-1))
    assert np.all(np.abs(ratio - 1) < tolerance), ratio


def test_grid_model_fields(grid):
    model, _uv, G, rs, gm = grid
    assert gm.n_vertices == G * G and gm.n_components == model.n_components and gm.n_identity == model.n_identity
    assert gm.name == f"{model.name} on a {G}x{G} grid"
    assert torch.equal(gm.mirror, torch.as_tensor(grid_mirror(G)))
    assert np.allclose(gm.uv.double().numpy(), grid_uv(G), atol=1e-7)
    assert gm.dtype == model.dtype and gm.licence == model.licence
    if model.colour is not None:
        assert gm.colour.shape == (G * G, 3)
        assert np.allclose(gm.colour.double().numpy(), rs.apply(model.colour.double().numpy()), atol=1e-6)
    if model.texture_basis is not None:
        assert gm.texture_basis.shape == (model.texture_basis.shape[0], G * G, 3)


def test_frontal_normals_point_to_the_viewer(grid):
    _, _, _G, _, gm = grid
    X = gm.mean.double().numpy()
    T = gm.triangles.numpy()
    nz = np.cross(X[T[:, 1]] - X[T[:, 0]], X[T[:, 2]] - X[T[:, 0]])[:, 2]
    assert np.mean(nz > 0) > 0.9  # the ICT face's sides turn away from the viewer: 0.916 at G = 112, 0.918 at 57


def test_resampled_mean_is_mirror_symmetric(grid):
    model, _uv, G, rs, _gm = grid
    V = model.mean.double().numpy()
    mirror = model.mirror.numpy()
    src_asym = np.abs(V[mirror] * [-1, 1, 1] - V).max()  # the source's own asymmetry (0 for the disk)
    X = rs.apply(V)
    m = grid_mirror(G)
    assert np.abs(X[m] * [-1, 1, 1] - X).max() <= src_asym + 1e-9


def test_landmarks_nearest_grid_vertex_and_mirror_consistent(grid):
    model, uv, G, _rs, gm = grid
    if "aflw21" not in model.landmarks:
        pytest.skip("model has no aflw21 landmarks")
    src = model.landmarks["aflw21"].numpy()
    got = gm.landmarks["aflw21"].numpy()
    row, col = np.divmod(got, G)
    near_col = np.rint(uv[src, 0] * (G - 1))
    near_row = np.rint((1 - uv[src, 1]) * (G - 1))
    assert np.all(np.abs(col - near_col) <= 1) and np.all(np.abs(row - near_row) <= 1)
    from mmstn.models.landmarks import AFLW21_FLIP

    assert np.array_equal(row[AFLW21_FLIP], row)
    pairs = AFLW21_FLIP != np.arange(21)
    assert np.array_equal(col[AFLW21_FLIP][pairs], (G - 1 - col)[pairs])
    assert np.all(col[~pairs] == (G - 1) // 2)


def test_landmarks_to_grid_rules():
    G = 112
    uv = np.array([[0.2214, 0.8], [1 - 0.2214, 0.8], [0.5, 0.64], [0.3, 0.3], [0.0, 0.0]])
    # five landmarks: no known flip permutation, so plain nearest grid vertex
    got = landmarks_to_grid(np.array([0, 1, 2, 3, -1]), uv, G)
    assert got[-1] == -1
    assert got[3] == round((1 - 0.3) * 111) * G + round(0.3 * 111)
    assert got[0] // G == round(0.2 * 111) and got[0] % G == round(0.2214 * 111)
    # a midline landmark (its own flip): column 55 for even G (as the authors' 112 file), the centre for odd G
    assert landmarks_to_grid(np.array([2]), uv, G, flip=np.array([0]))[0] % G == (G - 1) // 2 == 55
    assert landmarks_to_grid(np.array([2]), uv, 113, flip=np.array([0]))[0] % 113 == 56
    # a pair: same row, columns c and G - 1 - c
    pair = landmarks_to_grid(np.array([0, 1]), uv, G, flip=np.array([1, 0]))
    assert pair[0] // G == pair[1] // G and pair[0] % G + pair[1] % G == G - 1


def test_apply_numpy_and_torch_agree_and_torch_is_differentiable(grid):
    model, _uv, G, rs, _gm = grid
    basis = model.basis.double()
    np_out = rs.apply(basis.numpy(), axis=1)
    t = basis.clone().requires_grad_(True)
    t_out = rs.apply(t, axis=1)
    assert t_out.shape == (model.n_components, G * G, 3)
    assert np.abs(t_out.detach().numpy() - np_out).max() < 1e-12
    t_out.sum().backward()
    # each grid point distributes weight 1 over its triangle's vertices
    assert abs(t.grad.sum().item() - model.n_components * G * G * 3) < 1e-6
    with pytest.raises(ValueError, match="entries on axis"):
        rs.apply(basis.numpy(), axis=0)


def test_points_outside_the_uv_map_snap_to_the_nearest_triangle():
    model = symmetric_disk_model(600, seed=1)
    uv = symmetric_tutte(model, weights="uniform").uv * 0.9 + 0.05  # the square's rim is now uncovered
    rs = GridResampler.from_uv(uv, model.triangles.numpy(), 21)
    assert rs.snapped.any() and np.all(rs.snapped.reshape(21, 21)[[0, -1]])
    assert np.isclose(rs.snap_distance.max(), np.hypot(0.05, 0.05), atol=1e-12)  # the corners
    corner = np.flatnonzero(np.all(np.isclose(uv, [0.05, 0.95]), axis=1))[0]
    V = model.mean.double().numpy()
    assert np.allclose(rs.apply(V)[0], V[corner], atol=1e-9)  # grid (row 0, col 0) = UV (0, 1)
    assert np.allclose(rs.bary.sum(axis=1), 1) and (rs.bary >= 0).all()


def test_resample_to_grid_needs_uvs():
    model = symmetric_disk_model(400)
    with pytest.raises(ValueError, match="has no uv"):
        resample_to_grid(model, None, 8)
    uv = symmetric_tutte(model, weights="mean_value").uv
    g = resample_to_grid(model.with_fields(uv=uv), None, 8)
    assert g.n_vertices == 64


def test_geometry_image_and_flattened_colour(grid):
    model, _uv, G, _rs, gm = grid
    img = geometry_image(gm)
    assert img.shape == (G, G, 3) and img.min() >= 0 and img.max() <= 1
    assert img[..., 0].min() == 0 and img[..., 0].max() == 1
    # red grows to the right (x), green grows upwards (y; the top row is the forehead)
    assert img[G // 2, -1, 0] > img[G // 2, 0, 0]
    assert img[0, G // 2, 1] > img[-1, G // 2, 1]
    if model.colour is not None:
        col = flattened_colour(gm)
        assert col.shape == (G, G, 3) and 0 <= col.min() and col.max() <= 1
    with pytest.raises(ValueError, match="not G²"):
        geometry_image(model)


def test_resampling_a_folded_map_falls_back_to_snapping():
    """With fold-overs the UV triangulation overlaps itself; every grid point is then placed by nearest triangle."""
    from mmstn.uv.synthetic import symmetric_disk_mesh

    V, F, mirror = symmetric_disk_mesh(300, seed=0, jitter=0.45)
    V = V * np.array([1.0, 0.03, 1.0])  # the squashed dome of test_uv_embedding's fold-over test
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FoldOverWarning)
        e = symmetric_tutte((V, F, mirror), weights="cotan", corners="arclength")
    assert e.quality.n_flipped > 0
    rs = GridResampler.from_uv(e.uv, F, 33)
    assert rs.method == "snap" and rs.snapped.all()
    assert rs.snap_distance.max() < 1e-12  # the square is still covered, so every point lies in some triangle
    assert np.allclose(rs.bary.sum(axis=1), 1) and (rs.bary >= 0).all()
    assert np.isfinite(rs.apply(V)).all()


def test_make_grid_model_uses_own_uvs_only_when_asked_and_warns_on_coverage(capsys):
    from mmstn.uv.grid_model import GridCoverageWarning, make_grid_model

    model = symmetric_disk_model(600, seed=1)
    uv = symmetric_tutte(model, weights="mean_value").uv * 0.8 + 0.1  # leaves a border of the square bare
    own = model.with_fields(uv=uv)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GridCoverageWarning)
        tutte = make_grid_model(own, 21, "mean_value", verbose=True)  # default: the symmetric Tutte map
    assert "symmetric_tutte" in capsys.readouterr().out
    reference = resample_to_grid(model, symmetric_tutte(model, weights="mean_value").uv, 21)
    torch.testing.assert_close(tutte.mean, reference.mean)
    with pytest.warns(GridCoverageWarning, match=r"leave \d+\.\d % of the 21x21 grid cells outside the mesh"):
        mine = make_grid_model(own, 21, flattening="model_uv")
    torch.testing.assert_close(mine.mean, resample_to_grid(own, None, 21).mean)
    with pytest.raises(ValueError, match=r"has no mirror map.*flattening='model_uv'"):
        make_grid_model(own.with_fields(mirror=None), 21)
    with pytest.raises(ValueError, match="has no uv"):
        make_grid_model(model, 21, flattening="model_uv")
