"""Loaders on the real reference files in ``../shared/data`` (``MMSTN_SHARED_DATA``); skipped when absent.

Covers the Surrey Face Model from eos and the small files of the authors' 3DMM-STN release
(``BFM_UV.mat``, landmark ``.anl`` files, ``map_tddfa_to_basel.mat``). Nothing here is copied into the repo.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from mmstn.models.authors import load_bfm_uv, read_anl, uv_mirror_map
from mmstn.models.bfm2009 import front_normal, read_mat_variables
from mmstn.models.landmarks import AFLW21_FLIP, AFLW21_MIDLINE, IBUG68_FLIP
from mmstn.models.morphable import MorphableModel
from mmstn.models.surrey import load_surrey, read_expression_blendshapes
from mmstn.runtime import shared_data_dir

pytestmark = pytest.mark.shared_data

SFM = shared_data_dir() / "sfm_3448"
AUTHORS = shared_data_dir() / "3dmmasstn_official"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"reference data not found at {path} (set MMSTN_SHARED_DATA to the shared/data folder)")
    return path


@cache
def _surrey() -> MorphableModel:
    return load_surrey(
        SFM / "sfm_shape_3448.bin",
        SFM / "expression_blendshapes_3448.bin",
        SFM / "ibug_to_sfm.txt",
        SFM / "sfm_reference_symmetry.txt",
    )


@pytest.fixture
def surrey() -> MorphableModel:
    need(SFM / "sfm_shape_3448.bin")
    return _surrey()


# ----------------------------------------------------------------------------- Surrey Face Model
def test_surrey_sizes(surrey):
    assert surrey.n_vertices == 3448 and surrey.n_triangles == 6736
    assert surrey.n_identity == 63 and surrey.n_expression == 6
    assert surrey.uv.shape == (3448, 2) and surrey.colour is None


def test_surrey_identity_basis_is_orthogonal_with_std_scaling(surrey):
    flat = surrey.basis[:63].reshape(63, -1).double().numpy()
    gram = flat @ flat.T  # = diag(eigenvalues) for an orthonormal basis scaled by sqrt(eigenvalues)
    variances = np.diag(gram)
    assert np.all(np.diff(variances) <= 1e-6 * variances[:-1])  # sorted, decreasing
    normalised = gram / np.sqrt(np.outer(variances, variances))
    np.testing.assert_allclose(normalised, np.eye(63), atol=1e-5)
    # one unit of α_1 moves a vertex by a few mm RMS: the scaling is a standard deviation, not a variance
    rms = np.sqrt(variances[0] / surrey.n_vertices)
    assert 2.0 < rms < 8.0


def test_surrey_frame_and_winding(surrey):
    mean = surrey.mean.numpy()
    lm = surrey.landmarks["ibug68"].numpy()
    nose_tip = lm[30]
    front = np.argmax(mean[:, 2])  # the frontmost vertex is at the nose tip: the nose points to +z
    assert nose_tip == 114 and np.linalg.norm(mean[front] - mean[nose_tip]) < 5.0
    assert mean[:, 2].max() - mean[nose_tip, 2] < 0.1
    assert mean[lm[17], 0] < -40 and mean[lm[26], 0] > 40  # iBUG 18 (image left) at x < 0
    assert mean[lm[8], 1] < -60  # chin down: y up
    assert front_normal(mean, surrey.triangles.numpy())[2] > 0.9  # counter-clockwise from the front
    assert np.corrcoef(surrey.uv[:, 1].numpy(), mean[:, 1])[0, 1] > 0.99  # v up after the flip
    assert np.corrcoef(surrey.uv[:, 0].numpy(), mean[:, 0])[0, 1] > 0.98  # u grows with x


def test_surrey_expressions_are_offsets(surrey):
    names, shapes = read_expression_blendshapes(SFM / "expression_blendshapes_3448.bin")
    assert names == ["anger", "disgust", "fear", "happiness", "sadness", "surprise"]
    rms = np.sqrt((shapes**2).sum(axis=2).mean(axis=1))
    assert np.all((rms > 1.0) & (rms < 20.0))  # millimetres of motion, not whole faces
    np.testing.assert_array_equal(surrey.basis[63:].numpy(), shapes)


def test_surrey_landmarks(surrey):
    lm = surrey.landmarks["ibug68"].numpy()
    assert lm.shape == (68,)
    absent = np.flatnonzero(lm < 0) + 1  # 1-based iBUG ids without a vertex
    np.testing.assert_array_equal(absent, [*range(1, 9), *range(10, 18), 61, 65])
    assert lm[8] == 33 and lm[17] == 225  # "9 = 33", "18 = 225": vertex ids are used as stored


def test_surrey_mirror(surrey):
    mirror = surrey.mirror.numpy()
    np.testing.assert_array_equal(mirror[mirror], np.arange(3448))
    assert (mirror == np.arange(3448)).sum() == 84  # the vertices on u = 0.5
    reference = np.loadtxt(SFM / "sfm_reference_symmetry.txt", comments="#", dtype=np.int64) - 1
    np.testing.assert_array_equal(mirror[: reference.size], reference)
    mean = surrey.mean.numpy()
    assert np.abs(mean[mirror] * [-1, 1, 1] - mean).max() < 3.0  # mm: near-symmetric geometry
    lm = surrey.landmarks["ibug68"].numpy()
    both = (lm >= 0) & (lm[IBUG68_FLIP] >= 0)
    np.testing.assert_array_equal(mirror[lm[both]], lm[IBUG68_FLIP][both])


# ----------------------------------------------------------------------------- authors' files
def test_bfm_uv():
    uv = load_bfm_uv(need(AUTHORS / "BFM_UV.mat"))
    assert uv.shape == (53490, 2) and uv.dtype == np.float64
    left, mid, right = (uv[:, 0] < 0.5).sum(), (uv[:, 0] == 0.5).sum(), (uv[:, 0] > 0.5).sum()
    assert (left, mid, right) == (26635, 220, 26635)
    mirror = uv_mirror_map(uv)
    assert (mirror == np.arange(53490)).sum() == 220


#: docs/conventions.md §3.5: the AFLW-21 landmarks as 1-based indices into the BFM and the 112×112 grid.
TABLE_BFM = [38792, 4646, 40514, 41091, 11870, 42825, 2088, 4410, 5959, 10603, 12150, 14472,
             20204, 6389, 8320, 10259, 34982, 5392, 8354, 11326, 48187]  # fmt: skip
TABLE_112 = [2489, 2279, 2178, 2191, 2314, 2552, 3283, 3177, 3182, 3203, 3208, 3326,
             7177, 4979, 4536, 4990, 7272, 6880, 6664, 6897, 9128]  # fmt: skip


def test_landmarks21_anl():
    grid = read_anl(need(AUTHORS / "landmarks" / "Landmarks21_112.anl"))
    np.testing.assert_array_equal(grid, np.array(TABLE_112) - 1)
    bfm = read_anl(AUTHORS / "landmarks" / "Landmarks21_BFM.anl")
    np.testing.assert_array_equal(bfm, np.array(TABLE_BFM) - 1)
    # 0-based grid vertex k = row·112 + col; flipped landmark pairs sit at columns c and 111 − c
    row, col = grid // 112, grid % 112
    pairs = np.setdiff1d(np.arange(21), AFLW21_MIDLINE)
    np.testing.assert_array_equal(col[pairs] + col[AFLW21_FLIP][pairs], 111)
    np.testing.assert_array_equal(row, row[AFLW21_FLIP])
    assert len(read_anl(AUTHORS / "landmarks" / "Landmarks68_BFM.anl")) == 68


def test_landmarks21_agree_with_uv():
    uv = load_bfm_uv(need(AUTHORS / "BFM_UV.mat"))
    bfm = read_anl(need(AUTHORS / "landmarks" / "Landmarks21_BFM.anl"))
    grid = read_anl(AUTHORS / "landmarks" / "Landmarks21_112.anl")
    grid_uv = np.column_stack([(grid % 112) / 111, 1 - (grid // 112) / 111])
    assert np.linalg.norm(grid_uv - uv[bfm], axis=1).max() < 0.01
    np.testing.assert_allclose(uv[bfm[14]], [0.5, 0.6385], atol=1e-3)  # nose tip on the midline
    mirror = uv_mirror_map(uv)
    np.testing.assert_array_equal(mirror[bfm], bfm[AFLW21_FLIP])


def test_map_tddfa_to_basel():
    path = need(AUTHORS / "map_tddfa_to_basel.mat")
    raw = read_mat_variables(path, ["map_tddfa_to_basel"])["map_tddfa_to_basel"]
    assert raw.shape == (1, 53215) and raw.dtype == np.uint16
    vertex_map = raw.reshape(-1).astype(np.int64)
    assert np.all(np.diff(vertex_map) > 0) and vertex_map.min() == 0 and vertex_map.max() == 53489
    missing = np.setdiff1d(np.arange(53490), vertex_map)
    assert missing.size == 275
    np.testing.assert_array_equal(missing[:5], [6167, 6295, 6296, 6297, 6423])
