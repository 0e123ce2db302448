"""Figures, checks and the STN explorer of chapters 3 and 4 (grid generator, sampler, visibility), without a browser."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from mmstn.layers import grid_to_pixels, rodrigues
from mmstn.layers.gradcheck import check_gradients
from mmstn.layers.rotation import naive_rodrigues
from mmstn.models.ict import ict_face_model
from mmstn.render import render_face
from mmstn.stn import STN3DMM, STNConfig, visibility_sweep
from mmstn.theta import make_theta
from mmstn.transforms import angles_to_axis_angle, axis_angle_to_angles, rotation_from_angles
from mmstn.uv import default_grid_model
from mmstn.viz import layer_figures as lf
from mmstn.viz.stn_widgets import default_theta, stn_explorer

G = 24


@pytest.fixture(scope="module")
def grid_model():
    return default_grid_model(G=G)


@pytest.fixture(scope="module")
def model():
    return ict_face_model().subset(5, 5)  # the render model of default_grid_model


@pytest.fixture(scope="module")
def scene(grid_model, model):
    r, t = torch.tensor([[0.0, math.radians(30), 0.0]]), torch.tensor([[112.0, 108.0]])
    alpha = torch.zeros(1, model.n_components)
    theta = make_theta(r, t, torch.tensor([math.log(0.8)]), alpha)  # yaw 30°, s = 0.8 px/mm (exp base)
    face = render_face(model, theta[0])
    stn = STN3DMM(grid_model, STNConfig.paper(grid_size=G))
    stn_code = STN3DMM(grid_model, STNConfig.faithful(grid_size=G))
    theta_code = make_theta(r, t, torch.tensor([math.log(0.8) / math.log(0.99)]), alpha)  # the same s, 0.99^logs
    out = stn(face.image[None], theta)
    out_code = stn_code(face.image[None], theta_code)
    return {"theta": theta, "face": face, "stn": stn, "out": out, "out_code": out_code}


def _n_axes(fig) -> int:
    n = len(fig.axes)
    plt.close(fig)
    return n


# ------------------------------------------------------------------------------------------ checks
class _WrongScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, g):
        return 3 * g  # wrong on purpose


def test_check_gradients_passes_a_correct_layer_and_catches_a_wrong_backward():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    good = check_gradients(lambda be, x: 2 * x, (x,), "double")
    assert good.ok and good.max_diff == 0.0
    assert str(good).splitlines() == [
        "double: max |analytic − autograd| < 1e-10: True",
        "double: gradcheck (finite differences, float64): True",
    ]
    bad = check_gradients(lambda be, x: _WrongScale.apply(x) if be == "analytic" else 2 * x, (x,), "wrong")
    assert not bad.ok and bad.max_diff > 0.1 and not bad.gradcheck
    assert "wrong: max |analytic − autograd| < 1e-10: False" in str(bad)


def test_naive_rodrigues_is_the_layer_away_from_zero_and_nan_at_zero():
    r = torch.tensor([[0.3, -0.5, 0.2], [0.0, 2.0, 0.1]], dtype=torch.float64)
    torch.testing.assert_close(naive_rodrigues(r), rodrigues(r), rtol=0, atol=1e-14)
    assert naive_rodrigues(torch.zeros(1, 3)).isnan().all()


def test_grid_outline_walks_the_border_once():
    g = 4
    pts = torch.stack(torch.meshgrid(torch.arange(g.__float__()), torch.arange(g.__float__()), indexing="ij"), -1)
    outline = lf.grid_outline(pts.reshape(-1, 2), g)  # (row, col) as the "points"
    assert outline.shape == (4 * g - 3, 2)
    np.testing.assert_array_equal(outline[0], outline[-1])
    border = {tuple(p) for p in outline.tolist()}
    assert len(border) == 4 * g - 4 and all(0 in p or g - 1 in p for p in border)


# ------------------------------------------------------------------------------------------ figures
def test_chapter3_figures_have_the_expected_panels(grid_model, scene):
    out, face = scene["out"], scene["face"]
    grid = out.grid[0]
    reads = {"pixel": grid_to_pixels(grid, 224), "matconvnet": grid_to_pixels(scene["out_code"].grid[0], 224)}
    cases = [
        (lf.fig_alpha_effect(grid_model, components=(0, 5)), 2 * 3 + 2),  # + a colour bar per row
        (lf.fig_rotation_effect(grid_model, step=4), 3),
        (lf.fig_rotate_about_origin(out.rotated[0], out.rotated[0] @ rodrigues(torch.tensor([[0.0, 0.5, 0]]))[0].T),
         2),
        (lf.fig_projection(out.rotated[0]), 3),
        (lf.fig_scale_bases(out.rotated[0, :, :2], G), 3),
        (lf.fig_translation(face.image, out.rotated[0, :, :2] * 0.8, G), 1),
        (lf.fig_label_frames(size=4), 1),
        (lf.fig_sampling_grid(face.image, out.points[0], grid, step=4), 5),
        (lf.fig_generator_configs(face.image, out.points[0], reads), 3),
    ]
    for fig, n in cases:
        assert _n_axes(fig) == n


def test_label_frame_figure_marks_the_documented_read_positions():
    fig = lf.fig_label_frames(size=4)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    pixel = lines["read with the 'pixel' normalisation"].get_xydata()
    code = lines["read with the 'matconvnet' normalisation"].get_xydata()
    plt.close(fig)
    cols, rows = np.meshgrid(np.arange(4), np.arange(4))
    centres = np.stack([cols.ravel(), rows.ravel()], -1).astype(float)
    np.testing.assert_allclose(pixel, centres, atol=1e-12)  # the exact frame reads the named pixel
    x, y = centres[:, 0] + 1, 4 - centres[:, 1]  # label coordinates of the centres
    np.testing.assert_allclose(code, np.stack([x * 3 / 4, (4 - y) * 3 / 4], -1), atol=1e-12)  # X(W−1)/W


def test_chapter4_figures_have_the_expected_panels(scene):
    out, out_code, face = scene["out"], scene["out_code"], scene["face"]
    mask = out.mask[0, 0].bool()
    exact = mask.clone().reshape(-1)
    exact[:5] = ~exact[:5]
    curves = {"a": np.linspace(0, 0.05, 5), "b": np.linspace(0.01, 0.03, 5)}
    cases = [
        (lf.fig_align_corners(), 2),
        (lf.fig_sampling(face.image, out.points[0], {"p": out.sampled[0], "m": out_code.sampled[0]}), 4),
        (lf.fig_visibility_compare(mask, exact), 3),
        (lf.fig_visibility_compare(mask, exact, face.image, out.points[0], "t"), 4),
        (lf.fig_mislabelled_sweep(np.linspace(-60, 60, 5), curves), 1),
        (lf.fig_stn_strip(face.image, [out_code, out], ["faithful", "paper"]), 10),
        (lf.fig_stn_strip([face.image], [out], ["one"]), 5),
    ]
    for fig, n in cases:
        assert _n_axes(fig) == n
    fig = lf.fig_visibility_compare(mask, exact)
    assert fig.axes[2].get_title() == f"disagree: {100 * 5 / mask.numel():.1f} % of vertices"
    plt.close(fig)


def test_visibility_sweep(scene):
    sweep = visibility_sweep(scene["stn"], [0.0, 45.0])
    assert set(sweep) == {"yaw", "mislabelled", "visible", "exact_visible"}
    # frontal: the back-face mask is nearly exact; on the real face a few vertices (0.9 % at G = 24, on the
    # outer rim by the ears) face the camera yet are hidden, where the cartoon face hid none
    assert sweep["mislabelled"][0] < 0.02
    assert 0.0 < sweep["mislabelled"][1] < 0.15
    assert sweep["visible"][1] < sweep["visible"][0]


# ------------------------------------------------------------------------------------------ widget
def test_angle_conversions_match_the_viewer_and_the_layer():
    r = angles_to_axis_angle(20.0, -10.0, 5.0)
    np.testing.assert_allclose(rodrigues(torch.tensor(r)[None])[0].numpy(), rotation_from_angles(20, -10, 5),
                               atol=1e-12)
    np.testing.assert_allclose(axis_angle_to_angles(r), (20.0, -10.0, 5.0), atol=1e-9)


def _first_slider(box: widgets.Widget) -> widgets.Widget | None:
    if isinstance(box, widgets.FloatSlider | widgets.IntSlider):
        return box
    for child in getattr(box, "children", ()):
        found = _first_slider(child)
        if found is not None:
            return found
    return None


@pytest.mark.parametrize("config", ["paper", "faithful"])
def test_stn_explorer_sliders_move_theta_and_redraw(grid_model, model, config):
    stn = STN3DMM(grid_model, getattr(STNConfig, config)(grid_size=G))
    ex = stn_explorer(stn, model, n_shape=2)
    assert _first_slider(ex.widget) is ex.sliders["yaw"]
    assert list(ex.sliders) == ["yaw", "pitch", "roll", "scale", "tx", "ty", "alpha1", "alpha2"]
    assert ex.renders == 1 and ex.image.value[:4] == b"\x89PNG"
    assert ex.theta.convention == stn.config.theta_convention
    torch.testing.assert_close(ex.theta.tensor(), default_theta(stn).tensor(), atol=1e-5, rtol=0)  # the rendered pose
    assert ex.output is not None and ex.output.flattened.shape == (1, 3, G, G)

    before_img, before_mask = ex.image.value, ex.output.mask.clone()
    ex.sliders["yaw"].value = 70.0
    assert ex.renders == 2 and ex.image.value != before_img
    torch.testing.assert_close(ex.theta.r[0].double(), torch.tensor(angles_to_axis_angle(70.0, 0.0, 0.0)),
                               atol=1e-6, rtol=0)
    assert not torch.equal(ex.output.mask, before_mask)  # turning the head hides other vertices
    assert "θ: r = (+0.000, +1.222, +0.000)" in ex.status.value

    ex.sliders["scale"].value = 0.5
    assert ex.theta.logs.item() == pytest.approx(math.log(0.5) / stn.config.scale_rate, rel=1e-5)
    ex.sliders["tx"].value = 90.0
    ex.sliders["alpha2"].value = -1.5
    assert ex.theta.t[0, 0].item() == 90.0 and ex.theta.alpha[0, 1].item() == -1.5  # tx, α₂
    assert ex.renders == 5

    target = default_theta(stn, yaw=-20.0, scale=0.7, t=(100.0, 120.0))
    ex.set_theta(target)
    assert ex.renders == 6  # one redraw for all sliders
    torch.testing.assert_close(ex.theta.tensor(), target.tensor(), atol=1e-4, rtol=0)
    ex.set_theta(target.with_scale_base("exp"))  # another convention: the same pose, the same sliders
    torch.testing.assert_close(ex.theta.tensor(), target.tensor(), atol=1e-4, rtol=0)
    assert ex.sliders["scale"].value == pytest.approx(0.7, abs=1e-4)


def test_stn_explorer_on_a_given_image(scene):
    image = scene["face"].image
    ex = stn_explorer(scene["stn"], image, scene["theta"], n_shape=0)
    assert torch.equal(ex.input_image, image) and "alpha1" not in ex.sliders
    before = ex.image.value
    ex.sliders["pitch"].value = 20.0
    assert ex.image.value != before
    with pytest.raises(ValueError, match="MorphableModel or a"):
        stn_explorer(scene["stn"], image[0])
