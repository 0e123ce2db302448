"""ipywidgets factories for the notebooks. The callbacks live here so tests can drive them without a browser."""

from __future__ import annotations

from dataclasses import dataclass, field

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from mmstn.fitting import FIT_WEIGHTS, fit, initial_theta
from mmstn.losses import LossWeights
from mmstn.models.morphable import MorphableModel
from mmstn.transforms import rotation_from_angles
from mmstn.viz.loss_figures import fig_fit
from mmstn.viz.mesh import draw_mesh, figure_to_png

__all__ = ["FitExplorer", "ModelExplorer", "fit_explorer", "model_explorer"]


@dataclass
class ModelExplorer:
    """Sliders for identity/expression coefficients and yaw, redrawing the face live.

    Attributes:
        model: the morphable model shown.
        sliders: one ``FloatSlider`` per coefficient, identity first.
        yaw: the view's yaw slider, degrees.
        image: the ``ipywidgets.Image`` holding the current rendering (PNG).
        widget: the whole box to display.
    """

    model: MorphableModel
    sliders: list[widgets.FloatSlider]
    yaw: widgets.FloatSlider
    image: widgets.Image
    widget: widgets.Box
    renders: int = field(default=0)

    def alpha(self) -> torch.Tensor:
        """The coefficient vector (D,) set by the sliders (unset components are 0)."""
        a = torch.zeros(self.model.n_components, dtype=self.model.dtype)
        for s in self.sliders:
            a[s.component] = s.value  # type: ignore[attr-defined]
        return a

    def render(self, *_: object) -> None:
        """Redraw the face for the current slider values (front and the chosen yaw)."""
        x = self.model.shape(self.alpha())
        fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.4))
        draw_mesh(axes[0], x, self.model.triangles, colour=self.model.colour)
        axes[0].set_title("front")
        view = rotation_from_angles(yaw=self.yaw.value)
        draw_mesh(axes[1], x, self.model.triangles, R=view, colour=self.model.colour)
        axes[1].set_title(f"yaw {self.yaw.value:.0f}°")
        self.image.value = figure_to_png(fig)
        self.renders += 1


def model_explorer(model: MorphableModel, n_identity: int = 4, n_expression: int = 3) -> ModelExplorer:
    """Build the live face explorer of notebook 01 (sliders in units of standard deviations)."""
    sliders: list[widgets.FloatSlider] = []
    comps = [("id", k) for k in range(min(n_identity, model.n_identity))]
    comps += [("exp", model.n_identity + k) for k in range(min(n_expression, model.n_expression))]
    for kind, k in comps:
        number = k + 1 if kind == "id" else k - model.n_identity + 1
        s = widgets.FloatSlider(value=0.0, min=-3.0, max=3.0, step=0.25, description=f"α {kind} {number}",
                                continuous_update=False, readout_format=".2f")
        s.component = k  # type: ignore[attr-defined]
        sliders.append(s)
    yaw = widgets.FloatSlider(value=40.0, min=-90, max=90, step=5, description="yaw (°)", continuous_update=False)
    image = widgets.Image(format="png")
    box = widgets.HBox([widgets.VBox([*sliders, yaw]), image])
    explorer = ModelExplorer(model, sliders, yaw, image, box)
    for s in [*sliders, yaw]:
        s.observe(explorer.render, names="value")
    explorer.render()
    return explorer


@dataclass
class FitExplorer:
    """Re-runs a short fit when the starting yaw or a loss weight changes (notebook 05).

    Attributes:
        start_yaw: offset (degrees) of the starting yaw from the initial pose estimate.
        weights: log10 weight sliders, keyed ``landmark``, ``prior``, ``symmetry``.
        image: the ``ipywidgets.Image`` with the current fit (PNG).
        status: a label with the final landmark error.
        widget: the box to display.
        last: the last :class:`mmstn.fitting.FitResult`.
    """

    start_yaw: widgets.FloatSlider
    weights: dict[str, widgets.FloatSlider]
    image: widgets.Image
    status: widgets.Label
    widget: widgets.Box
    run: object
    renders: int = 0
    last: object = None

    def refit(self, *_: object) -> None:
        self.last = self.run(self)  # type: ignore[operator]
        self.renders += 1


def fit_explorer(stn, image: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None,
                 n_iter: int = 40) -> FitExplorer:
    """Widget: choose the starting yaw and the loss weights, watch a short fit of θ to one image.

    Args:
        stn: the :class:`~mmstn.stn.STN3DMM`.
        image: (C, H, W); labels: (L, 2) landmark labels (label frame); weight: (L,) confidences.
        n_iter: objective evaluations per fit (kept small so the widget stays responsive).
    """
    import math

    start_yaw = widgets.FloatSlider(value=0.0, min=-40, max=40, step=5, description="start yaw Δ (°)",
                                    continuous_update=False, style={"description_width": "initial"})
    defaults = {k: math.log10(getattr(FIT_WEIGHTS, k)) for k in ("landmark", "prior")} | {"symmetry": -4.0}
    sliders = {
        k: widgets.FloatSlider(value=v, min=-6, max=1, step=0.5, description=f"log₁₀ w {k}",
                               continuous_update=False, style={"description_width": "initial"})
        for k, v in defaults.items()
    }
    img = widgets.Image(format="png")
    status = widgets.Label()
    w = None if weight is None else weight[None]
    theta_init = initial_theta(stn, labels[None], w)

    def run(ex: FitExplorer):
        start = theta_init.clone()
        start[0, 1] += math.radians(ex.start_yaw.value)
        lw = LossWeights(landmark=10 ** ex.weights["landmark"].value, prior=10 ** ex.weights["prior"].value,
                         symmetry=10 ** ex.weights["symmetry"].value, siamese=0.0)
        res = fit(stn, image[None], labels[None], w, theta0=start, n_iter=n_iter, weights=lw)
        with torch.no_grad():
            start_lm = stn.generator.landmarks(stn.generator(start).points)[0]
        fig = fig_fit(image, labels, res.landmarks[0], res.flattened[0], res.mask[0], res.history, start_lm)
        ex.image.value = figure_to_png(fig)
        ex.status.value = f"final mean landmark error: {res.history['landmark_error'][-1]:.2f} px"
        return res

    box = widgets.VBox([start_yaw, *sliders.values(), status, img])
    ex = FitExplorer(start_yaw, sliders, img, status, box, run)
    for s in [start_yaw, *sliders.values()]:
        s.observe(ex.refit, names="value")
    ex.refit()
    return ex
