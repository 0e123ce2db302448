"""mmstn: 3D Morphable Models as Spatial Transformer Networks (Bas et al., ICCVW 2017) in PyTorch.

The names a reader needs to follow the method end to end are re-exported here; each lives in its own module
(the layout is in README.md):

* the model and its flattening: :class:`MorphableModel`, :func:`load_model`, :func:`ict_face_model`,
  :func:`builtin_model`, :func:`symmetric_tutte`, :func:`resample_to_grid`, :func:`make_grid_model`,
  :func:`default_grid_model`, :func:`builtin_grid_model`;
* θ and the STN: :class:`Theta`, :class:`ThetaConvention`, :func:`make_theta`, :func:`split_theta`, the column
  slices ``THETA_R``, ``THETA_T``, ``THETA_LOGS``, ``THETA_ALPHA``, :class:`STN3DMM`, :class:`STNConfig`,
  :class:`GridGenerator`;
* images with ground truth and fitting: :func:`render_face`, :class:`Lighting`, :func:`generate_sample`,
  :func:`generate_dataset`, :func:`fit`;
* the localiser: :class:`TrainConfig` (training: :func:`mmstn.train.train`), :func:`load_pretrained`;
* averages and photos: :class:`SubjectAverager`, :func:`average_subjects`, :class:`Flattener`, :func:`flatten`,
  :func:`evaluate_folder`;
* run-time switches: :func:`seed_everything`, :func:`is_smoke`, :func:`smoke_or`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mmstn")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"

from mmstn.averaging import SubjectAverager, average_subjects
from mmstn.data.synthetic import generate_dataset, generate_sample
from mmstn.fitting import fit
from mmstn.models import MorphableModel, builtin_model, ict_face_model, load_model
from mmstn.photos import Flattener, evaluate_folder, flatten
from mmstn.render import Lighting, render_face
from mmstn.runtime import is_smoke, seed_everything, smoke_or
from mmstn.stn import STN3DMM, GridGenerator, STNConfig
from mmstn.theta import THETA_ALPHA, THETA_LOGS, THETA_R, THETA_T, Theta, ThetaConvention, make_theta, split_theta
from mmstn.train import TrainConfig, load_pretrained
from mmstn.uv import builtin_grid_model, default_grid_model, make_grid_model, resample_to_grid, symmetric_tutte

__all__ = [
    "STN3DMM",
    "THETA_ALPHA",
    "THETA_LOGS",
    "THETA_R",
    "THETA_T",
    "Flattener",
    "GridGenerator",
    "Lighting",
    "MorphableModel",
    "STNConfig",
    "SubjectAverager",
    "Theta",
    "ThetaConvention",
    "TrainConfig",
    "__version__",
    "average_subjects",
    "builtin_grid_model",
    "builtin_model",
    "default_grid_model",
    "evaluate_folder",
    "fit",
    "flatten",
    "generate_dataset",
    "generate_sample",
    "ict_face_model",
    "is_smoke",
    "load_model",
    "load_pretrained",
    "make_grid_model",
    "make_theta",
    "render_face",
    "resample_to_grid",
    "seed_everything",
    "smoke_or",
    "split_theta",
    "symmetric_tutte",
]
