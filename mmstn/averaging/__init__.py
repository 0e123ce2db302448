"""Per-subject averages of flattened faces (paper Figs. 7 and 8), their sources, estimators and scores.

One module per concept: :mod:`~mmstn.averaging.accumulate`, :mod:`~mmstn.averaging.estimators`,
:mod:`~mmstn.averaging.sources`, :mod:`~mmstn.averaging.pipeline`, :mod:`~mmstn.averaging.scores`; the names
below are re-exported here.

Once the STN has put every image of a person into the same G×G frame, a feature (eye, mouth corner, …)
lands on the same cell whatever the pose, so the flattened outputs of one person can simply be averaged.
Where a cell was hidden (the far cheek of a profile) the STN writes 0 and the mask M says so; averaging those
zeros would darken the texture towards the sides. The averages here are **visibility-normalised**,

    A = Σ_i W_i · M_i / Σ_i M_i        (per cell; 0 and ``seen = False`` where Σ M = 0),

which is what the authors' released averages look like (black exactly where no image ever saw the cell,
docs/conventions.md §7). The **plain mean** Σ W_i / n is kept for comparison.

Pieces:

* :class:`AverageAccumulator` (one stream of outputs) and :class:`SubjectAverager` (one accumulator per
  subject, optional snapshots after 1, 2, 4, … images and optional storage of every output) add batches
  and read the averages at any time, so hundreds of images need no more memory than one batch.
* **Estimators**: any callable ``(images (B, 3, H, W), landmarks (B, 21, 2) | None, vis (B, 21) | None) →
  θ (B, 6 + D)``. :func:`fitting_estimator` fits θ to the landmarks of each image (chapter 4,
  :func:`mmstn.fitting.fit`); :func:`localiser_estimator` wraps a trained network; :func:`default_estimator`
  picks the shipped localiser when :mod:`mmstn.train` provides one, else fitting; :func:`frontal_estimator`
  (one fixed θ for all) is the no-alignment baseline.
* **Sources** (:class:`SubjectSource`, batches of :class:`FaceBatch`): :func:`synthetic_subjects` renders
  built-in subjects in random poses (with their true θ and texture), :func:`umdfaces_subjects` reads chosen
  UMDFaces subjects from the batch CSVs, :func:`folder_subjects` reads a folder with one subfolder per person.
* :func:`average_subjects` runs source → estimator → STN(s) → averagers.
* **Scores**: :func:`texture_psnr` / :func:`psnr_curve` against the true flattened texture
  (:func:`true_flattened_texture`) of a synthetic subject, and :func:`correspondence_score` (distance of two
  outputs of the same person vs. of different people, over the cells both saw) on any set.

Shapes: flattened outputs W are (B, C, G, G), masks M (B, 1, G, G) with values in [0, 1] (the STN's are 0/1).
"""

from __future__ import annotations

from mmstn.averaging._types import Estimator
from mmstn.averaging.accumulate import (
    AverageAccumulator,
    SubjectAverage,
    SubjectAverager,
    masked_average,
    plain_average,
)
from mmstn.averaging.estimators import (
    default_estimator,
    fitting_estimator,
    frontal_estimator,
    load_shipped_localiser,
    localiser_estimator,
    localiser_model_mismatch,
)
from mmstn.averaging.photo import (
    PhotoAverages,
    PhotoSubjects,
    average_photo_subjects,
    photo_score_table,
    photo_subjects,
)
from mmstn.averaging.pipeline import AveragingResult, average_subjects
from mmstn.averaging.scores import psnr_curve, texture_psnr
from mmstn.averaging.sources import (
    FaceBatch,
    SubjectSource,
    folder_subjects,
    read_subject_names,
    synthetic_subject_indices,
    synthetic_subjects,
    true_flattened_texture,
    umdfaces_subjects,
)
from mmstn.scores import CorrespondenceScore, correspondence_score

__all__ = [
    "AverageAccumulator",
    "AveragingResult",
    "CorrespondenceScore",
    "Estimator",
    "FaceBatch",
    "PhotoAverages",
    "PhotoSubjects",
    "SubjectAverage",
    "SubjectAverager",
    "SubjectSource",
    "average_photo_subjects",
    "average_subjects",
    "correspondence_score",
    "default_estimator",
    "fitting_estimator",
    "folder_subjects",
    "frontal_estimator",
    "load_shipped_localiser",
    "localiser_estimator",
    "localiser_model_mismatch",
    "masked_average",
    "photo_score_table",
    "photo_subjects",
    "plain_average",
    "psnr_curve",
    "read_subject_names",
    "synthetic_subject_indices",
    "synthetic_subjects",
    "texture_psnr",
    "true_flattened_texture",
    "umdfaces_subjects",
]
