"""What produced a notebook's outputs: printed by the first code cell of every notebook."""

from __future__ import annotations

import platform

import torch

import mmstn
from mmstn import runtime


def figure_png(fig, dpi: int = 100, colours: int = 64) -> bytes:
    """``fig`` as a palette PNG at ``dpi``: sharp text and lines, several times smaller than a full-colour PNG.

    A 64-colour adaptive palette keeps the shading of rendered faces readable (with slight banding)
    while ticks and labels stay sharp (which JPEG does not). Used for inline notebook figures.
    """
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    buf.seek(0)
    with Image.open(buf) as im:
        pal = im.convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    pal.save(out, format="PNG", optimize=True)
    return out.getvalue()


def use_compact_figures(dpi: int = 100) -> None:
    """Show inline figures as palette PNGs at ``dpi`` (default 100) so that committed notebooks stay small.

    Figures saved with :func:`mmstn.viz.save_figure` are written as full-colour PNGs. Does nothing outside
    IPython.
    """
    import matplotlib as mpl
    from matplotlib.figure import Figure

    mpl.rcParams["figure.dpi"] = dpi
    mpl.rcParams["savefig.dpi"] = dpi
    try:
        from IPython import get_ipython
    except ImportError:
        return
    import matplotlib.pyplot as plt

    try:  # resolve the (lazily loaded) inline backend now: loading it re-registers its own PNG formatter
        import matplotlib_inline.backend_inline  # noqa: F401

        plt.get_backend()
    except ImportError:
        pass

    ip = get_ipython()
    if ip is None:
        return
    formatters = ip.display_formatter.formatters
    formatters["image/jpeg"].pop(Figure, None)
    formatters["image/png"].for_type(Figure, lambda fig: figure_png(fig, dpi))


def print_environment() -> None:
    """Print mmstn's and torch's versions, the device and whether the smoke switch is on."""
    dev = runtime.device()
    mode = "smoke (MMSTN_SMOKE=1: shrunken run for CI)" if runtime.is_smoke() else "full"
    print(f"mmstn {mmstn.__version__} | torch {torch.__version__} | Python {platform.python_version()}")
    print(f"device: {dev} | mode: {mode}")
