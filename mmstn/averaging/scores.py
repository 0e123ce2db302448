"""Scores of averages: PSNR against the true flattened texture of a synthetic subject, and the correspondence
score (same person vs. different people, over the cells both saw).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from mmstn.averaging.accumulate import AverageAccumulator, _as_batch
from mmstn.errors import ShapeError
from mmstn.scores import summarise_distances


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
