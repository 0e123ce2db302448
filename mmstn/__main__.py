"""``python -m mmstn flatten …`` and ``python -m mmstn evaluate …`` (training: ``python -m mmstn.train``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

THETA_HELP = (
    "where θ comes from: 'combined' (default: the face-mesh fit, and the CNN localiser where the face mesh "
    "fails or the face is turned past 50°), 'face-mesh' (the fit only; the default with --model) or "
    "'localiser' (the CNN only)"
)
LOCALISER_HELP = "the CNN localiser: a shipped name (default photo_small) or a weights.pt file"


def _theta_from(args: argparse.Namespace) -> str | None:
    return None if args.theta is None else args.theta.replace("-", "_")


def _flatten(args: argparse.Namespace) -> int:
    from mmstn.photos.flatten import Flattener, flatten

    t0 = time.perf_counter()
    model = None
    if args.model is not None:
        from mmstn.models.registry import load_model

        model = load_model(args.model, verbose=not args.quiet)
    fl = Flattener(
        model,
        grid=args.grid,
        refine=args.refine,
        largest=args.largest,
        theta_from=_theta_from(args),
        localiser=args.localiser,
    )
    faces, errors = flatten(args.photos, args.out, box=args.box, flattener=fl, progress=not args.quiet)
    dt = time.perf_counter() - t0
    for path, msg in errors.items():
        print(f"error: {msg}" if path in msg else f"error: {path}: {msg}", file=sys.stderr)
    n_ok = len(args.photos) - len(errors)
    if not args.quiet:
        print(f"{len(faces)} face(s) from {n_ok} of {len(args.photos)} photo(s) written to {args.out} in {dt:.1f} s")
    return 1 if errors else 0


def _evaluate(args: argparse.Namespace) -> int:
    from mmstn.photos.evaluate import evaluate_folder
    from mmstn.photos.flatten import Flattener

    fl = Flattener(refine=args.refine, theta_from=_theta_from(args), localiser=args.localiser)
    report = evaluate_folder(args.folder, fl, progress=not args.quiet)
    print(report.table())
    if args.out:
        Path(args.out).write_text(json.dumps({"summary": report.summary, "faces": report.rows}, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmstn", description="3DMM-STN on your own photos.")
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("flatten", help="flatten the faces of photos (JSON, PNG and OBJ per face)")
    f.add_argument("photos", nargs="+", type=Path, metavar="PHOTO")
    f.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (created)")
    f.add_argument(
        "--box",
        type=float,
        nargs=4,
        metavar=("X0", "Y0", "X1", "Y1"),
        default=None,
        help="the face's 68-landmark box (jaw line to brows) in photo pixels; skips detection",
    )
    f.add_argument(
        "--refine",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="refine θ by the paper's symmetry and siamese losses (default: off)",
    )
    f.add_argument("--grid", type=int, default=112, metavar="G", help="flattened face size G (default 112)")
    f.add_argument("--largest", action="store_true", help="only the largest face of each photo")
    f.add_argument(
        "--model",
        default=None,
        help="a face model name or file for mmstn.models.load_model (default: the shipped ICT FaceKit face); "
        "its face-mesh correspondence is measured on first use and cached",
    )
    f.add_argument("--theta", choices=("combined", "face-mesh", "localiser"), default=None, help=THETA_HELP)
    f.add_argument("--localiser", default=None, metavar="NAME|FILE", help=LOCALISER_HELP)
    f.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    f.set_defaults(run=_flatten)
    e = sub.add_parser("evaluate", help="landmark NME on a folder of labelled photos (standard protocol)")
    e.add_argument("folder", type=Path, help="photos with .mat / .pts / .json labels of the same stem")
    e.add_argument("--out", type=Path, default=None, help="write the per-face results and summary as JSON")
    e.add_argument("--refine", action=argparse.BooleanOptionalAction, default=False)
    e.add_argument("--theta", choices=("combined", "face-mesh", "localiser"), default=None, help=THETA_HELP)
    e.add_argument("--localiser", default=None, metavar="NAME|FILE", help=LOCALISER_HELP)
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(run=_evaluate)
    args = parser.parse_args(argv)
    if args.command == "flatten" and args.grid is not None and not 8 <= args.grid <= 1024:
        parser.error(f"--grid must be in [8, 1024], got {args.grid}")
    try:
        return args.run(args)
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
