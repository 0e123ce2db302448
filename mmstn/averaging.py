"""Per-subject averages of flattened faces (paper Figs. 7 and 8), their sources, estimators and scores.

Once the STN has put every image of a person into the same G×G frame, a feature (eye, mouth corner, …)
lands on the same cell whatever the pose, so the flattened outputs of one person can simply be averaged.
Where a cell was hidden (the far cheek of a profile) the STN writes 0 and the mask M says so; averaging those
zeros would darken the texture towards the sides. The averages here are **visibility-normalised**,

    A = Σ_i W_i · M_i / Σ_i M_i        (per cell; 0 and ``seen = False`` where Σ M = 0),

which is what the authors' released averages look like (black exactly where no image ever saw the cell,
docs/conventions.md §7). The **plain mean** Σ W_i / n is kept for comparison.

Pieces:

* :class:`AverageAccumulator` (one stream of outputs) and :class:`SubjectAverager` (one accumulator per
  subject, optional snapshots after 1, 2, 4, … images and optional storage of every output) add batches
  and read the averages at any time, so hundreds of images need no more memory than one batch.
* **Estimators**: any callable ``(images (B, 3, H, W), landmarks (B, 21, 2) | None, vis (B, 21) | None) →
  θ (B, 6 + D)``. :func:`fitting_estimator` fits θ to the landmarks of each image (chapter 4,
  :func:`mmstn.fitting.fit`); :func:`localiser_estimator` wraps a trained network; :func:`default_estimator`
  picks the shipped localiser when :mod:`mmstn.train` provides one, else fitting; :func:`frontal_estimator`
  (one fixed θ for all) is the no-alignment baseline.
* **Sources** (:class:`SubjectSource`, batches of :class:`FaceBatch`): :func:`synthetic_subjects` renders
  built-in subjects in random poses (with their true θ and texture), :func:`umdfaces_subjects` reads chosen
  UMDFaces subjects from the batch CSVs, :func:`folder_subjects` reads a folder with one subfolder per person.
* :func:`average_subjects` runs source → estimator → STN(s) → averagers.
* **Scores**: :func:`texture_psnr` / :func:`psnr_curve` against the true flattened texture
  (:func:`true_flattened_texture`) of a synthetic subject, and :func:`correspondence_score` (distance of two
  outputs of the same person vs. of different people, over the cells both saw) on any set.

Shapes: flattened outputs W are (B, C, G, G), masks M (B, 1, G, G) with values in [0, 1] (the STN's are 0/1).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from mmstn.errors import ShapeError
from mmstn.layers.scale import scale_rate
from mmstn.scores import summarise_distances
from mmstn.stn import STN3DMM
from mmstn.theta import Theta, ThetaConvention

__all__ = [
    "AverageAccumulator",
    "AveragingResult",
    "CorrespondenceScore",
    "Estimator",
    "FaceBatch",
    "SubjectAverage",
    "SubjectAverager",
    "SubjectSource",
    "average_subjects",
    "correspondence_score",
    "default_estimator",
    "fitting_estimator",
    "folder_subjects",
    "frontal_estimator",
    "load_shipped_localiser",
    "localiser_estimator",
    "masked_average",
    "plain_average",
    "psnr_curve",
    "read_subject_names",
    "synthetic_subject_indices",
    "synthetic_subjects",
    "texture_psnr",
    "true_flattened_texture",
    "umdfaces_subjects",
]

#: θ estimator: (images (B, 3, H, W), landmarks (B, 21, 2) label frame or None, vis (B, 21) or None) → θ (B, 6 + D).
Estimator = Callable[[torch.Tensor, "torch.Tensor | None", "torch.Tensor | None"], torch.Tensor]


# ================================================================================================ averaging
def _as_batch(flattened: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Check and bring W to (B, C, G, G) and M to (B, 1, G, G)."""
    if flattened.ndim == 3:
        flattened = flattened[None]
    if flattened.ndim != 4:
        raise ShapeError(f"flattened must have shape (B, C, G, G) or (C, G, G), got {tuple(flattened.shape)}")
    b, _, h, w = flattened.shape
    if mask.ndim == 2:
        mask = mask[None, None]
    elif mask.ndim == 3:
        mask = mask[:, None] if mask.shape[0] == b and b > 1 else mask[None]
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[2:] != (h, w) or mask.shape[0] not in (1, b):
        raise ShapeError(f"mask must have shape (B, 1, G, G) matching flattened {tuple(flattened.shape)}, "
                         f"got {tuple(mask.shape)}")
    return flattened, mask.expand(b, 1, h, w)


@dataclass
class SubjectAverage:
    """The averages of one subject's flattened outputs.

    Attributes:
        average: (C, G, G) visibility-normalised average Σ W·M / Σ M; 0 where unseen.
        count: (G, G) Σ M, the number of images that saw each cell (fractional for soft masks).
        seen: (G, G) bool, count > 0.
        plain: (C, G, G) plain mean Σ W / n.
        n_images: n.
        subject_id: the subject's id (−1 when unknown).
        name: a display name.
    """

    average: torch.Tensor
    count: torch.Tensor
    seen: torch.Tensor
    plain: torch.Tensor
    n_images: int
    subject_id: int = -1
    name: str = ""

    @property
    def coverage(self) -> float:
        """Fraction of the G×G cells seen by at least one image."""
        return float(self.seen.float().mean())


class AverageAccumulator:
    """Streaming visibility-normalised and plain averages of flattened outputs (float64 sums).

    Args:
        grid_size: G.
        channels: C.

    ``add(flattened (B, C, G, G), mask (B, 1, G, G))`` adds a batch; :attr:`average`, :attr:`count`,
    :attr:`seen`, :attr:`plain` read the current state (never NaN: unseen cells are 0).
    """

    def __init__(self, grid_size: int, channels: int = 3) -> None:
        g, c = int(grid_size), int(channels)
        self.grid_size, self.channels = g, c
        self.sum_masked = torch.zeros(c, g, g, dtype=torch.float64)
        self.sum_plain = torch.zeros(c, g, g, dtype=torch.float64)
        self.count = torch.zeros(g, g, dtype=torch.float64)
        self.n_images = 0

    def add(self, flattened: torch.Tensor, mask: torch.Tensor) -> None:
        """Add B outputs: W (B, C, G, G) (or (C, G, G)), M (B, 1, G, G) with values in [0, 1]."""
        w, m = _as_batch(flattened.detach(), mask.detach())
        if w.shape[1:] != self.sum_masked.shape:
            raise ShapeError(f"flattened has shape {tuple(w.shape[1:])} per image, this accumulator holds "
                             f"{tuple(self.sum_masked.shape)}")
        b = int(w.shape[0])
        w, m = w.to("cpu"), m.to("cpu")
        # 2-D (B, K) reductions: much faster in torch than reducing dim 0 of a 4-D tensor
        self.sum_masked += (w * m).reshape(b, -1).to(torch.float64).sum(0).view_as(self.sum_masked)
        self.sum_plain += w.reshape(b, -1).to(torch.float64).sum(0).view_as(self.sum_plain)
        self.count += m.reshape(b, -1).to(torch.float64).sum(0).view_as(self.count)
        self.n_images += b

    def add_sums(self, sum_masked: torch.Tensor, sum_plain: torch.Tensor, count: torch.Tensor, n_images: int) -> None:
        """Add precomputed sums over ``n_images`` outputs: Σ W·M (C, G, G), Σ W (C, G, G), Σ M (G, G)."""
        self.sum_masked += sum_masked.detach().to("cpu", torch.float64).view_as(self.sum_masked)
        self.sum_plain += sum_plain.detach().to("cpu", torch.float64).view_as(self.sum_plain)
        self.count += count.detach().to("cpu", torch.float64).view_as(self.count)
        self.n_images += int(n_images)

    def merge(self, other: AverageAccumulator) -> AverageAccumulator:
        """Add another accumulator's sums to this one (e.g. from another worker); returns self."""
        if other.sum_masked.shape != self.sum_masked.shape:
            raise ShapeError("cannot merge accumulators of different shapes")
        self.sum_masked += other.sum_masked
        self.sum_plain += other.sum_plain
        self.count += other.count
        self.n_images += other.n_images
        return self

    @property
    def seen(self) -> torch.Tensor:
        """(G, G) bool: cells seen by at least one image."""
        return self.count > 0

    @property
    def average(self) -> torch.Tensor:
        """(C, G, G) float32 Σ W·M / Σ M, 0 where no image saw the cell."""
        c = self.count
        avg = torch.where(c > 0, self.sum_masked / torch.where(c > 0, c, torch.ones_like(c)), torch.zeros_like(c))
        return avg.float()

    @property
    def plain(self) -> torch.Tensor:
        """(C, G, G) float32 Σ W / n (zeros before the first image)."""
        return (self.sum_plain / max(self.n_images, 1)).float()

    def result(self, subject_id: int = -1, name: str = "") -> SubjectAverage:
        """The current state as a :class:`SubjectAverage`."""
        return SubjectAverage(self.average, self.count.float(), self.seen, self.plain, self.n_images,
                              int(subject_id), name or (f"subject {subject_id}" if subject_id >= 0 else ""))


def masked_average(flattened: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Visibility-normalised average of a stack: W (B, C, G, G), M (B, 1, G, G) → (average (C, G, G),
    count (G, G), seen (G, G) bool). Unseen cells are 0."""
    w, _ = _as_batch(flattened, mask)
    acc = AverageAccumulator(w.shape[-1], w.shape[1])
    acc.add(flattened, mask)
    return acc.average, acc.count.float(), acc.seen


def plain_average(flattened: torch.Tensor) -> torch.Tensor:
    """Plain mean Σ W / B of a stack W (B, C, G, G) → (C, G, G)."""
    if flattened.ndim != 4:
        raise ShapeError(f"flattened must have shape (B, C, G, G), got {tuple(flattened.shape)}")
    return flattened.detach().double().mean(0).float()


class SubjectAverager:
    """One :class:`AverageAccumulator` per subject, fed with batches of mixed subjects.

    Args:
        grid_size: G.
        channels: C.
        snapshots: image counts n at which to record the subject's visibility-normalised average (for
            "how the average sharpens"); images are then added one at a time.
        keep: store every output (uint8 W and bool M, about C·G² bytes per image) for the widgets and
            :func:`correspondence_score`.

    Attributes:
        accumulators: subject id → :class:`AverageAccumulator`.
        snapshots: subject id → {n: (C, G, G) average after the first n images}.
        kept: subject id → list of (W uint8 (C, G, G), M bool (G, G)) when ``keep``.
    """

    def __init__(self, grid_size: int, channels: int = 3, snapshots: Sequence[int] = (), keep: bool = False) -> None:
        self.grid_size, self.channels = int(grid_size), int(channels)
        self.snapshot_at = sorted({int(n) for n in snapshots if int(n) > 0})
        self.keep = bool(keep)
        self.accumulators: dict[int, AverageAccumulator] = {}
        self.snapshots: dict[int, dict[int, torch.Tensor]] = {}
        self.kept: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def _acc(self, s: int) -> AverageAccumulator:
        if s not in self.accumulators:
            self.accumulators[s] = AverageAccumulator(self.grid_size, self.channels)
            self.snapshots[s] = {}
            self.kept[s] = []
        return self.accumulators[s]

    def add(self, flattened: torch.Tensor, mask: torch.Tensor, subject_ids: torch.Tensor | Sequence[int]) -> None:
        """Add W (B, C, G, G), M (B, 1, G, G) of the subjects ``subject_ids`` (B,)."""
        w, m = _as_batch(flattened.detach().cpu(), mask.detach().cpu())
        ids = torch.as_tensor(subject_ids).reshape(-1).tolist()
        if len(ids) != w.shape[0]:
            raise ShapeError(f"{len(ids)} subject ids for {w.shape[0]} outputs")
        subjects = list(dict.fromkeys(int(i) for i in ids))
        if not self.snapshot_at:
            # every subject's sums at once by scatter-adding rows (index_add_), not a one-hot product: with
            # a product, 0·NaN would carry one subject's NaN into every other subject's sums
            b = w.shape[0]
            row = torch.tensor([subjects.index(int(i)) for i in ids], dtype=torch.long)
            wm = torch.where(m > 0, w * m, torch.zeros_like(w))  # masked-out pixels (NaN or not) add nothing
            k = w[0].numel()
            masked = torch.zeros(len(subjects), k, dtype=w.dtype).index_add_(0, row, wm.reshape(b, -1))
            plain = torch.zeros(len(subjects), k, dtype=w.dtype).index_add_(0, row, w.reshape(b, -1))
            count = torch.zeros(len(subjects), m[0].numel(), dtype=w.dtype).index_add_(0, row, m.reshape(b, -1))
            sizes = torch.bincount(row, minlength=len(subjects)).tolist()
            for j, s in enumerate(subjects):
                self._acc(s).add_sums(masked[j], plain[j], count[j], sizes[j])
        for s in subjects:
            rows = [k for k, i in enumerate(ids) if int(i) == s]
            acc = self._acc(s)
            if self.snapshot_at:
                for k in rows:
                    acc.add(w[k : k + 1], m[k : k + 1])
                    if acc.n_images in self.snapshot_at:
                        self.snapshots[s][acc.n_images] = acc.average
            if self.keep:
                for k in rows:
                    q = torch.clamp(torch.round(w[k] * 255.0), 0, 255).to(torch.uint8)
                    self.kept[s].append((q, m[k, 0] > 0.5))

    @property
    def subject_ids(self) -> list[int]:
        """Subjects seen so far, in order of first appearance."""
        return list(self.accumulators)

    def results(self, names: Mapping[int, str] | None = None) -> dict[int, SubjectAverage]:
        """subject id → :class:`SubjectAverage` (named from ``names`` when given)."""
        names = names or {}
        return {s: a.result(s, names.get(s, "")) for s, a in self.accumulators.items()}

    def stack(self, subjects: Sequence[int] | None = None, n_per_subject: int | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The kept outputs as (W float32 (N, C, G, G) in [0, 1], M (N, 1, G, G), subject ids (N,)).

        Args:
            subjects: which subjects (default all, in order of appearance).
            n_per_subject: at most this many outputs per subject (the first ones).
        """
        if not self.keep:
            raise ValueError("this SubjectAverager was built with keep=False: no outputs were stored")
        ws, ms, ids = [], [], []
        for s in self.subject_ids if subjects is None else subjects:
            for q, mk in self.kept.get(int(s), [])[:n_per_subject]:
                ws.append(q.float() / 255.0)
                ms.append(mk[None].float())
                ids.append(int(s))
        if not ws:
            g, c = self.grid_size, self.channels
            return torch.zeros(0, c, g, g), torch.zeros(0, 1, g, g), torch.zeros(0, dtype=torch.int64)
        return torch.stack(ws), torch.stack(ms), torch.tensor(ids, dtype=torch.int64)

    def average_of_first(self, subject: int, n: int, masked: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(average (C, G, G), seen (G, G)) of the first ``n`` kept outputs of ``subject`` (``masked=False``:
        the plain mean, with ``seen`` still the cells some image saw). Needs ``keep``."""
        w, m, _ = self.stack([subject], n)
        if len(w) == 0:
            g = self.grid_size
            return torch.zeros(self.channels, g, g), torch.zeros(g, g, dtype=torch.bool)
        avg, _, seen = masked_average(w, m)
        return (avg if masked else plain_average(w)), seen


# ================================================================================================ estimators
def _need_landmarks(landmarks: torch.Tensor | None, name: str) -> torch.Tensor:
    if landmarks is None:
        raise ValueError(f"{name} needs landmarks (B, 21, 2); this source has none: use a landmarks JSON, the "
                         "detector (mmstn.detect) or a localiser")
    return landmarks


def fitting_estimator(stn: STN3DMM, n_iter: int = 60, method: Literal["lbfgs", "adam", "authors"] = "lbfgs",
                      batch_size: int = 64) -> Estimator:
    """Estimator that fits θ to each image's landmarks (:func:`mmstn.fitting.fit`, landmark and prior terms).

    The fit never looks at the pixels, so it is as good as the landmarks are. θ does not depend on the grid
    size: fit with a G = 112 STN and flatten with any other STN of the same model and scale base.

    Args:
        stn: the STN whose grid model and scale base define θ.
        n_iter: L-BFGS evaluations per batch (a third on the pose alone).
        method: :func:`~mmstn.fitting.fit`'s optimiser.
        batch_size: images fitted together (the objectives are independent; one L-BFGS run per batch).

    Returns:
        ``estimate(images (B, 3, H, W), landmarks (B, 21, 2), vis (B, 21) | None) → θ (B, 6 + D)``.
    """
    from mmstn.fitting import fit

    def estimate(images: torch.Tensor, landmarks: torch.Tensor | None, vis: torch.Tensor | None) -> torch.Tensor:
        lm = _need_landmarks(landmarks, "fitting_estimator")
        out = []
        for a in range(0, images.shape[0], batch_size):
            b = a + batch_size
            w = None if vis is None else vis[a:b]
            out.append(fit(stn, images[a:b], lm[a:b], w, n_iter=n_iter, method=method).theta)
        return torch.cat(out).float()

    estimate.description = f"per-image fitting to the landmarks ({method}, {n_iter} iterations)"  # type: ignore[attr-defined]
    return estimate


def localiser_estimator(localiser: nn.Module, *, logs_factor: float = 1.0, batch_size: int = 32,
                        device: torch.device | str | None = None) -> Estimator:
    """Estimator from any network image (B, 3, H, W) in [0, 1] → θ (B, 6 + D) (the trained localiser).

    Args:
        localiser: the network (put in eval mode; run without gradients).
        logs_factor: multiplies θ's log-scale column, to move θ between scale bases (κ_net / κ_stn, e.g.
            ln 0.99 for a network trained with s = 0.99^logs used with an ``exp`` STN).
        batch_size: images per forward pass.
        device: where to run it (default: where its parameters are).

    Returns:
        ``estimate(images, landmarks=None, vis=None) → θ (B, 6 + D)`` on the CPU (landmarks are ignored).
    """
    params = list(localiser.parameters())
    dev = torch.device(device) if device is not None else (params[0].device if params else torch.device("cpu"))

    def estimate(images: torch.Tensor, landmarks: torch.Tensor | None = None,
                 vis: torch.Tensor | None = None) -> torch.Tensor:
        localiser.eval()
        out = []
        with torch.no_grad():
            for a in range(0, images.shape[0], batch_size):
                out.append(localiser(images[a : a + batch_size].to(dev)).detach().float().cpu())
        theta = torch.cat(out)
        if logs_factor != 1.0:
            p = Theta.from_tensor(theta)  # only the logs column is rescaled, by the ratio κ_net / κ_stn
            theta = replace(p, logs=p.logs * logs_factor).tensor()
        return theta

    estimate.description = f"the localiser network ({type(localiser).__name__})"  # type: ignore[attr-defined]
    return estimate


def frontal_estimator(stn: STN3DMM, image_size: int = 224, scale: float | None = None) -> Estimator:
    """The "no alignment" baseline: every image gets the same θ, the mean face seen frontally, centred, at the
    synthetic data's reference scale — flattening then amounts to a fixed crop-and-warp of the image.

    Args:
        stn: the STN whose model and scale base define θ.
        image_size: the crops' side (the face is centred at ((S + 1)/2, (S + 1)/2) in the label frame).
        scale: s in px/mm (default :func:`mmstn.data.synthetic.reference_scale` of the STN's model).
    """
    from types import SimpleNamespace

    from mmstn.data.synthetic import reference_scale

    mean = stn.generator.morphable.mean.detach().cpu().double()
    idx = stn.generator.landmark_indices
    s = reference_scale(SimpleNamespace(mean=mean, landmarks={"aflw21": idx}), image_size=image_size) \
        if scale is None else float(scale)
    xy = mean[idx, :2] if idx.numel() else mean[:, :2]
    box_centre = (xy.amin(0) + xy.amax(0)) / 2  # as the synthetic data: the landmark box is centred
    theta = Theta(r=torch.zeros(1, 3), t=((image_size + 1) / 2.0 - s * box_centre).float()[None],
                  logs=torch.tensor([[math.log(s) / stn.config.scale_rate]]),
                  alpha=torch.zeros(1, stn.generator.n_components), convention=stn.config.theta_convention
                  ).tensor()[0]

    def estimate(images: torch.Tensor, landmarks: torch.Tensor | None = None,
                 vis: torch.Tensor | None = None) -> torch.Tensor:
        return theta.expand(images.shape[0], -1).clone()

    estimate.description = "one fixed frontal θ for every image (no alignment)"  # type: ignore[attr-defined]
    return estimate


def _find_module(obj: Any) -> nn.Module | None:
    if isinstance(obj, nn.Module):
        return obj
    for name in ("localiser", "model", "network", "net"):
        m = getattr(obj, name, None)
        if isinstance(m, nn.Module):
            return m
    if isinstance(obj, Mapping):
        for v in obj.values():
            if isinstance(v, nn.Module):
                return v
    if isinstance(obj, (tuple, list)):
        for v in obj:
            if isinstance(v, nn.Module):
                return v
    return None


def _find_scale_rate(obj: Any) -> float | None:
    """κ of the θ a loaded localiser predicts: its own :class:`~mmstn.theta.ThetaConvention` when it carries
    one, else the scale base of the STN ``load_pretrained`` returned with it."""
    net = _find_module(obj)
    conv = getattr(net, "convention", None)
    if isinstance(conv, ThetaConvention):
        return float(conv.scale_rate)
    for v in (obj, *(obj if isinstance(obj, (tuple, list)) else ())):
        for cfg in (v, getattr(v, "config", None), getattr(v, "stn_config", None)):
            if cfg is not None and hasattr(cfg, "scale_base") and not isinstance(cfg, type):
                try:
                    return float(scale_rate(cfg.scale_base))
                except (TypeError, ValueError):
                    continue
    return None


def load_shipped_localiser(**kwargs: Any) -> tuple[nn.Module | None, float | None, str]:
    """The localiser checkpoint shipped with mmstn, if this installation has one.

    Imports ``mmstn.train.checkpoint.load_pretrained`` lazily and calls it with ``kwargs``.

    Returns:
        (network or None, κ of the scale base it was trained with when the checkpoint says so (s = exp(κ·logs)),
        a sentence saying what was found).
    """
    try:
        from mmstn.train.checkpoint import load_pretrained  # type: ignore[import-not-found]
    except ImportError as exc:
        return None, None, f"no shipped localiser (mmstn.train is not available: {exc})"
    try:
        obj = load_pretrained(**kwargs)
    except Exception as exc:  # a missing or broken checkpoint must not stop the fallback
        return None, None, f"no shipped localiser (load_pretrained failed: {type(exc).__name__}: {exc})"
    net = _find_module(obj)
    if net is None:
        return None, None, f"no shipped localiser (load_pretrained returned a {type(obj).__name__})"
    return net, _find_scale_rate(obj), f"the shipped localiser ({type(net).__name__})"


def default_estimator(stn: STN3DMM, n_iter: int = 60, prefer: Literal["auto", "localiser", "fitting"] = "auto"
                      ) -> tuple[Estimator, str]:
    """The shipped localiser when available (``prefer="auto"``), else per-image fitting.

    Returns:
        (estimator, a sentence naming the one chosen and why).
    """
    if prefer != "fitting":
        net, kappa, why = load_shipped_localiser()
        if net is not None:
            factor = 1.0 if kappa is None else kappa / stn.config.scale_rate
            return localiser_estimator(net, logs_factor=factor), f"θ from {why}"
        if prefer == "localiser":
            raise RuntimeError(why)
    else:
        why = "fitting requested"
    est = fitting_estimator(stn, n_iter=n_iter)
    return est, f"θ from {est.description} — {why}"  # type: ignore[attr-defined]


# ================================================================================================ sources
@dataclass
class FaceBatch:
    """A batch of face crops of known subjects.

    Attributes:
        images: (B, 3, H, W) float32 in [0, 1].
        subject_ids: (B,) int64.
        landmarks: (B, 21, 2) AFLW-21 in the label frame, or None.
        vis: (B, 21) landmark visibility, or None.
        theta: (B, 6 + D) true θ with s = exp(logs) (synthetic sources), or None.
        keys: one identifier per image (sample index, file).
    """

    images: torch.Tensor
    subject_ids: torch.Tensor
    landmarks: torch.Tensor | None = None
    vis: torch.Tensor | None = None
    theta: torch.Tensor | None = None
    keys: list[str] = field(default_factory=list)


class SubjectSource:
    """Images of chosen subjects, loaded lazily and batched (iterate for :class:`FaceBatch` es).

    Args:
        plan: (subject id, item key) per image, in the order they are used.
        load: key → sample dict (``image``, optional ``landmarks21``, ``vis21``, ``theta``).
        names: subject id → display name.
        batch_size: images per batch (a batch may hold several subjects).
        min_landmarks: drop images with fewer visible landmarks (0: keep all).
        padded: the crops may reach outside their photos (black padding): :func:`average_subjects` then
            leaves out cells that sample exactly-black pixels.

    Attributes:
        n_skipped: images dropped during the last iteration (unreadable, or too few landmarks).
    """

    def __init__(self, plan: Sequence[tuple[int, Any]], load: Callable[[Any], dict[str, torch.Tensor]],
                 names: Mapping[int, str], batch_size: int = 16, min_landmarks: int = 0,
                 padded: bool = False) -> None:
        self.plan = list(plan)
        self.padded = bool(padded)
        self.load = load
        self.names = dict(names)
        self.batch_size = int(batch_size)
        self.min_landmarks = int(min_landmarks)
        self.n_skipped = 0

    def __len__(self) -> int:
        return len(self.plan)

    @property
    def subject_ids(self) -> list[int]:
        """The subjects, in order of first appearance."""
        return list(dict.fromkeys(s for s, _ in self.plan))

    def counts(self) -> dict[int, int]:
        """subject id → planned number of images."""
        out: dict[int, int] = {}
        for s, _ in self.plan:
            out[s] = out.get(s, 0) + 1
        return out

    def __iter__(self) -> Iterator[FaceBatch]:
        from mmstn.data.errors import DataFormatError

        self.n_skipped = 0
        pending: list[tuple[int, Any, dict[str, torch.Tensor]]] = []
        for s, key in self.plan:
            try:
                item = self.load(key)
            except DataFormatError as exc:
                warnings.warn(f"skipping an unreadable face: {exc}", stacklevel=2)
                self.n_skipped += 1
                continue
            if self.min_landmarks and ("vis21" not in item or int((item["vis21"] > 0).sum()) < self.min_landmarks):
                self.n_skipped += 1
                continue
            pending.append((s, key, item))
            if len(pending) == self.batch_size:
                yield _collate(pending)
                pending = []
        if pending:
            yield _collate(pending)


def _collate(items: list[tuple[int, Any, dict[str, torch.Tensor]]]) -> FaceBatch:
    def opt(name: str) -> torch.Tensor | None:
        if all(name in it for _, _, it in items):
            return torch.stack([it[name] for _, _, it in items]).float()
        return None

    return FaceBatch(
        images=torch.stack([it["image"] for _, _, it in items]).float(),
        subject_ids=torch.tensor([s for s, _, _ in items], dtype=torch.int64),
        landmarks=opt("landmarks21"),
        vis=opt("vis21"),
        theta=opt("theta"),
        keys=[str(k) for _, k, _ in items],
    )


# ---------------------------------------------------------------------------------------------- synthetic
def synthetic_subject_indices(subject_id: int, n_images: int, seed: int = 0, n_subjects: int = 100,
                              start: int = 0) -> list[int]:
    """The first ``n_images`` sample indices ≥ ``start`` of the synthetic dataset (``seed``, ``n_subjects``)
    that show subject ``subject_id``, in increasing order.

    :func:`mmstn.data.synthetic.draw_parameters` draws the subject first, as
    ``default_rng([seed, index]).integers(n_subjects)``; the same draw is repeated here, and
    :func:`synthetic_subjects` checks every rendered sample's subject against it.
    """
    if not 0 <= subject_id < n_subjects:
        raise ValueError(f"subject_id={subject_id} must lie in [0, n_subjects={n_subjects})")
    out: list[int] = []
    i = int(start)
    limit = start + 1000 * max(n_subjects, 1) * max(n_images, 1)
    while len(out) < n_images and i < limit:
        if int(np.random.default_rng([int(seed), i]).integers(n_subjects)) == subject_id:
            out.append(i)
        i += 1
    return out


def synthetic_subjects(model, subjects: Sequence[int], n_images: int, *, seed: int = 0, n_subjects: int = 100,
                       dist=None, scene=None, image_size: int = 224, batch_size: int = 16) -> SubjectSource:
    """Built-in (or any model's) synthetic subjects, each rendered in ``n_images`` random poses.

    The identity (shape α_id and texture β) of subject ``s`` depends only on (``seed``, ``s``)
    (:func:`mmstn.data.synthetic.subject_parameters`); ``n_subjects`` decides which sample indices show it
    (:func:`synthetic_subject_indices`). Images are :func:`mmstn.data.synthetic.generate_sample`: random pose,
    expression, light, background and occluders, with the true θ (s = exp(logs)) and the 21 landmarks.

    Args:
        model: the model to render (e.g. ``builtin_model().subset(5, 5)``, whose θ fits the grid model
            ``builtin_grid_model(G, 5, 5)``), with ``landmarks["aflw21"]`` and a texture basis.
        subjects: subject ids in [0, n_subjects).
        n_images: images per subject.
        seed, n_subjects, dist, scene, image_size: the synthetic dataset's settings.
        batch_size: images per batch.
    """
    from mmstn.data.synthetic import SceneDistribution, ThetaDistribution, generate_sample

    dist = ThetaDistribution() if dist is None else dist
    scene = SceneDistribution() if scene is None else scene
    plan = [(int(s), i) for s in subjects
            for i in synthetic_subject_indices(int(s), n_images, seed, n_subjects)]
    expected = {i: s for s, i in plan}

    def load(index: int) -> dict[str, torch.Tensor]:
        sample = generate_sample(model, index, seed, dist, scene, n_subjects, image_size)
        if int(sample["subject_id"]) != expected[index]:
            raise RuntimeError(f"synthetic sample {index} shows subject {int(sample['subject_id'])}, not "
                               f"{expected[index]}: mmstn.data.synthetic changed how it draws subjects")
        return sample

    return SubjectSource(plan, load, {int(s): f"subject {int(s)}" for s in subjects}, batch_size)


def true_flattened_texture(grid_model, subject_id: int, seed: int = 0, dist=None, scene=None) -> torch.Tensor:
    """The true albedo of a synthetic subject on the G×G grid, (3, G, G) in [0, 1].

    ``grid_model.albedo(β)`` (the grid model's resampled texture basis) clipped to [0, 1] as the renderer
    does, arranged row-major: cell (row, col) = grid vertex row·G + col. Unlit: a flattened image is this
    times the shading, so compare with ``match_gain`` (:func:`texture_psnr`).
    """
    from mmstn.data.synthetic import SceneDistribution, ThetaDistribution, subject_parameters

    dist = ThetaDistribution() if dist is None else dist
    scene = SceneDistribution() if scene is None else scene
    _, beta = subject_parameters(grid_model, int(subject_id), int(seed), dist, scene)
    albedo = grid_model.albedo(torch.as_tensor(beta, dtype=grid_model.dtype)).clamp(0.0, 1.0)
    g = math.isqrt(grid_model.n_vertices)
    if g * g != grid_model.n_vertices:
        raise ShapeError(f"model {grid_model.name!r} with {grid_model.n_vertices} vertices is not a grid model")
    return albedo.reshape(g, g, 3).permute(2, 0, 1).float().contiguous()


# ---------------------------------------------------------------------------------------------- real photos
def _crop_source(dataset, names: Mapping[int, str], subjects: Sequence[int] | None, n_images: int | None,
                 batch_size: int, min_landmarks: int) -> SubjectSource:
    groups = dataset.subject_indices()
    chosen = [s for s in groups if s >= 0] if subjects is None else [int(s) for s in subjects]
    missing = [s for s in chosen if s not in groups]
    if missing:
        raise ValueError(f"no faces of subject(s) {missing} (available: {sorted(k for k in groups if k >= 0)[:20]} …)")
    plan = [(s, int(i)) for s in chosen for i in groups[s][:n_images]]
    return SubjectSource(plan, dataset.load, {s: names.get(s, f"subject {s}") for s in chosen}, batch_size,
                         min_landmarks, padded=True)


def folder_subjects(root: str | Path, landmarks: str | Path | None = "landmarks_dlib68.json", *,
                    subjects: Sequence[int | str] | None = None, n_images: int | None = None, crop=None,
                    batch_size: int = 16, min_landmarks: int = 3) -> SubjectSource:
    """Your own photos: ``root/<person>/*.jpg`` with a landmarks JSON (:class:`mmstn.data.folder.FolderFaces`).

    Args:
        root: the folder, one subfolder per person.
        landmarks: the JSON (path, or name inside ``root``) with 68- or 21-point landmarks per photo; write
            one with :func:`mmstn.detect.detect_folder` when you have none.
        subjects: person names or ids (default: everyone).
        n_images: at most this many photos per person (the first in file order).
        crop: :class:`~mmstn.data.crop.CropRule` (default: the loader's).
        batch_size: images per batch.
        min_landmarks: photos with fewer visible landmarks are skipped (counted in ``n_skipped``).
    """
    from mmstn.data.folder import FolderFaces

    ds = FolderFaces(root, landmarks=landmarks, crop=crop)
    names = dict(enumerate(ds.subject_names))
    ids = None if subjects is None else _resolve_subjects(subjects, names)
    return _crop_source(ds, names, ids, n_images, batch_size, min_landmarks)


def read_subject_names(path: str | Path) -> dict[int, str]:
    """A subject-name list: one ``id,name`` (or ``id<TAB>name`` / ``id name``) per line; ``#`` comments.

    Returns:
        id → name.
    """
    out: dict[int, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for sep in (",", "\t", " "):
            if sep in line:
                head, name = line.split(sep, 1)
                break
        else:
            continue
        try:
            out[int(head.strip())] = name.strip().strip('"')
        except ValueError:
            continue  # a header line
    return out


def _resolve_subjects(subjects: Sequence[int | str], names: Mapping[int, str]) -> list[int]:
    by_name = {v.lower().replace("_", " "): k for k, v in names.items()}
    out = []
    for s in subjects:
        if isinstance(s, (int, np.integer)):
            out.append(int(s))
            continue
        key = str(s).strip().lower().replace("_", " ")
        if key not in by_name:
            raise ValueError(f"unknown subject name {s!r}; known names start with {sorted(names.values())[:10]}")
        out.append(by_name[key])
    return out


def umdfaces_subjects(source: str | Path | Sequence[str | Path] | None = None,
                      subjects: Sequence[int | str] | None = None, *,
                      names: Mapping[int, str] | str | Path | None = None, n_images: int | None = None,
                      crop=None, batch_size: int = 16, min_landmarks: int = 3) -> SubjectSource:
    """Chosen UMDFaces subjects, cropped as :class:`mmstn.data.umdfaces.UMDFaces` does (keypoint box ×1.87).

    Args:
        source: a batch CSV, several, or a folder of them (default ``data/umdfaces``).
        subjects: SUBJECT_ID values, or names (resolved through ``names``); default: every subject.
        names: id → name, or a name-list file (:func:`read_subject_names`); by default a subject's name is
            the first folder of its FILE paths when the batch stores photos in per-person folders.
        n_images: at most this many faces per subject (the first in CSV order).
        crop: :class:`~mmstn.data.crop.CropRule` (default: the loader's).
        batch_size: images per batch.
        min_landmarks: faces with fewer visible keypoints are skipped.
    """
    from mmstn.data.umdfaces import UMDFaces

    ds = UMDFaces(source, crop=crop)
    if isinstance(names, (str, Path)):
        names = read_subject_names(names)
    if names is None:
        names = {}
        for f in ds.faces:
            parent = f.image_path.parent.name
            if f.subject_id not in names and parent and not parent.lower().startswith("umdfaces"):
                names[f.subject_id] = parent.replace("_", " ")
    ids = None if subjects is None else _resolve_subjects(subjects, names)
    return _crop_source(ds, names, ids, n_images, batch_size, min_landmarks)


# ================================================================================================ pipeline
@dataclass
class AveragingResult:
    """What :func:`average_subjects` computed.

    Attributes:
        averagers: G → :class:`SubjectAverager` of the outputs of the STN with that grid size.
        names: subject id → name.
        theta: subject id → (n, 6 + D) the θ used for its images (in the STNs' convention).
        keys: subject id → the images' keys.
        examples: subject id → up to ``keep_examples`` input crops (3, H, W).
        estimator: which θ estimator ran.
        seconds: wall time.
        n_skipped: images the source dropped.
    """

    averagers: dict[int, SubjectAverager]
    names: dict[int, str]
    theta: dict[int, torch.Tensor]
    keys: dict[int, list[str]]
    examples: dict[int, list[torch.Tensor]]
    estimator: str
    seconds: float
    n_skipped: int = 0

    def averages(self, grid_size: int | None = None) -> dict[int, SubjectAverage]:
        """subject id → :class:`SubjectAverage` at ``grid_size`` (default: the first STN's)."""
        g = next(iter(self.averagers)) if grid_size is None else int(grid_size)
        return self.averagers[g].results(self.names)

    @property
    def n_images(self) -> int:
        """Images averaged."""
        return sum(len(k) for k in self.keys.values())


def _content_mask(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """(B, 1, G, G) 1 where the bilinear sample of every image reads no exactly-black pixel (nor outside it)."""
    from mmstn.layers.sampler import bilinear_sample

    content = (images.amax(1, keepdim=True) > 0).to(images.dtype)
    return (bilinear_sample(content, grid, "native") > 0.999).to(images.dtype)


def _true_theta(batch: FaceBatch, stn: STN3DMM) -> torch.Tensor:
    if batch.theta is None:
        raise ValueError("estimator=None uses the true θ, which only synthetic sources have; pass an estimator")
    # the synthetic θ has s = exp(logs)
    return Theta.from_tensor(batch.theta.clone(), ThetaConvention("exp")).as_tensor_for(stn.config)


def average_subjects(stns: STN3DMM | Sequence[STN3DMM], source: Iterable[FaceBatch],
                     estimator: Estimator | None = None, *, snapshots: Sequence[int] = (), keep: bool = False,
                     keep_examples: int = 0, names: Mapping[int, str] | None = None,
                     exclude_black: bool | None = None, progress: bool = False) -> AveragingResult:
    """Estimate θ for every image, flatten it with each STN, and average per subject.

    Args:
        stns: one STN or several (e.g. G = 224 and G = 112) sharing the model and scale base: θ is estimated
            once and flattened by each.
        source: :class:`FaceBatch` es (a :class:`SubjectSource`).
        estimator: θ estimator (:data:`Estimator`); None: the batches' true θ (synthetic sources only).
        snapshots: record averages after these numbers of images (see :class:`SubjectAverager`).
        keep: store every output (uint8) for widgets and :func:`correspondence_score`.
        keep_examples: keep this many input crops per subject (for Fig. 7).
        names: subject id → name (default: the source's ``names``).
        exclude_black: also mask out cells whose sample touches an exactly-black pixel (the padding of a crop
            that reaches outside its photo; the authors' loss layers treat zero pixels the same way). Default:
            the source's ``padded`` flag (True for photo folders and UMDFaces).
        progress: show a ``tqdm`` bar.

    Returns:
        :class:`AveragingResult`.
    """
    stn_list = [stns] if isinstance(stns, STN3DMM) else list(stns)
    if not stn_list:
        raise ValueError("average_subjects needs at least one STN")
    averagers = {int(s.generator.grid_size): SubjectAverager(s.generator.grid_size, 3, snapshots, keep)
                 for s in stn_list}
    names = dict(names if names is not None else getattr(source, "names", {}))
    thetas: dict[int, list[torch.Tensor]] = {}
    keys: dict[int, list[str]] = {}
    examples: dict[int, list[torch.Tensor]] = {}
    if exclude_black is None:
        exclude_black = bool(getattr(source, "padded", False))
    t0 = time.perf_counter()
    iterator: Iterable[FaceBatch] = source
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(source, desc="averaging", unit="batch")
    for batch in iterator:
        if estimator is None:
            theta = _true_theta(batch, stn_list[0])
        else:
            theta = estimator(batch.images, batch.landmarks, batch.vis).detach().float()
        with torch.no_grad():
            for stn in stn_list:
                dtype = stn.generator.morphable.mean.dtype
                out = stn(batch.images.to(dtype), theta.to(dtype))
                mask = out.mask
                if exclude_black:
                    mask = mask * _content_mask(batch.images.to(dtype), out.grid)
                averagers[int(stn.generator.grid_size)].add(out.flattened, mask, batch.subject_ids)
        for k, s in enumerate(batch.subject_ids.tolist()):
            thetas.setdefault(s, []).append(theta[k])
            keys.setdefault(s, []).append(batch.keys[k] if k < len(batch.keys) else "")
            ex = examples.setdefault(s, [])
            if len(ex) < keep_examples:
                ex.append(batch.images[k].clone())
    for s in keys:
        names.setdefault(s, f"subject {s}")
    described = "true θ (synthetic ground truth)" if estimator is None else getattr(
        estimator, "description", getattr(estimator, "__name__", type(estimator).__name__))
    return AveragingResult(averagers, names, {s: torch.stack(v) for s, v in thetas.items()}, keys, examples,
                           str(described), time.perf_counter() - t0, int(getattr(source, "n_skipped", 0)))


# ================================================================================================ scores
def texture_psnr(average: torch.Tensor, true: torch.Tensor, seen: torch.Tensor | None = None, *,
                 match_gain: bool = True, region: Literal["all", "seen"] = "all", peak: float = 1.0) -> float:
    """PSNR (dB) of an average (C, G, G) against the true flattened texture (C, G, G).

    Args:
        average: the average (0 where unseen).
        true: the true albedo on the grid (:func:`true_flattened_texture`).
        seen: (G, G) cells seen by some image (default: where ``average`` is non-zero).
        match_gain: first scale each channel of the average by the least-squares gain over the seen cells:
            the images are lit (albedo × shading × light colour), so even a perfect average is the albedo
            times the mean shading.
        region: ``"all"`` cells (unseen ones count with their 0: coverage matters) or only ``"seen"`` ones.
        peak: the signal's peak value.
    """
    a, t = average.detach().double(), true.detach().double()
    if a.shape != t.shape or a.ndim != 3:
        raise ShapeError(f"average {tuple(a.shape)} and true {tuple(t.shape)} must both be (C, G, G)")
    s = (a.abs().sum(0) > 0) if seen is None else seen.bool()
    if match_gain and bool(s.any()):
        num = (a * t)[:, s].sum(1)
        den = (a * a)[:, s].sum(1)
        gain = torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.ones_like(den))
        a = a * gain[:, None, None]
    err = (a - t) ** 2
    mse = float(err.mean()) if region == "all" else (float(err[:, s].mean()) if bool(s.any()) else float("inf"))
    return float("inf") if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def psnr_curve(flattened: torch.Tensor, mask: torch.Tensor, true: torch.Tensor, ns: Sequence[int], *,
               match_gain: bool = True, region: Literal["all", "seen"] = "all") -> np.ndarray:
    """PSNR (dB) of the visibility-normalised average of the first n outputs, for each n in ``ns``.

    Args:
        flattened: (N, C, G, G) one subject's outputs, in the order they arrive; mask: (N, 1, G, G).
        true: (C, G, G) the subject's true flattened texture.
        ns: image counts (each ≤ N).

    Returns:
        float64 array (len(ns),).
    """
    w, m = _as_batch(flattened, mask)
    acc = AverageAccumulator(w.shape[-1], w.shape[1])
    out, done = [], 0
    for n in ns:
        if not 0 < n <= w.shape[0]:
            raise ValueError(f"n={n} must lie in [1, {w.shape[0]}]")
        if n < done:
            acc = AverageAccumulator(w.shape[-1], w.shape[1])
            done = 0
        acc.add(w[done:n], m[done:n])
        done = n
        out.append(texture_psnr(acc.average, true, acc.seen, match_gain=match_gain, region=region))
    return np.asarray(out, dtype=np.float64)


@dataclass
class CorrespondenceScore:
    """Do outputs of the same person agree more than outputs of different people?

    Attributes:
        within: mean RMS difference of pairs of the same subject, over the cells both saw.
        between: the same for pairs of different subjects.
        ratio: within / between (< 1: the flattening puts the same features in the same cells).
        nn_accuracy: fraction of outputs whose nearest other output (by that distance) shows the same subject.
        distances: (N, N) the pairwise RMS differences (NaN on the diagonal and for pairs with too little
            overlap).
        overlap: (N, N) fraction of cells seen by both.
        subject_ids: (N,).
        n_within, n_between: pairs counted.
    """

    within: float
    between: float
    ratio: float
    nn_accuracy: float
    distances: np.ndarray
    overlap: np.ndarray
    subject_ids: np.ndarray
    n_within: int
    n_between: int

    def per_subject(self) -> dict[int, tuple[float, float]]:
        """subject id → (mean within distance, mean distance to other subjects)."""
        out = {}
        ids = self.subject_ids
        for s in np.unique(ids):
            rows = ids == s
            d = self.distances[rows]
            same = d[:, rows]
            other = d[:, ~rows]
            out[int(s)] = (float(np.nanmean(same)) if np.isfinite(same).any() else float("nan"),
                           float(np.nanmean(other)) if np.isfinite(other).any() else float("nan"))
        return out


def correspondence_score(flattened: torch.Tensor, mask: torch.Tensor, subject_ids: torch.Tensor | Sequence[int],
                         *, normalise: Literal["none", "standardise", "chromaticity"] = "none",
                         min_overlap: float = 0.05) -> CorrespondenceScore:
    """Within- vs between-subject distances of flattened outputs, over the cells visible in both.

    For outputs i, j with overlap O = M_i M_j: d_ij = sqrt(Σ_O ‖W_i − W_j‖² / (C Σ O)), computed for all
    pairs at once with three matrix products (float64).

    Args:
        flattened: (N, C, G, G); mask: (N, 1, G, G); subject_ids: (N,).
        normalise: compare the outputs as they are (``"none"``), standardised over each one's visible cells
            (``"standardise"``: zero mean, unit variance per image, discounting exposure and contrast; for
            photos), or as chromaticities W_c / Σ_c W_c (``"chromaticity"``: discounts white-light shading
            entirely, keeps colour; useless on grey photos).
        min_overlap: pairs that share less than this fraction of the grid are left out.

    Returns:
        :class:`CorrespondenceScore`.
    """
    w, m = _as_batch(flattened.detach().cpu(), mask.detach().cpu())
    w, m = w.double(), (m > 0.5).double()
    ids = np.asarray(torch.as_tensor(subject_ids).reshape(-1).tolist(), dtype=np.int64)
    n, c, g, _ = w.shape
    if len(ids) != n:
        raise ShapeError(f"{len(ids)} subject ids for {n} outputs")
    if normalise not in ("none", "standardise", "chromaticity"):
        raise ValueError(f"normalise={normalise!r}: use 'none', 'standardise' or 'chromaticity'")
    if normalise == "chromaticity":
        w = w / w.sum(1, keepdim=True).clamp(min=1e-3)
    elif normalise == "standardise":
        cnt = (m.sum((1, 2, 3)) * c).clamp(min=1)
        mean = (w * m).sum((1, 2, 3)) / cnt
        var = (((w - mean[:, None, None, None]) * m) ** 2).sum((1, 2, 3)) / cnt
        w = (w - mean[:, None, None, None]) / var.clamp(min=1e-12).sqrt()[:, None, None, None]
    b = m.reshape(n, -1)  # (N, G²)
    wm = (w * m).reshape(n, c, -1)  # (N, C, G²)
    sq = (wm**2).sum(1)  # (N, G²): Σ_c W² M
    cross = wm.reshape(n, -1) @ wm.reshape(n, -1).T  # Σ M_i M_j W_i·W_j
    ssd = sq @ b.T + b @ sq.T - 2.0 * cross  # Σ O (‖W_i‖² + ‖W_j‖² − 2 W_i·W_j)
    ov = b @ b.T
    frac = (ov / (g * g)).numpy()
    d = torch.sqrt((ssd / (c * ov.clamp(min=1))).clamp(min=0)).numpy()
    valid = (frac >= min_overlap) & ~np.eye(n, dtype=bool)
    d = np.where(valid, d, np.nan)
    within, between, ratio, nn_accuracy, n_within, n_between = summarise_distances(d, ids)
    return CorrespondenceScore(
        within=within,
        between=between,
        ratio=ratio,
        nn_accuracy=nn_accuracy,
        distances=d,
        overlap=frac,
        subject_ids=ids,
        n_within=n_within,
        n_between=n_between,
    )
