"""Deterministic train/validation split by a hash of a stable key (e.g. an AFLW ``face_id``).

The split does not depend on the order in which faces are listed, on which images are present, or on
the platform: a face is in the validation set when the first 8 bytes of SHA-1(``"{salt}:{key}"``), read as
a big-endian integer and divided by 2⁶⁴, fall below ``val_fraction``.
"""

from __future__ import annotations

import hashlib
from typing import Literal

__all__ = ["Split", "hash_fraction", "split_of"]

Split = Literal["train", "val", "all"]


def hash_fraction(key: object, salt: str = "mmstn") -> float:
    """A number in [0, 1) determined by ``str(key)`` and ``salt``, uniform over keys."""
    digest = hashlib.sha1(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(key: object, val_fraction: float = 0.1, salt: str = "mmstn") -> Literal["train", "val"]:
    """``"val"`` for about ``val_fraction`` of the keys, ``"train"`` for the rest."""
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction={val_fraction} must lie in [0, 1]")
    return "val" if hash_fraction(key, salt) < val_fraction else "train"
