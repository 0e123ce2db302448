"""Per-person averages of real photos (paper Fig. 8) with θ from the photo path, given landmarks, or a fixed θ.

A folder with one subfolder per person (``root/<person>/*.jpg|png``, the layout of
:class:`mmstn.data.folder.FolderFaces`) is flattened and averaged per person, once per **θ source**:

* ``"photo"``: the photo path as ``python -m mmstn flatten`` runs it, :class:`mmstn.photos.Flattener` with
  its defaults (MediaPipe face box and 468-point face mesh, θ fitted to the mesh on the full default face;
  ``theta_from="combined"``: the CNN localiser's θ where the face mesh fails or the face is turned past
  50°). No annotation needed.
* ``"localiser"``: the same photo path with θ from the shipped CNN localiser alone
  (``Flattener(theta_from="localiser")``; the localiser's own 5 + 5 component model).
* ``"landmarks"``: θ fitted to given 68-point landmarks (``landmarks_dlib68.json`` in ``root``, the schema of
  :mod:`mmstn.data.folder`), on the loaders' landmark crops (:func:`~mmstn.averaging.fitting_estimator`).
* ``"frontal"``: one fixed frontal θ (:func:`~mmstn.averaging.frontal_estimator`) on the photo path's own
  crops: the no-alignment baseline; the difference to ``"photo"`` is what the fitted θ adds beyond the crop.

Every source goes through :func:`~mmstn.averaging.average_subjects`, so the averages are the same
visibility-normalised ones as everywhere in :mod:`mmstn.averaging` (crop pixels outside the photo count as
hidden), and each is scored by the one correspondence metric, :func:`mmstn.scores.correspondence_score`,
with ``normalise="standardise"`` (each output's grey levels standardised over its visible cells: exposure
and contrast differ from photo to photo), as chapter 07 does for real photos.

All sources flatten onto grid models of the same face and the same Tutte embedding (mean-value weights), so
a cell is the same surface point in every average whatever the number of components.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmstn.averaging.accumulate import SubjectAverage
from mmstn.averaging.estimators import fitting_estimator, frontal_estimator
from mmstn.averaging.pipeline import AveragingResult, average_subjects
from mmstn.averaging.sources import SubjectSource
from mmstn.data.errors import DataFormatError
from mmstn.data.folder import FolderFaces
from mmstn.data.images import IMAGE_EXTENSIONS, hwc_uint8_to_chw_float, open_rgb
from mmstn.models.ict import ict_face_model
from mmstn.photos.demo import render_labelled
from mmstn.photos.flatten import CROP_FACTOR, IMAGE_SIZE, Flattener, NoFaceFound
from mmstn.photos.landmarker import crop_square
from mmstn.render import Lighting
from mmstn.scores import CorrespondenceScore, correspondence_score
from mmstn.stn import STN3DMM, STNConfig
from mmstn.theta import THETA_ALPHA, THETA_LOGS, THETA_R, THETA_T, theta_size
from mmstn.train.checkpoint import DEFAULT_LOCALISER, available_pretrained
from mmstn.transforms import axis_angle_to_matrix_np, euler_to_axis_angle_np
from mmstn.uv import default_grid_model

__all__ = [
    "PHOTO_SOURCES",
    "PHOTO_SOURCE_LABELS",
    "PhotoAverages",
    "PhotoSubjects",
    "average_photo_subjects",
    "photo_score_rows",
    "photo_score_table",
    "photo_subjects",
    "stand_in_people",
]

#: the θ sources :func:`average_photo_subjects` knows, in the order they run
PHOTO_SOURCES: tuple[str, ...] = ("photo", "localiser", "landmarks", "frontal")

#: each θ source in words (tables and figures)
PHOTO_SOURCE_LABELS = {
    "photo": "photo path (face mesh + fit)",
    "localiser": "photo path, CNN localiser",
    "landmarks": "fit to the given 68 landmarks",
    "frontal": "fixed frontal θ (no alignment)",
}


# ------------------------------------------------------------------------------------------------ reading
@dataclass
class PhotoSubjects:
    """The photos of a folder-per-person tree.

    Attributes:
        root: the folder.
        names: subject id → person (the subfolder name); ids number the people in sorted name order, as
            :class:`~mmstn.data.folder.FolderFaces` does.
        photos: subject id → that person's photo files, sorted.
        landmarks: the landmarks JSON in ``root`` when there is one, else None.
    """

    root: Path
    names: dict[int, str]
    photos: dict[int, list[Path]]
    landmarks: Path | None = None

    def __len__(self) -> int:
        return sum(len(v) for v in self.photos.values())

    def plan(self) -> list[tuple[int, str]]:
        """(subject id, photo key) for every photo, person by person (keys: :meth:`key`)."""
        return [(s, self.key(p)) for s, ps in self.photos.items() for p in ps]

    def key(self, path: Path) -> str:
        """The photo's path relative to ``root`` with ``/`` separators (the landmarks JSON's keys)."""
        return Path(path).relative_to(self.root).as_posix()


def photo_subjects(root: str | Path, *, landmarks: str | Path | None = "landmarks_dlib68.json",
                   subjects: Sequence[str] | None = None, n_images: int | None = None) -> PhotoSubjects:
    """Read a folder with one subfolder of photos per person.

    Args:
        root: the folder (``root/<person>/*.jpg|png|…``; hidden folders and files are ignored).
        landmarks: the landmarks JSON (a name inside ``root`` or a path); used when the file exists.
        subjects: keep only these people (subfolder names).
        n_images: at most this many photos per person (the first in sorted order).

    Raises:
        FileNotFoundError: ``root`` is not a folder. ValueError: no person folder with a photo, or an
        unknown name in ``subjects``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (one subfolder of photos per person)")
    people: dict[str, list[Path]] = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(f for f in d.iterdir() if f.is_file() and not f.name.startswith(".")
                       and f.suffix.lower() in IMAGE_EXTENSIONS)
        if files:
            people[d.name] = files[:n_images]
    if subjects is not None:
        unknown = [s for s in subjects if s not in people]
        if unknown:
            raise ValueError(f"no photo folder for {unknown}; the people are {sorted(people)}")
        people = {k: v for k, v in people.items() if k in set(subjects)}
    if not people:
        raise ValueError(f"{root}: no subfolder with photos (extensions {', '.join(IMAGE_EXTENSIONS)})")
    names = dict(enumerate(people))
    lm = None
    if landmarks is not None:
        cand = Path(landmarks)
        cand = cand if cand.is_absolute() or cand.is_file() else root / cand
        lm = cand if cand.is_file() else None
    return PhotoSubjects(root, names, {s: people[n] for s, n in names.items()}, lm)


#: the poses (yaw, pitch, roll in degrees) of :func:`stand_in_people`
STAND_IN_POSES: tuple[tuple[float, float, float], ...] = (
    (-30.0, 0.0, 0.0), (0.0, 10.0, -15.0), (30.0, -5.0, 10.0), (15.0, 0.0, 20.0), (-15.0, -10.0, -10.0))


def _render_stand_in(model: Any, pose: tuple[float, float, float], seed: int, size: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """One render: (photo (size, size, 3) uint8, its 68 iBUG points (68, 2), 0-based photo pixels, y down)."""
    import math

    rng = np.random.default_rng(seed)  # the identity: shape and texture
    r = euler_to_axis_angle_np(*(math.radians(a) for a in pose))
    theta = torch.zeros(theta_size(model.n_components), dtype=torch.float64)
    theta[THETA_R] = torch.from_numpy(r)
    theta[THETA_T] = torch.tensor([(size + 1) / 2, (size + 1) / 2 + 10], dtype=torch.float64)
    theta[THETA_LOGS] = math.log(0.5 * size / 150.0)
    theta[THETA_ALPHA][:10] = torch.from_numpy(0.8 * rng.standard_normal(10))
    beta = torch.from_numpy(1.0 * rng.standard_normal(model.texture_basis.shape[0])).to(model.dtype)
    albedo = model.albedo(beta[None])[0].clamp(0, 1)
    light = axis_angle_to_matrix_np(r) @ np.array([0.3, 0.4, 1.0])  # turns with the head: the same shading
    tint = np.random.default_rng([seed, *(int(a) % 360 for a in pose)]).uniform(0.3, 0.7, 3)
    bg = np.broadcast_to(tint, (size, size, 3)).astype(np.float32)  # float32 like the render it is filled by
    photo, marks = render_labelled(model, theta, albedo, Lighting(direction=tuple(float(v) for v in light)), bg, size)
    return photo, marks["ibug68"]

def stand_in_people(root: str | Path, n_people: int = 4,
                    poses: Sequence[tuple[float, float, float]] = STAND_IN_POSES, *, seed: int = 0,
                    size: int = 300) -> Path:
    """Write a folder-per-person tree of **renders** (not photos) for trying the photo averages without photos.

    ``root/render_<k>/pose<j>.png``: person k is an identity of the default face (its shape and texture
    models, drawn from ``(seed, k)``), rendered in each pose over a plain background of a random tint, with a
    ``landmarks_dlib68.json`` of the true 68 points (the schema of :mod:`mmstn.data.folder`). The light turns
    with the head, so two renders of one person differ only by the pose: what the correspondence score of
    their flattened outputs then measures is the alignment alone.

    Args:
        root: the folder to write (created).
        n_people: identities.
        poses: (yaw, pitch, roll) in degrees, one render each.
        seed: the identities' seed.
        size: the renders' side in pixels.

    Returns:
        ``root``.
    """
    import json

    from PIL import Image

    model = ict_face_model()
    root = Path(root)
    marks = {}
    for k in range(int(n_people)):
        folder = root / f"render_{k + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        for j, pose in enumerate(poses):
            photo, lm = _render_stand_in(model, tuple(float(a) for a in pose), int(seed) * 1000 + k, size)
            Image.fromarray(photo).save(folder / f"pose{j}.png")
            marks[f"{folder.name}/pose{j}.png"] = {"landmarks_ibug68_xy": lm.round(2).tolist()}
    (root / "landmarks_dlib68.json").write_text(json.dumps(marks) + "\n")
    return root


# ------------------------------------------------------------------------------------------------ results
@dataclass
class PhotoAverages:
    """One θ source's per-person averages of a photo folder.

    Attributes:
        source: ``"photo"``, ``"localiser"``, ``"landmarks"`` or ``"frontal"``.
        description: how θ was found, in words.
        result: the :class:`~mmstn.averaging.AveragingResult` (every output kept, for the score).
        score: the correspondence score (standardised grey levels) of the kept outputs; None with fewer
            than two people.
        n_photos: photos planned; ``failed`` names those not used and why (no face found, no landmarks).
        seconds_per_photo: wall time of this source per photo used (finding θ, cropping, flattening and
            averaging; reading the photo included, model set-up not).
    """

    source: str
    description: str
    result: AveragingResult
    score: CorrespondenceScore | None
    n_photos: int
    failed: dict[str, str] = field(default_factory=dict)
    seconds_per_photo: float = float("nan")

    @property
    def grid_size(self) -> int:
        return next(iter(self.result.averagers))

    @property
    def averages(self) -> dict[int, SubjectAverage]:
        """subject id → :class:`~mmstn.averaging.SubjectAverage` (named after the person)."""
        return self.result.averages()


def _score(result: AveragingResult) -> CorrespondenceScore | None:
    w, m, ids = next(iter(result.averagers.values())).stack()
    if len(set(ids.tolist())) < 2:
        return None
    return correspondence_score(w, m, ids, normalise="standardise")


def _photo_crop(image: np.ndarray, box: Any) -> torch.Tensor:
    """The photo path's 224 crop around ``box`` as (3, S, S) in [0, 1], black where it lies outside the photo
    (so that :func:`average_subjects` leaves those cells out, as it does for the loaders' padded crops)."""
    crop, k, o = crop_square(image, box.centre, CROP_FACTOR * box.size, IMAGE_SIZE)
    h, w = image.shape[:2]
    u = o[0] + np.arange(IMAGE_SIZE) / k  # photo coordinates of the crop's pixel centres
    v = o[1] + np.arange(IMAGE_SIZE) / k
    inside = ((v >= -0.5) & (v <= h - 0.5))[:, None] & ((u >= -0.5) & (u <= w - 0.5))[None, :]
    crop = crop.copy()
    crop[~inside] = 0
    return hwc_uint8_to_chw_float(crop)


def _read(path: Path) -> np.ndarray:
    return np.asarray(open_rgb(path), dtype=np.uint8)


def _flattener_source(subjects: PhotoSubjects, flattener: Any, failed: dict[str, str],
                      boxes: dict[str, Any] | None, batch_size: int) -> SubjectSource:
    """Photos → crops with the Flattener's θ (batch ``theta``, s = exp(logs)); records each face's box."""
    def load(key: str) -> dict[str, torch.Tensor]:
        image = _read(subjects.root / key)
        try:
            face = flattener.flatten_image(image, name=key)[0]  # the largest face: the person of the folder
        except (NoFaceFound, ValueError) as exc:
            failed[key] = str(exc)
            raise DataFormatError(subjects.root / key, str(exc)) from exc
        if boxes is not None:
            boxes[key] = face.box
        return {"image": _photo_crop(image, face.box), "theta": torch.from_numpy(face.theta).float()}

    return SubjectSource(subjects.plan(), load, subjects.names, batch_size, padded=True)


def _frontal_source(subjects: PhotoSubjects, boxes: Mapping[str, Any], failed: dict[str, str],
                    batch_size: int) -> SubjectSource:
    """The photo path's crops (its boxes) again, for a θ that ignores the image."""
    plan = [(s, k) for s, k in subjects.plan() if k in boxes]
    for _, k in subjects.plan():
        if k not in boxes:
            failed[k] = "the photo path found no face (no crop)"

    def load(key: str) -> dict[str, torch.Tensor]:
        return {"image": _photo_crop(_read(subjects.root / key), boxes[key])}

    return SubjectSource(plan, load, subjects.names, batch_size, padded=True)


def _landmark_source(subjects: PhotoSubjects, failed: dict[str, str], batch_size: int) -> SubjectSource:
    """The loaders' landmark crops (box of the 68 points × 1.87 → 224, black padding) with the 21 AFLW points."""
    ds = FolderFaces(subjects.root, landmarks=subjects.landmarks)
    index = {r.key: i for i, r in enumerate(ds.records)}
    plan = []
    for s, key in subjects.plan():
        if key in index:
            plan.append((s, key))
        else:
            failed[key] = f"no landmarks in {subjects.landmarks.name}"  # type: ignore[union-attr]
    return SubjectSource(plan, lambda key: ds.load(index[key]), subjects.names, batch_size, min_landmarks=3,
                         padded=True)


def _default_localiser() -> str | None:
    """The name of the shipped default localiser (what ``load_pretrained()`` loads), or None."""
    return DEFAULT_LOCALISER if DEFAULT_LOCALISER in available_pretrained() else None


def _resolve_sources(sources: Sequence[str] | None, subjects: PhotoSubjects, localiser: str | Path | None
                     ) -> list[str]:
    if sources is None:
        chosen = ["photo"]
        if localiser is not None:
            chosen.append("localiser")
        if subjects.landmarks is not None:
            chosen.append("landmarks")
        return [*chosen, "frontal"]
    unknown = [s for s in sources if s not in PHOTO_SOURCES]
    if unknown:
        raise ValueError(f"unknown θ source(s) {unknown}: use {', '.join(PHOTO_SOURCES)}")
    if "landmarks" in sources and subjects.landmarks is None:
        raise ValueError(f"source 'landmarks' needs a landmarks JSON in {subjects.root} (e.g. landmarks_dlib68.json; "
                         "mmstn.detect.detect_folder writes one)")
    if "localiser" in sources and localiser is None:
        raise ValueError("source 'localiser' needs a localiser: no shipped one was found; pass localiser=<weights.pt>")
    return [s for s in PHOTO_SOURCES if s in sources]


def average_photo_subjects(
    root: str | Path | PhotoSubjects,
    sources: Sequence[str] | None = None,
    *,
    grid_size: int = 112,
    n_images: int | None = None,
    localiser: str | Path | None = "default",
    flattener: Any = None,
    stn: STN3DMM | None = None,
    n_iter: int = 40,
    keep_examples: int = 0,
    batch_size: int = 16,
) -> dict[str, PhotoAverages]:
    """Average the photos of each person once per θ source, and score each source's correspondence.

    Args:
        root: a folder-per-person tree, or :func:`photo_subjects`' result.
        sources: θ sources from :data:`PHOTO_SOURCES`; default: ``"photo"``, ``"localiser"`` when a shipped
            localiser is found, ``"landmarks"`` when ``root`` has a landmarks JSON, and ``"frontal"``.
        grid_size: G of the flattened outputs (112: the authors' code; 224: the paper's figures).
        n_images: at most this many photos per person.
        localiser: for ``"localiser"``: a shipped name or a ``weights.pt``; ``"default"``: the localiser
            ``mmstn.train.load_pretrained()`` loads; None: no localiser source.
        flattener: the :class:`mmstn.photos.Flattener` of ``"photo"`` (default ``Flattener(grid=grid_size)``).
        stn: the STN of ``"landmarks"`` and ``"frontal"`` (default: the paper STN on
            :func:`mmstn.uv.default_grid_model` ``(grid_size)``; it must be the Flattener's face).
        n_iter: L-BFGS evaluations of the landmark fit.
        keep_examples: keep this many input crops per person (``result.examples``).
        batch_size: images per batch.

    Returns:
        source → :class:`PhotoAverages`, in the order of :data:`PHOTO_SOURCES`.
    """
    subjects = root if isinstance(root, PhotoSubjects) else photo_subjects(root, n_images=n_images)
    if localiser == "default":
        localiser = _default_localiser()
    chosen = _resolve_sources(sources, subjects, localiser)
    if stn is None and ("landmarks" in chosen or "frontal" in chosen):
        stn = STN3DMM(default_grid_model(grid_size), STNConfig.paper(grid_size=grid_size))
    out: dict[str, PhotoAverages] = {}
    boxes: dict[str, Any] = {}
    photo_failed: dict[str, str] = {}

    def run(name: str, stn_: STN3DMM, source: SubjectSource, estimator: Any, description: str,
            failed: dict[str, str], keep: bool = True) -> None:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="skipping an unreadable face")
            res = average_subjects(stn_, source, estimator, keep=True, keep_examples=keep_examples,
                                   names=subjects.names, exclude_black=True)
        seconds = time.perf_counter() - t0
        res = replace(res, estimator=description, seconds=seconds)
        used = {k for ks in res.keys.values() for k in ks}
        for _, k in subjects.plan():
            if k not in used:
                failed.setdefault(k, "skipped: unreadable, or fewer than 3 visible landmarks")
        if keep:
            out[name] = PhotoAverages(name, description, res, _score(res), len(subjects), dict(failed),
                                      seconds / max(res.n_images, 1))

    if "photo" in chosen or "frontal" in chosen:
        fl = flattener if flattener is not None else Flattener(grid=grid_size)
        src = _flattener_source(subjects, fl, photo_failed, boxes, batch_size)
        how = getattr(fl, "theta_from", "face_mesh")
        run("photo", fl.stn, src, None,
            f"the photo path (Flattener, theta_from={how!r}, {fl.model.n_components} components)",
            photo_failed, keep="photo" in chosen)
    if "localiser" in chosen:
        fl_cnn = Flattener(grid=grid_size, theta_from="localiser", localiser=localiser)
        failed: dict[str, str] = {}
        run("localiser", fl_cnn.stn, _flattener_source(subjects, fl_cnn, failed, None, batch_size), None,
            f"{PHOTO_SOURCE_LABELS['localiser']} ({Path(str(localiser)).stem})", failed)
    if "landmarks" in chosen:
        failed = {}
        assert stn is not None
        run("landmarks", stn, _landmark_source(subjects, failed, batch_size), fitting_estimator(stn, n_iter=n_iter),
            f"{PHOTO_SOURCE_LABELS['landmarks']} ({n_iter} L-BFGS evaluations)", failed)
    if "frontal" in chosen:
        failed = {}
        assert stn is not None
        run("frontal", stn, _frontal_source(subjects, boxes, failed, batch_size), frontal_estimator(stn),
            f"{PHOTO_SOURCE_LABELS['frontal']}, on the photo path's crops", failed)
    return out


# ------------------------------------------------------------------------------------------------ report
def photo_score_rows(results: Mapping[str, PhotoAverages]) -> list[dict[str, Any]]:
    """One row per source: photos used / planned, within, between, ratio, NN accuracy, seconds per photo."""
    rows = []
    for name, r in results.items():
        sc = r.score
        rows.append({
            "source": name,
            "description": r.description,
            "photos": r.result.n_images,
            "planned": r.n_photos,
            "within": float("nan") if sc is None else sc.within,
            "between": float("nan") if sc is None else sc.between,
            "ratio": float("nan") if sc is None else sc.ratio,
            "nn_accuracy": float("nan") if sc is None else sc.nn_accuracy,
            "seconds_per_photo": r.seconds_per_photo,
        })
    return rows


def photo_score_table(results: Mapping[str, PhotoAverages]) -> str:
    """The scores as a fixed-width text table (lower ratio and higher NN accuracy: better correspondence)."""
    lines = [f"{'θ source':<34s} {'photos':>7s} {'within':>7s} {'between':>8s} {'ratio':>6s} {'NN acc.':>8s} "
             f"{'s/photo':>8s}"]
    for row in photo_score_rows(results):
        label = PHOTO_SOURCE_LABELS.get(row["source"], row["source"])
        lines.append(f"{label:<34s} {row['photos']:>3d}/{row['planned']:<3d} {row['within']:7.3f} "
                     f"{row['between']:8.3f} {row['ratio']:6.3f} {row['nn_accuracy']:8.0%} "
                     f"{row['seconds_per_photo']:8.2f}")
    return "\n".join(lines)
