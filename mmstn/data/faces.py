"""Annotated face photos → 224 × 224 crops with landmarks: the dataset shared by the real-data loaders.

Each loader (:mod:`~mmstn.data.aflw`, :mod:`~mmstn.data.umdfaces`, :mod:`~mmstn.data.pts`,
:mod:`~mmstn.data.folder`) turns its upstream format into :class:`FaceRecord` s — the photo's path and its
landmarks in **0-based pixel coordinates of the photo** (x = column, y = row, y down; NaN = not
annotated) — and :class:`FaceCrops` cuts the crops with a :class:`~mmstn.data.crop.CropRule`.

``dataset[i]`` is a dict of tensors with the keys of the synthetic data (:mod:`mmstn.data.synthetic`) minus
the ground truth only a renderer knows (θ, mask):

* ``image``: float32 (3, S, S), RGB in [0, 1];
* ``landmarks21``: float32 (21, 2), label frame of the crop (1-based column, y up); (0, 0) when missing;
* ``vis21``: float32 (21,), the annotation's visibility / confidence, 0 when missing;
* ``subject_id``: int64 (), −1 when the source has no identities (AFLW, 300-W);
* ``landmarks68``, ``vis68``: (68, 2), (68,), only when every record has a 68-point markup.

Missing photos are dropped when the dataset is built (counted in ``n_missing``); a face that cannot be
cropped is skipped when it is read — a photo that cannot be decoded, landmarks or a face rectangle far
outside the photo or infinite (:func:`mmstn.data.crop.implausible_annotation`), a crop rule the face's
annotation cannot satisfy — the next good face is returned instead, a warning names the file and the
annotation, and ``n_unreadable`` counts it (per process) — so an epoch never stops on a bad file.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from mmstn.data.crop import CropRule, crop_face, crop_points, implausible_annotation
from mmstn.data.errors import DataFormatError
from mmstn.data.images import open_image
from mmstn.data.markup import ibug68_to_aflw21

__all__ = ["FaceCrops", "FaceRecord"]


@dataclass
class FaceRecord:
    """One annotated face in a photo.

    Attributes:
        image_path: the photo.
        points: float64 (L, 2), L = 21 (AFLW order) or 68 (iBUG), 0-based photo pixels, NaN = missing.
        visible: float64 (L,), visibility or confidence in [0, 1].
        markup: ``"aflw21"`` or ``"ibug68"``.
        subject_id: identity, −1 when unknown.
        rect: face rectangle (x, y, w, h) in 0-based photo pixels, or None.
        key: a stable identifier (AFLW face_id, file name, …) used in messages and splits.
    """

    image_path: Path
    points: np.ndarray
    visible: np.ndarray
    markup: Literal["aflw21", "ibug68"] = "aflw21"
    subject_id: int = -1
    rect: tuple[float, float, float, float] | None = None
    key: str = ""


class FaceCrops(torch.utils.data.Dataset):
    """Crops of annotated faces (module docstring: the returned dict, skipping rules).

    Args:
        records: the faces.
        crop: :class:`~mmstn.data.crop.CropRule` (default ``CropRule()``: landmark box, ×1.87, 224 px).
    """

    def __init__(self, records: Sequence[FaceRecord], crop: CropRule | None = None) -> None:
        present = [r for r in records if Path(r.image_path).is_file()]
        self.n_missing = len(records) - len(present)
        if self.n_missing:
            warnings.warn(
                f"{type(self).__name__}: {self.n_missing} of {len(records)} faces skipped, their image files are "
                f"missing (first: {next(r.image_path for r in records if not Path(r.image_path).is_file())})",
                stacklevel=2 if type(self) is FaceCrops else 3,
            )
        self.records = present
        self.crop = CropRule() if crop is None else crop
        self.n_unreadable = 0
        self._bad: set[int] = set()
        self.with_68 = bool(present) and all(r.markup == "ibug68" for r in present)

    def __len__(self) -> int:
        return len(self.records)

    def subject_indices(self) -> dict[int, np.ndarray]:
        """subject id → indices of its faces (−1 collects faces without identity)."""
        sid = np.array([r.subject_id for r in self.records], dtype=np.int64)
        return {int(s): np.flatnonzero(sid == s) for s in np.unique(sid)}

    def load(self, i: int) -> dict[str, torch.Tensor]:
        """Face ``i`` without the skipping.

        Raises:
            DataFormatError: an unreadable photo, or an annotation that cannot be cropped (module docstring);
                the message names the photo and the record's key.
        """
        rec = self.records[i]
        image = open_image(rec.image_path)
        size = (image.height, image.width)
        where = f"face {rec.key!r}" if rec.key else None
        problem = implausible_annotation(size, rec.points, rec.rect)
        if problem is not None:
            raise DataFormatError(rec.image_path, problem, row=where, hint="Fix or remove this annotation")
        try:
            box = self.crop.square(size, rec.points, rec.visible, rec.rect, rec.markup)
        except ValueError as exc:  # e.g. source="landmarks" for a face without visible landmarks
            raise DataFormatError(rec.image_path, str(exc), row=where) from exc
        if rec.markup == "ibug68":
            p21, v21 = ibug68_to_aflw21(rec.points, rec.visible)
        else:
            p21, v21 = rec.points, rec.visible
        from PIL import Image

        try:
            img, lm21, vis21 = crop_face(image, box, self.crop.size, p21, v21)
        except (Image.DecompressionBombError, MemoryError, OSError, ValueError) as exc:  # a box Pillow cannot cut
            raise DataFormatError(
                rec.image_path, f"cannot crop the face ({type(exc).__name__}: {exc})", row=where
            ) from exc
        out = {
            "image": img,
            "landmarks21": lm21,
            "vis21": vis21,
            "subject_id": torch.tensor(int(rec.subject_id), dtype=torch.int64),
        }
        if self.with_68:
            out["landmarks68"], out["vis68"] = _crop_points_only(rec.points, rec.visible, box, self.crop.size)
        return out

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        n = len(self)
        if not -n <= int(i) < n:
            raise IndexError(f"index {i} out of range for {n} faces")
        i = int(i) % n
        for step in range(n):
            j = (i + step) % n
            if j in self._bad:
                continue
            try:
                return self.load(j)
            except DataFormatError as exc:
                self._bad.add(j)
                self.n_unreadable += 1
                warnings.warn(f"skipping an unreadable face: {exc}", stacklevel=2)
        raise DataFormatError(self.records[i].image_path, "no face image in this dataset can be read")


def _crop_points_only(points: np.ndarray, visible: np.ndarray, box, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    pts = crop_points(points, box, size)
    vis = np.asarray(visible, dtype=np.float64).copy()
    vis[~np.isfinite(np.asarray(points, dtype=np.float64)).all(axis=1)] = 0.0
    return torch.from_numpy(pts.astype(np.float32)), torch.from_numpy(vis.astype(np.float32))
