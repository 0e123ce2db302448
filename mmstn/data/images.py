"""Image I/O and conversions between the storage layouts used by the loaders.

The package convention: an image is a float32 tensor of shape (3, H, W), RGB in [0, 1]. Files are read with
Pillow (grey and palette images are converted to RGB, alpha is dropped); arrays on disk are uint8
(H, W, 3) or (N, H, W, 3).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmstn.data.errors import DataFormatError

__all__ = ["IMAGE_EXTENSIONS", "chw_float_to_hwc_uint8", "hwc_uint8_to_chw_float", "open_rgb", "read_image"]

#: File name endings treated as images by the folder loaders (lower case).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def open_rgb(path: str | Path):
    """Open an image file as a fully decoded RGB ``PIL.Image``.

    Raises:
        DataFormatError: the file is missing or cannot be decoded (the message names the file).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "no such image file")
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataFormatError(path, f"cannot decode the image ({type(exc).__name__}: {exc})") from exc


def hwc_uint8_to_chw_float(array: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) or (H, W) → float32 tensor (3, H, W) in [0, 1]."""
    a = np.asarray(array)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) or (H, W) image array, got shape {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).to(torch.float32).div_(255.0)


def chw_float_to_hwc_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """float (3, H, W) in [0, 1] → uint8 (H, W, 3), rounded to nearest and clipped."""
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.ndim != 3 or a.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image, got shape {a.shape}")
    return np.clip(np.rint(a.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)


def read_image(path: str | Path) -> torch.Tensor:
    """Read an image file → float32 tensor (3, H, W), RGB in [0, 1]."""
    return hwc_uint8_to_chw_float(np.asarray(open_rgb(path)))
