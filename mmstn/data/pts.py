"""300-W / iBUG ``.pts`` landmark files and a dataset of photos annotated with them.

Format (version 1)::

    version: 1
    n_points:  68
    {
    x₁ y₁
    …
    x₆₈ y₆₈
    }

Coordinate convention (our choice, documented because the format does not fix it): 300-W coordinates are
**1-based pixels** (the centre of the top-left pixel is (1, 1)), the assumption of the iBUG group's own menpo
library, which subtracts 1 on import. Hence in our label frame of the same image (1-based column, y up)
x = x_pts and y = H + 1 − y_pts; :func:`pts_to_pixels` gives 0-based pixels (x − 1, y − 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmstn.data.crop import CropRule
from mmstn.data.errors import DataFormatError, require_file
from mmstn.data.faces import FaceCrops, FaceRecord
from mmstn.data.images import IMAGE_EXTENSIONS
from mmstn.runtime import data_dir

__all__ = ["PtsFaces", "find_pts_pairs", "pts_to_labels", "pts_to_pixels", "read_pts", "write_pts"]


def read_pts(path: str | Path) -> np.ndarray:
    """Read a ``.pts`` file → float64 (n_points, 2) as written (1-based pixels for 300-W).

    Raises:
        DataFormatError: missing file, no ``version``/``n_points`` header, missing braces, a non-numeric
            coordinate, or a point count that differs from ``n_points`` (the message names the file and line).
    """
    path = Path(path)
    require_file(path, "a 300-W .pts landmark file")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, f"not a text file ({exc})") from exc
    header: dict[str, str] = {}
    i = 0
    while i < len(lines) and lines[i].strip() != "{":
        text = lines[i].strip()
        if text:
            if ":" not in text:
                raise DataFormatError(path, f"expected 'key: value' or '{{', got {text!r}", row=f"line {i + 1}")
            key, value = text.split(":", 1)
            header[key.strip().lower()] = value.strip()
        i += 1
    if i == len(lines):
        raise DataFormatError(path, "no '{' opening the point list", hint="Expected the 300-W .pts format")
    if "n_points" not in header:
        raise DataFormatError(path, "no 'n_points:' header line", hint="Expected the 300-W .pts format")
    try:
        n = int(header["n_points"])
    except ValueError:
        raise DataFormatError(path, f"n_points {header['n_points']!r} is not an integer") from None
    if "version" in header and header["version"] not in ("1", "1.0"):
        raise DataFormatError(path, f"version {header['version']!r}: only version 1 is supported")
    points: list[tuple[float, float]] = []
    j = i + 1
    while j < len(lines) and lines[j].strip() != "}":
        text = lines[j].strip()
        if text:
            parts = text.split()
            try:
                if len(parts) < 2:
                    raise ValueError
                xy = (float(parts[0]), float(parts[1]))
                if not all(np.isfinite(xy)):
                    raise ValueError
                points.append(xy)
            except ValueError:
                raise DataFormatError(
                    path, f"expected two finite numbers 'x y', got {text!r}", row=f"line {j + 1}"
                ) from None
        j += 1
    if j == len(lines):
        raise DataFormatError(path, "no '}' closing the point list")
    if len(points) != n:
        raise DataFormatError(path, f"n_points says {n} but the file lists {len(points)} points")
    return np.array(points, dtype=np.float64).reshape(n, 2)


def write_pts(path: str | Path, points: np.ndarray) -> Path:
    """Write (n, 2) points as a version-1 ``.pts`` file (coordinates as given, 3 decimals)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in p)
    path = Path(path)
    path.write_text(f"version: 1\nn_points:  {len(p)}\n{{\n{body}\n}}\n")
    return path


def pts_to_pixels(points: np.ndarray) -> np.ndarray:
    """1-based .pts coordinates → 0-based pixel coordinates (x − 1, y − 1), y down."""
    return np.asarray(points, dtype=np.float64) - 1.0


def pts_to_labels(points: np.ndarray, image_height: int) -> np.ndarray:
    """1-based .pts coordinates → label frame of the same image: (x, H + 1 − y)."""
    p = np.asarray(points, dtype=np.float64)
    return np.stack([p[:, 0], image_height + 1 - p[:, 1]], axis=1)


def find_pts_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """(image, .pts) pairs under ``root`` (recursive): every ``.pts`` with an image of the same stem beside it."""
    root = Path(root)
    pairs = []
    for pts in sorted(root.rglob("*.pts")):
        for ext in IMAGE_EXTENSIONS:
            for candidate in (pts.with_suffix(ext), pts.with_suffix(ext.upper())):
                if candidate.is_file():
                    pairs.append((candidate, pts))
                    break
            else:
                continue
            break
    return pairs


class PtsFaces(FaceCrops):
    """Photos with 68-point ``.pts`` files (300-W): crops with ``landmarks21``/``vis21`` (mapped by
    :func:`mmstn.data.markup.ibug68_to_aflw21`) and ``landmarks68``/``vis68``; ``subject_id`` is −1.

    Args:
        root: folder searched recursively (:func:`find_pts_pairs`); default ``<data>/300w``.
        crop: :class:`~mmstn.data.crop.CropRule` (default: the 68-point box × 0.95 × 1.87, 224 px).

    Raises:
        DataFormatError: no annotated image under ``root``, or a malformed ``.pts`` file.
    """

    def __init__(self, root: str | Path | None = None, crop: CropRule | None = None) -> None:
        if root is None:
            root = data_dir() / "300w"
        self.root = Path(root)
        pairs = find_pts_pairs(self.root)
        if not pairs:
            raise DataFormatError(
                self.root,
                "no .pts file with an image of the same name was found",
                hint="300-W keeps each image's .pts next to it (e.g. indoor_001.png + .pts)",
            )
        records = []
        for image, pts in pairs:
            p = read_pts(pts)
            if len(p) != 68:
                raise DataFormatError(pts, f"{len(p)} points; the 68-point iBUG markup is expected")
            records.append(FaceRecord(image, pts_to_pixels(p), np.ones(68), "ibug68", -1, None, str(pts)))
        super().__init__(records, crop)
