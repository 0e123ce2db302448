"""One visual vocabulary for every figure: image conversion, point markers, the colour of masked cells.

Points are told apart by marker shape as well as colour (Okabe–Ito palette), so that labels and estimates
stay distinct for colour-blind readers and in grey-scale prints.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["MASKED_VALUE", "POINT_STYLES", "plain_log_ticks", "point_style", "to_rgb"]

#: Grey level of cells that a mask removes, in every figure (black, as the masked STN output itself is 0).
MASKED_VALUE: float = 0.0

#: Marker styles by role: ``label`` (ground truth), ``estimate`` (prediction or fit), ``start`` (initial θ).
POINT_STYLES: dict[str, dict[str, object]] = {
    "label": {"marker": "o", "facecolors": "none", "edgecolors": "#F0E442", "linewidths": 1.1},  # yellow rings
    "estimate": {"marker": "+", "c": "#56B4E9", "linewidths": 1.2},  # sky-blue crosses
    "start": {"marker": "x", "c": "#D55E00", "linewidths": 1.0},  # vermilion x
}


def point_style(role: str, size: float = 10.0) -> dict[str, object]:
    """Keyword arguments for ``Axes.scatter`` for points of ``role`` (a key of :data:`POINT_STYLES`)."""
    if role not in POINT_STYLES:
        raise ValueError(f"role={role!r}: use one of {sorted(POINT_STYLES)}")
    return {**POINT_STYLES[role], "s": size * 2.0, "zorder": 3}


def to_rgb(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) or (H, W) tensor (C = 1 or 3, values in [0, 1]) → (H, W, 3) array for ``imshow``."""
    x = x.detach().cpu().float()
    if x.ndim == 2:
        x = x[None]
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return x.clamp(0, 1).permute(1, 2, 0).numpy()


def plain_log_ticks(ax, axis: str = "y") -> None:
    """Label a log axis with plain numbers (0.5, 1, 2, 5, 10) instead of "2×10⁰"; minor ticks at 2 and 5 only."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    def fmt(v: float, _pos: int) -> str:
        return f"{v:g}"

    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(FuncFormatter(fmt))
    target.set_minor_locator(LogLocator(base=10.0, subs=(2.0, 5.0)))
    target.set_minor_formatter(FuncFormatter(fmt))
