"""Benchmark of the STN head: grid generator + bilinear sampler + visibility mask + masking, forward + backward.

Batch B = 32 images of 3×224×224 (no gradient w.r.t. the image, as in training: the image is the
network input), θ of width 6 + 10 with gradient; loss = sum of the flattened output. CPU, torch
threads = 2. Prints the median wall time of several runs in ms per batch for the hand-written
("analytic") and the plain-autograd backends, a per-stage forward breakdown, and the peak resident
memory of one step above the set-up, measured in a fresh child process from Linux ``/proc/self/status``
(VmHWM after resetting it, minus VmRSS before the step).

Targets: ≤ 50 ms at G = 112 and ≤ 250 ms at G = 224.

Usage::

    .venv/bin/python benchmarks/bench_stn_head.py            # everything
    .venv/bin/python benchmarks/bench_stn_head.py --quick    # fewer repetitions, no memory runs
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mmstn.layers.grid import grid_triangles
from mmstn.layers.sampler import bilinear_sample
from mmstn.models.morphable import MorphableModel
from mmstn.stn import STN3DMM, STNConfig
from mmstn.theta import THETA_ALPHA, THETA_R, THETA_T, theta_size

B = 32
D = 10
IMAGE = 224


def synthetic_grid_model(g: int, d: int = D) -> MorphableModel:
    """A face-sized sphere patch on a G×G grid with a smooth random basis (float32, mm)."""
    v = torch.linspace(1.0, 0.0, g)
    u = torch.linspace(0.0, 1.0, g)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    lon, lat = (uu - 0.5) * math.radians(150), (vv - 0.5) * math.radians(130)
    mean = 90 * torch.stack([torch.cos(lat) * torch.sin(lon), torch.sin(lat), torch.cos(lat) * torch.cos(lon)], -1)
    gen = torch.Generator().manual_seed(0)
    a, b = (uu - 0.5) * 2, (vv - 0.5) * 2
    basis = torch.stack(
        [
            (3.0 * (a ** (k % 3) * b ** (k // 3 % 3))[..., None] * torch.randn(3, generator=gen)).reshape(-1, 3)
            for k in range(d)
        ]
    )
    return MorphableModel("bench grid", mean.reshape(-1, 3), basis, d // 2, grid_triangles(g))


def config_for(g: int, name: str, backend: str, sampler: str) -> STNConfig:
    base = STNConfig.faithful() if name == "faithful" else STNConfig.paper()
    return replace(base, grid_size=g, backend=backend, sampler_backend=sampler)


def make_inputs(g: int):
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(B, 3, IMAGE, IMAGE, generator=gen)  # in [0, 1], as the STN expects
    theta = torch.zeros(B, theta_size(D))
    theta[:, THETA_R] = 0.4 * torch.randn(B, 3, generator=gen)
    theta[:, THETA_T] = 112 + 5 * torch.randn(B, 2, generator=gen)
    theta[:, THETA_ALPHA] = torch.randn(B, D, generator=gen)
    return image, theta


def step(stn: STN3DMM, image: torch.Tensor, theta: torch.Tensor) -> None:
    th = theta.clone().requires_grad_(True)
    out = stn(image, th)
    out.flattened.sum().backward()


def time_runs(fn, repeat: int, warmup: int = 2) -> list[float]:
    """Wall times (ms) of ``repeat`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def time_ms(fn, repeat: int, warmup: int = 2) -> float:
    """Median wall time (ms)."""
    return statistics.median(time_runs(fn, repeat, warmup))


def breakdown(stn: STN3DMM, image: torch.Tensor, theta: torch.Tensor, repeat: int) -> dict[str, float]:
    """Forward-only time of each stage (ms)."""
    with torch.no_grad():
        gen = stn.generator(theta, (IMAGE, IMAGE))
        return {
            "generator": time_ms(lambda: stn.generator(theta, (IMAGE, IMAGE)), repeat),
            "sampler": time_ms(lambda: bilinear_sample(image, gen.grid, stn.config.sampler_backend), repeat),
            "mask": time_ms(lambda: stn.visibility(gen.rotated), repeat),
        }


def _proc_status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return -1


def one(g: int, name: str, backend: str, sampler: str, repeat: int) -> dict[str, float]:
    """Run in a fresh child process: time the step and measure its peak memory above the set-up."""
    stn = STN3DMM(synthetic_grid_model(g), config_for(g, name, backend, sampler))
    image, theta = make_inputs(g)
    step(stn, image, theta)  # first call: allocator warm-up
    base = _proc_status_kb("VmRSS")
    try:  # reset the high-water mark (Linux: "5" → clear VmHWM)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    ms = time_ms(lambda: step(stn, image, theta), repeat, warmup=0)
    peak = _proc_status_kb("VmHWM")
    return {"ms": ms, "step_peak_mb": max(peak - base, 0) / 1024, "rss_mb": peak / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions; skip the memory subprocesses")
    p.add_argument("--child", nargs=4, metavar=("G", "CONFIG", "BACKEND", "SAMPLER"), help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(2)
    if args.child:
        g, name, backend, sampler = args.child
        print(json.dumps(one(int(g), name, backend, sampler, repeat=2)))
        return
    repeat = 5 if args.quick else 15
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, B={B}, image 3×{IMAGE}², D={D}")
    print("fwd+bwd: median (min) ms per batch; fwd: median forward-only ms per stage")
    print(
        f"{'G':>4} {'config':>9} {'backend':>9} {'sampler':>9} {'fwd+bwd ms':>15} {'target':>7}  "
        f"{'fwd: generator / sampler / mask':>32}  memory of one step"
    )
    for g, target in ((112, 50), (224, 250)):
        for name in ("faithful", "paper"):
            for backend, sampler in (("analytic", "native"), ("autograd", "native"), ("analytic", "analytic")):
                stn = STN3DMM(synthetic_grid_model(g), config_for(g, name, backend, sampler))
                image, theta = make_inputs(g)
                runs = time_runs(lambda stn=stn, image=image, theta=theta: step(stn, image, theta), repeat)
                ms, fastest = statistics.median(runs), min(runs)
                bd = breakdown(stn, image, theta, repeat)
                mem = ""
                if not args.quick:
                    res = subprocess.run(
                        [sys.executable, __file__, "--child", str(g), name, backend, sampler],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    info = json.loads(res.stdout.strip().splitlines()[-1])
                    mem = f"+{info['step_peak_mb']:.0f} MB over set-up (process peak {info['rss_mb']:.0f} MB)"
                flag = "ok" if ms <= target else "OVER"
                print(
                    f"{g:>4} {name:>9} {backend:>9} {sampler:>9} {ms:>7.1f} ({fastest:>5.1f}) {target:>5} {flag:>4}  "
                    f"{bd['generator']:>9.1f} / {bd['sampler']:>7.1f} / {bd['mask']:>6.1f}  {mem}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
