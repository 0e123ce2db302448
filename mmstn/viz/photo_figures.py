"""Figures and a widget for flattened photos (the quick start, chapter 00)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from mmstn.render import Lighting, render_face
from mmstn.theta import THETA_LOGS, THETA_R, THETA_T
from mmstn.transforms import euler_to_axis_angle_np
from mmstn.viz.style import point_style

__all__ = ["fitted_face_viewer", "render_fitted_face", "show_flattened"]


def show_flattened(face, photo: np.ndarray) -> Figure:
    """Photo with box and landmarks, the flattened face and its visibility mask, side by side."""
    fig, ax = plt.subplots(
        1, 3, figsize=(10.5, 3.8), gridspec_kw={"width_ratios": [photo.shape[1] / photo.shape[0], 1, 1]}
    )
    ax[0].imshow(photo)
    b = face.box
    ax[0].add_patch(plt.Rectangle((b.x0, b.y0), b.x1 - b.x0, b.y1 - b.y0, fill=False, color="gold", lw=1.2))
    lm, vis = face.landmarks["ibug68"], face.visible["ibug68"]
    ax[0].scatter(lm[vis, 0], lm[vis, 1], **point_style("estimate", 5.0), label="visible")
    ax[0].scatter(lm[~vis, 0], lm[~vis, 1], s=10, marker="x", color="white", lw=0.8, label="hidden")
    ax[0].legend(loc="lower left", fontsize=7, framealpha=0.7)
    ax[0].set_title(f"photo: box, 68 fitted landmarks ({face.method})")
    ax[1].imshow(face.flat)
    ax[1].set_title(f"flattened face W (G = {face.flat.shape[0]})")
    ax[2].imshow(face.mask, cmap="gray", vmin=0, vmax=1)
    ax[2].set_title(f"visibility mask M ({100 * face.mask.mean():.0f} % visible)")
    for a in ax:
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    return fig


def render_fitted_face(face, flattener, yaw_deg: float = 0.0, pitch_deg: float = 0.0, size: int = 224) -> np.ndarray:
    """The fitted 3D face textured by its flattened image, seen from (yaw, pitch) degrees: (size, size, 3)."""
    grid = flattener.grid_model
    theta = torch.from_numpy(face.theta.copy())
    theta[THETA_R] = torch.from_numpy(euler_to_axis_angle_np(math.radians(yaw_deg), math.radians(pitch_deg), 0.0))
    extent = float(np.ptp(face.shape[:, 0]))
    theta[THETA_LOGS] = math.log(0.8 * size / extent)
    centre = 0.5 * (face.shape.min(0) + face.shape.max(0))
    s = math.exp(float(theta[THETA_LOGS.start]))
    theta[THETA_T] = torch.tensor([(size + 1) / 2 - s * float(centre[0]), (size + 1) / 2 - s * float(centre[1])],
                                  dtype=theta.dtype)
    colours = face.flat.reshape(-1, 3).copy()
    colours[~face.mask.reshape(-1)] = 0.5  # cells the photo did not see
    rf = render_face(
        grid,
        theta.to(grid.dtype),
        image_size=size,
        albedo=colours,
        lighting=Lighting(ambient=0.85, diffuse=0.25),
        background=np.full((size, size, 3), 0.12),
    )
    return rf.image.numpy().transpose(1, 2, 0)


def fitted_face_viewer(face, flattener, size: int = 224):
    """Sliders for yaw and pitch that turn the fitted, textured face: an ipywidgets ``VBox`` whose
    ``ipywidgets.Image`` (PNG) is redrawn on every change."""
    import ipywidgets as w
    from PIL import Image

    yaw = w.IntSlider(value=30, min=-80, max=80, step=5, description="yaw (°)", continuous_update=False)
    pitch = w.IntSlider(value=0, min=-40, max=40, step=5, description="pitch (°)", continuous_update=False)
    image = w.Image(format="png", width=size, height=size)

    def draw(*_) -> None:
        import io

        img = render_fitted_face(face, flattener, yaw.value, pitch.value, size)
        buf = io.BytesIO()
        Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8)).save(buf, format="PNG")
        image.value = buf.getvalue()

    yaw.observe(draw, "value")
    pitch.observe(draw, "value")
    draw()
    return w.VBox([w.HBox([yaw, pitch]), image])
