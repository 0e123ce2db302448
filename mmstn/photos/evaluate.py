"""Landmark accuracy on labelled photos, by the standard protocol of the large-pose benchmarks (AFLW2000-3D).

Protocol, per face:

* the face's box is the box of its ground-truth landmarks (all 68, or the visible ones of 21); the method gets
  it as ``--box`` (no detection);
* NME = mean over the labelled points of the Euclidean error / √(w · h) of that box;
* faces are binned by |yaw| into [0°, 30°), [30°, 60°), [60°, 90°]; the **balanced** NME is the mean of the
  three bins' means (bins with no face are left out of it, and the report says so);
* the failure rate is the fraction of faces with NME > 10 %.

Yaw comes from the label file when it has one (AFLW2000-3D's ``Pose_Para``, radians, [pitch, yaw, roll, ...]),
else from the model fitted to the ground-truth landmarks. Two baselines run beside the method on the same
boxes: **frontal** (the mean face, frontal, filling the box) and **fit** (θ fitted to the ground-truth
landmarks themselves: the floor of the model, what a perfect localiser of this model would reach).

Label files beside each photo, same stem: ``.pts`` (300-W, 1-based), ``.json`` (0-based, y down: a list of
[x, y], or ``{"landmarks": {"ibug68": ...}}`` as ``flatten`` writes, or ``{"landmarks_ibug68_xy": ...}``),
``.mat`` (AFLW2000-3D: ``pt3d_68`` (3 × 68) and/or ``pt2d`` (2 × 21), MATLAB 1-based).
68 points are scored against the model's ``ibug68`` set, 21 against ``aflw21``.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mmstn.data.errors import DataFormatError
from mmstn.data.pts import pts_to_pixels, read_pts
from mmstn.layers.grid import labels_to_pixels
from mmstn.photos.fit import fit_points
from mmstn.photos.flatten import IMAGE_SIZE, Flattener, _read_photo
from mmstn.photos.landmarker import FaceBox
from mmstn.render import pose_vertices
from mmstn.transforms import axis_angle_to_euler

__all__ = ["YAW_BINS", "EvaluationReport", "LabelledFace", "evaluate_folder", "find_labelled", "read_labels"]

YAW_BINS = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.0001))
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
FAILURE_NME = 0.10


@dataclass
class LabelledFace:
    """One photo with its ground truth: points (L, 2) 0-based pixels (NaN: unlabelled), yaw in degrees or None."""

    image: Path
    points: np.ndarray
    yaw_deg: float | None
    source: Path

    @property
    def markup(self) -> str:
        return "ibug68" if len(self.points) == 68 else "aflw21"


def read_labels(path: str | Path) -> tuple[np.ndarray, float | None]:
    """Read one label file → (points (68 or 21, 2) 0-based pixels with NaN for unlabelled points, yaw° or None).

    Raises:
        DataFormatError: unreadable file, or not 68 / 21 points (the message names the file).
    """
    path = Path(path)
    yaw = None
    suffix = path.suffix.lower()
    if suffix == ".pts":
        pts = pts_to_pixels(read_pts(path))
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataFormatError(path, f"cannot read the landmarks JSON ({exc})") from exc
        if isinstance(data, dict):
            if isinstance(data.get("landmarks"), dict):
                lm = data["landmarks"]
                data = lm.get("ibug68", lm.get("aflw21"))
            else:
                data = next(
                    (
                        data[k]
                        for k in ("landmarks_ibug68_xy", "landmarks_aflw21_xy_0based", "landmarks", "points")
                        if k in data
                    ),
                    None,
                )
            yaw = None
        try:
            pts = np.asarray(data, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataFormatError(path, "landmarks must be a list of [x, y] pairs") from exc
    elif suffix == ".mat":
        from scipy.io import loadmat

        try:
            mat = loadmat(str(path))
        except Exception as exc:  # scipy raises several types for a bad file
            raise DataFormatError(path, f"cannot read the .mat file ({type(exc).__name__}: {exc})") from exc
        if "pt3d_68" in mat:
            pts = np.asarray(mat["pt3d_68"], dtype=np.float64)[:2].T - 1.0
        elif "pt2d" in mat:
            pts = np.asarray(mat["pt2d"], dtype=np.float64).T - 1.0
            pts[(pts < 0).any(1)] = np.nan  # AFLW marks missing points with -1
        else:
            raise DataFormatError(path, "has neither pt3d_68 nor pt2d (AFLW2000-3D layout)")
        if "Pose_Para" in mat:
            yaw = float(np.degrees(np.asarray(mat["Pose_Para"], dtype=np.float64).ravel()[1]))
    else:
        raise DataFormatError(path, f"unknown landmark format {suffix!r}; use .pts, .json or .mat")
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) not in (68, 21):
        raise DataFormatError(path, f"expected 68 or 21 [x, y] points, got shape {pts.shape}")
    return pts, yaw


def find_labelled(folder: str | Path) -> list[LabelledFace]:
    """Every photo in ``folder`` (recursively) with a label file of the same stem (.mat, .pts, .json)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFormatError(folder, "is not a folder of labelled photos")
    faces = []
    for img in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        for ext in (".mat", ".pts", ".json"):
            lab = img.with_suffix(ext)
            if lab.is_file():
                pts, yaw = read_labels(lab)
                faces.append(LabelledFace(img, pts, yaw, lab))
                break
    if not faces:
        raise DataFormatError(folder, "holds no photo with a label file of the same stem (.mat, .pts or .json)")
    return faces


def _nme(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    ok = np.isfinite(gt).all(1) & np.isfinite(pred).all(1)
    g = gt[ok]
    side = math.sqrt(float(np.prod(g.max(0) - g.min(0))))
    err = np.linalg.norm(pred[ok] - g, axis=1)
    return float(err.mean() / side), float(err.mean())


def _bin(yaw: float) -> int:
    a = abs(yaw)
    for k, (lo, hi) in enumerate(YAW_BINS):
        if lo <= a < hi:
            return k
    return len(YAW_BINS) - 1


@dataclass
class EvaluationReport:
    """Per-face rows and the summary of :func:`evaluate_folder`.

    ``rows``: one dict per face (image, yaw, bin, and ``nme`` / ``px`` per method). ``summary[method]``: per-bin
    mean NME, ``balanced``, ``mean``, ``mean_px``, ``failure_rate`` and ``n`` per bin.
    """

    rows: list[dict]
    summary: dict[str, dict]

    def table(self) -> str:
        """The summary as a plain-text table (NME in %)."""
        head = "method       |yaw| 0-30   30-60   60-90  balanced   mean   mean px  fail>10%"
        lines = [head, "-" * len(head)]
        for name, s in self.summary.items():
            bins = " ".join(f"{100 * v:7.2f}" if v == v else "      –" for v in s["bins"])
            lines.append(
                f"{name:<12} {bins}  {100 * s['balanced']:7.2f} {100 * s['mean']:7.2f} {s['mean_px']:8.2f} "
                f"{100 * s['failure_rate']:8.1f}"
            )
        n = self.summary[next(iter(self.summary))]["n"]
        lines.append(
            f"faces per bin: {n[0]} / {n[1]} / {n[2]}" + ("  (empty bins are left out of 'balanced')" if 0 in n else "")
        )
        return "\n".join(lines)


def evaluate_folder(
    folder: str | Path, flattener=None, *, refine: bool = False, progress: bool = False, limit: int | None = None
) -> EvaluationReport:
    """Score the flatten pipeline and the two baselines on every labelled photo in ``folder``.

    ``limit``: score only the first ``limit`` photos (sorted by path), e.g. for a quick look.
    """
    fl = flattener or Flattener(refine=refine)
    faces = find_labelled(folder)
    if limit is not None:
        faces = faces[: max(1, int(limit))]
    rows = []
    it = faces
    if progress:
        from tqdm import tqdm

        it = tqdm(faces, unit="photo")
    for face in it:
        photo = _read_photo(face.image)
        gt = face.points
        ok = np.isfinite(gt).all(1)
        if ok.sum() < 3 or np.ptp(gt[ok], axis=0).min() <= 0:
            warnings.warn(
                f"{face.source}: fewer than 3 labelled points or a degenerate box; face skipped", stacklevel=2
            )
            continue
        box = FaceBox(*gt[ok].min(0), *gt[ok].max(0))
        ids = fl.model.landmarks[face.markup]
        res = fl.flatten_image(photo, box, name=str(face.image))[0]
        preds = {"mmstn": res.landmarks[face.markup]}
        k, o = res.crop_scale, res.crop_offset
        frontal = fl._box_theta(box, k, o)
        use = ok & (ids.numpy() >= 0)
        fit = fit_points(
            fl.model, torch.from_numpy(k * (gt[use] - o)), ids[torch.from_numpy(use)], image_size=IMAGE_SIZE
        )[0]
        for name, th in (("frontal", frontal), ("fit", fit)):
            pts, _, _ = pose_vertices(fl.model, th[None].to(fl.model.dtype), scale_base="exp")
            px = labels_to_pixels(pts[0].double(), IMAGE_SIZE).numpy() / k + o
            p = np.full_like(gt, np.nan)
            p[ids.numpy() >= 0] = px[ids.numpy()[ids.numpy() >= 0]]
            preds[name] = p
        yaw = face.yaw_deg
        if yaw is None:
            yaw = float(torch.rad2deg(axis_angle_to_euler(fit[None, :3])[0])[0])
        row = {"image": str(face.image), "markup": face.markup, "yaw": yaw, "bin": _bin(yaw), "method": res.method}
        for name, p in preds.items():
            row[f"nme_{name}"], row[f"px_{name}"] = _nme(p, gt)
        rows.append(row)
    if not rows:
        raise DataFormatError(Path(folder), "no face with usable labels (at least 3 points spanning a box)")
    summary = {}
    for name in ("mmstn", "frontal", "fit"):
        per_bin = [[r[f"nme_{name}"] for r in rows if r["bin"] == b] for b in range(len(YAW_BINS))]
        means = [float(np.mean(v)) if v else float("nan") for v in per_bin]
        full = [m for m in means if m == m]
        nmes = np.array([r[f"nme_{name}"] for r in rows])
        summary[name] = {
            "bins": means,
            "balanced": float(np.mean(full)),
            "mean": float(nmes.mean()),
            "mean_px": float(np.mean([r[f"px_{name}"] for r in rows])),
            "failure_rate": float((nmes > FAILURE_NME).mean()),
            "n": [len(v) for v in per_bin],
        }
    return EvaluationReport(rows, summary)
