"""Rendering per-grid-vertex colours back into the image, exactly where the STN samples them.

The posed grid model is rasterised with its vertices at the STN's own sampling positions
(:func:`mmstn.layers.grid.grid_to_pixels` of the generator's grid), front faces only, z-buffered on the
rotated depth. Rendering the STN's own samples therefore reproduces the input up to two bilinear
interpolations, and rendering a model-based reconstruction puts it exactly over the face it explains
(:func:`mmstn.reconstruction.render_reconstruction`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mmstn.errors import ShapeError, check_finite
from mmstn.layers.grid import grid_to_pixels, grid_triangles
from mmstn.render.raster import Fragments, composite, rasterize, render_colours
from mmstn.runtime import one_thread
from mmstn.stn import STN3DMM
from mmstn.theta import Theta

__all__ = ["GridRender", "check_one_image", "check_one_theta", "grid_mask", "rasterize_grid", "render_grid_colours"]


def check_one_image(image: torch.Tensor) -> torch.Tensor:
    """One image (3, H, W) or (1, 3, H, W), floating point and finite → (3, H, W); else a ShapeError/ValueError."""
    if not isinstance(image, torch.Tensor) or not torch.is_floating_point(image):
        raise ShapeError(
            f"image must be a floating-point tensor (3, H, W) or (1, 3, H, W), got {type(image).__name__}"
        )
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3 or image.shape[0] != 3:
        raise ShapeError(f"image must have shape (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
    check_finite("image", image)
    return image


def check_one_theta(theta: Theta | torch.Tensor, stn: STN3DMM) -> torch.Tensor:
    """One θ for ``stn`` → (6 + D,) in the STN's convention; else a ShapeError/ValueError.

    ``theta`` is a one-image :class:`~mmstn.theta.Theta` (any convention: converted, same s) or a floating
    point (6 + D,) / (1, 6 + D) tensor already in the STN's convention, finite either way.
    """
    d = stn.generator.n_components
    if isinstance(theta, Theta):
        theta = stn.generator.theta_tensor(theta)
    if not isinstance(theta, torch.Tensor) or not torch.is_floating_point(theta):
        raise ShapeError(
            f"theta must be a floating-point tensor ({6 + d},) or (1, {6 + d}), got {type(theta).__name__}"
        )
    if theta.ndim == 2 and theta.shape[0] == 1:
        theta = theta[0]
    if theta.ndim != 1 or theta.shape[0] != 6 + d:
        raise ShapeError(f"theta must have shape ({6 + d},) or (1, {6 + d}) for one image, got {tuple(theta.shape)}")
    check_finite("theta", theta)
    return theta


def grid_mask(mask, G: int) -> torch.Tensor:
    """A (G, G), (1, G, G) or (1, 1, G, G) mask → bool (G, G) (values > 0.5)."""
    m = torch.as_tensor(mask)
    while m.ndim > 2 and m.shape[0] == 1:
        m = m[0]
    if tuple(m.shape) != (G, G):
        raise ShapeError(f"mask must have shape (G, G), (1, G, G) or (1, 1, G, G) with G = {G}, got {tuple(m.shape)}")
    return m.to(torch.float64) > 0.5



@dataclass
class GridRender:
    """Per-grid-vertex colours rendered into the image where the STN samples them.

    Attributes:
        image: float32 (3, H, W): the colours over the background.
        coverage: bool (H, W): pixels covered by a front-facing grid triangle (the nearest one).
        valid: bool (H, W): covered by a triangle whose three vertices are all in ``visible``.
        fragments: the rasterisation.
    """

    image: torch.Tensor
    coverage: np.ndarray
    valid: np.ndarray
    fragments: Fragments


def _grid_colours(colours: torch.Tensor, G: int) -> np.ndarray:
    c = torch.as_tensor(colours)
    if c.ndim == 4 and c.shape[0] == 1:
        c = c[0]
    if tuple(c.shape) == (3, G, G):
        c = c.reshape(3, -1).T
    if tuple(c.shape) != (G * G, 3):
        raise ShapeError(f"colours must have shape (3, G, G) or (G², 3) with G = {G}, got {tuple(colours.shape)}")
    check_finite("colours", c)
    return c.detach().cpu().double().numpy()


def rasterize_grid(stn: STN3DMM, theta: torch.Tensor, image_size: int | tuple[int, int]
                   ) -> tuple[np.ndarray, np.ndarray, Fragments]:
    """Rasterise the STN's grid model posed by one θ, its vertices where the STN samples them.

    Args:
        stn: the STN; theta: (6 + D,) (checked by :func:`check_one_theta`); image_size: H = W or (H, W).

    Returns:
        (float64 (G², 2) pixel positions of the grid vertices (0-based, y down), int (F, 3) grid triangles,
        :class:`~mmstn.render.raster.Fragments` of the front faces, z-buffered on the rotated depth).
    """
    h, w = (image_size, image_size) if isinstance(image_size, int) else (int(image_size[0]), int(image_size[1]))
    dtype = stn.generator.morphable.mean.dtype
    with torch.no_grad():
        gen = stn.generator(theta[None].to(dtype), image_size=(h, w))
    pix = grid_to_pixels(gen.grid[0].reshape(-1, 2).double(), (h, w)).numpy()
    p3 = np.concatenate([pix, gen.rotated[0, :, 2:3].double().numpy()], 1)
    tri = grid_triangles(stn.generator.grid_size).numpy()
    return pix, tri, rasterize(p3, tri, h, w, cull_backfaces=True)


@one_thread()
def render_grid_colours(
    stn: STN3DMM,
    theta: Theta | torch.Tensor,
    colours: torch.Tensor,
    image_size: int | tuple[int, int] = 224,
    *,
    background: torch.Tensor | None = None,
    visible: torch.Tensor | None = None,
) -> GridRender:
    """Render per-grid-vertex colours at θ: vertex k lands on the pixel position the STN samples for it.

    The posed grid model is rasterised (front faces, z-buffer on the rotated depth) with the vertices at
    :func:`mmstn.layers.grid.grid_to_pixels` of the STN's sampling grid, so rendering the STN's own samples
    reproduces the input up to two bilinear interpolations, and rendering a reconstruction puts it exactly
    over the face it explains.

    Args:
        stn: the STN.
        theta: a one-image :class:`~mmstn.theta.Theta`, or (6 + D,) / (1, 6 + D) in the STN's convention.
        colours: (3, G, G) or (G², 3), RGB in [0, 1] (e.g. :attr:`TextureFit.reconstruction_grid`).
        image_size: H = W, or (H, W); taken from ``background`` when given.
        background: optional (3, H, W) image drawn behind (black otherwise).
        visible: optional (G, G) (or (1, G, G)) cells whose colours are meaningful (default: all); decides
            :attr:`GridRender.valid`.

    Returns:
        :class:`GridRender`.
    """
    G = stn.generator.grid_size
    theta = check_one_theta(theta, stn)
    cols = _grid_colours(colours, G)
    if background is not None:
        background = check_one_image(background)
        image_size = (int(background.shape[1]), int(background.shape[2]))
    _, tri, frag = rasterize_grid(stn, theta, image_size)
    bg = None if background is None else background.detach().cpu().double().numpy().transpose(1, 2, 0)
    img = composite(render_colours(frag, tri, cols), frag.mask, bg)
    vis = np.ones(G * G, dtype=bool) if visible is None else grid_mask(visible, G).reshape(-1).numpy()
    ok_tri = vis[tri].all(axis=1)
    valid = frag.mask & ok_tri[np.where(frag.mask, frag.face, 0)]
    return GridRender(
        image=torch.from_numpy(np.clip(img, 0.0, 1.0).transpose(2, 0, 1).astype(np.float32)),
        coverage=frag.mask,
        valid=valid,
        fragments=frag,
    )
