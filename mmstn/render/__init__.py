"""The renderer: rasteriser, shading, and the two things mmstn renders.

* :mod:`mmstn.render.raster` — triangles in the pixel frame → the nearest surface per pixel (z-buffer);
* :mod:`mmstn.render.shading` — per-vertex colour: ambient + Lambert (:class:`Lighting`) or spherical harmonics;
* :mod:`mmstn.render.mesh` — a morphable model posed by θ (:class:`MeshRenderer`, :func:`render_face`,
  :func:`render_sh`): the synthetic data, test subjects, figures and the quick start;
* :mod:`mmstn.render.grid` — per-grid-vertex colours where the STN samples them (:func:`render_grid_colours`):
  reconstructions rendered back into the image.

Pixel frame: 0-based pixel centres, x to the right (column), y down (row); depth larger = nearer.
"""

from mmstn.render.grid import GridRender, render_grid_colours
from mmstn.render.mesh import (
    MeshRender,
    MeshRenderer,
    RenderedFace,
    SHRender,
    pose_vertices,
    render_face,
    render_sh,
    renderer_for,
)
from mmstn.render.raster import Fragments, composite, rasterize, render_colours
from mmstn.render.shading import (
    SH_CONSTANTS,
    SH_IRRADIANCE_FACTORS,
    SH_NAMES,
    Lighting,
    lambert_sh,
    sh_basis,
    sh_shading,
    shade_vertices,
)

__all__ = [
    "SH_CONSTANTS",
    "SH_IRRADIANCE_FACTORS",
    "SH_NAMES",
    "Fragments",
    "GridRender",
    "Lighting",
    "MeshRender",
    "MeshRenderer",
    "RenderedFace",
    "SHRender",
    "composite",
    "lambert_sh",
    "pose_vertices",
    "rasterize",
    "render_colours",
    "render_face",
    "render_grid_colours",
    "render_sh",
    "renderer_for",
    "sh_basis",
    "sh_shading",
    "shade_vertices",
]
