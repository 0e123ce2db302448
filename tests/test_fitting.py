"""Fitting θ by gradient descent (the authors' demo.m): convergence on the default face and on the demo crops."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace

import matplotlib.image
import pytest
import torch
from _stn_toy_models import toy_grid_model

from mmstn.fitting import fit, initial_theta, landmark_error
from mmstn.layers.grid import pixels_to_labels
from mmstn.losses import LossWeights
from mmstn.models import ict_face_model
from mmstn.render import render_face
from mmstn.stn import STN3DMM, STNConfig
from mmstn.theta import THETA_ALPHA, THETA_R, Theta, make_theta
from mmstn.transforms import rotation_error_deg
from mmstn.uv import default_grid_model


@pytest.fixture(scope="module")
def stn() -> STN3DMM:
    return STN3DMM(default_grid_model(112), STNConfig.faithful(scale_base="exp"))


def _true_theta(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    r = torch.tensor([[math.radians(10), math.radians(30), 0.0]])
    alpha = 0.7 * torch.randn(1, 10, generator=g)
    return make_theta(r, torch.tensor([[110.0, 115.0]]), torch.tensor([math.log(0.7)]), alpha)


def _labels(stn: STN3DMM, theta: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return stn.generator.landmarks(stn.generator(theta).points)


def test_fit_converges_from_a_perturbed_start(stn: STN3DMM) -> None:
    true = _true_theta()
    labels = _labels(stn, true)
    p = Theta.from_tensor(true)
    start = make_theta(
        p.r - torch.tensor([[0.0, math.radians(20), 0.0]]),  # 20° yaw error
        p.t + torch.tensor([[10.0, 0.0]]),  # 10 px translation error
        p.logs,
        torch.zeros_like(p.alpha),
    )
    res = fit(stn, torch.zeros(1, 3, 224, 224), labels, theta0=start, n_iter=200)
    pose_err = rotation_error_deg(res.theta[:, THETA_R], true[:, THETA_R]).item()
    assert pose_err < 2.0
    assert res.history["landmark_error"][-1] < 1.0
    assert res.history["landmark_error"][0] > 5.0  # it really started far away
    assert res.iterations <= 250
    assert res.flattened.shape == (1, 3, 112, 112) and res.mask.shape == (1, 1, 112, 112)


def test_initial_theta_recovers_scale_and_translation_of_a_frontal_mean_face(stn: STN3DMM) -> None:
    t = torch.tensor([[100.0, 120.0], [130.0, 95.0]])
    true = make_theta(torch.zeros(2, 3), t, torch.tensor([math.log(0.6), math.log(0.9)]), torch.zeros(2, 10))
    theta0 = initial_theta(stn, _labels(stn, true))
    torch.testing.assert_close(theta0, true, atol=1e-3, rtol=0)


def test_fit_on_a_rendered_face_with_known_theta(stn: STN3DMM) -> None:
    true = _true_theta(seed=1)
    model = ict_face_model().subset(5, 5)
    face = render_face(model, true[0])
    idx = model.landmarks["aflw21"]
    labels = face.points[idx][None]
    vis = torch.from_numpy(face.visible[idx.numpy()]).float()[None]
    assert 0 < vis.sum() < 21  # at 30° yaw the far ear is hidden
    res = fit(stn, face.image[None], labels, vis, n_iter=200)
    assert res.history["landmark_error"][-1] < 1.5
    assert rotation_error_deg(res.theta[:, THETA_R], true[:, THETA_R]).item() < 3.0
    # The fitted flattened face is mostly visible and non-black where visible.
    m = res.mask[0, 0].bool()
    assert m.float().mean() > 0.5
    assert res.flattened[0][:, m].mean() > 0.2


def test_invisible_landmarks_do_not_move_the_fit(stn: STN3DMM) -> None:
    true = _true_theta(seed=2)
    labels = _labels(stn, true)
    vis = torch.ones(1, 21)
    vis[0, 12] = 0
    corrupted = labels.clone()
    corrupted[0, 12] = torch.tensor([float("nan"), 1e6])
    a = fit(stn, torch.zeros(1, 3, 224, 224), labels, vis, n_iter=60)
    b = fit(stn, torch.zeros(1, 3, 224, 224), corrupted, vis, n_iter=60)
    torch.testing.assert_close(a.theta, b.theta)


def test_authors_gradient_descent_reduces_the_loss(stn: STN3DMM) -> None:
    true = _true_theta(seed=3)
    labels = _labels(stn, true)
    res = fit(stn, torch.zeros(1, 3, 224, 224), labels, method="authors", n_iter=50)
    assert res.history["loss"][-1] < res.history["loss"][0]


def test_symmetry_term_is_used_when_weighted(stn: STN3DMM) -> None:
    true = _true_theta(seed=4)
    model = ict_face_model().subset(5, 5)
    face = render_face(model, true[0])
    labels = face.points[model.landmarks["aflw21"]][None]
    res = fit(stn, face.image[None], labels, n_iter=20, weights=LossWeights(symmetry=1.0, siamese=0.0))
    assert len(res.history["loss"]) > 0 and math.isfinite(res.history["loss"][-1])
    with pytest.raises(ValueError, match="method="):
        fit(stn, face.image[None], labels, method="newton")  # type: ignore[arg-type]


def test_fit_on_the_authors_demo_crops(stn: STN3DMM, shared_data) -> None:
    folder = shared_data / "3dmmasstn_official"
    if not (folder / "demodata_landmarks21.json").is_file():
        pytest.skip(f"{folder} has no demodata_landmarks21.json (the authors' demo crops)")
    meta = json.loads((folder / "demodata_landmarks21.json").read_text())
    names = sorted(meta)
    images = torch.stack([torch.from_numpy(matplotlib.image.imread(folder / n)[..., :3].copy()) for n in names])
    images = images.permute(0, 3, 1, 2).float()
    pixels = torch.tensor([meta[n]["landmarks_aflw21_xy_0based"] for n in names], dtype=torch.float32)
    labels = pixels_to_labels(pixels, images.shape[-2])
    res = fit(stn, images, labels, n_iter=300)  # all six crops in one batch
    errors = landmark_error(res.landmarks, labels)
    for name, err in zip(names, errors.tolist(), strict=True):
        print(f"{name}: mean landmark error after fitting {err:.2f} px")
    assert errors.mean().item() < 5.0


def test_siamese_term_with_the_mirrored_image(stn: STN3DMM) -> None:
    from mmstn.data.flip import flip_image

    true = _true_theta(seed=5)
    true[:, THETA_ALPHA] = 0.0
    model = ict_face_model().subset(5, 5)
    face = render_face(model, true[0])
    labels = face.points[model.landmarks["aflw21"]][None]
    res = fit(stn, face.image[None], labels, n_iter=30, method="adam",
              weights=LossWeights(siamese=1.0, symmetry=0.0), mirrored_images=flip_image(face.image)[None])
    assert math.isfinite(res.history["loss"][-1])
    assert res.history["loss"][-1] < res.history["loss"][0]


# ------------------------------------------------------------------ guards
def _toy_stn(n_components: int = 3, landmarks: bool = True) -> STN3DMM:
    model = toy_grid_model(6, n_components=n_components)
    if not landmarks:
        model = replace(model, landmarks={})
    return STN3DMM(model, STNConfig.faithful(grid_size=6))


def test_fit_warns_when_every_landmark_is_invisible() -> None:
    stn = _toy_stn()
    labels = torch.full((1, 21, 2), 100.0, dtype=torch.float64)
    img = torch.rand(1, 3, 224, 224, dtype=torch.float64)
    with pytest.warns(UserWarning, match="no visible landmark"):
        fit(stn, img, labels, torch.zeros(1, 21), n_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # visible landmarks: no warning
        fit(stn, img, labels, torch.ones(1, 21), n_iter=3)


def test_fit_without_basis_or_landmarks_raises() -> None:
    stn = _toy_stn(n_components=0, landmarks=False)
    with pytest.raises(ValueError, match="nothing to fit"):
        fit(stn, torch.rand(1, 3, 224, 224, dtype=torch.float64), torch.zeros(1, 0, 2, dtype=torch.float64))


def test_fit_result_carries_the_stn_convention() -> None:
    stn = _toy_stn()
    labels = torch.full((1, 21, 2), 100.0, dtype=torch.float64) + torch.randn(1, 21, 2, dtype=torch.float64)
    res = fit(stn, torch.rand(1, 3, 224, 224, dtype=torch.float64), labels, n_iter=3)
    p = res.params()
    assert p.convention == stn.config.theta_convention
    torch.testing.assert_close(p.tensor(), res.theta)
    again = fit(stn, torch.rand(1, 3, 224, 224, dtype=torch.float64), labels, theta0=p.with_scale_base("exp"),
                n_iter=0)
    torch.testing.assert_close(again.theta, res.theta)  # a Theta of another base is converted back
