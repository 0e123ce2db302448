"""One call from a morphable model to the G×G grid model the STN needs (embedding + resampling)."""

from __future__ import annotations

import warnings
from dataclasses import replace
from functools import lru_cache
from typing import Literal

import numpy as np

from mmstn.models.builtin import builtin_model
from mmstn.models.ict import ict_face_model
from mmstn.models.morphable import MorphableModel
from mmstn.uv.embedding import symmetric_tutte
from mmstn.uv.resample import GridResampler

__all__ = ["GridCoverageWarning", "builtin_grid_model", "default_grid_model", "make_grid_model"]


class GridCoverageWarning(UserWarning):
    """A model's own UVs leave part of the G×G grid outside the mesh (those cells are snapped)."""


def make_grid_model(
    model: MorphableModel,
    G: int = 112,
    weights: str = "cotan",
    *,
    flattening: Literal["symmetric_tutte", "model_uv"] = "symmetric_tutte",
    verbose: bool = False,
) -> MorphableModel:
    """Flatten ``model`` and resample it onto the G×G grid.

    Args:
        model: a morphable model; it needs a mirror map for ``"symmetric_tutte"`` and ``uv`` for ``"model_uv"``.
        G: grid size (112: the authors' code, 224: the paper).
        weights: ``"cotan"`` (the paper's), ``"mean_value"`` or ``"uniform"`` (``"symmetric_tutte"`` only).
        flattening: ``"symmetric_tutte"`` (default, the paper's flattening, mmstn.uv.embedding) or
            ``"model_uv"``: the model's own UVs (e.g. the authors' BFM UVs or the Surrey texture map).
            Own UVs that do not fill the unit square leave grid cells outside the mesh, which are snapped to
            the nearest triangle; a :class:`GridCoverageWarning` then reports their fraction.
        verbose: print which flattening is used.

    Returns:
        The grid model: N = G² vertices, vertex k = row·G + col.
    """
    if flattening == "model_uv":
        if model.uv is None:
            raise ValueError(f"flattening='model_uv' but model {model.name!r} has no uv; use 'symmetric_tutte'")
        uv = model.uv.detach().cpu().double().numpy()
    elif flattening == "symmetric_tutte":
        if model.mirror is None:
            raise ValueError(
                f"model {model.name!r} has no mirror map, which the symmetric Tutte flattening needs; find one "
                "with mmstn.models.meshtools (mirror map) or pass flattening='model_uv' to use the model's own UVs"
            )
        uv = symmetric_tutte(model, weights=weights).uv  # type: ignore[arg-type]
    else:
        raise ValueError(f"flattening={flattening!r}: use 'symmetric_tutte' or 'model_uv'")
    if verbose:
        extra = f" ({weights} weights)" if flattening == "symmetric_tutte" else ""
        print(f"mmstn: flattening {model.name!r} with {flattening}{extra}")
    resampler = GridResampler.from_uv(uv, model.triangles.cpu().numpy(), G)
    outside = float(np.mean(resampler.snapped))
    if flattening == "model_uv" and outside > 0.01:
        warnings.warn(
            f"make_grid_model: the UVs of model {model.name!r} leave {100 * outside:.1f} % of the {G}x{G} grid "
            "cells outside the mesh; they are snapped to the nearest triangle (smeared borders). "
            "flattening='symmetric_tutte' fills the square",
            GridCoverageWarning,
            stacklevel=2,
        )
    return resampler.resample_model(model, uv)


@lru_cache(maxsize=16)
def _shipped_grid(face: str, G: int, n_identity: int, n_expression: int, weights: str) -> MorphableModel:
    model = ict_face_model() if face == "ict" else builtin_model()
    return make_grid_model(model.subset(n_identity, n_expression), G, weights)


def _fresh(face: str, G: int, n_identity: int, n_expression: int, weights: str) -> MorphableModel:
    m = _shipped_grid(face, int(G), int(n_identity), int(n_expression), weights)
    return replace(m, mean=m.mean.clone(), basis=m.basis.clone())


def builtin_grid_model(
    G: int = 112, n_identity: int = 5, n_expression: int = 5, weights: str = "cotan"
) -> MorphableModel:
    """The cartoon face's paper-sized (5 + 5 components) grid model, cached; returns a fresh copy."""
    return _fresh("builtin", G, n_identity, n_expression, weights)


def default_grid_model(
    G: int = 112, n_identity: int = 5, n_expression: int = 5, weights: str = "mean_value"
) -> MorphableModel:
    """The default face's paper-sized grid model: the shipped ICT FaceKit face (a real human face, MIT),
    5 identity + 5 expression components, flattened by the symmetric Tutte embedding and resampled to G×G.

    Mean-value weights by default: the cotangent weights fold 58 triangles of this mesh over (long thin
    triangles meet the lips at very obtuse angles at the mouth corners), the mean-value weights none.
    Cached; returns a fresh copy (N = G² vertices, vertex k = row·G + col).
    """
    return _fresh("ict", G, n_identity, n_expression, weights)
