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
