"""UMDFaces still images: the per-batch CSV files (docs/conventions.md §10.5).

Columns are found **by header name**, in any order; names are matched case-insensitively:

* required: ``SUBJECT_ID`` (int), ``FILE`` (photo path relative to the CSV's folder), ``FACE_X``, ``FACE_Y``
  (top-left corner of the face box), ``FACE_WIDTH``, ``FACE_HEIGHT``, ``P1X`` … ``P21X``, ``P1Y`` … ``P21Y``
  (the 21 keypoints in the AFLW order);
* optional: ``VIS1`` … ``VIS21`` (visibility; without them every keypoint with finite coordinates counts as
  visible), ``YAW``, ``PITCH``, ``ROLL`` (kept in :class:`UmdFace`); other columns are ignored.

The file must be UTF-8 (ASCII is UTF-8; a byte-order mark is allowed): a byte that is not, e.g. a Latin-1
``é``, is an error naming the line, with the command that converts the file.

Coordinates are read as 0-based photo pixels (``one_based=True`` subtracts 1); an empty cell or a keypoint at
(0, 0) is "not annotated". Faces are grouped by ``SUBJECT_ID`` (:meth:`UMDFaces.subject_indices`), used as
is: if two batches reuse an id, their faces are grouped together.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmstn.data.crop import CropRule
from mmstn.data.errors import DataFormatError, require_file
from mmstn.data.faces import FaceCrops, FaceRecord
from mmstn.runtime import data_dir

__all__ = ["UMDFaces", "UmdFace", "find_umdfaces_csvs", "read_umdfaces_csv"]

_BOX = ("FACE_X", "FACE_Y", "FACE_WIDTH", "FACE_HEIGHT")
_REQUIRED = ("SUBJECT_ID", "FILE", *_BOX, *(f"P{k}X" for k in range(1, 22)), *(f"P{k}Y" for k in range(1, 22)))


@dataclass
class UmdFace:
    """One UMDFaces row.

    Attributes:
        subject_id: ``SUBJECT_ID``.
        image_path: the photo (``FILE`` resolved against the CSV's folder).
        rect: (x, y, w, h) from ``FACE_*``, 0-based pixels.
        points: float64 (21, 2), NaN where not annotated.
        visible: float64 (21,).
        pose: (yaw, pitch, roll) as stored (degrees), or None when the columns are absent.
        row: the CSV line number (for messages).
    """

    subject_id: int
    image_path: Path
    rect: tuple[float, float, float, float]
    points: np.ndarray
    visible: np.ndarray
    pose: tuple[float, float, float] | None
    row: int


def _float(path: Path, line: int, column: str, value: str | None, allow_empty: bool = False) -> float:
    text = "" if value is None else value.strip()
    if text == "" and allow_empty:
        return float("nan")
    try:
        v = float(text)
    except ValueError:
        raise DataFormatError(path, f"column {column}: {value!r} is not a number", row=f"line {line}") from None
    if np.isinf(v) or (np.isnan(v) and not allow_empty):  # NaN may mark a missing keypoint, inf never
        raise DataFormatError(path, f"column {column}: {value!r} is not a finite number", row=f"line {line}")
    return v


def read_umdfaces_csv(path: str | Path, one_based: bool = False) -> list[UmdFace]:
    """Read one UMDFaces batch CSV (module docstring: columns and conventions).

    Raises:
        DataFormatError: missing file or header, missing required columns, or a malformed row (the message
            names the file and the line).
    """
    path = Path(path)
    require_file(path, "a UMDFaces batch CSV", hint="Expected a UMDFaces batch CSV (see data/README.md)")
    off = 1.0 if one_based else 0.0
    out: list[UmdFace] = []
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataFormatError(
            path,
            f"byte 0x{raw[exc.start]:02x} is not UTF-8 text",
            row=f"line {line}",
            hint=f"Convert the file to UTF-8, e.g. iconv -f latin1 -t utf-8 {path.name} > fixed.csv",
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return _read_rows(path, reader, off, out)
    except csv.Error as exc:  # e.g. a NUL byte or an unterminated quote
        raise DataFormatError(path, f"not a readable CSV ({exc})", row=f"line {reader.line_num + 1}") from None


def _read_rows(path: Path, reader, off: float, out: list[UmdFace]) -> list[UmdFace]:
    """The rows of a decoded UMDFaces CSV (see :func:`read_umdfaces_csv`)."""
    header = next(reader, None)
    if header is None:
        raise DataFormatError(path, "the file is empty; a header row is expected")
    names = {h.strip().upper(): i for i, h in enumerate(header)}
    missing = [c for c in _REQUIRED if c not in names]
    if missing:
        shown = ", ".join(missing[:6]) + (" …" if len(missing) > 6 else "")
        raise DataFormatError(
            path,
            f"missing column(s) {shown}",
            row="header",
            hint="A UMDFaces CSV needs SUBJECT_ID, FILE, FACE_X/Y/WIDTH/HEIGHT and P1X..P21X, P1Y..P21Y",
        )
    has_vis = all(f"VIS{k}" in names for k in range(1, 22))
    has_pose = all(c in names for c in ("YAW", "PITCH", "ROLL"))
    for row in reader:
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < len(header):
            raise DataFormatError(path, f"{len(row)} fields, the header has {len(header)}", row=f"line {line}")

        def cell(name: str, row: list[str] = row) -> str:
            return row[names[name]]

        try:
            sid = int(cell("SUBJECT_ID").strip())
        except ValueError:
            raise DataFormatError(
                path, f"SUBJECT_ID {cell('SUBJECT_ID')!r} is not an integer", row=f"line {line}"
            ) from None
        file = cell("FILE").strip()
        if not file:
            raise DataFormatError(path, "FILE is empty", row=f"line {line}")
        x, y, w, h = (_float(path, line, c, cell(c)) for c in _BOX)
        if w <= 0 or h <= 0:
            raise DataFormatError(path, f"face box {w} × {h} must have a positive size", row=f"line {line}")
        px = np.array([_float(path, line, f"P{k}X", cell(f"P{k}X"), True) for k in range(1, 22)])
        py = np.array([_float(path, line, f"P{k}Y", cell(f"P{k}Y"), True) for k in range(1, 22)])
        pts = np.stack([px, py], axis=1)
        pts[(pts == 0).all(axis=1)] = np.nan
        pts -= off
        finite = np.isfinite(pts).all(axis=1)
        if has_vis:
            vis = np.array([_float(path, line, f"VIS{k}", cell(f"VIS{k}"), True) for k in range(1, 22)])
            vis = np.clip(np.nan_to_num(vis, nan=0.0), 0.0, 1.0) * finite
        else:
            vis = finite.astype(np.float64)
        pose = tuple(_float(path, line, c, cell(c), True) for c in ("YAW", "PITCH", "ROLL")) if has_pose else None
        out.append(UmdFace(sid, path.parent / file, (x - off, y - off, w, h), pts, vis, pose, line))  # type: ignore[arg-type]
    return out


def find_umdfaces_csvs(root: str | Path) -> list[Path]:
    """The batch CSVs under ``root``: ``root/*.csv`` and ``root/*/*.csv``, sorted."""
    root = Path(root)
    return sorted({*root.glob("*.csv"), *root.glob("*/*.csv")})


class UMDFaces(FaceCrops):
    """UMDFaces crops with the 21 keypoints, grouped by subject (dict keys: :mod:`mmstn.data.faces`).

    Args:
        source: a batch CSV, a list of them, or a folder searched by :func:`find_umdfaces_csvs`; default
            ``<data>/umdfaces`` (:func:`mmstn.runtime.data_dir`).
        crop: :class:`~mmstn.data.crop.CropRule` (default: keypoint box, ×1.87, 224 px; the face box when fewer
            than 3 keypoints are visible).
        one_based: the CSV coordinates are 1-based.
    """

    def __init__(
        self,
        source: str | Path | list[str | Path] | None = None,
        crop: CropRule | None = None,
        one_based: bool = False,
    ) -> None:
        if source is None:
            source = data_dir() / "umdfaces"
        if isinstance(source, (str, Path)) and Path(source).is_dir():
            files = find_umdfaces_csvs(source)
            if not files:
                raise DataFormatError(
                    source,
                    "no UMDFaces CSV found (looked for *.csv and */*.csv)",
                    hint="Unpack the batches as umdfaces_batchK/ with their CSV (data/README.md)",
                )
        else:
            files = [Path(p) for p in (source if isinstance(source, list) else [source])]
        self.faces = [f for p in files for f in read_umdfaces_csv(p, one_based)]
        records = [
            FaceRecord(f.image_path, f.points, f.visible, "aflw21", f.subject_id, f.rect, f"{f.image_path}:{f.row}")
            for f in self.faces
        ]
        super().__init__(records, crop)
        kept = {r.key for r in self.records}
        self.faces = [f for f in self.faces if f"{f.image_path}:{f.row}" in kept]
