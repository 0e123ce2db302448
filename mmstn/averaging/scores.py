"""Scores of averages: PSNR against the true flattened texture of a synthetic subject.

The correspondence score (same person vs. different people, over the cells both saw) is
:func:`mmstn.scores.correspondence_score` (re-exported by :mod:`mmstn.averaging`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from mmstn.averaging.accumulate import AverageAccumulator, _as_batch
from mmstn.errors import ShapeError


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
