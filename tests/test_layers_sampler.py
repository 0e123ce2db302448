"""The bilinear sampler: grid_sample ≡ the paper's sum formula ≡ the hand-written four-neighbour version."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _stn_toy_models import one_torch_thread  # noqa: F401

from mmstn.errors import ShapeError
from mmstn.layers.sampler import bilinear_sample, bilinear_sample_reference

GEN = torch.Generator().manual_seed(5)


def jittered_grid(b: int, ho: int, wo: int, h: int, w: int, margin: float = 2.0) -> torch.Tensor:
    """Sample positions off the pixel centres (fractional part in [0.1, 0.9]), some outside the image."""
    x = torch.randint(-2, w + 1, (b, ho, wo), generator=GEN) + 0.1 + 0.8 * torch.rand(b, ho, wo, generator=GEN)
    y = torch.randint(-2, h + 1, (b, ho, wo), generator=GEN) + 0.1 + 0.8 * torch.rand(b, ho, wo, generator=GEN)
    return torch.stack([2 * x / (w - 1) - 1, 2 * y / (h - 1) - 1], -1).double()


def test_grid_sample_equals_the_sum_formula():
    image = torch.rand(2, 3, 9, 11, dtype=torch.float64, generator=GEN)
    grid = torch.cat([jittered_grid(2, 5, 4, 9, 11), (torch.rand(2, 5, 4, 2, generator=GEN) * 2.4 - 1.2).double()], 1)
    ref = bilinear_sample_reference(image, grid)
    native = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    torch.testing.assert_close(native, ref, rtol=0, atol=1e-13)
    for backend in ("native", "analytic", "reference"):
        torch.testing.assert_close(bilinear_sample(image, grid, backend), ref, rtol=0, atol=1e-13)


def test_exact_pixel_centres_and_corners_read_the_pixel():
    image = torch.rand(1, 1, 4, 6, dtype=torch.float64, generator=GEN)
    rows, cols = torch.meshgrid(torch.arange(4), torch.arange(6), indexing="ij")
    grid = torch.stack([2 * cols.double() / 5 - 1, 2 * rows.double() / 3 - 1], -1)[None]
    for backend in ("native", "analytic", "reference"):
        torch.testing.assert_close(bilinear_sample(image, grid, backend), image, rtol=0, atol=1e-15)


@pytest.mark.parametrize("backend", ["native", "analytic", "reference"])
def test_gradcheck_off_pixel_centres(backend):
    image = torch.rand(2, 2, 5, 6, dtype=torch.float64, generator=GEN, requires_grad=True)
    grid = jittered_grid(2, 3, 4, 5, 6).requires_grad_()
    assert torch.autograd.gradcheck(lambda u, g: bilinear_sample(u, g, backend), (image, grid))


def test_hand_written_backward_equals_grid_sample_and_the_formula():
    image = torch.rand(2, 3, 8, 7, dtype=torch.float64, generator=GEN)
    grid = jittered_grid(2, 6, 5, 8, 7)
    w = torch.randn(2, 3, 6, 5, dtype=torch.float64, generator=GEN)
    grads = {}
    for backend in ("native", "analytic", "reference"):
        u, g = image.clone().requires_grad_(), grid.clone().requires_grad_()
        grads[backend] = torch.autograd.grad((bilinear_sample(u, g, backend) * w).sum(), (u, g))
    for backend in ("analytic", "reference"):
        for a, b in zip(grads[backend], grads["native"], strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_the_papers_derivative_formula():
    """∂V/∂x_i = Σ_n Σ_m U_nm max(0, 1 − |y_i − n|)·sign-case(m − x_i), checked literally."""
    image = torch.rand(1, 1, 5, 5, dtype=torch.float64, generator=GEN)
    x, y = 2.3, 1.6
    g = torch.tensor([[[[2 * x / 4 - 1, 2 * y / 4 - 1]]]], dtype=torch.float64, requires_grad=True)
    (dg,) = torch.autograd.grad(bilinear_sample(image, g, "analytic").sum(), g)
    dvdx = sum(
        image[0, 0, n, m] * max(0.0, 1 - abs(y - n)) * (0 if abs(m - x) >= 1 else (1 if m >= x else -1))
        for n in range(5)
        for m in range(5)
    )
    assert dg[0, 0, 0, 0].item() == pytest.approx(float(dvdx) * 4 / 2, rel=1e-12)


def test_errors():
    with pytest.raises(ShapeError, match="grid"):
        bilinear_sample(torch.zeros(1, 1, 4, 4), torch.zeros(1, 2, 2, 3))
    with pytest.raises(ShapeError, match="batch"):
        bilinear_sample(torch.zeros(2, 1, 4, 4), torch.zeros(1, 2, 2, 2))
    with pytest.raises(ValueError, match="backend"):
        bilinear_sample(torch.zeros(1, 1, 4, 4), torch.zeros(1, 2, 2, 2), "nearest")


def test_backends_agree_on_exact_lattice_samples_gradients_included():
    # every pixel centre (borders and corners included), the lattice lines just outside, and samples on a
    # row but between columns (and the reverse): where the tent's kink is, all backends take the same side
    # W − 1 and H − 1 powers of two, so that x = −1 + 2·col/(W − 1) is exact in binary
    image = torch.rand(2, 3, 5, 9, dtype=torch.float64, generator=GEN)
    h, w = 5, 9
    cols = torch.arange(-1, w + 1, dtype=torch.float64)
    rows = torch.arange(-1, h + 1, dtype=torch.float64)
    yy, xx = torch.meshgrid(rows, cols, indexing="ij")
    off_x = torch.stack([cols[1:-1] + 0.25, torch.full((w,), 2.0, dtype=torch.float64)], -1)
    off_y = torch.stack([torch.full((h,), 3.0, dtype=torch.float64), rows[1:-1] + 0.5], -1)
    pix = torch.cat([torch.stack([xx, yy], -1).reshape(-1, 2), off_x, off_y])  # (P, 2) 0-based (col, row)
    scale = torch.tensor([w - 1, h - 1], dtype=torch.float64)
    grid = (2 * pix / scale - 1).reshape(1, 1, -1, 2).expand(2, -1, -1, -1).contiguous()
    assert torch.equal((grid + 1) / 2 * scale, pix.expand(2, 1, -1, -1))  # exactly on the lattice
    weights = torch.rand(2, 3, 1, pix.shape[0], dtype=torch.float64, generator=GEN)
    grads = {}
    for backend in ("native", "analytic", "reference"):
        im, gr = image.clone().requires_grad_(), grid.clone().requires_grad_()
        out = bilinear_sample(im, gr, backend)
        (out * weights).sum().backward()
        grads[backend] = (out.detach(), im.grad, gr.grad)
    # one-sided by hand at an interior pixel centre: ∂/∂col = I(row, col + 1) − I(row, col), dcol/dx = (W − 1)/2
    r, c = 2, 3
    k = (r + 1) * (w + 2) + (c + 1)
    by_hand = ((image[0, :, r, c + 1] - image[0, :, r, c]) * weights[0, :, 0, k]).sum() * (w - 1) / 2
    torch.testing.assert_close(grads["analytic"][2][0, 0, k, 0], by_hand)
    for backend in ("native", "reference"):
        for got, ref in zip(grads[backend], grads["analytic"], strict=True):
            torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12, msg=backend)
