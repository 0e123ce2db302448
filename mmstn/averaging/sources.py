"""Where the faces to average come from: batches of :class:`FaceBatch` from rendered synthetic subjects, a
folder with one subfolder per person, or chosen UMDFaces subjects.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmstn.data.errors import DataFormatError
from mmstn.data.folder import FolderFaces
from mmstn.data.synthetic import SceneDistribution, ThetaDistribution, generate_sample, subject_parameters
from mmstn.data.umdfaces import UMDFaces
from mmstn.errors import ShapeError


@dataclass
class FaceBatch:
    """A batch of face crops of known subjects.

    Attributes:
        images: (B, 3, H, W) float32 in [0, 1].
        subject_ids: (B,) int64.
        landmarks: (B, 21, 2) AFLW-21 in the label frame, or None.
        vis: (B, 21) landmark visibility, or None.
        theta: (B, 6 + D) true θ with s = exp(logs) (synthetic sources), or None.
        keys: one identifier per image (sample index, file).
    """

    images: torch.Tensor
    subject_ids: torch.Tensor
    landmarks: torch.Tensor | None = None
    vis: torch.Tensor | None = None
    theta: torch.Tensor | None = None
    keys: list[str] = field(default_factory=list)


class SubjectSource:
    """Images of chosen subjects, loaded lazily and batched (iterate for :class:`FaceBatch` es).

    Args:
        plan: (subject id, item key) per image, in the order they are used.
        load: key → sample dict (``image``, optional ``landmarks21``, ``vis21``, ``theta``).
        names: subject id → display name.
        batch_size: images per batch (a batch may hold several subjects).
        min_landmarks: drop images with fewer visible landmarks (0: keep all).
        padded: the crops may reach outside their photos (black padding): :func:`average_subjects` then
            leaves out cells that sample exactly-black pixels.

    Attributes:
        n_skipped: images dropped during the last iteration (unreadable, or too few landmarks).
    """

    def __init__(self, plan: Sequence[tuple[int, Any]], load: Callable[[Any], dict[str, torch.Tensor]],
                 names: Mapping[int, str], batch_size: int = 16, min_landmarks: int = 0,
                 padded: bool = False) -> None:
        self.plan = list(plan)
        self.padded = bool(padded)
        self.load = load
        self.names = dict(names)
        self.batch_size = int(batch_size)
        self.min_landmarks = int(min_landmarks)
        self.n_skipped = 0

    def __len__(self) -> int:
        return len(self.plan)

    @property
    def subject_ids(self) -> list[int]:
        """The subjects, in order of first appearance."""
        return list(dict.fromkeys(s for s, _ in self.plan))

    def counts(self) -> dict[int, int]:
        """subject id → planned number of images."""
        out: dict[int, int] = {}
        for s, _ in self.plan:
            out[s] = out.get(s, 0) + 1
        return out

    def __iter__(self) -> Iterator[FaceBatch]:
        self.n_skipped = 0
        pending: list[tuple[int, Any, dict[str, torch.Tensor]]] = []
        for s, key in self.plan:
            try:
                item = self.load(key)
            except DataFormatError as exc:
                warnings.warn(f"skipping an unreadable face: {exc}", stacklevel=2)
                self.n_skipped += 1
                continue
            if self.min_landmarks and ("vis21" not in item or int((item["vis21"] > 0).sum()) < self.min_landmarks):
                self.n_skipped += 1
                continue
            pending.append((s, key, item))
            if len(pending) == self.batch_size:
                yield _collate(pending)
                pending = []
        if pending:
            yield _collate(pending)


def _collate(items: list[tuple[int, Any, dict[str, torch.Tensor]]]) -> FaceBatch:
    def opt(name: str) -> torch.Tensor | None:
        if all(name in it for _, _, it in items):
            return torch.stack([it[name] for _, _, it in items]).float()
        return None

    return FaceBatch(
        images=torch.stack([it["image"] for _, _, it in items]).float(),
        subject_ids=torch.tensor([s for s, _, _ in items], dtype=torch.int64),
        landmarks=opt("landmarks21"),
        vis=opt("vis21"),
        theta=opt("theta"),
        keys=[str(k) for _, k, _ in items],
    )


# ---------------------------------------------------------------------------------------------- synthetic
def synthetic_subject_indices(subject_id: int, n_images: int, seed: int = 0, n_subjects: int = 100,
                              start: int = 0) -> list[int]:
    """The first ``n_images`` sample indices ≥ ``start`` of the synthetic dataset (``seed``, ``n_subjects``)
    that show subject ``subject_id``, in increasing order.

    :func:`mmstn.data.synthetic.draw_parameters` draws the subject first, as
    ``default_rng([seed, index]).integers(n_subjects)``; the same draw is repeated here, and
    :func:`synthetic_subjects` checks every rendered sample's subject against it.
    """
    if not 0 <= subject_id < n_subjects:
        raise ValueError(f"subject_id={subject_id} must lie in [0, n_subjects={n_subjects})")
    out: list[int] = []
    i = int(start)
    limit = start + 1000 * max(n_subjects, 1) * max(n_images, 1)
    while len(out) < n_images and i < limit:
        if int(np.random.default_rng([int(seed), i]).integers(n_subjects)) == subject_id:
            out.append(i)
        i += 1
    return out


def synthetic_subjects(model, subjects: Sequence[int], n_images: int, *, seed: int = 0, n_subjects: int = 100,
                       dist=None, scene=None, image_size: int = 224, batch_size: int = 16) -> SubjectSource:
    """Built-in (or any model's) synthetic subjects, each rendered in ``n_images`` random poses.

    The identity (shape α_id and texture β) of subject ``s`` depends only on (``seed``, ``s``)
    (:func:`mmstn.data.synthetic.subject_parameters`); ``n_subjects`` decides which sample indices show it
    (:func:`synthetic_subject_indices`). Images are :func:`mmstn.data.synthetic.generate_sample`: random pose,
    expression, light, background and occluders, with the true θ (s = exp(logs)) and the 21 landmarks.

    Args:
        model: the model to render (e.g. ``builtin_model().subset(5, 5)``, whose θ fits the grid model
            ``builtin_grid_model(G, 5, 5)``), with ``landmarks["aflw21"]`` and a texture basis.
        subjects: subject ids in [0, n_subjects).
        n_images: images per subject.
        seed, n_subjects, dist, scene, image_size: the synthetic dataset's settings.
        batch_size: images per batch.
    """
    dist = ThetaDistribution() if dist is None else dist
    scene = SceneDistribution() if scene is None else scene
    plan = [(int(s), i) for s in subjects
            for i in synthetic_subject_indices(int(s), n_images, seed, n_subjects)]
    expected = {i: s for s, i in plan}

    def load(index: int) -> dict[str, torch.Tensor]:
        sample = generate_sample(model, index, seed, dist, scene, n_subjects, image_size)
        if int(sample["subject_id"]) != expected[index]:
            raise RuntimeError(f"synthetic sample {index} shows subject {int(sample['subject_id'])}, not "
                               f"{expected[index]}: mmstn.data.synthetic changed how it draws subjects")
        return sample

    return SubjectSource(plan, load, {int(s): f"subject {int(s)}" for s in subjects}, batch_size)


def true_flattened_texture(grid_model, subject_id: int, seed: int = 0, dist=None, scene=None) -> torch.Tensor:
    """The true albedo of a synthetic subject on the G×G grid, (3, G, G) in [0, 1].

    ``grid_model.albedo(β)`` (the grid model's resampled texture basis) clipped to [0, 1] as the renderer
    does, arranged row-major: cell (row, col) = grid vertex row·G + col. Unlit: a flattened image is this
    times the shading, so compare with ``match_gain`` (:func:`texture_psnr`).
    """
    dist = ThetaDistribution() if dist is None else dist
    scene = SceneDistribution() if scene is None else scene
    _, beta = subject_parameters(grid_model, int(subject_id), int(seed), dist, scene)
    albedo = grid_model.albedo(torch.as_tensor(beta, dtype=grid_model.dtype)).clamp(0.0, 1.0)
    g = math.isqrt(grid_model.n_vertices)
    if g * g != grid_model.n_vertices:
        raise ShapeError(f"model {grid_model.name!r} with {grid_model.n_vertices} vertices is not a grid model")
    return albedo.reshape(g, g, 3).permute(2, 0, 1).float().contiguous()


# ---------------------------------------------------------------------------------------------- real photos
def _crop_source(dataset, names: Mapping[int, str], subjects: Sequence[int] | None, n_images: int | None,
                 batch_size: int, min_landmarks: int) -> SubjectSource:
    groups = dataset.subject_indices()
    chosen = [s for s in groups if s >= 0] if subjects is None else [int(s) for s in subjects]
    missing = [s for s in chosen if s not in groups]
    if missing:
        raise ValueError(f"no faces of subject(s) {missing} (available: {sorted(k for k in groups if k >= 0)[:20]} …)")
    plan = [(s, int(i)) for s in chosen for i in groups[s][:n_images]]
    return SubjectSource(plan, dataset.load, {s: names.get(s, f"subject {s}") for s in chosen}, batch_size,
                         min_landmarks, padded=True)


def folder_subjects(root: str | Path, landmarks: str | Path | None = "landmarks_dlib68.json", *,
                    subjects: Sequence[int | str] | None = None, n_images: int | None = None, crop=None,
                    batch_size: int = 16, min_landmarks: int = 3) -> SubjectSource:
    """Your own photos: ``root/<person>/*.jpg`` with a landmarks JSON (:class:`mmstn.data.folder.FolderFaces`).

    Args:
        root: the folder, one subfolder per person.
        landmarks: the JSON (path, or name inside ``root``) with 68- or 21-point landmarks per photo; write
            one with :func:`mmstn.detect.detect_folder` when you have none.
        subjects: person names or ids (default: everyone).
        n_images: at most this many photos per person (the first in file order).
        crop: :class:`~mmstn.data.crop.CropRule` (default: the loader's).
        batch_size: images per batch.
        min_landmarks: photos with fewer visible landmarks are skipped (counted in ``n_skipped``).
    """
    ds = FolderFaces(root, landmarks=landmarks, crop=crop)
    names = dict(enumerate(ds.subject_names))
    ids = None if subjects is None else _resolve_subjects(subjects, names)
    return _crop_source(ds, names, ids, n_images, batch_size, min_landmarks)


def read_subject_names(path: str | Path) -> dict[int, str]:
    """A subject-name list: one ``id,name`` (or ``id<TAB>name`` / ``id name``) per line; ``#`` comments.

    Returns:
        id → name.
    """
    out: dict[int, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for sep in (",", "\t", " "):
            if sep in line:
                head, name = line.split(sep, 1)
                break
        else:
            continue
        try:
            out[int(head.strip())] = name.strip().strip('"')
        except ValueError:
            continue  # a header line
    return out


def _resolve_subjects(subjects: Sequence[int | str], names: Mapping[int, str]) -> list[int]:
    by_name = {v.lower().replace("_", " "): k for k, v in names.items()}
    out = []
    for s in subjects:
        if isinstance(s, (int, np.integer)):
            out.append(int(s))
            continue
        key = str(s).strip().lower().replace("_", " ")
        if key not in by_name:
            raise ValueError(f"unknown subject name {s!r}; known names start with {sorted(names.values())[:10]}")
        out.append(by_name[key])
    return out


def umdfaces_subjects(source: str | Path | Sequence[str | Path] | None = None,
                      subjects: Sequence[int | str] | None = None, *,
                      names: Mapping[int, str] | str | Path | None = None, n_images: int | None = None,
                      crop=None, batch_size: int = 16, min_landmarks: int = 3) -> SubjectSource:
    """Chosen UMDFaces subjects, cropped as :class:`mmstn.data.umdfaces.UMDFaces` does (keypoint box ×1.87).

    Args:
        source: a batch CSV, several, or a folder of them (default ``data/umdfaces``).
        subjects: SUBJECT_ID values, or names (resolved through ``names``); default: every subject.
        names: id → name, or a name-list file (:func:`read_subject_names`); by default a subject's name is
            the first folder of its FILE paths when the batch stores photos in per-person folders.
        n_images: at most this many faces per subject (the first in CSV order).
        crop: :class:`~mmstn.data.crop.CropRule` (default: the loader's).
        batch_size: images per batch.
        min_landmarks: faces with fewer visible keypoints are skipped.
    """
    ds = UMDFaces(source, crop=crop)
    if isinstance(names, (str, Path)):
        names = read_subject_names(names)
    if names is None:
        names = {}
        for f in ds.faces:
            parent = f.image_path.parent.name
            if f.subject_id not in names and parent and not parent.lower().startswith("umdfaces"):
                names[f.subject_id] = parent.replace("_", " ")
    ids = None if subjects is None else _resolve_subjects(subjects, names)
    return _crop_source(ds, names, ids, n_images, batch_size, min_landmarks)
