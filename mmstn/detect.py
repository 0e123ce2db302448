"""Optional face and landmark detection: dlib's HOG face detector and 68-point shape predictor.

For your own photos without landmarks. Needs the optional extra ``mmstn[detect]``:
``pip install dlib-bin face-recognition-models`` (dlib as a prebuilt wheel; the predictor
``shape_predictor_68_face_landmarks.dat`` ships inside the ``face-recognition-models`` package, so nothing is
downloaded at run time). dlib's 68-point model was trained on the 300-W images; dlib's model notes say it may
not be used commercially.

The 68 iBUG points are mapped to the 21 AFLW landmarks by :func:`mmstn.data.markup.ibug68_to_aflw21` (the ears
have no iBUG equivalent and come back invisible). :func:`detect_folder` writes the landmarks JSON that
:class:`mmstn.data.folder.FolderFaces` reads (the schema of ``shared/data/faces_identities``, whose
``landmarks_dlib68.json`` was made with this very detector and predictor).

Coordinates: 0-based photo pixels, x = column, y = row (y down).
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmstn.data.images import IMAGE_EXTENSIONS, open_rgb
from mmstn.data.markup import ibug68_to_aflw21

__all__ = ["EXTRA", "Detection", "DlibDetector", "detect_folder", "dlib_available", "predictor_path"]

#: The optional dependencies, as ``pip install`` arguments.
EXTRA = "dlib-bin face-recognition-models"


def dlib_available() -> bool:
    """True when dlib and the ``face-recognition-models`` package are importable."""
    find = importlib.util.find_spec
    return find("dlib") is not None and find("face_recognition_models") is not None


def predictor_path() -> Path:
    """The 68-point predictor file inside the installed ``face-recognition-models`` package.

    Found without importing the package (its ``__init__`` needs ``pkg_resources``, which recent setuptools no
    longer ship).

    Raises:
        ImportError: the package is not installed (the message names the extra).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"landmark detection needs the optional extra: pip install {EXTRA}")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise ImportError(f"{path} is missing: reinstall face-recognition-models")
    return path


@dataclass
class Detection:
    """One detected face.

    Attributes:
        box: (left, top, right, bottom) of the detector's box, pixels.
        score: the detector's confidence (larger = surer).
        points68: float64 (68, 2) iBUG points.
        points21: float64 (21, 2) AFLW-21 points (NaN for the ears).
        visible21: float64 (21,) 1 for mapped points, 0 for the ears.
    """

    box: tuple[int, int, int, int]
    score: float
    points68: np.ndarray
    points21: np.ndarray
    visible21: np.ndarray

    @property
    def area(self) -> int:
        """Box area in pixels²."""
        return max(0, self.box[2] - self.box[0]) * max(0, self.box[3] - self.box[1])


class DlibDetector:
    """dlib's frontal (HOG) face detector + the 68-point shape predictor.

    Args:
        upsample: times the photo is upsampled before detection (1 finds faces down to about 40 px).

    Raises:
        ImportError: dlib or the predictor is not installed (the message names the extra).
    """

    def __init__(self, upsample: int = 1) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise ImportError(f"landmark detection needs the optional extra: pip install {EXTRA}") from exc
        self.upsample = int(upsample)
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(predictor_path()))

    def __call__(self, image) -> list[Detection]:
        """Detect faces: ``image`` is a PIL image, a uint8 (H, W, 3)/(H, W) array or a float (3, H, W) tensor
        in [0, 1]. Returns the detections, largest box first."""
        arr = _to_uint8(image)
        rects, scores, _ = self._detector.run(arr, self.upsample, 0.0)
        out = []
        for rect, score in zip(rects, scores, strict=True):
            shape = self._predictor(arr, rect)
            p68 = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            p21, v21 = ibug68_to_aflw21(p68)
            out.append(Detection((rect.left(), rect.top(), rect.right(), rect.bottom()), float(score), p68, p21, v21))
        return sorted(out, key=lambda d: -d.area)


def _to_uint8(image) -> np.ndarray:
    import torch

    if isinstance(image, torch.Tensor):
        a = image.detach().cpu().numpy()
        if a.ndim == 3 and a.shape[0] in (1, 3):
            a = a.transpose(1, 2, 0)
        a = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    else:
        a = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image array, got {a.dtype}")
    return np.ascontiguousarray(a)


def detect_folder(root: str | Path, out: str | Path | None = "landmarks_dlib68.json",
                  detector: DlibDetector | None = None) -> dict[str, dict]:
    """Detect the largest face in every photo under ``root`` and write a :class:`~mmstn.data.folder.FolderFaces`
    landmarks JSON.

    Args:
        root: the folder (``root/<person>/*.jpg``: the subfolder is the identity).
        out: the JSON to write (a name inside ``root`` or a path); None: write nothing.
        detector: a :class:`DlibDetector` (default: a new one).

    Returns:
        relative photo path → entry (``identity``, ``width``, ``height``, ``n_faces_detected``, ``box_ltrb``,
        ``landmarks_ibug68_xy``) for the photos with a face; photos without one are left out.
    """
    root = Path(root)
    det = DlibDetector() if detector is None else detector
    entries: dict[str, dict] = {}
    for path in sorted(root.rglob("*")):
        if not (path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS):
            continue
        image = open_rgb(path)
        found = det(image)
        if not found:
            continue
        rel = path.relative_to(root).as_posix()
        best = found[0]
        entry = {
            "width": image.width,
            "height": image.height,
            "n_faces_detected": len(found),
            "box_ltrb": list(best.box),
            "landmarks_ibug68_xy": best.points68.round(2).tolist(),
        }
        if "/" in rel:
            entry = {"identity": rel.split("/")[0], **entry}
        entries[rel] = entry
    if out is not None:
        target = Path(out) if Path(out).is_absolute() else root / out
        target.write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")
    return entries
