"""The STN explorer of chapter 3: move θ with sliders and watch the grid, the flattened face and the mask follow.

The image stays fixed (a rendering of a model at a known pose, or any (C, H, W) image); the sliders set the
STN's θ. Moving them away from the rendered pose shows what a wrong estimate does: the projected mesh slides
off the face and the flattened output W = V·M and the visibility mask M change with it.

Like :class:`mmstn.viz.widgets.ModelExplorer`, the explorer draws a matplotlib figure into one
``ipywidgets.Image`` (PNG), so it works in a browser, under nbval and in plain Python tests, where setting a
slider's ``value`` runs the same callback as a reader's drag. The first slider of :attr:`STNExplorer.widget` is
the yaw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch

from mmstn.models.morphable import MorphableModel
from mmstn.render import Lighting, render_face
from mmstn.stn import STN3DMM, STNOutput
from mmstn.theta import Theta
from mmstn.viz.layer_figures import _wireframe, imshow_label_frame
from mmstn.viz.mesh import figure_to_png
from mmstn.viz.style import to_rgb

__all__ = ["POSE_SLIDERS", "STNExplorer", "default_theta", "stn_explorer"]

#: Names of the pose sliders, in their order in the box (yaw first).
POSE_SLIDERS: tuple[str, ...] = ("yaw", "pitch", "roll", "scale", "tx", "ty")


def default_theta(stn: STN3DMM, yaw: float = 25.0, scale: float = 0.8, t: tuple[float, float] = (112.0, 108.0)
                  ) -> Theta:
    """θ (one image) for a face at ``yaw`` degrees, ``scale`` px/mm and label-frame translation ``t`` with α = 0,
    in the STN's own convention (logs = ln(s)/κ)."""
    return Theta.from_euler(yaw, 0.0, 0.0, t, scale=scale, n_components=stn.generator.n_components,
                            convention=stn.config, dtype=stn.generator.morphable.mean.dtype)


@dataclass
class STNExplorer:
    """Pose and shape sliders driving the STN on a fixed image.

    Attributes:
        stn: the :class:`~mmstn.stn.STN3DMM`.
        input_image: (C, H, W) the image the STN samples.
        sliders: ``FloatSlider`` s by name: ``yaw``, ``pitch``, ``roll`` (degrees), ``scale`` (px/mm),
            ``tx``, ``ty`` (label frame px), then ``alpha1``, ``alpha2``, ... (coefficients α_k, k 1-based).
        image: the ``ipywidgets.Image`` with the current figure (PNG).
        status: a label showing the current θ.
        widget: the whole box to display.
        renders: how many times the figure was drawn (1 after construction).
        output: the last :class:`~mmstn.stn.STNOutput`.
    """

    stn: STN3DMM
    input_image: torch.Tensor
    sliders: dict[str, widgets.FloatSlider]
    image: widgets.Image
    status: widgets.Label
    widget: widgets.Box
    n_points: int = 16
    renders: int = 0
    output: STNOutput | None = field(default=None, repr=False)

    @property
    def theta(self) -> Theta:
        """θ (one image) set by the sliders, in the STN's convention and dtype (unset coefficients are 0)."""
        s = self.sliders
        alpha = torch.zeros(1, self.stn.generator.n_components, dtype=torch.float64)
        for name, slider in s.items():
            if name.startswith("alpha"):
                alpha[0, int(name[5:]) - 1] = slider.value
        return Theta.from_euler(s["yaw"].value, s["pitch"].value, s["roll"].value, (s["tx"].value, s["ty"].value),
                                scale=s["scale"].value, alpha=alpha, convention=self.stn.config,
                                dtype=self.stn.generator.morphable.mean.dtype)

    def set_theta(self, theta: Theta | torch.Tensor) -> None:
        """Move the sliders to θ (a one-image Theta, or a (6 + D,) / (1, 6 + D) tensor in the STN's convention)
        without redrawing in between; then redraw once."""
        p = self.stn.generator.theta_params(theta).detach().to(torch.float64)
        yaw, pitch, roll = (float(a[0]) for a in p.to_euler())
        values = {"yaw": yaw, "pitch": pitch, "roll": roll, "tx": float(p.t[0, 0]), "ty": float(p.t[0, 1]),
                  "scale": float(p.scale[0, 0])}
        values.update({n: float(p.alpha[0, int(n[5:]) - 1]) for n in self.sliders if n.startswith("alpha")})
        for name, slider in self.sliders.items():
            slider.unobserve(self.render, names="value")
            slider.value = round(float(np.clip(values[name], slider.min, slider.max)), 4)
            slider.observe(self.render, names="value")
        self.render()

    def render(self, *_: object) -> None:
        """Run the STN for the sliders' θ and redraw: the grid over the image, W = V·M and M."""
        theta = self.theta
        with torch.no_grad():
            out = self.stn(self.input_image[None].to(theta.dtype), theta)
        self.output = out
        g = out.mask.shape[-1]
        fig, axes = plt.subplots(1, 3, figsize=(8.4, 2.9))
        imshow_label_frame(axes[0], self.input_image, ticks=False)
        _wireframe(axes[0], out.points[0], g, max(1, g // self.n_points), lw=0.6)
        p = out.points[0].numpy()
        hidden = ~out.mask[0, 0].reshape(-1).bool().numpy()
        step = max(1, g // (2 * self.n_points))
        sub = np.zeros((g, g), dtype=bool)
        sub[::step, ::step] = True
        hidden &= sub.reshape(-1)
        axes[0].scatter(p[hidden, 0], p[hidden, 1], s=2, c="red")
        if out.landmarks.shape[1]:
            lm = out.landmarks[0].numpy()
            axes[0].scatter(lm[:, 0], lm[:, 1], s=8, c="yellow", edgecolors="k", linewidths=0.3)
        axes[0].set_title("θ's grid over the image (red: hidden)", fontsize=9)
        for ax, img, title in ((axes[1], to_rgb(out.flattened[0]), "flattened W = V·M"),
                               (axes[2], to_rgb(out.mask[0]), f"visibility M: {100 * out.mask.mean():.0f} %")):
            ax.imshow(img, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        self.image.value = figure_to_png(fig, dpi=72)
        r, t, logs, alpha = (x.double() for x in (theta.r, theta.t, theta.logs, theta.alpha))
        self.status.value = (
            f"θ: r = ({', '.join(f'{v:+.3f}' for v in r[0].tolist())}) rad, t = ({t[0, 0]:.0f}, {t[0, 1]:.0f}), "
            f"logs = {logs[0, 0]:+.3f}, α = ({', '.join(f'{v:+.2f}' for v in alpha[0, :4].tolist())}"
            f"{', …' if alpha.shape[1] > 4 else ''})"
        )
        self.renders += 1


def stn_explorer(
    stn: STN3DMM,
    source: MorphableModel | torch.Tensor,
    theta: Theta | torch.Tensor | None = None,
    *,
    lighting: Lighting | None = None,
    n_shape: int = 3,
    n_points: int = 16,
    image_size: int = 224,
) -> STNExplorer:
    """Build the live STN explorer: yaw, pitch, roll, scale, translation and ``n_shape`` shape sliders.

    Args:
        stn: the STN (on a grid model).
        source: a morphable model to render (with :func:`mmstn.render.render_face` at ``theta``, in the STN's
            scale base), or a fixed (C, H, W) image in [0, 1].
        theta: the starting θ: a one-image :class:`~mmstn.theta.Theta` (any convention), or a (6 + D,) /
            (1, 6 + D) tensor in the STN's convention; for a model it is also the rendered pose. Default
            :func:`default_theta` (yaw 25°).
        lighting: a :class:`mmstn.render.Lighting` for the rendering (default: soft light from the front).
        n_shape: how many coefficient sliders (α_1 ... α_n_shape).
        n_points: about how many grid lines are drawn over the image in each direction.
        image_size: H = W of the rendering.

    Returns:
        :class:`STNExplorer`; display ``.widget``.
    """
    theta = stn.generator.theta_params(default_theta(stn) if theta is None else theta)
    if isinstance(source, MorphableModel):
        light = Lighting(ambient=0.6, diffuse=0.5, direction=(0.3, 0.4, 1.0)) if lighting is None else lighting
        image = render_face(source, theta.tensor().to(source.dtype), image_size=image_size, lighting=light,
                            scale_base=stn.config.scale_base).image
    else:
        image = torch.as_tensor(source)
        if image.ndim != 3:
            raise ValueError(f"source must be a MorphableModel or a (C, H, W) image, got shape {tuple(image.shape)}")
    image = image.float()
    h, w = image.shape[-2:]
    style = {"description_width": "initial"}

    def slider(description: str, lo: float, hi: float, step: float, fmt: str = ".1f", value: float = 0.0
               ) -> widgets.FloatSlider:
        return widgets.FloatSlider(value=value, min=lo, max=hi, step=step, description=description,
                                   continuous_update=False, readout_format=fmt, style=style)

    sliders = {
        "yaw": slider("yaw (°)", -90, 90, 5, ".0f"),
        "pitch": slider("pitch (°)", -60, 60, 5, ".0f"),
        "roll": slider("roll (°)", -60, 60, 5, ".0f"),
        "scale": slider("scale s (px/mm)", 0.3, 1.5, 0.02, ".2f", value=1.0),
        "tx": slider("t_x (px)", 0, w + 1, 2, ".0f"),
        "ty": slider("t_y (px)", 0, h + 1, 2, ".0f"),
    }
    d = stn.generator.n_components
    for k in range(1, min(n_shape, d) + 1):
        sliders[f"alpha{k}"] = slider(f"α_{k}", -3, 3, 0.25, ".2f")
    img = widgets.Image(format="png")
    status = widgets.Label()
    pose = [sliders[n] for n in POSE_SLIDERS]
    shape = [s for n, s in sliders.items() if n.startswith("alpha")]
    box = widgets.VBox([widgets.HBox([widgets.VBox(pose), widgets.VBox(shape)]), status, img])
    explorer = STNExplorer(stn, image, sliders, img, status, box, n_points=n_points)
    for s in sliders.values():
        s.observe(explorer.render, names="value")
    explorer.set_theta(theta)
    return explorer
