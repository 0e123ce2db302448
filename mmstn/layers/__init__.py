"""The layers of the 3DMM-STN (paper Fig. 2), one concept per module, each with a hand-written backward.

In the order θ flows through them:

=====================  ==========================================================================
module                 layer
=====================  ==========================================================================
``morphable``          3DMM: α (B, D) → X = μ + Pα (B, N, 3) mm
``rotation``           axis-angle r (B, 3) → R (B, 3, 3) (Rodrigues, Gallego–Yezzi derivative)
``rotate``             X′ = R X (B, N, 3)
``projection``         orthographic: (B, N, 3) → (B, N, 2)
``scale``              s = base^logs (exp or the authors' 0.99) and Y′ = s·Y
``translation``        Y″ = Y′ + t, label-frame pixels
``selection``          landmarks L = Y″[:, idx]
``grid``               label-frame points → ``grid_sample`` grid (B, G, G, 2); frames and layouts
``sampler``            bilinear sampler (``grid_sample``, the paper's formula, its derivatives)
``visibility``         back-face visibility mask (B, 1, G, G) and an exact occlusion reference
``masking``            W = V ∘ M
=====================  ==========================================================================

Each differentiable layer offers ``backend="analytic"`` (a :class:`torch.autograd.Function` with the
paper's derivative written out) and ``backend="autograd"`` (plain torch operations).
"""

from mmstn.layers._common import BACKENDS, Backend
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
from mmstn.layers.masking import Masking, apply_mask
from mmstn.layers.morphable import MorphableLayer, morphable_shape
from mmstn.layers.projection import OrthographicProjection, orthographic_projection
from mmstn.layers.rotate import Rotate3D, rotate_points
from mmstn.layers.rotation import Rotation, rodrigues, rodrigues_jacobian, skew
from mmstn.layers.sampler import BilinearSampler, bilinear_sample, bilinear_sample_reference
from mmstn.layers.scale import LogScaleToScale, Scale2D, ScaleBase, log_scale_to_scale, scale_2d
from mmstn.layers.selection import LandmarkSelection, select_vertices
from mmstn.layers.translation import Translate2D, translate_2d
from mmstn.layers.visibility import (
    AUTHORS_CORNER_ORDER,
    VisibilityMask,
    backface_visibility,
    grid_normal_z,
    grid_vertex_normals,
    mislabelled_fraction,
    occlusion_visibility,
    vertex_normals,
    visibility_mask,
)

__all__ = [
    "AUTHORS_CORNER_ORDER",
    "BACKENDS",
    "Backend",
    "BilinearSampler",
    "GridFrame",
    "GridLayer",
    "LandmarkSelection",
    "LogScaleToScale",
    "Masking",
    "MorphableLayer",
    "OrthographicProjection",
    "Rotate3D",
    "Rotation",
    "Scale2D",
    "ScaleBase",
    "Translate2D",
    "VisibilityMask",
    "apply_mask",
    "backface_visibility",
    "bilinear_sample",
    "bilinear_sample_reference",
    "grid_coefficients",
    "grid_normal_z",
    "grid_to_labels",
    "grid_to_pixels",
    "grid_triangles",
    "grid_vertex_normals",
    "labels_to_grid",
    "labels_to_pixels",
    "log_scale_to_scale",
    "mislabelled_fraction",
    "morphable_shape",
    "occlusion_visibility",
    "orthographic_projection",
    "pixels_to_labels",
    "points_to_grid",
    "rodrigues",
    "rodrigues_jacobian",
    "rotate_points",
    "scale_2d",
    "select_vertices",
    "skew",
    "translate_2d",
    "vertex_normals",
    "visibility_mask",
]
