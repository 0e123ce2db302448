"""Landmark accuracy of the photo path against yaw, on labelled renders: the face-mesh fit, a CNN localiser
and the combination that ``python -m mmstn flatten`` uses, beside the frontal-face and true-landmark baselines.

Real photos with labels at large yaw are licence-gated (AFLW2000-3D), so this benchmark renders the default
face at |yaw| = 0°, 15°, …, 90° (random identity, expression, pitch and roll within ±10°) over a soft
background, with the exact 68 landmarks (all of them, as AFLW2000-3D's 3D-fitted labels), and scores each
method by the standard protocol (crop from the true landmark box, NME by √(w·h) of that box). The texture is
the model's own, or a texture model measured on ``--texture-photos`` (use photos that did not train the
localiser).

Usage::

    .venv/bin/python benchmarks/bench_photo_yaw.py [--n 6] [--localiser photo_small] [--texture-photos DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mmstn.models.ict import ict_face_model
from mmstn.photos.demo import render_labelled
from mmstn.photos.evaluate import evaluate_folder
from mmstn.photos.flatten import Flattener
from mmstn.render import Lighting
from mmstn.theta import THETA_ALPHA, THETA_LOGS, THETA_R, THETA_T, theta_size
from mmstn.transforms import euler_to_axis_angle_np

YAWS = (0, 15, 30, 45, 60, 75, 90)


def write_renders(folder: Path, n: int, texture_photos: list[Path] | None) -> None:
    from PIL import Image

    model = ict_face_model()
    if texture_photos:
        from mmstn.photos.texture import photo_texture_model, with_texture

        model = with_texture(model, photo_texture_model(texture_photos, model, n_components=10, progress=False))
    S, H, W = 256, 320, 320
    for yaw in YAWS:
        for k in range(n):
            rng = np.random.default_rng([yaw, k])
            sign = 1 if k % 2 == 0 else -1
            theta = torch.zeros(theta_size(model.n_components), dtype=torch.float64)
            ypr = np.radians([sign * yaw, rng.uniform(-10, 10), rng.uniform(-10, 10)])
            theta[THETA_R] = torch.from_numpy(euler_to_axis_angle_np(*ypr))
            theta[THETA_T] = torch.tensor([(S + 1) / 2, (S + 1) / 2 + 10], dtype=torch.float64)
            theta[THETA_LOGS] = math.log(0.55 * S / 150.0)
            theta[THETA_ALPHA] = torch.from_numpy(0.7 * rng.standard_normal(model.n_components))
            beta = torch.from_numpy(0.7 * rng.standard_normal(model.texture_basis.shape[0])).to(model.dtype)
            albedo = model.albedo(beta[None])[0].clamp(0, 1)
            xx = np.mgrid[0:H, 0:W][1]
            tint = rng.uniform(0.3, 0.7, 3)
            bg = np.clip(tint + 0.2 * (xx / W - 0.5)[..., None] * rng.uniform(-1, 1, 3), 0, 1)
            light = Lighting(direction=(rng.uniform(-0.5, 0.5), rng.uniform(0, 0.5), 1.0))
            photo, marks = render_labelled(model, theta, albedo, light, bg, S)
            stem = f"yaw{yaw:02d}_{k}"
            Image.fromarray(photo).save(folder / f"{stem}.png")
            json.dump(marks["ibug68"].tolist(), (folder / f"{stem}.json").open("w"))


def per_yaw(report) -> dict[int, dict[str, float]]:
    out = {}
    for yaw in YAWS:
        rows = [r for r in report.rows if Path(r["image"]).name.startswith(f"yaw{yaw:02d}_")]
        out[yaw] = {k: 100 * float(np.mean([r[f"nme_{k}"] for r in rows])) for k in ("mmstn", "frontal", "fit")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=6, help="renders per yaw")
    ap.add_argument("--localiser", default="photo_small")
    ap.add_argument("--texture-photos", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    folder = Path(tempfile.mkdtemp(prefix="bench_yaw_"))
    photos = None
    if args.texture_photos:
        from mmstn.photos.texture import photo_files

        photos = photo_files([args.texture_photos])
    write_renders(folder, args.n, photos)
    methods = {
        "face mesh": Flattener(theta_from="face_mesh"),
        "CNN": Flattener(theta_from="localiser", localiser=args.localiser),
        "combined": Flattener(theta_from="combined", localiser=args.localiser),
    }
    results, times = {}, {}
    for name, fl in methods.items():
        t0 = time.perf_counter()
        results[name] = per_yaw(evaluate_folder(folder, fl))
        times[name] = (time.perf_counter() - t0) / (len(YAWS) * args.n)
    print(
        f"NME (% of the landmark box), {args.n} renders per |yaw|, texture: "
        f"{'measured on ' + str(len(photos)) + ' photos' if photos else 'the model own'}"
    )
    print(f"{'|yaw|':>6s} " + " ".join(f"{k:>10s}" for k in (*methods, "frontal", "true fit")))
    for yaw in YAWS:
        r = [results[k][yaw]["mmstn"] for k in methods]
        base = results["face mesh"][yaw]
        print(f"{yaw:5d}° " + " ".join(f"{v:10.2f}" for v in (*r, base["frontal"], base["fit"])))
    for name in methods:
        print(f"{name}: {times[name]:.2f} s per render (evaluation, three fits included)")


if __name__ == "__main__":
    main()
