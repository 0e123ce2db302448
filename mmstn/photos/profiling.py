"""Face profiling: training faces in any pose, made from real photos through the STN itself.

The idea that built 300W-LP, done with this package's own layers: a real photo is flattened at its fitted
θ (:mod:`mmstn.photos.flatten`); the flattened face is completed by its mirror image (the grid is
left–right symmetric, so column c and column G − 1 − c hold mirrored surface points) where the visibility
mask hides it; the grid model textured by it is rendered in new poses, over backgrounds cut from other photos.
Each render knows its true θ, so the true image position of every model vertex is known.

:mod:`mmstn.photos.correction` uses these renders to learn how the face mesh's points err at large yaw.
``python -m mmstn.photos.profiling PHOTOS... --out FILE --n N`` writes the samples: the face mesh's 468 points
on each render and the true positions of their model vertices (256-pixel renders, 0-based pixels).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from .flatten import FlatFace, Flattener, _read_photo
from .landmarker import FaceBox

__all__ = ["complete_by_mirror", "profile_samples"]

RENDER_SIZE = 256


def complete_by_mirror(flat: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill the hidden cells of a flattened face (G, G, 3) from their mirrored cells, the rest by the mean colour.

    Args:
        flat: (G, G, 3) float in [0, 1]; mask: (G, G) bool, True where the cell was visible.

    Returns:
        (G, G, 3) float32 with no hole.
    """
    out = flat.astype(np.float32).copy()
    mirror_ok = mask[:, ::-1] & ~mask
    out[mirror_ok] = flat[:, ::-1][mirror_ok]
    hole = ~(mask | mirror_ok)
    if mask.any():
        out[hole] = flat[mask].mean(0)
    return out


def _texture(face: FlatFace) -> np.ndarray:
    return complete_by_mirror(face.flat, face.mask).reshape(-1, 3)


def profile_samples(
    photos: list[Path], n: int, seed: int = 0, flattener: Flattener | None = None, verbose: bool = True
) -> dict[str, np.ndarray]:
    """``n`` profiled renders of faces from ``photos`` and the face mesh's points on them (module docstring).

    Returns:
        ``{"mesh": (n, 468, 2), "true": (n, 468, 2), "theta": (n, 6 + D), "yaw": (n,) degrees,
        "source": (n,) photo index}``; pixels of the 256-pixel render.
    """
    from mmstn.layers.grid import labels_to_pixels
    from mmstn.render import Lighting, pose_vertices, render_face
    from mmstn.transforms import euler_to_axis_angle_np

    fl = flattener or Flattener(grid=112)
    rng = np.random.default_rng(seed)
    textures, backgrounds = [], []
    for p in photos:
        try:
            img = _read_photo(p)
            faces = fl.flatten_image(img, name=str(p))
        except Exception as exc:  # a photo that cannot serve as a source is skipped
            if verbose:
                print(f"skip {p}: {exc}")
            continue
        backgrounds.append(img)
        textures += [(_texture(f), len(backgrounds) - 1) for f in faces if f.method == "face_mesh"]
    if not textures:
        raise RuntimeError("no usable face in the photos")
    S = RENDER_SIZE
    model, grid = fl.model, fl.grid_model
    ib = grid.landmarks["ibug68"]
    mesh_all, true_all, th_all, yaw_all, src_all = [], [], [], [], []
    tries = 0
    while len(mesh_all) < n and tries < 3 * n:
        tries += 1
        k = int(rng.integers(len(textures)))
        tex, own = textures[k]
        yaw = rng.uniform(-90.0, 90.0)
        pitch, roll = rng.normal(0.0, 10.0), rng.normal(0.0, 8.0)
        theta = torch.zeros(6 + model.n_components, dtype=torch.float64)
        theta[:3] = torch.from_numpy(euler_to_axis_angle_np(*np.radians([yaw, pitch, roll])))
        theta[5] = math.log(rng.uniform(0.42, 0.6) * S / 150.0)
        theta[3:5] = torch.from_numpy((S + 1) / 2 + rng.uniform(-12, 12, 2))
        theta[6:] = torch.from_numpy(0.8 * rng.standard_normal(model.n_components))
        # background: a random square of another photo
        others = [b for j, b in enumerate(backgrounds) if j != own] or backgrounds
        bg_img = others[int(rng.integers(len(others)))]
        h, w = bg_img.shape[:2]
        side = int(min(h, w) * rng.uniform(0.4, 1.0))
        y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        from PIL import Image

        bg = np.asarray(Image.fromarray(bg_img[y0 : y0 + side, x0 : x0 + side]).resize((S, S))) / 255.0
        light = Lighting(
            ambient=rng.uniform(0.75, 1.0),
            diffuse=rng.uniform(0.0, 0.3),
            direction=(rng.uniform(-1, 1), rng.uniform(-0.5, 1), 1.0),
        )
        rf = render_face(grid, theta.to(grid.dtype), image_size=S, albedo=tex, lighting=light, background=bg)
        img = (rf.image.numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
        lm = rf.points[ib].double()
        lm_px = labels_to_pixels(lm, S).numpy()
        box = FaceBox(*lm_px.min(0), *lm_px.max(0))
        pts = fl.faces.mesh(img, box)
        if pts is None:
            continue
        with torch.no_grad():
            mp_, _, _ = pose_vertices(model, theta[None].to(model.dtype), scale_base="exp")
        true = labels_to_pixels(mp_[0].double(), S).numpy()
        vertex = fl._all_vertex
        mesh_all.append(pts.astype(np.float32))
        true_all.append(true[vertex].astype(np.float32))
        th_all.append(theta.numpy())
        yaw_all.append(yaw)
        src_all.append(k)
        if verbose and len(mesh_all) % 100 == 0:
            print(f"{len(mesh_all)}/{n} samples ({tries} renders)", flush=True)
    return {
        "mesh": np.stack(mesh_all),
        "true": np.stack(true_all),
        "theta": np.stack(th_all),
        "yaw": np.asarray(yaw_all),
        "source": np.asarray(src_all),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mmstn.photos.profiling", description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="+", type=Path, help="photos (or folders of photos) to take faces from")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from .evaluate import IMAGE_SUFFIXES

    files: list[Path] = []
    for p in args.photos:
        files += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES) if p.is_dir() else [p]
    fl = Flattener(grid=112, correction=False)
    data = profile_samples(files, args.n, args.seed, fl)
    np.savez_compressed(args.out, **data)
    print(f"wrote {args.out}: {len(data['yaw'])} samples from {len(files)} photos")


if __name__ == "__main__":
    main()
