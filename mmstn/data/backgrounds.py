"""Random backgrounds for rendered faces: smooth multi-scale noise and linear colour gradients.

Both draw everything from the generator they are given, so a background is reproduced by its seed.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["linear_gradient", "smooth_noise"]


@functools.lru_cache(maxsize=32)
def _bilinear_taps(cells: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear upsampling cells → size with half-pixel centres: (low index, high index, weight of high)."""
    pos = np.clip((np.arange(size) + 0.5) * cells / size - 0.5, 0.0, cells - 1.0)
    lo = np.floor(pos).astype(np.int64)
    return lo, np.minimum(lo + 1, cells - 1), pos - lo


def smooth_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Multi-scale value noise (size, size, 3) in [0, 1]: random grids of 3..48 cells, bilinearly upsampled."""
    out = np.zeros((size, size, 3)) + rng.uniform(0.0, 1.0, 3)
    for cells in (3, 6, 12, 24, 48):
        amp = rng.uniform(0.0, 0.35)
        grid = rng.uniform(-0.5, 0.5, (cells, cells, 3))
        lo, hi, w = _bilinear_taps(cells, size)
        rows = grid[lo] * (1.0 - w)[:, None, None] + grid[hi] * w[:, None, None]  # (size, cells, 3)
        out += amp * (rows[:, lo] * (1.0 - w)[None, :, None] + rows[:, hi] * w[None, :, None])
    return np.clip(out, 0.0, 1.0)


def linear_gradient(rng: np.random.Generator, size: int, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """A linear gradient (size, size, 3) between two random colours, each channel U(low, high), in a random
    direction; the ramp runs over one image width through the centre and is clamped beyond."""
    c0, c1 = rng.uniform(low, high, (2, 3))
    phi = rng.uniform(0.0, 2 * np.pi)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    u = ((xs - size / 2) * np.cos(phi) + (ys - size / 2) * np.sin(phi)) / size + 0.5
    u = np.clip(u, 0.0, 1.0)[..., None]
    return c0 + u * (c1 - c0)
