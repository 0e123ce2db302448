"""The tiny training configuration the training tests share (a fraction of a second per step)."""

from __future__ import annotations

from mmstn.train import TrainConfig


def tiny_config(**changes) -> TrainConfig:
    """``TrainConfig.recommended`` shrunk to a 32² grid, 4 images and 6 steps; ``changes`` override any field."""
    base = {"grid_size": 32, "trunk_input": 32, "trunk_widths": (4, 8, 8, 16, 16), "batch_size": 4, "steps": 6,
            "n_train": 4, "n_val": 4, "eval_interval": 0, "checkpoint_interval": 3, "progress": False,
            "tensorboard": False, "warmup_steps": 0, "appearance_warmup_steps": 0, "lr": 3e-3}
    base.update(changes)
    return TrainConfig.recommended(**base)
