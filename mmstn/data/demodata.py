"""The authors' ``util/demodata.mat``: six AFLW face crops with the 21 landmarks (docs/conventions.md §10.6).

Contents: ``Images`` single 224 × 224 × 3 × 6, RGB 0..255; ``Labels`` single 1 × 2 × 21 × 6, (x, y) with
x the 1-based column and y pointing up (row = 225 − y) — already our label frame, so the landmarks are
returned unchanged. All 21 landmarks are annotated in the six crops; a landmark stored as (0, 0) would be
"missing" (visibility 0), the authors' imdb convention. MATLAB v5 files are read with ``scipy.io.loadmat``,
v7.3 (HDF5) copies with ``h5py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mmstn.data.errors import DataFormatError
from mmstn.runtime import data_dir

__all__ = ["DemoData", "DemoDataset", "default_demodata_path", "load_demodata"]


@dataclass
class DemoData:
    """The demo crops.

    Attributes:
        images: float32 (B, 3, 224, 224), RGB in [0, 1].
        landmarks: float32 (B, 21, 2), label frame.
        visible: float32 (B, 21), 1 where annotated.
        path: the file read.
    """

    images: torch.Tensor
    landmarks: torch.Tensor
    visible: torch.Tensor
    path: Path


def default_demodata_path() -> Path:
    """``<data>/3dmmasstn/demodata.mat`` (:func:`mmstn.runtime.data_dir`)."""
    return data_dir() / "3dmmasstn" / "demodata.mat"


def _read_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io

    try:
        d = scipy.io.loadmat(path)
        return np.asarray(d["Images"]), np.asarray(d["Labels"])
    except KeyError as exc:
        raise DataFormatError(
            path,
            f"no variable {exc.args[0]!r}",
            hint="Expected the authors' demodata.mat with 'Images' (224×224×3×N) and 'Labels' (1×2×21×N)",
        ) from None
    except NotImplementedError:  # MATLAB v7.3: HDF5
        import h5py

        with h5py.File(path, "r") as f:
            for key in ("Images", "Labels"):
                if key not in f:
                    raise DataFormatError(path, f"no variable {key!r}") from None
            # h5py sees MATLAB arrays with their dimensions reversed
            return np.asarray(f["Images"]).transpose(), np.asarray(f["Labels"]).transpose()
    except (ValueError, OSError, TypeError) as exc:
        raise DataFormatError(path, f"not a readable MAT-file ({type(exc).__name__}: {exc})") from exc


def load_demodata(path: str | Path | None = None) -> DemoData:
    """Read ``demodata.mat`` → :class:`DemoData` (module docstring: conventions).

    Raises:
        DataFormatError: a missing file, missing variables, or arrays of unexpected shape.
    """
    path = default_demodata_path() if path is None else Path(path)
    if path.is_dir():
        raise DataFormatError(path, "is a folder; expected the authors' demodata.mat file")
    if not path.is_file():
        raise DataFormatError(
            path,
            "no such file",
            hint="It is util/demodata.mat of the authors' repository "
            "anilbas/3DMMasSTN; put it at data/3dmmasstn/demodata.mat",
        )
    images, labels = _read_arrays(path)
    for name, value in (("Images", images), ("Labels", labels)):
        if not np.issubdtype(value.dtype, np.number):
            raise DataFormatError(path, f"variable {name!r} is not numeric (dtype {value.dtype})")
        if not np.isfinite(value).all():
            raise DataFormatError(
                path,
                f"variable {name!r} holds {int((~np.isfinite(value)).sum())} NaN or inf values",
                hint="The file is damaged; take util/demodata.mat from the authors' repository again",
            )
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[2] != 3:
        raise DataFormatError(path, f"Images has shape {images.shape}; expected H × W × 3 × N")
    n = images.shape[3]
    lab = np.asarray(labels)
    while lab.ndim > 2 and lab.shape[0] == 1:  # 1 × 2 × 21 × N → 2 × 21 × N
        lab = lab[0]
    if lab.shape == (2, 21) and n == 1:  # MATLAB drops the trailing singleton of a single image
        lab = lab[..., None]
    if lab.shape != (2, 21, n):
        raise DataFormatError(path, f"Labels has shape {labels.shape}; expected 1 × 2 × 21 × {n}")
    img = torch.from_numpy(np.ascontiguousarray(images.transpose(3, 2, 0, 1), dtype=np.float32)) / 255.0
    lm = np.ascontiguousarray(lab.transpose(2, 1, 0), dtype=np.float32)  # (N, 21, 2)
    vis = (~(lm == 0).all(axis=2)).astype(np.float32)
    return DemoData(img.clamp_(0.0, 1.0), torch.from_numpy(lm), torch.from_numpy(vis), path)


class DemoDataset(torch.utils.data.Dataset):
    """The demo crops as a dataset: dicts with ``image``, ``landmarks21``, ``vis21``, ``subject_id`` (−1)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.data = load_demodata(path)

    def __len__(self) -> int:
        return int(self.data.images.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "image": self.data.images[i],
            "landmarks21": self.data.landmarks[i],
            "vis21": self.data.visible[i],
            "subject_id": torch.tensor(-1, dtype=torch.int64),
        }
