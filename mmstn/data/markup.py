"""Conversion of the 68-point iBUG / 300-W / dlib markup to the 21 AFLW landmarks.

The AFLW-21 order is :data:`mmstn.models.landmarks.AFLW21_NAMES` ("left" = the viewer's left). Each AFLW
point is one iBUG point or the mean of several (0-based iBUG indices):

=====  ====================  ==========================  ===============================================
AFLW   name                  iBUG (0-based)              note
=====  ====================  ==========================  ===============================================
0–2    left brow corners/c.  17, 19, 21                  exact
3–5    right brow            22, 24, 26                  exact
6, 8   left eye corners      36, 39                      exact
7      left eye centre       mean of 36–41               the pupil is not marked; the lid contour mean
9, 11  right eye corners     42, 45                      exact
10     right eye centre      mean of 42–47
12     left ear              —                           no iBUG equivalent: invisible
13     nose left             31                          nostril; AFLW marks the wing (≈ 6 mm higher)
14     nose centre (tip)     30                          exact
15     nose right            35                          as 13
16     right ear             —                           invisible
17     mouth left corner     48                          exact
18     mouth centre          mean of 62, 66              inner-lip midpoints
19     mouth right corner    54                          exact
20     chin centre           8                           the menton, ≈ 14 mm below AFLW's chin centre
=====  ====================  ==========================  ===============================================

"Exact" means the built-in model puts both markups' points on the same vertex; the notes quote the
offsets measured on the built-in model's mean face. A mean-of-points landmark is visible only when all
its points are.
"""

from __future__ import annotations

import numpy as np

__all__ = ["AFLW21_FROM_IBUG68", "ibug68_to_aflw21"]

#: For each AFLW-21 landmark, the 0-based iBUG-68 points it is the mean of (empty: no equivalent).
AFLW21_FROM_IBUG68: tuple[tuple[int, ...], ...] = (
    (17,), (19,), (21,), (22,), (24,), (26,),
    (36,), (36, 37, 38, 39, 40, 41), (39,), (42,), (42, 43, 44, 45, 46, 47), (45,),
    (),
    (31,), (30,), (35,),
    (),
    (48,), (62, 66), (54,),
    (8,),
)  # fmt: skip


def ibug68_to_aflw21(points: np.ndarray, visible: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Map 68 iBUG points to the 21 AFLW landmarks (table in the module docstring).

    Args:
        points: (68, 2) or (B, 68, 2) coordinates in any frame; NaN = not annotated.
        visible: (68,) or (B, 68) visibility; default 1 for every finite point.

    Returns:
        (points (…, 21, 2), visible (…, 21) float64). The ears, and points built from a missing or
        invisible iBUG point, get NaN coordinates and visibility 0.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.shape[-2:] != (68, 2):
        raise ValueError(f"points must have shape (68, 2) or (B, 68, 2), got {p.shape}")
    finite = np.isfinite(p).all(axis=-1)
    v = finite.astype(np.float64) if visible is None else np.asarray(visible, dtype=np.float64) * finite
    out = np.full((*p.shape[:-2], 21, 2), np.nan)
    vis = np.zeros((*p.shape[:-2], 21))
    for k, src in enumerate(AFLW21_FROM_IBUG68):
        if not src:
            continue
        idx = list(src)
        ok = (v[..., idx] > 0).all(axis=-1)
        mean = p[..., idx, :].mean(axis=-2)
        out[..., k, :] = np.where(ok[..., None], mean, np.nan)
        vis[..., k] = ok
    return out, vis
