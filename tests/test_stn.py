"""The assembled grid generator and STN: configurations, θ validation, gradients, geometry end to end."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from _stn_toy_models import frontal_theta, one_torch_thread, toy_grid_model  # noqa: F401

from mmstn.errors import ShapeError
from mmstn.layers.grid import GridFrame, grid_to_pixels, labels_to_grid, labels_to_pixels
from mmstn.layers.scale import ScaleBase
from mmstn.stn import STN3DMM, GridGenerator, STNConfig, make_theta, split_theta, theta_size
from mmstn.theta import THETA_ALPHA, THETA_R, THETA_T

G = 6


@pytest.fixture(scope="module")
def model():
    return toy_grid_model(G, n_components=3)


def random_theta(model, batch: int = 2, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t0 = frontal_theta(model, batch)[:, THETA_T]
    r = 0.4 * torch.randn(batch, 3, generator=gen, dtype=torch.float64)
    t = t0 + 5 * torch.randn(batch, 2, generator=gen, dtype=torch.float64)
    logs = 0.3 * torch.randn(batch, generator=gen, dtype=torch.float64)
    alpha = torch.randn(batch, model.n_components, generator=gen, dtype=torch.float64)
    return make_theta(r, t, logs, alpha)


def configs(g: int = G):
    return {
        "faithful": STNConfig.faithful(grid_size=g),
        "paper": STNConfig.paper(grid_size=g),
    }


# ------------------------------------------------------------------------------------ configurations
def test_named_configurations():
    f, p = STNConfig.faithful(), STNConfig.paper()
    assert (f.grid_size, ScaleBase(f.scale_base)) == (112, ScaleBase.MATCONVNET)
    assert GridFrame(f.frame) is GridFrame.MATCONVNET
    assert (p.grid_size, ScaleBase(p.scale_base), GridFrame(p.frame)) == (224, ScaleBase.EXP, GridFrame.PIXEL)
    assert f.scale_rate == math.log(0.99) and p.scale_rate == 1.0
    assert (f.visibility_rule, f.visibility_strict) == ("last_write", False)
    assert (p.visibility_rule, p.visibility_strict) == ("accumulate", True)
    assert STNConfig() == f
    assert STNConfig.paper(grid_size=56).grid_size == 56
    with pytest.raises(ValueError, match="scale_base"):
        STNConfig(scale_base="two")


@pytest.mark.parametrize(("name", "g"), [("faithful", 112), ("paper", 224)])
def test_configs_produce_the_documented_grid_and_scale(name, g):
    model = toy_grid_model(g, n_components=2, dtype=torch.float32)
    cfg = STNConfig.faithful() if name == "faithful" else STNConfig.paper()
    stn = STN3DMM(model, cfg)
    th = frontal_theta(model, 2, logs=2.0)
    out = stn(torch.rand(2, 3, 224, 224), th)
    assert out.flattened.shape == (2, 3, g, g) and out.mask.shape == (2, 1, g, g)
    assert out.points.shape == (2, g * g, 2) and out.landmarks.shape == (2, 21, 2)
    s = stn.generator(th).scale
    want = 0.99**2 if name == "faithful" else math.exp(2)
    torch.testing.assert_close(s, torch.full((2, 1), want), rtol=1e-6, atol=0)


# ---------------------------------------------------------------------------------------- θ checks
def test_theta_layout_and_validation(model):
    assert theta_size(10) == 16
    th = random_theta(model)
    r, t, logs, alpha = split_theta(th, 3)
    assert torch.equal(make_theta(r, t, logs, alpha), th)
    gen = GridGenerator(model, STNConfig.faithful(grid_size=G))
    with pytest.raises(ShapeError, match="theta"):
        gen(make_theta(r, t, logs, alpha[:, :-1]))  # one shape coefficient short
    with pytest.raises(ShapeError, match="theta"):
        gen(th[0])
    bad = th.clone()
    bad[1, THETA_T] = float("nan")
    with pytest.raises(ValueError, match="theta"):
        gen(bad)
    with pytest.raises(ShapeError, match="theta"):
        STN3DMM(model, STNConfig.faithful(grid_size=G))(torch.zeros(3, 1, 8, 8, dtype=torch.float64), th)
    with pytest.raises(ShapeError, match="dtype"):
        gen(th.float())


def test_model_must_be_a_grid_model(model):
    with pytest.raises(ShapeError, match="grid model"):
        GridGenerator(model, STNConfig.faithful(grid_size=G + 1))


# ------------------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("name", ["faithful", "paper"])
@pytest.mark.parametrize("backend", ["analytic", "autograd"])
def test_gradcheck_grid_generator(model, name, backend):
    gen = GridGenerator(model, replace(configs()[name], backend=backend))
    th = random_theta(model).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: gen(x).grid, (th,))
    assert torch.autograd.gradcheck(lambda x: gen.landmarks(gen(x).points), (th,))


@pytest.mark.parametrize("name", ["faithful", "paper"])
def test_hand_written_generator_backward_equals_autograd(model, name):
    th = random_theta(model, 3, seed=4)
    w = torch.randn(3, G, G, 2, dtype=torch.float64)
    grads = []
    for backend in ("analytic", "autograd"):
        gen = GridGenerator(model, replace(configs()[name], backend=backend, trainable_model=True))
        x = th.clone().requires_grad_()
        out = gen(x)
        loss = (out.grid * w).sum() + out.rotated.square().sum() * 1e-3
        grads.append(torch.autograd.grad(loss, [x, gen.morphable.mean, gen.morphable.basis]))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("sampler", ["native", "analytic"])
def test_gradcheck_whole_stn(model, sampler):
    stn = STN3DMM(model, STNConfig.paper(grid_size=G, sampler_backend=sampler))
    image = torch.rand(2, 2, 40, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    th = frontal_theta(model, 2, t=20.0, logs=math.log(0.15))
    th[:, THETA_R] = torch.tensor([[0.1, 0.3, 0.0], [-0.2, 0.1, 0.05]])
    th[:, THETA_ALPHA] = 0.5
    th.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: stn(image, x).flattened, (th,))


# ------------------------------------------------------------------------------------ geometry end to end
@pytest.mark.parametrize("frame", ["pixel", "matconvnet"])
def test_a_ramp_image_reads_back_where_each_vertex_projects(frame):
    """Channel 0 holds the column index, channel 1 the row index: the output tells where it was read."""
    model = toy_grid_model(16, n_components=2)
    stn = STN3DMM(model, STNConfig.paper(grid_size=16, frame=frame))
    rows, cols = torch.meshgrid(torch.arange(224.0), torch.arange(224.0), indexing="ij")
    ramp = torch.stack([cols, rows])[None].double()
    th = frontal_theta(model, 1)
    out = stn(ramp, th)
    # frontal pose, s = 1, t = 112: label point = (x + 112, y + 112) of the mean shape
    torch.testing.assert_close(out.points[0], model.mean[:, :2] + 112, rtol=0, atol=1e-12)
    read = out.sampled[0].reshape(2, -1).T  # (N, 2) pixel position read for each vertex
    if frame == "pixel":
        expected = labels_to_pixels(out.points[0], 224)
    else:
        expected = grid_to_pixels(labels_to_grid(out.points[0], 224, "matconvnet"), 224)
        torch.testing.assert_close(expected[:, 0], out.points[0, :, 0] * 223 / 224)
    torch.testing.assert_close(read, expected, rtol=0, atol=1e-9)
    assert out.mask.all()  # the frontal sphere patch faces the camera everywhere
    torch.testing.assert_close(out.flattened, out.sampled)


def test_a_bright_pixel_lands_on_its_vertex():
    model = toy_grid_model(16, n_components=2)
    stn = STN3DMM(model, STNConfig.paper(grid_size=16))
    th = frontal_theta(model, 1)
    th[0, THETA_ALPHA] = torch.tensor([0.7, -0.4])
    k0 = 7 * 16 + 9
    point = stn.generator(th).points[0, k0]
    px = labels_to_pixels(point, 224)
    col, row = int(px[0].round()), int(px[1].round())
    assert abs(px[0] - col) <= 0.5 and abs(px[1] - row) <= 0.5
    image = torch.zeros(1, 1, 224, 224, dtype=torch.float64)
    image[0, 0, row, col] = 1.0
    out = stn(image, th).flattened[0, 0]
    assert int(out.argmax()) == k0 and divmod(int(out.argmax()), 16) == (7, 9)
    expected = (1 - abs(px[0] - col)) * (1 - abs(px[1] - row))
    assert out[7, 9].item() == pytest.approx(float(expected), abs=1e-12)


def test_mask_and_masking_at_a_turned_pose():
    model = toy_grid_model(24, n_components=2)
    stn = STN3DMM(model, STNConfig.faithful(grid_size=24))
    th = frontal_theta(model, 1)
    th[0, THETA_R] = torch.tensor([0.0, 1.2, 0.0])  # yaw: the viewer's right side of the face turns away
    out = stn(torch.rand(1, 3, 224, 224, dtype=torch.float64) + 1, th)
    assert 0 < out.mask.mean() < 1
    assert out.mask[0, 0, :, 0].all() and not out.mask[0, 0, 12, -1]
    torch.testing.assert_close(out.flattened, out.sampled * out.mask)
    assert not out.mask.requires_grad


def test_landmarks_are_the_selected_points(model):
    stn = STN3DMM(model, STNConfig.faithful(grid_size=G))
    th = random_theta(model)
    out = stn(torch.rand(2, 1, 224, 224, dtype=torch.float64), th)
    assert torch.equal(out.landmarks, out.points[:, model.landmarks["aflw21"]])
    no_lm = model.with_fields(landmarks={})
    out = STN3DMM(no_lm, STNConfig.faithful(grid_size=G))(torch.rand(2, 1, 9, 9).double(), th)
    assert out.landmarks.shape == (2, 0, 2)


def test_trainable_model_gets_gradients(model):
    stn = STN3DMM(model, STNConfig.paper(grid_size=G, trainable_model=True))
    out = stn(torch.rand(2, 3, 224, 224, dtype=torch.float64), random_theta(model))
    (out.flattened.sum() + out.landmarks.sum()).backward()
    assert stn.generator.morphable.basis.grad is not None
    assert stn.generator.morphable.basis.grad.abs().sum() > 0


# ------------------------------------------------------------------ guards on derived quantities and inputs
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_on_cpu_matches_float32(dtype) -> None:
    model32 = toy_grid_model(G, n_components=3, dtype=torch.float32)
    stn = STN3DMM(model32, STNConfig.faithful(grid_size=G))
    theta = frontal_theta(model32, 2)
    theta[:, THETA_R] = torch.tensor([0.0, 0.3, 0.0])  # yaw
    img = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    ref = stn(img, theta).flattened
    out = stn(img.to(dtype), theta).flattened
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, atol=2e-2, rtol=0)


@pytest.mark.parametrize("config, logs", [("paper", 100.0), ("paper", 50.0), ("faithful", -1e5), ("paper", -100.0)])
def test_extreme_log_scale_raises_naming_the_logs_column(model, config, logs) -> None:
    stn = STN3DMM(model, configs()[config])
    theta = frontal_theta(model, 1, logs=logs)
    with pytest.raises(ValueError, match="logs column"):
        stn(torch.rand(1, 3, 224, 224, dtype=torch.float64), theta)


def test_ordinary_log_scales_pass_the_guard(model) -> None:
    stn = STN3DMM(model, configs()["faithful"])
    for logs in (-150.0, 0.0, 150.0):  # 0.99^±150: s from 0.22 to 4.5 px/mm
        out = stn(torch.rand(1, 3, 224, 224, dtype=torch.float64), frontal_theta(model, 1, logs=logs))
        assert torch.isfinite(out.flattened).all()


def test_points_far_outside_the_image_raise(model) -> None:
    stn = STN3DMM(model, configs()["faithful"])
    theta = frontal_theta(model, 1, t=1e9)
    with pytest.raises(ValueError, match="t \\(columns 3:5\\)"):
        stn(torch.rand(1, 3, 224, 224, dtype=torch.float64), theta)


@pytest.mark.parametrize("top, hint", [(255.0, "0-255"), (65535.0, "0-65535")])
def test_images_in_integer_ranges_warn_naming_the_argument(model, top, hint) -> None:
    from mmstn.stn import ImageRangeWarning, check_image_range

    stn = STN3DMM(model, configs()["faithful"])
    img = torch.rand(1, 3, 224, 224, dtype=torch.float64) * top
    with pytest.warns(ImageRangeWarning, match=f"image must hold values in \\[0, 1\\].*{hint}"):
        stn(img, frontal_theta(model, 1))
    with pytest.raises(ValueError, match="photo"):
        check_image_range("photo", img, error=True)
    check_image_range("photo", img / top, error=True)  # [0, 1] passes


def test_a_misspelt_landmark_set_is_an_error_that_lists_the_sets() -> None:
    from mmstn.uv.grid_model import default_grid_model

    grid = default_grid_model(G=16)
    with pytest.raises(KeyError, match="aflw21"):
        STN3DMM(grid, STNConfig.faithful(grid_size=16, landmark_set="aflw_21"))
    off = STN3DMM(grid, STNConfig.faithful(grid_size=16, landmark_set=None))
    assert off.generator.landmark_indices.numel() == 0
