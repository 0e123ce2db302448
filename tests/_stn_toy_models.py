"""Toy grid models for the layer and STN tests (no licence-gated data).

``toy_grid_model(G)`` is a face-sized patch of a sphere (radius 90 mm, longitude ±75°, latitude ±65°)
with a Gaussian "nose" (30 mm high, σ = 9 mm) on it, sampled on a G×G grid in the STN's layout: vertex k = row·G + col,
row 0 at the top (y up), col 0 on the left (x < 0), triangles from :func:`grid_triangles` (CCW seen
from the front). Its basis is smooth (low-order polynomials in the grid coordinates), scaled to a
few millimetres per unit coefficient.
"""

from __future__ import annotations

import math

import pytest
import torch

from mmstn.layers.grid import grid_triangles
from mmstn.models.morphable import MorphableModel
from mmstn.theta import THETA_LOGS, THETA_T

RADIUS = 90.0


def toy_grid_model(
    grid_size: int = 16,
    n_components: int = 4,
    nose: float = 30.0,
    nose_width: float = 9.0,
    dtype: torch.dtype = torch.float64,
) -> MorphableModel:
    g = grid_size
    v = torch.linspace(1.0, 0.0, g, dtype=torch.float64)  # row 0 → v = 1 (top)
    u = torch.linspace(0.0, 1.0, g, dtype=torch.float64)
    vv, uu = torch.meshgrid(v, u, indexing="ij")  # (G, G): [row, col]
    lon = (uu - 0.5) * math.radians(150)
    lat = (vv - 0.5) * math.radians(130)
    x = RADIUS * torch.cos(lat) * torch.sin(lon)
    y = RADIUS * torch.sin(lat)
    z = RADIUS * torch.cos(lat) * torch.cos(lon)
    bump = nose * torch.exp(-(x**2 + (y + 5) ** 2) / (2 * nose_width**2))
    nrm = torch.stack([x, y, z], -1) / RADIUS
    mean = (torch.stack([x, y, z], -1) + bump[..., None] * nrm).reshape(-1, 3)
    gen = torch.Generator().manual_seed(1234)
    a, b = (uu - 0.5) * 2, (vv - 0.5) * 2
    fields = [a, b, a * b, a * a - b * b, a * a + b * b, b * b * b, a * a * b, torch.ones_like(a)]
    basis = []
    for k in range(n_components):
        f = fields[k % len(fields)]
        direction = torch.randn(3, generator=gen, dtype=torch.float64)
        basis.append((3.0 * f[..., None] * direction).reshape(-1, 3))
    basis = torch.stack(basis) if basis else torch.zeros(0, g * g, 3, dtype=torch.float64)
    # 21 "landmarks" spread over the grid (the AFLW order is not meaningful here)
    rows = torch.linspace(g * 0.25, g * 0.85, 7).round().long().clamp(0, g - 1)
    cols = torch.tensor([0.2, 0.5, 0.8]).mul(g - 1).round().long()
    lm = (rows[:, None] * g + cols[None, :]).reshape(-1)
    return MorphableModel(
        name=f"toy sphere grid {g}",
        mean=mean.to(dtype),
        basis=basis.to(dtype),
        n_identity=(n_components + 1) // 2,
        triangles=grid_triangles(g),
        landmarks={"aflw21": lm},
        licence="synthetic",
        source="tests/_stn_toy_models.py",
    )


def frontal_theta(model: MorphableModel, batch: int = 1, t: float = 112.0, logs: float = 0.0) -> torch.Tensor:
    """θ with r = 0, t = (t, t), the given logs and α = 0, in the model's dtype: (B, 6 + D)."""
    th = torch.zeros(batch, 6 + model.n_components, dtype=model.dtype)
    th[:, THETA_T] = t
    th[:, THETA_LOGS] = logs
    return th


def backend_grads(fn, inputs: tuple[torch.Tensor, ...], seed: int = 0) -> dict[str, list[torch.Tensor]]:
    """Gradients of ⟨fn(*inputs, backend), w⟩ w.r.t. ``inputs`` for both backends (same random w).

    ``fn(*inputs, backend=...)`` must return one tensor. Inputs that require grad are differentiated.
    """
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, list[torch.Tensor]] = {}
    w = None
    for backend in ("analytic", "autograd"):
        xs = tuple(x.detach().clone().requires_grad_(x.requires_grad) for x in inputs)
        y = fn(*xs, backend=backend)
        if w is None:
            w = torch.randn(y.shape, generator=gen, dtype=y.dtype)
        diff = [x for x in xs if x.requires_grad]
        out[backend] = list(torch.autograd.grad((y * w).sum(), diff))
    return out


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Run these small-tensor tests on one intra-op thread (restored afterwards).

    Tiny float64 kernels gain nothing from a second thread, and on a busy 2-core machine OpenMP
    barriers can make them a thousand times slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
