"""Exceptions with messages that name the offending file or argument and say how to fix it."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DATA_README", "ModelFileError", "ShapeError", "check_finite"]

#: Where users are told to look when a licence-gated file is missing or unreadable.
DATA_README = "data/README.md"


class ModelFileError(ValueError):
    """A morphable-model (or landmark / UV) file is missing, truncated or not in the expected format."""

    def __init__(self, path: str | Path, problem: str, hint: str | None = None) -> None:
        self.path = Path(path)
        msg = f"{self.path}: {problem}"
        msg += f". {hint}" if hint else f". See {DATA_README} for where to get this file and where to put it."
        super().__init__(msg)


class ShapeError(ValueError):
    """A tensor argument has the wrong shape."""


def check_finite(name: str, value) -> None:
    """Raise ``ValueError`` naming ``name`` if a tensor/array holds NaN or inf."""
    import numpy as np
    import torch

    ok = bool(torch.isfinite(value).all()) if isinstance(value, torch.Tensor) else bool(
        np.isfinite(np.asarray(value)).all()
    )
    if not ok:
        raise ValueError(f"{name} contains NaN or inf values; check the inputs that produced it.")
