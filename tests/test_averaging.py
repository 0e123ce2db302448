"""Per-subject averaging (mmstn.averaging), its figures and widget, and the optional detector (mmstn.detect)."""

from __future__ import annotations

import csv
import json
import math

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

matplotlib.use("Agg")

from mmstn.averaging import (
    AverageAccumulator,
    SubjectAverager,
    average_subjects,
    correspondence_score,
    default_estimator,
    fitting_estimator,
    folder_subjects,
    frontal_estimator,
    localiser_estimator,
    masked_average,
    plain_average,
    psnr_curve,
    read_subject_names,
    synthetic_subject_indices,
    synthetic_subjects,
    texture_psnr,
    true_flattened_texture,
    umdfaces_subjects,
)
from mmstn.data.synthetic import SceneDistribution, generate_sample
from mmstn.models import ict_face_model
from mmstn.stn import STN3DMM, STNConfig
from mmstn.theta import THETA_LOGS, ThetaConvention
from mmstn.uv import default_grid_model

G = 64  # small grids keep the suite fast; the code does not depend on G


@pytest.fixture(scope="module")
def render_model():
    return ict_face_model().subset(5, 5)  # the render model of default_grid_model (5 + 5 components)


@pytest.fixture(scope="module")
def grid_model():
    return default_grid_model(G)


@pytest.fixture(scope="module")
def stn(grid_model):
    return STN3DMM(grid_model, STNConfig.paper(grid_size=G))


@pytest.fixture(scope="module")
def synthetic_result(render_model, stn):
    """Four subjects × 8 images, true θ, every output kept."""
    source = synthetic_subjects(render_model, [0, 1, 2, 3], 8, n_subjects=4, batch_size=16)
    return average_subjects(stn, source, None, snapshots=(1, 2, 4, 8), keep=True, keep_examples=2)


# ---------------------------------------------------------------------------------------------- averaging
def test_average_is_visibility_normalised():
    g = 4
    w = torch.rand(3, 3, g, g)
    m = torch.zeros(3, 1, g, g)
    m[0, 0, 0, 0] = 1  # cell (0, 0): only image 0
    m[:, 0, 1, 1] = 1  # cell (1, 1): all three
    m[1:, 0, 2, 2] = 1  # cell (2, 2): images 1 and 2; cell (3, 3): never
    flattened = w * m  # what the STN returns: W = V ∘ M
    avg, count, seen = masked_average(flattened, m)
    assert torch.allclose(avg[:, 0, 0], flattened[0, :, 0, 0])
    assert torch.allclose(avg[:, 1, 1], flattened[:, :, 1, 1].mean(0))
    assert torch.allclose(avg[:, 2, 2], flattened[1:, :, 2, 2].mean(0))
    assert torch.equal(avg[:, 3, 3], torch.zeros(3)) and not seen[3, 3]
    assert torch.isfinite(avg).all()
    assert count[0, 0] == 1 and count[1, 1] == 3 and count[3, 3] == 0
    assert int(seen.sum()) == 3
    plain = plain_average(flattened)
    assert torch.allclose(plain[:, 0, 0], flattened[0, :, 0, 0] / 3)  # the plain mean darkens partial cells


def test_accumulator_streams_and_merges():
    gen = torch.Generator().manual_seed(0)
    w = torch.rand(10, 3, 8, 8, generator=gen)
    m = (torch.rand(10, 1, 8, 8, generator=gen) > 0.4).float()
    whole = AverageAccumulator(8)
    whole.add(w, m)
    a, b = AverageAccumulator(8), AverageAccumulator(8)
    for k in range(0, 6, 2):
        a.add(w[k : k + 2], m[k : k + 2])
    b.add(w[6:], m[6:])
    a.merge(b)
    assert a.n_images == whole.n_images == 10
    assert torch.allclose(a.average, whole.average) and torch.allclose(a.plain, whole.plain)
    assert torch.equal(a.seen, whole.seen)
    empty = AverageAccumulator(8)
    assert torch.equal(empty.average, torch.zeros(3, 8, 8)) and not empty.seen.any()
    with pytest.raises(ValueError):
        whole.add(torch.rand(2, 3, 4, 4), torch.ones(2, 1, 4, 4))


def test_subject_averager_snapshots_and_storage():
    gen = torch.Generator().manual_seed(1)
    w = torch.rand(6, 3, 8, 8, generator=gen)
    m = (torch.rand(6, 1, 8, 8, generator=gen) > 0.3).float()
    ids = torch.tensor([5, 7, 5, 5, 7, 5])
    av = SubjectAverager(8, snapshots=(1, 3), keep=True)
    av.add(w[:4], m[:4], ids[:4])
    av.add(w[4:], m[4:], ids[4:])
    assert av.subject_ids == [5, 7]
    rows5 = [0, 2, 3, 5]
    res = av.results({5: "five"})
    assert res[5].n_images == 4 and res[7].n_images == 2 and res[5].name == "five"
    assert torch.allclose(res[5].average, masked_average(w[rows5], m[rows5])[0])
    assert torch.allclose(av.snapshots[5][3], masked_average(w[rows5[:3]], m[rows5[:3]])[0])
    assert set(av.snapshots[7]) == {1}
    sw, _sm, sid = av.stack([5], 2)
    assert sw.shape == (2, 3, 8, 8) and sid.tolist() == [5, 5]
    assert torch.allclose(sw, w[[0, 2]], atol=0.5 / 255 + 1e-6)  # stored as uint8
    avg2, _ = av.average_of_first(5, 2)
    assert torch.allclose(avg2, masked_average(w[[0, 2]], m[[0, 2]])[0], atol=1 / 255)


# ---------------------------------------------------------------------------------------------- synthetic
def test_synthetic_subject_indices_follow_the_generator(render_model):
    idx = synthetic_subject_indices(2, 3, seed=5, n_subjects=6)
    assert idx == sorted(idx) and len(idx) == 3
    for i in idx:
        assert int(generate_sample(render_model, i, 5, n_subjects=6, image_size=64)["subject_id"]) == 2
    with pytest.raises(ValueError):
        synthetic_subject_indices(6, 1, n_subjects=6)


def test_true_texture_is_what_a_flat_lit_rendering_flattens_to(render_model, grid_model, stn):
    flat = SceneDistribution(occluder_probability=0.0, ambient=(1.0, 1.0), diffuse=(0.0, 0.0), light_gain_jitter=0.0,
                             pixel_noise=0.0)
    source = synthetic_subjects(render_model, [1], 4, n_subjects=3, scene=flat)
    res = average_subjects(stn, source, None)
    a = res.averages()[1]
    true = true_flattened_texture(grid_model, 1)
    assert true.shape == (3, G, G) and 0 <= float(true.min()) and float(true.max()) <= 1
    assert texture_psnr(a.average, true, a.seen, match_gain=False, region="seen") > 25.0
    other = true_flattened_texture(grid_model, 2)
    assert texture_psnr(a.average, true, a.seen) > texture_psnr(a.average, other, a.seen) + 3.0


def test_psnr_rises_with_the_number_of_images(synthetic_result, grid_model):
    curves = []
    for s in range(4):
        true = true_flattened_texture(grid_model, s)
        snaps = synthetic_result.averagers[G].snapshots[s]
        curves.append([texture_psnr(snaps[n], true) for n in (1, 2, 4, 8)])
        w, m, _ = synthetic_result.averagers[G].stack([s])
        again = psnr_curve(w, m, true, (1, 2, 4, 8))
        assert np.allclose(again, curves[-1], atol=0.3)  # uint8 storage vs float snapshots
    mean = np.mean(curves, axis=0)
    assert mean[1] > mean[0] and mean[2] > mean[1] and mean[3] > mean[2], mean
    assert mean[3] - mean[0] > 6.0, mean


def test_psnr_rises_with_fitted_theta(render_model, grid_model, stn):
    source = synthetic_subjects(render_model, [0, 1], 8, n_subjects=4)
    res = average_subjects(stn, source, fitting_estimator(stn, n_iter=15), snapshots=(1, 8))
    gain = [texture_psnr(res.averagers[G].snapshots[s][8], true_flattened_texture(grid_model, s))
            - texture_psnr(res.averagers[G].snapshots[s][1], true_flattened_texture(grid_model, s)) for s in (0, 1)]
    assert min(gain) > 4.0, gain
    assert res.theta[0].shape == (8, 16)


def test_within_subject_distance_is_below_between_on_synthetic(synthetic_result):
    w, m, ids = synthetic_result.averagers[G].stack()
    raw = correspondence_score(w, m, ids)
    chroma = correspondence_score(w, m, ids, normalise="chromaticity")
    # pairs that share under 5 % of the grid (opposite profiles) are left out
    assert raw.n_within <= 4 * 28 and raw.n_between <= 6 * 64 and raw.n_within + raw.n_between > 480
    assert raw.within < raw.between and chroma.within < chroma.between
    assert chroma.nn_accuracy > 0.25  # chance: 7 of the 31 other outputs show the same subject
    per = raw.per_subject()
    assert set(per) == {0, 1, 2, 3}


def test_correspondence_distances_match_a_direct_computation():
    gen = torch.Generator().manual_seed(3)
    w = torch.rand(5, 3, 6, 6, generator=gen)
    m = (torch.rand(5, 1, 6, 6, generator=gen) > 0.3).float()
    ids = [0, 0, 1, 1, 2]
    sc = correspondence_score(w, m, ids, min_overlap=0.0)
    for i in range(5):
        for j in range(5):
            if i == j:
                assert math.isnan(sc.distances[i, j])
                continue
            o = (m[i] * m[j])[0] > 0
            d = ((w[i] - w[j])[:, o] ** 2).mean().sqrt()
            assert abs(sc.distances[i, j] - float(d)) < 1e-6
    assert abs(sc.within - np.mean([sc.distances[0, 1], sc.distances[2, 3]])) < 1e-9
    with pytest.raises(ValueError):
        correspondence_score(w, m, ids, normalise="bogus")


def test_exclude_black_masks_padding(render_model, stn):
    source = synthetic_subjects(render_model, [0], 2, n_subjects=2)
    batch = next(iter(source))
    batch.images[:, :, :, :112] = 0.0  # the left half of each crop is padding
    res_on = average_subjects(stn, [batch], None, exclude_black=True)
    res_off = average_subjects(stn, [batch], None)
    on, off = res_on.averages()[0], res_off.averages()[0]
    assert on.count.sum() < off.count.sum()
    assert not (on.average[:, on.seen].amax(0) == 0).any()  # no black cell counts as seen


# ---------------------------------------------------------------------------------------------- estimators
class _Fixed(torch.nn.Module):
    """A "localiser" that predicts θ = (0, 1, …, 15) in the authors' scale base (s = 0.99^logs)."""

    convention = ThetaConvention.of(STNConfig.faithful())

    def __init__(self):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.arange(16, dtype=torch.float32))

    def forward(self, x):
        return self.theta.expand(x.shape[0], -1)


def test_estimators_default_and_localiser(stn, monkeypatch):
    import mmstn.averaging.estimators as estimators
    from mmstn.train.checkpoint import CheckpointError
    from mmstn.train.config import TrainConfig

    # the shipped checkpoint is found, matches the STN's face and is used
    est, how = default_estimator(stn, n_iter=5)
    assert "the shipped localiser" in how, how
    assert est(torch.zeros(1, 3, 224, 224), None, None).shape == (1, 16)

    # package data missing or damaged (load_pretrained raises): fall back to fitting, and say why
    def missing(*args, **kwargs):
        raise CheckpointError("mmstn/checkpoints/photo_small.pt", "no such shipped file")

    monkeypatch.setattr(estimators, "load_pretrained", missing)
    est, how = default_estimator(stn, n_iter=5)
    assert "fitting" in how and "no such shipped file" in how
    with pytest.raises(RuntimeError, match="no such shipped file"):
        default_estimator(stn, prefer="localiser")

    # a localiser of another face is refused
    monkeypatch.setattr(estimators, "load_pretrained", lambda *a, **k: (_Fixed(), stn, TrainConfig(model="builtin")))
    est, how = default_estimator(stn, n_iter=5)
    assert "fitting" in how and "refused" in how

    # a localiser trained in the 0.99 scale base drives an exp STN: its logs column is converted
    monkeypatch.setattr(estimators, "load_pretrained", lambda *a, **k: (_Fixed(), stn, TrainConfig(model="ict")))
    est, how = default_estimator(stn)
    assert "localiser" in how
    theta = est(torch.zeros(2, 3, 32, 32), None, None)
    assert theta.shape == (2, 16)
    assert theta[0, THETA_LOGS].item() == pytest.approx(5 * math.log(0.99))  # 0.99^logs → exp(logs′)
    assert torch.equal(localiser_estimator(_Fixed())(torch.zeros(1, 3, 8, 8)), torch.arange(16.0)[None])
    with pytest.raises(ValueError, match="landmarks"):
        fitting_estimator(stn)(torch.zeros(1, 3, 8, 8), None, None)
    fixed = frontal_estimator(stn)(torch.zeros(3, 3, 224, 224))
    assert fixed.shape == (3, 16) and torch.equal(fixed[0], fixed[2]) and fixed[0, :3].abs().sum() == 0
    with torch.no_grad():
        lm = stn.generator.landmarks(stn.generator(fixed[:1]).points)[0]
    centre = (lm.amin(0) + lm.amax(0)) / 2
    assert torch.allclose(centre, torch.tensor([112.5, 112.5]), atol=1.0)  # the landmark box is centred
    assert float(lm[:, 0].max() - lm[:, 0].min()) == pytest.approx(120.0, abs=3.0)  # the reference face width


# ---------------------------------------------------------------------------------------------- real photos
def _bbt(shared_data):
    root = shared_data / "faces_identities" / "face_api_js_bbt"
    if not (root / "landmarks_dlib68.json").is_file():
        pytest.skip(f"faces_identities photos not found under {root}")
    return root


def test_photo_folder_gives_one_average_per_person(shared_data, stn):
    root = _bbt(shared_data)
    source = folder_subjects(root)
    assert len(source.names) == 8 and len(source) == 40
    res = average_subjects(stn, source, fitting_estimator(stn, n_iter=20), keep=True)
    avs = res.averages()
    assert sorted(a.name for a in avs.values()) == sorted(source.names.values())
    assert all(a.n_images == 5 and 0.3 < a.coverage <= 1.0 for a in avs.values())
    w, m, ids = res.averagers[G].stack()
    for normalise in ("none", "standardise"):
        sc = correspondence_score(w, m, ids, normalise=normalise)
        assert sc.within < sc.between, (normalise, sc.within, sc.between)
    two = folder_subjects(root, subjects=["amy", 3], n_images=2)
    assert two.counts() == {0: 2, 3: 2}


def _write_umdfaces_fixture(tmp_path, render_model):
    """Three subjects (ids 7, 9, 11) of synthetic faces pasted into larger photos, and their batch CSV."""
    from PIL import Image

    batch = tmp_path / "umdfaces_batch1"
    header = ["SUBJECT_ID", "FILE", "FACE_X", "FACE_Y", "FACE_WIDTH", "FACE_HEIGHT"]
    header += [f"P{k}X" for k in range(1, 22)] + [f"P{k}Y" for k in range(1, 22)] + [f"VIS{k}" for k in range(1, 22)]
    rows, files = [], {}
    plan = {7: ("Ann_One", 0, 3), 9: ("Bob_Two", 1, 4), 11: ("Cid_Three", 2, 2)}
    for sid, (name, synth, count) in plan.items():
        (batch / name).mkdir(parents=True)
        for k, index in enumerate(synthetic_subject_indices(synth, count, n_subjects=3)):
            s = generate_sample(render_model, index, 0, n_subjects=3)
            ox, oy = 30 + 10 * k, 50 - 7 * k
            canvas = np.zeros((300, 320, 3), dtype=np.uint8) + 40
            canvas[oy : oy + 224, ox : ox + 224] = np.clip(s["image"].numpy().transpose(1, 2, 0) * 255, 0, 255)
            rel = f"{name}/{name}_{k}.png"
            Image.fromarray(canvas).save(batch / rel)
            files.setdefault(sid, []).append(str(batch / rel))
            lm = s["landmarks21"].numpy().astype(np.float64)
            x0, y0 = lm[:, 0] - 1 + ox, 224 - lm[:, 1] + oy
            vis = s["vis21"].numpy()
            rows.append([sid, rel, ox + 40, oy + 40, 140, 150, *np.round(x0, 2), *np.round(y0, 2), *vis.astype(int)])
    path = batch / "umdfaces_batch1_ultraface.csv"
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        out.writerows(rows)
    return path, files


def test_umdfaces_path_selects_crops_and_averages(tmp_path, render_model, stn):
    from mmstn.data.umdfaces import UMDFaces

    path, files = _write_umdfaces_fixture(tmp_path, render_model)
    source = umdfaces_subjects(tmp_path, [9, "ann one"], n_images=3)
    assert source.names == {9: "Bob Two", 7: "Ann One"} and source.counts() == {9: 3, 7: 3}
    ds = UMDFaces(path)
    batches = list(source)
    keys = [k for b in batches for k in b.keys]
    images = torch.cat([b.images for b in batches])
    for key, image in zip(keys, images, strict=True):
        assert torch.equal(image, ds.load(int(key))["image"])  # cropped exactly as the loader does
    chosen = {str(ds.records[int(k)].image_path) for k in keys}
    assert chosen == set(files[9][:3]) | set(files[7])
    res = average_subjects(stn, source, fitting_estimator(stn, n_iter=10))
    avs = res.averages()
    assert set(avs) == {7, 9} and avs[9].n_images == 3 and avs[7].n_images == 3
    assert avs[9].name == "Bob Two" and avs[9].coverage > 0.3
    names_file = tmp_path / "names.txt"
    names_file.write_text("# id,name\n11,Cid Three\n9,Bob Two\n")
    assert read_subject_names(names_file) == {11: "Cid Three", 9: "Bob Two"}
    only = umdfaces_subjects(path, ["Cid Three"], names=names_file)
    assert only.counts() == {11: 2}
    with pytest.raises(ValueError, match="unknown subject"):
        umdfaces_subjects(path, ["Nobody"])


# ---------------------------------------------------------------------------------------------- figures, widget
def test_figures_and_widget(synthetic_result, grid_model):
    from mmstn.viz.average_figures import (
        fig_correspondence,
        fig_masked_vs_plain,
        fig_psnr_curve,
        fig_sharpening,
        fig_subject_averages,
        fig_subject_outputs,
        guide_rows,
    )
    from mmstn.viz.average_widgets import average_explorer

    av = synthetic_result.averagers[G]
    rows = guide_rows(grid_model)
    assert rows["eyes"] < rows["nose"] < rows["mouth"] < G
    w, m, _ids = av.stack([0], 2)
    truths = {s: true_flattened_texture(grid_model, s) for s in range(4)}
    results = synthetic_result.averages()
    figs = [
        fig_subject_outputs(synthetic_result.examples[0], list(w), list(m), rows, results[0].average, "subject 0"),
        fig_subject_averages(list(results.values()), [truths[s] for s in results], ncols=2),
        fig_sharpening(av.snapshots[0], truths[0], {1: 10.0}),
        fig_masked_vs_plain(results[0]),
        fig_psnr_curve((1, 2, 4, 8), {"true θ": np.random.default_rng(0).random((4, 4))}),
        fig_correspondence({"true θ": correspondence_score(*av.stack())}),
    ]
    import matplotlib.pyplot as plt

    for f in figs:
        assert isinstance(f, Figure)
        plt.close(f)
    ex = average_explorer(av, synthetic_result.names, truths)
    first = ex.widget.children[0]
    assert first is ex.n_images and ex.n_images.max == 8
    before = ex.image.value
    ex.n_images.value = 2
    assert ex.image.value != before and "2 images" in ex.status.value and "PSNR" in ex.status.value
    masked = ex.image.value
    ex.mode.value = "plain"
    assert ex.image.value != masked
    ex.subject.value = 3
    assert ex.renders >= 4


# ---------------------------------------------------------------------------------------------- detector
def test_dlib_detector_reproduces_the_reference_landmarks(shared_data, tmp_path):
    pytest.importorskip("dlib", reason="optional extra: pip install dlib-bin face-recognition-models")
    from PIL import Image

    from mmstn.data.folder import FolderFaces
    from mmstn.detect import DlibDetector, detect_folder, dlib_available

    if not dlib_available():
        pytest.skip("face-recognition-models (the 68-point predictor) is not installed")
    root = _bbt(shared_data)
    reference = json.loads((root / "landmarks_dlib68.json").read_text())
    det = DlibDetector()
    for person in ("amy", "raj"):
        (tmp_path / person).mkdir()
        for k in (1, 2):
            rel = f"{person}/{person}{k}.png"
            Image.open(root / rel).save(tmp_path / rel)  # a scratch copy outside the repository
    entries = detect_folder(tmp_path, detector=det)
    assert sorted(entries) == ["amy/amy1.png", "amy/amy2.png", "raj/raj1.png", "raj/raj2.png"]
    for rel, entry in entries.items():
        assert np.array_equal(np.array(entry["landmarks_ibug68_xy"]), np.array(reference[rel]["landmarks_ibug68_xy"]))
        assert entry["identity"] == rel.split("/")[0]
    found = det(Image.open(root / "amy/amy1.png"))[0]
    assert found.points21.shape == (21, 2) and found.visible21[[12, 16]].sum() == 0 and found.visible21.sum() == 19
    ds = FolderFaces(tmp_path, landmarks="landmarks_dlib68.json")
    assert ds.subject_names == ["amy", "raj"] and len(ds) == 4
    assert det(np.zeros((80, 80, 3), dtype=np.uint8)) == []


def test_nan_in_one_subject_does_not_spread_to_the_others():
    g = 4
    w = torch.rand(4, 3, g, g, generator=torch.Generator().manual_seed(0))
    m = torch.ones(4, 1, g, g)
    w_bad = w.clone()
    w_bad[1] = float("nan")  # subject 7's second image is broken
    m_bad = m.clone()
    clean, dirty = SubjectAverager(g), SubjectAverager(g)
    clean.add(w, m, [5, 7, 5, 9])
    dirty.add(w_bad, m_bad, [5, 7, 5, 9])
    a, b = clean.results(), dirty.results()
    for s in (5, 9):
        torch.testing.assert_close(b[s].average, a[s].average)
        assert torch.isfinite(b[s].average).all()


def test_nan_under_the_mask_is_ignored_in_the_masked_sum():
    g = 4
    w = torch.rand(2, 3, g, g, generator=torch.Generator().manual_seed(1))
    m = torch.ones(2, 1, g, g)
    m[0, :, 0, 0] = 0
    w_bad = w.clone()
    w_bad[0, :, 0, 0] = float("nan")  # invisible pixel: its value must not matter
    a, b = SubjectAverager(g), SubjectAverager(g)
    a.add(w, m, [1, 1])
    b.add(w_bad, m, [1, 1])
    torch.testing.assert_close(b.results()[1].average, a.results()[1].average)
