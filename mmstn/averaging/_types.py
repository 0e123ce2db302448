"""The estimator type shared by the averaging modules."""

from __future__ import annotations

from collections.abc import Callable

import torch

#: θ estimator: (images (B, 3, H, W), landmarks (B, 21, 2) label frame or None, vis (B, 21) or None) → θ (B, 6 + D).
Estimator = Callable[[torch.Tensor, "torch.Tensor | None", "torch.Tensor | None"], torch.Tensor]
