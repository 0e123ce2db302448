"""The default face model, built from the ICT FaceKit "Face Model Light" (MIT licence).

This is the method's own model-preparation pipeline, run once on the FaceKit to produce the shipped asset
``mmstn/models/assets/ict_face.npz`` (``python -m mmstn.models.ict --source DIR --out FILE``):

1. read the FaceKit's own format (``generic_neutral_mesh.obj``, ``identityNNN.obj``, the expression OBJs
   named in ``vertex_indices.json``) or the face-region extract ``ict_face_model_light_face9409.npz``;
2. crop the face region the BFM covers (forehead to chin, ear to ear; the scalp, neck and the back of the
   ears are dropped), keep the largest component;
3. make it exactly mirror-symmetric (:func:`meshtools.symmetrise`: the x <= 0 half is reflected);
4. close the eye and mouth holes by centroid fans so the mesh is a disk (one boundary loop);
5. convert centimetres to millimetres; move the origin to the midpoint of the two AFLW ear points (the
   FaceKit is already y up, z towards the viewer, like the BFM), triangles counter-clockwise from the front;
6. identity: the upstream modes are samples with N(0, 1) weights but not orthogonal; their mirror-augmented
   PCA (:func:`meshtools.orthogonalise_basis`) gives orthogonal components ordered by variance with α ~ N(0, I);
7. expression: the 53 blendshape deltas (blendshape − neutral), each taken as a sample at weight
   ``EXPRESSION_WEIGHT_SD`` (a typical activation), mirror-augmented and PCA'd the same way;
8. landmarks: iBUG-68 from the FaceKit's own Multi-PIE ids (nearest vertex of the symmetric mesh, the
   viewer's-right half set by the mirror map so the set is mirror-consistent); AFLW-21 from the iBUG points
   (brow corners/centres, eye corners, eye centres as the nearest vertex to the mean of the 6 eye points,
   nose wings 32/36 and tip 31, mouth corners 49/55 and centre, chin 9). AFLW's two ear points are the ear
   lobes where they join the cheek (otobasion inferius): at the height of the nose base (iBUG 34), the most
   lateral vertex less than ``EAR_DEPTH_MM`` behind the top of the jawline (iBUG 1 / 17), i.e. in front
   of the ear's rim;
9. texture: the FaceKit has no albedo. A principled stand-in: a mean skin tone (sRGB 0.78, 0.58, 0.48) with
   smooth tints (redder lips and cheeks, darker brows, dark eye/mouth fill), and four smooth symmetric colour
   modes with standard deviation ``TEXTURE_SD``: overall brightness, red–yellow balance, lip redness and a
   top-to-bottom gradient. No photo was used.

The model carries no per-vertex UVs: the FaceKit's UVs have seams and would not survive symmetrisation;
the symmetric Tutte flattening (:mod:`mmstn.uv`) is the model's flattening.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from . import meshtools as mt
from .landmarks import IBUG68_FLIP
from .morphable import MorphableModel

__all__ = ["ASSET", "build_ict_model", "ict_face_model", "read_facekit", "read_obj"]

ASSET = Path(__file__).with_name("assets") / "ict_face.npz"
LICENCE_FILE = Path(__file__).with_name("assets") / "ICT-FaceKit-NOTICE.md"
LICENCE = (
    "MIT (ICT FaceKit, Copyright (c) 2020 USC Institute for Creative Technologies; "
    "see mmstn/models/assets/ICT-FaceKit-NOTICE.md)"
)
#: the extract's face geometry is vertices 0..9408 of the neutral mesh
FACE_VERTICES = 9409
#: crop box in cm (FaceKit frame): |x| ear to ear, y from below the chin to the upper forehead, z in front
CROP_CM = {"x": 7.9, "y_min": -9.5, "y_max": 8.0, "z_min": 0.5}
EXPRESSION_WEIGHT_SD = 0.5
TEXTURE_SD = 0.04
N_IDENTITY = 30
N_EXPRESSION = 10
#: how far behind the top of the jawline (mm, -z) the ear-lobe landmark may lie; further back is the ear's rim
EAR_DEPTH_MM = 20.0


def read_obj(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (N, 3) and triangles (F, 3, 0-based) of an OBJ file; polygons are fan-triangulated."""
    verts: list[list[float]] = []
    faces: list[list[int]] = []
    with Path(path).open() as fh:
        for line in fh:
            if line.startswith("v "):
                verts.append([float(t) for t in line.split()[1:4]])
            elif line.startswith("f "):
                ids = [int(t.split("/")[0]) - 1 for t in line.split()[1:]]
                faces += [[ids[0], ids[k], ids[k + 1]] for k in range(1, len(ids) - 1)]
    return np.asarray(verts, np.float64), np.asarray(faces, np.int64).reshape(-1, 3)


def read_facekit(source: str | Path, n_face: int = FACE_VERTICES) -> dict[str, np.ndarray]:
    """Read the FaceKit's own format (OBJ files) or the face-region extract npz from directory ``source``.

    Returns a dict with ``mean`` (N, 3) cm, ``triangles`` (F, 3), ``identity`` (K, N, 3) cm per unit weight,
    ``expression`` (E, N, 3) cm at full activation, ``landmarks68`` (68,) vertex ids.
    """
    source = Path(source)
    neutral = source / "generic_neutral_mesh.obj"
    ids = sorted(source.glob("identity[0-9][0-9][0-9].obj"))
    info = json.loads((source / "vertex_indices.json").read_text()) if (source / "vertex_indices.json").exists() else {}
    if neutral.exists() and ids:
        mean, F = read_obj(neutral)
        n_face = min(n_face, len(mean))
        identity = np.stack([read_obj(p)[0][:n_face] - mean[:n_face] for p in ids])
        names = [n for n in info.get("expressions", []) if (source / f"{n}.obj").exists()]
        expression = (
            np.stack([read_obj(source / f"{n}.obj")[0][:n_face] - mean[:n_face] for n in names])
            if names
            else np.zeros((0, n_face, 3))
        )
        lm = np.asarray(_landmark_ids(source, info), np.int64)
        F = F[(F < n_face).all(1)]
        return {
            "mean": mean[:n_face],
            "triangles": F,
            "identity": identity,
            "expression": expression,
            "landmarks68": lm,
        }
    npz = sorted(source.glob("ict_face_model_light_face*.npz"))
    if not npz:
        raise FileNotFoundError(
            f"{source}: neither the FaceKit OBJ files (generic_neutral_mesh.obj, "
            "identityNNN.obj) nor ict_face_model_light_face*.npz; pass --source DIR"
        )
    with np.load(npz[0]) as z:
        return {
            "mean": z["mean"].astype(np.float64),
            "triangles": z["triangles"].astype(np.int64),
            "identity": z["identity_modes"].astype(np.float64),
            "expression": z["expression_modes"].astype(np.float64),
            "landmarks68": z["landmarks_multipie68"].astype(np.int64),
        }


def _landmark_ids(source: Path, info: dict) -> list[int]:
    """The 68 Multi-PIE landmark vertex ids: ``idx_to_landmark_verts`` of vertex_indices.json (the FaceKit's
    own list), else ``landmarks_multipie68`` there or in the extract npz."""
    for key in ("idx_to_landmark_verts", "landmarks_multipie68"):
        if len(info.get(key, [])) == 68:
            return list(info[key])
    for npz in sorted(source.glob("ict_face_model_light_face*.npz")):
        with np.load(npz) as z:
            return z["landmarks_multipie68"].tolist()
    raise FileNotFoundError(f"{source}: vertex_indices.json has no 68-entry 'idx_to_landmark_verts' list")


def _sym_landmarks(V: np.ndarray, mirror: np.ndarray, points: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """Nearest vertices to ``points`` (L, 3), made mirror-consistent: idx[flip[k]] = mirror[idx[k]]."""
    _, idx = cKDTree(V).query(points)
    idx = idx.astype(np.int64)
    mid = np.flatnonzero(mirror == np.arange(len(V)))
    for k in range(len(idx)):
        j = int(flip[k])
        if j == k:  # a midline landmark goes on the nearest midline vertex
            idx[k] = mid[np.argmin(np.linalg.norm(V[mid] - points[k], axis=1))]
        elif k < j:  # the pair's viewer's-left (smaller x) point decides, its partner is its mirror image
            left = k if points[k, 0] <= points[j, 0] else j
            v = int(idx[left])
            if V[v, 0] > 0:
                v = int(mirror[v])
            idx[left], idx[k + j - left] = v, mirror[v]
    return idx


def _aflw_from_ibug(V: np.ndarray, ib: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """The 21 AFLW points in the paper's order from the iBUG-68 vertex ids (0-based iBUG numbering)."""

    def near(p: np.ndarray) -> int:
        return int(np.argmin(np.linalg.norm(V - p, axis=1)))

    eye_l, eye_r = near(V[ib[36:42]].mean(0)), near(V[ib[42:48]].mean(0))

    def ear_lobe(jaw_top: int) -> int:
        side = np.sign(V[jaw_top, 0])
        band = (np.abs(V[:, 1] - V[ib[33], 1]) < 3.0) & (np.sign(V[:, 0]) == side)
        band &= V[:, 2] > V[jaw_top, 2] - EAR_DEPTH_MM
        cand = np.flatnonzero(band)
        return int(cand[np.argmax(np.abs(V[cand, 0]))])

    mouth = near(0.5 * (V[ib[51]] + V[ib[57]]))
    ids = [
        ib[17],
        ib[19],
        ib[21],
        ib[22],
        ib[24],
        ib[26],
        ib[36],
        eye_l,
        ib[39],
        ib[42],
        eye_r,
        ib[45],
        ear_lobe(ib[0]),
        ib[31],
        ib[30],
        ib[35],
        ear_lobe(ib[16]),
        ib[48],
        mouth,
        ib[54],
        ib[8],
    ]
    from .landmarks import AFLW21_FLIP

    return _sym_landmarks(V, mirror, V[np.asarray(ids)], AFLW21_FLIP)


def _texture(V: np.ndarray, fill: np.ndarray, ib: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean albedo (N, 3) and 4 smooth symmetric colour modes (4, N, 3); see the module docstring."""

    def bump(centre: np.ndarray, r: float) -> np.ndarray:
        return np.exp(-np.sum((V - centre) ** 2, axis=1) / (2 * r * r))

    skin = np.array([0.78, 0.58, 0.48])
    c = np.tile(skin, (len(V), 1))
    lips = bump(V[ib[[51, 57]]].mean(0), 9.0)
    cheeks = bump(V[ib[2]] * [0.7, 1, 1] + [0, 0, 8], 14.0) + bump(V[ib[14]] * [0.7, 1, 1] + [0, 0, 8], 14.0)
    brows = sum(bump(V[ib[k]], 5.0) for k in (18, 19, 20, 23, 24, 25))
    c += lips[:, None] * np.array([0.0, -0.22, -0.15]) + cheeks[:, None] * np.array([0.03, -0.03, -0.03])
    c += np.minimum(brows, 1)[:, None] * np.array([-0.35, -0.3, -0.25])
    c[fill] = [0.2, 0.12, 0.1]
    y = (V[:, 1] - V[:, 1].mean()) / np.ptp(V[:, 1])
    ones = np.ones(len(V))
    modes = (
        np.stack(
            [
                ones[:, None] * np.array([1.0, 1.0, 1.0]),
                ones[:, None] * np.array([0.8, -0.2, -0.6]),
                lips[:, None] * np.array([1.0, -0.5, -0.3]) * 3,
                y[:, None] * np.array([1.0, 1.0, 1.0]) * 2,
            ]
        )
        * TEXTURE_SD
    )
    return np.clip(c, 0.02, 0.98), modes


def _exact_sym(B: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Each component (K, N, 3) replaced by its exactly symmetric or antisymmetric part, whichever dominates."""
    flip = np.array([-1.0, 1.0, 1.0])
    out = np.empty_like(B)
    for k, b in enumerate(B):
        m = b[mirror] * flip
        s, a = 0.5 * (b + m), 0.5 * (b - m)
        out[k] = s if np.sum(s * s) >= np.sum(a * a) else a
    return out


def build_ict_model(
    source: str | Path,
    *,
    n_identity: int = N_IDENTITY,
    n_expression: int = N_EXPRESSION,
    crop_cm: dict[str, float] | None = None,
) -> MorphableModel:
    """Build the default :class:`MorphableModel` from a FaceKit directory (see the module docstring)."""
    d = read_facekit(source)
    box = dict(CROP_CM if crop_cm is None else crop_cm)
    V0, F0 = d["mean"], d["triangles"]
    mt.check_mesh(V0, F0, name=str(source))
    lm_pts = V0[d["landmarks68"]]
    x, y, z = V0.T
    mask = (np.abs(x) <= box["x"]) & (y >= box["y_min"]) & (y <= box["y_max"]) & (z >= box["z_min"])
    Vc, Fc, idx = mt.crop(V0, F0, mask)
    Vs, Fs, mirror, src = mt.symmetrise(Vc, Fc)
    src = idx[src]
    n_open = len(Vs)
    Vf, Ff = mt.close_holes(Vs, Fs)
    fill = np.arange(n_open, len(Vf))
    # fill vertices: the centroid of a symmetric loop pair is the reflection of its partner's centroid
    fc = Vf[fill]
    if len(fill):
        _, j = cKDTree(fc * [-1, 1, 1]).query(fc)
        Vf[fill[j]] = fc * [-1, 1, 1]
        Vf[fill[j == np.arange(len(fill))], 0] = 0.0
        mirror = np.concatenate([mirror, fill[j]])
        # half-average so the pair is exactly mirrored in float arithmetic
        Vf[fill] = 0.5 * (Vf[fill] + Vf[mirror[fill]] * [-1, 1, 1])
    V = 10.0 * Vf  # cm -> mm
    loops = [Vs[lp] for lp in mt.boundary_loops(Fs)[1:]]

    def carry(modes: np.ndarray) -> np.ndarray:
        """Modes (K, N0, 3) cm -> symmetric mesh (K, N, 3) mm; fill vertices take their loop's mean."""
        m = modes[:, src, :]
        fills = [m[:, cKDTree(Vs).query(lp)[1]].mean(1) for lp in loops]
        if fills:
            m = np.concatenate([m, np.stack(fills, 1)], 1)
        return 10.0 * mt.symmetrise_field(m, mirror)

    ident, _ = mt.orthogonalise_basis(carry(d["identity"]), n_identity, mirror=mirror)
    ident = _exact_sym(ident, mirror)
    parts = [ident]
    if len(d["expression"]) and n_expression:
        ex, _ = mt.orthogonalise_basis(carry(d["expression"]) * EXPRESSION_WEIGHT_SD, n_expression, mirror=mirror)
        parts.append(_exact_sym(ex, mirror))
    basis = np.concatenate(parts)
    ib = _sym_landmarks(V, mirror, 10.0 * lm_pts, IBUG68_FLIP)
    aflw = _aflw_from_ibug(V, ib, mirror)
    origin = 0.5 * (V[aflw[12]] + V[aflw[16]])
    origin[0] = 0.0
    V = V - origin
    colour, tex = _texture(V, fill, ib)
    return MorphableModel(
        name="ICT FaceKit face (symmetric, PCA)",
        mean=V.astype(np.float32),
        basis=basis.astype(np.float32),
        n_identity=len(ident),
        triangles=Ff,
        landmarks={"ibug68": ib, "aflw21": aflw},
        colour=colour.astype(np.float32),
        texture_basis=tex.astype(np.float32),
        mirror=mirror,
        licence=LICENCE,
        source="ICT FaceKit Face Model Light via mmstn.models.ict",
    )


def ict_face_model() -> MorphableModel:
    """The shipped default face model (``mmstn/models/assets/ict_face.npz``)."""
    return MorphableModel.load(ASSET)


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m mmstn.models.ict --source DIR --out FILE``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True, help="FaceKit directory (OBJ files or the extract npz)")
    p.add_argument("--out", default=str(ASSET))
    a = p.parse_args(argv)
    model = build_ict_model(a.source)
    out = model.save(a.out)
    print(model.describe(), f"\nwrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
