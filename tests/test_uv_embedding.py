"""The symmetric Tutte embedding on our own symmetric disk, the ICT face (the default), the cartoon face and the
Surrey model."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mmstn.models.builtin import builtin_model
from mmstn.models.ict import ict_face_model
from mmstn.runtime import shared_data_dir
from mmstn.uv.embedding import FoldOverWarning, boundary_loops, symmetric_tutte
from mmstn.uv.quality import flipped_triangles, square_boundary_counts, uv_quality
from mmstn.uv.symmetry import mirror_from_positions, mirror_from_uv, mirror_topology_mismatch
from mmstn.uv.synthetic import symmetric_disk_mesh, symmetric_disk_model


def _arrays(model):
    return model.mean.double().numpy(), model.triangles.numpy(), model.mirror.numpy()


def _boundary_triangles(F):
    """Triangles whose three vertices all lie on the outer boundary: the map puts them on one side of the square,
    with zero UV area (the ICT face has 10, at its rim; the disk none)."""
    return np.isin(F, max(boundary_loops(F), key=len)).all(axis=1)


@pytest.fixture(scope="module", params=["disk", "ict"])
def mesh(request):
    """(V, F, mirror) of our symmetric disk, then of the ICT face (7,482 vertices)."""
    if request.param == "disk":
        return symmetric_disk_mesh(2500, seed=0)
    return _arrays(ict_face_model())


@pytest.fixture(scope="module")
def embeddings(mesh):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FoldOverWarning)
        return {w: symmetric_tutte(mesh, weights=w) for w in ("cotan", "mean_value", "uniform")}


@pytest.mark.parametrize("weights", ["cotan", "mean_value", "uniform"])
def test_uv_is_exactly_mirror_symmetric(mesh, embeddings, weights):
    V, _F, mirror = mesh
    uv = embeddings[weights].uv
    assert np.abs(uv[mirror, 0] - (1.0 - uv[:, 0])).max() <= 1e-12
    assert np.array_equal(uv[mirror, 1], uv[:, 1])
    mid = mirror == np.arange(len(V))
    assert np.all(uv[mid, 0] == 0.5)
    assert embeddings[weights].quality.symmetry_error <= 1e-12


@pytest.mark.parametrize("weights", ["cotan", "mean_value", "uniform"])
def test_boundary_on_the_square_and_inside(mesh, embeddings, weights):
    V, F, mirror = mesh
    e = embeddings[weights]
    uv = e.uv
    assert np.all((uv >= 0.0) & (uv <= 1.0))
    outer = max(boundary_loops(F), key=len)
    on_side = (uv[outer, 0] == 0) | (uv[outer, 0] == 1) | (uv[outer, 1] == 0) | (uv[outer, 1] == 1)
    assert on_side.all(), "every vertex of the outer boundary lies exactly on a side of the square"
    c = e.corners
    assert tuple(uv[c["bottom_mid"]]) == (0.5, 0.0) and tuple(uv[c["top_mid"]]) == (0.5, 1.0)
    assert tuple(uv[c["top_outer"]]) == (0.0, 1.0) and tuple(uv[c["bottom_outer"]]) == (0.0, 0.0)
    assert tuple(uv[mirror[c["top_outer"]]]) == (1.0, 1.0) and tuple(uv[mirror[c["bottom_outer"]]]) == (1.0, 0.0)
    # exactly one vertex at each corner of the square
    for corner in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        assert np.sum(np.all(uv == np.asarray(corner, dtype=float), axis=1)) == 1
    # interior vertices are strictly inside
    interior = np.setdiff1d(np.arange(len(V)), np.concatenate([outer, e.midline, e.slit_vertices]))
    assert np.all((uv[interior] > 0) & (uv[interior] < 1))


@pytest.mark.parametrize("weights", ["mean_value", "uniform"])
def test_no_fold_overs_with_positive_weights(mesh, embeddings, weights):
    _V, F, _ = mesh
    e = embeddings[weights]
    assert e.quality.n_flipped == 0
    assert e.quality.n_degenerate == _boundary_triangles(F).sum()  # none of the interior ones
    assert e.n_negative_weights == 0


def test_orientation_u_with_x_v_with_y_and_ccw(mesh, embeddings):
    V, F, _ = mesh
    uv = embeddings["mean_value"].uv
    assert np.corrcoef(uv[:, 0], V[:, 0])[0, 1] > 0.9
    assert np.corrcoef(uv[:, 1], V[:, 1])[0, 1] > 0.9
    # counter-clockwise from the front stays counter-clockwise in UV (positive signed areas), but for the
    # triangles with all three vertices on the boundary, which lie flat on a side of the square
    a = uv[F[:, 1]] - uv[F[:, 0]]
    b = uv[F[:, 2]] - uv[F[:, 0]]
    area = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    rim = _boundary_triangles(F)
    assert np.all(area[~rim] > 0) and np.all(np.abs(area[rim]) < 1e-15)


def test_cotan_interior_solve_matches_igl_harmonic(mesh, embeddings):
    igl = pytest.importorskip("igl", reason="libigl (the 'geometry' extra) is not installed")
    V, _, _ = mesh
    e = embeddings["cotan"]
    hv = e.half_vertices
    local = np.full(len(V), -1, dtype=np.int64)
    local[hv] = np.arange(hv.size)
    Fl = local[e.half_triangles].astype(np.int64)
    b = local[e.boundary].astype(np.int64)
    ref = igl.harmonic(V[hv], Fl, b, e.uv[e.boundary], 1)
    assert np.abs(ref - e.uv[hv]).max() < 1e-9


def test_midline_side_chord_length_spacing(mesh, embeddings):
    V, _, _ = mesh
    e = embeddings["uniform"]
    if e.slit_vertices.size:
        pytest.skip("the mesh has a hole across the midline; its u = 0.5 side includes rim vertices")
    side = e.midline
    s = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(V[side], axis=0), axis=1))])
    assert np.allclose(e.uv[side, 1], s / s[-1], atol=1e-15)
    assert np.all(np.diff(e.uv[side, 1]) > 0)


def test_cotan_weights_fold_the_real_face_but_not_the_cartoon():
    """Why the default grid model flattens with mean-value weights: on the ICT face the cotangent weights of long thin
    triangles at very obtuse angles (the mouth corners) fold part of the map over; on the cartoon face (regular
    triangles) they go negative too, yet fold nothing. Mean-value weights are positive and fold neither."""
    with pytest.warns(FoldOverWarning, match="Negative cotangent weights"):
        real = symmetric_tutte(ict_face_model(), weights="cotan")
    assert real.n_negative_weights > 0 and real.quality.n_flipped > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", FoldOverWarning)
        cartoon = symmetric_tutte(builtin_model(seed=0), weights="cotan")  # the cartoon: the one without folds
        fine = symmetric_tutte(ict_face_model(), weights="mean_value")
    assert cartoon.n_negative_weights > 0 and cartoon.quality.n_flipped == 0
    assert fine.n_negative_weights == 0 and fine.quality.n_flipped == 0


def test_corner_choices_are_deterministic_and_respected():
    V, F, mirror = symmetric_disk_mesh(1500, seed=2)
    a = symmetric_tutte((V, F, mirror), weights="mean_value")
    b = symmetric_tutte((V, F, mirror), weights="mean_value")
    assert a.corners == b.corners and np.array_equal(a.uv, b.uv)
    # "extreme" on a round disk: the corners sit near 135° and 225° of the left semicircle
    for key, deg in [("top_outer", 135), ("bottom_outer", 225)]:
        p = V[a.corners[key], :2]
        assert abs(np.degrees(np.arctan2(p[1], p[0])) % 360 - deg) < 6
    c = symmetric_tutte((V, F, mirror), weights="mean_value", corners="arclength")
    assert c.quality.n_flipped == 0
    # explicit corners, given as right-side vertices: their left partners are used
    top, bot = mirror[a.corners["top_outer"]], mirror[a.corners["bottom_outer"]]
    d = symmetric_tutte((V, F, mirror), weights="mean_value", corners=(int(top), int(bot)))
    assert np.array_equal(d.uv, a.uv)
    with pytest.raises(ValueError, match="corner"):
        symmetric_tutte((V, F, mirror), corners=(int(a.corners["bottom_outer"]), int(a.corners["top_outer"])))


def test_fold_over_warning_and_repairs():
    """A squashed dome (y × 0.03) gives obtuse triangles whose negative cotangent weights fold the map."""
    V, F, mirror = symmetric_disk_mesh(300, seed=0, jitter=0.45)
    V = V * np.array([1.0, 0.03, 1.0])
    with pytest.warns(FoldOverWarning, match=r"\d+ of \d+ triangles are folded over"):
        bad = symmetric_tutte((V, F, mirror), weights="cotan", corners="arclength")
    assert bad.quality.n_flipped > 0 and bad.n_negative_weights > 0
    flipped, _ = flipped_triangles(bad.uv, F)
    assert flipped.sum() == bad.quality.n_flipped
    for repair, used in [("mean_value", "mean_value"), ("clamp", "cotan_clamped")]:
        with warnings.catch_warnings():
            warnings.simplefilter("error", FoldOverWarning)
            fixed = symmetric_tutte((V, F, mirror), weights="cotan", corners="arclength", repair=repair)
        assert fixed.quality.n_flipped == 0
        assert fixed.repaired_with == repair and fixed.weights == used and fixed.requested_weights == "cotan"
    quiet = symmetric_tutte((V, F, mirror), weights="cotan", corners="arclength", warn=False)
    assert quiet.quality.n_flipped == bad.quality.n_flipped


def test_synthetic_disk_layout_counts():
    V, F, mirror = symmetric_disk_mesh(2500, seed=0)
    e = symmetric_tutte((V, F, mirror), weights="mean_value")
    counts = square_boundary_counts(e.uv)
    n_mid = int(np.sum(mirror == np.arange(len(V))))
    assert counts["midline"] == n_mid
    assert counts["left"] == counts["right"] == (len(V) - n_mid) // 2
    assert counts["u=0"] == counts["u=1"] and counts["v=0"] == counts["v=1"]  # the disk is up/down symmetric too
    assert e.half_vertices.size == counts["left"] + n_mid


def test_rejects_meshes_that_are_not_cut_into_two_disks():
    V, F, mirror = symmetric_disk_mesh(800, seed=0)
    with pytest.raises(ValueError, match="involution"):
        symmetric_tutte((V, F, np.roll(mirror, 1)))
    # a hole inside the left half: remove one interior left vertex's triangles (and their mirrors)
    left_interior = np.flatnonzero((V[:, 0] < -20) & (np.linalg.norm(V[:, :2], axis=1) < 40))
    k = left_interior[0]
    drop = np.any(F == k, axis=1) | np.any(F == mirror[k], axis=1)
    keep_v = np.setdiff1d(np.arange(len(V)), [k, mirror[k]])
    remap = np.full(len(V), -1)
    remap[keep_v] = np.arange(keep_v.size)
    F2 = remap[F[~drop]]
    m2 = remap[mirror[keep_v]]
    with pytest.raises(ValueError, match="boundary loops"):
        symmetric_tutte((V[keep_v], F2, m2))
    # no fixed points: nothing to cut along
    with pytest.raises(ValueError, match="fixed points"):
        symmetric_tutte((V[:4], np.array([[0, 1, 2], [1, 3, 2]]), np.array([1, 0, 3, 2])))


def test_model_without_mirror_is_refused_with_a_hint():
    m = symmetric_disk_model(400).with_fields(mirror=None)
    with pytest.raises(ValueError, match="mirror_from_positions"):
        symmetric_tutte(m)


def test_mirror_helpers_recover_the_map():
    V, F, mirror = symmetric_disk_mesh(800, seed=4)
    assert np.array_equal(mirror_from_positions(V, tol=1e-9), mirror)
    e = symmetric_tutte((V, F, mirror), weights="mean_value")
    assert np.array_equal(mirror_from_uv(e.uv), mirror)
    assert mirror_topology_mismatch(F, mirror) == 0 and e.topology_mismatch == 0
    with pytest.raises(ValueError, match="not exactly mirror-symmetric"):
        mirror_from_positions(V + np.random.default_rng(0).normal(0, 1, V.shape), tol=1e-6)


def test_quality_report_numbers(mesh, embeddings):
    V, F, mirror = mesh
    q = uv_quality(V, F, embeddings["mean_value"].uv, mirror)
    assert q.n_triangles == len(F) and q.in_unit_square
    assert 0 < q.angle_error_mean_deg < 30 and q.angle_error_max_deg < 180
    assert 0 < q.log_area_ratio_std < 2
    assert "flipped" in q.summary()
    # a conformal map of a flat square onto itself has no angle or area distortion
    g = np.linspace(0, 1, 6)
    P = np.stack(np.meshgrid(g, g, indexing="xy"), axis=-1).reshape(-1, 2)
    T = np.array([[r * 6 + c, r * 6 + c + 1, (r + 1) * 6 + c] for r in range(5) for c in range(5)])
    q0 = uv_quality(np.c_[P, np.zeros(len(P))], T, P)
    assert q0.angle_error_max_deg < 1e-12 and q0.log_area_ratio_maxabs < 1e-12 and q0.n_flipped == 0


@pytest.mark.shared_data
def test_surrey_model_pipeline():
    path = shared_data_dir() / "sfm_3448" / "sfm_shape_3448.bin"
    if not path.is_file():
        pytest.skip(f"{path} is absent (shared reference data not available on this machine)")
    from mmstn.models.surrey import load_surrey
    from mmstn.uv.resample import resample_to_grid

    model = load_surrey(path)
    if model.mirror is None:
        pytest.skip("the Surrey model came without a mirror map; the symmetric embedding needs one")
    _V, F, mirror = _arrays(model)
    assert mirror_topology_mismatch(F, mirror) == 0
    flips = {}
    for w in ("cotan", "mean_value", "uniform"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FoldOverWarning)
            e = symmetric_tutte(model, weights=w)
        flips[w] = e.quality.n_flipped
        assert e.quality.symmetry_error <= 1e-12 and e.quality.in_unit_square
        # the SFM's open mouth crosses the midline: its rim closes into a slit on u = 0.5
        assert e.slit_vertices.size > 0 and np.all(e.uv[e.slit_vertices, 0] == 0.5)
    print(f"Surrey sfm_3448 fold-overs per weighting: {flips}")
    assert flips["mean_value"] == 0 and flips["uniform"] == 0
    grid = resample_to_grid(model, symmetric_tutte(model, weights="mean_value").uv, 64)
    X = grid.mean.double().numpy()
    T = grid.triangles.numpy()
    nz = np.cross(X[T[:, 1]] - X[T[:, 0]], X[T[:, 2]] - X[T[:, 0]])[:, 2]
    assert np.mean(nz > 0) > 0.95


def _disk_with_midline_hole():
    """The symmetric disk with the two triangles on one interior midline edge removed: a hole across u = 0.5."""
    V, F, mirror = symmetric_disk_mesh(300, seed=0)
    mid = mirror == np.arange(len(mirror))
    outer = np.concatenate(boundary_loops(F))
    inner_mid = mid & ~np.isin(np.arange(len(V)), outer)
    both = inner_mid[F].sum(axis=1) == 2
    # an edge between two interior midline vertices: keep only its two triangles' removal
    e = np.sort(F[both][:, :3][inner_mid[F[both]]].reshape(-1, 2), axis=1)
    keys, counts = np.unique(e[:, 0] * len(V) + e[:, 1], return_counts=True)
    key = keys[np.argmax(counts)]
    a, b = divmod(int(key), len(V))
    drop = np.isin(F, [a, b]).sum(axis=1) == 2
    return V, F[~drop], mirror


def test_hole_across_midline_warns_slit_and_loops():
    from mmstn.uv.embedding import HoleWarning

    V, F, mirror = _disk_with_midline_hole()
    assert len(boundary_loops(F)) == 2
    with pytest.warns(HoleWarning) as record:
        e = symmetric_tutte((V, F, mirror), weights="mean_value")
    text = " ".join(str(w.message) for w in record)
    assert "2 boundary loops" in text and "zero-width slit" in text
    assert "mmstn.models.meshtools.close_holes" in text
    assert e.slit_vertices.size > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", HoleWarning)
        symmetric_tutte((V, F, mirror), weights="mean_value", warn=False)


def test_hole_inside_one_half_error_names_the_tool():
    V, F, mirror = symmetric_disk_mesh(300, seed=0)
    outer = boundary_loops(F)[0]
    inner_left = (V[:, 0] < V[:, 0].mean() - 0.2) & ~np.isin(np.arange(len(V)), outer)
    t = int(np.flatnonzero(inner_left[F].all(axis=1))[0])  # one triangle well inside the left half
    mirrored = np.sort(mirror[F[t]])
    drop = (np.arange(len(F)) == t) | (np.sort(F, axis=1) == mirrored).all(axis=1)
    with pytest.raises(ValueError, match="close_holes"):
        symmetric_tutte((V, F[~drop], mirror), weights="mean_value")


def test_fold_over_message_matches_the_weighting(monkeypatch):
    """Only cotangent weights go negative; a uniform-weights fold-over must not blame them."""
    import dataclasses

    import mmstn.uv.embedding as emb

    real = emb.uv_quality
    monkeypatch.setattr(emb, "uv_quality", lambda *a, **k: dataclasses.replace(real(*a, **k), n_flipped=3))
    mesh = symmetric_disk_mesh(200, seed=0)
    with pytest.warns(FoldOverWarning) as record:
        symmetric_tutte(mesh, weights="uniform")
    text = str(record[0].message)
    assert "cotangent" not in text and "'uniform' weights are all positive" in text
    with pytest.warns(FoldOverWarning, match="Negative cotangent weights"):
        symmetric_tutte(mesh, weights="cotan")
