"""Training the localiser (paper section 3, docs/conventions.md §5–6): config, loop, checkpoints, evaluation.

Quick start::

    from mmstn.train import TrainConfig, train, load_pretrained

    result = train(TrainConfig.recommended(steps=500), "runs/demo")   # resumes if runs/demo has a checkpoint
    localiser, stn, config = load_pretrained()                           # the shipped small localiser

From the shell: ``python -m mmstn.train --out runs/demo --steps 500`` (``--help`` lists every flag).
"""

from mmstn.train.checkpoint import (
    CheckpointError,
    available_pretrained,
    load_pretrained,
    load_training_checkpoint,
    load_weights,
    pretrained_metrics,
)
from mmstn.train.config import TrainConfig
from mmstn.train.evaluate import EvalResult, evaluate
from mmstn.train.loop import (
    RunFolderError,
    RunLock,
    StepBatchSampler,
    SyntheticStream,
    TrainResult,
    build_model,
    build_val_dataset,
    read_metrics,
    train,
)

__all__ = [
    "CheckpointError",
    "EvalResult",
    "RunFolderError",
    "RunLock",
    "StepBatchSampler",
    "SyntheticStream",
    "TrainConfig",
    "TrainResult",
    "available_pretrained",
    "build_model",
    "build_val_dataset",
    "evaluate",
    "load_pretrained",
    "load_training_checkpoint",
    "load_weights",
    "pretrained_metrics",
    "read_metrics",
    "train",
]
