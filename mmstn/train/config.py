"""Everything that defines a training run, in one JSON-serialisable dataclass (:class:`TrainConfig`).

Two recipes (:meth:`TrainConfig.authors`, :meth:`TrainConfig.recommended`):

``"authors"`` — the released MatConvNet trainer (docs/conventions.md §5–6)
    SGD, momentum 0.9, no dampening or Nesterov, weight decay 5e−4 (0 on the θ bias), learning rate
    1e−10 with the θ layer's multipliers ×4 (weights) and ×8 (bias); batches of 32 images + their 32
    mirrors; every loss summed over the batch and the total divided by 32 (``normaliser``); the authors'
    weights 0.8998 / 0.1 / 1e−4 / 1e−4 (landmark / prior / siamese / symmetry). The tiny learning rate
    only makes sense at the authors' scale: VGG-Face fed raw 0–255 pixels, summed squared-pixel losses
    over 64 images. On mmstn's [0, 1] images and batch-normalised small trunk nothing moves at 1e−10;
    override ``lr`` (e.g. 1e−6 for the small trunk) to use the recipe's structure with a workable step.

``"recommended"`` — converges in minutes on a CPU (the recipe of the shipped ``photo_small``, plus augmentation)
    AdamW (learning rate 3e−3, weight decay 1e−4, none on the θ layer's bias), the authors' θ-layer
    multipliers ×4 / ×8 (the translation must span tens of pixels: at ×1 that takes hundreds of steps), a
    linear warm-up over 100 steps then a cosine decay to 2 % (or a one-cycle schedule), every term
    mean-reduced (landmark: mean squared distance per visible landmark, px²; prior: mean ‖α‖² per image;
    symmetry and siamese: mean squared colour difference per compared entry), weights 1 / 0.1 / 0.1 / 0.1
    (landmark / prior / siamese / symmetry; with a prior of 1e−3 the shape absorbs pose errors: α twice too
    large, 27° of pose error), the appearance terms ramped in over the first 500 steps (their gradient is
    meaningless while the pose is far off: a landmark-loss warm-up), batches of 32 + 32 mirrors, 6000 steps,
    the small trunk with widths (16, 32, 64, 128, 192) on a 112 px input.

Data sources: ``"synthetic"`` renders sample i of the dataset ``data_seed`` on the fly
(:func:`mmstn.data.synthetic.generate_sample`, a pure function of (seed, i)); ``"folder"`` reads a folder
written by :func:`mmstn.data.synthetic.generate_dataset`; ``"aflw"`` reads AFLW (``data_path`` = its
``aflw.sqlite``) with the loader's train/val split. Validation on synthetic data uses ``val_seed``
(default 12345, never a training seed) on the fly.

The config is written as ``config.json`` beside the checkpoints; :meth:`TrainConfig.from_json` reads it
back and rejects unknown keys with a message that names them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mmstn.losses import AUTHORS_WEIGHTS, LossWeights

__all__ = [
    "AMP_MODES",
    "DATA_SOURCES",
    "MODELS",
    "OPTIMIZERS",
    "RECIPES",
    "REDUCTIONS",
    "RESUME_MUTABLE_FIELDS",
    "SCHEDULES",
    "SIAMESE_MODES",
    "STN_CONFIGS",
    "TRUNKS",
    "TrainConfig",
    "config_differences",
]

Recipe = Literal["authors", "recommended"]
RECIPES: tuple[str, ...] = ("authors", "recommended")
DATA_SOURCES = ("synthetic", "folder", "aflw")
TRUNKS = ("small", "vgg")
STN_CONFIGS = ("paper", "faithful")
SCHEDULES = ("constant", "cosine", "onecycle")
SIAMESE_MODES = ("mirrored", "direct", "matconvnet")
REDUCTIONS = ("sum", "mean")
OPTIMIZERS = ("sgd", "adamw")
AMP_MODES = ("auto", "bf16", "fp16", "off")
MODELS = ("ict", "builtin")

#: Fields that may differ between a checkpoint's config and the config of the run that resumes it:
#: they do not change what is computed (where, how often it is saved or reported).
RESUME_MUTABLE_FIELDS: frozenset[str] = frozenset(
    {"name", "device", "amp", "workers", "checkpoint_interval", "log_interval", "progress", "tensorboard",
     "eval_interval", "n_val"}
)

#: The recommended recipe's loss weights (on mean-reduced terms).
RECOMMENDED_WEIGHTS = LossWeights(landmark=1.0, prior=0.1, siamese=0.1, symmetry=0.1)


@dataclass
class TrainConfig:
    """A training run, fully described (module docstring for the recipes and data sources).

    Attributes:
        name: a label for the run (free text).
        recipe: ``"authors"`` or ``"recommended"`` (sets the defaults below through the factories).
        data: ``"synthetic"`` (on the fly), ``"folder"`` (a generated synthetic folder) or ``"aflw"``.
        data_path: the folder (``"folder"``) or ``aflw.sqlite`` (``"aflw"``); unused for ``"synthetic"``.
        data_seed: dataset seed of on-the-fly synthetic training data.
        n_train: number of distinct training images of on-the-fly synthetic data (indices 0..n_train−1);
            a folder or AFLW uses all of its images.
        val_seed: seed of the synthetic validation set (on the fly, never used for training).
        n_val: validation images evaluated every ``eval_interval`` steps (the first n_val of the set).
        image_size: side of the synthetic images (the label frame; 224 as the paper).
        n_subjects: distinct synthetic subjects.
        model: the morphable model, its 5 identity + 5 expression components flattened to a G×G grid
            model: ``"ict"`` (default: the shipped ICT FaceKit face, a real human face) or ``"builtin"``
            (the cartoon face the first localiser was trained on).
        grid_size: G, the flattened output is G×G.
        stn: the STN configuration: ``"paper"`` (s = exp(logs), pixel-centre grid) or ``"faithful"``.
        trunk: ``"small"`` (:class:`~mmstn.localiser.SmallTrunk`) or ``"vgg"`` (VGG-Face).
        trunk_input: the small trunk's input side (the image is resized to it).
        trunk_widths: the small trunk's five block widths.
        vgg_weights: VGG-Face weight file for the ``"vgg"`` trunk (None: random initialisation).
        init_scale: the θ layer's initial scale s₀ in px/mm (None: a 120 px wide mean face at 224², the
            synthetic data's and the authors' crops' size; the authors initialised logs = 0, s = 1).
        weights: the loss weights (landmark, prior, siamese, symmetry).
        reduction: ``"sum"`` (the authors') or ``"mean"`` (see the module docstring).
        normaliser: the objective is divided by it (the authors: 32, the imdb batch).
        siamese_mode: ``"mirrored"`` (compare V with the mirrored V′), ``"direct"`` (cell by cell) or
            ``"matconvnet"`` (the authors' layer, with its sign bug).
        mirror: append the horizontal flip of every image to the batch (the authors' only augmentation).
        augment: photometric augmentation strength (:func:`mmstn.data.augment.photometric_augment`: blur,
            noise, grey, contrast, colour cast), drawn from (seed, step); 0 = off; the shipped ``photo_small`` used 1.
        optimizer: ``"sgd"`` or ``"adamw"``.
        lr: base learning rate; momentum, weight_decay: as in torch.optim.
        head_weight_mult, head_bias_mult: learning-rate multipliers of the θ layer (the authors' ×4 / ×8).
        schedule: ``"constant"``, ``"cosine"`` (linear warm-up, cosine to ``final_lr_fraction``) or
            ``"onecycle"``.
        warmup_steps: linear learning-rate warm-up (cosine); final_lr_fraction: the cosine's end value.
        appearance_warmup_steps: the siamese and symmetry weights ramp linearly from 0 over these steps.
        grad_clip: clip the gradient norm to this value (None: no clipping).
        batch_size: images per step before mirroring (the network sees twice as many with ``mirror``).
        steps: optimiser steps of the run.
        eval_interval: validate every this many steps (and at the end); 0 = only at the end.
        checkpoint_interval: save the full training state every this many steps (and at the end).
        log_interval: write a metrics row every this many steps.
        seed: seeds the model's initialisation and the data order.
        device: ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        amp: mixed precision on CUDA: ``"auto"`` (bf16 when supported, else fp16), ``"bf16"``, ``"fp16"``,
            ``"off"``; always off on the CPU.
        workers: DataLoader worker processes (0: load in the training process).
        progress: show a tqdm progress bar (``TQDM_DISABLE=1`` hides it too).
        tensorboard: also write TensorBoard events when ``torch.utils.tensorboard`` imports.
    """

    name: str = "run"
    recipe: Recipe = "recommended"
    # data
    data: str = "synthetic"
    data_path: str | None = None
    data_seed: int = 0
    n_train: int = 1_000_000
    val_seed: int = 12345
    n_val: int = 64
    image_size: int = 224
    n_subjects: int = 1000
    # model
    model: str = "ict"
    grid_size: int = 112
    stn: str = "paper"
    trunk: str = "small"
    trunk_input: int = 112
    trunk_widths: tuple[int, ...] = (16, 32, 64, 128, 192)
    vgg_weights: str | None = None
    init_scale: float | None = None
    # losses
    weights: LossWeights = field(default_factory=lambda: RECOMMENDED_WEIGHTS)
    reduction: str = "mean"
    normaliser: float = 1.0
    siamese_mode: str = "mirrored"
    mirror: bool = True
    augment: float = 0.0
    # optimisation
    optimizer: str = "adamw"
    lr: float = 3e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    head_weight_mult: float = 4.0
    head_bias_mult: float = 8.0
    schedule: str = "cosine"
    warmup_steps: int = 100
    final_lr_fraction: float = 0.02
    appearance_warmup_steps: int = 500
    grad_clip: float | None = None
    batch_size: int = 32
    steps: int = 6000
    # bookkeeping
    eval_interval: int = 250
    checkpoint_interval: int = 250
    log_interval: int = 1
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    workers: int = 0
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.weights, dict):
            try:
                self.weights = LossWeights(**self.weights)
            except TypeError as exc:
                raise ValueError(f"TrainConfig.weights={self.weights!r}: the terms are landmark, prior, siamese "
                                 "and symmetry") from exc
        if not isinstance(self.weights, LossWeights):
            raise ValueError(f"TrainConfig.weights={self.weights!r}: must be a LossWeights or a dict of its fields")
        try:
            self.trunk_widths = tuple(int(w) for w in self.trunk_widths)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"TrainConfig.trunk_widths={self.trunk_widths!r}: must be five integers") from exc
        self.validate()

    # ------------------------------------------------------------------ recipes
    @classmethod
    def authors(cls, **changes: Any) -> TrainConfig:
        """The authors' MatConvNet recipe (module docstring): SGD 1e−10, ×4/×8, sums / 32, their weights."""
        base = {
            "recipe": "authors",
            "stn": "faithful",
            "weights": AUTHORS_WEIGHTS,
            "reduction": "sum",
            "normaliser": 32.0,
            "siamese_mode": "mirrored",
            "optimizer": "sgd",
            "lr": 1e-10,
            "momentum": 0.9,
            "weight_decay": 5e-4,
            "head_weight_mult": 4.0,
            "head_bias_mult": 8.0,
            "schedule": "constant",
            "warmup_steps": 0,
            "appearance_warmup_steps": 0,
            "batch_size": 32,
        }
        base.update(changes)
        return cls(**base)

    @classmethod
    def recommended(cls, **changes: Any) -> TrainConfig:
        """AdamW + warm-up/cosine, mean-reduced losses (module docstring); the dataclass defaults."""
        return cls(**{"recipe": "recommended", **changes})

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field, its value and the allowed range.

        Every field is checked here (at construction), so a bad setting fails before any training starts
        instead of training silently the wrong way (a negative clip reverses the gradient, a negative
        final learning-rate fraction gives a negative learning rate).
        """

        def fail(name: str, rule: str) -> None:
            raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r}: {rule}")

        def one_of(name: str, allowed: tuple[str, ...]) -> None:
            if getattr(self, name) not in allowed:
                fail(name, f"use one of {allowed}")

        def integer(name: str, low: int) -> None:
            v = getattr(self, name)
            # bool is an int subclass: True as a step count is almost surely a slip
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                fail(name, f"must be an integer >= {low}")
            if int(v) < low:
                fail(name, f"must be an integer >= {low}")

        def number(name: str, low: float, high: float = math.inf, *, low_open: bool = False,
                   high_open: bool = False, extra: str = "") -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                fail(name, "must be a number")
            x = float(v)
            lo_ok = x > low if low_open else x >= low
            hi_ok = x < high if high_open else x <= high
            if not (math.isfinite(x) and lo_ok and hi_ok):
                fail(name, f"must be a finite number in {'(' if low_open else '['}{low:g}, {high:g}"
                           f"{')' if high_open or math.isinf(high) else ']'}{extra}")

        for name in ("name", "recipe", "data", "model", "stn", "trunk", "reduction", "siamese_mode", "optimizer",
                     "schedule", "device", "amp"):
            if not isinstance(getattr(self, name), str):
                fail(name, "must be a string")
        one_of("recipe", RECIPES)
        one_of("data", DATA_SOURCES)
        one_of("trunk", TRUNKS)
        one_of("stn", STN_CONFIGS)
        one_of("schedule", SCHEDULES)
        one_of("siamese_mode", SIAMESE_MODES)
        one_of("reduction", REDUCTIONS)
        one_of("optimizer", OPTIMIZERS)
        one_of("amp", AMP_MODES)
        one_of("model", MODELS)
        if self.device != "auto":
            try:
                import torch

                torch.device(self.device)
            except (RuntimeError, ValueError):
                fail("device", "use 'auto', 'cpu', 'cuda' or 'cuda:<index>'")
        for name in ("data_path", "vgg_weights"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                fail(name, "must be a path string or None")
        if self.data in ("folder", "aflw") and not self.data_path:
            raise ValueError(f"TrainConfig.data={self.data!r} needs data_path (the folder or aflw.sqlite)")
        for name in ("batch_size", "image_size", "grid_size", "trunk_input", "n_train", "n_subjects",
                     "log_interval"):
            integer(name, 1)
        for name in ("steps", "n_val", "eval_interval", "checkpoint_interval", "warmup_steps",
                     "appearance_warmup_steps", "workers", "seed", "data_seed", "val_seed"):
            integer(name, 0)
        if len(self.trunk_widths) != 5 or any(w < 1 for w in self.trunk_widths):
            fail("trunk_widths", "the small trunk needs five positive block widths")
        number("lr", 0.0, low_open=True)
        number("normaliser", 0.0, low_open=True)
        number("momentum", 0.0, 1.0, high_open=True)
        number("augment", 0.0, 2.0)
        number("weight_decay", 0.0)
        number("head_weight_mult", 0.0)
        number("head_bias_mult", 0.0)
        number("final_lr_fraction", 0.0, 1.0)
        if self.grad_clip is not None:  # 0 zeroes the gradient, < 0 turns descent into ascent
            number("grad_clip", 0.0, low_open=True, extra=", or None for no clipping")
        if self.init_scale is not None:  # px/mm; its log is the θ layer's initial bias
            number("init_scale", 0.0, low_open=True, extra=", or None for the default")
        for term, v in self.weights.as_dict().items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v >= 0):
                raise ValueError(f"TrainConfig.weights.{term}={v!r}: must be a finite number >= 0 "
                                 "(a negative weight maximises its term)")
        for name in ("mirror", "progress", "tensorboard"):
            if not isinstance(getattr(self, name), bool):
                fail(name, "must be True or False")
        if self.siamese_mode == "matconvnet" and not self.mirror:
            raise ValueError("TrainConfig.siamese_mode='matconvnet' needs mirror=True (image/mirror pairs)")
        if self.trunk == "vgg" and self.image_size != 224:
            raise ValueError(f"the VGG-Face trunk needs image_size=224, got {self.image_size}")

    # ------------------------------------------------------------------ derived
    @property
    def images_per_step(self) -> int:
        """Images the network sees per step: the batch and, with ``mirror``, its flips."""
        return self.batch_size * (2 if self.mirror else 1)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated)."""
        return replace(self, **changes)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples as lists, the weights as a dict)."""
        d = asdict(self)
        d["trunk_widths"] = list(self.trunk_widths)
        return d

    def to_json(self, path: str | Path | None = None) -> str:
        """The config as indented JSON; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=1) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a dict; unknown keys and wrong types raise ``ValueError`` naming ``source``."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object of TrainConfig fields, found {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown TrainConfig field(s) {unknown}; known: {sorted(known)}")
        kwargs = dict(data)
        if isinstance(kwargs.get("weights"), dict):
            wknown = {f.name for f in fields(LossWeights)}
            bad = sorted(set(kwargs["weights"]) - wknown)
            if bad:
                raise ValueError(f"{source}: unknown loss weight(s) {bad}; known: {sorted(wknown)}")
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: {exc}") from exc

    @classmethod
    def from_json(cls, path_or_text: str | Path) -> TrainConfig:
        """Read a config from a JSON file (or a JSON string starting with ``{``)."""
        text = str(path_or_text)
        source = "config string"
        if not text.lstrip().startswith("{"):
            path = Path(path_or_text)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such config file")
            source = str(path)
            text = path.read_text()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}: not valid JSON ({exc})") from exc
        return cls.from_dict(data, source)


def config_differences(a: TrainConfig, b: TrainConfig, ignore: frozenset[str] = RESUME_MUTABLE_FIELDS) -> list[str]:
    """Names of the fields (outside ``ignore``) whose values differ between two configs."""
    da, db = a.to_dict(), b.to_dict()
    return [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ignore and da[f.name] != db[f.name]]
