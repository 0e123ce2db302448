"""Tests of the ICT FaceKit conversion (mmstn.models.ict) and of the shipped default-model asset."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from mmstn.models import ict
from mmstn.models import meshtools as mt

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ict_facekit"


def _write_obj(path: Path, V: np.ndarray, quads: np.ndarray) -> None:
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in V] + ["f " + " ".join(str(i + 1) for i in q) for q in quads]
    path.write_text("\n".join(lines) + "\n")


def _fixture(tmp: Path) -> Path:
    """A tiny symmetric face-like quad grid (cm) with an 'eye' hole, 3 identity and 2 expression OBJs."""
    n = 12
    xs = np.linspace(-7, 7, n + 1)
    ys = np.linspace(-8, 7, n + 1)
    X, Y = np.meshgrid(xs, ys)
    V = np.stack([X.ravel(), Y.ravel(), 10 - 0.1 * X.ravel() ** 2], 1)
    m = n + 1
    quads = [
        [i * m + j, i * m + j + 1, (i + 1) * m + j + 1, (i + 1) * m + j]
        for i in range(n)
        for j in range(n)
        if not (i == 8 and j in (2, 9))
    ]
    quads = np.array(quads)
    _write_obj(tmp / "generic_neutral_mesh.obj", V, quads)
    rng = np.random.default_rng(0)
    for k in range(3):
        _write_obj(tmp / f"identity{k:03d}.obj", V + rng.normal(0, 0.2, V.shape), quads)
    names = ["jawOpen", "mouthSmile_L"]
    for nm in names:
        _write_obj(tmp / f"{nm}.obj", V + rng.normal(0, 0.1, V.shape), quads)
    # landmarks: vertices spread over the grid, symmetric pairs mirrored by column
    lm = [(i % m) * m + (i * 5) % m for i in range(68)]
    (tmp / "vertex_indices.json").write_text(json.dumps({"expressions": names, "idx_to_landmark_verts": lm}))
    return tmp


def test_fixture_end_to_end(tmp_path: Path) -> None:
    box = {"x": 100.0, "y_min": -100.0, "y_max": 100.0, "z_min": -100.0}
    model = ict.build_ict_model(_fixture(tmp_path), n_identity=3, n_expression=2, crop_cm=box)
    V = model.mean.numpy()
    mir = model.mirror.numpy()
    assert np.array_equal(V[mir] * [-1, 1, 1], V)
    assert len(mt.boundary_loops(model.triangles.numpy())) == 1
    assert model.n_identity == 3 and model.basis.shape[0] == 5
    assert np.ptp(V[:, 0]) == pytest.approx(140.0, rel=1e-5)  # cm -> mm
    for name in ("ibug68", "aflw21"):
        idx = model.landmarks[name].numpy()
        from mmstn.models.landmarks import flip_permutation

        assert np.array_equal(mir[idx], idx[flip_permutation(len(idx))])
    out = model.save(tmp_path / "m.npz")
    assert out.stat().st_size > 0


def test_missing_source_is_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="neither the FaceKit OBJ"):
        ict.read_facekit(tmp_path)


@pytest.fixture(scope="module")
def shipped():
    if not ict.ASSET.exists():
        pytest.skip(f"shipped asset {ict.ASSET} absent; run python -m mmstn.models.ict --source DIR")
    return ict.ict_face_model()


def test_shipped_asset(shipped) -> None:
    m = shipped
    V = m.mean.numpy().astype(np.float64)
    F = m.triangles.numpy()
    mir = m.mirror.numpy()
    assert 5000 <= len(V) <= 10000
    assert ict.ASSET.stat().st_size < 5_000_000
    notice = ict.LICENCE_FILE.read_text()
    assert "\nMIT License\n" in notice and "Copyright (c) 2020 USC Institute for Creative Technologies" in notice
    assert np.array_equal(V[mir] * [-1, 1, 1], V)
    for b in m.basis.numpy():
        mb = b[mir] * [-1, 1, 1]
        assert np.array_equal(mb, b) or np.array_equal(mb, -b)
    X = m.basis.numpy()[: m.n_identity].reshape(m.n_identity, -1).astype(np.float64)
    G = X @ X.T
    n = np.sqrt(np.diag(G))
    assert np.abs(G / np.outer(n, n) - np.eye(len(n))).max() < 1e-4
    assert np.all(np.diff(n) <= 1e-3 * n[0])
    a = m.landmarks["aflw21"].numpy()
    ratio = np.linalg.norm(V[a[12]] - V[a[16]]) / np.linalg.norm(V[a[6]] - V[a[11]])
    assert 1.45 <= ratio <= 1.75
    from mmstn.models.landmarks import flip_permutation

    for name in ("ibug68", "aflw21"):
        idx = m.landmarks[name].numpy()
        assert np.array_equal(mir[idx], idx[flip_permutation(len(idx))])
    assert len(mt.boundary_loops(F)) == 1
    mt.check_mesh(V, F)


@pytest.mark.parametrize("weights", ["uniform", "mean_value"])
def test_shipped_tutte_no_foldovers(shipped, weights: str) -> None:
    from mmstn.uv.embedding import symmetric_tutte

    t = time.perf_counter()
    emb = symmetric_tutte(shipped, weights=weights)
    assert time.perf_counter() - t < 5.0
    assert emb.quality.n_flipped == 0


def test_extract_rebuild_matches_asset(shipped) -> None:
    if not SHARED.exists():
        pytest.skip(f"{SHARED} absent (the ICT FaceKit extract lives in ../shared/data, local runs only)")
    m = ict.build_ict_model(SHARED)
    np.testing.assert_allclose(m.mean.numpy(), shipped.mean.numpy(), atol=1e-3)
    assert m.n_identity == shipped.n_identity
