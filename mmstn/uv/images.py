"""The paper's Figure 3 images: a grid model's geometry image and its flattened colour.

Both take a model that lives on the G×G UV grid (:func:`mmstn.uv.resample.resample_to_grid`): vertex
k = row·G + col, top row v = 1. ``reshape(G, G, 3)`` is then an upright image of the unwrapped face.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mmstn.models.morphable import MorphableModel

__all__ = ["flattened_colour", "geometry_image", "grid_size"]


def grid_size(model: MorphableModel) -> int:
    """G for a model with G² vertices; raises ``ValueError`` for a model that is not on a square grid."""
    G = math.isqrt(model.n_vertices)
    if G * G != model.n_vertices:
        raise ValueError(
            f"model {model.name!r} has {model.n_vertices} vertices, not G² for an integer G; resample it first "
            "with mmstn.uv.resample_to_grid(model, uv, G)"
        )
    return G


def geometry_image(
    grid_model: MorphableModel, alpha: torch.Tensor | None = None, per_channel: bool = True
) -> np.ndarray:
    """xyz of the (mean or α-) shape as an RGB image, shape (G, G, 3), float64 in [0, 1].

    Args:
        grid_model: a model on the G×G grid.
        alpha: optional shape coefficients (D,) (the mean shape if ``None``).
        per_channel: normalise x, y, z each by its own min and max (the paper's look: red grows to the
            viewer's right, green upwards, blue towards the viewer); ``False`` uses one common scale so
            that the relative extents are kept.
    """
    G = grid_size(grid_model)
    X = grid_model.shape(alpha).detach().cpu().double().numpy().reshape(G, G, 3)
    lo = X.reshape(-1, 3).min(axis=0)
    hi = X.reshape(-1, 3).max(axis=0)
    if not per_channel:
        lo, hi = np.full(3, lo.min()), np.full(3, hi.max())
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.clip((X - lo) / span, 0.0, 1.0)


def flattened_colour(grid_model: MorphableModel, beta: torch.Tensor | None = None) -> np.ndarray:
    """Per-vertex albedo (mean, or with texture coefficients ``beta``) as an image (G, G, 3) in [0, 1]."""
    G = grid_size(grid_model)
    if grid_model.colour is None:
        raise ValueError(f"model {grid_model.name!r} has no colour; use a model with per-vertex albedo")
    c = grid_model.albedo(beta).detach().cpu().double().numpy().reshape(G, G, 3)
    return np.clip(c, 0.0, 1.0)
