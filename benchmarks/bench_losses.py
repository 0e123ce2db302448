"""Benchmark of the four losses (forward + backward) against the STN head, and of fitting θ to one image.

For B = 32 (16 image/mirror pairs) at G = 112 and G = 224 on the CPU with 2 threads it prints:

* the STN head step (grid generator + sampler + mask, forward + backward through θ), ms;
* the head plus the four losses with the authors' weights, ms, and the losses' added cost and share;
* fitting iterations (objective evaluations) per second for one image, landmark-only and with symmetry.

Targets (2 cores): the losses add ≤ 10 ms at G = 112 and ≤ 30 ms at G = 224.

Usage::

    .venv/bin/python benchmarks/bench_losses.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_stn_head import time_ms  # the same timer for every STN figure (script folder is on sys.path)

from mmstn.fitting import fit
from mmstn.losses import AUTHORS_WEIGHTS, landmark_loss, objective, prior_loss, siamese_loss, symmetry_loss
from mmstn.models import ict_face_model
from mmstn.render import render_face
from mmstn.stn import STN3DMM, STNConfig
from mmstn.theta import THETA_ALPHA, THETA_LOGS, THETA_R, THETA_T
from mmstn.uv import default_grid_model

B = 32


def inputs(g: int):
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(B, 3, 224, 224, generator=gen)
    theta = torch.zeros(B, 16)
    theta[:, THETA_R] = 0.3 * torch.randn(B, 3, generator=gen)
    theta[:, THETA_T] = 112 + 4 * torch.randn(B, 2, generator=gen)
    theta[:, THETA_LOGS] = math.log(0.75)
    theta[:, THETA_ALPHA] = torch.randn(B, 10, generator=gen)
    labels = 112 + 40 * torch.randn(B, 21, 2, generator=gen)
    vis = (torch.rand(B, 21, generator=gen) > 0.1).float()
    return image, theta, labels, vis


def head_step(stn: STN3DMM, image, theta, labels, vis, with_losses: bool) -> None:
    th = theta.clone().requires_grad_(True)
    out = stn(image, th)
    if not with_losses:
        out.flattened.sum().backward()
        return
    w, m = out.flattened, out.mask
    terms = {
        "landmark": landmark_loss(out.landmarks, labels, vis),
        "prior": prior_loss(th[:, THETA_ALPHA]),
        "symmetry": symmetry_loss(w, m),
        "siamese": siamese_loss(w[0::2], m[0::2], w[1::2], m[1::2]),
    }
    (objective(terms, AUTHORS_WEIGHTS, normaliser=B / 2) + w.sum() * 0).backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    torch.set_num_threads(2)
    repeat = 5 if args.quick else 15
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, B = {B}")
    for g, target in ((112, 10.0), (224, 30.0)):
        stn = STN3DMM(default_grid_model(g), STNConfig.paper(grid_size=g))
        args_ = (stn, *inputs(g))
        head_fn, full_fn = partial(head_step, *args_, False), partial(head_step, *args_, True)
        # alternate the two so that load from other processes hits both alike
        heads, fulls = [], []
        for _ in range(repeat):
            heads.append(time_ms(head_fn, 1, warmup=1))
            fulls.append(time_ms(full_fn, 1, warmup=1))
        head, full = statistics.median(heads), statistics.median(fulls)
        added = full - head
        verdict = "met" if added <= target else "MISSED"
        print(
            f"G = {g:3d}: head {head:7.1f} ms | head + 4 losses {full:7.1f} ms | losses add {added:6.1f} ms "
            f"({100 * added / head:5.1f} % of the head; target <= {target:.0f} ms: {verdict})"
        )

    stn = STN3DMM(default_grid_model(112), STNConfig.paper(grid_size=112))
    model = ict_face_model().subset(5, 5)
    theta = torch.zeros(16)
    theta[THETA_R.start + 1], theta[THETA_T], theta[THETA_LOGS] = math.radians(25), 112.0, math.log(0.75)  # yaw 25°
    face = render_face(model, theta)
    labels = face.points[model.landmarks["aflw21"]][None]
    fit(stn, face.image[None], labels, n_iter=5, method="adam")  # warm-up
    for name, kwargs in (("landmarks only", {}), ("with symmetry", {"weights": AUTHORS_WEIGHTS})):
        n = 200
        t0 = time.perf_counter()
        res = fit(stn, face.image[None], labels, n_iter=n, method="adam", **kwargs)
        dt = time.perf_counter() - t0
        print(f"fitting one image ({name}, Adam): {res.iterations / dt:7.1f} iterations/s")


if __name__ == "__main__":
    main()
