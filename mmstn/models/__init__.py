"""Morphable models: the :class:`MorphableModel` type, the built-in synthetic model and file loaders."""

from mmstn.models.landmarks import AFLW21_FLIP, AFLW21_NAMES, IBUG68_FLIP, flip_permutation
from mmstn.models.morphable import MorphableModel

__all__ = [
    "AFLW21_FLIP",
    "AFLW21_NAMES",
    "IBUG68_FLIP",
    "MorphableModel",
    "flip_permutation",
]
