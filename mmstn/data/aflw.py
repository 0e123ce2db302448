"""AFLW: the SQLite annotation database (``aflw.sqlite``) and the Flickr photos (docs/conventions.md §10.4).

Tables read (the 2012-11-28 schema; other tables are ignored)::

    Faces(face_id, file_id, db_id)                    one row per face
    FaceImages(image_id, db_id, file_id, filepath, bw, width, height)   joined on file_id
    FeatureCoords(face_id, feature_id, x, y)          feature_id 1..21 in the AFLW-21 order; an absent row is
                                                      a landmark that was not annotated (invisible)
    FaceRect(face_id, x, y, w, h, annot_type_id)      optional: the face box (used by CropRule source "box")
    FacePose(face_id, roll, pitch, yaw, annot_type_id) optional: kept in :class:`AflwFace`, not returned

Coordinates are photo pixels; whether AFLW's are 0- or 1-based is not documented (docs/conventions.md §13): they
are read as 0-based (``one_based=True`` subtracts 1). Photos are looked up as ``image_root/filepath``, then
``image_root/flickr/filepath`` (``FaceImages.filepath`` is e.g. ``"3/image00035.jpg"`` and the photos are
unpacked as ``flickr/0/``, ``flickr/2/``, ``flickr/3/``); ``image_root`` defaults to the database's folder.

Train/validation split: by a hash of ``face_id`` (:func:`mmstn.data.split.split_of`, salt ``"aflw"``), so it
is stable whatever subset of photos is present. The paper's split is not public.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmstn.data.crop import CropRule
from mmstn.data.errors import DataFormatError, require_file
from mmstn.data.faces import FaceCrops, FaceRecord
from mmstn.data.split import Split, split_of
from mmstn.runtime import data_dir

__all__ = ["AFLW", "AflwFace", "read_aflw_sqlite"]

_REQUIRED = {
    "Faces": ("face_id", "file_id"),
    "FaceImages": ("file_id", "filepath"),
    "FeatureCoords": ("face_id", "feature_id", "x", "y"),
}
_OPTIONAL = {"FaceRect": ("face_id", "x", "y", "w", "h"), "FacePose": ("face_id", "roll", "pitch", "yaw")}
_SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass
class AflwFace:
    """One AFLW face as stored in the database.

    Attributes:
        face_id: ``Faces.face_id``.
        filepath: ``FaceImages.filepath`` (relative to the image folder).
        points: float64 (21, 2) 0-based photo pixels, NaN where no FeatureCoords row exists.
        visible: float64 (21,) 1 where annotated.
        rect: ``FaceRect`` (x, y, w, h) or None.
        pose: ``FacePose`` (roll, pitch, yaw) as stored (radians, unverified) or None.
    """

    face_id: int
    filepath: str
    points: np.ndarray
    visible: np.ndarray
    rect: tuple[float, float, float, float] | None
    pose: tuple[float, float, float] | None


def _number(path: Path, table: str, key: object, column: str, value: object) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        v = float("nan")
    if not np.isfinite(v):
        raise DataFormatError(path, f"{column}={value!r} is not a finite number", row=f"table {table}, {key}")
    return v


def read_aflw_sqlite(path: str | Path, one_based: bool = False) -> list[AflwFace]:
    """Read every face of an ``aflw.sqlite`` (module docstring: tables, coordinates).

    Raises:
        DataFormatError: not an SQLite file, a missing table or column, or a malformed row (the message names
            the file, the table and the face).
    """
    path = Path(path)
    require_file(path, "AFLW's aflw.sqlite file", hint="Put AFLW's aflw.sqlite there (see data/README.md)")
    with path.open("rb") as fh:
        if fh.read(16) != _SQLITE_MAGIC:
            raise DataFormatError(path, "not an SQLite 3 database", hint="Expected AFLW's aflw.sqlite")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return _read(con, path, 1.0 if one_based else 0.0)
    except sqlite3.DatabaseError as exc:
        raise DataFormatError(
            path, f"SQLite error: {exc}", hint="The database is damaged or truncated; download aflw.sqlite again"
        ) from exc
    finally:
        con.close()


def _columns(con: sqlite3.Connection, table: str) -> set[str] | None:
    rows = con.execute(f"PRAGMA table_info('{table}')").fetchall()
    return {r[1].lower() for r in rows} if rows else None


def _read(con: sqlite3.Connection, path: Path, offset: float) -> list[AflwFace]:
    present = {}
    for table, cols in {**_REQUIRED, **_OPTIONAL}.items():
        have = _columns(con, table)
        if have is None:
            if table in _REQUIRED:
                raise DataFormatError(path, f"no table {table!r}", hint="Is this AFLW's aflw.sqlite?")
            continue
        missing = [c for c in cols if c.lower() not in have]
        if missing:
            raise DataFormatError(path, f"table {table!r} lacks column(s) {', '.join(missing)}")
        present[table] = True

    faces: dict[int, AflwFace] = {}
    query = "SELECT f.face_id, i.filepath FROM Faces f JOIN FaceImages i ON f.file_id = i.file_id ORDER BY f.face_id"
    for face_id, filepath in con.execute(query):
        if not isinstance(face_id, int):
            raise DataFormatError(path, f"face_id {face_id!r} is not an integer", row="table Faces")
        if not isinstance(filepath, str) or not filepath:
            raise DataFormatError(path, f"filepath {filepath!r} is empty", row=f"table FaceImages, face_id={face_id}")
        if face_id in faces:
            raise DataFormatError(
                path, "face listed twice (two FaceImages rows for its file_id?)", row=f"table Faces, face_id={face_id}"
            )
        faces[face_id] = AflwFace(face_id, filepath, np.full((21, 2), np.nan), np.zeros(21), None, None)

    for face_id, feature_id, x, y in con.execute("SELECT face_id, feature_id, x, y FROM FeatureCoords"):
        where = f"face_id={face_id}, feature_id={feature_id}"
        face = faces.get(face_id)
        if face is None:
            continue  # coordinates of a face without an image row: nothing to crop
        if not isinstance(feature_id, int) or not 1 <= feature_id <= 21:
            raise DataFormatError(path, "feature_id must be an integer in 1..21", row=f"table FeatureCoords, {where}")
        fx = _number(path, "FeatureCoords", where, "x", x) - offset
        fy = _number(path, "FeatureCoords", where, "y", y) - offset
        face.points[feature_id - 1] = (fx, fy)
        face.visible[feature_id - 1] = 1.0

    if "FaceRect" in present:
        for face_id, x, y, w, h in con.execute("SELECT face_id, x, y, w, h FROM FaceRect"):
            face = faces.get(face_id)
            if face is None or face.rect is not None:
                continue  # keep the first rectangle of a face
            where = f"face_id={face_id}"
            vals = [_number(path, "FaceRect", where, c, v) for c, v in zip("xywh", (x, y, w, h), strict=True)]
            if vals[2] <= 0 or vals[3] <= 0:
                raise DataFormatError(
                    path, f"w={w}, h={h}: the face rectangle must have a positive size", row=f"table FaceRect, {where}"
                )
            face.rect = (vals[0] - offset, vals[1] - offset, vals[2], vals[3])
    if "FacePose" in present:
        for face_id, roll, pitch, yaw in con.execute("SELECT face_id, roll, pitch, yaw FROM FacePose"):
            face = faces.get(face_id)
            if face is not None and face.pose is None and None not in (roll, pitch, yaw):
                where = f"face_id={face_id}"
                face.pose = tuple(  # type: ignore[assignment]
                    _number(path, "FacePose", where, c, v)
                    for c, v in zip(("roll", "pitch", "yaw"), (roll, pitch, yaw), strict=True)
                )
    return list(faces.values())


def _resolve(image_root: Path, filepath: str) -> Path:
    for candidate in (image_root / filepath, image_root / "flickr" / filepath):
        if candidate.is_file():
            return candidate
    return image_root / "flickr" / filepath


class AFLW(FaceCrops):
    """AFLW face crops with the 21 landmarks (dict keys: :mod:`mmstn.data.faces`; ``subject_id`` is −1).

    Args:
        sqlite: path of ``aflw.sqlite``; default ``<data>/aflw/aflw.sqlite`` (:func:`mmstn.runtime.data_dir`).
        image_root: folder of the photos (module docstring); default: the database's folder.
        split: ``"train"``, ``"val"`` or ``"all"``.
        val_fraction: fraction of faces in the validation split.
        crop: :class:`~mmstn.data.crop.CropRule` (default: landmark box, ×1.87, 224 px).
        one_based: the database's coordinates are 1-based.
        min_landmarks: faces with fewer annotated landmarks are left out.
    """

    def __init__(
        self,
        sqlite: str | Path | None = None,
        image_root: str | Path | None = None,
        split: Split = "train",
        val_fraction: float = 0.1,
        crop: CropRule | None = None,
        one_based: bool = False,
        min_landmarks: int = 1,
    ) -> None:
        if split not in ("train", "val", "all"):
            raise ValueError(f"split={split!r}: use 'train', 'val' or 'all'")
        if sqlite is None:
            sqlite = data_dir() / "aflw" / "aflw.sqlite"
        self.sqlite = Path(sqlite)
        root = self.sqlite.parent if image_root is None else Path(image_root)
        self.faces = [
            f
            for f in read_aflw_sqlite(self.sqlite, one_based)
            if (split == "all" or split_of(f.face_id, val_fraction, "aflw") == split)
            and f.visible.sum() >= min_landmarks
        ]
        records = [
            FaceRecord(_resolve(root, f.filepath), f.points, f.visible, "aflw21", -1, f.rect, str(f.face_id))
            for f in self.faces
        ]
        super().__init__(records, crop)
        kept = {r.key for r in self.records}
        self.faces = [f for f in self.faces if str(f.face_id) in kept]
