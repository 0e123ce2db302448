"""Command line: ``python -m mmstn.train [--config run.json] --out runs/x [--FIELD VALUE ...]``.

Every :class:`~mmstn.train.config.TrainConfig` field is a flag (``--batch-size 16``, ``--recipe authors``,
``--weights landmark=1,prior=0.01``, ``--no-mirror``); flags override the ``--config`` file, which overrides the
recipe's defaults. The run resumes from ``OUT/checkpoint.pt`` unless ``--restart`` is given. Under ``torchrun``
(WORLD_SIZE > 1) it trains with DistributedDataParallel.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing

from mmstn.train import config as _cfg
from mmstn.train.config import TrainConfig

#: Fields with a fixed set of values: argparse rejects anything else and lists the valid ones.
_CHOICES: dict[str, tuple[str, ...]] = {
    "recipe": _cfg.RECIPES, "data": _cfg.DATA_SOURCES, "trunk": _cfg.TRUNKS, "stn": _cfg.STN_CONFIGS,
    "schedule": _cfg.SCHEDULES, "siamese_mode": _cfg.SIAMESE_MODES, "reduction": _cfg.REDUCTIONS,
    "optimizer": _cfg.OPTIMIZERS, "amp": _cfg.AMP_MODES, "model": _cfg.MODELS,
}


def _parse_weights(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if not _:
            raise argparse.ArgumentTypeError(f"--weights expects name=value pairs, got {part!r}")
        out[key.strip()] = float(value)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mmstn.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="JSON file with TrainConfig fields (e.g. a run's config.json)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, metrics.csv, config.json)")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start afresh")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        if f.name == "weights":
            p.add_argument(flag, type=_parse_weights, default=None, help="loss weights, e.g. landmark=1,prior=0.001")
        elif hint is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif f.name == "trunk_widths":
            p.add_argument(flag, type=lambda s: tuple(int(v) for v in s.split(",")), default=None,
                           help="five comma-separated widths")
        else:
            args = typing.get_args(hint)
            kind = next((a for a in args if a in (int, float, str)), hint if hint in (int, float, str) else str)
            if kind is int and float in args:
                kind = float
            if f.name in _CHOICES:
                p.add_argument(flag, choices=_CHOICES[f.name], default=None)
            else:
                p.add_argument(flag, type=kind, default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    base = json.loads(TrainConfig.from_json(args.config).to_json()) if args.config else {}
    recipe = args.recipe or base.get("recipe", "recommended")
    changes = {k: v for k, v in base.items() if k != "recipe"}
    for f in dataclasses.fields(TrainConfig):
        v = getattr(args, f.name)
        if v is not None and f.name != "recipe":
            changes[f.name] = v
    try:
        factory = TrainConfig.authors if recipe == "authors" else TrainConfig.recommended
        if args.weights is not None:  # a partial --weights overrides only the named terms
            start = base.get("weights") or factory().weights.as_dict()
            changes["weights"] = {**start, **args.weights}
        config = factory(**changes)
    except (TypeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(config.to_json(), end="")
        return 0
    from mmstn.train.checkpoint import CheckpointError
    from mmstn.train.loop import RunFolderError, train

    try:
        result = train(config, args.out, resume=not args.restart)
    except (CheckpointError, RunFolderError) as exc:  # a clear message, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: the completed steps are saved in {args.out}; run the same command to resume",
              file=sys.stderr)
        return 130
    if result.final_eval:
        print(json.dumps({k: round(v, 4) for k, v in result.final_eval.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
