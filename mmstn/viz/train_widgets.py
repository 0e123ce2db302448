"""The localiser explorer of notebook 06: choose a yaw and a face, render a new synthetic face, see the prediction.

The callback lives here so that tests can drive it without a browser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ipywidgets as widgets
import torch

from mmstn.data.synthetic import synthetic_face_at_yaw
from mmstn.fitting import landmark_error
from mmstn.theta import THETA_R
from mmstn.train.evaluate import predict, truth_in_stn_frame
from mmstn.transforms import rotation_error_deg
from mmstn.viz.mesh import figure_to_png
from mmstn.viz.train_figures import fig_prediction

__all__ = ["LocaliserExplorer", "localiser_explorer"]


@dataclass
class LocaliserExplorer:
    """Sliders for the yaw and the face index; the localiser's prediction on a freshly rendered face.

    Attributes:
        yaw: yaw of the rendered face, degrees (the first slider).
        index: which synthetic face (identity, expression, light, background).
        image: the ``ipywidgets.Image`` (PNG) with the prediction.
        status: a label with the landmark and pose errors.
        widget: the box to display.
        last: the last evaluation (``error_px``, ``rotation_error_deg``).
    """

    yaw: widgets.FloatSlider
    index: widgets.IntSlider
    image: widgets.Image
    status: widgets.Label
    widget: widgets.Box
    run: object
    renders: int = 0
    last: dict = field(default_factory=dict)

    def update(self, *_: object) -> None:
        self.last = self.run(self)  # type: ignore[operator]
        self.renders += 1


def localiser_explorer(localiser, stn, model, seed: int = 777) -> LocaliserExplorer:
    """Build the explorer: ``localiser`` (image → θ), its ``stn``, and the morphable ``model`` the synthetic faces
    are rendered with (:func:`mmstn.train.model.data_model`)."""
    yaw = widgets.FloatSlider(value=30.0, min=-90, max=90, step=5, description="yaw (°)", continuous_update=False)
    index = widgets.IntSlider(value=0, min=0, max=99, description="face", continuous_update=False)
    img = widgets.Image(format="png")
    status = widgets.Label()

    def run(ex: LocaliserExplorer) -> dict:
        sample = synthetic_face_at_yaw(model, ex.index.value, ex.yaw.value, seed)
        image = sample["image"][None]
        theta = predict(localiser, image)
        with torch.no_grad():
            out = stn(image, theta)
        err = float(landmark_error(out.landmarks, sample["landmarks21"][None], sample["vis21"][None])[0])
        truth = truth_in_stn_frame(sample["theta"][None], stn)
        rot = float(rotation_error_deg(theta[:, THETA_R], truth[:, THETA_R])[0])
        fig = fig_prediction(sample["image"], out.landmarks[0], sample["landmarks21"], out.flattened[0], out.mask[0],
                             f"yaw {ex.yaw.value:.0f}°: error {err:.2f} px")
        ex.image.value = figure_to_png(fig)
        ex.status.value = f"mean landmark error {err:.2f} px | pose error {rot:.1f}°"
        return {"error_px": err, "rotation_error_deg": rot}

    box = widgets.VBox([yaw, index, status, img])
    ex = LocaliserExplorer(yaw, index, img, status, box, run)
    for s in (yaw, index):
        s.observe(ex.update, names="value")
    ex.update()
    return ex
