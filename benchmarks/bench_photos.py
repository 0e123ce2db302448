"""Benchmark of ``python -m mmstn flatten``: seconds per photo on the CPU, by stage, and in batches.

Photos: N stand-in photos (:func:`mmstn.photos.demo_photo`, 300 × 360 px, yaws −40° … 40°), written once.
It prints, per photo:

* the stages of one face: detection, face mesh, the θ fit, the STN (G = 112) and writing the outputs;
* the whole call with detection and with ``--box`` (no detection; one face-mesh pass and one fit);
* the baseline measured in the same run: one ``Flattener`` per photo, i.e. what a shell loop of single-photo
  commands pays (model, grid model and detector set up every time), and the ratio to one batch of N photos.

Usage::

    .venv/bin/python benchmarks/bench_photos.py [--n 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mmstn.data.images import open_rgb
from mmstn.photos import FaceBox, Flattener, demo_photo, flatten
from mmstn.photos.fit import fit_points


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_photos_"))
    yaws = np.linspace(-40, 40, args.n)
    photos = [demo_photo(tmp / f"p{k}.png", yaw_deg=float(y), seed=k) for k, y in enumerate(yaws)]
    t = time.perf_counter()
    fl = Flattener(grid=112)
    setup = time.perf_counter() - t
    flatten(photos[:1], tmp / "warm", flattener=fl)  # first calls initialise MediaPipe and torch kernels

    # stages on one face
    img = np.asarray(open_rgb(photos[0]))
    stages: dict[str, list[float]] = {"detect": [], "face mesh": [], "fit": [], "STN + landmarks": []}
    for _ in range(3):
        t = time.perf_counter()
        box = fl.faces.detect(img)[0]
        stages["detect"].append(time.perf_counter() - t)
        t = time.perf_counter()
        pts = fl.faces.mesh(img, box)
        stages["face mesh"].append(time.perf_counter() - t)
        t = time.perf_counter()
        fit_points(fl.model, torch.from_numpy(pts[fl._use]), fl._vertex, fl._weight, image_size=224)
        stages["fit"].append(time.perf_counter() - t)
        t = time.perf_counter()
        fl._one(img, box, "x", 0)
        stages["STN + landmarks"].append(time.perf_counter() - t - stages["face mesh"][-1] - stages["fit"][-1])
    for name, v in stages.items():
        print(f"{name:<18} {1000 * min(v):8.1f} ms")

    # whole calls
    t = time.perf_counter()
    faces, _ = flatten(photos, tmp / "batch", flattener=fl)
    batch = (time.perf_counter() - t) / len(photos)
    lm = faces[0].landmarks["ibug68"]
    box = FaceBox(*lm.min(0), *lm.max(0))
    t = time.perf_counter()
    flatten(photos, tmp / "box", flattener=fl, box=box.as_list())
    boxed = (time.perf_counter() - t) / len(photos)
    t = time.perf_counter()
    for p in photos[:3]:
        flatten([p], tmp / "single", grid=112)
    single = (time.perf_counter() - t) / 3
    print(f"setup (model, grid model, detector): {setup:.2f} s, once")
    print(f"per photo, batch of {len(photos)}, with detection: {batch:.3f} s")
    print(f"per photo, batch of {len(photos)}, --box:          {boxed:.3f} s")
    print(f"baseline: one Flattener per photo:      {single:.3f} s  (batch is {single / batch:.1f}x faster)")
    print(f"target 1 s per photo with detection: {'met' if batch <= 1.0 else 'missed'} ({batch:.2f} s)")


if __name__ == "__main__":
    main()
