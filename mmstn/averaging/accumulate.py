"""Visibility-normalised averages of flattened faces: one stream or one accumulator per subject.

    A = Σ_i W_i · M_i / Σ_i M_i   per cell; 0 and ``seen = False`` where Σ M = 0.

Shapes: W (B, C, G, G), M (B, 1, G, G) in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from mmstn.errors import ShapeError


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
