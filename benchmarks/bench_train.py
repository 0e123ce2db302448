"""Benchmark of a training step on the CPU: throughput of the small and the VGG-Face trunk, and the STN head's share.

One step = B images + their B mirrors through the localiser, the STN (grid generator, sampler, mask), the four
losses, the backward pass and an optimiser step (:mod:`mmstn.train.loop`), on a fixed pre-rendered batch (data
generation excluded). Printed per trunk:

* images/s the network sees (originals + mirrors) and distinct images/s (half of it);
* the STN head's share of the step: the head alone (STN forward + losses + backward to θ, θ detached from the
  trunk) over the whole step. Target (2 cores, B = 8, G = 112): ≤ 5 % for the VGG trunk; the small trunk is
  so cheap that the head's fixed cost is a larger share (reported, not a target).

Usage::

    .venv/bin/python benchmarks/bench_train.py [--quick] [--no-vgg] [--batch 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mmstn.data.batch import collate, mirrored_batch
from mmstn.losses import objective
from mmstn.train.config import TrainConfig
from mmstn.train.loop import SyntheticStream, build_model, build_optimizer, loss_terms


def timed(fn, repeat: int, warmup: int) -> float:
    """Median seconds of ``fn()`` over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def bench(config: TrainConfig, repeat: int, warmup: int) -> dict[str, float]:
    torch.manual_seed(0)
    localiser, stn = build_model(config)
    opt = build_optimizer(localiser, config)
    data = SyntheticStream(config.val_seed, config.batch_size, config.image_size)
    batch = mirrored_batch(collate([data[i] for i in range(config.batch_size)]), config.mirror)
    img, lm, vis = batch["image"], batch["landmarks21"], batch["vis21"]
    b = config.batch_size

    def step() -> None:
        localiser.train()
        theta = localiser(img)
        terms = loss_terms(stn(img, theta), theta, lm, vis, config, b)
        opt.zero_grad(set_to_none=True)
        objective(terms, config.weights, config.normaliser).backward()
        opt.step()

    with torch.no_grad():
        theta0 = localiser.eval()(img)

    def head() -> None:
        theta = theta0.clone().requires_grad_(True)
        terms = loss_terms(stn(img, theta), theta, lm, vis, config, b)
        objective(terms, config.weights, config.normaliser).backward()

    t_step = timed(step, repeat, warmup)
    t_head = timed(head, max(repeat, 5), 1)
    n = img.shape[0]
    return {"step_s": t_step, "head_s": t_head, "images_per_s": n / t_step, "distinct_per_s": b / t_step,
            "head_share": t_head / t_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--no-vgg", action="store_true", help="skip the (slow) VGG-Face trunk")
    parser.add_argument("--batch", type=int, default=8, help="B, images before mirroring (default 8)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, B = {args.batch} (+ {args.batch} mirrors), "
          "G = 112, recommended recipe")
    try:
        from mmstn.train.checkpoint import load_pretrained

        shipped = load_pretrained()[2]
        small = TrainConfig.recommended(trunk_input=shipped.trunk_input, trunk_widths=shipped.trunk_widths)
    except Exception:  # no shipped checkpoint: the default small trunk
        small = TrainConfig.recommended()
    runs = [("small", small.replace(batch_size=args.batch), 10 if args.quick else 20, 3)]
    if not args.no_vgg:
        runs.append(("vgg", TrainConfig.recommended(trunk="vgg", batch_size=args.batch), 2 if args.quick else 3, 1))
    for name, cfg, repeat, warmup in runs:
        r = bench(cfg, repeat, warmup)
        extra = f" (input {cfg.trunk_input} px, widths {cfg.trunk_widths})" if name == "small" else ""
        target = "target <= 5 %: " + ("met" if r["head_share"] <= 0.05 else "MISSED") if name == "vgg" else "no target"
        print(f"{name:5s}{extra}: step {1e3 * r['step_s']:8.1f} ms | {r['images_per_s']:6.1f} images/s "
              f"({r['distinct_per_s']:5.1f} distinct/s) | STN head + losses {1e3 * r['head_s']:6.1f} ms = "
              f"{100 * r['head_share']:4.1f} % of the step ({target})")


if __name__ == "__main__":
    main()
