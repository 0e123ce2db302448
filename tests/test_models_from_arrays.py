"""MorphableModel.from_arrays, the units check, OBJ/PLY loading and clear errors for bad model files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mmstn.errors import ModelFileError, ShapeError
from mmstn.models import MorphableModel, load_model


def _face_grid(n: int = 6, width: float = 150.0) -> tuple[np.ndarray, np.ndarray]:
    """A face-sized curved n×n grid: vertices (n², 3) in mm, counter-clockwise triangles (2(n−1)², 3)."""
    x, y = np.meshgrid(np.linspace(-width / 2, width / 2, n), np.linspace(-width / 2, width / 2, n))
    z = 40.0 - (x**2 + y**2) / 400.0
    v = np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)
    f = []
    for r in range(n - 1):
        for c in range(n - 1):
            a, b, d, e = r * n + c, r * n + c + 1, (r + 1) * n + c, (r + 1) * n + c + 1
            f += [(a, b, e), (a, e, d)]
    return v, np.asarray(f, dtype=np.int64)


def test_from_arrays_basis_layouts_and_std_fold():
    v, f = _face_grid()
    n, k = len(v), 4
    rng = np.random.default_rng(0)
    b = rng.normal(size=(n, 3, k))
    std = np.array([3.0, 2.0, 1.0, 0.5])
    m = MorphableModel.from_arrays(v, f, basis=b.reshape(3 * n, k), std=std, n_identity=3,
                                   landmarks={"nose": [0, 5]}, uv=(v[:, :2] + 75) / 150)
    assert m.n_components == 4 and m.n_identity == 3 and m.n_expression == 1
    np.testing.assert_allclose(m.basis[1].numpy(), b[:, :, 1] * 2.0, rtol=1e-5)
    m2 = MorphableModel.from_arrays(v, f, basis=b, std=std)
    torch.testing.assert_close(m.basis, m2.basis)
    assert m.landmark_indices("nose").tolist() == [0, 5]
    mean_only = MorphableModel.from_arrays(torch.from_numpy(v), torch.from_numpy(f))
    assert mean_only.n_components == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mean": np.zeros((5, 2))}, r"mean must have shape \(N, 3\)"),
        ({"triangles": np.array([[0, 1, 99]])}, "triangles index vertices"),
        ({"triangles": np.array([[0, 1, 1]])}, "degenerate"),
        ({"triangles": np.array([[0.5, 1, 2]])}, "integer"),
        ({"basis": np.zeros((7, 2))}, r"basis must have shape \(3N, K\)"),
        ({"basis": np.zeros((108, 2)), "std": [1.0]}, "std has 1 entries"),
        ({"std": [1.0]}, "std was given without a basis"),
        ({"landmarks": {"x": [1000]}}, r"landmarks\['x'\]"),
        ({"uv": np.zeros((3, 2))}, r"uv must have shape \(36, 2\)"),
        ({"n_identity": 5}, "n_identity"),
    ],
)
def test_from_arrays_errors_name_the_argument(kwargs, match):
    v, f = _face_grid()
    args = {"mean": v, "triangles": f, **kwargs}
    with pytest.raises((ShapeError, ValueError), match=match):
        MorphableModel.from_arrays(args.pop("mean"), args.pop("triangles"), **args)


def test_from_arrays_nan_names_mean():
    v, f = _face_grid()
    v[3, 1] = np.nan
    with pytest.raises(ValueError, match="mean holds 1 vertices with NaN"):
        MorphableModel.from_arrays(v, f)


def test_from_arrays_one_based_triangles_hint():
    v, f = _face_grid()
    with pytest.raises(ShapeError, match="1-based"):
        MorphableModel.from_arrays(v, f + 1)


@pytest.mark.parametrize(("scale", "unit"), [(0.1, "cm"), (0.001, "m")])
def test_units_check_names_the_apparent_unit(scale, unit):
    v, f = _face_grid()
    with pytest.raises(ValueError, match=f"looks like '{unit}'; pass units='{unit}'"):
        MorphableModel.from_arrays(v * scale, f)
    m = MorphableModel.from_arrays(v * scale, f, units=unit)
    np.testing.assert_allclose(m.mean.numpy(), v, rtol=1e-5, atol=1e-4)


def _write_mesh(path: Path, v: np.ndarray, f: np.ndarray) -> Path:
    import trimesh

    trimesh.Trimesh(v, f, process=False).export(str(path))
    return path


@pytest.mark.parametrize("suffix", [".obj", ".ply"])
def test_load_model_mesh_round_trip(tmp_path, suffix):
    v, f = _face_grid()
    v = v[::-1].copy()  # an order trimesh's processing would change
    f = (len(v) - 1 - f)[:, ::-1].copy()
    m = load_model(_write_mesh(tmp_path / f"face{suffix}", v, f), verbose=False)
    assert m.n_components == 0 and m.name == "face"
    np.testing.assert_allclose(m.mean.numpy(), v, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(m.triangles.numpy(), f)


def test_load_model_mesh_in_cm_is_an_error_naming_the_file(tmp_path):
    v, f = _face_grid()
    path = _write_mesh(tmp_path / "face_cm.obj", v / 10, f)
    with pytest.raises(ModelFileError, match=r"face_cm\.obj.*units='cm'"):
        load_model(path, verbose=False)
    from mmstn.models import load_mesh

    assert load_mesh(path, units="cm").mean.abs().max() > 50


def test_load_model_mesh_nan_names_file_and_variable(tmp_path):
    path = tmp_path / "nan.obj"
    path.write_text("v 0 0 0\nv 100 0 0\nv nan 100 0\nf 1 2 3\n")
    with pytest.raises(ModelFileError, match=r"nan\.obj.*(vertices|NaN)"):
        load_model(path, verbose=False)


@pytest.mark.parametrize("content", ["", "v 0 0 0\nv 1"])
def test_load_model_empty_or_truncated_mesh(tmp_path, content):
    path = tmp_path / "bad.obj"
    path.write_text(content)
    with pytest.raises(ModelFileError, match=r"bad\.obj: .*(empty|truncated|readable)"):
        load_model(path, verbose=False)


def test_load_model_directory_is_reported_as_directory(tmp_path):
    with pytest.raises(ModelFileError, match="is a directory"):
        load_model(tmp_path, verbose=False)
    with pytest.raises(ModelFileError, match="folder"):
        MorphableModel.load(tmp_path)


def _good_model() -> MorphableModel:
    v, f = _face_grid()
    return MorphableModel.from_arrays(v, f, basis=np.ones((108, 1)), landmarks={"aflw21": [0, 1]})


def test_npz_non_json_meta(tmp_path):
    path = _good_model().save(tmp_path / "m.npz")
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    data["meta"] = np.array("not json {")
    np.savez(path, **data)
    with pytest.raises(ModelFileError, match=r"m\.npz: the 'meta' entry is not JSON"):
        MorphableModel.load(path)


def test_npz_nan_names_file_and_variable(tmp_path):
    path = _good_model().save(tmp_path / "m.npz")
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    data["basis"][0, 0, 0] = np.nan
    np.savez(path, **data)
    with pytest.raises(ModelFileError, match=r"m\.npz: variable 'basis' holds 1 NaN"):
        MorphableModel.load(path)
    meta = json.loads(str(data["meta"]))
    assert meta["format"] == "mmstn-morphable-model"


def test_npz_empty_file(tmp_path):
    path = tmp_path / "e.npz"
    path.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        load_model(path, verbose=False)


def test_missing_landmark_set_lists_the_sets():
    m = _good_model()
    with pytest.raises(KeyError, match=r"no landmark set 'aflw_21' \(did you mean 'aflw21'\?\).*\['aflw21'\]"):
        m.landmark_indices("aflw_21")


_SFM = Path(os.environ.get("MMSTN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "sfm_3448"


@pytest.mark.skipif(not (_SFM / "sfm_shape_3448.bin").is_file(), reason=f"Surrey model absent: {_SFM}")
def test_surrey_to_grid_model_and_stn():
    # The user-facing path, kept as short as the report quotes (load, grid, STN).
    from mmstn.stn import STN3DMM, STNConfig
    from mmstn.uv import make_grid_model

    model = load_model(_SFM / "sfm_shape_3448.bin", verbose=False)
    grid = make_grid_model(model, G=32)
    # landmark_set=None: the Surrey ibug68 set leaves the jaw contour undefined (−1)
    stn = STN3DMM(grid, STNConfig.faithful(grid_size=32, landmark_set=None))
    assert grid.n_vertices == 32 * 32 and stn is not None
    from mmstn.uv.grid_model import GridCoverageWarning

    with pytest.warns(GridCoverageWarning, match="outside the mesh"):
        make_grid_model(model, G=32, flattening="model_uv")  # the SFM texture UVs leave ~20 % of the grid bare


def test_plain_obj_to_grid_model_and_stn(tmp_path):
    """A symmetric OBJ (float32 on disk) to a grid model and an STN: the path a user with a mesh takes."""
    import trimesh

    from mmstn.stn import STN3DMM, STNConfig
    from mmstn.uv import make_grid_model
    from mmstn.uv.symmetry import mirror_from_positions
    from mmstn.uv.synthetic import symmetric_disk_mesh

    V, F, _ = symmetric_disk_mesh(300, seed=0)
    trimesh.Trimesh(V, F, process=False).export(str(tmp_path / "face.obj"))
    # --- the user's lines
    model = load_model(tmp_path / "face.obj", verbose=False)
    model = model.with_fields(mirror=mirror_from_positions(model.mean.numpy(), tol=1e-3))
    grid = make_grid_model(model, G=16, weights="mean_value")
    stn = STN3DMM(grid, STNConfig.faithful(grid_size=16))
    # ---
    assert grid.n_vertices == 256 and stn is not None


def test_from_arrays_takes_a_basis_in_the_models_own_layout():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(5, 3)) * 50
    tri = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4]])
    knk = rng.normal(size=(2, 5, 3))  # (K, N, 3)
    a = MorphableModel.from_arrays(mean, tri, basis=knk)
    b = MorphableModel.from_arrays(mean, tri, basis=np.moveaxis(knk, 0, -1))  # (N, 3, K)
    assert a.basis.shape == (2, 5, 3) and torch.equal(a.basis, b.basis)
