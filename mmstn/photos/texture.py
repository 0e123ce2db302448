"""A texture model learned from photos, so that synthetic training faces look like photographed skin.

The renders of :mod:`mmstn.data.synthetic` take their albedo from the model's texture model
(colour + Σ β_k T_k, β ~ N(0, I)). The shipped ICT face has only a hand-made one (skin tone, lips, brows),
and a localiser trained on such renders does not transfer to photographs. This module replaces it with one
measured on real photos, through the method's own pieces (the "face profiling" idea that built 300W-LP):

1. :class:`~mmstn.photos.flatten.Flattener` fits θ to each photo;
2. every model vertex is posed by that θ and its colour read from the photo (bilinear, crop frame);
3. a vertex hidden in the fitted pose (ray-cast self-occlusion or facing away) takes the colour of its mirror
   partner when that one is seen: faces are close to symmetric in colour as in shape. A vertex hidden on
   both sides takes the mean colour of the vertices seen in that photo;
4. PCA over the photos: the mean albedo and the first K components, scaled so that β ~ N(0, I).

The colours keep the photo's own shading and hair, beard, glasses or make-up where they cover the face; the
synthetic lighting is applied on top. No photo is stored in the result: only the mean and the components.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from mmstn.errors import ModelFileError, check_file
from mmstn.models.morphable import MorphableModel
from mmstn.photos.flatten import Flattener, _read_photo

__all__ = ["PhotoTexture", "photo_texture_model", "vertex_colours", "with_texture"]

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class PhotoTexture:
    """A per-vertex texture model measured on photos.

    Attributes:
        colour: (N, 3) mean albedo, RGB in [0, 1].
        basis: (K, N, 3) components, scaled so that β ~ N(0, I) (component k times its standard deviation).
        n_photos: how many faces went into it; names: their files.
    """

    colour: np.ndarray
    basis: np.ndarray
    n_photos: int
    names: tuple[str, ...] = ()

    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` (colour, basis, n_photos, names)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            colour=self.colour.astype(np.float32),
            basis=self.basis.astype(np.float32),
            n_photos=self.n_photos,
            names=np.array(self.names),
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> PhotoTexture:
        """Read a file written by :meth:`save`."""
        path = check_file(Path(path), "photo texture file")
        try:
            with np.load(path) as z:
                return cls(
                    z["colour"].astype(np.float64),
                    z["basis"].astype(np.float64),
                    int(z["n_photos"]),
                    tuple(str(n) for n in z["names"]),
                )
        except (OSError, KeyError, ValueError) as e:
            raise ModelFileError(
                path,
                f"is not a photo texture file ({e})",
                "Write one with python -m mmstn.photos.texture PHOTOS --out FILE.npz",
            ) from e


def vertex_colours(flattener, image: np.ndarray, face) -> np.ndarray:
    """The colour of every model vertex in one fitted face, hidden vertices completed by symmetry.

    Args:
        flattener: the :class:`~mmstn.photos.flatten.Flattener` that produced ``face``.
        image: (H, W, 3) uint8, the photo.
        face: a :class:`~mmstn.photos.flatten.FlatFace` of that photo.

    Returns:
        (N, 3) float64 in [0, 1], N = the flattener model's vertices.
    """
    model = flattener.model
    xy = face.extra["vertex_px"]  # posed and ray-cast by the flattener already
    seen = face.extra["vertex_visible"].copy()
    h, w = image.shape[:2]
    inside = (xy[:, 0] >= 0) & (xy[:, 0] <= w - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= h - 1)
    seen &= inside
    x = np.clip(xy[:, 0], 0, w - 1.001)
    y = np.clip(xy[:, 1], 0, h - 1.001)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    img = image.astype(np.float64) / 255.0
    c = (
        img[y0, x0] * (1 - fx) * (1 - fy)
        + img[y0, x0 + 1] * fx * (1 - fy)
        + img[y0 + 1, x0] * (1 - fx) * fy
        + img[y0 + 1, x0 + 1] * fx * fy
    )
    out = c.copy()
    mirror = model.mirror.numpy() if model.mirror is not None else np.arange(len(c))
    from_mirror = ~seen & seen[mirror]
    out[from_mirror] = c[mirror[from_mirror]]
    neither = ~seen & ~seen[mirror]
    out[neither] = c[seen].mean(0) if seen.any() else 0.5
    return out


def photo_texture_model(
    photos: Sequence[str | Path],
    model: MorphableModel | None = None,
    n_components: int = 20,
    *,
    progress: bool = True,
) -> PhotoTexture:
    """Measure a texture model on a set of face photos (one face per photo: the largest).

    Args:
        photos: photo files; unreadable ones and photos without a face are skipped with a message on stderr.
        model: the morphable model (default: the shipped ICT face); the texture is per vertex of it.
        n_components: K, at most (number of faces − 1).
        progress: show a progress bar.

    Returns:
        :class:`PhotoTexture`.

    Raises:
        ValueError: fewer than two faces were found.
    """
    from tqdm.auto import tqdm

    fl = Flattener(model, largest=True)
    rows, names = [], []
    for p in tqdm(list(photos), desc="photo textures", disable=not progress):
        try:
            image = _read_photo(Path(p))
            faces = fl.flatten_image(image, name=str(p))
        except Exception as e:
            print(f"mmstn: skipped {p}: {e}", file=sys.stderr)
            continue
        if not faces or faces[0].method != "face_mesh":
            print(f"mmstn: skipped {p}: no face mesh found", file=sys.stderr)
            continue
        rows.append(vertex_colours(fl, image, faces[0]).reshape(-1))
        names.append(Path(p).name)
    if len(rows) < 2:
        raise ValueError(f"photo_texture_model: {len(rows)} usable faces in {len(photos)} photos; need at least 2")
    X = np.stack(rows)
    mean = X.mean(0)
    k = max(0, min(int(n_components), len(rows) - 1))
    _, sv, vt = np.linalg.svd(X - mean, full_matrices=False)
    sd = sv[:k] / np.sqrt(len(rows) - 1)
    n = fl.model.n_vertices
    basis = (vt[:k] * sd[:, None]).reshape(k, n, 3)
    return PhotoTexture(mean.reshape(n, 3).clip(0, 1), basis, len(rows), tuple(names))


def with_texture(model: MorphableModel, texture: PhotoTexture) -> MorphableModel:
    """``model`` with its texture model replaced by ``texture`` (same vertices)."""
    if texture.colour.shape != (model.n_vertices, 3):
        raise ValueError(
            f"the photo texture has {texture.colour.shape[0]} vertices, model {model.name!r} has {model.n_vertices}:"
            " measure it on the same model"
        )
    return replace(
        model,
        colour=torch.from_numpy(texture.colour).float(),
        texture_basis=torch.from_numpy(texture.basis).float(),
        name=f"{model.name} + photo texture ({texture.n_photos} faces)",
    )


def photo_files(paths: Sequence[str | Path]) -> list[Path]:
    """Photo files named directly or found (recursively) in the folders named."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix.lower() in PHOTO_SUFFIXES)
        else:
            out.append(p)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m mmstn.photos.texture", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("photos", nargs="+", help="photo files or folders of photos")
    ap.add_argument("--out", required=True, help="the .npz to write")
    ap.add_argument("--components", type=int, default=20, help="K, the number of texture components")
    a = ap.parse_args(argv)
    files = photo_files(a.photos)
    if not files:
        ap.error(f"no photos ({', '.join(PHOTO_SUFFIXES)}) in {' '.join(a.photos)}")
    tex = photo_texture_model(files, n_components=a.components)
    print(f"mmstn: texture model of {tex.n_photos} faces, {tex.basis.shape[0]} components -> {tex.save(a.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
