"""Real-data loaders on tiny fixtures in their exact upstream formats, the crop rule, and the shared data."""

from __future__ import annotations

import csv
import functools
import json
import random
import sqlite3
import warnings

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from mmstn.data.aflw import AFLW, read_aflw_sqlite
from mmstn.data.crop import CropRule, SquareBox, crop_image, crop_points, landmark_square
from mmstn.data.demodata import DemoDataset, load_demodata
from mmstn.data.errors import DataFormatError
from mmstn.data.folder import FolderFaces, read_landmarks_json
from mmstn.data.markup import ibug68_to_aflw21
from mmstn.data.pts import PtsFaces, pts_to_labels, read_pts, write_pts
from mmstn.data.split import split_of
from mmstn.data.umdfaces import UMDFaces, read_umdfaces_csv
from mmstn.layers.grid import labels_to_pixels
from mmstn.models import ict_face_model

KEYS = {"image", "landmarks21", "vis21", "subject_id"}


def _photo(path, size=(160, 120), seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    w, h = size
    arr = (rng.uniform(0, 255, (h, w, 3))).astype(np.uint8)
    im = Image.fromarray(arr)
    if mode != "RGB":
        im = im.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


@functools.cache
def _face():
    """The default face (ICT FaceKit), loaded once for the whole module."""
    return ict_face_model()


def _mean_landmarks(markup):
    """(x, y) in mm of the default face's mean shape at its ``markup`` landmarks."""
    m = _face()
    return m.mean[m.landmarks[markup], :2].double().numpy()


def _face_points(cx=80.0, cy=60.0, scale=0.3):
    """Plausible AFLW-21 photo coordinates (0-based, y down): the default mean face, scaled."""
    xy = _mean_landmarks("aflw21")
    return np.stack([cx + scale * xy[:, 0], cy - scale * xy[:, 1]], axis=1)


def _expected_crop(points, visible, size=(120, 160), rule=None, rect=None, markup="aflw21"):
    rule = rule or CropRule()
    box = rule.square(size, points, visible, rect, markup)
    return crop_points(points, box, rule.size)


# ------------------------------------------------------------------------------------------------ crop rule
def test_crop_points_follow_the_image_content():
    h, w = 90, 130
    yy, xx = np.mgrid[0:h, 0:w]
    spot = (37.3, 51.6)  # 0-based (x, y)
    img = np.exp(-(((xx - spot[0]) ** 2 + (yy - spot[1]) ** 2) / (2 * 3.0**2)))
    im = Image.fromarray(np.repeat((img * 255).astype(np.uint8)[..., None], 3, axis=2))
    for box in (SquareBox(40.0, 50.0, 80.0), SquareBox(60.5, 40.2, 170.0), SquareBox(30.0, 55.0, 40.0)):
        out = np.asarray(crop_image(im, box, 64), dtype=np.float64)[..., 0]
        weights = np.clip(out - 0.3 * out.max(), 0, None)
        ys, xs = np.mgrid[0:64, 0:64]
        centroid = np.array([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()
        lab = crop_points(np.array([spot]), box, 64)[0]
        assert np.allclose(centroid, [lab[0] - 1, 64 - lab[1]], atol=0.35), box


def test_landmark_square_is_top_aligned():
    pts = np.array([[10.0, 20.0], [110.0, 30.0], [60.0, 80.0]])
    cx, cy, side = landmark_square(pts)
    assert (cx, cy, side) == (60.0, 70.0, 100.0)
    assert landmark_square(pts, align_top=False) == (60.0, 50.0, 100.0)
    pts_nan = np.vstack([pts, [[np.nan, np.nan]]])
    assert landmark_square(pts_nan, np.array([1, 1, 1, 1])) == (60.0, 70.0, 100.0)
    box = CropRule().square((200, 200), pts)
    assert box.side == pytest.approx(187.0)
    with pytest.raises(ValueError, match="source"):
        CropRule(source="eyes")  # type: ignore[arg-type]


def test_crop_rule_reproduces_the_authors_demo_crops(shared_data):
    demo = load_demodata(shared_data / "3dmmasstn_official" / "demodata.mat")
    for i in range(6):
        pts = labels_to_pixels(demo.landmarks[i].double(), 224).numpy()
        box = CropRule().square((224, 224), pts, demo.visible[i].numpy())
        assert abs(box.side - 224) / 224 < 0.02
        assert abs(box.cx - 111.5) < 1.5 and abs(box.cy - 111.5) < 1.5


# ------------------------------------------------------------------------------------------------ AFLW
_AFLW_SCHEMA = """
CREATE TABLE Databases(db_id INTEGER PRIMARY KEY, path TEXT, description TEXT);
CREATE TABLE FaceEllipse(face_id INTEGER, x REAL, y REAL, ra REAL, rb REAL, theta REAL, annot_type_id INTEGER,
                         upsidedown INTEGER);
CREATE TABLE FaceImages(image_id INTEGER PRIMARY KEY, db_id INTEGER, file_id TEXT, filepath TEXT, bw INTEGER,
                        width INTEGER, height INTEGER);
CREATE TABLE FaceMetaData(face_id INTEGER, sex TEXT, occluded INTEGER, glasses INTEGER, bw INTEGER,
                          annot_type_id INTEGER);
CREATE TABLE FacePose(face_id INTEGER, roll REAL, pitch REAL, yaw REAL, annot_type_id INTEGER);
CREATE TABLE FaceRect(face_id INTEGER, x INTEGER, y INTEGER, w INTEGER, h INTEGER, annot_type_id INTEGER);
CREATE TABLE Faces(face_id INTEGER PRIMARY KEY, file_id TEXT, db_id INTEGER);
CREATE TABLE FeatureCoords(face_id INTEGER, feature_id INTEGER, x REAL, y REAL);
CREATE TABLE FeatureCoordTypes(feature_id INTEGER, descr TEXT, code TEXT, x REAL, y REAL, z REAL);
"""


def _aflw_fixture(root, features_missing=(12, 16)):
    """aflw.sqlite + flickr/{0,2}/ with: face 1 and 2 in one JPEG, face 3 in a PNG, face 4 missing, face 5 corrupt."""
    root.mkdir(parents=True, exist_ok=True)
    _photo(root / "flickr" / "0" / "image00002.jpg", seed=1)
    _photo(root / "flickr" / "2" / "image00013.png", seed=2, mode="L")
    (root / "flickr" / "2" / "image00099.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    con = sqlite3.connect(root / "aflw.sqlite")
    con.executescript(_AFLW_SCHEMA)
    con.execute("INSERT INTO Databases VALUES (1, 'flickr/', 'Flickr')")
    images = [(1, "image00002.jpg", "0/image00002.jpg"), (2, "image00013.png", "2/image00013.png"),
              (3, "image00050.jpg", "3/image00050.jpg"), (4, "image00099.jpg", "2/image00099.jpg")]  # fmt: skip
    for image_id, file_id, path in images:
        con.execute("INSERT INTO FaceImages VALUES (?, 1, ?, ?, 0, 160, 120)", (image_id, file_id, path))
    faces = [(1, "image00002.jpg", 60.0), (2, "image00002.jpg", 110.0), (3, "image00013.png", 80.0),
             (4, "image00050.jpg", 80.0), (5, "image00099.jpg", 80.0)]  # fmt: skip
    for face_id, file_id, cx in faces:
        con.execute("INSERT INTO Faces VALUES (?, ?, 1)", (face_id, file_id))
        pts = _face_points(cx, 60.0, 0.25)
        for k in range(21):
            if k not in features_missing:
                con.execute("INSERT INTO FeatureCoords VALUES (?, ?, ?, ?)", (face_id, k + 1, *pts[k]))
        con.execute("INSERT INTO FaceRect VALUES (?, ?, 30, 40, 45, 1)", (face_id, int(cx - 20)))
        con.execute("INSERT INTO FacePose VALUES (?, 0.1, -0.2, 0.3, 1)", (face_id,))
    con.commit()
    con.close()
    return root / "aflw.sqlite"


def test_aflw_reads_the_sqlite_schema(tmp_path):
    db = _aflw_fixture(tmp_path / "aflw")
    faces = read_aflw_sqlite(db)
    assert [f.face_id for f in faces] == [1, 2, 3, 4, 5]
    f = faces[2]
    assert f.filepath == "2/image00013.png" and f.rect == (60.0, 30.0, 40.0, 45.0)
    assert f.pose == pytest.approx((0.1, -0.2, 0.3))
    np.testing.assert_allclose(f.points[0], _face_points(80.0, 60.0, 0.25)[0])
    assert f.visible[12] == 0 and f.visible[16] == 0 and f.visible.sum() == 19  # absent rows = invisible
    assert np.isnan(f.points[12]).all()
    one = read_aflw_sqlite(db, one_based=True)[2]
    np.testing.assert_allclose(one.points[0], f.points[0] - 1)


def test_aflw_dataset_crops_skips_and_never_crashes(tmp_path):
    db = _aflw_fixture(tmp_path / "aflw")
    with pytest.warns(UserWarning, match="1 of 5 faces skipped.*image00050"):
        ds = AFLW(db, split="all")
    assert len(ds) == 4 and ds.n_missing == 1
    s = ds[2]  # face 3, the grey PNG
    assert set(s) == KEYS
    assert s["image"].shape == (3, 224, 224) and s["image"].dtype == torch.float32
    assert torch.equal(s["image"][0], s["image"][1])  # grey → RGB
    pts, vis = ds.faces[2].points, ds.faces[2].visible
    np.testing.assert_allclose(s["landmarks21"].numpy(), _expected_crop(pts, vis), atol=1e-4)
    assert s["vis21"][12] == 0 and torch.equal(s["landmarks21"][12], torch.zeros(2))
    assert int(s["subject_id"]) == -1
    # the landmark box's larger side spans 224/1.87 px, centred horizontally, its top at y = 112.5 + 224/3.74
    lm = s["landmarks21"][s["vis21"] > 0]
    lo, hi = lm.min(0).values, lm.max(0).values
    assert float((hi - lo).max()) == pytest.approx(224 / 1.87, rel=1e-4)
    assert float(lo[0] + hi[0]) / 2 == pytest.approx(112.5, abs=1e-3)
    assert float(hi[1]) == pytest.approx(112.5 + 224 / 1.87 / 2, abs=1e-3)  # the demo crops: y ≈ 172
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = list(torch.utils.data.DataLoader(ds, batch_size=2))  # face 5's file is corrupt
    assert sum(len(b["image"]) for b in batches) == 4
    assert ds.n_unreadable == 1 and any("image00099.jpg" in str(w.message) for w in caught)
    with pytest.warns(UserWarning, match="missing"):
        box = AFLW(db, split="all", crop=CropRule(source="box"))[0]
    rect_box = CropRule(source="box").square((120, 160), rect=(40.0, 30.0, 40.0, 45.0))
    np.testing.assert_allclose(box["landmarks21"][0].numpy(), crop_points(ds.faces[0].points[:1], rect_box, 224)[0])


def test_aflw_split_is_deterministic_and_disjoint(tmp_path):
    db = _aflw_fixture(tmp_path / "aflw")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train = {f.face_id for f in AFLW(db, split="train", val_fraction=0.5).faces}
        val = {f.face_id for f in AFLW(db, split="val", val_fraction=0.5).faces}
    assert not train & val and train | val == {1, 2, 3, 5}
    keys = range(20000)
    frac = np.mean([split_of(k, 0.1, "aflw") == "val" for k in keys])
    assert 0.09 < frac < 0.11
    assert [split_of(k, 0.1, "aflw") for k in (1, 2, 3)] == [split_of(k, 0.1, "aflw") for k in (1, 2, 3)]


def test_aflw_malformed_input_names_file_and_row(tmp_path):
    db = _aflw_fixture(tmp_path / "a")
    con = sqlite3.connect(db)
    con.execute("INSERT INTO FeatureCoords VALUES (3, 22, 1.0, 2.0)")
    con.commit()
    con.close()
    with pytest.raises(DataFormatError, match=r"aflw\.sqlite, table FeatureCoords, face_id=3, feature_id=22"):
        read_aflw_sqlite(db)
    db2 = _aflw_fixture(tmp_path / "b")
    con = sqlite3.connect(db2)
    con.execute("UPDATE FeatureCoords SET x = 'abc' WHERE face_id = 2 AND feature_id = 5")
    con.commit()
    con.close()
    with pytest.raises(DataFormatError, match=r"face_id=2, feature_id=5: x='abc' is not a finite number"):
        read_aflw_sqlite(db2)
    db3 = _aflw_fixture(tmp_path / "c")
    con = sqlite3.connect(db3)
    con.execute("DROP TABLE FeatureCoords")
    con.commit()
    con.close()
    with pytest.raises(DataFormatError, match="no table 'FeatureCoords'"):
        read_aflw_sqlite(db3)
    not_db = tmp_path / "fake.sqlite"
    not_db.write_text("hello")
    with pytest.raises(DataFormatError, match=r"fake\.sqlite: not an SQLite 3 database"):
        read_aflw_sqlite(not_db)
    with pytest.raises(DataFormatError, match="no such file"):
        AFLW(tmp_path / "missing.sqlite")


# ------------------------------------------------------------------------------------------------ UMDFaces
def _umd_fixture(root, with_vis=True, shuffle_seed=0):
    root.mkdir(parents=True, exist_ok=True)
    cols = ["SUBJECT_ID", "FILE", "FACE_X", "FACE_Y", "FACE_WIDTH", "FACE_HEIGHT", "YAW", "PITCH", "ROLL",
            "PR_MALE", "PR_FEMALE", "BOOLGLASS"]  # fmt: skip
    cols += [f"P{k}X" for k in range(1, 22)] + [f"P{k}Y" for k in range(1, 22)]
    if with_vis:
        cols += [f"VIS{k}" for k in range(1, 22)]
    order = cols[:]
    random.Random(shuffle_seed).shuffle(order)
    rows = []
    for i, (sid, name) in enumerate([(7, "ann"), (7, "ann"), (9, "bob")]):
        rel = f"{name}/{name}_{i}.jpg"
        _photo(root / rel, seed=10 + i)
        pts = _face_points(70.0 + 5 * i, 60.0, 0.25)
        row = {"SUBJECT_ID": sid, "FILE": rel, "FACE_X": 40.0, "FACE_Y": 25.0, "FACE_WIDTH": 50.0,
               "FACE_HEIGHT": 55.0, "YAW": 10.0, "PITCH": -5.0, "ROLL": 2.0, "PR_MALE": 0.4, "PR_FEMALE": 0.6,
               "BOOLGLASS": 0}  # fmt: skip
        for k in range(21):
            row[f"P{k + 1}X"], row[f"P{k + 1}Y"] = pts[k]
            if with_vis:
                row[f"VIS{k + 1}"] = 0 if k in (12, 16) else 1
        rows.append(row)
    path = root / "umdfaces_batch1_ultraface.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=order)
        w.writeheader()
        w.writerows(rows)
    return path


def test_umdfaces_csv_by_header_name(tmp_path):
    path = _umd_fixture(tmp_path / "umdfaces_batch1", shuffle_seed=3)
    faces = read_umdfaces_csv(path)
    assert [f.subject_id for f in faces] == [7, 7, 9]
    f = faces[2]
    assert f.rect == (40.0, 25.0, 50.0, 55.0) and f.pose == (10.0, -5.0, 2.0)
    np.testing.assert_allclose(f.points, _face_points(80.0, 60.0, 0.25), atol=1e-9)
    assert f.visible[12] == 0 and f.visible.sum() == 19
    ds = UMDFaces(tmp_path)  # a folder of batches
    assert len(ds) == 3
    assert {k: v.tolist() for k, v in ds.subject_indices().items()} == {7: [0, 1], 9: [2]}
    s = ds[2]
    assert set(s) == KEYS and int(s["subject_id"]) == 9
    np.testing.assert_allclose(s["landmarks21"].numpy(), _expected_crop(f.points, f.visible), atol=1e-4)
    no_vis = read_umdfaces_csv(_umd_fixture(tmp_path / "b2", with_vis=False, shuffle_seed=5))
    assert no_vis[0].visible.sum() == 21  # without VIS columns every keypoint is visible


def test_umdfaces_malformed_input(tmp_path):
    path = _umd_fixture(tmp_path / "b")
    text = path.read_text().splitlines()
    header = text[0].split(",")
    drop = header.index("P3X")
    bad = tmp_path / "missing_col.csv"
    bad.write_text("\n".join(",".join(c for j, c in enumerate(line.split(",")) if j != drop) for line in text))
    with pytest.raises(DataFormatError, match=r"missing_col\.csv, header: missing column\(s\) P3X"):
        read_umdfaces_csv(bad)
    cells = text[2].split(",")
    cells[header.index("FACE_WIDTH")] = "wide"
    bad2 = tmp_path / "bad_value.csv"
    bad2.write_text("\n".join([text[0], text[1], ",".join(cells)]))
    with pytest.raises(DataFormatError, match=r"bad_value\.csv, line 3: column FACE_WIDTH: 'wide' is not a number"):
        read_umdfaces_csv(bad2)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataFormatError, match="empty"):
        read_umdfaces_csv(empty)


# ------------------------------------------------------------------------------------------------ .pts
def test_pts_round_trip_and_dataset(tmp_path):
    xy = _mean_landmarks("ibug68")
    pts = np.stack([80 + 0.25 * xy[:, 0], 60 - 0.25 * xy[:, 1]], axis=1) + 1.0  # 1-based
    (tmp_path / "01_Indoor").mkdir()
    write_pts(tmp_path / "01_Indoor" / "indoor_001.pts", pts)
    _photo(tmp_path / "01_Indoor" / "indoor_001.png")
    got = read_pts(tmp_path / "01_Indoor" / "indoor_001.pts")
    np.testing.assert_allclose(got, pts, atol=5e-4)
    lab = pts_to_labels(got, 120)
    np.testing.assert_allclose(lab[:, 1], 121 - got[:, 1])
    ds = PtsFaces(tmp_path)
    assert len(ds) == 1
    s = ds[0]
    assert set(s) == KEYS | {"landmarks68", "vis68"}
    box = CropRule().square((120, 160), got - 1.0, None, None, "ibug68")
    np.testing.assert_allclose(s["landmarks68"].numpy(), crop_points(got - 1.0, box, 224), atol=1e-4)
    p21, _ = ibug68_to_aflw21(got - 1.0)
    np.testing.assert_allclose(s["landmarks21"].numpy(), crop_points(p21, box, 224), atol=1e-4)
    assert s["vis21"][12] == 0 and s["vis21"][16] == 0 and s["vis21"].sum() == 19


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1\nn_points: 3\n{\n1 2\n3 4\n}\n", "n_points says 3 but the file lists 2"),
        ("version: 1\nn_points: 2\n{\n1 2\n3 4\n", "no '}'"),
        ("version: 1\nn_points: 2\n{\n1 2\n3 x\n}\n", r"line 5: expected two finite numbers 'x y', got '3 x'"),
        ("n_points: 2\n1 2\n", "line 2: expected 'key: value'"),
        ("version: 1\n{\n1 2\n}\n", "no 'n_points:'"),
    ],
)
def test_pts_malformed(tmp_path, text, message):
    path = tmp_path / "bad.pts"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=message):
        read_pts(path)


# ------------------------------------------------------------------------------------------------ demodata
def test_demodata_like_mat(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (224, 224, 3, 2)).astype(np.float32)
    labels = rng.uniform(52, 173, (1, 2, 21, 2)).astype(np.float32)
    labels[0, :, 4, 1] = 0.0  # a missing point
    scipy.io.savemat(tmp_path / "demo.mat", {"Images": images, "Labels": labels})
    d = load_demodata(tmp_path / "demo.mat")
    assert d.images.shape == (2, 3, 224, 224)
    np.testing.assert_allclose(d.images[1, 2].numpy(), images[:, :, 2, 1] / 255, rtol=1e-6)
    np.testing.assert_array_equal(d.landmarks[0].numpy(), labels[0, :, :, 0].T)  # already the label frame
    assert d.visible[1, 4] == 0 and d.visible.sum() == 41
    ds = DemoDataset(tmp_path / "demo.mat")
    assert set(ds[0]) == KEYS and len(ds) == 2
    scipy.io.savemat(tmp_path / "bad.mat", {"Images": images, "Labels": labels[:, :, :20]})
    with pytest.raises(DataFormatError, match=r"bad\.mat: Labels has shape \(1, 2, 20, 2\)"):
        load_demodata(tmp_path / "bad.mat")
    scipy.io.savemat(tmp_path / "nolabels.mat", {"Images": images})
    with pytest.raises(DataFormatError, match="no variable 'Labels'"):
        load_demodata(tmp_path / "nolabels.mat")
    (tmp_path / "junk.mat").write_bytes(b"junk" * 100)
    with pytest.raises(DataFormatError, match=r"junk\.mat"):
        load_demodata(tmp_path / "junk.mat")


def test_authors_demodata_matches_its_json_and_pngs(shared_data):
    folder = shared_data / "3dmmasstn_official"
    d = load_demodata(folder / "demodata.mat")
    assert d.images.shape == (6, 3, 224, 224) and d.landmarks.shape == (6, 21, 2)
    assert float(d.visible.sum()) == 126
    ref = json.loads((folder / "demodata_landmarks21.json").read_text())
    for i in range(6):
        entry = ref[f"demodata_{i}.png"]
        # our label frame is the raw one; converting to 0-based pixels gives the JSON (row = 225 − y, 0-based 224 − y)
        np.testing.assert_allclose(d.landmarks[i].numpy(), entry["raw_labels_xy_matlab_yup"], atol=1e-3)
        pix = labels_to_pixels(d.landmarks[i].double(), 224).numpy()
        np.testing.assert_allclose(pix, entry["landmarks_aflw21_xy_0based"], atol=1e-3)
        png = np.asarray(Image.open(folder / f"demodata_{i}.png").convert("RGB"), dtype=np.float32) / 255
        np.testing.assert_allclose(d.images[i].permute(1, 2, 0).numpy(), png, atol=1e-6)


# ------------------------------------------------------------------------------------------------ folder
def test_folder_with_subfolders_and_json(tmp_path):
    xy68 = _mean_landmarks("ibug68")
    entries = {}
    for name, k in (("zoe", 1), ("adam", 2), ("adam", 3)):
        rel = f"{name}/{name}{k}.png"
        _photo(tmp_path / rel, seed=k)
        pts = np.stack([80 + 0.25 * xy68[:, 0], 60 - 0.25 * xy68[:, 1]], axis=1)
        entries[rel] = {"width": 160, "landmarks_ibug68_xy": pts.tolist()}
    (tmp_path / "lm.json").write_text(json.dumps(entries))
    ds = FolderFaces(tmp_path, "lm.json")
    assert ds.subject_names == ["adam", "zoe"]
    assert [int(ds[i]["subject_id"]) for i in range(3)] == [1, 0, 0]
    s = ds[0]
    assert set(s) == KEYS | {"landmarks68", "vis68"}
    assert s["vis21"][12] == 0 and s["vis21"][16] == 0  # no ears in the 68-point markup
    plain = FolderFaces(tmp_path)  # no JSON: whole photos, no landmarks
    assert len(plain) == 3 and float(plain[0]["vis21"].sum()) == 0
    entries["zoe/zoe1.png"]["landmarks_ibug68_xy"] = entries["zoe/zoe1.png"]["landmarks_ibug68_xy"][:60]
    (tmp_path / "bad.json").write_text(json.dumps(entries))
    with pytest.raises(DataFormatError, match=r"bad\.json, entry 'zoe/zoe1\.png': landmarks_ibug68_xy must be"):
        read_landmarks_json(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(DataFormatError, match="not valid JSON"):
        FolderFaces(tmp_path, "broken.json")


def test_ibug68_mapping_on_the_default_face():
    m = _face()
    mean = m.mean.double().numpy()
    p21 = mean[m.landmarks["aflw21"], :2]
    mapped, vis = ibug68_to_aflw21(mean[m.landmarks["ibug68"], :2])
    assert vis[12] == 0 and vis[16] == 0 and vis.sum() == 19
    err = np.linalg.norm(mapped - p21, axis=1)
    exact = [0, 1, 2, 3, 4, 5, 6, 8, 9, 11, 14, 17, 19]
    assert err[exact].max() < 1e-9
    assert np.nanmax(err) < 2.5  # mm (ICT: 1.8); the mouth centre (mean of two inner-lip points) is the farthest


def test_faces_identities_folder(shared_data):
    folder = shared_data / "faces_identities" / "face_api_js_bbt"
    ds = FolderFaces(folder, "landmarks_dlib68.json")
    assert len(ds) == 40 and ds.n_missing == 0
    assert ds.subject_names == ["amy", "bernadette", "howard", "leonard", "penny", "raj", "sheldon", "stuart"]
    assert sorted(len(v) for v in ds.subject_indices().values()) == [5] * 8
    ref = json.loads((folder / "landmarks_dlib68.json").read_text())
    rec = ds.records[7]
    entry = ref[rec.key]
    np.testing.assert_allclose(rec.points, entry["landmarks_ibug68_xy"])
    s = ds[7]
    assert ds.subject_names[int(s["subject_id"])] == entry["identity"]
    box = ds.crop.square((150, 150), rec.points, rec.visible, None, "ibug68")
    np.testing.assert_allclose(s["landmarks68"].numpy(), crop_points(rec.points, box, 224), atol=1e-4)
    lm = s["landmarks21"][s["vis21"] > 0]
    assert 60 < float(lm[:, 0].max() - lm[:, 0].min()) < 140  # a face about as wide as the authors' crops
    assert s["image"].shape == (3, 224, 224) and torch.equal(s["image"][0], s["image"][2])  # grey photos
