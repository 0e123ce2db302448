"""The grid layer: projected 2-D points of the G×G grid model → sampling grid (``vl_nngrid.m``).

Frames and conventions pinned here (docs/conventions.md §2.3–2.4)
-----------------------------------------------------------

**Label frame** (where the STN's 2-D points, the translation t and the landmark labels live): the
authors' MATLAB convention, x = 1-based column index, y **up**, y = H + 1 − (1-based row). A pixel
centre therefore has integer label coordinates; the top-left pixel centre is (1, H), the bottom-right
one (W, 1). Conversion to 0-based pixel coordinates (x0 = column, y0 = row, y down)::

    x0 = x − 1,    y0 = H − y          (:func:`labels_to_pixels`)
    x  = x0 + 1,   y  = H − y0         (:func:`pixels_to_labels`)

**Sampler frame**: ``F.grid_sample(..., align_corners=True)`` reads 0-based pixel position
x0 = (g_x + 1)/2·(W − 1), y0 = (g_y + 1)/2·(H − 1) (−1 and +1 are the centres of the first and last
pixels), exactly MatConvNet's ``vl_nnbilinearsampler``.

The grid layer maps label coordinates (X, Y) to the sampler's normalised (g_x, g_y) = (grid[..., 0],
grid[..., 1]). Two choices, :class:`GridFrame`:

* ``"matconvnet"`` — the authors' normalisation, generalised from 224 with W/2 and H/2:
  g_x = (X − W/2)/(W/2), g_y = (H/2 − Y)/(H/2). For 224×224 this is (X − 112)/112 and (112 − Y)/112.
  A label point is then read at x0 = X·(W − 1)/W and y0 = (H − Y)·(H − 1)/H: up to 1 px away from
  the pixel it names (x0 = X − 1 for X = W, but x0 = 0 for X = 0).
* ``"pixel"`` — exact: a label point is read at the pixel it names, x0 = X − 1 and y0 = H − Y, i.e.
  g = 2·x0/(W − 1) − 1 on the converted coordinates:
  g_x = (X − (W + 1)/2)/((W − 1)/2), g_y = ((H + 1)/2 − Y)/((H − 1)/2).

Both are affine, g_x = (X − o_x)/d_x and g_y = (o_y − Y)/d_y (:func:`grid_coefficients`). The input
points are always in the label frame; the frame only picks how they are normalised.

**Grid layout**: vertex k = row·G + col of the grid model (row 0 at the top of the output image = the
forehead, v = 1; col 0 on the left, u = 0) becomes output pixel (row, col): ``grid[b, row, col] =
(g_x, g_y)`` of vertex row·G + col, a plain row-major reshape.

**Grid triangulation** (:func:`grid_triangles`): two triangles per cell, counter-clockwise seen from
the front (the model frame is y up, so "up" is row − 1). With TL = row·G + col, TR = TL + 1,
BL = TL + G, BR = BL + 1 the cell (row, col) holds, in this order,

    triangle 2·c     = (TL, BL, TR)
    triangle 2·c + 1 = (BR, TR, BL)          with c = row·(G − 1) + col,

so the diagonal runs from BL to TR. The authors' faces, (TL, TR, BL) and (BR, BL, TR), are the same
triangles with the last two corners swapped (clockwise).

Derivative of the grid layer: dX = dg_x/d_x, dY = −dg_y/d_y, reshaped back to (B, N, 2) (the
authors' "transpose of the mapping times 1/112").
"""

from __future__ import annotations

import math
from enum import Enum

import torch
from torch import nn

from mmstn.errors import ShapeError
from mmstn.layers._common import Backend, check_backend, check_tensor

__all__ = [
    "GridFrame",
    "GridFunction",
    "GridLayer",
    "grid_coefficients",
    "grid_to_labels",
    "grid_to_pixels",
    "grid_triangles",
    "labels_to_grid",
    "labels_to_pixels",
    "pixels_to_labels",
    "points_to_grid",
]


class GridFrame(str, Enum):
    """How label-frame points are normalised for the sampler."""

    MATCONVNET = "matconvnet"  #: the authors': (X − W/2)/(W/2), (H/2 − Y)/(H/2)
    PIXEL = "pixel"  #: exact: 0-based pixel centres x0 = X − 1, y0 = H − Y, g = 2·x0/(W − 1) − 1


def _hw(image_size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (image_size, image_size) if isinstance(image_size, int) else (int(v) for v in image_size)
    if h < 2 or w < 2:
        raise ValueError(f"image_size must be at least 2×2, got {image_size}")
    return h, w


def grid_coefficients(frame: GridFrame | str, image_size: int | tuple[int, int]) -> tuple[float, float, float, float]:
    """(o_x, d_x, o_y, d_y) such that g_x = (X − o_x)/d_x and g_y = (o_y − Y)/d_y.

    Args:
        frame: :class:`GridFrame` or its value.
        image_size: H = W, or (H, W), pixels of the image that will be sampled.
    """
    h, w = _hw(image_size)
    frame = GridFrame(frame)
    if frame is GridFrame.MATCONVNET:
        return w / 2, w / 2, h / 2, h / 2
    return (w + 1) / 2, (w - 1) / 2, (h + 1) / 2, (h - 1) / 2


def labels_to_pixels(labels: torch.Tensor, image_height: int) -> torch.Tensor:
    """Label frame (1-based column, y up) → 0-based pixel coordinates (column, row; y down).

    Args:
        labels: (..., 2) label coordinates (x, y).
        image_height: H, pixels.

    Returns:
        (..., 2): (x0, y0) = (x − 1, H − y); e.g. the 1-based row is H + 1 − y.
    """
    x, y = labels.unbind(-1)
    return torch.stack([x - 1, image_height - y], -1)


def pixels_to_labels(pixels: torch.Tensor, image_height: int) -> torch.Tensor:
    """0-based pixel coordinates (x0 = column, y0 = row, y down) → label frame: (x0 + 1, H − y0).

    Shapes: (..., 2) → (..., 2). Inverse of :func:`labels_to_pixels`.
    """
    x0, y0 = pixels.unbind(-1)
    return torch.stack([x0 + 1, image_height - y0], -1)


def labels_to_grid(
    labels: torch.Tensor, image_size: int | tuple[int, int], frame: GridFrame | str = GridFrame.PIXEL
) -> torch.Tensor:
    """Normalised sampler coordinates (g_x, g_y) of label-frame points: (..., 2) → (..., 2)."""
    ox, dx, oy, dy = grid_coefficients(frame, image_size)
    x, y = labels.unbind(-1)
    return torch.stack([(x - ox) / dx, (oy - y) / dy], -1)


def grid_to_labels(
    grid: torch.Tensor, image_size: int | tuple[int, int], frame: GridFrame | str = GridFrame.PIXEL
) -> torch.Tensor:
    """Inverse of :func:`labels_to_grid`: (..., 2) normalised → (..., 2) label frame."""
    ox, dx, oy, dy = grid_coefficients(frame, image_size)
    gx, gy = grid.unbind(-1)
    return torch.stack([gx * dx + ox, oy - gy * dy], -1)


def grid_to_pixels(grid: torch.Tensor, image_size: int | tuple[int, int]) -> torch.Tensor:
    """Where ``grid_sample(align_corners=True)`` reads: 0-based (x0, y0) = ((g + 1)/2·(size − 1)).

    Shapes: (..., 2) normalised (g_x, g_y) → (..., 2) pixels (column, row).
    """
    h, w = _hw(image_size)
    gx, gy = grid.unbind(-1)
    return torch.stack([(gx + 1) / 2 * (w - 1), (gy + 1) / 2 * (h - 1)], -1)


def grid_triangles(grid_size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The CCW triangulation of a G×G grid model (see the module docstring for the layout).

    Args:
        grid_size: G ≥ 2.

    Returns:
        (2·(G − 1)², 3) int64, 0-based vertex indices k = row·G + col.
    """
    g = int(grid_size)
    if g < 2:
        raise ValueError(f"grid_size must be at least 2, got {grid_size}")
    rows = torch.arange(g - 1, device=device)
    cols = torch.arange(g - 1, device=device)
    tl = (rows[:, None] * g + cols[None, :]).reshape(-1)
    tr, bl = tl + 1, tl + g
    br = bl + 1
    t1 = torch.stack([tl, bl, tr], -1)
    t2 = torch.stack([br, tr, bl], -1)
    return torch.stack([t1, t2], 1).reshape(-1, 3)


class GridFunction(torch.autograd.Function):
    """(B, N, 2) label points → (B, G, G, 2) grid, with the hand-written backward (dX, dY) = (dg_x/d_x, −dg_y/d_y)."""

    @staticmethod
    def forward(ctx, points: torch.Tensor, coeffs: tuple[float, float, float, float], g: int) -> torch.Tensor:
        ox, dx, oy, dy = coeffs
        ctx.dx, ctx.dy = dx, dy
        x, y = points.unbind(-1)
        return torch.stack([(x - ox) / dx, (oy - y) / dy], -1).view(points.shape[0], g, g, 2)

    @staticmethod
    def backward(ctx, grad_grid: torch.Tensor):
        gx, gy = grad_grid.reshape(grad_grid.shape[0], -1, 2).unbind(-1)
        return torch.stack([gx / ctx.dx, -gy / ctx.dy], -1), None, None


def points_to_grid(
    points: torch.Tensor,
    image_size: int | tuple[int, int],
    frame: GridFrame | str = GridFrame.MATCONVNET,
    grid_size: int | None = None,
    backend: Backend = "analytic",
) -> torch.Tensor:
    """The grid layer: label-frame 2-D points of the grid model → ``grid_sample`` grid.

    Args:
        points: (B, N, 2) label-frame coordinates (1-based column, y up), N = G².
        image_size: H = W, or (H, W), of the image to be sampled.
        frame: :class:`GridFrame` (``"matconvnet"`` or ``"pixel"``).
        grid_size: G; inferred as √N when omitted.
        backend: ``"analytic"`` or ``"autograd"``.

    Returns:
        (B, G, G, 2) normalised (g_x, g_y), for ``F.grid_sample(align_corners=True)``; out-of-image
        points fall outside [−1, 1].
    """
    check_backend(backend)
    check_tensor("points", points, 3, (2,))
    n = points.shape[1]
    g = math.isqrt(n) if grid_size is None else int(grid_size)
    if g * g != n:
        raise ShapeError(f"points must hold G² = {g}² vertices of a grid model, got N = {n}")
    coeffs = grid_coefficients(frame, image_size)
    if backend == "analytic":
        return GridFunction.apply(points, coeffs, g)
    ox, dx, oy, dy = coeffs
    x, y = points.unbind(-1)
    return torch.stack([(x - ox) / dx, (oy - y) / dy], -1).view(points.shape[0], g, g, 2)


class GridLayer(nn.Module):
    """nn.Module wrapper of :func:`points_to_grid` with a fixed G, frame and default image size."""

    def __init__(
        self,
        grid_size: int,
        image_size: int | tuple[int, int] = 224,
        frame: GridFrame | str = GridFrame.MATCONVNET,
        backend: Backend = "analytic",
    ) -> None:
        super().__init__()
        self.grid_size = int(grid_size)
        self.image_size = _hw(image_size)
        self.frame = GridFrame(frame)
        self.backend = check_backend(backend)

    def forward(self, points: torch.Tensor, image_size: int | tuple[int, int] | None = None) -> torch.Tensor:
        size = self.image_size if image_size is None else image_size
        return points_to_grid(points, size, self.frame, self.grid_size, self.backend)

    def extra_repr(self) -> str:
        return f"G={self.grid_size}, image_size={self.image_size}, frame={self.frame.value!r}"
