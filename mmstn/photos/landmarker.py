"""Faces and dense landmarks in photos, offline: MediaPipe's face detector and 468-point face mesh.

The optional extra ``mmstn[photos]`` (``pip install mediapipe==0.10.14``, Apache-2.0) ships both networks
inside its wheel, so nothing is downloaded at run time:

* the detector (BlazeFace, "full range" model) finds faces in a whole photo and gives their boxes; near-profile
  faces it misses are searched by OpenCV's Haar cascades (which MediaPipe's OpenCV dependency ships);
* the face mesh regresses 468 surface points of one face from a crop around it. Its points are not the
  iBUG-68 markup: :mod:`mmstn.photos.correspondence` ties each of them to a vertex of a morphable model and
  :mod:`mmstn.photos.fit` fits θ to them, so landmarks of any markup come from the fitted model.

Coordinates: 0-based photo pixels, x = column to the right, y = row downwards; images are (H, W, 3) uint8 RGB.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = [
    "EXTRA",
    "MESH_POINTS",
    "FaceBox",
    "MediaPipeFaces",
    "crop_square",
    "mediapipe_available",
]

#: the optional dependency, as ``pip install`` arguments
EXTRA = "mediapipe==0.10.14"
#: number of face-mesh points (without the iris refinement)
MESH_POINTS = 468
#: side of the square crop given to the face mesh, in units of the face box's larger side
MESH_CONTEXT = 1.7
#: pixels of the crop given to the face mesh (it works at 192 px internally)
MESH_INPUT = 256


def mediapipe_available() -> bool:
    """True when the ``mediapipe`` package (the ``photos`` extra) is importable."""
    return importlib.util.find_spec("mediapipe") is not None


def _require() -> object:
    if not mediapipe_available():
        raise ImportError(
            "finding faces and landmarks in photos needs the optional extra: "
            f"pip install 'mmstn[photos]'  (or: pip install {EXTRA})"
        )
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging is chatty on stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mediapipe as mp

    if not hasattr(mp, "solutions"):
        raise ImportError(f"this mediapipe ({mp.__version__}) has no bundled face models; pip install {EXTRA}")
    return mp


@dataclass(frozen=True)
class FaceBox:
    """A face's box in photo pixels (0-based, y down) and the detector's confidence in [0, 1].

    Attributes:
        x0, y0, x1, y1: corners, pixels; x1 > x0, y1 > y0.
        score: detector confidence (1.0 for a box the user gave).
    """

    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0

    @property
    def size(self) -> float:
        """The larger side, pixels."""
        return max(self.x1 - self.x0, self.y1 - self.y0)

    @property
    def centre(self) -> tuple[float, float]:
        return (0.5 * (self.x0 + self.x1), 0.5 * (self.y0 + self.y1))

    @property
    def area(self) -> float:
        return (self.x1 - self.x0) * (self.y1 - self.y0)

    def as_list(self) -> list[float]:
        return [float(self.x0), float(self.y0), float(self.x1), float(self.y1)]


def crop_square(
    image: np.ndarray, centre: tuple[float, float], side: float, size: int
) -> tuple[np.ndarray, float, np.ndarray]:
    """Resample the square of ``side`` pixels centred at ``centre`` to ``size`` × ``size`` (bilinear, edge pad).

    Args:
        image: (H, W, 3) uint8 or float photo.
        centre: (x, y) in 0-based photo pixels; side: the square's side in photo pixels; size: output pixels.

    Returns:
        (crop (size, size, 3) of the image's dtype, scale k = size / side, offset o (2,)) with
        crop pixel p = k · (photo pixel − o), both 0-based pixel-centre frames.
    """
    k = size / float(side)
    o = np.array([centre[0] - 0.5 * side, centre[1] - 0.5 * side]) + 0.5 / k - 0.5
    # photo coordinates of the crop's pixel centres
    u = o[0] + np.arange(size) / k
    v = o[1] + np.arange(size) / k
    h, w = image.shape[:2]
    x0 = np.floor(u).astype(int)
    y0 = np.floor(v).astype(int)
    fx = (u - x0)[None, :, None]
    fy = (v - y0)[:, None, None]
    xa, xb = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    ya, yb = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    img = image.astype(np.float32)
    top = img[ya][:, xa] * (1 - fx) + img[ya][:, xb] * fx
    bottom = img[yb][:, xa] * (1 - fx) + img[yb][:, xb] * fx
    out = top * (1 - fy) + bottom * fy
    if image.dtype == np.uint8:
        out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out, k, o


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence MediaPipe: its C++ side writes start-up notes straight to file descriptor 2, and its protobuf
    bindings warn about a deprecated call; neither is the user's business."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fds = {2}
        with contextlib.suppress(AttributeError, OSError, ValueError):
            fds.add(sys.stderr.fileno())  # in Jupyter this is the terminal; descriptor 2 is the kernel's pipe
        sys.stderr.flush()
        saved = {}
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            for fd in fds:
                with contextlib.suppress(OSError):
                    saved[fd] = os.dup(fd)
                    os.dup2(devnull, fd)
            yield
        finally:
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            os.close(devnull)


@lru_cache(maxsize=1)
def _mesh():
    mp = _require()
    with _quiet():
        return mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False)


@lru_cache(maxsize=1)
def _detector():
    mp = _require()
    with _quiet():
        return mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)


class MediaPipeFaces:
    """MediaPipe's detector and face mesh behind two calls (see the module docstring).

    Example::

        faces = MediaPipeFaces()
        for box in faces.detect(photo):
            points = faces.mesh(photo, box)   # (468, 2) photo pixels, or None
    """

    def __init__(self, min_score: float = 0.5) -> None:
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {min_score}")
        self.min_score = float(min_score)

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Every face in ``image`` (H, W, 3) uint8 RGB, largest first; [] when there is none.

        The detector's boxes span brows to chin; they are grown to the iBUG-68 landmark box (jaw line to
        brows), which ``--box`` also takes. Faces much smaller than the photo are found on an upscaled copy.
        """
        _check_image(image)
        h, w = image.shape[:2]
        with _quiet():
            res = _detector().process(np.ascontiguousarray(image))
        boxes: list[FaceBox] = []
        for det in res.detections or []:
            score = float(det.score[0]) if det.score else 0.0
            if score < self.min_score:
                continue
            b = det.location_data.relative_bounding_box
            x0, y0 = b.xmin * w, b.ymin * h
            bw, bh = b.width * w, b.height * h
            # BlazeFace boxes are square, about the landmark box's width, top at the brows
            boxes.append(FaceBox(x0 - 0.05 * bw, y0 + 0.05 * bh, x0 + 1.05 * bw, y0 + 1.02 * bh, score))
        return sorted(boxes, key=lambda b: -b.area)

    def detect_profiles(self, image: np.ndarray) -> list[FaceBox]:
        """Fallback for near-profile faces the detector misses: OpenCV's Haar cascades (profile, mirrored
        profile, frontal; shipped with OpenCV, which MediaPipe installs). The largest box, or []."""
        _check_image(image)
        import cv2

        grey = np.ascontiguousarray(image.mean(-1).astype(np.uint8))
        w = grey.shape[1]
        root = Path(cv2.data.haarcascades)
        found: list[tuple[float, float, float, float]] = []
        for name, flip in (
            ("haarcascade_profileface.xml", False),
            ("haarcascade_profileface.xml", True),
            ("haarcascade_frontalface_default.xml", False),
        ):
            cascade = cv2.CascadeClassifier(str(root / name))
            img = np.ascontiguousarray(grey[:, ::-1]) if flip else grey
            for x, y, bw, bh in cascade.detectMultiScale(img, 1.1, 3, minSize=(24, 24)):
                x0 = w - (x + bw) if flip else x
                found.append((float(x0), float(y), float(bw), float(bh)))
        if not found:
            return []
        x, y, bw, bh = max(found, key=lambda b: b[2] * b[3])
        # Haar boxes cover brows to mouth; grow them towards the chin, like the landmark box
        return [FaceBox(x, y + 0.1 * bh, x + bw, y + 1.15 * bh, score=0.0)]

    def mesh(self, image: np.ndarray, box: FaceBox) -> np.ndarray | None:
        """The 468 face-mesh points of the face in ``box``: (468, 2) float64 photo pixels, or None if not found."""
        _check_image(image)
        side = MESH_CONTEXT * box.size
        crop, k, o = crop_square(image, box.centre, side, MESH_INPUT)
        with _quiet():
            res = _mesh().process(np.ascontiguousarray(crop))
        if not res.multi_face_landmarks:
            return None
        lm = res.multi_face_landmarks[0].landmark
        # MediaPipe's normalised coordinates count from the image's outer edge
        p = np.array([[q.x, q.y] for q in lm[:MESH_POINTS]], dtype=np.float64) * MESH_INPUT - 0.5
        return p / k + o


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"image must be an (H, W, 3) uint8 RGB array, got {got}")
