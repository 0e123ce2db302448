"""What produced a notebook's outputs: printed by the first code cell of every notebook."""

from __future__ import annotations

import platform

import torch

import mmstn
from mmstn import runtime


def print_environment() -> None:
    """Print mmstn's and torch's versions, the device and whether the smoke switch is on."""
    dev = runtime.device()
    mode = "smoke (MMSTN_SMOKE=1: shrunken run for CI)" if runtime.is_smoke() else "full"
    print(f"mmstn {mmstn.__version__} | torch {torch.__version__} | Python {platform.python_version()}")
    print(f"device: {dev} | mode: {mode}")
