"""The training loop: data in a resumable order, the mirrored batch, the four losses, checkpoints, metrics.

One step (docs/conventions.md §5–6, paper section 3):

1. B images from the training set; their horizontal flips are appended (landmarks flipped with the
   AFLW-21 permutation, :func:`mmstn.data.flip.flip_landmarks`): the network sees 2B images.
2. The localiser predicts θ (2B, 6 + D); the STN flattens every image at its θ.
3. Terms: landmark (visible landmarks only), prior (‖α‖²), symmetry (every flattened output), siamese
   (output b against the output of its flip, mode ``"mirrored"`` by default), reduced by sums or means
   (:class:`~mmstn.train.config.TrainConfig`), weighted, divided by ``normaliser``.
4. One optimiser and one scheduler step.

Resuming is exact: the batch of step k is a pure function of (seed, k) (:class:`StepBatchSampler`), there
is no random augmentation, and a checkpoint holds the model, the optimiser, the scheduler, the gradient
scaler, every RNG state and the step. ``metrics.csv`` rows written after the last checkpoint (by a run
that was killed) are dropped on resume, so the file reads as if the run had never stopped. An interrupt
(Ctrl-C, SIGTERM) is acted on between steps: the completed steps are checkpointed, then KeyboardInterrupt
is raised. A run folder holds one run: ``run.lock`` (:class:`RunLock`) keeps a second process out while
one trains, and resuming with another configuration than the folder's is an error naming the fields.

Devices: CUDA when present (bf16 autocast when supported, else fp16 with a gradient scaler; the STN
always runs in float32), else the CPU. Under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is
initialised from the environment, the localiser is wrapped in ``DistributedDataParallel`` and each rank
takes its slice of every global batch; only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmstn.data.aflw import AFLW
from mmstn.data.augment import photometric_augment
from mmstn.data.batch import collate, mirrored_batch
from mmstn.data.errors import DatasetFolderError
from mmstn.data.synthetic import SyntheticFaces, generate_sample
from mmstn.fitting import landmark_error
from mmstn.localiser import Localiser
from mmstn.losses import (
    LossWeights,
    landmark_loss,
    objective,
    prior_loss,
    siamese_loss,
    siamese_loss_matconvnet,
    symmetry_loss,
)
from mmstn.runtime import atomic_write
from mmstn.stn import STN3DMM, STNOutput
from mmstn.theta import THETA_ALPHA
from mmstn.train.checkpoint import load_training_checkpoint, save_training_checkpoint, save_weights
from mmstn.train.config import RESUME_MUTABLE_FIELDS, TrainConfig, config_differences
from mmstn.train.evaluate import evaluate
from mmstn.train.model import build_model, data_model, initial_theta_bias

__all__ = [
    "METRIC_COLUMNS",
    "RunFolderError",
    "RunLock",
    "StepBatchSampler",
    "SyntheticStream",
    "TrainResult",
    "build_model",
    "build_optimizer",
    "build_train_dataset",
    "build_val_dataset",
    "data_model",
    "initial_theta_bias",
    "loss_terms",
    "read_metrics",
    "resolve_device",
    "train",
]

#: Columns of ``metrics.csv``. ``images_per_s`` counts the images the network sees (with the mirrors).
METRIC_COLUMNS: tuple[str, ...] = (
    "step", "loss", "landmark", "prior", "siamese", "symmetry", "lr", "train_landmark_error_px",
    "val_landmark_error_px", "val_rotation_error_deg", "images_per_s", "elapsed_s",
)  # fmt: skip
CHECKPOINT_NAME = "checkpoint.pt"
WEIGHTS_NAME = "weights.pt"
CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.csv"
LOCK_NAME = "run.lock"
SAMPLE_KEYS = ("image", "landmarks21", "vis21", "theta", "subject_id")


# ============================================================================================ data
class SyntheticStream(torch.utils.data.Dataset):
    """Synthetic faces rendered on the fly: item i is :func:`mmstn.data.synthetic.generate_sample`
    (model, i, seed), restricted to ``image`` (3, S, S), ``landmarks21`` (21, 2), ``vis21`` (21,),
    ``theta`` (6 + D,) and ``subject_id`` (); a pure function of (seed, i).

    Args:
        seed: the dataset seed.
        n_images: the length (any index below it can be drawn).
        image_size: S.
        n_subjects: distinct subjects.
        model: the morphable model (default :func:`data_model`).
        with_mask: also return the face ``mask`` (S, S).
    """

    def __init__(self, seed: int, n_images: int, image_size: int = 224, n_subjects: int = 1000, model=None,
                 with_mask: bool = False) -> None:
        self.seed, self.n_images, self.image_size = int(seed), int(n_images), int(image_size)
        self.n_subjects = int(n_subjects)
        self.model = data_model() if model is None else model
        self.with_mask = with_mask

    def __len__(self) -> int:
        return self.n_images

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= int(i) < self.n_images:
            raise IndexError(f"index {i} out of range for {self.n_images} synthetic images")
        s = generate_sample(self.model, int(i), self.seed, n_subjects=self.n_subjects, image_size=self.image_size)
        keys = (*SAMPLE_KEYS, "mask") if self.with_mask else SAMPLE_KEYS
        return {k: s[k] for k in keys if k in s}


class _Keys(torch.utils.data.Dataset):
    """Restrict a dataset's samples to the keys training needs (``theta`` only when present)."""

    def __init__(self, base) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s = self.base[i]
        return {k: s[k] for k in SAMPLE_KEYS if k in s}


def _check_not_empty(ds, where: str | Path, what: str) -> None:
    if len(ds) == 0:
        raise DatasetFolderError(
            Path(where), f"holds no {what} images", "Point TrainConfig.data_path at a folder with images"
        )


def build_train_dataset(config: TrainConfig) -> torch.utils.data.Dataset:
    """The training set of ``config`` (on-the-fly synthetic, a generated folder, or AFLW's train split).

    Raises:
        DatasetFolderError: the folder is missing, incomplete or empty (the message names it).
    """
    if config.data == "synthetic":
        return SyntheticStream(config.data_seed, config.n_train, config.image_size, config.n_subjects,
                               model=data_model(config.model))
    if config.data == "folder":
        ds = _Keys(SyntheticFaces(config.data_path, with_mask=False))
        _check_not_empty(ds, config.data_path, "training")  # type: ignore[arg-type]
        if ds.base.image_size != config.image_size:
            raise ValueError(
                f"{config.data_path}: images are {ds.base.image_size} px, TrainConfig.image_size is {config.image_size}"
            )
        return ds

    ds = _Keys(AFLW(config.data_path, split="train"))
    _check_not_empty(ds, Path(config.data_path).parent, "AFLW training")  # type: ignore[arg-type]
    return ds


def build_val_dataset(config: TrainConfig, n_images: int | None = None, with_mask: bool = False) -> list[dict]:
    """The validation set, materialised in memory: the first ``n_images`` (default ``config.n_val``) of the
    synthetic set ``config.val_seed`` (or of AFLW's validation split)."""
    n = config.n_val if n_images is None else int(n_images)
    if config.data == "aflw":
        ds: Any = _Keys(AFLW(config.data_path, split="val"))
        _check_not_empty(ds, Path(config.data_path).parent, "AFLW validation")  # type: ignore[arg-type]
    else:
        ds = SyntheticStream(config.val_seed, max(n, 1), config.image_size, config.n_subjects,
                             model=data_model(config.model), with_mask=with_mask)
    return [ds[i] for i in range(min(n, len(ds)))]


class StepBatchSampler(torch.utils.data.Sampler):
    """Index batches as a pure function of (seed, step): resumable at any step, no hidden state.

    The data is cut into epochs; epoch e visits the indices in the order of
    ``np.random.default_rng([seed, 7, e]).permutation(n)``. Step k's global batch is positions
    [k·B, (k+1)·B) of that endless sequence, and rank r of ``world_size`` takes the contiguous slice r of it
    (what ``DistributedSampler`` with ``set_epoch`` does, but addressable by step instead of by epoch, so a
    resumed run continues mid-epoch).

    Args:
        n: dataset length.
        batch_size: the global batch B (divisible by ``world_size``).
        seed: data-order seed.
        start_step, end_step: the steps to yield (``range(start_step, end_step)``).
        rank, world_size: this process's slice.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int, end_step: int, rank: int = 0,
                 world_size: int = 1) -> None:
        if n < 1:
            raise ValueError("StepBatchSampler needs a non-empty dataset")
        if batch_size % world_size:
            raise ValueError(f"batch_size={batch_size} is not divisible by world_size={world_size}")
        self.n, self.batch_size, self.seed = int(n), int(batch_size), int(seed)
        self.start_step, self.end_step = int(start_step), int(end_step)
        self.rank, self.world_size = int(rank), int(world_size)

    @lru_cache(maxsize=4)  # noqa: B019 - a handful of small permutations per sampler
    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, 7, epoch]).permutation(self.n)

    def global_batch(self, step: int) -> list[int]:
        """The indices of step ``step``'s global batch."""
        start = step * self.batch_size
        out = []
        for pos in range(start, start + self.batch_size):
            epoch, offset = divmod(pos, self.n)
            out.append(int(self._permutation(epoch)[offset]))
        return out

    def batch(self, step: int) -> list[int]:
        """This rank's part of step ``step``'s batch."""
        per = self.batch_size // self.world_size
        return self.global_batch(step)[self.rank * per : (self.rank + 1) * per]

    def __iter__(self) -> Iterator[list[int]]:
        for k in range(self.start_step, self.end_step):
            yield self.batch(k)

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step)

    def state_dict(self) -> dict[str, int]:
        """Everything that positions the data stream (saved in checkpoints)."""
        return {"n": self.n, "batch_size": self.batch_size, "seed": self.seed, "world_size": self.world_size}


# ============================================================================================ model
def build_optimizer(localiser: Localiser, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD or AdamW over the localiser's groups (θ weights ×``head_weight_mult``, θ bias ×``head_bias_mult``
    without weight decay)."""
    groups = localiser.parameter_groups(config.lr, config.head_weight_mult, config.head_bias_mult, config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, dampening=0.0, nesterov=False)
    return torch.optim.AdamW(groups, lr=config.lr)


def lr_factor(config: TrainConfig, step: int) -> float:
    """The schedule's multiplier of the base learning rate at (0-based) step ``step``."""
    n = max(config.steps, 1)
    if config.schedule == "constant":
        return 1.0
    lo = config.final_lr_fraction
    if config.schedule == "cosine":
        w = config.warmup_steps
        if step < w:
            return (step + 1) / w
        p = min(1.0, (step - w) / max(n - w, 1))
        return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * p))
    # one-cycle: cosine ramp from 1/25 up over the first 30 %, then cosine down to final_lr_fraction
    up = max(1, int(0.3 * n))
    if step < up:
        return 0.04 + 0.96 * 0.5 * (1 - math.cos(math.pi * step / up))
    p = min(1.0, (step - up) / max(n - up, 1))
    return lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * p))


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` over :func:`lr_factor` (its state is the step count: saved in checkpoints)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: lr_factor(config, k))


# ============================================================================================ losses
def effective_weights(config: TrainConfig, step: int) -> LossWeights:
    """The loss weights at (0-based) step ``step``: the appearance terms ramp in over
    ``appearance_warmup_steps``."""
    w = config.weights
    n = config.appearance_warmup_steps
    ramp = 1.0 if n <= 0 else min(1.0, (step + 1) / n)
    return LossWeights(landmark=w.landmark, prior=w.prior, siamese=w.siamese * ramp, symmetry=w.symmetry * ramp)


def loss_terms(out: STNOutput, theta: torch.Tensor, labels: torch.Tensor, visible: torch.Tensor,
               config: TrainConfig, n_original: int) -> dict[str, torch.Tensor]:
    """The four unweighted loss terms of a (mirrored) batch.

    Args:
        out: the STN's output for the 2B (or B) images.
        theta: (2B, 6 + D) predicted θ.
        labels: (2B, 21, 2) landmark labels (label frame); visible: (2B, 21) 0/1.
        config: reduction and siamese mode.
        n_original: B, the number of original images (rows B.. are their mirrors).

    Returns:
        {"landmark", "prior", "symmetry", "siamese"} scalar tensors ("siamese" only with mirrored batches).
    """
    red = config.reduction
    lm = landmark_loss(out.landmarks, labels, visible, reduction="sum")
    if red == "mean":
        lm = lm / visible.sum().clamp(min=1)
    terms = {
        "landmark": lm,
        "prior": prior_loss(theta[:, THETA_ALPHA], reduction=red),  # type: ignore[arg-type]
        "symmetry": symmetry_loss(out.flattened, out.mask, reduction=red),  # type: ignore[arg-type]
    }
    b = n_original
    if config.mirror and out.flattened.shape[0] == 2 * b:
        w1, m1, w2, m2 = out.flattened[:b], out.mask[:b], out.flattened[b:], out.mask[b:]
        if config.siamese_mode == "matconvnet":  # the authors' layer: masked pairs interleaved, zeros = invisible
            pairs = torch.stack([w1 * m1, w2 * m2], 1).flatten(0, 1)
            terms["siamese"] = siamese_loss_matconvnet(pairs)
        else:
            terms["siamese"] = siamese_loss(w1, m1, w2, m2, mode=config.siamese_mode, reduction=red)  # type: ignore[arg-type]
    return terms


# ============================================================================================ devices
@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(config: TrainConfig) -> _Dist:
    """Initialise ``torch.distributed`` from torchrun's environment when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = resolve_device(config.device).type == "cuda"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return _Dist(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local)


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` → ``cuda:<local_rank>`` when CUDA is available, else the CPU; other names as given."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"TrainConfig.device={name!r} but CUDA is not available; use 'auto' or 'cpu'")
    return dev


def _amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or config.amp == "off":
        return None
    if config.amp == "fp16":
        return torch.float16
    if config.amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


# ============================================================================================ RNG, CSV
def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch and CUDA RNG states."""
    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),  # noqa: NPY002
                             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`'s output (CUDA states only when the device count matches)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Rows of a ``metrics.csv`` as dicts of floats (empty cells → NaN)."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{k: (float(v) if v not in ("", None) else math.nan) for k, v in row.items()} for row in rows]


def _rewrite_metrics(path: Path, rows: list[dict[str, float]]) -> None:
    with atomic_write(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=METRIC_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(r.get(k, math.nan)) for k in METRIC_COLUMNS})


def _fmt(v: float | int | None) -> str:
    """CSV cell: integers as such, floats at full precision (repr), NaN/None as empty."""
    if v is None:
        return ""
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    return "" if math.isnan(v) else repr(v)


# ============================================================================================ run folder
class RunFolderError(RuntimeError):
    """The run folder is in use by another run, or holds a run of another configuration."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


class RunLock:
    """An exclusive lock on a run folder: ``<folder>/run.lock``, created with O_CREAT | O_EXCL and holding
    the owner's pid, host and start time, so two runs can never train in one folder at once.

    A lock whose process is gone (same host, dead pid: a killed run) is stale and is taken over. A lock of
    another host cannot be checked and is respected; the error says how to remove it.
    """

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.held = False

    def _owner(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}  # unreadable or half-written by a process killed while creating it

    def acquire(self) -> RunLock:
        """Take the lock (raises :class:`RunFolderError` when a live run holds it)."""
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                pid, host = owner.get("pid"), owner.get("host")
                if not owner and time.time() - self._mtime() < 5:
                    time.sleep(0.2)  # another process may be writing its details right now
                    continue
                stale = not owner or (host == me["host"] and isinstance(pid, int) and not _pid_alive(pid))
                if stale:
                    self.path.unlink(missing_ok=True)  # its owner was killed: take over
                    continue
                raise RunFolderError(
                    f"{self.path.parent}: another run is training in this folder (pid {pid} on {host}, since "
                    f"{owner.get('started', '?')}; lock file {self.path}). Wait for it, use another --out, or, if "
                    "that process no longer exists, delete the lock file"
                ) from None
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(me) + "\n")
            self.held = True
            return self
        raise RunFolderError(f"{self.path}: could not take the run lock; delete it if no run is using the folder")

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    def release(self) -> None:
        """Drop the lock (only if this process holds it)."""
        if self.held:
            if self._owner().get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _check_run_identity(out: Path, config: TrainConfig) -> None:
    """Refuse to resume in a folder whose saved ``config.json`` describes another run."""

    path = out / CONFIG_NAME
    if not path.is_file():
        return
    if not read_metrics(out / METRICS_NAME) and not (out / WEIGHTS_NAME).exists():
        return  # the earlier run stopped before its first step: there is nothing of it to mix with
    try:
        saved = TrainConfig.from_json(path)
    except ValueError as exc:
        raise RunFolderError(f"{path}: the folder's saved config is unreadable ({exc}). Use a new --out, or start "
                             "afresh here with --restart (train(..., resume=False))") from exc
    diff = config_differences(saved, config, RESUME_MUTABLE_FIELDS)
    if diff:
        a, b = saved.to_dict(), config.to_dict()
        changes = ", ".join(f"{k}: {a[k]!r} → {b[k]!r}" for k in diff[:6])
        more = f" and {len(diff) - 6} more" if len(diff) > 6 else ""
        raise RunFolderError(
            f"{out}: holds a run of another configuration (differing fields: {changes}{more}; saved in {path}). A "
            "folder holds one run: use a new --out for the new config, pass the same config to resume "
            "(--config " f"{path}), or start afresh here with --restart (train(..., resume=False))"
        )


@contextlib.contextmanager
def _deferred_interrupts(enabled: bool) -> Iterator[dict[str, int | None]]:
    """Catch SIGINT and SIGTERM while training, so a kill is acted on between steps (the loop saves a
    checkpoint, then raises KeyboardInterrupt) instead of in the middle of one."""
    flag: dict[str, int | None] = {"signal": None}
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        if flag["signal"] is not None:  # a second signal: stop now, the last checkpoint stays
            raise KeyboardInterrupt(f"signal {signum}")
        flag["signal"] = signum

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# ============================================================================================ training
@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        localiser: the trained localiser (unwrapped from DDP), in eval mode.
        stn: its STN.
        config: the run's config.
        out_dir: the run folder (config.json, metrics.csv, checkpoint.pt, weights.pt).
        step: the number of completed steps.
        history: every metrics row of the run so far (also those of earlier, resumed-from processes).
        final_eval: the summary of the last validation (empty when none ran).
    """

    localiser: Localiser
    stn: STN3DMM
    config: TrainConfig
    out_dir: Path
    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    final_eval: dict[str, float] = field(default_factory=dict)


def _unwrap(model: nn.Module) -> Localiser:
    return model.module if hasattr(model, "module") else model  # type: ignore[return-value]


def train(
    config: TrainConfig,
    out_dir: str | Path,
    resume: bool = True,
    *,
    stop_after: int | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train a localiser as ``config`` says, in ``out_dir``; resume from ``out_dir/checkpoint.pt`` if present.

    Args:
        config: the run.
        out_dir: the run folder (created); holds ``config.json``, ``metrics.csv``, ``checkpoint.pt`` (full
            state, written atomically every ``checkpoint_interval`` steps and at the end), ``weights.pt``
            (weights and config only, at the end) and TensorBoard events in ``tb/`` when available.
        resume: continue from the checkpoint (its config must agree with ``config`` except for the fields
            in :data:`~mmstn.train.config.RESUME_MUTABLE_FIELDS`); False starts afresh and overwrites.
        stop_after: stop (with a checkpoint) once this many steps in total are done, as an interrupted run
            would; a later call resumes.
        callback: called as ``callback(step, row)`` after every step (a test hook; an exception it raises
            stops training like a crash).

    Returns:
        :class:`TrainResult`.

    Raises:
        CheckpointError: the checkpoint is unreadable, altered (checksum) or of another configuration.
        RunFolderError: another live run holds the folder's lock, or (resuming without a checkpoint) the
            folder's ``config.json`` describes another configuration.
        DatasetFolderError: the training data folder is missing or empty.
        KeyboardInterrupt: Ctrl-C or SIGTERM; the completed steps are saved first (a later call resumes).
    """
    out = Path(out_dir)
    dist_info = _init_distributed(config)
    device = resolve_device(config.device, dist_info.local_rank)
    if dist_info.main:
        out.mkdir(parents=True, exist_ok=True)
    lock = RunLock(out) if dist_info.main else None
    if lock is not None:
        lock.acquire()  # before anything in the folder is read or written
    try:
        return _train(config, out, resume, stop_after, callback, dist_info, device)
    finally:
        if lock is not None:
            lock.release()


def _train(config: TrainConfig, out: Path, resume: bool, stop_after: int | None,
           callback: Callable[[int, dict[str, float]], None] | None, dist_info: _Dist,
           device: torch.device) -> TrainResult:
    """:func:`train`'s body, run while holding the folder's :class:`RunLock`."""
    from tqdm.auto import tqdm


    amp_dtype = _amp_dtype(config, device)

    torch.manual_seed(config.seed)
    localiser, stn = build_model(config)
    localiser.to(device)
    stn.to(device)
    optimizer = build_optimizer(localiser, config)
    scheduler = build_scheduler(optimizer, config)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    start_step, elapsed = 0, 0.0
    ckpt_path = out / CHECKPOINT_NAME
    metrics_path = out / METRICS_NAME
    if resume and not ckpt_path.exists() and dist_info.main:
        _check_run_identity(out, config)  # no checkpoint to compare with: the saved config.json tells
    if resume and ckpt_path.exists():
        state = load_training_checkpoint(ckpt_path, config, map_location=device, model=localiser)
        localiser.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        start_step, elapsed = int(state["step"]), float(state.get("elapsed_s", 0.0))
    history = [r for r in read_metrics(metrics_path) if r["step"] <= start_step] if start_step else []
    if dist_info.main:
        config.to_json(out / CONFIG_NAME)
        _rewrite_metrics(metrics_path, history)  # drop rows written after the checkpoint by a killed run

    model: nn.Module = localiser
    if dist_info.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        if config.trunk == "small":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    train_set = build_train_dataset(config)
    sampler = StepBatchSampler(len(train_set), config.batch_size, config.seed, start_step, config.steps,
                               dist_info.rank, dist_info.world_size)
    loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler, num_workers=config.workers,
                                         collate_fn=collate, pin_memory=device.type == "cuda",
                                         persistent_workers=False)
    val_set: list[dict] | None = None
    writer = _tensorboard(out, start_step) if (config.tensorboard and dist_info.main) else None
    per_rank = config.batch_size // dist_info.world_size
    sum_scale = float(dist_info.world_size) if config.reduction == "sum" else 1.0  # DDP averages gradients

    saved_at = start_step if resume and ckpt_path.exists() else -1

    def save(step: int) -> None:
        nonlocal saved_at
        saved_at = step
        if dist_info.main:
            save_training_checkpoint(ckpt_path, config=config, step=step, model=_unwrap(model), optimizer=optimizer,
                                     scheduler=scheduler, scaler=scaler, rng=rng_state(),
                                     sampler=sampler.state_dict(), elapsed_s=elapsed)
        _barrier(dist_info)

    bar_kwargs: dict[str, Any] = {"total": config.steps, "initial": start_step, "desc": f"training {config.name}",
                                  "unit": "step", "dynamic_ncols": True}
    if not config.progress or not dist_info.main:
        bar_kwargs["disable"] = True  # otherwise leave it to tqdm, which honours TQDM_DISABLE
    bar = tqdm(**bar_kwargs)
    final_eval: dict[str, float] = {}
    step = start_step
    csv_file = metrics_path.open("a", newline="") if dist_info.main else None
    csv_writer = csv.DictWriter(csv_file, fieldnames=METRIC_COLUMNS) if csv_file else None
    at_boundary = True  # the state is that of a whole number of steps (safe to checkpoint)
    interrupts = _deferred_interrupts(dist_info.world_size == 1)
    flag = interrupts.__enter__()
    try:
        it = iter(loader)
        while step < config.steps:
            if flag["signal"] is not None:
                raise KeyboardInterrupt(f"signal {flag['signal']}: training stopped after step {step}")
            if stop_after is not None and step >= stop_after:
                break
            at_boundary = False
            t0 = time.perf_counter()
            batch = next(it)
            if config.augment > 0:  # a pure function of (seed, step): resume-exact without extra state
                g = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
                batch["image"] = photometric_augment(batch["image"], g, config.augment)
            batch = mirrored_batch({k: v.to(device, non_blocking=True) for k, v in batch.items()}, config.mirror)
            model.train()
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                theta = model(batch["image"])
            theta = theta.float()
            with torch.autocast(device.type, enabled=False):
                stn_out = stn(batch["image"], theta)
                terms = loss_terms(stn_out, theta, batch["landmarks21"], batch["vis21"], config, per_rank)
                loss = objective(terms, effective_weights(config, step), config.normaliser)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss * sum_scale).backward()
            if config.grad_clip is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            lr = optimizer.param_groups[0]["lr"]
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            dt = time.perf_counter() - t0
            elapsed += dt
            with torch.no_grad():
                train_err = float(landmark_error(stn_out.landmarks, batch["landmarks21"], batch["vis21"]).mean())
            n_seen = batch["image"].shape[0] * dist_info.world_size
            row = {"step": step, "loss": float(loss.detach()), **{k: float(v.detach()) for k, v in terms.items()},
                   "lr": lr, "train_landmark_error_px": train_err, "images_per_s": n_seen / dt, "elapsed_s": elapsed}
            last = step == config.steps
            if (config.eval_interval and step % config.eval_interval == 0) or last:
                if dist_info.main:
                    if val_set is None:
                        val_set = build_val_dataset(config)
                    if val_set:
                        final_eval = evaluate(_unwrap(model), stn, val_set, device=device, flattened=False).summary
                        row["val_landmark_error_px"] = final_eval["landmark_error_px"]
                        row["val_rotation_error_deg"] = final_eval.get("rotation_error_deg", math.nan)
                _barrier(dist_info)
            if csv_writer is not None and (step % config.log_interval == 0 or last or "val_landmark_error_px" in row):
                csv_writer.writerow({k: _fmt(row.get(k, math.nan)) for k in METRIC_COLUMNS})
                csv_file.flush()  # type: ignore[union-attr]
                history.append({k: float(row.get(k, math.nan)) for k in METRIC_COLUMNS})
                if writer is not None:
                    for k in ("loss", "landmark", "prior", "siamese", "symmetry", "lr", "train_landmark_error_px",
                              "val_landmark_error_px"):
                        if k in row:
                            writer.add_scalar(k, row[k], step)
            bar.set_postfix(loss=f"{row['loss']:.3g}", err=f"{train_err:.2f}px", refresh=False)
            bar.update(1)
            at_boundary = True
            if last or (config.checkpoint_interval and step % config.checkpoint_interval == 0):
                save(step)
            if callback is not None:
                callback(step, row)
        if stop_after is not None and step == stop_after and step < config.steps:
            save(step)
        if step == config.steps and dist_info.main and (step > start_step or not (out / WEIGHTS_NAME).exists()):
            save_weights(out / WEIGHTS_NAME, _unwrap(model), config, metrics=final_eval)
    except KeyboardInterrupt:
        # an interrupt (Ctrl-C, SIGTERM, or one raised between steps) loses nothing: save the completed
        # steps; mid-step the state is inconsistent and the last checkpoint stands
        if at_boundary and step > saved_at and step > 0 and dist_info.world_size == 1:
            save(step)
        raise
    finally:
        interrupts.__exit__(None, None, None)
        bar.close()
        if csv_file is not None:
            csv_file.close()
        if writer is not None:
            writer.close()
    loc = _unwrap(model)
    loc.eval()
    return TrainResult(loc, stn, config, out, step, history, final_eval)


def _barrier(d: _Dist) -> None:
    if d.world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def _tensorboard(out: Path, start_step: int):
    """A SummaryWriter in ``out/tb`` (events after ``start_step`` purged), or None when TensorBoard is absent."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch.utils.tensorboard needs the tensorboard package
        return None
    with contextlib.suppress(Exception):
        return SummaryWriter(str(out / "tb"), purge_step=start_step + 1 if start_step else None)
    return None
