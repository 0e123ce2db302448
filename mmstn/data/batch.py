"""Batches of sample dicts: stacking them, and appending their horizontal flips (the siamese pairs)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mmstn.data.flip import flip_image, flip_landmarks

__all__ = ["collate", "mirrored_batch"]


def collate(samples: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack a list of sample dicts key by key (keys present in every sample)."""
    keys = [k for k in samples[0] if all(k in s for s in samples)]
    return {k: torch.stack([torch.as_tensor(s[k]) for s in samples]) for k in keys}


def mirrored_batch(batch: dict[str, torch.Tensor], mirror: bool = True) -> dict[str, torch.Tensor]:
    """Append the horizontal flip of every image (and flipped labels) to a collated batch.

    Args:
        batch: ``image`` (B, 3, S, S), ``landmarks21`` (B, 21, 2), ``vis21`` (B, 21).
        mirror: when False the batch is returned as is.

    Returns:
        the same keys with 2B rows: rows B..2B−1 are the flips of rows 0..B−1 (``theta``/``subject_id``
        are not mirrored and keep B rows).
    """
    if not mirror:
        return dict(batch)
    img = batch["image"]
    lm, vis = flip_landmarks(batch["landmarks21"], batch["vis21"], img.shape[-1])
    out = dict(batch)
    out["image"] = torch.cat([img, flip_image(img)])
    out["landmarks21"] = torch.cat([batch["landmarks21"], lm])
    out["vis21"] = torch.cat([batch["vis21"], vis])  # type: ignore[list-item]
    return out
