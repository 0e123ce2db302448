"""The authors' released UV map ``BFM_UV.mat`` and landmark files (shared reference data; skipped without it)."""

from __future__ import annotations

import numpy as np
import pytest

from mmstn.runtime import shared_data_dir
from mmstn.uv.authors_uv import BFM_UV_FACTS, describe_uv_layout, load_authors_uv
from mmstn.uv.resample import landmarks_to_grid
from mmstn.uv.symmetry import mirror_from_uv

OFFICIAL = shared_data_dir() / "3dmmasstn_official"
pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def bfm_uv() -> np.ndarray:
    path = OFFICIAL / "BFM_UV.mat"
    if not path.is_file():
        pytest.skip(f"{path} is absent (shared reference data not available on this machine)")
    return load_authors_uv(path)


def test_bfm_uv_layout_facts(bfm_uv):
    assert bfm_uv.shape == (53490, 2) and bfm_uv.dtype == np.float64
    facts = describe_uv_layout(bfm_uv)
    for key, value in BFM_UV_FACTS.items():
        assert facts[key] == value, key
    assert facts["symmetry_error"] < 1e-15
    assert bfm_uv.min() == 0.0 and bfm_uv.max() == 1.0
    for corner in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        assert np.sum(np.all(bfm_uv == np.asarray(corner, dtype=float), axis=1)) == 1


def test_bfm_uv_mirror_map(bfm_uv):
    m = mirror_from_uv(bfm_uv)
    assert np.array_equal(m[m], np.arange(53490))
    assert int(np.sum(m == np.arange(53490))) == 220
    assert np.all(bfm_uv[m == np.arange(53490), 0] == 0.5)


@pytest.mark.parametrize("G", [112, 224])
def test_our_landmark_rule_reproduces_the_authors_grid_files(bfm_uv, G):
    """Nearest grid vertex of the BFM landmark's UV, symmetrised: within one cell of the shipped indices."""
    from mmstn.models.authors import read_anl

    bfm = read_anl(OFFICIAL / "landmarks" / "Landmarks21_BFM.anl")
    ref = read_anl(OFFICIAL / "landmarks" / f"Landmarks21_{G}.anl")
    got = landmarks_to_grid(bfm, bfm_uv, G)
    (r0, c0), (r1, c1) = np.divmod(ref, G), np.divmod(got, G)
    assert np.abs(r0 - r1).max() <= 1 and np.abs(c0 - c1).max() <= 1
    assert np.sum(got == ref) >= 19
    midline = [14, 18, 20]  # nose centre, mouth centre, chin
    assert np.all(c1[midline] == c0[midline]) and np.all(c0[midline] == (G - 1) // 2)


def test_write_bfm_uv_round_trips_in_the_authors_format(tmp_path):
    import numpy as np
    import pytest
    from scipy.io import loadmat

    from mmstn.models.authors import load_bfm_uv, write_bfm_uv

    uv = np.random.default_rng(0).random((57, 2))
    path = write_bfm_uv(tmp_path / "BFM_UV.mat", uv)
    assert loadmat(path)["UV"].shape == (57, 2)  # the variable name and layout the authors' code reads
    assert np.array_equal(load_bfm_uv(path, n_vertices=None), uv)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        write_bfm_uv(tmp_path / "bad.mat", uv * 2)
    with pytest.raises(ValueError, match="N×2"):
        write_bfm_uv(tmp_path / "bad.mat", uv[:, :1])


def test_write_bfm_uv_leaves_nothing_half_written(tmp_path, monkeypatch):
    import scipy.io

    from mmstn.models.authors import write_bfm_uv

    uv = np.random.default_rng(1).random((9, 2))
    path = write_bfm_uv(tmp_path / "UV", uv)  # no .mat suffix: the file keeps the name it was given
    assert path == tmp_path / "UV" and path.is_file()
    old = path.read_bytes()

    def interrupted(fh, *args, **kwargs):
        fh.write(b"MATLAB 5.0 half a header")
        raise KeyboardInterrupt

    monkeypatch.setattr(scipy.io, "savemat", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_bfm_uv(path, uv * 0.5)
    assert path.read_bytes() == old and sorted(tmp_path.iterdir()) == [path]  # the old file intact, no partial


def test_uv_cli_writes_the_symmetric_flattening_of_any_model(tmp_path):
    import numpy as np

    from mmstn.models.authors import load_bfm_uv, uv_mirror_map
    from mmstn.models.ict import ict_face_model
    from mmstn.uv.__main__ import main

    assert main(["ict", "--out", str(tmp_path / "ict_UV.mat"), "--weights", "mean_value"]) == 0
    uv = load_bfm_uv(tmp_path / "ict_UV.mat", n_vertices=None)
    model = ict_face_model()
    assert uv.shape == (model.n_vertices, 2)
    # symmetric: the mirror of every vertex sits at (1 - u, v); u grows with model x
    assert np.array_equal(uv_mirror_map(uv, tol=1e-6), model.mirror.numpy())
    x = model.mean[:, 0].numpy()
    assert np.corrcoef(x, uv[:, 0])[0, 1] > 0.9
