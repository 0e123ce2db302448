"""ipywidgets factories for the notebooks. The callbacks live here so tests can drive them without a browser."""

from __future__ import annotations

from dataclasses import dataclass, field

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from mmstn.models.morphable import MorphableModel
from mmstn.viz.mesh import draw_mesh, figure_to_png, rotation_from_angles

__all__ = ["ModelExplorer", "model_explorer"]


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
