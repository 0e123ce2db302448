"""Bad inputs to the data loaders and model-file loaders: each is skipped with a warning naming the file, or
is a clear error naming the file and the row, column or variable (issue 15, section 2)."""

from __future__ import annotations

import json
import sqlite3
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from test_data_loaders import _aflw_fixture, _face_points, _photo, _umd_fixture
from test_models_loaders import bfm_variables, sfm_bytes, write_mat5, write_statismo, write_tddfa

from mmstn.data.aflw import AFLW, read_aflw_sqlite
from mmstn.data.crop import CropRule, SquareBox, crop_image
from mmstn.data.errors import DataFormatError
from mmstn.data.folder import FolderFaces, read_landmarks_json
from mmstn.data.images import open_rgb, read_image
from mmstn.data.pts import read_pts
from mmstn.data.umdfaces import read_umdfaces_csv
from mmstn.errors import ModelFileError
from mmstn.models.authors import load_bfm_uv, read_anl
from mmstn.models.bfm2009 import load_bfm2009
from mmstn.models.bfm2017 import load_bfm2017
from mmstn.models.surrey import load_surrey
from mmstn.models.tddfa import load_tddfa_expressions


def _folder(tmp_path, points_by_photo: dict[str, np.ndarray]) -> FolderFaces:
    entries = {}
    for k, (rel, pts) in enumerate(points_by_photo.items()):
        _photo(tmp_path / rel, seed=k)
        entries[rel] = {"landmarks_aflw21_xy": [None if np.isnan(p).any() else p for p in pts.tolist()]}
    (tmp_path / "lm.json").write_text(json.dumps(entries))
    return FolderFaces(tmp_path, "lm.json")


# ------------------------------------------------------------------------------------- landmarks → crops
def test_a_far_landmark_is_skipped_with_a_warning_naming_the_file(tmp_path):
    bad = _face_points()
    bad[3, 0] = 1e5  # one typo'd landmark: the old crop grew to 1e5 px and Pillow refused it
    ds = _folder(tmp_path, {"good.png": _face_points(), "bad.png": bad})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = list(torch.utils.data.DataLoader(ds, batch_size=2))
    assert sum(len(b["image"]) for b in batches) == 2  # the good face stands in for the bad one
    assert ds.n_unreadable == 1
    msg = " ".join(str(w.message) for w in caught)
    assert "bad.png" in msg and "landmark 4" in msg and "far outside" in msg


def test_an_unsatisfiable_crop_rule_skips_the_face_instead_of_stopping(tmp_path):
    no_landmarks = np.full((21, 2), np.nan)
    ds = _folder(tmp_path, {"a.png": no_landmarks, "b.png": _face_points()})
    ds.crop = CropRule(source="landmarks")
    with pytest.warns(UserWarning, match=r"a\.png.*visible landmark"):
        s = ds[0]
    assert s["vis21"].sum() > 0  # b.png's face


def test_a_huge_but_finite_box_is_cropped_without_a_huge_intermediate():
    im = Image.new("RGB", (2000, 1500), (200, 100, 50))
    out = crop_image(im, SquareBox(1000.0, 750.0, 20000.0), 224)  # old code: DecompressionBombError
    a = np.asarray(out)
    assert a.shape == (224, 224, 3) and a[0, 0].max() == 0
    assert a[112, 112].tolist() == pytest.approx([200, 100, 50], abs=2)  # the photo: 22 px in the middle


# ------------------------------------------------------------------------------------------ image modes
def _png(tmp_path, name, im):
    path = tmp_path / name
    im.save(path)
    return path


def test_image_modes_are_read_in_range(tmp_path):
    grey16 = (np.arange(12 * 8).reshape(8, 12) * 600).astype(np.uint16)
    path = _png(tmp_path, "g16.png", Image.fromarray(grey16))
    assert Image.open(path).mode.startswith("I")
    img = read_image(path)  # the old reader clipped 0..65535 at 255: solid white
    assert img.shape == (3, 8, 12)
    np.testing.assert_allclose(img[1].numpy(), grey16 / 65535.0, atol=1e-6)
    assert open_rgb(path).getpixel((11, 7)) == (round(float(grey16[7, 11]) / 65535 * 255),) * 3
    # the 8-bit modes still convert as before
    rgb = np.random.default_rng(0).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    for mode in ("P", "LA", "RGBA", "L", "1"):
        p = _png(tmp_path, f"m_{mode}.png", Image.fromarray(rgb).convert(mode))
        t = read_image(p)
        assert t.shape == (3, 8, 12) and 0.0 <= float(t.min()) <= float(t.max()) <= 1.0
    cmyk = tmp_path / "c.jpg"
    Image.fromarray(rgb).convert("CMYK").save(cmyk)
    assert read_image(cmyk).shape == (3, 8, 12)


def test_a_16bit_photo_is_cropped_with_its_grey_levels(tmp_path):
    grey = np.full((120, 160), 20000, dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "g.png")
    (tmp_path / "lm.json").write_text(json.dumps({"g.png": {"landmarks_aflw21_xy": _face_points().tolist()}}))
    s = FolderFaces(tmp_path, "lm.json")[0]
    assert float(s["image"][:, 112, 112].mean()) == pytest.approx(20000 / 65535, abs=1e-3)


def test_empty_and_folder_photos_say_so(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DataFormatError, match=r"empty\.png: the image file is empty"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(DataFormatError, match=r"dir\.png: is a folder"):
        read_image(tmp_path / "dir.png")


# ------------------------------------------------------------------------------------------ annotations
def test_umdfaces_latin1_byte_names_the_line(tmp_path):
    path = _umd_fixture(tmp_path / "u")
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"ann/", b"ann\xe9/", 1)
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataFormatError, match=r"ultraface\.csv, line 3: byte 0xe9 is not UTF-8") as info:
        read_umdfaces_csv(path)
    assert "iconv" in str(info.value)


def test_umdfaces_infinite_keypoint_names_the_column(tmp_path):
    path = _umd_fixture(tmp_path / "u")
    text = path.read_text().splitlines()
    header = text[0].split(",")
    row = text[1].split(",")
    row[header.index("P5X")] = "inf"
    text[1] = ",".join(row)
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DataFormatError, match=r"line 2: column P5X: 'inf' is not a finite number"):
        read_umdfaces_csv(path)


@pytest.mark.parametrize("bad", ["inf 3", "nan 4"])
def test_pts_non_finite_point_names_the_line(tmp_path, bad):
    path = tmp_path / "a.pts"
    path.write_text(f"version: 1\nn_points: 2\n{{\n1 2\n{bad}\n}}\n")
    with pytest.raises(DataFormatError, match=r"a\.pts, line 5: expected two finite numbers"):
        read_pts(path)


@pytest.mark.parametrize("value", ["Infinity", "NaN", "true"])
def test_landmarks_json_rejects_non_finite_and_boolean_coordinates(tmp_path, value):
    pts = json.dumps(_face_points().tolist())
    body = pts.replace("[", f"[{value}, ", 2).replace(f"[{value}, [", "[[", 1)  # first point's x
    path = tmp_path / "lm.json"
    path.write_text(f'{{"p.png": {{"landmarks_aflw21_xy": {body}}}}}')
    assert value in path.read_text()
    with pytest.raises(DataFormatError, match=r"lm\.json, entry 'p\.png': landmarks_aflw21_xy\[0\]"):
        read_landmarks_json(path)
    (tmp_path / "d.json").mkdir()
    with pytest.raises(DataFormatError, match="is a folder"):
        read_landmarks_json(tmp_path / "d.json")


def test_aflw_bad_pose_truncated_database_and_folder(tmp_path):
    db = _aflw_fixture(tmp_path / "a")
    con = sqlite3.connect(db)
    con.execute("UPDATE FacePose SET yaw = 'left' WHERE face_id = 2")
    con.commit()
    con.close()
    with pytest.raises(DataFormatError, match=r"table FacePose, face_id=2: yaw='left' is not a finite number"):
        read_aflw_sqlite(db)
    good = _aflw_fixture(tmp_path / "b")
    data = good.read_bytes()
    cut = tmp_path / "cut.sqlite"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=r"cut\.sqlite.*download aflw\.sqlite again"):
        read_aflw_sqlite(cut)
    with pytest.raises(DataFormatError, match="is a folder"):
        AFLW(tmp_path / "a")


# ------------------------------------------------------------------------------------------- model files
@pytest.mark.parametrize("name", ["shapeMU", "shapePC", "texMU", "texPC"])
def test_bfm2009_nan_names_file_and_variable(tmp_path, name):
    var = bfm_variables()
    var[name] = var[name].copy()
    var[name][3, 0] = np.nan
    path = write_mat5(tmp_path / "nan_bfm.mat", var)
    with pytest.raises(ModelFileError, match=rf"nan_bfm\.mat: variable '{name}' holds 1 NaN"):
        load_bfm2009(path)


def test_bfm2017_inf_names_file_and_dataset(tmp_path):
    import h5py

    write_statismo(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r+") as f:
        f["shape/model/pcaBasis"][0, 0] = np.inf
    with pytest.raises(ModelFileError, match=r"m\.h5: variable 'shape/model/pcaBasis' holds 0 NaN and 1 inf"):
        load_bfm2017(tmp_path / "m.h5")


def test_surrey_nan_names_file_and_matrix(tmp_path):
    data = bytearray(sfm_bytes())
    data[4 + 8 : 4 + 12] = np.array([np.nan], dtype="<f4").tobytes()  # first value of the shape mean
    path = tmp_path / "sfm.bin"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"sfm\.bin: variable 'shape mean' holds 1 NaN"):
        load_surrey(path)


def test_tddfa_and_uv_non_finite_name_the_variable(tmp_path):
    expr, vmap, w_exp = write_tddfa(tmp_path, np.arange(10))
    w_exp[0, 0] = np.inf
    write_mat5(expr, {"w_exp": w_exp})
    with pytest.raises(ModelFileError, match=r"Model_Expression\.mat: variable 'w_exp' holds 0 NaN and 1 inf"):
        load_tddfa_expressions(expr, vmap)
    uv = np.full((4, 2), 0.5)
    uv[1, 1] = np.nan
    with pytest.raises(ModelFileError, match=r"BFM_UV\.mat: variable 'UV' holds 1 NaN"):
        load_bfm_uv(write_mat5(tmp_path / "BFM_UV.mat", {"UV": uv}), n_vertices=4)


@pytest.mark.parametrize(
    "loader",
    [load_bfm2009, load_bfm2017, load_surrey, read_anl],
    ids=["bfm2009", "bfm2017", "surrey", "anl"],
)
def test_empty_and_folder_model_files_say_so(tmp_path, loader):
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"empty\.bin: the .* is empty \(0 bytes\)"):
        loader(tmp_path / "empty.bin")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ModelFileError, match=r"folder: is a folder"):
        loader(tmp_path / "folder")


def test_demodata_nan_names_the_variable(tmp_path):
    import scipy.io

    from mmstn.data.demodata import load_demodata

    images = np.zeros((224, 224, 3, 1), np.float32)
    images[0, 0, 0, 0] = np.nan
    labels = np.ones((1, 2, 21, 1), np.float32)
    scipy.io.savemat(tmp_path / "demodata.mat", {"Images": images, "Labels": labels})
    with pytest.raises(DataFormatError, match=r"demodata\.mat: variable 'Images' holds 1 NaN or inf"):
        load_demodata(tmp_path / "demodata.mat")


def test_surrey_text_files_that_are_binary_or_folders(tmp_path):
    from mmstn.models.surrey import read_ibug_mapping, read_symmetry_list

    (tmp_path / "map.txt").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ModelFileError, match=r"map\.txt: not UTF-8 text"):
        read_ibug_mapping(tmp_path / "map.txt")
    with pytest.raises(ModelFileError, match=r"map\.txt: not UTF-8 text"):
        read_symmetry_list(tmp_path / "map.txt")
    with pytest.raises(ModelFileError, match="is a folder"):
        read_symmetry_list(tmp_path)


def test_umdfaces_folder_instead_of_csv(tmp_path):
    with pytest.raises(DataFormatError, match="is a folder; expected a UMDFaces batch CSV"):
        read_umdfaces_csv(tmp_path)
