"""The face crop: a square box around the face, enlarged about its centre, resized to 224 × 224.

The authors' AFLW cropping code is not public (docs/conventions.md §6, §13). The rule here is inferred from the six
crops in their ``demodata.mat`` and checked against them (``tests/test_data_loaders.py``):

* **Box from landmarks** (``source="landmarks"``): the bounding box of the visible landmarks gives the
  square's side, ``side = max(width, height)``; the square is centred horizontally on the box and its top
  edge is the topmost landmark (``align_top=True``; ``False`` centres it vertically too).
* **Box from a face rectangle** (``source="box"``, AFLW ``FaceRect``, UMDFaces ``FACE_*``): a square of side
  ``max(w, h)`` centred on the rectangle.
* The square is **enlarged ×1.87** about its centre (``enlarge``) and resampled to ``size`` = 224 pixels
  (bilinear, antialiased when shrinking); parts outside the photo are black.

How the numbers were checked. In every demodata crop the 21 landmarks span x ∈ [52.3–53.0, 169.8–173.0]
(width 117.5–120.0 px, mean 119.3) and the topmost one sits at y = 171.6–172.6 in the label frame
(row ≈ 53), while the heights vary (95.6–119.8 px): the crops were sized by the landmark box's larger side
(here the width, ear to ear) and top-aligned, not centred. 224 / 120 = 1.867 ≈ 1.87. Applying the rule to
the demodata landmarks reproduces the crops themselves: boxes of side 220–224 px (224 within 2 %)
centred within 1.5 px of the image centre. For ``FaceRect`` boxes ×1.87 is a plausible default but
unverified (no AFLW photos were available to check it).

68-point markups (iBUG, dlib) do not have the AFLW ear points; their bounding box (jaw line to brows)
is converted to an AFLW-21-like box by the factor :data:`IBUG68_BOX_FACTOR` = 0.95: on the demodata crops
side₂₁ / interocular = 2.23 (120 px / 53.8 px, eye-centre distance), on the 40 dlib-annotated faces of
``faces_identities`` side₆₈ / interocular = 2.35 (median), so side₂₁ ≈ 0.95 · side₆₈.

Coordinates. Input landmarks and boxes are in **0-based pixel coordinates of the original photo** (x = column,
y = row, y down; pixel centres at integers); NaN marks a landmark without annotation. Output landmarks are in
the **label frame** of the crop (1-based column, y up, y = S + 1 − 1-based row), with missing ones at (0, 0)
as in the authors' imdb.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from mmstn.data.images import pil_to_chw_float

__all__ = [
    "DEMODATA_ENLARGE",
    "IBUG68_BOX_FACTOR",
    "MAX_OUTSIDE",
    "BoxSource",
    "CropRule",
    "SquareBox",
    "crop_face",
    "crop_image",
    "crop_points",
    "implausible_annotation",
    "landmark_square",
    "rect_square",
]

#: 224 / 120: the enlargement that maps the demodata landmark box (120 px wide) onto the 224 px crop.
DEMODATA_ENLARGE: float = 1.87

#: side of an AFLW-21 landmark box ≈ this × side of an iBUG-68 box (see the module docstring).
IBUG68_BOX_FACTOR: float = 0.95

#: Landmarks and face rectangles may reach at most this many photo sizes (max(H, W)) beyond the photo's
#: edges; anything farther is a broken annotation (a typo, a unit error), and a crop around it would be
#: mostly black and huge (:func:`implausible_annotation`).
MAX_OUTSIDE: float = 1.0

#: Where the crop square comes from: "landmarks", "box" (a face rectangle), "auto" (landmarks when at least
#: ``min_landmarks`` are visible, else the rectangle) or "none" (the whole photo, padded to a square).
BoxSource = Literal["auto", "landmarks", "box", "none"]


@dataclass(frozen=True)
class CropRule:
    """How a face crop is cut from a photo (module docstring: the rule and how it was checked).

    Attributes:
        enlarge: the square face box is scaled by this about its centre (1.87 fits the authors' crops).
        size: output side S in pixels (224 for the paper).
        source: :data:`BoxSource`.
        align_top: landmark boxes: top edge at the topmost landmark (True, the authors' crops) or centred.
        min_landmarks: ``"auto"`` uses the landmarks when at least this many are visible.
        ibug68_factor: converts a 68-point box side to an AFLW-21-like one (:data:`IBUG68_BOX_FACTOR`).
    """

    enlarge: float = DEMODATA_ENLARGE
    size: int = 224
    source: BoxSource = "auto"
    align_top: bool = True
    min_landmarks: int = 3
    ibug68_factor: float = IBUG68_BOX_FACTOR

    def __post_init__(self) -> None:
        if self.source not in ("auto", "landmarks", "box", "none"):
            raise ValueError(f"CropRule.source={self.source!r}: use 'auto', 'landmarks', 'box' or 'none'")
        if not (self.enlarge > 0 and self.size >= 2):
            raise ValueError(f"CropRule needs enlarge > 0 and size >= 2, got {self.enlarge}, {self.size}")

    def square(
        self,
        image_size: tuple[int, int],
        points: np.ndarray | None = None,
        visible: np.ndarray | None = None,
        rect: tuple[float, float, float, float] | None = None,
        markup: Literal["aflw21", "ibug68"] = "aflw21",
    ) -> SquareBox:
        """The crop square for one face.

        Args:
            image_size: (H, W) of the photo.
            points: (L, 2) landmarks, 0-based pixels of the photo (NaN = not annotated), or None.
            visible: (L,) visibility (> 0 = use the point); default: every finite point.
            rect: face rectangle (x, y, w, h): top-left corner and size, 0-based pixels, or None.
            markup: which markup ``points`` is (68-point boxes are scaled by ``ibug68_factor``).

        Returns:
            :class:`SquareBox` of the enlarged crop square.

        Raises:
            ValueError: the rule needs landmarks or a rectangle that the face does not have.
        """
        h, w = image_size
        source = self.source
        n_vis = 0
        if points is not None:
            vis = _visible_mask(points, visible)
            n_vis = int(vis.sum())
        if source == "auto":
            source = "landmarks" if n_vis >= self.min_landmarks else ("box" if rect is not None else "none")
        if source == "none":
            return SquareBox((w - 1) / 2.0, (h - 1) / 2.0, float(max(w, h)))
        if source == "landmarks":
            if points is None or n_vis < 1:
                raise ValueError("CropRule(source='landmarks') needs at least one visible landmark")
            cx, cy, side = landmark_square(points, visible, self.align_top)
            if markup == "ibug68":
                cy += (self.ibug68_factor - 1.0) * side / 2.0 if self.align_top else 0.0
                side *= self.ibug68_factor
        else:
            if rect is None:
                raise ValueError("CropRule(source='box') needs a face rectangle")
            cx, cy, side = rect_square(*rect)
        if not side > 0:
            side = 1.0
        return SquareBox(cx, cy, side * self.enlarge)


@dataclass(frozen=True)
class SquareBox:
    """An axis-aligned square in a photo: centre (cx, cy) in 0-based pixel coordinates, side in pixels."""

    cx: float
    cy: float
    side: float

    def edges(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) in Pillow's edge coordinates (pixel i spans [i, i + 1])."""
        left = self.cx + 0.5 - self.side / 2.0
        top = self.cy + 0.5 - self.side / 2.0
        return left, top, left + self.side, top + self.side


def _visible_mask(points: np.ndarray, visible: np.ndarray | None) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    ok = np.isfinite(p).all(axis=1)
    if visible is not None:
        ok &= np.asarray(visible, dtype=np.float64) > 0
    return ok


def landmark_square(
    points: np.ndarray, visible: np.ndarray | None = None, align_top: bool = True
) -> tuple[float, float, float]:
    """Square around the visible landmarks: (cx, cy, side), 0-based pixels, side = max(box width, height).

    With ``align_top`` the square's top edge is the topmost landmark (its centre lies side/2 below it);
    otherwise it is centred on the box. Horizontally it is always centred on the box.
    """
    p = np.asarray(points, dtype=np.float64)[_visible_mask(points, visible)]
    if len(p) == 0:
        raise ValueError("no visible landmark to build a face box from")
    lo, hi = p.min(axis=0), p.max(axis=0)
    side = float(max(hi[0] - lo[0], hi[1] - lo[1]))
    cx = float(lo[0] + hi[0]) / 2.0
    cy = float(lo[1]) + side / 2.0 if align_top else float(lo[1] + hi[1]) / 2.0
    return cx, cy, side


def rect_square(x: float, y: float, w: float, h: float) -> tuple[float, float, float]:
    """Square of side max(w, h) centred on the rectangle (x, y, w, h): (cx, cy, side)."""
    return float(x) + float(w) / 2.0, float(y) + float(h) / 2.0, float(max(w, h))


def implausible_annotation(
    image_size: tuple[int, int],
    points: np.ndarray | None,
    rect: tuple[float, float, float, float] | None = None,
) -> str | None:
    """Why the landmarks or rectangle of a face cannot be right for a photo of ``image_size``, or None.

    Rejected: ±inf coordinates (NaN is "not annotated" and allowed), a coordinate more than
    :data:`MAX_OUTSIDE` × max(H, W) beyond the photo's edges, a non-finite or non-positive rectangle.
    """
    h, w = image_size
    reach = MAX_OUTSIDE * max(h, w)
    lo = np.array([-reach, -reach])
    hi = np.array([w - 1 + reach, h - 1 + reach])
    if points is not None:
        p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if np.isinf(p).any():
            k = int(np.flatnonzero(np.isinf(p).any(axis=1))[0])
            return f"landmark {k + 1} has an infinite coordinate {tuple(p[k])}"
        finite = np.isfinite(p).all(axis=1)
        far = finite & ((p < lo) | (p > hi)).any(axis=1)
        if far.any():
            k = int(np.flatnonzero(far)[0])
            return (
                f"landmark {k + 1} at ({p[k, 0]:.6g}, {p[k, 1]:.6g}) lies far outside the {w}×{h} photo "
                f"(more than {MAX_OUTSIDE:g} × its size beyond an edge)"
            )
    if rect is not None:
        x, y, rw, rh = (float(v) for v in rect)
        if not all(np.isfinite([x, y, rw, rh])) or rw <= 0 or rh <= 0:
            return f"face rectangle {tuple(rect)} must be finite with a positive size"
        if x < lo[0] or y < lo[1] or x + rw > hi[0] + 1 or y + rh > hi[1] + 1:
            return f"face rectangle {tuple(rect)} lies far outside the {w}×{h} photo"
    return None


def crop_image(image, box: SquareBox, size: int):
    """Cut ``box`` out of a Pillow image (``RGB`` or ``F``) and resample it to ``size`` × ``size`` (black
    outside the photo).

    The output pixel centre u (0-based) samples the photo at x = cx + (u − (size − 1)/2) · side/size,
    the mapping :func:`crop_points` applies to landmarks. A box many times larger than the output is cut
    from a photo first shrunk by an integer factor (box averaging), so the intermediate region stays small
    whatever the box.
    """
    from PIL import Image

    left, top, right, bottom = box.edges()
    factor = int(box.side // (4 * size))
    if factor > 1:
        # Shrinking by ``factor`` first keeps ≥ 4 source pixels per output pixel: no visible change, and
        # the padded region below no longer grows with the box (a huge box would exhaust memory).
        image = image.reduce(factor)
        left, top, right, bottom = (c / factor for c in (left, top, right, bottom))
    ix0, iy0 = math.floor(left), math.floor(top)
    ix1, iy1 = max(math.ceil(right), ix0 + 1), max(math.ceil(bottom), iy0 + 1)
    region = image.crop((ix0, iy0, ix1, iy1))  # Pillow pads outside the photo with zeros
    return region.resize(
        (size, size), Image.Resampling.BILINEAR, box=(left - ix0, top - iy0, right - ix0, bottom - iy0)
    )


def crop_points(points: np.ndarray, box: SquareBox, size: int) -> np.ndarray:
    """Photo landmarks (L, 2), 0-based pixels, NaN = missing → crop landmarks (L, 2) in the label frame.

    u = (x − cx) · size/side + (size − 1)/2 (0-based column of the crop), then x_label = u + 1 and
    y_label = size − v. Missing points become (0, 0).
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    k = size / box.side
    u = (p[:, 0] - box.cx) * k + (size - 1) / 2.0
    v = (p[:, 1] - box.cy) * k + (size - 1) / 2.0
    out = np.stack([u + 1.0, size - v], axis=1)
    out[~np.isfinite(out).all(axis=1)] = 0.0
    return out


def crop_face(
    image,
    box: SquareBox,
    size: int,
    points: np.ndarray,
    visible: np.ndarray,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Crop a Pillow photo (``RGB`` or grey ``F``, :func:`mmstn.data.images.open_image`) and its landmarks:
    → (image (3, S, S) float32 in [0, 1], (L, 2) label frame, (L,)).

    Landmarks without annotation (NaN) get (0, 0) and visibility 0.
    """
    img = pil_to_chw_float(crop_image(image, box, size))
    pts = crop_points(points, box, size)
    vis = np.asarray(visible, dtype=np.float64).copy()
    vis[~np.isfinite(np.asarray(points, dtype=np.float64)).all(axis=1)] = 0.0
    return img, torch.from_numpy(pts.astype(np.float32)), torch.from_numpy(vis.astype(np.float32))
