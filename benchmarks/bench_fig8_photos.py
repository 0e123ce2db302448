"""Paper Fig. 8 on any folder of photos: per-person averages with θ from the photo path, given landmarks, a fixed θ.

ROOT holds one subfolder of photos per person (``ROOT/<person>/*.jpg|png``) and optionally a
``landmarks_dlib68.json`` (the schema of ``mmstn/data/folder.py``). For every θ source of
:func:`mmstn.averaging.average_photo_subjects` (the photo path's face-mesh fit, the shipped CNN localiser,
the fit to the given landmarks when the JSON is there, one fixed frontal θ) it prints

* the correspondence score (:func:`mmstn.scores.correspondence_score` on standardised grey levels: mean
  distance of two outputs of the same person, of different people, their ratio, and how often an output's
  nearest neighbour is the same person);
* the time per photo (finding θ, cropping, flattening, averaging; the models are set up and MediaPipe is
  warmed up before the clock starts),

and writes ``fig8_photo_path.png`` (one average per person, side by side: the paper's layout),
``fig8_sources.png`` (one row per θ source) and ``scores.json`` into ``--out``.

Usage::

    .venv/bin/python benchmarks/bench_fig8_photos.py ROOT --out DIR [--grid 112] [--n-images N]
        [--sources photo localiser landmarks frontal] [--n-iter 40] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib

matplotlib.use("Agg")

from mmstn.averaging.photo import (
    PHOTO_SOURCES,
    average_photo_subjects,
    photo_score_rows,
    photo_score_table,
    photo_subjects,
)
from mmstn.viz.average_figures import fig_photo_sources, fig_subject_averages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, help="folder with one subfolder of photos per person")
    ap.add_argument("--out", type=Path, required=True, help="folder for the figures and scores.json")
    ap.add_argument("--grid", type=int, default=112, help="G of the flattened faces (default 112)")
    ap.add_argument("--n-images", type=int, default=None, help="at most this many photos per person")
    ap.add_argument("--sources", nargs="+", choices=PHOTO_SOURCES, default=None,
                    help="θ sources (default: all that apply)")
    ap.add_argument("--n-iter", type=int, default=40, help="L-BFGS evaluations of the landmark fit")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dpi", type=int, default=150)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from mmstn.data.images import open_rgb
    from mmstn.photos import Flattener

    subjects = photo_subjects(args.root, n_images=args.n_images)
    counts = ", ".join(f"{n} {len(subjects.photos[s])}" for s, n in subjects.names.items())
    print(f"{len(subjects)} photos of {len(subjects.names)} people ({counts}); landmarks: "
          f"{subjects.landmarks.name if subjects.landmarks else 'none'}")
    t = time.perf_counter()
    flattener = Flattener(grid=args.grid)
    first = next(iter(subjects.photos.values()))[0]
    try:  # the first MediaPipe and torch calls initialise them: keep that out of the time per photo
        flattener.flatten_image(np.asarray(open_rgb(first), dtype=np.uint8))
    except Exception as exc:  # only a warm-up: the run itself reports a photo that fails
        print(f"warm-up on {first.name}: {exc}")
    print(f"set-up (models, grid model, MediaPipe): {time.perf_counter() - t:.1f} s")

    results = average_photo_subjects(subjects, args.sources, grid_size=args.grid, flattener=flattener,
                                     n_iter=args.n_iter)
    print()
    print(photo_score_table(results))
    print("(within / between: mean distance of outputs of the same person / of different people, standardised "
          "grey levels; lower ratio and higher NN accuracy = better correspondence)")
    for name, r in results.items():
        if r.failed:
            print(f"{name}: {len(r.failed)} photo(s) not used, e.g. {next(iter(r.failed.items()))}")

    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    main_source = "photo" if "photo" in results else next(iter(results))
    avgs = list(results[main_source].averages.values())
    fig = fig_subject_averages(avgs, ncols=len(avgs), size=1.8,
                               title=f"per-person averages, θ from {results[main_source].description} "
                                     f"(G = {args.grid})")
    path = args.out / "fig8_photo_path.png"
    fig.savefig(path, dpi=args.dpi)
    written.append(path)
    fig = fig_photo_sources(results, title=f"per-person averages by θ source (G = {args.grid})")
    path = args.out / "fig8_sources.png"
    fig.savefig(path, dpi=args.dpi)
    written.append(path)
    path = args.out / "scores.json"
    rows = photo_score_rows(results)
    for row in rows:
        row["failed"] = results[row["source"]].failed
    path.write_text(json.dumps({"grid_size": args.grid, "people": subjects.names, "sources": rows}, indent=1) + "\n")
    written.append(path)
    print("wrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    main()
