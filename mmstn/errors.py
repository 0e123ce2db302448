"""Exceptions with messages that name the offending file or argument and say how to fix it."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DATA_README", "ModelFileError", "ShapeError", "check_file", "check_finite", "check_finite_field"]

#: Where users are told to look when a licence-gated file is missing or unreadable.
DATA_README = "data/README.md"


class ModelFileError(ValueError):
    """A morphable-model (or landmark / UV) file is missing, truncated or not in the expected format."""

    def __init__(self, path: str | Path, problem: str, hint: str | None = None) -> None:
        self.path = Path(path)
        msg = f"{self.path}: {problem}"
        msg += "" if msg.endswith((".", "?", "!")) else "."  # one full stop, also after a question
        msg += f" {hint}" if hint else f" See {DATA_README} for where to get this file and where to put it."
        super().__init__(msg)


class ShapeError(ValueError):
    """A tensor argument has the wrong shape."""


def check_finite(name: str, value) -> None:
    """Raise ``ValueError`` naming ``name`` if a tensor/array holds NaN or inf."""
    import numpy as np
    import torch

    ok = (
        bool(torch.isfinite(value).all())
        if isinstance(value, torch.Tensor)
        else bool(np.isfinite(np.asarray(value)).all())
    )
    if not ok:
        raise ValueError(f"{name} contains NaN or inf values; check the inputs that produced it.")


def check_file(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` if it is a non-empty regular file, else raise :class:`ModelFileError` saying which it is.

    A folder or an empty file is reported as such rather than as "no such file", so the fix is obvious.
    """
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(path, f"is a folder; expected the {what} itself", f"Pass the path of the {what} inside it")
    if not path.is_file():
        raise ModelFileError(path, "no such file")
    if path.stat().st_size == 0:
        raise ModelFileError(path, f"the {what} is empty (0 bytes); an interrupted download or copy?")
    return path


def check_finite_field(path: str | Path, name: str, value) -> None:
    """Raise :class:`ModelFileError` naming the file and the variable ``name`` if ``value`` holds NaN or inf.

    Non-numeric (e.g. integer) arrays are always finite and pass.
    """
    import numpy as np

    a = np.asarray(value)
    if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.complexfloating):
        return
    bad = ~np.isfinite(a)
    if bad.any():
        first = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), a.shape)) if a.ndim else ()
        n_nan = int(np.isnan(a).sum())
        raise ModelFileError(
            path,
            f"variable {name!r} holds {n_nan} NaN and {int(bad.sum()) - n_nan} inf values "
            f"(first at index {first} of size {a.shape})",
            f"The file is damaged or was written wrongly; download or export it again (see {DATA_README})",
        )
