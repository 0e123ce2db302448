"""Shaded mesh drawing with matplotlib: orthographic view along −z, back faces culled, painter's order.

matplotlib is the primary viewer (notebook-conventions §6.6): it renders on GitHub, in nbviewer and under
nbval, and it shows exactly what the paper's orthographic camera sees.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from mmstn import runtime

__all__ = ["draw_mesh", "save_figure"]



def draw_mesh(
    ax: Axes,
    vertices,
    triangles,
    *,
    R: np.ndarray | None = None,
    colour=None,
    light: tuple[float, float, float] = (0.3, 0.4, 1.0),
    ambient: float = 0.35,
    centre: np.ndarray | None = None,
) -> np.ndarray:
    """Draw a Lambert-shaded mesh seen orthographically along −z.

    Args:
        ax: matplotlib axes to draw into (aspect is set equal, axes hidden).
        vertices: (N, 3) in mm, BFM frame (x right, y up, z towards the viewer).
        triangles: (F, 3) counter-clockwise seen from the front.
        R: optional (3, 3) rotation applied about ``centre`` before viewing.
        colour: optional (N, 3) per-vertex albedo in [0, 1]; grey when absent.
        light: direction towards the light (view frame); normalised internally.
        ambient: ambient term added to the Lambert term.
        centre: rotation centre (3,); the vertices' centroid by default.

    Returns:
        The viewed vertices, array (N, 3) after rotation, for overlaying landmarks.
    """
    v = runtime.as_numpy(vertices).astype(np.float64)
    f = runtime.as_numpy(triangles).astype(np.int64)
    c0 = v.mean(0) if centre is None else np.asarray(centre, dtype=np.float64)
    if R is not None:
        v = (v - c0) @ np.asarray(R, dtype=np.float64).T + c0
    p = v[f]  # (F, 3, 3)
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    front = n[:, 2] > 0  # back faces culled: counter-clockwise winding points front normals to +z
    ldir = np.asarray(light, dtype=np.float64)
    ldir /= np.linalg.norm(ldir)
    lambert = np.clip(n @ ldir, 0.0, 1.0)
    shade = np.clip(ambient + (1 - ambient) * lambert, 0, 1)[:, None]
    albedo = np.full((len(f), 3), 0.78) if colour is None else runtime.as_numpy(colour)[f].mean(1)
    rgb = np.clip(albedo * shade, 0, 1)
    order = np.argsort(p[:, :, 2].mean(1))  # painter's algorithm: far faces first
    order = order[front[order]]
    coll = PolyCollection(p[order][:, :, :2], facecolors=rgb[order], edgecolors="none", antialiased=False)
    ax.add_collection(coll)
    pad = 0.03 * np.ptp(v[:, :2], axis=0).max()
    ax.set_xlim(v[:, 0].min() - pad, v[:, 0].max() + pad)
    ax.set_ylim(v[:, 1].min() - pad, v[:, 1].max() + pad)
    ax.set_aspect("equal")
    ax.axis("off")
    return v


def save_figure(fig: Figure, name: str, dpi: int = 110) -> None:
    """Save ``fig`` as ``<figures_dir>/<name>.png`` (``MMSTN_FIGURES``, default ``figures/``).

    Returns nothing so that a notebook cell ending with this call shows only the figure.
    """
    fig.savefig(runtime.figures_dir() / f"{name}.png", dpi=dpi, bbox_inches="tight")


def figure_to_png(fig: Figure, dpi: int = 80) -> bytes:
    """Render a figure to PNG bytes (for ``ipywidgets.Image``) and close it."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
