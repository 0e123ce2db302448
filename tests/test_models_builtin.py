"""The built-in synthetic face model: determinism, symmetry, topology, scale, bases, landmarks, albedo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmstn.models.builtin import BUILTIN_SEED, builtin_model, clear_builtin_cache
from mmstn.models.landmarks import AFLW21_FLIP, AFLW21_MIDLINE, AFLW21_NAMES, IBUG68_FLIP
from mmstn.models.morphable import MorphableModel

FLIP_X = torch.tensor([-1.0, 1.0, 1.0])
AFLW = {name: i for i, name in enumerate(AFLW21_NAMES)}


@pytest.fixture(scope="module")
def model() -> MorphableModel:
    return builtin_model()


def _fields(m: MorphableModel) -> dict[str, torch.Tensor]:
    out = {
        "mean": m.mean,
        "basis": m.basis,
        "triangles": m.triangles,
        "colour": m.colour,
        "texture_basis": m.texture_basis,
        "mirror": m.mirror,
    }
    out.update({f"landmarks/{k}": v for k, v in m.landmarks.items()})
    return out


def _parity(field: torch.Tensor, mirror: torch.Tensor, flip: torch.Tensor) -> str:
    """'S' if the field is exactly mirror-symmetric, 'A' if exactly antisymmetric, '?' otherwise."""
    if torch.equal(field[mirror], field * flip):
        return "S"
    if torch.equal(field[mirror], -field * flip):
        return "A"
    return "?"


def _edges(triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    return np.unique(np.sort(e, axis=1), axis=0, return_counts=True)


# ------------------------------------------------------------------------------------------ basics
def test_default_model_sizes_and_metadata(model: MorphableModel) -> None:
    assert BUILTIN_SEED == 0
    assert model.name == "builtin"
    assert 3000 <= model.n_vertices <= 6000
    assert model.n_identity == 10 and model.n_expression == 5
    assert model.mean.dtype == torch.float32 and model.basis.shape == (15, model.n_vertices, 3)
    assert model.texture_basis is not None and model.texture_basis.shape == (10, model.n_vertices, 3)
    assert model.uv is None
    assert "Apache-2.0" in model.licence
    assert "seed=0" in model.source
    assert set(model.landmarks) == {"aflw21", "ibug68"}


def test_deterministic_per_seed_and_different_across_seeds() -> None:
    clear_builtin_cache()
    a = builtin_model(seed=3)
    clear_builtin_cache()
    b = builtin_model(seed=3)
    fa, fb = _fields(a), _fields(b)
    assert fa.keys() == fb.keys()
    for key in fa:
        assert fa[key] is not fb[key]
        assert fa[key].dtype == fb[key].dtype and torch.equal(fa[key], fb[key]), key
    c = builtin_model(seed=4)
    assert c.n_vertices != a.n_vertices or not torch.equal(c.mean, a.mean)
    assert not torch.equal(c.basis[:, :10], a.basis[:, :10])


def test_returned_model_is_a_fresh_copy() -> None:
    a = builtin_model()
    before = a.mean.clone()
    a.mean.add_(100.0)
    a.basis.zero_()
    b = builtin_model()
    assert torch.equal(b.mean, before)
    assert b.basis.abs().max() > 0


def test_argument_validation() -> None:
    with pytest.raises(ValueError, match="n_identity"):
        builtin_model(n_identity=37)
    with pytest.raises(ValueError, match="subdivisions"):
        builtin_model(subdivisions=4)
    with pytest.raises(ValueError, match="seed"):
        builtin_model(seed=-1)
    m = builtin_model(n_identity=3, n_expression=0, n_texture=0)
    assert m.n_components == 3 and m.texture_basis is None


def test_fewer_components_are_a_prefix_of_more() -> None:
    small, full = builtin_model(n_identity=3, n_expression=2, n_texture=4), builtin_model()
    assert torch.equal(small.basis[:3], full.basis[:3])
    assert torch.equal(small.basis[3:], full.basis[10:12])
    assert torch.equal(small.texture_basis, full.texture_basis[:4])
    assert torch.equal(small.mean, full.mean) and torch.equal(small.colour, full.colour)


# -------------------------------------------------------------------------------------- symmetry
def test_mirror_map_and_mean_are_exactly_symmetric(model: MorphableModel) -> None:
    mirror = model.mirror
    n = model.n_vertices
    assert torch.equal(mirror[mirror], torch.arange(n))
    assert torch.equal(model.mean[mirror], model.mean * FLIP_X)
    midline = mirror == torch.arange(n)
    assert 50 <= int(midline.sum()) <= 200
    assert torch.all(model.mean[midline, 0] == 0.0)
    assert torch.all(model.mean[~midline, 0] != 0.0)
    # Mirroring maps triangles onto triangles (with reversed winding).
    tri = model.triangles
    mirrored = mirror[tri][:, [0, 2, 1]]
    key = lambda t: {tuple(sorted(r)) for r in t.tolist()}  # noqa: E731
    assert key(mirrored) == key(tri)


def test_every_component_is_exactly_symmetric_or_antisymmetric(model: MorphableModel) -> None:
    shape = "".join(_parity(b, model.mirror, FLIP_X) for b in model.basis)
    assert "?" not in shape
    identity = shape[: model.n_identity]
    assert "S" in identity and "A" in identity, identity
    assert identity[0] == "S"
    texture = "".join(_parity(t, model.mirror, torch.ones(3)) for t in model.texture_basis)
    assert "?" not in texture and texture[0] == "S"
    assert _parity(model.colour, model.mirror, torch.ones(3)) == "S"


# -------------------------------------------------------------------------------------- topology
def test_single_boundary_disk_without_degenerate_triangles(model: MorphableModel) -> None:
    tri = model.triangles.numpy()
    n = model.n_vertices
    assert len(np.unique(np.sort(tri, axis=1), axis=0)) == len(tri)
    assert np.array_equal(np.unique(tri), np.arange(n))
    edges, counts = _edges(tri)
    assert counts.max() == 2  # manifold
    assert n - len(edges) + len(tri) == 1  # Euler characteristic of a disk
    boundary = edges[counts == 1]
    deg = np.bincount(boundary.ravel(), minlength=n)
    assert set(np.unique(deg[deg > 0])) == {2}
    # Walk the boundary: one loop visits every boundary edge.
    nbrs: dict[int, list[int]] = {}
    for a, b in boundary.tolist():
        nbrs.setdefault(a, []).append(b)
        nbrs.setdefault(b, []).append(a)
    start = int(boundary[0, 0])
    prev, cur, steps = -1, start, 0
    while True:
        nxt = nbrs[cur][0] if nbrs[cur][0] != prev else nbrs[cur][1]
        prev, cur, steps = cur, nxt, steps + 1
        if cur == start:
            break
    assert steps == len(boundary)
    v = model.mean.double().numpy()
    area = 0.5 * np.linalg.norm(np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]]), axis=1)
    assert area.min() > 0.05  # mm²; the typical triangle is about 8 mm²


def test_triangles_face_the_viewer(model: MorphableModel) -> None:
    v = model.mean.double().numpy()
    tri = model.triangles.numpy()
    normal = np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]])
    area = np.linalg.norm(normal, axis=1)
    assert area[normal[:, 2] > 0].sum() / area.sum() > 0.95
    assert (normal[:, 2] > 0).mean() > 0.95


# ---------------------------------------------------------------------------- scale and landmarks
def test_bfm_like_frame_and_scale(model: MorphableModel) -> None:
    v = model.mean.double()
    lo, hi = v.min(0).values, v.max(0).values
    bfm_lo, bfm_hi = torch.tensor([-89.0, -114.0, -16.0]), torch.tensor([89.0, 97.0, 131.0])
    ratio = (hi - lo) / (bfm_hi - bfm_lo)
    assert torch.all((ratio > 0.8) & (ratio < 1.2)), ratio
    assert torch.all((lo - bfm_lo).abs() < 25.0) and torch.all((hi - bfm_hi).abs() < 25.0)
    lm = v[model.landmarks["aflw21"]]
    tip = v[v[:, 2].argmax()]
    assert torch.linalg.norm(tip - lm[AFLW["NoseCenter"]]) < 3.0
    assert 105.0 < float(tip[2]) < 131.0
    y = {name: float(lm[i, 1]) for name, i in AFLW.items()}
    assert y["LeftBrowCenter"] > y["LeftEyeCenter"] > y["NoseCenter"] > y["MouthCenter"] > y["ChinCenter"]
    assert float(lm[AFLW["LeftEar"], 0]) < -75.0 and float(lm[AFLW["RightEar"], 0]) > 75.0
    assert 50.0 < float(lm[AFLW["RightEyeCenter"], 0] - lm[AFLW["LeftEyeCenter"], 0]) < 75.0


def test_landmarks_are_mirror_consistent(model: MorphableModel) -> None:
    v = model.mean
    for key, flip, n in (("aflw21", AFLW21_FLIP, 21), ("ibug68", IBUG68_FLIP, 68)):
        lm = model.landmarks[key]
        assert lm.shape == (n,) and len(set(lm.tolist())) == n, key
        assert torch.equal(model.mirror[lm], lm[torch.from_numpy(flip)]), key
        fixed = np.flatnonzero(flip == np.arange(n))
        assert torch.all(v[lm[fixed], 0] == 0.0), key
    aflw = model.landmarks["aflw21"]
    assert sorted(np.flatnonzero(AFLW21_FLIP == np.arange(21)).tolist()) == sorted(AFLW21_MIDLINE)
    left = [i for i, name in enumerate(AFLW21_NAMES) if name.startswith("Left")]
    assert torch.all(v[aflw[left], 0] < 0.0)


def test_ibug_jawline_runs_along_the_face_outline(model: MorphableModel) -> None:
    v = model.mean.double()
    jaw = v[model.landmarks["ibug68"][:17]]
    assert torch.all(jaw[:8, 0] < 0) and torch.all(jaw[9:, 0] > 0) and float(jaw[8, 0]) == 0.0
    assert float(jaw[8, 1]) < float(v[model.landmarks["aflw21"][AFLW["ChinCenter"]], 1])  # menton below
    assert torch.all(jaw[1:9, 1] < jaw[:8, 1])  # descends to the chin
    step = torch.linalg.norm(jaw[1:, :2] - jaw[:-1, :2], dim=1)
    assert float(step.max() / step.min()) < 1.5  # evenly spaced in the image plane


# ---------------------------------------------------------------------------------------- bases
def _check_orthogonal_sorted(basis: torch.Tensor) -> torch.Tensor:
    flat = basis.reshape(basis.shape[0], -1).double()
    gram = flat @ flat.T
    std = gram.diagonal().sqrt()
    assert torch.allclose(gram / (std[:, None] * std[None, :]), torch.eye(len(std), dtype=torch.float64), atol=1e-5)
    assert torch.all(std[1:] <= std[:-1])
    return std


def test_bases_are_orthogonal_scaled_and_sorted(model: MorphableModel) -> None:
    n = model.n_vertices
    rms_id = _check_orthogonal_sorted(model.basis[: model.n_identity]) / np.sqrt(n)
    rms_exp = _check_orthogonal_sorted(model.basis[model.n_identity :]) / np.sqrt(n)
    _check_orthogonal_sorted(model.texture_basis)
    assert 2.0 <= float(rms_id[0]) <= 8.0  # BFM 2009: 4.2 mm RMS per unit α1
    assert 0.5 <= float(rms_id[4]) <= 2.5  # BFM: 1.3
    assert torch.all((rms_exp > 0.3) & (rms_exp < 2.0))  # BFM + 3DDFA: 0.65–1.16


def test_an_expression_component_opens_the_mouth(model: MorphableModel) -> None:
    ib = model.landmarks["ibug68"]
    upper, lower = ib[62], ib[66]  # inner lip midpoints (iBUG 63 and 67)
    exp = model.basis[model.n_identity :]
    gap_change = exp[:, lower, 1] - exp[:, upper, 1]
    assert float(gap_change.abs().max()) > 1.5  # mm per unit coefficient
    alpha = torch.zeros(model.n_components)
    k = int(gap_change.abs().argmax())
    alpha[model.n_identity + k] = -3.0 * torch.sign(gap_change[k])
    opened = model.shape(alpha)
    assert float(opened[upper, 1] - opened[lower, 1]) > float(model.mean[upper, 1] - model.mean[lower, 1]) + 4.0


# --------------------------------------------------------------------------------------- albedo
def test_albedo_range_and_features(model: MorphableModel) -> None:
    c = model.colour.double()
    assert float(c.min()) >= 0.0 and float(c.max()) <= 1.0
    v = model.mean.double()
    lum = c @ torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)
    brows = model.landmarks["ibug68"][17:27]
    forehead = (v[:, 0].abs() < 20) & (v[:, 1] > 62) & (v[:, 1] < 78)
    assert float(lum[brows].mean()) < float(lum[forehead].mean()) - 0.2
    lips = model.landmarks["ibug68"][[50, 51, 52, 56, 57, 58]]
    redness = c[:, 0] - c[:, 1]
    assert float(redness[lips].mean()) > float(redness[forehead].mean()) + 0.1
    eye_centre = model.landmarks["aflw21"][AFLW["LeftEyeCenter"]]
    assert float(lum[eye_centre]) < 0.3  # pupil
    # Random subjects stay (almost everywhere) inside [0, 1].
    beta = torch.randn(16, model.texture_basis.shape[0], generator=torch.Generator().manual_seed(0))
    albedo = model.albedo(beta)
    assert float(((albedo >= 0) & (albedo <= 1)).double().mean()) > 0.99


# ---------------------------------------------------------------------------------- refinement
def test_subdivision_refines_consistently(model: MorphableModel) -> None:
    fine = builtin_model(subdivisions=1)
    assert 3.5 < fine.n_vertices / model.n_vertices < 4.5
    assert torch.equal(fine.mirror[fine.mirror], torch.arange(fine.n_vertices))
    assert torch.equal(fine.mean[fine.mirror], fine.mean * FLIP_X)
    for key in ("aflw21", "ibug68"):  # the same landmark positions at both resolutions
        a, b = model.mean[model.landmarks[key]], fine.mean[fine.landmarks[key]]
        assert torch.allclose(a, b, atol=1e-3), key
    rms0 = model.basis.double().square().sum(-1).mean(-1).sqrt()
    rms1 = fine.basis.double().square().sum(-1).mean(-1).sqrt()
    assert torch.allclose(rms0[:3], rms1[:3], rtol=0.05)


def test_save_load_round_trip(model: MorphableModel, tmp_path) -> None:
    loaded = MorphableModel.load(model.save(tmp_path / "builtin.npz"))
    for key, value in _fields(model).items():
        assert torch.equal(_fields(loaded)[key], value), key
