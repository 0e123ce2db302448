"""mmstn: 3D Morphable Models as Spatial Transformer Networks (Bas et al., ICCVW 2017) in PyTorch.

The names most readers need are re-exported here; every concept lives in its own module (see README.md).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mmstn")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"

from mmstn.models import MorphableModel, builtin_model, ict_face_model, load_model
from mmstn.photos import Flattener, evaluate_folder, flatten
from mmstn.stn import STN3DMM, GridGenerator, STNConfig
from mmstn.theta import Theta, ThetaConvention
from mmstn.uv import builtin_grid_model, make_grid_model

__all__ = [
    "STN3DMM",
    "Flattener",
    "GridGenerator",
    "MorphableModel",
    "STNConfig",
    "Theta",
    "ThetaConvention",
    "__version__",
    "builtin_grid_model",
    "builtin_model",
    "evaluate_folder",
    "flatten",
    "ict_face_model",
    "load_model",
    "make_grid_model",
]
