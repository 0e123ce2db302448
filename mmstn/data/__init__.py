"""Data: synthetic faces with exact ground truth, the flip augmentation, and loaders for the real datasets.

Every dataset returns dicts of tensors with at least ``image`` (3, 224, 224) float32 RGB in [0, 1],
``landmarks21`` (21, 2) in the label frame (1-based column, y up), ``vis21`` (21,) and ``subject_id`` ()
int64 (−1 when unknown); the synthetic one adds ``theta``, ``mask`` and ``landmarks68``/``vis68``.

Modules:

* :mod:`~mmstn.data.synthetic` — :func:`generate_sample`, :func:`generate_dataset`, :class:`SyntheticFaces`;
* :mod:`~mmstn.data.flip` — horizontal flip of images and landmarks, mirrored θ;
* :mod:`~mmstn.data.crop` — the 224 × 224 face crop rule;
* :mod:`~mmstn.data.aflw`, :mod:`~mmstn.data.umdfaces`, :mod:`~mmstn.data.pts`, :mod:`~mmstn.data.demodata`,
  :mod:`~mmstn.data.folder` — the real sources (AFLW sqlite, UMDFaces CSV, 300-W .pts, the authors' demo
  crops, a folder of photos with a landmarks JSON);
* :mod:`~mmstn.data.markup` (68 → 21 landmarks), :mod:`~mmstn.data.split` (hash split),
  :mod:`~mmstn.data.faces` (the shared crop dataset), :mod:`~mmstn.data.images`, :mod:`~mmstn.data.errors`.
"""

from mmstn.data.aflw import AFLW, read_aflw_sqlite
from mmstn.data.crop import CropRule
from mmstn.data.demodata import DemoDataset, load_demodata
from mmstn.data.errors import DataFormatError, DatasetFolderError
from mmstn.data.flip import flip_image, flip_landmarks, flip_sample, mirror_theta
from mmstn.data.folder import FolderFaces
from mmstn.data.markup import ibug68_to_aflw21
from mmstn.data.pts import PtsFaces, read_pts
from mmstn.data.synthetic import (
    SceneDistribution,
    SyntheticFaces,
    ThetaDistribution,
    generate_dataset,
    generate_sample,
)
from mmstn.data.umdfaces import UMDFaces, read_umdfaces_csv

__all__ = [
    "AFLW",
    "CropRule",
    "DataFormatError",
    "DatasetFolderError",
    "DemoDataset",
    "FolderFaces",
    "PtsFaces",
    "SceneDistribution",
    "SyntheticFaces",
    "ThetaDistribution",
    "UMDFaces",
    "flip_image",
    "flip_landmarks",
    "flip_sample",
    "generate_dataset",
    "generate_sample",
    "ibug68_to_aflw21",
    "load_demodata",
    "mirror_theta",
    "read_aflw_sqlite",
    "read_pts",
    "read_umdfaces_csv",
]
