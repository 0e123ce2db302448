"""Maintainers: turn a finished run into a shipped localiser (``mmstn/checkpoints/<name>.*``).

``python -m mmstn.train.ship RUN_DIR --name NAME --licence TEXT --data TEXT --command TEXT``

Writes, beside the shipped localisers (:func:`mmstn.train.load_pretrained` reads them):

* ``NAME.pt`` (the run's ``weights.pt``) and its SHA-256 sidecar;
* ``NAME.json``: its :class:`~mmstn.train.config.TrainConfig`, with ``name`` = NAME;
* ``NAME_metrics.csv``: the training curve, means over blocks of 10 steps (validation rows kept);
* ``NAME_metrics.json``: validation metrics on the first 256 images of the synthetic validation set (seed
  ``config.val_seed``, never trained on), by |yaw| bin and for near-frontal faces, the 64- and 32-image check
  values the tests recompute, and the training summary.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
from importlib import resources
from pathlib import Path

import numpy as np

from mmstn.train.checkpoint import load_weights, write_sidecar
from mmstn.train.evaluate import evaluate
from mmstn.train.loop import build_val_dataset, read_metrics

__all__ = ["ship"]

_NOTES = (
    "landmark_error_px: mean Euclidean distance over visible landmarks at 224x224 (label frame), averaged over "
    "images; nme_box in % of sqrt(w*h) of the landmark box; rotation_error_deg: geodesic; alpha_rmse in standard "
    "deviations; shape_rmse_mm: RMS vertex distance of the shapes; flattened_error: mean |W(theta_hat) - "
    "W(theta_true)| over co-visible cells, colours in [0, 1]"
)


def _summary(localiser, stn, val: list[dict], keep: np.ndarray | None = None) -> dict:
    items = val if keep is None else [v for v, k in zip(val, keep, strict=True) if k]
    if not items:
        return {"n_images": 0}
    s = evaluate(localiser, stn, items).summary
    return {**s, "n_images": int(s["n_images"])}


def _blocks(rows: list[dict[str, float]], size: int = 10) -> list[dict[str, float]]:
    out = []
    for k in range(0, len(rows), size):
        block = rows[k : k + size]
        row = {}
        for key in block[0]:
            vals = [r[key] for r in block if not math.isnan(r.get(key, math.nan))]
            row[key] = float(np.mean(vals)) if vals else math.nan
        row["step"] = block[-1]["step"]
        val = [r for r in block if not math.isnan(r.get("val_landmark_error_px", math.nan))]
        if val:  # the validation rows are single steps: keep their values, not a block mean
            row["val_landmark_error_px"] = val[-1]["val_landmark_error_px"]
            row["val_rotation_error_deg"] = val[-1]["val_rotation_error_deg"]
        out.append(row)
    return out


def ship(
    run_dir: str | Path,
    name: str,
    *,
    licence: str,
    data: str,
    command: str,
    device: str,
    out_dir: str | Path | None = None,
) -> Path:
    """Write the shipped files of the run in ``run_dir`` (module docstring); returns the ``.pt`` path."""
    run = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else Path(str(resources.files("mmstn") / "checkpoints"))
    localiser, stn, config = load_weights(run / "weights.pt")
    config = config.replace(name=name)
    pt = out / f"{name}.pt"
    shutil.copyfile(run / "weights.pt", pt)
    write_sidecar(pt)
    config.to_json(out / f"{name}.json")
    rows = read_metrics(run / "metrics.csv")
    blocks = _blocks(rows)
    with (out / f"{name}_metrics.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(blocks[0]))
        w.writeheader()
        w.writerows(blocks)
    val = build_val_dataset(config, 256)
    res = evaluate(localiser, stn, val)
    yaw = np.abs(res.per_image["yaw_deg"])
    metrics = {
        "name": name,
        "licence": licence,
        "val_seed": config.val_seed,
        "val_description": f"first 256 images of SyntheticStream(seed={config.val_seed}, n_subjects="
        f"{config.n_subjects}, image_size={config.image_size}, model={config.model!r}); never used for training",
        "metric_notes": _NOTES,
        "val": {**res.summary, "n_images": int(res.summary["n_images"])},
        "val_frontal": _summary(localiser, stn, val, yaw <= 45),
        "val_by_abs_yaw": {
            f"{lo}-{hi}": _summary(localiser, stn, val, (yaw >= lo) & (yaw < hi + (hi == 90)))
            for lo, hi in ((0, 30), (30, 60), (60, 90))
        },
    }
    for key, n in (("check_subset", 64), ("check_32", 32)):
        s = evaluate(localiser, stn, val[:n], flattened=False).summary
        metrics[key] = {
            "n_images": n,
            "landmark_error_px": s["landmark_error_px"],
            "rotation_error_deg": s["rotation_error_deg"],
        }
    val_rows = [r for r in rows if not math.isnan(r.get("val_landmark_error_px", math.nan))]
    metrics["training"] = {
        "steps": int(rows[-1]["step"]),
        "minutes": float(rows[-1]["elapsed_s"]) / 60,
        "device": device,
        "data": data,
        "command": command,
        "final_train_landmark_error_px_last50": float(np.mean([r["train_landmark_error_px"] for r in rows[-50:]])),
        "val_curve": [
            [int(r["step"]), round(r["val_landmark_error_px"], 4), round(r["val_rotation_error_deg"], 3)]
            for r in val_rows
        ],
    }
    (out / f"{name}_metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    return pt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m mmstn.train.ship", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("run", type=Path, help="the finished run folder (weights.pt, metrics.csv)")
    ap.add_argument("--name", required=True)
    ap.add_argument("--licence", required=True)
    ap.add_argument("--data", required=True, help="what the training data was, for the record")
    ap.add_argument("--command", required=True, help="the command that trained it, for the record")
    ap.add_argument("--device", default="CPU, 2 cores")
    ap.add_argument("--out", type=Path, default=None, help="default: the package's checkpoints folder")
    a = ap.parse_args(argv)
    pt = ship(a.run, a.name, licence=a.licence, data=a.data, command=a.command, device=a.device, out_dir=a.out)
    print(f"mmstn: shipped {pt}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
