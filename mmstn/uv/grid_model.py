"""One call from a morphable model to the G×G grid model the STN needs (embedding + resampling)."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from mmstn.models.morphable import MorphableModel
from mmstn.uv.embedding import symmetric_tutte
from mmstn.uv.resample import resample_to_grid

__all__ = ["builtin_grid_model", "make_grid_model"]


def make_grid_model(model: MorphableModel, G: int = 112, weights: str = "cotan") -> MorphableModel:
    """Flatten ``model`` with the symmetric Tutte embedding (unless it has UVs) and resample it onto G×G.

    Args:
        model: a morphable model with a mirror map (or with ``uv`` already set, e.g. the authors' BFM UVs).
        G: grid size (112: the authors' code, 224: the paper).
        weights: ``"cotan"`` (the paper's), ``"mean_value"`` or ``"uniform"``.

    Returns:
        The grid model: N = G² vertices, vertex k = row·G + col.
    """
    uv = model.uv if model.uv is not None else symmetric_tutte(model, weights=weights).uv
    return resample_to_grid(model, uv, G)


@lru_cache(maxsize=8)
def _builtin_grid(G: int, n_identity: int, n_expression: int, weights: str) -> MorphableModel:
    from mmstn.models.builtin import builtin_model

    return make_grid_model(builtin_model().subset(n_identity, n_expression), G, weights)


def builtin_grid_model(
    G: int = 112, n_identity: int = 5, n_expression: int = 5, weights: str = "cotan"
) -> MorphableModel:
    """The built-in model's paper-sized (5 + 5 components) grid model, cached; returns a fresh copy."""
    m = _builtin_grid(int(G), int(n_identity), int(n_expression), weights)
    return replace(m, mean=m.mean.clone(), basis=m.basis.clone())
