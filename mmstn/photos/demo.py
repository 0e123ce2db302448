"""Stand-in photos: renders of a face model with their exact landmarks, for when no photo is at hand.

:func:`demo_photo` is the quick start's: the shipped face with its texture model over a soft background, not
a photograph; the quick start says so and uses your own photo (``$MMSTN_DATA/photos/``) when there is one.
:func:`render_labelled` is the one renderer of every labelled stand-in (the quick start, notebook 07's
stand-in people, the yaw benchmark).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from mmstn.layers.grid import labels_to_pixels
from mmstn.models.ict import ict_face_model
from mmstn.render import Lighting, pose_vertices, render_face
from mmstn.theta import THETA_ALPHA, THETA_LOGS, THETA_R, THETA_T, theta_size
from mmstn.transforms import euler_to_axis_angle_np

__all__ = ["demo_photo", "render_labelled"]


def render_labelled(
    model, theta: torch.Tensor, albedo: torch.Tensor, lighting, canvas: np.ndarray, size: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Render ``model`` posed by θ into the centre of ``canvas``, with its landmarks.

    Args:
        model: the morphable model; theta: (6 + D,) float64 θ (s = exp(logs)) in the label frame of a
            ``size`` × ``size`` crop; albedo: (N, 3) in [0, 1]; lighting: :class:`mmstn.render.Lighting`.
        canvas: (H, W, 3) float background in [0, 1]; the face crop is pasted at its centre.
        size: the face crop's side in pixels (at most H and W).

    Returns:
        (photo (H, W, 3) uint8, {landmark set: (L, 2) 0-based photo pixels, x right, y down}).
    """
    h, w = canvas.shape[:2]
    y0, x0 = (h - size) // 2, (w - size) // 2
    th = theta.to(model.dtype)
    rf = render_face(
        model, th, image_size=size, albedo=albedo, lighting=lighting, background=canvas[y0 : y0 + size, x0 : x0 + size]
    )
    photo = canvas.copy()
    photo[y0 : y0 + size, x0 : x0 + size] = rf.image.numpy().transpose(1, 2, 0)
    pts, _, _ = pose_vertices(model, th[None], scale_base="exp")
    px = labels_to_pixels(pts[0].double(), size).numpy() + np.array([x0, y0])
    marks = {name: px[ids.numpy()] for name, ids in model.landmarks.items() if int(ids.min()) >= 0}
    return (photo * 255).round().astype(np.uint8), marks


def demo_photo(path: str | Path, yaw_deg: float = 25.0, seed: int = 0, size: tuple[int, int] = (360, 300)) -> Path:
    """Write a (H, W) = ``size`` PNG of the default face at ``yaw_deg`` to ``path`` and return the path."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    model = ict_face_model()
    S = 256
    theta = torch.zeros(theta_size(model.n_components), dtype=torch.float64)
    theta[THETA_R] = torch.from_numpy(
        euler_to_axis_angle_np(math.radians(yaw_deg), math.radians(-4.0), math.radians(3.0))
    )
    theta[THETA_T] = torch.tensor([(S + 1) / 2, (S + 1) / 2 + 16], dtype=torch.float64)
    theta[THETA_LOGS] = math.log(0.6 * S / 150.0)
    theta[THETA_ALPHA][:10] = torch.from_numpy(0.7 * rng.standard_normal(10))  # the first 10 components
    beta = torch.from_numpy(0.5 * rng.standard_normal(model.texture_basis.shape[0])).to(model.dtype)
    albedo = model.albedo(beta[None])[0].clamp(0, 1)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([0.55 + 0.2 * xx / w, 0.6 + 0.1 * yy / h, 0.7 - 0.2 * xx / w], -1)
    photo, _ = render_labelled(model, theta, albedo, Lighting(direction=(0.4, 0.3, 1.0)), bg, S)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo).save(path)
    return path
