"""What a training run builds from its :class:`~mmstn.train.config.TrainConfig`: the data model, the STN
configuration, the localiser with its θ-layer initialisation.

Kept apart from the loop so that loading a checkpoint (:mod:`mmstn.train.checkpoint`) can rebuild a model
without importing the training loop, and the loop can save checkpoints without a cycle.
"""

from __future__ import annotations

import math
from functools import lru_cache

from torch import nn

from mmstn.data.synthetic import reference_scale
from mmstn.localiser import Localiser, SmallTrunk, ThetaHead, VGGFaceTrunk, load_vgg_face_weights
from mmstn.models.builtin import builtin_model
from mmstn.models.ict import ict_face_model
from mmstn.models.morphable import MorphableModel
from mmstn.stn import STN3DMM, STNConfig
from mmstn.train.config import MODELS, TrainConfig
from mmstn.uv.grid_model import builtin_grid_model, default_grid_model

__all__ = ["build_model", "data_model", "grid_model", "initial_theta_bias", "stn_config"]


@lru_cache(maxsize=2)
def _data_model(name: str) -> MorphableModel:
    if name == "ict":
        return ict_face_model().subset(5, 5)
    if name == "builtin":
        return builtin_model().subset(5, 5)
    raise ValueError(f"model={name!r}: use one of {MODELS}")


def data_model(name: str = "ict") -> MorphableModel:
    """The morphable model the synthetic data is rendered with: ``name``'s 5 identity + 5 expression
    components (the same components as the grid model, so true and predicted α compare)."""
    return _data_model(name)


def grid_model(config: TrainConfig) -> MorphableModel:
    """The grid model of ``config.model`` at G = ``config.grid_size`` (the STN's model)."""
    if config.model == "ict":
        return default_grid_model(G=config.grid_size)
    return builtin_grid_model(G=config.grid_size)



def stn_config(config: TrainConfig) -> STNConfig:
    """The :class:`~mmstn.stn.STNConfig` named by ``config.stn`` at ``config.grid_size``."""
    s = config.image_size
    if config.stn == "paper":
        return STNConfig.paper(grid_size=config.grid_size, image_size=(s, s))
    return STNConfig.faithful(grid_size=config.grid_size, image_size=(s, s))


def initial_theta_bias(
    stn: STN3DMM, image_size: int, scale: float | None = None, model: MorphableModel | None = None
) -> tuple[tuple[float, float], float]:
    """The θ layer's bias for a frontal, centred, right-sized mean face.

    t₀ puts the centre of the mean face's landmark box (frontal, scale s₀) at the image centre
    ((S + 1)/2, (S + 1)/2) of the label frame, where the synthetic data and the authors' crops centre it;
    logs₀ gives s₀ (default: a 120 px wide mean face at S = 224, :func:`mmstn.data.synthetic.reference_scale`).
    The authors used t = (112, 112) and logs = 0 (s = 1: a 178 px wide face).

    Returns:
        ((t_x, t_y), logs₀).
    """
    gen = stn.generator
    s0 = float(reference_scale(model or data_model(), image_size=image_size) if scale is None else scale)
    mean = gen.morphable.mean.detach().double()
    lm = mean[gen.landmark_indices, :2]
    box_centre = (lm.min(0).values + lm.max(0).values) / 2
    centre = (image_size + 1) / 2.0
    t = (centre - s0 * float(box_centre[0]), centre - s0 * float(box_centre[1]))
    logs0 = math.log(s0) / stn.config.scale_rate
    return t, logs0


def build_model(config: TrainConfig) -> tuple[Localiser, STN3DMM]:
    """A freshly initialised localiser and its STN (seed torch first for a reproducible initialisation).

    Returns:
        (localiser: image (B, 3, S, S) → θ (B, 6 + D), stn: the grid model's 3DMM-STN).
    """
    stn = STN3DMM(grid_model(config), stn_config(config))
    t0, logs0 = initial_theta_bias(stn, config.image_size, config.init_scale, data_model(config.model))
    trunk: nn.Module
    if config.trunk == "small":
        trunk = SmallTrunk(config.trunk_input, config.trunk_widths)
    else:
        trunk = VGGFaceTrunk()
        if config.vgg_weights:
            load_vgg_face_weights(trunk, config.vgg_weights)
    head = ThetaHead(trunk.out_features, stn.generator.n_components, centre=t0, logs0=logs0)  # type: ignore[arg-type]
    return Localiser(trunk, head, convention=stn.config), stn
