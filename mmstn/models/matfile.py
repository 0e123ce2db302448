"""MATLAB MAT-files, v5 and v7.3, read into NumPy arrays with their MATLAB sizes.

v5 files are read with :func:`scipy.io.loadmat`. v7.3 files are HDF5 files with a 512-byte MATLAB header in
the user block and every array stored transposed (column-major MATLAB order seen by a row-major reader);
they are read with h5py and transposed back. Used by every loader of a ``.mat`` format (BFM 2009, 3DDFA,
the authors' UV map).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from mmstn.errors import ModelFileError, check_file

__all__ = ["read_mat_variables"]


def _is_hdf5(path: Path) -> bool:
    """True when ``path`` is an HDF5 file (MATLAB v7.3 keeps the HDF5 signature at byte 512)."""
    import h5py

    try:
        return bool(h5py.is_hdf5(str(path)))
    except OSError:
        return False


def read_mat_variables(
    path: str | Path, names: Iterable[str], *, optional: Iterable[str] = ()
) -> dict[str, np.ndarray]:
    """Read numeric variables from a MATLAB v5 or v7.3 MAT-file, with their MATLAB sizes.

    Args:
        path: the ``.mat`` file.
        names: variables that must be present.
        optional: variables returned only when present.

    Returns:
        ``{name: array}``; every array has at least two dimensions, as in MATLAB (a 3N×1 vector stays
        3N×1), and keeps the stored dtype (``single`` → float32, ``uint16`` → uint16, ...).

    Raises:
        ModelFileError: the file is missing, a folder, empty, unreadable or truncated, or lacks a required
            variable.
    """
    path = Path(path)
    names = list(names)
    optional = [n for n in optional if n not in names]
    check_file(path, "MAT-file")
    if _is_hdf5(path):
        out = _read_mat73(path, names + optional)
    else:
        out = _read_mat5(path, names + optional)
    missing = [n for n in names if n not in out]
    if missing:
        raise ModelFileError(
            path, f"missing MATLAB variable(s) {', '.join(map(repr, missing))}; found {sorted(out) or 'none'}"
        )
    return out


def _read_mat5(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    import scipy.io

    try:
        raw = scipy.io.loadmat(str(path), variable_names=names, squeeze_me=False, chars_as_strings=False)
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError, MatReadError ... on bad files
        raise ModelFileError(
            path, f"not a readable MATLAB v5 MAT-file, or truncated ({type(exc).__name__}: {exc})"
        ) from exc
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name in raw:
            value = np.asarray(raw[name])
            if value.dtype == object or not np.issubdtype(value.dtype, np.number):
                raise ModelFileError(path, f"variable {name!r} is not a numeric array (MATLAB type {value.dtype})")
            out[name] = value
    return out


def _read_mat73(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    import h5py

    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(str(path), "r") as f:
            for name in names:
                if name not in f:
                    continue
                node = f[name]
                if not isinstance(node, h5py.Dataset):
                    raise ModelFileError(path, f"variable {name!r} is a MATLAB struct/cell, expected a numeric array")
                value = np.asarray(node[()])
                if not np.issubdtype(value.dtype, np.number):
                    raise ModelFileError(path, f"variable {name!r} is not numeric (HDF5 dtype {value.dtype})")
                # MATLAB writes column-major, so h5py sees the reversed shape: transpose back.
                value = value.T
                if value.ndim == 1:
                    value = value[:, None]
                out[name] = value
    except ModelFileError:
        raise
    except Exception as exc:  # h5py raises OSError/KeyError/RuntimeError on damaged files
        raise ModelFileError(
            path, f"not a readable MATLAB v7.3 (HDF5) file, or truncated ({type(exc).__name__}: {exc})"
        ) from exc
    return out
