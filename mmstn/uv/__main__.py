"""``python -m mmstn.uv MODEL --out BFM_UV.mat``: the symmetric Tutte flattening of any face model, written in
the authors' ``BFM_UV.mat`` format (variable ``UV``, N×2 in [0, 1]; u with model x, v with model y).

MODEL is anything :func:`mmstn.models.registry.load_model` takes: a name (``bfm2009``, ``surrey``, ``ict``…)
or a file (BFM ``.mat`` / ``.h5``, Surrey ``.bin``, ``.npz``, OBJ or PLY). The model needs a mirror map
(the BFMs, the Surrey model and the shipped ICT face have one; a plain mesh gets one from
:func:`mmstn.models.meshtools.mirror_map`).

A mesh in several pieces, with non-manifold edges, holes or no symmetry plane is refused with exit status 2 and
one line naming the file, the problem and the :mod:`mmstn.models.meshtools` function that fixes it; nothing is
written then (the file is written beside its target and renamed, so an interrupted run leaves none either).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmstn.uv", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="model name or file (see mmstn.models.load_model)")
    parser.add_argument("--out", type=Path, required=True, help="output .mat file")
    parser.add_argument(
        "--weights",
        choices=("cotan", "mean_value", "uniform"),
        default="cotan",
        help="Tutte edge weights (default: the paper's cotangent weights)",
    )
    args = parser.parse_args(argv)
    from mmstn.models.authors import write_bfm_uv
    from mmstn.models.registry import load_model
    from mmstn.uv.embedding import symmetric_tutte

    try:
        model = load_model(args.model, verbose=False)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if model.mirror is None:
        from dataclasses import replace

        from mmstn.models.meshtools import MeshError, check_mesh, mirror_map

        V, F = model.mean.numpy(), model.triangles.numpy()
        try:
            mirror = mirror_map(V, F)
        except MeshError as exc:
            problem = str(exc)
            try:  # a second piece or a fin also breaks the symmetry search: name that root cause instead
                check_mesh(V, F, name="the mesh", one_piece=True)
            except MeshError as root:
                problem = str(root)
            print(f"error: {args.model}: {problem}", file=sys.stderr)
            return 2
        model = replace(model, mirror=mirror)
    try:
        emb = symmetric_tutte(model, weights=args.weights)
    except ValueError as exc:  # MeshError included: each message names the meshtools function that fixes it
        print(f"error: {args.model}: cannot flatten it: {exc}", file=sys.stderr)
        return 2
    write_bfm_uv(args.out, emb.uv)
    print(f"wrote {args.out}: UV {emb.uv.shape[0]}×2 ({args.weights} weights) for {model.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
