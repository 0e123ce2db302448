"""Morphable models: the :class:`MorphableModel` type, the ICT FaceKit face shipped with mmstn (MIT, the default),
the built-in cartoon face, mesh tools and file loaders."""

from mmstn.models.authors import load_bfm_uv, read_anl, uv_mirror_map
from mmstn.models.bfm2009 import load_bfm2009
from mmstn.models.bfm2017 import load_bfm2017
from mmstn.models.builtin import BUILTIN_SEED, builtin_model, clear_builtin_cache
from mmstn.models.ict import ict_face_model
from mmstn.models.landmarks import AFLW21_FLIP, AFLW21_NAMES, IBUG68_FLIP, flip_permutation
from mmstn.models.morphable import UNIT_SCALE, MorphableModel, check_units
from mmstn.models.registry import available_models, load_mesh, load_model
from mmstn.models.surrey import load_surrey
from mmstn.models.tddfa import build_paper_model, load_tddfa_expressions, transfer_expressions

__all__ = [
    "AFLW21_FLIP",
    "AFLW21_NAMES",
    "BUILTIN_SEED",
    "IBUG68_FLIP",
    "UNIT_SCALE",
    "MorphableModel",
    "available_models",
    "build_paper_model",
    "builtin_model",
    "check_units",
    "clear_builtin_cache",
    "flip_permutation",
    "ict_face_model",
    "load_bfm2009",
    "load_bfm2017",
    "load_bfm_uv",
    "load_mesh",
    "load_model",
    "load_surrey",
    "load_tddfa_expressions",
    "read_anl",
    "transfer_expressions",
    "uv_mirror_map",
]
