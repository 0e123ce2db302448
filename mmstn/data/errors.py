"""Errors of the data loaders: each names the file (and row or entry) at fault and says how to fix it."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DataFormatError", "DatasetFolderError", "require_file"]


class DataFormatError(ValueError):
    """An annotation or image file is missing, malformed or not in the expected upstream format.

    Attributes:
        path: the file at fault.
        row: the row, line or entry (1-based line number, CSV data row, JSON key, database id), or ``None``.
    """

    def __init__(self, path: str | Path, problem: str, row: int | str | None = None, hint: str | None = None) -> None:
        self.path = Path(path)
        self.row = row
        where = f"{self.path}" if row is None else f"{self.path}, {_row_text(row)}"
        msg = f"{where}: {problem}"
        if hint:
            msg += f". {hint}"
        super().__init__(msg)


class DatasetFolderError(ValueError):
    """A dataset folder (e.g. a generated synthetic dataset) is missing, incomplete or inconsistent."""

    def __init__(self, folder: str | Path, problem: str, hint: str) -> None:
        self.folder = Path(folder)
        super().__init__(f"{self.folder}: {problem}. {hint}")


def require_file(path: str | Path, what: str, hint: str | None = None) -> Path:
    """``path`` as a :class:`~pathlib.Path` if it is a file; else :class:`DataFormatError` saying whether it is
    missing or a folder (a folder passed for a file is an easy slip that "no such file" would hide).

    Args:
        path: the file.
        what: what the file should be, for the message ("the aflw.sqlite file", "a UMDFaces batch CSV").
        hint: how to get the file, appended when it is missing.
    """
    path = Path(path)
    if path.is_dir():
        raise DataFormatError(path, f"is a folder; expected {what}")
    if not path.is_file():
        raise DataFormatError(path, "no such file", hint=hint)
    return path


def _row_text(row: int | str) -> str:
    if isinstance(row, int):
        return f"row {row}"
    return str(row)
