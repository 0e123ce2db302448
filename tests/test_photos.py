"""Photos → flattened faces: the point fitter, the crop rule, ``flatten`` and ``evaluate`` (API and CLI).

The photos are renders of the default model that the tests make, pasted off-centre into larger canvases, so
the true landmarks are known exactly. MediaPipe (the ``photos`` extra) is needed for detection and the face
mesh; those tests skip with the install command when it is absent.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mmstn.layers.grid import labels_to_pixels
from mmstn.models.ict import ict_face_model
from mmstn.photos.fit import fit_points
from mmstn.photos.landmarker import crop_square, mediapipe_available
from mmstn.render import pose_vertices, render_face
from mmstn.runtime import shared_data_dir
from mmstn.theta import THETA_ALPHA, THETA_LOGS, THETA_R, THETA_T
from mmstn.transforms import euler_to_axis_angle_np

needs_mediapipe = pytest.mark.skipif(
    not mediapipe_available(), reason="needs the photos extra: pip install 'mmstn[photos]'"
)

SHARED = shared_data_dir()


@pytest.fixture(scope="module")
def model():
    return ict_face_model()


def _theta(model, yaw_deg: float, S: int, alpha_seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(alpha_seed)
    th = torch.zeros(6 + model.n_components, dtype=torch.float64)
    th[THETA_R] = torch.from_numpy(euler_to_axis_angle_np(math.radians(yaw_deg), math.radians(5), math.radians(-4)))
    th[THETA_T] = torch.tensor([(S + 1) / 2 + 3, (S + 1) / 2 + 14], dtype=th.dtype)
    th[THETA_LOGS] = math.log(0.55 * S / 150.0)
    th[THETA_ALPHA][:10] = torch.from_numpy(0.8 * rng.standard_normal(10))
    return th


def _photo(model, yaw_deg: float, seed: int = 0):
    """(photo (300, 340, 3) uint8, true ibug68 (68, 2) photo px): a 256-px render pasted at (60, 20)."""
    S = 256
    th = _theta(model, yaw_deg, S, seed)
    rf = render_face(model, th.to(model.dtype), image_size=S, background=np.full((S, S, 3), 0.35))
    img = (rf.image.numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
    photo = np.full((300, 340, 3), 90, np.uint8)
    photo[20 : 20 + S, 60 : 60 + S] = img
    pts, _, _ = pose_vertices(model, th[None].to(model.dtype), scale_base="exp")
    px = labels_to_pixels(pts[0].double(), S).numpy() + np.array([60.0, 20.0])
    return photo, px[model.landmarks["ibug68"].numpy()], px[model.landmarks["aflw21"].numpy()]


# -- the fitter ------------------------------------------------------------------------------------------
def test_fit_points_recovers_theta_from_exact_points(model):
    S = 224
    true = _theta(model, 25.0, S)
    pts, _, _ = pose_vertices(model, true[None].to(model.dtype), scale_base="exp")
    ids = torch.arange(0, model.n_vertices, 17)
    px = labels_to_pixels(pts[0, ids].double(), S)
    fitted = fit_points(model, px, ids, image_size=S, sigma_px=1e-3)
    back, _, _ = pose_vertices(model, fitted.to(model.dtype), scale_base="exp")
    err = (labels_to_pixels(back[0].double(), S) - labels_to_pixels(pts[0].double(), S)).norm(dim=-1)
    assert float(err.max()) < 0.05  # every vertex, not only the fitted ones
    assert torch.allclose(fitted[0, :6], true[:6], atol=2e-3)


def test_fit_points_batches_independent_faces(model):
    S = 224
    ids = torch.arange(0, model.n_vertices, 29)
    thetas = [_theta(model, y, S, seed) for y, seed in ((-40.0, 1), (0.0, 2), (35.0, 3))]
    px = []
    for th in thetas:
        p, _, _ = pose_vertices(model, th[None].to(model.dtype), scale_base="exp")
        px.append(labels_to_pixels(p[0, ids].double(), S))
    both = fit_points(model, torch.stack(px), ids, image_size=S)
    for k in range(3):
        alone = fit_points(model, px[k], ids, image_size=S)
        assert torch.allclose(both[k], alone[0], atol=1e-4)
        assert abs(float(both[k, THETA_R].norm() - thetas[k][THETA_R].norm())) < 0.03  # the prior shrinks α a little


def test_fit_points_rejects_bad_input(model):
    ids = torch.arange(10)
    with pytest.raises(Exception, match="points must be"):
        fit_points(model, torch.zeros(10, 3), ids, image_size=224)
    with pytest.raises(Exception, match="one id per point"):
        fit_points(model, torch.zeros(10, 2), torch.arange(9), image_size=224)
    with pytest.raises(Exception, match="vertex ids"):
        fit_points(model, torch.zeros(2, 2), torch.tensor([0, model.n_vertices]), image_size=224)
    with pytest.raises(ValueError, match="positive weight"):
        fit_points(model, torch.zeros(10, 2), ids, torch.zeros(10), image_size=224)
    with pytest.raises(ValueError, match="sigma_px"):
        fit_points(model, torch.zeros(10, 2), ids, image_size=224, sigma_px=0.0)


def test_shape_without_components_is_the_mean(model):
    m = model.subset(0, 0)
    assert torch.equal(m.shape(torch.zeros(2, 0)), m.mean.expand(2, -1, -1))


# -- crop rule -------------------------------------------------------------------------------------------
def test_crop_square_maps_photo_pixels_by_its_rule():
    photo = np.zeros((120, 160, 3), np.uint8)
    photo[37, 101] = 255  # row 37, column 101
    crop, k, o = crop_square(photo, (100.0, 40.0), 40.0, 80)
    x, y = k * (np.array([101.0, 37.0]) - o)
    r, c = np.unravel_index(np.argmax(crop[..., 0]), crop.shape[:2])
    assert k == 2.0
    assert abs(c - x) <= 0.5 and abs(r - y) <= 0.5
    assert crop[..., 0].sum() > 0


def test_ict_ear_landmarks_are_the_ear_lobes(model):
    """AFLW's ear points: at the nose base's height (iBUG 34), lateral of the jawline's top (iBUG 1 / 17)."""
    V = model.mean.numpy()
    ib, af = model.landmarks["ibug68"].numpy(), model.landmarks["aflw21"].numpy()
    for ear, jaw in ((af[12], ib[0]), (af[16], ib[16])):
        assert abs(V[ear, 1] - V[ib[33], 1]) < 3.0
        assert abs(V[ear, 0]) > abs(V[jaw, 0]) - 5.0
        assert np.sign(V[ear, 0]) == np.sign(V[jaw, 0])
    assert np.allclose(V[af[12]] * [-1, 1, 1], V[af[16]], atol=1e-4)


# -- flatten ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flattener():
    if not mediapipe_available():
        pytest.skip("needs the photos extra: pip install 'mmstn[photos]'")
    from mmstn.photos.flatten import Flattener

    return Flattener(grid=32)


@needs_mediapipe
@pytest.mark.parametrize("yaw", [0.0, 30.0])
def test_flatten_finds_and_fits_a_rendered_face(model, flattener, yaw):
    photo, true68, _ = _photo(model, yaw)
    faces = flattener.flatten_image(photo)
    assert len(faces) == 1 and faces[0].method == "face_mesh"
    f = faces[0]
    box_side = math.sqrt(np.prod(true68.max(0) - true68.min(0)))
    nme = np.linalg.norm(f.landmarks["ibug68"] - true68, axis=1).mean() / box_side
    assert nme < 0.05, nme
    assert f.flat.shape == (32, 32, 3) and f.mask.shape == (32, 32) and f.mask.mean() > 0.3
    assert f.landmarks["aflw21"].shape == (21, 2)
    if yaw >= 30:  # the far side of the jawline is hidden
        assert not f.visible["ibug68"][:3].all() or not f.visible["ibug68"][14:17].all()


@needs_mediapipe
def test_flatten_with_box_uses_the_box(model, flattener):
    photo, true68, true21 = _photo(model, -20.0, seed=4)
    box = [*true68.min(0), *true68.max(0)]
    f = flattener.flatten_image(photo, box)[0]
    assert f.box.as_list() == pytest.approx(box)
    side = math.sqrt(np.prod(true68.max(0) - true68.min(0)))
    assert np.linalg.norm(f.landmarks["ibug68"] - true68, axis=1).mean() / side < 0.05
    assert np.linalg.norm(f.landmarks["aflw21"] - true21, axis=1).mean() / side < 0.06


@needs_mediapipe
def test_flatten_rejects_bad_boxes(model, flattener):
    photo, _, _ = _photo(model, 0.0)
    for box, msg in (
        ([10, 10, 5, 50], "X1 > X0"),
        ([1, 2, 3], "4 numbers"),
        ([1e5, 1e5, 2e5, 2e5], "outside"),
        ([0, 0, float("nan"), 5], "finite"),
        ([10, 10, 12, 12], "too small"),
    ):
        with pytest.raises(ValueError, match=msg):
            flattener.flatten_image(photo, box)


@needs_mediapipe
def test_no_face_is_reported(flattener):
    from mmstn.photos.flatten import NoFaceFound

    with pytest.raises(NoFaceFound, match="no face found"):
        flattener.flatten_image(np.full((200, 200, 3), 128, np.uint8), name="grey.png")


@needs_mediapipe
def test_cli_writes_every_output_and_names_unreadable_files(model, tmp_path, capsys):
    import trimesh
    from PIL import Image

    from mmstn.__main__ import main

    photo, true68, _ = _photo(model, 15.0, seed=2)
    Image.fromarray(photo).save(tmp_path / "face.png")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "out"
    rc = main(
        [
            "flatten",
            str(tmp_path / "broken.jpg"),
            str(tmp_path / "face.png"),
            "--out",
            str(out),
            "--grid",
            "32",
            "--quiet",
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "cannot decode" in err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["face.json", "face.mtl", "face.obj", "face_flat.png", "face_mask.png", "face_overlay.png"]
    rec = json.loads((out / "face.json").read_text())
    assert set(rec) >= {"image", "model", "box", "theta", "landmarks", "visible"}
    lm = np.array(rec["landmarks"]["ibug68"])
    assert lm.shape == (68, 2) and len(rec["landmarks"]["aflw21"]) == 21
    assert len(rec["visible"]["ibug68"]) == 68 and all(isinstance(v, bool) for v in rec["visible"]["aflw21"])
    side = math.sqrt(np.prod(true68.max(0) - true68.min(0)))
    assert np.linalg.norm(lm - true68, axis=1).mean() / side < 0.05  # 0-based photo pixels, y down
    mesh = trimesh.load(out / "face.obj", force="mesh")
    assert len(mesh.vertices) == 32 * 32
    assert mesh.visual.uv.shape == (32 * 32, 2)
    assert np.ptp(mesh.vertices[:, 0]) > 100  # millimetres
    assert Image.open(out / "face_flat.png").size == (32, 32)
    assert Image.open(out / "face_overlay.png").size == (340, 300)


def test_cli_rejects_bad_arguments(capsys):
    from mmstn.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["flatten", "x.png", "--out", "o", "--grid", "3"])
    assert exc.value.code == 2 and "--grid" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["flatten", "x.png", "--out", "o", "--box", "1", "2", "3"])


# -- evaluation ------------------------------------------------------------------------------------------
def test_read_labels_formats(tmp_path):
    from scipy.io import savemat

    from mmstn.data.errors import DataFormatError
    from mmstn.photos.evaluate import read_labels

    pts = np.arange(136, dtype=float).reshape(68, 2)
    savemat(tmp_path / "a.mat", {"pt3d_68": np.vstack([pts.T + 1, np.zeros(68)]), "Pose_Para": [[0.1, -0.5, 0.2]]})
    got, yaw = read_labels(tmp_path / "a.mat")
    assert np.allclose(got, pts) and yaw == pytest.approx(math.degrees(-0.5))
    p21 = np.full((2, 21), 5.0)
    p21[:, 3] = -1
    savemat(tmp_path / "b.mat", {"pt2d": p21})
    got, yaw = read_labels(tmp_path / "b.mat")
    assert got.shape == (21, 2) and np.isnan(got[3]).all() and yaw is None and got[0, 0] == 4.0
    (tmp_path / "c.json").write_text(json.dumps({"landmarks": {"ibug68": pts.tolist()}}))
    assert np.allclose(read_labels(tmp_path / "c.json")[0], pts)
    (tmp_path / "d.json").write_text(json.dumps(pts[:10].tolist()))
    with pytest.raises(DataFormatError, match=r"d\.json.*68 or 21"):
        read_labels(tmp_path / "d.json")
    with pytest.raises(DataFormatError, match="unknown landmark format"):
        read_labels(tmp_path / "e.txt")


@needs_mediapipe
def test_evaluate_folder_scores_method_and_baselines(model, flattener, tmp_path):
    from PIL import Image

    from mmstn.photos.evaluate import evaluate_folder

    for k, yaw in enumerate((0.0, 40.0, -10.0)):
        photo, true68, _ = _photo(model, yaw, seed=k)
        Image.fromarray(photo).save(tmp_path / f"p{k}.png")
        (tmp_path / f"p{k}.json").write_text(json.dumps(true68.tolist()))
    rep = evaluate_folder(tmp_path, flattener)
    assert [r["bin"] for r in rep.rows] == [0, 1, 0]
    s = rep.summary
    assert s["fit"]["mean"] < 0.01  # the model's own points: the fit is exact
    assert s["mmstn"]["mean"] < 0.05 < s["frontal"]["bins"][1]
    assert s["mmstn"]["n"] == [2, 1, 0]
    assert "balanced" in rep.table()


@pytest.mark.shared_data
@needs_mediapipe
def test_authors_crops_inter_ocular_nme(flattener):
    """The authors' six AFLW crops, manual 21-point labels: NME / outer-eye-corner distance below 0.08."""
    root = SHARED / "3dmmasstn_official"
    if not (root / "demodata_landmarks21.json").is_file():
        pytest.skip(f"needs {root} (the authors' demo crops)")
    from PIL import Image

    from mmstn.photos.flatten import Flattener

    fl = Flattener(grid=32)
    labels = json.loads((root / "demodata_landmarks21.json").read_text())
    errs = []
    for name, rec in labels.items():
        gt = np.array(rec["landmarks_aflw21_xy_0based"])
        photo = np.asarray(Image.open(root / name).convert("RGB"))
        f = fl.flatten_image(photo, [*gt.min(0), *gt.max(0)])[0]
        errs.append(np.linalg.norm(f.landmarks["aflw21"] - gt, axis=1).mean() / np.linalg.norm(gt[6] - gt[11]))
    assert len(errs) == 6 and float(np.mean(errs)) < 0.08, errs


def test_fit_jacobian_matches_autograd(model):
    """The hand-written Jacobian of the point fit against torch.autograd.functional.jacobian, float64."""
    from mmstn.photos.fit import residual_jacobian, residuals

    ids = torch.arange(0, model.n_vertices, 301)
    mean = model.mean.double()[ids]
    basis = model.basis.double()[:7, ids]
    theta = torch.cat([torch.tensor([[0.3, -0.5, 0.2, 100.0, 90.0, 0.1]]), 0.5 * torch.randn(1, 7)], 1).double()
    theta = torch.cat([theta, torch.tensor([[1e-9, 0.0, 0.0, 5.0, 5.0, -0.3, *([0.0] * 7)]]).double()])
    target = torch.randn(2, len(ids), 2).double() * 50
    sw = torch.rand(2, len(ids)).double()
    ours = residual_jacobian(mean, basis, theta, sw)
    for b in range(2):
        auto = torch.autograd.functional.jacobian(
            lambda th, b=b: residuals(mean, basis, th[None], target[b : b + 1], sw[b : b + 1])[0], theta[b]
        )
        assert torch.allclose(ours[b], auto, atol=1e-9, rtol=1e-7)


@needs_mediapipe
def test_refine_runs_the_paper_losses_from_the_fit(model):
    from mmstn.photos.flatten import Flattener

    photo, true68, _ = _photo(model, 10.0, seed=5)
    box = [*true68.min(0), *true68.max(0)]
    plain = Flattener(grid=32).flatten_image(photo, box)[0]
    refined = Flattener(grid=32, refine=True).flatten_image(photo, box)[0]
    assert np.isfinite(refined.theta).all() and not np.allclose(refined.theta, plain.theta)
    side = math.sqrt(np.prod(true68.max(0) - true68.min(0)))
    assert np.linalg.norm(refined.landmarks["ibug68"] - true68, axis=1).mean() / side < 0.08


@needs_mediapipe
@pytest.mark.slow
def test_cli_flattens_with_another_model(model, tmp_path, monkeypatch):
    """--model FILE: a model flatten has never seen gets its face-mesh correspondence measured and cached."""
    from PIL import Image

    from mmstn.__main__ import main

    monkeypatch.setenv("MMSTN_CACHE", str(tmp_path / "cache"))
    other = model.subset(10, 3)
    other.save(tmp_path / "other.npz")
    photo, true68, _ = _photo(model, -15.0, seed=6)
    Image.fromarray(photo).save(tmp_path / "p.png")
    rc = main(
        [
            "flatten",
            str(tmp_path / "p.png"),
            "--out",
            str(tmp_path / "out"),
            "--grid",
            "32",
            "--quiet",
            "--model",
            str(tmp_path / "other.npz"),
        ]
    )
    assert rc == 0
    assert len(list((tmp_path / "cache").glob("mediapipe468_*.npz"))) == 1
    rec = json.loads((tmp_path / "out" / "p.json").read_text())
    assert len(rec["theta"]["values"]) == 6 + 13
    side = math.sqrt(np.prod(true68.max(0) - true68.min(0)))
    assert np.linalg.norm(np.array(rec["landmarks"]["ibug68"]) - true68, axis=1).mean() / side < 0.06


@pytest.mark.shared_data
@needs_mediapipe
def test_flatten_with_the_surrey_model(model, tmp_path, monkeypatch):
    """A second model brought in by its loader: the Surrey Face Model (its iBUG-68 map leaves points undefined)."""
    sfm = SHARED / "sfm_3448"
    if not (sfm / "sfm_shape_3448.bin").is_file():
        pytest.skip(f"needs the Surrey Face Model at {sfm}")
    from mmstn.models.surrey import load_surrey
    from mmstn.photos.flatten import Flattener, write_outputs

    monkeypatch.setenv("MMSTN_CACHE", str(tmp_path / "cache"))
    surrey = load_surrey(
        sfm / "sfm_shape_3448.bin",
        sfm / "expression_blendshapes_3448.bin",
        sfm / "ibug_to_sfm.txt",
        sfm / "sfm_reference_symmetry.txt",
    )
    photo, true68, _ = _photo(model, 20.0, seed=7)
    f = Flattener(surrey, grid=32).flatten_image(photo, [*true68.min(0), *true68.max(0)])[0]
    lm = f.landmarks["ibug68"]
    ok = np.isfinite(lm).all(1)
    assert 0 < ok.sum() < 68  # the undefined points stay undefined
    side = math.sqrt(np.prod(true68.max(0) - true68.min(0)))
    assert np.linalg.norm(lm[ok] - true68[ok], axis=1).mean() / side < 0.08
    write_outputs(f, photo, tmp_path / "out", "s")
    rec = json.loads((tmp_path / "out" / "s.json").read_text())  # strict JSON: undefined points are null
    assert sum(p is None for p in rec["landmarks"]["ibug68"]) == int((~ok).sum())


def test_flatten_rejects_an_output_path_that_is_a_file(tmp_path):
    from mmstn.photos.flatten import flatten

    (tmp_path / "out").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        flatten([tmp_path / "p.png"], tmp_path / "out")


@needs_mediapipe
def test_evaluate_skips_unusable_labels_and_says_when_nothing_is_left(model, flattener, tmp_path):
    from PIL import Image

    from mmstn.data.errors import DataFormatError
    from mmstn.photos.evaluate import evaluate_folder

    photo, _, _ = _photo(model, 0.0)
    Image.fromarray(photo).save(tmp_path / "p.png")
    (tmp_path / "p.json").write_text(json.dumps([[None, None]] * 68))
    with pytest.warns(UserWarning, match="fewer than 3"), pytest.raises(DataFormatError, match="no face with usable"):
        evaluate_folder(tmp_path, flattener)


@needs_mediapipe
def test_near_profile_faces_are_still_found(model, flattener):
    """BlazeFace misses faces turned 80° and more; the Haar profile cascades find them."""
    photo, true68, _ = _photo(model, 85.0, seed=8)
    faces = flattener.flatten_image(photo)
    assert len(faces) == 1
    centre = np.nanmean(faces[0].landmarks["ibug68"], 0)
    assert np.linalg.norm(centre - true68.mean(0)) < 0.5 * np.ptp(true68[:, 1])
