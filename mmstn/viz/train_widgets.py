"""The localiser explorer of notebook 06: choose a yaw and a face, render a new synthetic face, see the prediction.

The callback lives here so that tests can drive it without a browser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ipywidgets as widgets
import numpy as np
import torch

from mmstn.theta import THETA_ALPHA, THETA_LOGS, THETA_R, THETA_T
from mmstn.transforms import axis_angle_to_matrix_np, euler_to_matrix_np, matrix_to_axis_angle_np, matrix_to_euler_np
from mmstn.viz.mesh import figure_to_png

__all__ = ["LocaliserExplorer", "localiser_explorer", "synthetic_face_at_yaw"]


def synthetic_face_at_yaw(model, index: int, yaw_deg: float, seed: int = 777, image_size: int = 224) -> dict:
    """Synthetic sample ``index`` of the dataset ``seed``, re-posed to the given yaw (pitch, roll, shape, light,
    background and the centring rule unchanged).

    Returns:
        dict with ``image`` (3, S, S), ``landmarks21`` (21, 2), ``vis21`` (21,), ``theta`` (6 + D,) (s = exp(logs)).
    """
    from scipy.spatial.transform import Rotation

    from mmstn.data.synthetic import _landmark_vertices, draw_parameters, render_parameters
    from mmstn.render import renderer_for

    params = draw_parameters(model, int(index), int(seed), n_subjects=1000, image_size=image_size)
    th = params.theta.astype(np.float64)
    _, pitch, roll = matrix_to_euler_np(axis_angle_to_matrix_np(th[THETA_R]))
    r_new = matrix_to_axis_angle_np(euler_to_matrix_np(np.deg2rad(yaw_deg), pitch, roll))
    renderer = renderer_for(model)
    lm = _landmark_vertices(model)
    shape = renderer.shape(th[THETA_ALPHA])[lm]

    def box_centre(r: np.ndarray) -> np.ndarray:
        p = shape @ Rotation.from_rotvec(r).as_matrix().T
        return (p[:, :2].min(0) + p[:, :2].max(0)) / 2

    s = float(np.exp(th[THETA_LOGS.start]))
    th[THETA_T] += s * (box_centre(th[THETA_R]) - box_centre(r_new))  # keep the posed landmark box where it was
    th[THETA_R] = r_new
    params.theta = th.astype(np.float32)
    out = render_parameters(model, params)
    return {
        "image": torch.from_numpy(np.ascontiguousarray(out.image.transpose(2, 0, 1), dtype=np.float32)),
        "landmarks21": torch.from_numpy(out.landmarks["aflw21"].astype(np.float32)),
        "vis21": torch.from_numpy(out.visible["aflw21"].astype(np.float32)),
        "theta": torch.from_numpy(params.theta.copy()),
    }


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
    are rendered with (:func:`mmstn.train.loop.data_model`)."""
    from mmstn.fitting import landmark_error, rotation_error_deg
    from mmstn.train.evaluate import predict, truth_in_stn_frame
    from mmstn.viz.train_figures import fig_prediction

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
