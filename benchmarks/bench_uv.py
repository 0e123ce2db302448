"""Benchmark chapter 2: the symmetric Tutte embedding of a ~53k-vertex mesh and resampling onto 224².

Targets on the project's 2-core CPU machines: embedding ≤ 2 s, resampling (mean + 10 components) ≤ 2 s.
Prints timings (median of ``--repeat`` runs) and sizes; asserts nothing.

    .venv/bin/python benchmarks/bench_uv.py [--mesh bfm-size|ict] [--subdivisions 2] [--grid 224] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch


def _median_time(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mesh", choices=("bfm-size", "ict"), default="bfm-size",
                        help="bfm-size: the cartoon face refined to ~53k vertices (the BFM's size); "
                        "ict: the shipped face")
    parser.add_argument("--subdivisions", type=int, default=2, help="cartoon face refinement (2: ~53k vertices)")
    parser.add_argument("--grid", type=int, default=224, help="output grid size G")
    parser.add_argument("--components", type=int, default=10, help="basis components to resample")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the project's machines have 2 cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from mmstn.uv import GridResampler, symmetric_tutte

    t0 = time.perf_counter()
    if args.mesh == "ict":
        from mmstn.models.ict import ict_face_model

        n_exp = args.components // 2  # the paper's split: 5 identity + 5 expression for 10 components
        model = ict_face_model().subset(args.components - n_exp, n_exp)
        what = "the shipped ICT face"
    else:
        from mmstn.models.builtin import builtin_model

        n_exp = args.components // 2
        model = builtin_model(
            seed=0, n_identity=args.components - n_exp, n_expression=n_exp, subdivisions=args.subdivisions
        )
        what = f"the cartoon face refined to the BFM's size, subdivisions={args.subdivisions}"
    build = time.perf_counter() - t0
    print(f"mesh: {what}: N={model.n_vertices} vertices, F={model.n_triangles} triangles (built in {build:.2f} s)")

    for weights in ("cotan", "mean_value", "uniform"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dt, emb = _median_time(lambda w=weights: symmetric_tutte(model, weights=w), args.repeat)
        q = emb.quality
        print(
            f"embedding [{weights:10s}] {dt:6.3f} s (sparse LU solve {emb.solve_seconds:.3f} s); "
            f"half: {emb.half_vertices.size} vertices; fold-overs {q.n_flipped}, negative weights "
            f"{emb.n_negative_weights}; angle error {q.angle_error_mean_deg:.2f}°, log-area std "
            f"{q.log_area_ratio_std:.3f}"
        )

    uv = symmetric_tutte(model, weights="mean_value").uv
    G = args.grid
    F = model.triangles.numpy()
    dt_loc, rs = _median_time(lambda: GridResampler.from_uv(uv, F, G), args.repeat)
    dt_all, grid = _median_time(lambda: GridResampler.from_uv(uv, F, G).resample_model(model, uv), args.repeat)
    print(
        f"resampling onto {G}x{G} = {G * G} grid vertices, mean + {model.n_components} components"
        f"{' + colour + texture basis' if model.colour is not None else ''}: {dt_all:.3f} s "
        f"(point location + barycentrics {dt_loc:.3f} s; {int(rs.snapped.sum())} points snapped)"
    )
    print(f"grid model: {grid.describe()}")


if __name__ == "__main__":
    main()
