"""Benchmark of flattening throughput for per-subject averaging (images/s on the CPU, 2 threads).

For batches of B = 32 synthetic 224 × 224 crops (rendered once, reused) it prints images per second for:

* the STN at G = 224 (and 112) given θ (no gradient): grid generator + sampler + visibility mask;
* the same plus :class:`mmstn.averaging.SubjectAverager` (what :func:`~mmstn.averaging.average_subjects` adds);
* θ from :func:`mmstn.averaging.fitting_estimator` (L-BFGS on the landmarks, 30 and 60 evaluations, fitted
  with a G = 112 STN) followed by the G = 224 STN;
* θ from the shipped localiser when ``mmstn.train`` provides one (skipped otherwise), and from an untrained
  :class:`mmstn.localiser.SmallTrunk` localiser (the architecture's cost, not a usable estimator).

Usage::

    .venv/bin/python benchmarks/bench_flatten.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mmstn.averaging import SubjectAverager, fitting_estimator, load_shipped_localiser, localiser_estimator
from mmstn.data.synthetic import generate_sample, reference_scale
from mmstn.localiser import Localiser, SmallTrunk, ThetaHead
from mmstn.models import ict_face_model
from mmstn.stn import STN3DMM, STNConfig
from mmstn.uv import default_grid_model

B = 32


def rate(fn: Callable[[], None], n_images: int, repeat: int) -> float:
    """Median images/s of ``fn`` (which processes ``n_images``) over ``repeat`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n_images / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeat = 3 if args.quick else 7
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, B = {B}, 224 × 224 crops; "
          f"load average {load:.1f} on {os.cpu_count()} CPUs (other processes slow every number down)")

    model = ict_face_model().subset(5, 5)
    samples = [generate_sample(model, i, 0, n_subjects=8) for i in range(B)]
    images = torch.stack([s["image"] for s in samples])
    theta = torch.stack([s["theta"] for s in samples])  # s = exp(logs): the paper configuration's base
    labels = torch.stack([s["landmarks21"] for s in samples])
    vis = torch.stack([s["vis21"] for s in samples])
    ids = torch.tensor([int(s["subject_id"]) for s in samples])
    stns = {g: STN3DMM(default_grid_model(g), STNConfig.paper(grid_size=g)) for g in (224, 112)}

    for g, stn in stns.items():
        def flatten(stn: STN3DMM = stn) -> None:
            with torch.no_grad():
                stn(images, theta)

        averager = SubjectAverager(g)

        def flatten_average(stn: STN3DMM = stn, averager: SubjectAverager = averager) -> None:
            with torch.no_grad():
                out = stn(images, theta)
            averager.add(out.flattened, out.mask, ids)

        print(f"G = {g:3d}, θ given:                      {rate(flatten, B, repeat):7.1f} images/s")
        print(f"G = {g:3d}, θ given, + per-subject averaging: {rate(flatten_average, B, repeat):7.1f} images/s")

    stn224 = stns[224]
    for n_iter in (30, 60):
        est = fitting_estimator(stns[112], n_iter=n_iter)

        def fitted(est=est) -> None:
            th = est(images, labels, vis)
            with torch.no_grad():
                stn224(images, th)

        r = rate(fitted, B, max(1, repeat // 2))
        print(f"G = 224, θ fitted to landmarks ({n_iter:2d} L-BFGS evaluations): {r:7.1f} images/s")

    net, _, why = load_shipped_localiser()
    nets = [("shipped localiser", net)] if net is not None else []
    if net is None:
        print(f"shipped localiser: skipped ({why})")
    head = ThetaHead(192, 10, centre=(112.5, 112.5), logs0=math.log(reference_scale(model)))
    nets.append(("untrained SmallTrunk localiser", Localiser(SmallTrunk(), head)))
    for name, module in nets:
        est = localiser_estimator(module)

        def predicted(est=est) -> None:
            th = est(images, None, None)
            with torch.no_grad():
                stn224(images, th)

        print(f"G = 224, θ from the {name}: {rate(predicted, B, repeat):7.1f} images/s")


if __name__ == "__main__":
    main()
