"""Plotting helpers and widget factories, driven without a browser (their callbacks are plain Python)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from mmstn.models.ict import ict_face_model
from mmstn.models.morphable import sample_alpha
from mmstn.transforms import rotation_from_angles
from mmstn.viz.mesh import draw_mesh
from mmstn.viz.model_figures import fig_components, fig_landmarks, fig_random_faces, fig_three_views
from mmstn.viz.widgets import model_explorer


def test_rotation_from_angles_signs() -> None:
    nose = np.array([0.0, 0.0, 1.0])
    assert (rotation_from_angles(yaw=30) @ nose)[0] > 0.4  # positive yaw: nose to the viewer's right
    assert (rotation_from_angles(pitch=30) @ nose)[1] < -0.4  # positive pitch: R_x rotates +z towards -y
    r = rotation_from_angles(yaw=20, pitch=-10, roll=5)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)


def test_draw_mesh_culls_back_faces() -> None:
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0], [3, 0, 0], [2, 1, 0]], dtype=float)
    front, back = [0, 1, 2], [3, 5, 4]  # counter-clockwise from the front vs clockwise
    fig, ax = plt.subplots()
    draw_mesh(ax, v, np.array([front, back]))
    (coll,) = ax.collections
    assert len(coll.get_paths()) == 1
    np.testing.assert_allclose(coll.get_paths()[0].vertices[:3], v[front, :2])
    plt.close(fig)


def test_model_figures_have_the_expected_panels() -> None:
    model = ict_face_model()
    for fig, n_axes in [
        (fig_three_views(model), 3),
        (fig_components(model, "identity", n=2), 6 + 2),  # + one colour bar per row
        (fig_components(model, "expression", n=1), 3 + 1),
        (fig_landmarks(model), 2),
        (fig_random_faces(model, n=3), 3),
    ]:
        assert len(fig.axes) == n_axes
        plt.close(fig)
    with pytest.raises(ValueError, match="kind="):
        fig_components(model, "texture")


def _panel_pixels(fig, ax) -> np.ndarray:
    """The RGB pixels (H, W, 3) in [0, 1] inside ``ax`` of the drawn ``fig``."""
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())[..., :3] / 255.0
    x0, y0, x1, y1 = ax.get_window_extent().extents
    h = rgba.shape[0]
    return rgba[int(h - y1) : int(h - y0), int(x0) : int(x1)]


def test_component_panels_show_opposite_signed_displacements() -> None:
    # The figure claims that −3σ and +3σ move the surface in opposite directions: the red-minus-blue colour
    # of the two panels must be anti-correlated (with |displacement| colouring they were identical).
    model = ict_face_model()
    fig = fig_components(model, "identity", n=1)
    minus, plus = (_panel_pixels(fig, fig.axes[i]) for i in (0, 2))
    h, w = min(minus.shape[0], plus.shape[0]), min(minus.shape[1], plus.shape[1])
    minus, plus = minus[:h, :w], plus[:h, :w]
    face = (minus.min(-1) < 0.97) & (plus.min(-1) < 0.97)  # drawn on both panels (background is white)
    assert face.mean() > 0.2
    rb_minus = (minus[..., 0] - minus[..., 2])[face]
    rb_plus = (plus[..., 0] - plus[..., 2])[face]
    assert np.corrcoef(rb_minus, rb_plus)[0, 1] < -0.5
    plt.close(fig)


def test_sample_alpha_is_seeded_prior_draw() -> None:
    model = ict_face_model()
    a, b = sample_alpha(model, 4000, seed=3), sample_alpha(model, 4000, seed=3)
    assert torch.equal(a, b)
    assert a.shape == (4000, model.n_components)
    assert a.std().item() == pytest.approx(1.0, abs=0.03)


def test_model_explorer_sliders_redraw_the_face() -> None:
    model = ict_face_model()
    explorer = model_explorer(model, n_identity=2, n_expression=1)
    assert [s.description for s in explorer.sliders] == ["α id 1", "α id 2", "α exp 1"]
    before, renders = explorer.image.value, explorer.renders
    explorer.sliders[2].value = 2.0
    assert explorer.renders == renders + 1
    assert explorer.image.value != before and explorer.image.value[:4] == b"\x89PNG"
    expected = torch.zeros(model.n_components)
    expected[model.n_identity] = 2.0
    assert torch.equal(explorer.alpha(), expected)
    explorer.yaw.value = -60.0
    assert explorer.renders == renders + 2


def test_log_axes_are_labelled_with_plain_numbers() -> None:
    from mmstn.viz.style import plain_log_ticks

    fig, ax = plt.subplots()
    ax.semilogy([1, 2, 3], [1.2, 2.0, 3.5])  # less than a decade: matplotlib labels minor ticks "2×10⁰"
    plain_log_ticks(ax)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels(minor=True) + ax.get_yticklabels() if t.get_text()]
    assert labels and "2" in labels
    assert not any("10^" in t or "times" in t or "×" in t for t in labels), labels
    plt.close(fig)
