"""A plain folder of face photos, optionally one subfolder per person, with an optional landmarks JSON.

Layout::

    root/
      landmarks.json              (optional; any name, passed as ``landmarks``)
      amy/amy1.png …              one subfolder per person (the subfolder name is the identity), or
      photo1.jpg …                photos directly in root (no identity unless the JSON gives one)

Landmarks JSON schema — one object keyed by the photo's path relative to ``root`` (``/`` separators)::

    {
      "amy/amy1.png": {
        "identity": "amy",                           optional; default: the first path component of a
                                                     photo in a subfolder, else no identity (−1)
        "landmarks_ibug68_xy": [[x, y], … 68],       a 68-point iBUG/dlib markup, or
        "landmarks_aflw21_xy": [[x, y], … 21],       the 21 AFLW points; null for a missing point
        "visible": [1, 0, …]                         optional, one value per point (default 1)
      }, …
    }

Coordinates are **0-based pixels, y down** (the convention of ``shared/data``'s JSON files and of dlib).
``landmarks_aflw21_xy_0based`` / ``landmarks_ibug68_xy_0based`` are accepted as aliases (the names in
``demodata_landmarks21.json``); other keys (``width``, ``box_ltrb``, …) are ignored. When both markups are
given the 68-point one is used. 68-point markups are mapped to AFLW-21 by
:func:`mmstn.data.markup.ibug68_to_aflw21` (the ears have no iBUG equivalent and are invisible) and the
crop box comes from all 68 points (:class:`~mmstn.data.crop.CropRule`). Without a JSON every photo of the
folder is used, without landmarks, resized whole (crop source ``"none"``).

Identities are numbered 0, 1, … in sorted name order (:attr:`FolderFaces.subject_names`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from mmstn.data.crop import CropRule
from mmstn.data.errors import DataFormatError, require_file
from mmstn.data.faces import FaceCrops, FaceRecord
from mmstn.data.images import IMAGE_EXTENSIONS

__all__ = ["FolderFaces", "read_landmarks_json"]

_KEYS = {
    "ibug68": ("landmarks_ibug68_xy", "landmarks_ibug68_xy_0based"),
    "aflw21": ("landmarks_aflw21_xy", "landmarks_aflw21_xy_0based"),
}


def _points(path: Path, key: str, name: str, value: object, n: int) -> np.ndarray:
    if not isinstance(value, list) or len(value) != n:
        got = len(value) if isinstance(value, list) else type(value).__name__
        raise DataFormatError(path, f"{name} must be a list of {n} [x, y] pairs, got {got}", row=f"entry {key!r}")
    out = np.full((n, 2), np.nan)
    for i, p in enumerate(value):
        if p is None:
            continue
        # json accepts NaN/Infinity and true/false as numbers; a missing point is null, never those
        if not (
            isinstance(p, list)
            and len(p) == 2
            and all(isinstance(c, (int, float)) and not isinstance(c, bool) and np.isfinite(c) for c in p)
        ):
            raise DataFormatError(
                path,
                f"{name}[{i}] = {p!r} is not an [x, y] pair of finite numbers (null marks a missing point)",
                row=f"entry {key!r}",
            )
        out[i] = p
    return out


def read_landmarks_json(path: str | Path) -> dict[str, tuple[str, np.ndarray, np.ndarray, str | None]]:
    """Read a landmarks JSON (module docstring: schema).

    Returns:
        relative photo path → (markup ``"ibug68"``/``"aflw21"``, points (L, 2) 0-based pixels with NaN for
        missing ones, visibility (L,), identity or None).

    Raises:
        DataFormatError: unreadable JSON or an entry that does not follow the schema (names file and entry).
    """
    path = Path(path)
    require_file(path, "the landmarks JSON file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(path, f"not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DataFormatError(path, "the top level must be an object keyed by photo path")
    out = {}
    for key, entry in data.items():
        if not isinstance(entry, dict):
            raise DataFormatError(path, "each entry must be an object", row=f"entry {key!r}")
        found = None
        for markup, names in _KEYS.items():
            for name in names:
                if name in entry:
                    found = (markup, name)
                    break
            if found:
                break
        if found is None:
            raise DataFormatError(
                path, "no landmarks (landmarks_ibug68_xy or landmarks_aflw21_xy)", row=f"entry {key!r}"
            )
        markup, name = found
        n = 68 if markup == "ibug68" else 21
        pts = _points(path, key, name, entry[name], n)
        vis = np.isfinite(pts).all(axis=1).astype(np.float64)
        if "visible" in entry:
            v = entry["visible"]
            if not isinstance(v, list) or len(v) != n or not all(isinstance(c, (int, float)) for c in v):
                raise DataFormatError(path, f"visible must be a list of {n} numbers", row=f"entry {key!r}")
            vis = vis * np.clip(np.asarray(v, dtype=np.float64), 0.0, 1.0)
        identity = entry.get("identity")
        if identity is not None and not isinstance(identity, str):
            identity = str(identity)
        out[key] = (markup, pts, vis, identity)
    return out


class FolderFaces(FaceCrops):
    """Face crops from a folder of photos (module docstring: layout, JSON schema, identities).

    Args:
        root: the folder.
        landmarks: the landmarks JSON (a path, or a name inside ``root``); None: photos without landmarks.
        crop: :class:`~mmstn.data.crop.CropRule`; without landmarks its source is forced to ``"none"``.
    """

    def __init__(self, root: str | Path, landmarks: str | Path | None = None, crop: CropRule | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataFormatError(self.root, "no such folder")
        entries: dict[str, tuple[str, np.ndarray, np.ndarray, str | None]] = {}
        if landmarks is not None:
            lpath = Path(landmarks)
            if not lpath.is_absolute() and not lpath.is_file():
                lpath = self.root / lpath
            entries = read_landmarks_json(lpath)
        else:
            crop = dataclasses.replace(crop or CropRule(), source="none")
            for p in sorted(self.root.rglob("*")):
                if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
                    rel = p.relative_to(self.root).as_posix()
                    entries[rel] = ("aflw21", np.full((21, 2), np.nan), np.zeros(21), None)
        if not entries:
            raise DataFormatError(
                self.root, "no photos found", hint=f"Image files end in {', '.join(IMAGE_EXTENSIONS)}"
            )

        def identity_of(rel: str, given: str | None) -> str | None:
            if given is not None:
                return given
            parts = rel.split("/")
            return parts[0] if len(parts) > 1 else None

        ids = {rel: identity_of(rel, e[3]) for rel, e in entries.items()}
        #: identity names, index = subject_id
        self.subject_names: list[str] = sorted({i for i in ids.values() if i is not None})
        number = {name: k for k, name in enumerate(self.subject_names)}
        records = [
            FaceRecord(self.root / rel, pts, vis, markup, -1 if ids[rel] is None else number[ids[rel]], None, rel)  # type: ignore[arg-type]
            for rel, (markup, pts, vis, _) in entries.items()
        ]
        super().__init__(records, crop)
