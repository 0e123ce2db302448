"""Train a localiser from any folder of face photos, in one command (no labels, no licensed data).

``python -m mmstn.train.from_photos PHOTOS [PHOTOS ...] --out runs/photo_small [--images 25000]
[--steps 6000]``

1. **Texture** (:mod:`mmstn.photos.texture`): θ is fitted to every photo, the photo's colours are read at
   the model's vertices (hidden ones completed by symmetry) and a PCA texture model is made from them;
2. **data** (:mod:`mmstn.data.synthetic`): the default face (ICT, 5 identity + 5 expression components)
   rendered with that texture in random poses (the full yaw range), light, backgrounds and occluders, with
   exact labels;
3. **training** (:mod:`mmstn.train.loop`): the recommended recipe with photometric augmentation (blur, noise,
   grey, contrast, colour cast) on top; resumable: run the same command again after an interruption.

The photos themselves are never stored in the run folder, only the texture model's mean and components and
the rendered images.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from mmstn.data.synthetic import generate_dataset
from mmstn.photos.texture import PhotoTexture, photo_files, photo_texture_model, with_texture
from mmstn.train.config import TrainConfig
from mmstn.train.loop import train
from mmstn.train.model import data_model

__all__ = ["photo_config", "train_from_photos"]


def photo_config(data_path: str | Path, *, steps: int = 6000, name: str = "photo_small", **changes) -> TrainConfig:
    """The recipe of the shipped ``photo_small`` localiser: the recommended one on a rendered folder, with
    photometric augmentation (strength 1)."""
    return TrainConfig.recommended(
        name=name, data="folder", data_path=str(data_path), model="ict", steps=steps, augment=1.0, **changes
    )


def train_from_photos(
    photos: Sequence[str | Path],
    out: str | Path,
    *,
    n_images: int = 25_000,
    steps: int = 6000,
    n_components: int = 20,
    seed: int = 0,
    progress: bool = True,
    **changes,
):
    """Texture model → rendered training set → trained localiser, all under ``out``.

    Args:
        photos: photo files or folders (searched recursively).
        out: the run folder: ``texture.npz``, ``data/`` (the rendered set), ``run/`` (the training run:
            ``weights.pt``, ``metrics.csv``, ``checkpoint.pt``).
        n_images: rendered training images; steps: optimiser steps; n_components: texture components.
        seed: the rendered set's seed.
        changes: other :class:`~mmstn.train.config.TrainConfig` fields.

    Returns:
        the :class:`~mmstn.train.loop.TrainResult`.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tex_path = out / "texture.npz"
    if tex_path.exists():
        tex = PhotoTexture.load(tex_path)
    else:
        files = photo_files(photos)
        if not files:
            raise ValueError(f"no photos found in {', '.join(map(str, photos))}")
        tex = photo_texture_model(files, n_components=n_components, progress=progress)
        tex.save(tex_path)
    model = with_texture(data_model("ict"), tex)
    data = generate_dataset(out / "data", n_images, seed=seed, model=model, progress=progress)
    config = photo_config(data, steps=steps, progress=progress, **changes)
    return train(config, out / "run")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m mmstn.train.from_photos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("photos", nargs="+", help="photo files or folders of face photos")
    ap.add_argument("--out", required=True, help="the run folder")
    ap.add_argument("--images", type=int, default=25_000, help="rendered training images (default 25000)")
    ap.add_argument("--steps", type=int, default=6000, help="optimiser steps (default 6000)")
    ap.add_argument("--components", type=int, default=20, help="texture components (default 20)")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    a = ap.parse_args(argv)
    if a.images < 1 or a.steps < 1:
        ap.error("--images and --steps must be positive")
    result = train_from_photos(
        a.photos, a.out, n_images=a.images, steps=a.steps, n_components=a.components, workers=a.workers
    )
    print(f"mmstn: trained {a.out}/run: {result.step} steps, validation {result.final_eval}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
