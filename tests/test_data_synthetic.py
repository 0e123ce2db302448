"""Synthetic faces: determinism, exact ground truth, the on-disk format, resuming, the dataset."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from mmstn.data.errors import DatasetFolderError
from mmstn.data.synthetic import (
    SceneDistribution,
    SyntheticFaces,
    ThetaDistribution,
    draw_parameters,
    generate_dataset,
    generate_sample,
    reference_scale,
    reference_width_mm,
    render_parameters,
)
from mmstn.layers.visibility import occlusion_visibility
from mmstn.models import ict_face_model
from mmstn.render import pose_vertices, render_face
from mmstn.theta import THETA_ALPHA, THETA_LOGS, THETA_R
from mmstn.transforms import euler_to_axis_angle_np

CLEAN = SceneDistribution(pixel_noise=0.0, light_gain_jitter=0.0, occluder_probability=0.0)
FRONTAL = ThetaDistribution(yaw_deg=0.0, pitch_deg=0.0, roll_deg=0.0, translation_jitter_px=0.0, scale_jitter=0.0)


@pytest.fixture(scope="module")
def model():
    return ict_face_model()


def test_sample_keys_shapes_and_dtypes(model):
    s = generate_sample(model, 3, 7)
    d = model.n_components
    want = {
        "image": ((3, 224, 224), torch.float32),
        "landmarks21": ((21, 2), torch.float32),
        "vis21": ((21,), torch.float32),
        "landmarks68": ((68, 2), torch.float32),
        "vis68": ((68,), torch.float32),
        "theta": ((6 + d,), torch.float32),
        "subject_id": ((), torch.int64),
        "mask": ((224, 224), torch.bool),
    }
    assert {k: (tuple(v.shape), v.dtype) for k, v in s.items()} == want
    assert 0.0 <= float(s["image"].min()) and float(s["image"].max()) <= 1.0
    assert set(torch.unique(s["vis21"]).tolist()) <= {0.0, 1.0}


def test_generation_is_deterministic_per_seed_and_index(model):
    a, b = generate_sample(model, 5, 11), generate_sample(model, 5, 11)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not torch.equal(a["image"], generate_sample(model, 6, 11)["image"])
    assert not torch.equal(a["theta"], generate_sample(model, 5, 12)["theta"])


def test_theta_distribution(model):
    width = reference_width_mm(model)
    assert width == pytest.approx(143.0, abs=0.5)  # the ICT face, ear lobe to ear lobe
    s0 = reference_scale(model)
    assert s0 == pytest.approx(120.0 / width)
    centre = 112.5
    for i in range(40):
        p = draw_parameters(model, i, 3)
        th = p.theta.astype(np.float64)
        roll, yaw, pitch = Rotation.from_rotvec(th[THETA_R]).as_euler("ZYX", degrees=True)
        assert abs(yaw) <= 90.0 + 1e-3 and abs(pitch) <= 30.0 + 1e-3 and abs(roll) <= 30.0 + 1e-3
        assert 0.9 * s0 - 1e-6 <= math.exp(th[THETA_LOGS][0]) <= 1.1 * s0 + 1e-6
        # t centres the posed landmark box within the ±8 px jitter
        pts, _, _ = pose_vertices(model, torch.from_numpy(p.theta)[None])
        lm = pts[0, model.landmarks["aflw21"]].numpy()
        box_centre = (lm.min(0) + lm.max(0)) / 2
        assert np.all(np.abs(box_centre - centre) <= 8.0 + 1e-3)
    # the order of the rotations: R = Rz(roll) Ry(yaw) Rx(pitch); positive yaw turns the nose to the image right
    r = euler_to_axis_angle_np(math.radians(30), 0.0, 0.0)
    nose = Rotation.from_rotvec(r).apply([0.0, 0.0, 1.0])
    assert nose[0] > 0.4


def test_landmarks_are_the_projections_of_the_true_theta(model):
    for i in range(3):
        s = generate_sample(model, i, 2)
        pts, _, _ = pose_vertices(model, s["theta"][None])
        torch.testing.assert_close(s["landmarks21"], pts[0, model.landmarks["aflw21"]], atol=1e-3, rtol=0)
        torch.testing.assert_close(s["landmarks68"], pts[0, model.landmarks["ibug68"]], atol=1e-3, rtol=0)


def test_fast_renderer_reproduces_render_face(model):
    for i in range(3):
        p = draw_parameters(model, i, 4, scene=CLEAN)
        r = render_parameters(model, p, scene=CLEAN)
        ref = render_face(
            model, torch.from_numpy(p.theta), albedo=r.albedo, lighting=p.lighting, background=r.background
        )
        assert np.array_equal(ref.mask, r.face.fragments.mask)
        np.testing.assert_allclose(ref.image.numpy().transpose(1, 2, 0), r.image, atol=1e-4)


def test_visibility_agrees_with_the_exact_occlusion_test(model):
    lm21 = model.landmarks["aflw21"].numpy()
    lm68 = model.landmarks["ibug68"].numpy()
    checked_hidden = 0
    scene = SceneDistribution(occluder_probability=0.5)
    for i in range(8):
        p = draw_parameters(model, i, 5, scene=scene)
        r = render_parameters(model, p, scene=scene)
        pts, rotated, _ = pose_vertices(model, torch.from_numpy(p.theta)[None])
        exact = occlusion_visibility(rotated[0].double(), model.triangles, backface_culling=True).numpy()
        px = pts[0].double().numpy()
        x0, y0 = px[:, 0] - 1, 224 - px[:, 1]
        exact &= (x0 >= 0) & (x0 <= 223) & (y0 >= 0) & (y0 <= 223)
        for o in p.occluders:
            exact &= ~o.contains(x0, y0)
        assert np.array_equal(r.visible["aflw21"], exact[lm21]), i
        assert np.array_equal(r.visible["ibug68"], exact[lm68]), i
        checked_hidden += int((~exact[lm21]).sum())
    assert checked_hidden > 10  # the samples do exercise hidden landmarks


def test_visible_landmarks_land_on_the_face(model):
    hits = total = 0
    for i in range(6):
        s = generate_sample(model, i, 8, scene=CLEAN)
        mask = s["mask"].numpy()
        lm, vis = s["landmarks21"].numpy(), s["vis21"].numpy() > 0
        cols = np.rint(lm[vis, 0] - 1).astype(int)
        rows = np.rint(224 - lm[vis, 1]).astype(int)
        hits += int(mask[rows, cols].sum())
        total += int(vis.sum())
        for r_, c_ in zip(rows, cols, strict=True):  # every visible landmark touches the face
            assert mask[max(r_ - 1, 0) : r_ + 2, max(c_ - 1, 0) : c_ + 2].any()
    assert hits / total > 0.95


def test_brows_and_eyes_are_darker_than_forehead_and_nose(model):
    s = generate_sample(model, 0, 9, dist=FRONTAL, scene=CLEAN)
    img = s["image"].numpy().mean(0)
    lm = s["landmarks21"].numpy()
    assert s["vis21"].sum() >= 19  # frontal: all but possibly the ears

    def lum(x: float, y: float) -> float:
        return float(img[round(224 - y), round(x - 1)])

    for brow in (1, 4):  # brow centres vs. 12 px above them
        assert lum(*lm[brow]) < lum(lm[brow, 0], lm[brow, 1] + 12) - 0.1
    for eye in (7, 10):  # eye centres (pupils) vs. the nose tip
        assert lum(*lm[eye]) < lum(*lm[14]) - 0.2


def test_backgrounds_never_leak_into_the_face_mask(model):
    from mmstn.render import renderer_for

    for weights in ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)):  # noise, gradient, other faces
        scene = SceneDistribution(background_weights=weights, pixel_noise=0.0, occluder_probability=0.0)
        p = draw_parameters(model, 1, 10, scene=scene)
        r = render_parameters(model, p, scene=scene)
        # the same face over black: the mask is exactly its silhouette, and inside it nothing else shows
        black = renderer_for(model).render(p.theta.astype(np.float64), r.albedo, p.lighting, 224, None, p.light_gain)
        assert np.array_equal(black.fragments.mask, r.mask)
        np.testing.assert_array_equal(r.image[r.mask], black.image[r.mask])
        np.testing.assert_array_equal(r.image[~r.mask], r.background[~r.mask])
        assert r.background.std() > 0.01  # a real background, not a flat fill


def test_occluders_hide_landmarks_and_leave_the_mask(model):
    scene = SceneDistribution(occluder_probability=1.0, pixel_noise=0.0)
    found = False
    for i in range(10):
        p = draw_parameters(model, i, 12, scene=scene)
        r = render_parameters(model, p, scene=scene)
        assert p.occluders
        assert not (r.mask & r.occluder_mask).any()
        o = p.occluders[-1]
        ys, xs = np.nonzero(r.occluder_mask)
        inside_last = o.contains(xs, ys)
        np.testing.assert_allclose(
            r.image[ys[inside_last], xs[inside_last]], np.broadcast_to(o.colour, (inside_last.sum(), 3))
        )
        pts = r.landmarks["aflw21"]
        covered = np.zeros(21, dtype=bool)
        for occ in p.occluders:
            covered |= occ.contains(pts[:, 0] - 1, 224 - pts[:, 1])
        assert not r.visible["aflw21"][covered].any()
        found |= bool(covered.any())
    assert found


def test_subjects_share_identity_and_texture(model):
    samples = [draw_parameters(model, i, 13, n_subjects=2) for i in range(8)]
    by_subject: dict[int, list] = {}
    for p in samples:
        by_subject.setdefault(p.subject_id, []).append(p)
    assert set(by_subject) == {0, 1}
    n_id = model.n_identity
    for group in by_subject.values():
        assert len(group) >= 2
        a, b = group[0], group[1]
        np.testing.assert_array_equal(a.theta[THETA_ALPHA][:n_id], b.theta[THETA_ALPHA][:n_id])
        np.testing.assert_array_equal(a.beta, b.beta)
        assert not np.array_equal(a.theta[THETA_ALPHA][n_id:], b.theta[THETA_ALPHA][n_id:])  # expression per image
    assert not np.array_equal(by_subject[0][0].beta, by_subject[1][0].beta)


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_shards_resume_to_identical_bytes(tmp_path, model):
    out = tmp_path / "synth"
    generate_dataset(out, 11, seed=3, model=model, shard_size=4, n_subjects=5, workers=0, progress=False)
    first = _files(out)
    assert {"images_00002.npy", "masks_00002.npy", "labels_00002.npz", "manifest.json"} <= set(first)
    manifest = json.loads(first["manifest.json"])
    assert manifest["complete"] and [s["count"] for s in manifest["shards"]] == [4, 4, 3]
    assert manifest["seed"] == 3 and manifest["n_images"] == 11 and manifest["model"]["name"] == model.name

    # interruption: the last shard is gone from disk and manifest, the middle one was half written
    for name in ("images_00002.npy", "masks_00002.npy", "labels_00002.npz"):
        (out / name).unlink()
    manifest["shards"] = manifest["shards"][:2]
    manifest["complete"] = False
    (out / "manifest.json").write_text(json.dumps(manifest))
    data = (out / "images_00001.npy").read_bytes()
    (out / "images_00001.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetFolderError, match="did not finish"):
        SyntheticFaces(out)
    generate_dataset(out, 11, seed=3, model=model, shard_size=4, n_subjects=5, workers=0, progress=False)
    assert _files(out) == first

    with pytest.raises(DatasetFolderError, match=r"other settings.*seed"):
        generate_dataset(out, 11, seed=4, model=model, shard_size=4, n_subjects=5, workers=0, progress=False)


def test_dataset_round_trip_and_dataloader(tmp_path, model):
    out = generate_dataset(
        tmp_path / "d", 6, seed=1, model=model, shard_size=4, n_subjects=3, workers=0, progress=False
    )
    ds = SyntheticFaces(out)
    assert len(ds) == 6
    for i in (0, 4, 5):
        got, want = ds[i], generate_sample(model, i, 1, n_subjects=3)
        assert set(got) == set(want)
        assert float((got["image"] - want["image"]).abs().max()) <= 0.5 / 255 + 1e-6
        for k in ("landmarks21", "vis21", "landmarks68", "vis68", "theta", "subject_id", "mask"):
            assert torch.equal(got[k], want[k]), k
    assert torch.equal(ds[-1]["theta"], ds[5]["theta"])
    with pytest.raises(IndexError):
        ds[6]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 3, 224, 224) and batch["mask"].dtype == torch.bool
    groups = ds.subject_indices()
    assert sum(len(v) for v in groups.values()) == 6


def test_two_workers_give_the_same_bytes(tmp_path, model):
    a = generate_dataset(tmp_path / "a", 6, seed=2, model=model, shard_size=3, workers=0, progress=False)
    b = generate_dataset(tmp_path / "b", 6, seed=2, model=model, shard_size=3, workers=2, progress=False)
    assert _files(a) == _files(b)


def test_dataset_errors_name_the_folder_and_the_fix(tmp_path, model):
    with pytest.raises(DatasetFolderError, match=r"no such folder.*generate_dataset"):
        SyntheticFaces(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetFolderError, match=r"empty: no manifest\.json.*generate_dataset"):
        SyntheticFaces(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetFolderError, match=r"bad: manifest\.json is unreadable"):
        SyntheticFaces(bad)
    (bad / "manifest.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(DatasetFolderError, match="not a mmstn-synthetic-faces manifest"):
        SyntheticFaces(bad)
    zero = generate_dataset(tmp_path / "zero", 0, seed=0, model=model, workers=0, progress=False)
    with pytest.raises(DatasetFolderError, match=r"zero: the dataset holds no images.*n_images > 0"):
        SyntheticFaces(zero)


def test_models_without_aflw_landmarks_are_refused(model):
    m = model.with_fields(landmarks={})
    with pytest.raises(ValueError, match="aflw"):
        generate_sample(m, 0, 0)
