"""Which vertex of a morphable model each of the face mesh's 468 points lies on.

The face mesh (:mod:`mmstn.photos.landmarker`) has its own topology. Rather than transcribing a table, the
correspondence is measured: the model is rendered in random poses, identities and expressions, the face mesh
is run on each render, and the surface point under each of its 468 points is read off the rasteriser's
triangle and barycentric weights, in the coordinates of the mean shape. The per-point median over the
renders, snapped to the nearest vertex, is the correspondence; the median distance of the renders' points
from it (the spread, mm) says how well defined the point is, and :mod:`mmstn.photos.fit` weights each point
by ``1 / (1 + (spread / SPREAD_MM)²)``. Points the face mesh places off the model in most renders
(e.g. a model without a forehead) get weight 0.

The default model's correspondence is shipped (``mmstn/models/assets/ict_mediapipe468.npz``, rebuilt by
``python -m mmstn.photos.correspondence --out FILE``); other models get theirs built on first use (about a
minute on two cores) and cached under ``$MMSTN_CACHE`` (default ``~/.cache/mmstn``), keyed by the model's
fingerprint.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import torch

from mmstn.data.synthetic import model_fingerprint
from mmstn.models.ict import ict_face_model
from mmstn.models.morphable import MorphableModel
from mmstn.models.registry import load_model
from mmstn.render import Lighting, render_face
from mmstn.runtime import atomic_write
from mmstn.theta import THETA_ALPHA, THETA_LOGS, THETA_R, THETA_T, theta_size
from mmstn.transforms import euler_to_axis_angle_np

from .landmarker import MESH_POINTS, FaceBox, MediaPipeFaces

__all__ = ["ASSET", "SPREAD_MM", "MeshCorrespondence", "build_correspondence", "correspondence_for"]

ASSET = Path(__file__).resolve().parents[1] / "models" / "assets" / "ict_mediapipe468.npz"
#: spread (mm) at which a point's weight halves
SPREAD_MM = 4.0
#: a point must land on the model in at least this fraction of the renders to be used
MIN_HIT_FRACTION = 0.5
SKIN = (0.78, 0.58, 0.48)


@dataclass(frozen=True)
class MeshCorrespondence:
    """Face-mesh point k lies on model vertex ``vertex[k]``.

    Attributes:
        vertex: (468,) int64 vertex ids of the model.
        weight: (468,) float64 in [0, 1]: how well defined each point is (0: unused).
        spread: (468,) float64 mm: median distance of the renders' surface points from ``vertex[k]``.
        fingerprint: the model's fingerprint (:func:`mmstn.data.synthetic.model_fingerprint`).
    """

    vertex: np.ndarray
    weight: np.ndarray
    spread: np.ndarray
    fingerprint: str

    def save(self, path: str | Path | IO[bytes]) -> None:
        np.savez_compressed(
            path,
            vertex=self.vertex.astype(np.int32),
            weight=self.weight,
            spread=self.spread,
            fingerprint=np.array(self.fingerprint),
        )

    @classmethod
    def load(cls, path: str | Path) -> MeshCorrespondence:
        try:
            with np.load(path) as d:
                c = cls(
                    vertex=d["vertex"].astype(np.int64),
                    weight=d["weight"].astype(np.float64),
                    spread=d["spread"].astype(np.float64),
                    fingerprint=str(d["fingerprint"]),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: not a face-mesh correspondence file ({exc}); delete it to rebuild") from exc
        if c.vertex.shape != (MESH_POINTS,):
            raise ValueError(f"{path}: expected {MESH_POINTS} points, got {c.vertex.shape}; delete it to rebuild")
        return c


def _fingerprint(model: MorphableModel) -> str:
    return model_fingerprint(model)


def build_correspondence(
    model: MorphableModel, n_renders: int = 48, image_size: int = 256, seed: int = 0, verbose: bool = False
) -> MeshCorrespondence:
    """Measure the correspondence by rendering ``model`` (see the module docstring).

    Args:
        model: any morphable model with triangles (its albedo if it has one, else a skin tone).
        n_renders: renders (yaw in ±35°, pitch ±15°, roll ±10°, α ~ N(0, 0.7²)).
        image_size: render size, pixels.

    Raises:
        ImportError: the ``photos`` extra is missing.
        RuntimeError: the face mesh found the model in fewer than 4 renders.
    """
    faces = MediaPipeFaces()
    rng = np.random.default_rng(seed)
    mean = model.mean.detach().double().numpy()
    tri = model.triangles.numpy()
    extent = float(np.ptp(mean[:, 0]))
    albedo = None if model.colour is not None else torch.tensor(SKIN).expand(model.n_vertices, 3)
    hits: list[list[np.ndarray]] = [[] for _ in range(MESH_POINTS)]
    found = 0
    S = image_size
    for i in range(n_renders):
        yaw, pitch, roll = np.deg2rad([rng.uniform(-35, 35), rng.uniform(-15, 15), rng.uniform(-10, 10)])
        theta = torch.zeros(theta_size(model.n_components), dtype=torch.float64)
        theta[THETA_R] = torch.from_numpy(euler_to_axis_angle_np(yaw, pitch, roll))
        scale = rng.uniform(0.55, 0.7) * S / extent
        t = ((S + 1) / 2 + rng.uniform(-5, 5), (S + 1) / 2 + rng.uniform(-5, 5))
        theta[THETA_T], theta[THETA_LOGS] = torch.tensor(t, dtype=torch.float64), np.log(scale)
        theta[THETA_ALPHA] = torch.from_numpy(0.7 * rng.standard_normal(model.n_components))
        light = Lighting(direction=(rng.uniform(-0.5, 0.5), rng.uniform(0.0, 0.5), 1.0))
        bg = np.full((S, S, 3), rng.uniform(0.15, 0.6))
        rf = render_face(model, theta.to(model.dtype), image_size=S, albedo=albedo, lighting=light, background=bg)
        img = (rf.image.numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
        p = faces.mesh(img, FaceBox(0, 0, S - 1, S - 1))
        if p is None:
            continue
        found += 1
        ij = np.rint(p[:, ::-1]).astype(int)
        for k, (r, c) in enumerate(ij):
            if 0 <= r < S and 0 <= c < S and rf.fragments.face[r, c] >= 0:
                f = rf.fragments.face[r, c]
                hits[k].append(rf.fragments.bary[r, c] @ mean[tri[f]])
        if verbose:
            print(f"render {i + 1}/{n_renders}: face mesh {'found' if p is not None else 'missed'}")
    if found < 4:
        raise RuntimeError(f"the face mesh found {model.name!r} in only {found} of {n_renders} renders")
    vertex = np.zeros(MESH_POINTS, np.int64)
    spread = np.full(MESH_POINTS, np.inf)
    weight = np.zeros(MESH_POINTS)
    from scipy.spatial import cKDTree

    tree = cKDTree(mean)
    for k, pts in enumerate(hits):
        if len(pts) < MIN_HIT_FRACTION * found:
            continue
        pts_k = np.asarray(pts)
        med = np.median(pts_k, 0)
        _, vertex[k] = tree.query(med)
        spread[k] = float(np.median(np.linalg.norm(pts_k - mean[vertex[k]], axis=1)))
        weight[k] = 1.0 / (1.0 + (spread[k] / SPREAD_MM) ** 2)
    return MeshCorrespondence(vertex, weight, spread, _fingerprint(model))


def _cache_dir() -> Path:
    return Path(os.environ.get("MMSTN_CACHE", Path.home() / ".cache" / "mmstn")).expanduser()


def correspondence_for(model: MorphableModel, verbose: bool = True) -> MeshCorrespondence:
    """The correspondence of ``model``: the shipped one for the default model, else cached or built."""
    fp = _fingerprint(model)
    if ASSET.is_file():
        shipped = MeshCorrespondence.load(ASSET)
        if shipped.fingerprint == fp:
            return shipped
    path = _cache_dir() / f"mediapipe468_{fp[:16]}.npz"
    if path.is_file():
        c = MeshCorrespondence.load(path)
        if c.fingerprint == fp:
            return c
    if verbose:
        print(f"measuring the face-mesh correspondence of {model.name!r} (once; cached in {path.parent})")
    c = build_correspondence(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as fh:
        c.save(fh)
    return c


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mmstn.photos.correspondence",
        description="Measure the face-mesh → model correspondence of the default model (or --model FILE).",
    )
    parser.add_argument("--out", type=Path, default=ASSET, help="output .npz (default: the shipped asset)")
    parser.add_argument("--model", default=None, help="a model name or file for mmstn.models.load_model")
    parser.add_argument("--renders", type=int, default=48)
    args = parser.parse_args(argv)
    if args.model is None:
        model = ict_face_model()
    else:
        model = load_model(args.model)
    c = build_correspondence(model, n_renders=args.renders, verbose=True)
    c.save(args.out)
    used = int((c.weight > 0).sum())
    print(
        f"wrote {args.out}: {used}/{MESH_POINTS} points used, median spread {np.median(c.spread[c.weight > 0]):.2f} mm"
    )


if __name__ == "__main__":
    main()
