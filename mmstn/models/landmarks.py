"""Landmark conventions: the 21 AFLW points in the paper's order and the 68 iBUG / 300-W points.

Both lists are ordered as in their datasets. "Left" is the *viewer's* left (image left, model x < 0),
following AFLW's naming as used by the authors (docs/conventions.md §3.5): landmark 1 sits at image x ≈ 73
and landmark 6 at x ≈ 167 on the authors' demo crops.

The flip permutations map a landmark list of an image to the list of its horizontal mirror image:
``flipped_labels = labels[FLIP]`` after mirroring the x coordinates. Each is an involution.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "AFLW21_FLIP",
    "AFLW21_MIDLINE",
    "AFLW21_NAMES",
    "IBUG68_FLIP",
    "flip_permutation",
]

#: The 21 AFLW landmarks (FeatureCoordTypes order, 1-based ids 1..21 → 0-based positions 0..20).
AFLW21_NAMES: tuple[str, ...] = (
    "LeftBrowLeftCorner",
    "LeftBrowCenter",
    "LeftBrowRightCorner",
    "RightBrowLeftCorner",
    "RightBrowCenter",
    "RightBrowRightCorner",
    "LeftEyeLeftCorner",
    "LeftEyeCenter",
    "LeftEyeRightCorner",
    "RightEyeLeftCorner",
    "RightEyeCenter",
    "RightEyeRightCorner",
    "LeftEar",
    "NoseLeft",
    "NoseCenter",
    "NoseRight",
    "RightEar",
    "MouthLeftCorner",
    "MouthCenter",
    "MouthRightCorner",
    "ChinCenter",
)

#: 0-based flip permutation of the AFLW-21 list (the authors' ``syncFlippedLandmarks.m``, 1-based
#: [6 5 4 3 2 1 12 11 10 9 8 7 17 16 15 14 13 20 19 18 21]).
AFLW21_FLIP: np.ndarray = np.array(
    [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 16, 15, 14, 13, 12, 19, 18, 17, 20], dtype=np.int64
)

#: Landmarks on the symmetry line (fixed points of the flip): nose centre, mouth centre, chin.
AFLW21_MIDLINE: tuple[int, ...] = (14, 18, 20)


def _ibug68_flip() -> np.ndarray:
    """0-based flip permutation of the 68-point iBUG markup (jaw, brows, nose, eyes, mouth)."""
    pairs_1based: list[tuple[int, int]] = []
    pairs_1based += [(i, 18 - i) for i in range(1, 18)]  # jaw 1..17
    pairs_1based += [(18 + i, 27 - i) for i in range(5)]  # brows 18..22 <-> 27..23
    pairs_1based += [(i, i) for i in range(28, 32)]  # nose bridge
    pairs_1based += [(32 + i, 36 - i) for i in range(5)]  # nostrils 32..36
    pairs_1based += [(37, 46), (38, 45), (39, 44), (40, 43), (41, 48), (42, 47)]  # eyes
    pairs_1based += [(49 + i, 55 - i) for i in range(7)]  # outer lip top 49..55
    pairs_1based += [(56 + i, 60 - i) for i in range(5)]  # outer lip bottom 56..60
    pairs_1based += [(61 + i, 65 - i) for i in range(5)]  # inner lip top 61..65
    pairs_1based += [(66 + i, 68 - i) for i in range(3)]  # inner lip bottom 66..68
    perm = np.full(68, -1, dtype=np.int64)
    for a, b in pairs_1based:
        perm[a - 1] = b - 1
        perm[b - 1] = a - 1
    assert (perm >= 0).all()
    return perm


#: 0-based flip permutation of the iBUG-68 list.
IBUG68_FLIP: np.ndarray = _ibug68_flip()


def flip_permutation(n_landmarks: int) -> np.ndarray:
    """The flip permutation for a 21- (AFLW) or 68-point (iBUG) landmark list."""
    if n_landmarks == 21:
        return AFLW21_FLIP.copy()
    if n_landmarks == 68:
        return IBUG68_FLIP.copy()
    raise ValueError(f"n_landmarks={n_landmarks}: only the 21-point AFLW and 68-point iBUG markups are known")
