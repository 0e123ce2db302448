"""Chapter 2: the symmetric Tutte UV map and the G×G output grid.

* :mod:`mmstn.uv.laplacian` — cotangent, mean-value and uniform edge weights; graph Laplacians.
* :mod:`mmstn.uv.embedding` — :func:`symmetric_tutte`, the paper's half-face flattening, reflected.
* :mod:`mmstn.uv.quality` — fold-overs, angle/area distortion, symmetry error, boundary counts.
* :mod:`mmstn.uv.resample` — :func:`resample_to_grid` and :class:`GridResampler` (grid layout, faces, landmarks).
* :mod:`mmstn.uv.images` — geometry image and flattened colour (paper Fig. 3).
* :mod:`mmstn.uv.authors_uv` — the authors' ``BFM_UV.mat`` and its layout facts.
* :mod:`mmstn.uv.symmetry` — mirror maps from UVs or positions; topology symmetry check.
* :mod:`mmstn.uv.synthetic` — a small exactly symmetric disk mesh for tests and benchmarks.
"""

from mmstn.layers.grid import grid_triangles  # the grid's one triangulation, re-exported beside grid_uv
from mmstn.uv.authors_uv import BFM_UV_FACTS, describe_uv_layout, load_authors_uv
from mmstn.uv.embedding import FoldOverWarning, HoleWarning, UVEmbedding, boundary_loops, symmetric_tutte
from mmstn.uv.grid_model import GridCoverageWarning, builtin_grid_model, default_grid_model, make_grid_model
from mmstn.uv.images import flattened_colour, geometry_image
from mmstn.uv.laplacian import (
    cotangent_laplacian,
    cotangent_weights,
    laplacian_from_weights,
    mean_value_weights,
    uniform_weights,
    weight_matrix,
)
from mmstn.uv.quality import UVQuality, flipped_triangles, square_boundary_counts, symmetry_error, uv_quality
from mmstn.uv.resample import (
    GridResampler,
    grid_mirror,
    grid_uv,
    landmarks_to_grid,
    resample_to_grid,
)
from mmstn.uv.symmetry import mirror_from_positions, mirror_from_uv, mirror_topology_mismatch

__all__ = [
    "BFM_UV_FACTS",
    "FoldOverWarning",
    "GridCoverageWarning",
    "GridResampler",
    "HoleWarning",
    "UVEmbedding",
    "UVQuality",
    "boundary_loops",
    "builtin_grid_model",
    "cotangent_laplacian",
    "cotangent_weights",
    "default_grid_model",
    "describe_uv_layout",
    "flattened_colour",
    "flipped_triangles",
    "geometry_image",
    "grid_mirror",
    "grid_triangles",
    "grid_uv",
    "landmarks_to_grid",
    "laplacian_from_weights",
    "load_authors_uv",
    "make_grid_model",
    "mean_value_weights",
    "mirror_from_positions",
    "mirror_from_uv",
    "mirror_topology_mismatch",
    "resample_to_grid",
    "square_boundary_counts",
    "symmetric_tutte",
    "symmetry_error",
    "uniform_weights",
    "uv_quality",
    "weight_matrix",
]
