"""The built-in cartoon face: a synthetic morphable model generated in code, no data files at all.

The default face is the ICT FaceKit's (:mod:`mmstn.models.ict`); this one stays for what only it shows: a mesh
on which the paper's cotangent Tutte weights do not fold over (chapter 2), a model whose refinement reaches the
BFM's 53k vertices for the UV benchmarks, and "another face" in tests of refusals. It imitates the BFM 2009
where the method depends on it (docs/conventions.md §2.2, §3.2, §3.5): the same frame
(x to the viewer's right, y up, z towards the viewer, millimetres, mean not centred), a similar
bounding box (x ∈ [−92, 92], y ∈ [−114, 97], z ∈ [−16, 117] mm; BFM: ±89, [−114, 97], [−16, 131]), the
nose tip at z ≈ 116.5 (BFM ≈ 116) as the highest vertex, a linear basis scaled so that α ~ N(0, I) with
comparable magnitudes (identity components 4.0, 2.3, 1.8, 1.6, 1.3 mm RMS per unit, BFM 4.2, 2.5, 2.1,
1.7, 1.3; expression components 1.2 to 0.6 mm RMS, BFM + 3DDFA 0.65–1.16), and landmark vertices for
the 21 AFLW and 68 iBUG points.

How it is made:

* **Mesh.** The left half of a disk-shaped parameter domain is filled with a jittered hexagonal
  lattice, feature curves (eyelids, lips, brows, jawline) and the landmark positions are inserted as
  fixed points, and the half is triangulated with ``scipy.spatial.Delaunay``. Mirroring it gives an
  irregular mesh whose topology is exactly mirror-symmetric: vertices on the midline sit at x = 0
  and map to themselves. A sine warp of the parameter domain crowds points towards the steep sides
  of the head. ``subdivisions`` regenerates the triangulation with half the spacing per step
  (about 4× the vertices: 3.4k, 13.5k, 53.5k, 213k), keeping landmarks at the same places.
* **Mean shape.** A height field z = f(x, y) (a super-ellipsoid head front) plus smooth bumps for
  the forehead, brow ridge, eye sockets and eyeballs, nose, cheekbones, lips, chin and a recess
  under the jaw; the ears are flaps at the sides pushed outwards in x. The mouth is a thin band
  between the inner lip lines, so opening the mouth stretches it (as in the BFM).
* **Bases.** Hand-made smooth variations (face width, nose length, jaw, ... ; for expressions mouth
  open, smile, brow raise, eye close, ...) plus random smooth fields are sampled with standard normal
  weights; the shape and texture bases are the principal components of those samples together with
  their mirror images, so every component is exactly symmetric or exactly antisymmetric. Each
  component is a unit direction times its standard deviation, sorted by standard deviation, so the
  coefficients follow N(0, I) as in the BFM.

The result is cached per argument tuple; :func:`builtin_model` hands out a copy with cloned
tensors, so callers may modify what they get without affecting later calls.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.spatial import Delaunay, cKDTree

from mmstn.models.morphable import MorphableModel

__all__ = ["BUILTIN_SEED", "builtin_model", "clear_builtin_cache"]

#: The seed of the model every notebook and test uses.
BUILTIN_SEED: int = 0

_MAX_SUBDIVISIONS = 3
_LICENCE = "Apache-2.0 (generated in code by mmstn; no third-party data)"

# ---------------------------------------------------------------------------------------------------
# Parameter domain → (x, y). The domain is a superellipse in parameter coordinates (p_u, p_v), whose
# units are millimetres at the face centre; a sine warp maps it to the face outline in (x, y).
_X_HALF = 88.0  # half-width of the outline at ear level, mm
_Y_CENTRE = -8.5  # y spans [-114, 97] mm like the BFM 2009 mean
_Y_HALF = 105.5
_KAPPA = 1.1  # the x warp: vertices crowd towards the steep sides (dx/du shrinks to cos(1.1) = 0.45)
_LAMBDA = 0.9
_OUTLINE_POWER = 2.6
_SX = _X_HALF * _KAPPA / np.sin(_KAPPA)
_SY = _Y_HALF * _LAMBDA / np.sin(_LAMBDA)
_SPACING0 = 3.93  # lattice spacing at subdivisions=0 (parameter mm): 3.4k vertices, 53.5k at 2

# Feature layout, left half (x <= 0), millimetres in the BFM frame.
_EYE_X, _EYE_Y, _EYE_HALF_WIDTH = -33.0, 36.0, 13.0
_LID_UP, _LID_DOWN = 5.0, 4.0
_NOSE_TIP_Y = 6.0
_MOUTH_Y, _MOUTH_HALF_WIDTH, _INNER_HALF_WIDTH, _BAND_HALF = -27.0, 25.0, 21.0, 1.5
_CHIN_Y, _MENTON_Y = -66.0, -80.0
_JAW_TOP_Y, _JAW_HALF_WIDTH, _JAW_POWER = 30.0, 70.0, 2.5
_EAR_X, _EAR_Y = -84.0, 0.0


def _sig(t: np.ndarray) -> np.ndarray:
    """Logistic function, 1 / (1 + exp(−t)), without overflow warnings."""
    return 0.5 * (1.0 + np.tanh(0.5 * t))


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _blob(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    """Anisotropic Gaussian bump of height 1 centred on (cx, cy) mm with widths (sx, sy) mm."""
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def _taper(v: np.ndarray) -> np.ndarray:
    """Width factor of the outline: the lower corners (the neck) are narrowed by up to 18 %."""
    return 1.0 - 0.18 * _smoothstep((-v - 0.25) / 0.75)


def _param_to_xy(p: np.ndarray) -> np.ndarray:
    """Parameter points (M, 2) → base positions (M, 2) in mm. Odd in p_u, orientation-preserving."""
    u, v = p[:, 0] / _SX, p[:, 1] / _SY
    x = _X_HALF * np.sin(_KAPPA * u) / np.sin(_KAPPA) * _taper(v)
    y = _Y_CENTRE + _Y_HALF * np.sin(_LAMBDA * v) / np.sin(_LAMBDA)
    return np.stack([x, y], axis=1)


def _xy_to_param(xy: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_param_to_xy`, (M, 2) mm → (M, 2) parameter mm."""
    v = np.arcsin((xy[:, 1] - _Y_CENTRE) * np.sin(_LAMBDA) / _Y_HALF) / _LAMBDA
    u = np.arcsin(xy[:, 0] * np.sin(_KAPPA) / (_X_HALF * _taper(v))) / _KAPPA
    return np.stack([u * _SX, v * _SY], axis=1)


# ---------------------------------------------------------------------------------------------------
# Feature curves (left half). Each returns y for given x, or points for a parameter.
def _upper_lid(x: np.ndarray) -> np.ndarray:
    return _EYE_Y + _LID_UP * (1.0 - ((x - _EYE_X) / _EYE_HALF_WIDTH) ** 2)


def _lower_lid(x: np.ndarray) -> np.ndarray:
    return _EYE_Y - _LID_DOWN * (1.0 - ((x - _EYE_X) / _EYE_HALF_WIDTH) ** 2)


def _brow(t: np.ndarray) -> np.ndarray:
    """Left brow centre line, t = 0 at the outer end (x = −56) to t = 1 at the inner end (x = −15)."""
    t = np.asarray(t, dtype=np.float64)
    return np.stack([-56.0 + 41.0 * t, 50.0 + 6.0 * np.sin(np.pi * t) - t], axis=-1)


def _lip_top(x: np.ndarray) -> np.ndarray:
    """Outer contour of the upper lip (with a Cupid's bow dip at the midline)."""
    c = np.clip(1.0 - (x / _MOUTH_HALF_WIDTH) ** 2, 0.0, None)
    return _MOUTH_Y + 8.0 * c**0.7 - np.exp(-0.5 * (x / 3.0) ** 2)


def _lip_bottom(x: np.ndarray) -> np.ndarray:
    c = np.clip(1.0 - (x / _MOUTH_HALF_WIDTH) ** 2, 0.0, None)
    return _MOUTH_Y - 10.0 * c**0.8


def _inner_lip(x: np.ndarray, sign: float) -> np.ndarray:
    """Inner lip lines bounding the mouth band: sign = +1 upper, −1 lower."""
    c = np.sqrt(np.clip(1.0 - (x / _INNER_HALF_WIDTH) ** 2, 0.0, None))
    return _MOUTH_Y + sign * _BAND_HALF * c


def _jaw(phi: np.ndarray) -> np.ndarray:
    """Left jawline (face outline), phi = 0 at the top near the ear to π/2 at the menton."""
    e = 2.0 / _JAW_POWER
    x = -_JAW_HALF_WIDTH * np.abs(np.cos(phi)) ** e
    y = _JAW_TOP_Y - (_JAW_TOP_Y - _MENTON_Y) * np.abs(np.sin(phi)) ** e
    return np.stack([x, y], axis=-1)


def _jaw_y(x: np.ndarray) -> np.ndarray:
    """The jawline as y(x); constant at the top above |x| >= 70 (behind the jaw, in front of the ear)."""
    c = np.clip(1.0 - (np.abs(x) / _JAW_HALF_WIDTH) ** _JAW_POWER, 0.0, None)
    return _JAW_TOP_Y - (_JAW_TOP_Y - _MENTON_Y) * c ** (1.0 / _JAW_POWER)


def _resample(curve: np.ndarray, spacing: float) -> np.ndarray:
    """Points at equal arc length (about ``spacing`` mm apart, ends included) along a dense polyline (K, 2)."""
    seg = np.linalg.norm(np.diff(curve, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(int(np.rint(s[-1] / spacing)), 1)
    t = np.linspace(0.0, s[-1], n + 1)
    return np.stack([np.interp(t, s, curve[:, 0]), np.interp(t, s, curve[:, 1])], axis=1)


def _jaw_points() -> np.ndarray:
    """iBUG jaw landmarks 1..9 (left half and menton) at equal arc length along the jawline."""
    dense = _jaw(np.linspace(0.0, np.pi / 2, 2001))
    length = float(np.sum(np.linalg.norm(np.diff(dense, axis=0), axis=1)))
    pts = _resample(dense, length / 8.0)
    pts[-1] = (0.0, _MENTON_Y)  # exactly on the midline
    return pts


def _landmark_points() -> dict[str, tuple[float, float]]:
    """Named landmark positions on the left half and the midline (x <= 0), mm."""
    pts: dict[str, tuple[float, float]] = {}
    for i, (bx, by) in enumerate(_brow(np.linspace(0.0, 1.0, 5))):
        pts[f"brow{i}"] = (float(bx), float(by))
    pts["eye_outer"] = (_EYE_X - _EYE_HALF_WIDTH, _EYE_Y)
    pts["eye_inner"] = (_EYE_X + _EYE_HALF_WIDTH, _EYE_Y)
    pts["eye_centre"] = (_EYE_X, _EYE_Y)
    for tag, frac in (("a", 1.0 / 3.0), ("b", 2.0 / 3.0)):  # a: nearer the outer corner
        ex = _EYE_X - _EYE_HALF_WIDTH + 2.0 * _EYE_HALF_WIDTH * frac
        pts[f"lid_up_{tag}"] = (ex, float(_upper_lid(np.array(ex))))
        pts[f"lid_down_{tag}"] = (ex, float(_lower_lid(np.array(ex))))
    pts["ear"] = (_EAR_X, _EAR_Y)
    for i, (jx, jy) in enumerate(_jaw_points()):
        pts[f"jaw{i}"] = (float(jx), float(jy))  # jaw8 is the menton (midline)
    pts["nose_bridge0"] = (0.0, 38.0)
    pts["nose_bridge1"] = (0.0, 27.0)
    pts["nose_bridge2"] = (0.0, 16.0)
    pts["nose_tip"] = (0.0, _NOSE_TIP_Y)
    pts["nose_wing"] = (-17.0, 0.0)  # AFLW NoseLeft: the alar wing
    pts["nostril_outer"] = (-13.0, -6.0)
    pts["nostril_inner"] = (-6.5, -8.0)
    pts["subnasale"] = (0.0, -9.0)
    pts["mouth_corner"] = (-_MOUTH_HALF_WIDTH, _MOUTH_Y)
    for tag, lx in (("a", -16.0), ("b", -6.0)):
        pts[f"lip_top_{tag}"] = (lx, float(_lip_top(np.array(lx))))
    for tag, lx in (("a", -16.0), ("b", -7.0)):
        pts[f"lip_bottom_{tag}"] = (lx, float(_lip_bottom(np.array(lx))))
    pts["lip_top_mid"] = (0.0, float(_lip_top(np.array(0.0))))
    pts["lip_bottom_mid"] = (0.0, float(_lip_bottom(np.array(0.0))))
    pts["inner_corner"] = (-_INNER_HALF_WIDTH, _MOUTH_Y)
    pts["inner_up"] = (-8.0, float(_inner_lip(np.array(-8.0), 1.0)))
    pts["inner_down"] = (-8.0, float(_inner_lip(np.array(-8.0), -1.0)))
    pts["inner_up_mid"] = (0.0, _MOUTH_Y + _BAND_HALF)
    pts["inner_down_mid"] = (0.0, _MOUTH_Y - _BAND_HALF)
    pts["mouth_centre"] = (0.0, _MOUTH_Y)
    pts["chin"] = (0.0, _CHIN_Y)
    return pts


# Landmark sets as (point name, side): "L" the left-half point, "R" its mirror image, "M" midline.
_AFLW21_SPEC: tuple[tuple[str, str], ...] = (
    ("brow0", "L"), ("brow2", "L"), ("brow4", "L"),  # LeftBrow Left/Center/RightCorner
    ("brow4", "R"), ("brow2", "R"), ("brow0", "R"),  # RightBrow Left/Center/RightCorner
    ("eye_outer", "L"), ("eye_centre", "L"), ("eye_inner", "L"),
    ("eye_inner", "R"), ("eye_centre", "R"), ("eye_outer", "R"),
    ("ear", "L"),
    ("nose_wing", "L"), ("nose_tip", "M"), ("nose_wing", "R"),
    ("ear", "R"),
    ("mouth_corner", "L"), ("mouth_centre", "M"), ("mouth_corner", "R"),
    ("chin", "M"),
)  # fmt: skip

_IBUG68_SPEC: tuple[tuple[str, str], ...] = (
    *((f"jaw{i}", "L") for i in range(8)), ("jaw8", "M"), *((f"jaw{i}", "R") for i in range(7, -1, -1)),
    *((f"brow{i}", "L") for i in range(5)), *((f"brow{i}", "R") for i in range(4, -1, -1)),
    ("nose_bridge0", "M"), ("nose_bridge1", "M"), ("nose_bridge2", "M"), ("nose_tip", "M"),
    ("nostril_outer", "L"), ("nostril_inner", "L"), ("subnasale", "M"),
    ("nostril_inner", "R"), ("nostril_outer", "R"),
    ("eye_outer", "L"), ("lid_up_a", "L"), ("lid_up_b", "L"),
    ("eye_inner", "L"), ("lid_down_b", "L"), ("lid_down_a", "L"),
    ("eye_inner", "R"), ("lid_up_b", "R"), ("lid_up_a", "R"),
    ("eye_outer", "R"), ("lid_down_a", "R"), ("lid_down_b", "R"),
    ("mouth_corner", "L"), ("lip_top_a", "L"), ("lip_top_b", "L"), ("lip_top_mid", "M"),
    ("lip_top_b", "R"), ("lip_top_a", "R"), ("mouth_corner", "R"),
    ("lip_bottom_a", "R"), ("lip_bottom_b", "R"), ("lip_bottom_mid", "M"),
    ("lip_bottom_b", "L"), ("lip_bottom_a", "L"),
    ("inner_corner", "L"), ("inner_up", "L"), ("inner_up_mid", "M"), ("inner_up", "R"),
    ("inner_corner", "R"), ("inner_down", "R"), ("inner_down_mid", "M"), ("inner_down", "L"),
)  # fmt: skip


def _feature_curves(spacing: float) -> list[np.ndarray]:
    """Extra fixed points (left half) that make eyelids, lips, brows and jaw crisp: dense polylines, mm."""
    ex = np.linspace(_EYE_X - _EYE_HALF_WIDTH, _EYE_X + _EYE_HALF_WIDTH, 201)
    lx = np.linspace(-_MOUTH_HALF_WIDTH, 0.0, 201)
    ix = np.linspace(-_INNER_HALF_WIDTH, 0.0, 201)
    curves = [
        np.stack([ex, _upper_lid(ex)], 1),
        np.stack([ex, _lower_lid(ex)], 1),
        np.stack([ex, np.full_like(ex, _EYE_Y)], 1),  # vertices for the whites of the eyes
        _brow(np.linspace(0.0, 1.0, 201)),
        np.stack([lx, _lip_top(lx)], 1),
        np.stack([lx, _lip_bottom(lx)], 1),
        np.stack([ix, _inner_lip(ix, 1.0)], 1),
        np.stack([ix, _inner_lip(ix, -1.0)], 1),
        _jaw(np.linspace(0.0, np.pi / 2, 2001)),
    ]
    out = [_resample(c, spacing) for c in curves]
    # A ring inside the iris so that the iris colour has vertices (thinning drops points near the lids).
    ang = np.linspace(0.0, 2 * np.pi, 9)[:-1]
    ring = np.stack([_EYE_X + 4.5 * np.cos(ang), _EYE_Y + 3.2 * np.sin(ang)], 1)
    out.append(ring)
    return out


# ---------------------------------------------------------------------------------------------------
# Mesh generation.
class _Mesh:
    """An exactly mirror-symmetric triangulated disk, vertices in row-major order (top row first).

    Attributes: ``xy`` (N, 2) base positions in mm, ``triangles`` (F, 3) counter-clockwise in (x, y),
    ``mirror`` (N,), ``landmarks`` dict of index arrays.
    """

    def __init__(self, seed: int, subdivisions: int) -> None:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 7919, subdivisions]))
        h = _SPACING0 / 2.0**subdivisions
        named = _landmark_points()

        # Fixed points: landmarks first (never dropped), then feature-curve points that clear them.
        fixed: list[tuple[float, float]] = list(dict.fromkeys(named.values()))
        fixed_arr = np.array(fixed)
        curve_pts = np.concatenate(_feature_curves(0.85 * h))
        curve_pts = curve_pts[curve_pts[:, 0] < -0.3 * h]  # the midline has its own landmarks
        curve_pts = curve_pts[cKDTree(fixed_arr).query(curve_pts)[0] >= 0.45 * h]
        # Greedy thinning where curves meet (eye and mouth corners): drop a point near a kept earlier one.
        dropped = np.zeros(len(curve_pts), dtype=bool)
        for i, j in sorted(cKDTree(curve_pts).query_pairs(0.45 * h)):
            if not dropped[i]:
                dropped[j] = True
        feat_xy = np.concatenate([fixed_arr, curve_pts[~dropped]])
        feat_p = _xy_to_param(feat_xy)
        on_mid = feat_xy[:, 0] == 0.0
        if np.any(feat_xy[:, 0] > 0.0):
            raise AssertionError("feature points must lie on the left half")

        # Outline: the left arc of the superellipse, top to bottom, at about the lattice spacing.
        theta = np.linspace(np.pi / 2, 3 * np.pi / 2, 4001)
        e = 2.0 / _OUTLINE_POWER

        def outline(th: np.ndarray) -> np.ndarray:
            c, s = np.cos(th), np.sin(th)
            return np.stack([-_SX * np.abs(c) ** e, _SY * np.sign(s) * np.abs(s) ** e], 1)

        arc = outline(theta)
        arc[0], arc[-1] = (0.0, _SY), (0.0, -_SY)
        boundary = _resample(arc, h)
        boundary[0], boundary[-1] = (0.0, _SY), (0.0, -_SY)
        # Put the resampled points back on the curve itself, so the half domain stays convex.
        boundary[1:-1] = outline(np.arctan2(boundary[1:-1, 1] / _SY, boundary[1:-1, 0] / _SX))

        # Jittered hexagonal lattice on the open left half.
        dy = h * np.sqrt(3.0) / 2.0
        off = rng.uniform(0.0, 1.0, size=2) * (h, dy)
        rows = np.arange(-np.ceil(_SY / dy) - 1, np.ceil(_SY / dy) + 2)
        cols = np.arange(-np.ceil(_SX / h) - 2, 1)
        cc, rr = np.meshgrid(cols, rows)
        lat = np.stack([(cc + 0.5 * (rr % 2)) * h + off[0], rr * dy + off[1]], -1).reshape(-1, 2)
        r = 0.28 * h * np.sqrt(rng.uniform(size=len(lat)))
        a = rng.uniform(0.0, 2 * np.pi, size=len(lat))
        lat = lat + np.stack([r * np.cos(a), r * np.sin(a)], 1)
        rad = (np.abs(lat[:, 0] / _SX) ** _OUTLINE_POWER + np.abs(lat[:, 1] / _SY) ** _OUTLINE_POWER) ** (
            1.0 / _OUTLINE_POWER
        )
        ok = (lat[:, 0] < -0.5 * h) & ((1.0 - rad) * min(_SX, _SY) > 0.6 * h)
        lat = lat[ok]
        lat = lat[cKDTree(feat_p).query(lat)[0] > 0.62 * h]

        # Midline points, excluding the ends (on the outline) and what crowds midline landmarks.
        n_mid = int(np.rint(2 * _SY / h))
        mv = np.linspace(-_SY, _SY, n_mid + 1)[1:-1]
        mv = mv + rng.uniform(-0.15, 0.15, size=len(mv)) * h
        mid_feat = feat_p[on_mid][:, 1]
        mv = mv[np.min(np.abs(mv[:, None] - mid_feat[None, :]), axis=1) > 0.55 * h]
        mid = np.concatenate([np.stack([np.zeros_like(mv), mv], 1), feat_p[on_mid], boundary[[0, -1]]])
        mid[:, 0] = 0.0
        left = np.concatenate([boundary[1:-1], lat, feat_p[~on_mid]])

        # Triangulate the closed left half (midline included), then mirror.
        half = np.concatenate([left, mid])
        tri = Delaunay(half)
        if len(tri.coplanar):
            raise AssertionError("Delaunay dropped points of the builtin mesh")
        faces = tri.simplices.astype(np.int64)
        pa, pb, pc = half[faces[:, 0]], half[faces[:, 1]], half[faces[:, 2]]
        area2 = (pb[:, 0] - pa[:, 0]) * (pc[:, 1] - pa[:, 1]) - (pb[:, 1] - pa[:, 1]) * (pc[:, 0] - pa[:, 0])
        faces[area2 < 0] = faces[area2 < 0][:, [0, 2, 1]]  # counter-clockwise in (u, v), hence in (x, y)
        if np.min(np.abs(area2)) < 1e-6 * h * h:
            raise AssertionError("degenerate triangle in the builtin mesh")

        n_l, n_m = len(left), len(mid)
        p_all = np.concatenate([half, left * (-1.0, 1.0)])
        mirror0 = np.concatenate([np.arange(n_l) + n_l + n_m, np.arange(n_l, n_l + n_m), np.arange(n_l)])
        faces_r = np.where(faces < n_l, faces + n_l + n_m, faces)[:, [0, 2, 1]]  # mirroring flips winding
        faces_all = np.concatenate([faces, faces_r])

        # Row-major order (bands of two spacings, top to bottom, then left to right) for memory locality.
        order = np.lexsort((p_all[:, 0], np.floor(-p_all[:, 1] / (2.0 * h))))
        new_of_old = np.empty_like(order)
        new_of_old[order] = np.arange(len(order))
        self.param = p_all[order]
        self.xy = _param_to_xy(self.param)
        self.xy[self.param[:, 0] == 0.0, 0] = 0.0
        self.mirror = new_of_old[mirror0[order]]
        self.triangles = new_of_old[faces_all]

        # Landmark indices: look the left/midline points up among the half's vertices.
        # Left features were appended last to ``left``; midline ones follow the midline lattice points.
        index_of = {tuple(p): i for i, p in enumerate(feat_xy)}
        left_pos = n_l - int((~on_mid).sum()) + np.cumsum(~on_mid) - 1
        mid_pos = n_l + len(mv) + np.cumsum(on_mid) - 1
        feat_vertex = new_of_old[np.where(on_mid, mid_pos, left_pos)]

        def lookup(name: str, side: str) -> int:
            i = int(feat_vertex[index_of[named[name]]])
            if (side == "M") != (named[name][0] == 0.0):
                raise AssertionError(f"landmark {name} side {side} does not match its position")
            return int(self.mirror[i]) if side == "R" else i

        self.landmarks = {
            "aflw21": np.array([lookup(n, s) for n, s in _AFLW21_SPEC], dtype=np.int64),
            "ibug68": np.array([lookup(n, s) for n, s in _IBUG68_SPEC], dtype=np.int64),
        }


# ---------------------------------------------------------------------------------------------------
# Symmetry helpers. ``flip`` is the per-channel sign under mirroring: (−1, 1, 1) for positions and
# displacements, (1, 1, 1) for colours.
_FLIP_SHAPE = np.array([-1.0, 1.0, 1.0])
_FLIP_COLOUR = np.array([1.0, 1.0, 1.0])


def _mirror_image(f: np.ndarray, mirror: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """The mirror image of a per-vertex field (N, 3)."""
    return f[mirror] * flip


def _make_exact(f: np.ndarray, mirror: np.ndarray, flip: np.ndarray, parity: int) -> np.ndarray:
    """Copy the x <= 0 half onto the other so that f[mirror] == parity * flip * f holds bit for bit."""
    s = parity * flip
    idx = np.arange(len(mirror))
    right = mirror < idx  # the later vertex of each pair takes the earlier one's value
    out = f.copy()
    out[right] = f[mirror[right]] * s
    mid = mirror == idx
    out[np.ix_(mid, s < 0)] = 0.0
    return out


def _split_parity(f: np.ndarray, mirror: np.ndarray, flip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric and antisymmetric parts of a field (N, 3)."""
    g = _mirror_image(f, mirror, flip)
    return 0.5 * (f + g), 0.5 * (f - g)


# ---------------------------------------------------------------------------------------------------
# Mean shape.
def _face_parts(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """The height field's parts at base positions (x, y) (M,) mm; keys name features, values are mm.

    ``dx`` is the lateral push of the ears; every other entry adds to z.
    """
    ax = np.abs(x)
    r2 = (ax / 90.0) ** 2.2 + (np.abs(y + 5.0) / 145.0) ** 3
    parts = {"head": -44.0 + 128.0 * np.sqrt(np.clip(1.0 - r2, 1e-3, None))}
    width = 5.0 + 4.0 * np.exp(-0.5 * ((y - 4.0) / 10.0) ** 2)
    ridge = 20.0 * np.exp(-0.5 * ((y - _NOSE_TIP_Y) / np.where(y > _NOSE_TIP_Y, 17.0, 7.0)) ** 2)
    ridge = ridge + 5.0 * _sig((y + 2.0) / 4.0) * _sig((44.0 - y) / 3.0)
    parts["nose"] = (
        ridge * np.exp(-0.5 * (x / width) ** 2)
        + 6.0 * _blob(x, y, 0.0, _NOSE_TIP_Y, 7.0, 6.0)
        + 6.0 * _blob(ax, y, 14.0, -2.0, 5.0, 4.5)
    )
    parts["eyes"] = -10.0 * _blob(ax, y, 33.0, 38.0, 15.0, 10.0) + 5.0 * _blob(ax, y, 33.0, 36.0, 9.0, 5.5)
    parts["brows"] = 5.0 * _blob(ax, y, 30.0, 50.0, 24.0, 8.0) + 2.0 * _blob(x, y, 0.0, 45.0, 10.0, 8.0)
    parts["cheeks"] = 5.0 * _blob(ax, y, 48.0, 12.0, 14.0, 14.0)
    super4 = np.exp(-0.5 * (x / 19.0) ** 4)
    parts["lips"] = (
        4.0 * _blob(x, y, 0.0, -22.0, 18.0, 3.5)
        + 4.0 * _blob(x, y, 0.0, -32.5, 15.0, 3.5)
        - 5.0 * super4 * np.exp(-0.5 * ((y - _MOUTH_Y) / 0.8) ** 2)
    )
    parts["muzzle"] = 7.0 * _blob(x, y, 0.0, -25.0, 30.0, 20.0) - 2.5 * _blob(x, y, 0.0, -43.0, 14.0, 3.5)
    parts["chin"] = 9.0 * _blob(x, y, 0.0, -64.0, 15.0, 10.0)
    below = _jaw_y(x) - y  # > 0 under the jawline
    # Under the chin and jaw the surface recedes to the neck; not at the far sides, already far back.
    side_fade = 1.0 - _smoothstep((ax - 50.0) / 38.0)
    parts["neck"] = -32.0 * _sig((below - 3.0) / 3.0) * _sig((-25.0 - y) / 7.0) * side_fade
    ear = _ear_mask(x, y)
    parts["ears"] = 18.0 * ear - 5.0 * _blob(ax, y, -_EAR_X - 1.0, _EAR_Y - 2.0, 3.0, 7.0)
    parts["dx"] = 5.0 * np.sign(x) * ear
    return parts


def _ear_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The ear flaps: 1 at the ridge (|x| = 84 mm), flat-topped over y ≈ −14..18 mm."""
    return np.exp(-0.5 * ((np.abs(x) + _EAR_X) / 5.0) ** 2) * np.exp(-0.5 * ((y - _EAR_Y - 2.0) / 16.0) ** 4)


def _mean_shape(xy: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    x, y = xy[:, 0], xy[:, 1]
    parts = _face_parts(x, y)
    z = sum(v for k, v in parts.items() if k != "dx")
    return np.stack([x + parts["dx"], y, z], axis=1), parts


# ---------------------------------------------------------------------------------------------------
# Albedo.
def _dist_to_curve(xy: np.ndarray, curve: np.ndarray) -> np.ndarray:
    return cKDTree(curve).query(xy)[0]


def _colour_masks(xy: np.ndarray) -> dict[str, np.ndarray]:
    """Soft feature masks in [0, 1] at base positions (N, 2), symmetric in x."""
    x, y = xy[:, 0], xy[:, 1]
    ax = np.abs(x)
    lx = -ax  # evaluate the left-half curves on the mirrored point
    m: dict[str, np.ndarray] = {}
    inside_x = _sig((_EYE_HALF_WIDTH - np.abs(lx - _EYE_X)) / 0.4)
    m["eye"] = _sig((_upper_lid(lx) - 0.6 - y) / 0.4) * _sig((y - _lower_lid(lx) - 0.6) / 0.4) * inside_x
    r_eye = np.hypot(lx - _EYE_X, y - _EYE_Y)
    m["iris"] = m["eye"] * _sig((5.6 - r_eye) / 0.4)
    m["pupil"] = m["eye"] * _sig((2.2 - r_eye) / 0.3)
    brow = _brow(np.linspace(0.0, 1.0, 400))
    d = _dist_to_curve(np.stack([lx, y], 1), brow)
    t_end = np.clip((lx + 56.0) / 41.0, 0.0, 1.0)
    thick = 2.2 + 1.3 * t_end  # thicker at the inner end
    m["brow"] = _sig((thick - d) / 0.6) * _sig((lx + 58.0) / 1.0) * _sig((-13.0 - lx) / 1.0)
    in_mouth = _sig((_MOUTH_HALF_WIDTH + 0.5 - ax) / 0.4)
    m["lips"] = _sig((_lip_top(lx) + 0.4 - y) / 0.4) * _sig((y - _lip_bottom(lx) + 0.4) / 0.4) * in_mouth
    m["gap"] = _sig((_inner_lip(lx, 1.0) - 0.3 - y) / 0.3) * _sig((y - _inner_lip(lx, -1.0) - 0.3) / 0.3)
    m["gap"] *= _sig((_INNER_HALF_WIDTH - ax) / 0.5)
    m["nostril"] = _blob(ax, y, 7.0, -6.0, 2.6, 1.6)
    m["cheek"] = _blob(ax, y, 45.0, 0.0, 13.0, 11.0)
    m["hair"] = _sig((y - (90.0 - 28.0 * (x / 80.0) ** 2)) / 2.0)
    m["undereye"] = _blob(ax, y, 31.0, 27.0, 11.0, 4.0)
    m["ear"] = _ear_mask(x, y)
    m["neck"] = _sig((_jaw_y(x) - y - 3.0) / 3.0) * _sig((-25.0 - y) / 7.0)
    return m


def _smooth_noise(xy: np.ndarray, rng: np.random.Generator, n_waves: int = 12) -> np.ndarray:
    """A smooth random field (N,), unit RMS over the face: a sum of random plane waves, 12–40 mm long."""
    k = rng.uniform(2 * np.pi / 40.0, 2 * np.pi / 12.0, size=n_waves)
    ang = rng.uniform(0.0, 2 * np.pi, size=n_waves)
    ph = rng.uniform(0.0, 2 * np.pi, size=n_waves)
    w = np.cos(xy[:, :1] * (k * np.cos(ang)) + xy[:, 1:2] * (k * np.sin(ang)) + ph)
    return w.sum(1) / np.sqrt(n_waves / 2.0)


def _mean_colour(xy: np.ndarray, masks: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    y = xy[:, 1]
    skin = np.array([0.80, 0.62, 0.52])
    c = np.tile(skin, (len(xy), 1))
    c *= (1.0 + 0.04 * np.clip(y / 100.0, -1.0, 1.0))[:, None]  # lighter forehead, darker jaw
    c += 0.012 * _smooth_noise(xy, rng)[:, None]  # subtle skin pattern
    blend = [
        ("cheek", np.array([0.84, 0.56, 0.50]), 0.6),
        ("ear", np.array([0.80, 0.56, 0.48]), 0.7),
        ("neck", np.array([0.70, 0.54, 0.46]), 0.6),
        ("undereye", np.array([0.66, 0.50, 0.44]), 0.5),
        ("nostril", np.array([0.38, 0.24, 0.21]), 1.0),
        ("hair", np.array([0.24, 0.16, 0.11]), 1.0),
        ("brow", np.array([0.26, 0.18, 0.13]), 1.0),
        ("lips", np.array([0.72, 0.33, 0.34]), 1.0),
        ("gap", np.array([0.32, 0.10, 0.10]), 1.0),
        ("eye", np.array([0.93, 0.91, 0.88]), 1.0),
        ("iris", np.array([0.30, 0.42, 0.55]), 1.0),
        ("pupil", np.array([0.06, 0.05, 0.05]), 1.0),
    ]
    for key, col, strength in blend:
        w = (strength * masks[key])[:, None]
        c = (1.0 - w) * c + w * col
    return np.clip(c, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------------
# Variation atoms: (field (N, 3), parity) with parity +1 symmetric, −1 antisymmetric. Amplitudes are
# "one standard deviation" of the trait; the PCA below turns them into orthogonal components.
_Atom = tuple[np.ndarray, int]


def _random_blobs(xy: np.ndarray, rng: np.random.Generator, n_fields: int, amp: float) -> list[np.ndarray]:
    """Smooth random displacement/colour fields (N, 3): sums of three Gaussian blobs with random vectors."""
    out = []
    for _ in range(n_fields):
        f = np.zeros((len(xy), 3))
        for _ in range(3):
            cx, cy = rng.uniform(-70.0, 70.0), rng.uniform(-90.0, 85.0)
            s = rng.uniform(12.0, 30.0)
            f += rng.normal(size=3) * amp * _blob(xy[:, 0], xy[:, 1], cx, cy, s, s)[:, None]
        out.append(f)
    return out


def _identity_atoms(
    xy: np.ndarray, mean: np.ndarray, parts: dict[str, np.ndarray], mirror: np.ndarray, rng: np.random.Generator
) -> list[_Atom]:
    x, y, z = xy[:, 0], xy[:, 1], mean[:, 2]
    ax, zero = np.abs(x), np.zeros_like(x)
    ear = _ear_mask(x, y)
    cheek = _blob(ax, y, 50.0, -10.0, 16.0, 20.0)

    def f(dx: np.ndarray = zero, dy: np.ndarray = zero, dz: np.ndarray = zero) -> np.ndarray:
        return np.stack([dx + zero, dy + zero, dz + zero], axis=1)

    sym = [
        f(dx=0.04 * x, dy=0.04 * (y - _Y_CENTRE), dz=0.04 * (z - 40.0)),  # overall size
        f(dx=0.035 * x),  # face width
        f(dy=0.03 * (y - _Y_CENTRE)),  # face height
        f(dz=0.08 * (z - parts["head"])),  # relief of all features
        f(dz=0.12 * parts["nose"], dy=-1.5 * _blob(x, y, 0.0, 2.0, 10.0, 10.0)),  # nose size, tip droop
        f(dx=0.12 * x * _blob(x, y, 0.0, 5.0, 14.0, 16.0)),  # nose width
        f(dx=0.06 * x * _sig((-20.0 - y) / 12.0)),  # jaw width
        f(dz=0.3 * parts["chin"], dy=-2.0 * _blob(x, y, 0.0, -66.0, 18.0, 14.0)),  # chin
        f(dx=2.0 * np.tanh(x / 8.0) * _blob(ax, y, 33.0, 36.0, 14.0, 10.0)),  # eye spacing
        f(dz=-0.06 * (y - 45.0) * _sig((y - 45.0) / 6.0)),  # forehead slope
        f(dz=3.0 * cheek, dx=1.5 * np.sign(x) * cheek),  # cheek fullness
        f(dz=0.4 * parts["lips"] + 1.0 * _blob(x, y, 0.0, -27.0, 20.0, 10.0)),  # lip fullness
        f(dx=0.1 * x * _blob(x, y, 0.0, _MOUTH_Y, 30.0, 10.0)),  # mouth width
        f(dx=3.0 * np.sign(x) * ear, dz=3.0 * ear),  # ear protrusion
        f(dz=0.5 * parts["brows"]),  # brow ridge
        f(dz=0.3 * parts["eyes"]),  # eye depth
        f(dy=-2.5 * _sig((-20.0 - y) / 8.0)),  # lower-face length
        f(dz=-4.0 * (ax / _X_HALF) ** 2),  # head roundness
    ]
    anti = [
        f(dx=2.5 * _blob(x, y, 0.0, 10.0, 10.0, 22.0)),  # nose deviation
        f(dx=2.5 * _sig((-30.0 - y) / 10.0)),  # jaw shift
        f(dz=4.0 * _blob(x, y, -45.0, -5.0, 18.0, 22.0)),  # one fuller cheek
        f(dy=2.0 * _blob(x, y, _EYE_X, _EYE_Y, 14.0, 10.0)),  # one eye higher
        f(dy=2.0 * _blob(x, y, -_MOUTH_HALF_WIDTH, _MOUTH_Y, 10.0, 10.0)),  # mouth slant
        f(dy=4.0 * ear * (x < 0)),  # one ear higher
    ]
    atoms: list[_Atom] = [(a, 1) for a in sym]
    atoms += [(_split_parity(a, mirror, _FLIP_SHAPE)[1], -1) for a in anti]
    for field in _random_blobs(xy, rng, 6, 1.0):
        s, a = _split_parity(field, mirror, _FLIP_SHAPE)
        atoms += [(s, 1), (a, -1)]
    return atoms


def _expression_atoms(xy: np.ndarray, mean: np.ndarray, mirror: np.ndarray) -> list[_Atom]:
    x, y, z = xy[:, 0], xy[:, 1], mean[:, 2]
    ax = np.abs(x)
    # Lower-face weight: 1 below the mouth line, 0 above; the step is sharp inside the mouth band and
    # broad on the cheeks, so opening the mouth stretches the band and the cheeks, not the lips.
    width = 0.5 + 10.0 * _smoothstep((ax - 15.0) / 25.0)
    lower = _sig((_MOUTH_Y - y) / width) * (1.0 - _smoothstep((ax - 40.0) / 30.0))
    lower = lower * (1.0 - 0.6 * _sig((_jaw_y(x) - y - 3.0) / 3.0) * _sig((-25.0 - y) / 7.0))
    theta = 0.03  # jaw rotation (rad) about a hinge at y = 15, z = 0
    corner = _blob(ax, y, _MOUTH_HALF_WIDTH, _MOUTH_Y, 9.0, 8.0)
    cheek = _blob(ax, y, 42.0, -5.0, 14.0, 12.0)
    brow = _blob(ax, y, 30.0, 58.0, 26.0, 14.0)
    inner_brow = _blob(ax, y, 18.0, 50.0, 10.0, 8.0)
    gap = _upper_lid(-ax) - _lower_lid(-ax)
    lid = np.clip(gap, 0.0, None) * _sig((_EYE_HALF_WIDTH + 1.0 - np.abs(-ax - _EYE_X)) / 1.5)
    above_lid = np.clip(y - _upper_lid(-ax), 0.0, None)  # the lid skin up to the brow follows, fading
    lid = lid * _sig((y - _lower_lid(-ax) - 0.5) / 0.5) * np.exp(-0.5 * (above_lid / 5.0) ** 2)
    mouth = _blob(x, y, 0.0, _MOUTH_Y, 22.0, 10.0)
    zero = np.zeros_like(x)

    def f(dx: np.ndarray = zero, dy: np.ndarray = zero, dz: np.ndarray = zero) -> np.ndarray:
        return np.stack([dx + zero, dy + zero, dz + zero], axis=1)

    smile = f(dx=4.5 * np.sign(x) * corner, dy=5.4 * corner + 1.8 * cheek, dz=-1.8 * corner + 2.7 * cheek)
    sym = [
        f(dy=-theta * z * lower, dz=theta * (y - 15.0) * lower),  # mouth open (jaw drop)
        smile,
        f(dy=3.3 * brow, dz=0.55 * brow),  # brow raise
        # Eyes closing (fully at 1.6 standard deviations), squinting: brows down, cheeks up.
        f(dy=-0.6 * lid - 1.8 * brow + 1.5 * _blob(ax, y, 38.0, 15.0, 14.0, 10.0)),
        f(dx=-0.28 * x * mouth, dz=5.6 * mouth),  # pucker
        f(dx=-3.5 * np.sign(x) * inner_brow, dy=-4.7 * inner_brow),  # frown
    ]
    smirk = 0.7 * smile * (x < 0)[:, None]
    return [(a, 1) for a in sym] + [(_split_parity(smirk, mirror, _FLIP_SHAPE)[1], -1)]


def _texture_atoms(
    xy: np.ndarray, colour: np.ndarray, masks: dict[str, np.ndarray], mirror: np.ndarray, rng: np.random.Generator
) -> list[_Atom]:
    skin = 1.0 - np.clip(masks["eye"] + masks["brow"] + masks["hair"] + masks["lips"] + masks["gap"], 0.0, 1.0)
    s = skin[:, None]
    one = np.ones((len(xy), 3))
    sym = [
        0.10 * colour * s,  # lighter/darker skin
        np.array([0.035, -0.01, -0.01]) * s,  # redness
        np.array([0.015, 0.01, -0.035]) * s,  # yellow / tan
        -0.08 * masks["brow"][:, None] * one,  # brow darkness
        np.array([0.06, -0.03, -0.01]) * masks["lips"][:, None],  # lip colour
        np.array([0.05, -0.01, -0.01]) * masks["cheek"][:, None],  # blush
        np.array([0.08, 0.02, -0.08]) * masks["iris"][:, None] * (1.0 - masks["pupil"][:, None]),  # iris
        0.07 * masks["hair"][:, None] * one,  # hair shade
        -0.04 * masks["undereye"][:, None] * one,  # dark circles
    ]
    atoms: list[_Atom] = [(a, 1) for a in sym]
    for field in _random_blobs(xy, rng, 6, 0.025):
        fs, fa = _split_parity(field * s, mirror, _FLIP_COLOUR)
        atoms += [(fs, 1), (fa, -1)]
    return atoms


def _pca(
    atoms: Sequence[_Atom],
    n_keep: int,
    rng: np.random.Generator,
    mirror: np.ndarray,
    flip: np.ndarray,
    n_samples: int = 400,
) -> np.ndarray:
    """Principal components of random combinations of the atoms and their mirror images.

    Samples w ~ N(0, I) over the atoms (``n_samples`` of them). Adding each sample's mirror image
    cancels the covariance between symmetric and antisymmetric atoms, so the components split into
    exactly symmetric and exactly antisymmetric ones. Solved in the small atom space: with
    S = WᵀW / n = R Rᵀ and Gram K = A Aᵀ, the components are (R V)ᵀ A for the eigenvectors V of RᵀKR.

    Returns:
        Components (n_keep, N, 3), each a unit direction times its standard deviation, descending.
    """
    w = rng.standard_normal((n_samples, len(atoms)))
    second = w.T @ w / n_samples
    parity = np.array([p for _, p in atoms])
    n = len(mirror)
    blocks = []  # (stds, atom weights of each component, fields, parity) per parity
    for par in (1, -1):
        sel = np.flatnonzero(parity == par)
        if len(sel) == 0:
            continue
        a = np.stack([atoms[i][0].reshape(-1) for i in sel])  # (Q, 3N)
        r = np.linalg.cholesky(second[np.ix_(sel, sel)])
        mu, v = np.linalg.eigh(r.T @ (a @ a.T) @ r)
        coef = (r @ v).T  # row k: the atom weights of component k
        coef *= np.sign(coef[np.arange(len(sel)), np.argmax(np.abs(coef), axis=1)])[:, None]  # fixed sign
        blocks.append((np.sqrt(np.clip(mu, 0.0, None)), coef, a, par))
    stds = np.concatenate([b[0] for b in blocks])
    if n_keep > len(stds):
        raise ValueError(f"asked for {n_keep} components but the builtin model has only {len(stds)} here")
    which = np.concatenate([np.full(len(b[0]), i) for i, b in enumerate(blocks)])
    local = np.concatenate([np.arange(len(b[0])) for b in blocks])
    order = np.argsort(-stds, kind="stable")[:n_keep]
    out = np.empty((n_keep, n, 3))
    for bi, (_, coef, a, par) in enumerate(blocks):
        slots = np.flatnonzero(which[order] == bi)
        if len(slots):
            comps = (coef[local[order[slots]]] @ a).reshape(-1, n, 3)
            for slot, c in zip(slots, comps, strict=True):
                out[slot] = _make_exact(c, mirror, flip, par)
    return out


# ---------------------------------------------------------------------------------------------------
def _check_count(name: str, value: int, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= limit:
        raise ValueError(f"{name}={value!r}: the builtin model supports integers in [0, {limit}]")
    return int(value)


# Atom counts (the most components the generators can give).
_N_IDENTITY_MAX, _N_EXPRESSION_MAX, _N_TEXTURE_MAX = 36, 7, 21


@functools.lru_cache(maxsize=8)
def _build(seed: int, n_identity: int, n_expression: int, subdivisions: int, n_texture: int) -> MorphableModel:
    streams = np.random.SeedSequence([seed, 104729]).spawn(3)
    rng_id, rng_exp, rng_tex = (np.random.default_rng(s) for s in streams)
    mesh = _Mesh(seed, subdivisions)
    mirror = mesh.mirror
    mean, parts = _mean_shape(mesh.xy)
    mean = _make_exact(mean, mirror, _FLIP_SHAPE, 1)

    identity = _pca(_identity_atoms(mesh.xy, mean, parts, mirror, rng_id), n_identity, rng_id, mirror, _FLIP_SHAPE)
    expression = _pca(_expression_atoms(mesh.xy, mean, mirror), n_expression, rng_exp, mirror, _FLIP_SHAPE)
    basis = np.concatenate([identity, expression])

    masks = _colour_masks(mesh.xy)
    colour = _make_exact(_mean_colour(mesh.xy, masks, rng_tex), mirror, _FLIP_COLOUR, 1)
    texture = None
    if n_texture:
        tex_atoms = _texture_atoms(mesh.xy, colour, masks, mirror, rng_tex)
        texture = _pca(tex_atoms, n_texture, rng_tex, mirror, _FLIP_COLOUR)

    def t(a: np.ndarray | None) -> torch.Tensor | None:
        return None if a is None else torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    return MorphableModel(
        name="builtin",
        mean=t(mean),
        basis=t(basis),
        n_identity=n_identity,
        triangles=torch.from_numpy(mesh.triangles),
        landmarks={k: torch.from_numpy(v) for k, v in mesh.landmarks.items()},
        uv=None,
        colour=t(colour),
        texture_basis=t(texture),
        mirror=torch.from_numpy(mesh.mirror),
        licence=_LICENCE,
        source=f"built in code (seed={seed}, subdivisions={subdivisions})",
    )


def builtin_model(
    seed: int = BUILTIN_SEED,
    n_identity: int = 10,
    n_expression: int = 5,
    subdivisions: int = 0,
    n_texture: int = 10,
) -> MorphableModel:
    """The built-in synthetic face model, deterministic in its arguments (module docstring: how).

    Args:
        seed: random seed of the mesh jitter, the sampled variations and the skin pattern.
        n_identity: identity components to keep, 0..36 (symmetric and antisymmetric mixed, by std).
        n_expression: expression components to keep, 0..7 (mouth open, smile, brow raise, ...).
        subdivisions: mesh refinement, 0..3; each step about 4× the vertices (3.4k, 13.5k, 53.5k,
            213k). Landmarks stay at the same places; the bases describe the same variations.
        n_texture: albedo components to keep, 0..21; 0 gives ``texture_basis=None``.

    Returns:
        A :class:`MorphableModel` with float32 ``mean`` (N, 3) mm, ``basis`` (D, N, 3) mm with
        D = n_identity + n_expression, ``triangles`` (F, 3) counter-clockwise from the front,
        ``mirror`` (N,), ``colour`` (N, 3) in [0, 1], ``texture_basis`` (K, N, 3), landmark sets
        ``"aflw21"`` and ``"ibug68"``, and ``uv=None``. Built once per argument tuple (about 0.05 s at
        subdivisions=0, 0.3 s at 2) and cached; every call returns fresh tensors, safe to modify in place.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer")
    args = (
        int(seed),
        _check_count("n_identity", n_identity, _N_IDENTITY_MAX),
        _check_count("n_expression", n_expression, _N_EXPRESSION_MAX),
        _check_count("subdivisions", subdivisions, _MAX_SUBDIVISIONS),
        _check_count("n_texture", n_texture, _N_TEXTURE_MAX),
    )
    m = _build(*args)
    clone: Callable[[torch.Tensor | None], torch.Tensor | None] = lambda a: None if a is None else a.clone()  # noqa: E731
    return m.with_fields(
        mean=clone(m.mean),
        basis=clone(m.basis),
        triangles=clone(m.triangles),
        landmarks={k: v.clone() for k, v in m.landmarks.items()},
        colour=clone(m.colour),
        texture_basis=clone(m.texture_basis),
        mirror=clone(m.mirror),
    )


def clear_builtin_cache() -> None:
    """Forget the cached models (tests use it to check that a rebuild gives identical arrays)."""
    _build.cache_clear()
