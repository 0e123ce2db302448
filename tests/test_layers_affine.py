"""Rotate, project, log-scale, scale, translate, select and mask: values, gradcheck, hand vs autograd."""

from __future__ import annotations

import math

import pytest
import torch
from _stn_toy_models import backend_grads, one_torch_thread  # noqa: F401

from mmstn.errors import ShapeError
from mmstn.layers.masking import apply_mask
from mmstn.layers.projection import orthographic_projection
from mmstn.layers.rotate import rotate_points
from mmstn.layers.rotation import rodrigues
from mmstn.layers.scale import ScaleBase, log_scale_to_scale, scale_2d, scale_rate
from mmstn.layers.selection import select_vertices
from mmstn.layers.translation import translate_2d

GEN = torch.Generator().manual_seed(7)


def rnd(*shape: int, grad: bool = True) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64, generator=GEN).requires_grad_(grad)


def check_both(fn, inputs):
    """gradcheck on both backends, and the hand-written backward equals autograd's to 1e-10."""
    for backend in ("analytic", "autograd"):
        assert torch.autograd.gradcheck(lambda *xs, b=backend: fn(*xs, backend=b), inputs)
    g = backend_grads(fn, inputs)
    for a, b in zip(g["analytic"], g["autograd"], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_rotate_values_and_gradients():
    x, r = rnd(2, 7, 3), rnd(2, 3, grad=False)
    rot = rodrigues(r).requires_grad_()
    out = rotate_points(x, rot)
    torch.testing.assert_close(out, torch.einsum("bij,bnj->bni", rot, x))
    check_both(rotate_points, (x, rot))


def test_projection_keeps_x_and_y():
    x = rnd(2, 5, 3)
    assert torch.equal(orthographic_projection(x), x[..., :2])
    check_both(orthographic_projection, (x,))


@pytest.mark.parametrize("base", [ScaleBase.EXP, ScaleBase.MATCONVNET, "0.99", "exp", 2.0])
def test_log_scale(base):
    logs = rnd(3, 1)
    s = log_scale_to_scale(logs, base)
    expected = {"exp": torch.exp(logs), "0.99": 0.99**logs}.get(getattr(base, "value", base), 2.0**logs)
    torch.testing.assert_close(s, expected, rtol=1e-14, atol=0)
    check_both(lambda x, backend: log_scale_to_scale(x, base, backend), (logs,))


def test_scale_rates():
    assert scale_rate("exp") == 1.0
    assert scale_rate(ScaleBase.MATCONVNET) == math.log(0.99)
    # the authors' derivative: ds/dlogs = 0.99^logs · ln 0.99
    logs = torch.tensor([[3.0]], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(log_scale_to_scale(logs, "0.99").sum(), logs)
    assert g.item() == pytest.approx(0.99**3 * math.log(0.99), rel=1e-14)
    with pytest.raises(ValueError, match="scale_base"):
        scale_rate("e")


def test_scale_and_translate():
    y, s, t = rnd(2, 6, 2), rnd(2, 1), rnd(2, 2)
    torch.testing.assert_close(scale_2d(y, s), y * s[:, :, None])
    torch.testing.assert_close(translate_2d(y, t), y + t[:, None])
    check_both(scale_2d, (y, s))
    check_both(translate_2d, (y, t))


def test_selection_with_repeated_indices():
    y = rnd(2, 9, 2)
    idx = torch.tensor([3, 0, 3, 8])
    assert torch.equal(select_vertices(y, idx), y[:, idx])
    check_both(lambda x, backend: select_vertices(x, idx, backend), (y,))
    with pytest.raises(ShapeError, match="indices"):
        select_vertices(y, torch.tensor([9]))


def test_masking_detaches_the_mask():
    v = rnd(2, 3, 4, 4)
    m = (torch.rand(2, 1, 4, 4, generator=GEN) > 0.5).double().requires_grad_()
    for backend in ("analytic", "autograd"):
        w = apply_mask(v, m, backend)
        torch.testing.assert_close(w, v * m)
        gv, gm = torch.autograd.grad(w.sum(), (v, m), allow_unused=True)
        torch.testing.assert_close(gv, m.detach().expand_as(v))
        assert gm is None
    check_both(lambda x, backend: apply_mask(x, m, backend), (v,))
    with pytest.raises(ShapeError, match="mask"):
        apply_mask(v, torch.ones(2, 2, 4, 4, dtype=torch.float64))


def test_shape_errors_name_arguments():
    with pytest.raises(ShapeError, match="points"):
        rotate_points(torch.zeros(2, 5, 2), torch.eye(3).expand(2, 3, 3))
    with pytest.raises(ShapeError, match="rotation"):
        rotate_points(torch.zeros(2, 5, 3), torch.eye(3).expand(3, 3, 3))
    with pytest.raises(ShapeError, match="logs"):
        log_scale_to_scale(torch.zeros(2))
    with pytest.raises(ShapeError, match="t "):
        translate_2d(torch.zeros(2, 5, 2), torch.zeros(3, 2))


def test_module_wrappers_match_the_functions():
    from mmstn.layers import (
        GridLayer,
        LandmarkSelection,
        LogScaleToScale,
        Masking,
        OrthographicProjection,
        Rotate3D,
        Rotation,
        Scale2D,
        Translate2D,
        points_to_grid,
    )

    r, x = rnd(2, 3, grad=False), rnd(2, 9, 3, grad=False)
    rot = Rotation()(r)
    assert torch.equal(rot, rodrigues(r))
    assert torch.equal(Rotate3D("autograd")(x, rot), rotate_points(x, rot, "autograd"))
    y = OrthographicProjection()(x)
    s = LogScaleToScale("0.99")(torch.ones(2, 1, dtype=torch.float64))
    torch.testing.assert_close(s, torch.full((2, 1), 0.99, dtype=torch.float64))
    y = Translate2D()(Scale2D()(y, s), torch.full((2, 2), 112.0, dtype=torch.float64))
    assert torch.equal(GridLayer(3)(y), points_to_grid(y, 224, "matconvnet"))
    assert torch.equal(LandmarkSelection(torch.tensor([4, 1]))(y), y[:, [4, 1]])
    v = rnd(2, 1, 3, 3, grad=False)
    assert torch.equal(Masking()(v, torch.ones_like(v)), v)
