"""The renderer (:mod:`mmstn.render`): pixel frame, winding, z-buffer, interpolation, posing, shading, visibility."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmstn.errors import ShapeError
from mmstn.layers.visibility import occlusion_visibility, unoccluded
from mmstn.models.ict import ict_face_model
from mmstn.render import (
    Lighting,
    composite,
    lambert_sh,
    pose_vertices,
    rasterize,
    render_colours,
    render_face,
    render_sh,
    renderer_for,
    shade_vertices,
)
from mmstn.theta import Theta, make_theta


@pytest.fixture(scope="module")
def model():
    return ict_face_model().subset(5, 5)


def _theta(yaw_deg: float = 35.0, logs: float = math.log(0.67)) -> torch.Tensor:
    return make_theta(
        r=torch.tensor([[0.1, math.radians(yaw_deg), -0.05]], dtype=torch.float64),
        t=torch.tensor([[110.0, 115.0]], dtype=torch.float64),
        logs=torch.tensor([[logs]], dtype=torch.float64),
        alpha=0.5 * torch.ones(1, 10, dtype=torch.float64),
    )


# ------------------------------------------------------------------------------------------ raster
def test_pixel_frame_is_zero_based_x_right_y_down():
    # a small triangle around pixel centre (column 7, row 3), counter-clockwise in y-up (clockwise here)
    tri = np.array([[0, 1, 2]])
    pts = np.array([[6.5, 2.5, 0.0], [6.5, 3.5, 0.0], [7.6, 3.0, 0.0]])
    frag = rasterize(pts, tri, 10, 12)
    assert frag.face.shape == (10, 12)
    assert frag.mask[3, 7] and frag.mask.sum() == 1, np.argwhere(frag.mask)


def test_backface_culling_follows_the_winding():
    # front face: counter-clockwise in the model's y-up frame = negative signed area in y-down pixels
    pts = np.array([[1.0, 1.0, 0.0], [1.0, 8.0, 0.0], [8.0, 1.0, 0.0]])
    front, back = np.array([[0, 1, 2]]), np.array([[0, 2, 1]])
    assert rasterize(pts, front, 10, 10, cull_backfaces=True).mask.sum() > 20
    assert rasterize(pts, back, 10, 10, cull_backfaces=True).mask.sum() == 0
    assert rasterize(pts, back, 10, 10).mask.sum() == rasterize(pts, front, 10, 10).mask.sum()


def test_z_buffer_keeps_the_nearer_triangle():
    square = np.array([[0.0, 0.0], [9.0, 0.0], [0.0, 9.0], [9.0, 9.0]])
    pts = np.concatenate([np.c_[square, np.full(4, -1.0)], np.c_[square, np.full(4, 2.0)]])
    tri = np.array([[0, 2, 1], [1, 2, 3], [4, 6, 5], [5, 6, 7]])
    for order in (tri, tri[::-1].copy()):
        frag = rasterize(pts, order, 10, 10)
        faces = order[frag.face[frag.mask]]
        assert (faces >= 4).all()  # the depth-2 square (nearer: larger depth) wins wherever both cover
        assert np.allclose(frag.depth[frag.mask], 2.0)


def test_interpolation_is_exact_for_linear_values():
    rng = np.random.default_rng(0)
    pts = np.array([[0.5, 0.5, 0.0], [0.5, 30.0, 0.0], [30.0, 0.5, 0.0]])
    tri = np.array([[0, 1, 2]])
    coef = rng.normal(size=(3, 2))  # value = a·x + b·y + c per channel
    vals = np.stack([coef[0, c] * pts[:, 0] + coef[1, c] * pts[:, 1] + coef[2, c] for c in range(2)], 1)
    frag = rasterize(pts, tri, 32, 32)
    img = render_colours(frag, tri, vals, background=-9.0)
    ys, xs = np.nonzero(frag.mask)
    want = np.stack([coef[0, c] * xs + coef[1, c] * ys + coef[2, c] for c in range(2)], 1)
    np.testing.assert_allclose(img[ys, xs], want, atol=1e-9)
    assert (img[~frag.mask] == -9.0).all()
    bg = np.full((32, 32, 2), 5.0)
    out = composite(img, frag.mask, bg)
    assert (out[~frag.mask] == 5.0).all() and np.array_equal(out[frag.mask], img[frag.mask])


# ------------------------------------------------------------------------------------------ posing
@pytest.mark.parametrize("scale_base", ["exp", "0.99"])
def test_numpy_posing_equals_the_torch_pose(model, scale_base):
    theta = _theta(logs=math.log(0.67) if scale_base == "exp" else -40.0)
    points, rotated, s = pose_vertices(model.to(dtype=torch.float64), theta, scale_base)
    p2, r2, s2 = renderer_for(model).pose(theta[0].numpy(), scale_base)
    np.testing.assert_allclose(p2, points[0].numpy(), atol=1e-9)
    np.testing.assert_allclose(r2, rotated[0].numpy(), atol=1e-9)
    assert s2 == pytest.approx(float(s[0, 0]), rel=1e-12)


def test_render_face_lands_the_vertices_where_the_label_frame_says(model):
    theta = _theta(yaw_deg=0.0)
    face = render_face(model, theta)
    # label frame (1-based column, y up) → pixel (0-based, y down): row = H − y, column = x − 1
    tip = int(torch.argmax(model.mean[:, 2]))  # nose tip: the frontmost vertex
    x, y = face.points[tip].tolist()
    row, col = round(224 - y), round(x - 1)
    assert face.mask[row, col] and face.visible[tip]
    assert abs(float(face.fragments.depth[row, col]) - float(face.fragments.depth[face.mask].max())) < 3.0


def test_a_theta_renders_the_same_in_either_scale_base(model):
    """A Theta carries its convention: written in the authors' base it poses and renders the same face."""
    paper = Theta.from_tensor(_theta(), "exp")
    code = paper.with_scale_base("0.99")
    assert not torch.equal(code.logs, paper.logs)
    a, b = render_face(model, paper), render_face(model, code)
    torch.testing.assert_close(a.points, b.points, atol=1e-9, rtol=0)
    assert np.array_equal(a.mask, b.mask)
    for base in ("exp", "0.99"):  # a tensor argument is read in scale_base; a Theta in its own convention
        p, _, s = pose_vertices(model.to(dtype=torch.float64), code, base)
        torch.testing.assert_close(p[0], a.points.double(), atol=1e-4, rtol=0)  # a.points is float32
        assert float(s) == pytest.approx(0.67, rel=1e-12)
    with pytest.raises(ShapeError, match="one face at a time"):
        render_face(model, Theta.cat([paper, paper]))


# ------------------------------------------------------------------------------------------ shading
def test_lambert_shading_formula():
    n = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    albedo = np.full((3, 3), 0.5)
    light = Lighting(ambient=0.2, diffuse=0.6, direction=(0.0, 0.0, 2.0))
    rgb = shade_vertices(n, albedo, light, gain=(1.0, 2.0, 0.5))
    np.testing.assert_allclose(rgb[:, 0], 0.5 * np.array([0.8, 0.2, 0.2]))
    np.testing.assert_allclose(rgb[:, 1], np.clip(1.0 * np.array([0.8, 0.2, 0.2]), 0, 1))
    np.testing.assert_allclose(rgb[:, 2], 0.25 * np.array([0.8, 0.2, 0.2]))


def test_rendered_pixels_are_the_shaded_vertex_colours(model):
    r = renderer_for(model)
    light = Lighting(direction=(0.4, 0.2, 1.0))
    out = r.render(_theta()[0].numpy(), light=light, background=np.full((224, 224, 3), 0.3))
    np.testing.assert_allclose(out.colours, shade_vertices(out.normals, r.colour, light))
    assert (out.image[~out.fragments.mask] == 0.3).all()
    assert np.isclose(np.linalg.norm(out.normals, axis=1), 1.0).mean() > 0.999
    sh = r.render(_theta()[0].numpy(), light=lambert_sh(light))  # order-2 SH of the same light: close
    m = out.fragments.mask
    assert np.abs(sh.image[m] - out.image[m]).mean() < 0.03


def test_render_sh_checks_its_inputs(model):
    with pytest.raises(ValueError, match="sh"):
        render_sh(model, _theta(), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="albedo"):
        render_sh(model, _theta(), lambert_sh(), torch.zeros(5, 3))


# ------------------------------------------------------------------------------------------ visibility
def test_visibility_is_the_exact_ray_cast(model):
    theta = _theta(yaw_deg=60.0)
    face = render_face(model, theta)
    _, rotated, _ = pose_vertices(model.to(dtype=torch.float64), theta)
    ref = occlusion_visibility(rotated[0], model.triangles, backface_culling=True).numpy()
    pix_x, pix_y = face.points[:, 0].numpy() - 1, 224 - face.points[:, 1].numpy()
    inside = (pix_x >= 0) & (pix_x <= 223) & (pix_y >= 0) & (pix_y <= 223)
    assert np.array_equal(face.visible, ref & inside)
    assert 0.2 < face.visible.mean() < 0.9  # at 60° yaw the far cheek is hidden, not everything


def test_unoccluded_on_a_subset_equals_the_full_ray_cast(model):
    _, rotated, _ = pose_vertices(model.to(dtype=torch.float64), _theta(yaw_deg=70.0))
    v, f = rotated[0].numpy(), model.triangles.numpy()
    full = unoccluded(v, f)
    q = np.random.default_rng(1).choice(len(v), 300, replace=False)
    q = np.r_[q, q[:5]]  # repeated queries are answered each time
    assert np.array_equal(unoccluded(v, f, query=q), full[q])
    assert (~full).sum() > 100  # the test must see occluded vertices
