"""Image I/O and conversions between the storage layouts used by the loaders.

The package convention: an image is a float32 tensor of shape (3, H, W), RGB in [0, 1]. Files are read with
Pillow, by :func:`open_image`, the one reader every loader uses:

* 8-bit images: palette (``P``, ``PA``), grey (``L``, ``LA``, ``1``), ``RGBA``, ``CMYK``, ``YCbCr`` … are
  converted to RGB (alpha is dropped: the colour stored under transparent pixels is kept as is);
* 16-bit grey (``I;16``, ``I;16B``, ``I;16L``, and ``I`` holding values in 0..65535, which is how Pillow
  opens 16-bit PNGs) is divided by 65535, 32-bit integer grey (``I`` above 65535) by 2³¹ − 1, and kept in
  float (mode ``F``) so no precision is lost; float grey (``F``) must already lie in [0, 1];
* 16-bit colour files are reduced to 8 bits per channel by Pillow itself and read as RGB.

A file that cannot be decoded, or is too large for Pillow's decompression-bomb guard, raises
:class:`~mmstn.data.errors.DataFormatError` naming the file. Arrays on disk are uint8 (H, W, 3) or (N, H, W, 3).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmstn.data.errors import DataFormatError

__all__ = [
    "IMAGE_EXTENSIONS",
    "chw_float_to_hwc_uint8",
    "hwc_uint8_to_chw_float",
    "open_image",
    "open_rgb",
    "pil_to_chw_float",
    "read_image",
]

#: File name endings treated as images by the folder loaders (lower case).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")

_HINT = "Re-download or re-export the photo, or remove it from the dataset"
_MAX_16BIT = 65535.0
_MAX_32BIT = 2147483647.0


def _grey_float(path: Path, im):
    """A high-bit-depth grey Pillow image → mode ``F`` scaled to [0, 1] (see the module docstring)."""
    from PIL import Image

    a = np.asarray(im)
    if im.mode == "F":
        a = a.astype(np.float32)
        if not np.isfinite(a).all() or a.min() < 0.0 or a.max() > 1.0:
            raise DataFormatError(
                path, "a floating-point image must hold finite values in [0, 1]", hint="Save it as 8- or 16-bit"
            )
        return Image.fromarray(a, mode="F")
    a = a.astype(np.float64)
    if a.size and a.min() < 0:
        raise DataFormatError(path, f"a {im.mode} image with negative values", hint="Save it as 8- or 16-bit")
    top = _MAX_16BIT if (im.mode.startswith("I;16") or a.size == 0 or a.max() <= _MAX_16BIT) else _MAX_32BIT
    return Image.fromarray((a / top).astype(np.float32), mode="F")


def open_image(path: str | Path):
    """Open an image file as a fully decoded ``PIL.Image`` in mode ``RGB`` (8-bit) or ``F`` (grey in [0, 1]).

    The mode rules are in the module docstring; :func:`pil_to_chw_float` turns either into the package's
    (3, H, W) float tensor.

    Raises:
        DataFormatError: the file is missing, a folder, empty, too large or cannot be decoded (the message
            names the file).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise DataFormatError(path, "is a folder, not an image file")
    if not path.is_file():
        raise DataFormatError(path, "no such image file")
    if path.stat().st_size == 0:
        raise DataFormatError(path, "the image file is empty (0 bytes)", hint=_HINT)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I", "F") or im.mode.startswith("I;16"):
                return _grey_float(path, im)
            if im.mode in ("P", "PA") and "transparency" in im.info:
                im = im.convert("RGBA")  # palette transparency must be resolved before dropping alpha
            return im.convert("RGB")
    except DataFormatError:
        raise
    except Image.DecompressionBombError as exc:
        raise DataFormatError(path, f"the image is implausibly large ({exc})", hint=_HINT) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, MemoryError) as exc:
        raise DataFormatError(path, f"cannot decode the image ({type(exc).__name__}: {exc})", hint=_HINT) from exc


def open_rgb(path: str | Path):
    """Open an image file as a fully decoded 8-bit RGB ``PIL.Image`` (16-bit grey is scaled, not clipped).

    Raises:
        DataFormatError: as :func:`open_image`.
    """
    from PIL import Image

    im = open_image(path)
    if im.mode == "F":
        grey = np.clip(np.rint(np.asarray(im) * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    return im


def pil_to_chw_float(image) -> torch.Tensor:
    """A Pillow image from :func:`open_image` (``RGB`` or ``F``) → float32 tensor (3, H, W) in [0, 1]."""
    if image.mode == "F":
        a = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
        return torch.from_numpy(np.ascontiguousarray(a)).unsqueeze(0).expand(3, -1, -1).contiguous()
    if image.mode != "RGB":
        image = image.convert("RGB")
    return hwc_uint8_to_chw_float(np.asarray(image))


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
    """Read an image file → float32 tensor (3, H, W), RGB in [0, 1] (module docstring: which modes and how)."""
    return pil_to_chw_float(open_image(path))
