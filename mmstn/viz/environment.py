"""What produced a notebook's outputs: printed by the first code cell of every notebook."""

from __future__ import annotations

import platform

import torch

import mmstn
from mmstn import runtime


def use_compact_figures(dpi: int = 72, quality: int = 85) -> None:
    """Show inline figures as JPEG at ``dpi`` so that committed notebooks stay small.

    Rendered faces compress 5–10× better as JPEG than as PNG; figures saved with
    :func:`mmstn.viz.save_figure` are still written as PNG. Does nothing outside IPython.
    """
    import matplotlib as mpl

    mpl.rcParams["figure.dpi"] = dpi
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    if get_ipython() is not None:
        set_matplotlib_formats("jpeg", pil_kwargs={"quality": quality})


def print_environment() -> None:
    """Print mmstn's and torch's versions, the device and whether the smoke switch is on."""
    dev = runtime.device()
    mode = "smoke (MMSTN_SMOKE=1: shrunken run for CI)" if runtime.is_smoke() else "full"
    print(f"mmstn {mmstn.__version__} | torch {torch.__version__} | Python {platform.python_version()}")
    print(f"device: {dev} | mode: {mode}")
