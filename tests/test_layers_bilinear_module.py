"""``BilinearSampler``, the module the STN holds: align-corners, zero padding and backend choice, by hand."""

from __future__ import annotations

import pytest
import torch

from mmstn.layers.sampler import SAMPLER_BACKENDS, BilinearSampler


def _image() -> torch.Tensor:
    # (1, 2, 2, 3): two channels, rows 0..1, columns 0..2
    return torch.tensor([[[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]]],
                        dtype=torch.float64)


@pytest.mark.parametrize("backend", SAMPLER_BACKENDS)
def test_corners_centres_and_outside_by_hand(backend: str) -> None:
    sampler = BilinearSampler(backend)
    # normalised (x, y): -1 is the centre of the first pixel and +1 the centre of the last (align_corners)
    grid = torch.tensor([[[[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0], [-0.5, 1.0], [1.0 + 2.0, 0.0]]]],
                        dtype=torch.float64)
    out = sampler(_image(), grid)
    assert out.shape == (1, 2, 1, 5)
    expected_c0 = torch.tensor([0.0, 5.0, 2.5, 3.5, 0.0], dtype=torch.float64)  # column 1.0 → 0.5, etc.
    expected_c1 = torch.tensor([1.0, 0.0, 0.5, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(out[0, 0, 0], expected_c0)
    torch.testing.assert_close(out[0, 1, 0], expected_c1)


def test_backends_agree_inside_and_module_rejects_unknown_backend() -> None:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 7, 9, generator=g, dtype=torch.float64)
    grid = torch.rand(2, 4, 5, 2, generator=g, dtype=torch.float64) * 1.8 - 0.9
    outs = [BilinearSampler(b)(image, grid) for b in SAMPLER_BACKENDS]
    for o in outs[1:]:
        torch.testing.assert_close(o, outs[0])
    with pytest.raises(ValueError, match="sampler backend"):
        BilinearSampler("cubic")  # type: ignore[arg-type]


def test_backends_take_the_same_one_sided_derivative_on_lattice_lines() -> None:
    g = torch.Generator().manual_seed(1)
    image = torch.rand(1, 2, 5, 5, generator=g, dtype=torch.float64)
    # samples exactly on pixel columns and rows: with W = H = 5, x = -1 + col/2 is exact in binary
    cols = torch.tensor([1.0, 2.0, 3.0, 1.0], dtype=torch.float64)
    rows = torch.tensor([1.0, 3.0, 2.0, 2.0], dtype=torch.float64)
    grid = torch.stack([-1 + cols / 2, -1 + rows / 2], -1).view(1, 1, 4, 2)
    grads = {}
    for backend in SAMPLER_BACKENDS:
        gr = grid.clone().requires_grad_()
        BilinearSampler(backend)(image, gr).sum().backward()
        grads[backend] = gr.grad
    # one-sided by hand: d/dcol = I(row, col + 1) − I(row, col), summed over channels, times dcol/dx = 2
    img = image[0].sum(0)
    pairs = zip(rows.long().tolist(), cols.long().tolist(), strict=True)
    expected_x = torch.stack([img[r, c + 1] - img[r, c] for r, c in pairs]) * 2.0
    torch.testing.assert_close(grads["analytic"][0, 0, :, 0], expected_x)
    for backend in SAMPLER_BACKENDS:
        torch.testing.assert_close(grads[backend], grads["analytic"], msg=backend)
