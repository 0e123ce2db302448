"""The grid layer: frames, normalisation formulas, label ↔ pixel conversion, layout, triangulation."""

from __future__ import annotations

import pytest
import torch
from _stn_toy_models import backend_grads, one_torch_thread  # noqa: F401

from mmstn.errors import ShapeError
from mmstn.layers.grid import (
    GridFrame,
    GridLayer,
    grid_coefficients,
    grid_to_labels,
    grid_to_pixels,
    grid_triangles,
    labels_to_grid,
    labels_to_pixels,
    pixels_to_labels,
    points_to_grid,
)
from mmstn.layers.visibility import face_normals

GEN = torch.Generator().manual_seed(11)


def label_points(b: int, g: int, lo: float = 0.0, hi: float = 225.0) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(b, g * g, 2, dtype=torch.float64, generator=GEN)


@pytest.mark.parametrize("backend", ["analytic", "autograd"])
def test_matconvnet_normalisation_is_the_spec_formula_exactly(backend):
    pts = label_points(2, 5)
    grid = points_to_grid(pts, 224, "matconvnet", backend=backend)
    x, y = pts[..., 0], pts[..., 1]
    assert torch.equal(grid[..., 0].reshape(2, -1), (x - 112) / 112)
    assert torch.equal(grid[..., 1].reshape(2, -1), (112 - y) / 112)


def test_matconvnet_reads_at_the_documented_pixel():
    pts = label_points(1, 6)
    px = grid_to_pixels(points_to_grid(pts, 224, "matconvnet"), 224).reshape(1, -1, 2)
    torch.testing.assert_close(px[..., 0], pts[..., 0] * 223 / 224, rtol=0, atol=1e-12)
    torch.testing.assert_close(px[..., 1], (224 - pts[..., 1]) * 223 / 224, rtol=0, atol=1e-12)
    # label 0 → centre of the first pixel, 224 → centre of the last (docs/conventions.md §0.4)
    corners = torch.tensor([[[0.0, 224.0], [224.0, 0.0]]], dtype=torch.float64)
    g = labels_to_grid(corners, 224, "matconvnet")
    assert torch.equal(g, torch.tensor([[[-1.0, -1.0], [1.0, 1.0]]], dtype=torch.float64))


@pytest.mark.parametrize("size", [224, (120, 200)])
def test_pixel_frame_reads_the_named_pixel(size):
    h, w = (size, size) if isinstance(size, int) else size
    pts = label_points(2, 4, 1, min(h, w))
    grid = points_to_grid(pts, size, GridFrame.PIXEL)
    pix = labels_to_pixels(pts, h)
    torch.testing.assert_close(grid.reshape(2, -1, 2)[..., 0], 2 * pix[..., 0] / (w - 1) - 1, rtol=0, atol=1e-14)
    torch.testing.assert_close(grid.reshape(2, -1, 2)[..., 1], 2 * pix[..., 1] / (h - 1) - 1, rtol=0, atol=1e-14)
    torch.testing.assert_close(grid_to_pixels(grid, size).reshape(2, -1, 2), pix, rtol=0, atol=1e-12)
    # centres of the corner pixels: label (1, H) is the top-left, (W, 1) the bottom-right
    corners = torch.tensor([[1.0, h], [w, 1.0]], dtype=torch.float64)
    unit = torch.tensor([[-1.0, -1.0], [1.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(labels_to_grid(corners, size, "pixel"), unit)


def test_label_pixel_conversions_round_trip_and_match_the_spec():
    lab = label_points(3, 3)
    pix = labels_to_pixels(lab, 224)
    # 1-based row = H + 1 − y, 1-based column = x
    torch.testing.assert_close(pix[..., 1] + 1, 225 - lab[..., 1], rtol=0, atol=0)
    torch.testing.assert_close(pix[..., 0] + 1, lab[..., 0], rtol=0, atol=0)
    torch.testing.assert_close(pixels_to_labels(pix, 224), lab, rtol=0, atol=1e-13)
    for frame in GridFrame:
        torch.testing.assert_close(grid_to_labels(labels_to_grid(lab, 224, frame), 224, frame), lab, rtol=0, atol=1e-12)


def test_grid_is_a_row_major_reshape():
    g = 4
    pts = label_points(1, g)
    grid = points_to_grid(pts, 224)
    for k in range(g * g):
        row, col = divmod(k, g)
        torch.testing.assert_close(grid[0, row, col], labels_to_grid(pts[0, k], 224, "matconvnet"))


def test_coefficients():
    assert grid_coefficients("matconvnet", 224) == (112, 112, 112, 112)
    assert grid_coefficients("pixel", (100, 50)) == (25.5, 24.5, 50.5, 49.5)


def test_gradcheck_and_hand_backward():
    pts = label_points(2, 3).requires_grad_()
    for frame in GridFrame:
        fn = lambda p, backend, frame=frame: points_to_grid(p, (200, 180), frame, backend=backend)  # noqa: E731
        for backend in ("analytic", "autograd"):
            assert torch.autograd.gradcheck(lambda p, b=backend, f=fn: f(p, b), (pts,))
        g = backend_grads(fn, (pts,))
        torch.testing.assert_close(g["analytic"][0], g["autograd"][0], rtol=0, atol=1e-10)


def test_shape_errors():
    with pytest.raises(ShapeError, match="G²"):
        points_to_grid(torch.zeros(1, 10, 2), 224)
    with pytest.raises(ShapeError, match="points"):
        points_to_grid(torch.zeros(1, 9, 3), 224)
    with pytest.raises(ValueError):
        GridLayer(3, frame="opengl")


def test_grid_triangles_are_ccw_from_the_front_and_cover_every_cell():
    g = 5
    faces = grid_triangles(g)
    assert faces.shape == (2 * (g - 1) ** 2, 3) and faces.dtype == torch.int64
    # a flat grid in the model frame: x = col, y up = −row, z = 0
    rows, cols = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
    flat = torch.stack([cols, -rows, torch.zeros_like(rows)], -1).reshape(1, -1, 3).double()
    n = face_normals(flat, faces)
    assert (n[..., 2] > 0).all() and torch.equal(n[..., 2], torch.ones_like(n[..., 2]))  # area ½ each
    # the authors' faces (TL, TR, BL), (BR, BL, TR) are ours with the last two corners swapped
    assert torch.equal(faces[0], torch.tensor([0, g, 1])) and torch.equal(faces[1], torch.tensor([g + 1, 1, g]))
    # every cell is covered by exactly two triangles, every vertex used
    assert torch.equal(torch.unique(faces), torch.arange(g * g))


def test_image_size_below_two_pixels_is_rejected_for_ints_and_tuples() -> None:
    import pytest as _pytest

    from mmstn.layers.grid import grid_coefficients

    for size in (1, (1, 5), (5, 1)):
        with _pytest.raises(ValueError, match="at least 2"):
            grid_coefficients("pixel", size)
