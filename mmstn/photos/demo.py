"""A stand-in photo for the quick start when no photo of your own is at hand.

It is a render of the shipped face model with its texture model, over a soft background, not a photograph;
the quick start says so and uses your own photo (``$MMSTN_DATA/photos/``) when there is one.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

__all__ = ["demo_photo"]


def demo_photo(path: str | Path, yaw_deg: float = 25.0, seed: int = 0, size: tuple[int, int] = (360, 300)) -> Path:
    """Write a (H, W) = ``size`` PNG of the default face at ``yaw_deg`` to ``path`` and return the path."""
    from PIL import Image

    from mmstn.models.ict import ict_face_model
    from mmstn.render import Lighting, render_face
    from mmstn.theta import THETA_ALPHA, THETA_LOGS, THETA_R, THETA_T, theta_size
    from mmstn.transforms import euler_to_axis_angle_np

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
    y0, x0 = (h - S) // 2, (w - S) // 2
    rf = render_face(
        model,
        theta.to(model.dtype),
        image_size=S,
        albedo=albedo,
        lighting=Lighting(direction=(0.4, 0.3, 1.0)),
        background=bg[y0 : y0 + S, x0 : x0 + S],
    )
    face = rf.image.numpy().transpose(1, 2, 0)
    photo = bg.copy()
    photo[y0 : y0 + S, x0 : x0 + S] = face
    photo = (photo * 255).round().astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo).save(path)
    return path
