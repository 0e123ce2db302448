"""The 3DMM layer X(α) = μ + Pα: values, hand-written backward, trainable basis."""

from __future__ import annotations

import pytest
import torch
from _stn_toy_models import backend_grads, one_torch_thread, toy_grid_model  # noqa: F401

from mmstn.errors import ShapeError
from mmstn.layers.morphable import MorphableLayer, morphable_shape


@pytest.fixture(scope="module")
def model():
    return toy_grid_model(6, n_components=5)


def test_values_match_the_model_and_the_formula(model):
    alpha = torch.randn(3, 5, dtype=torch.float64)
    for backend in ("analytic", "autograd"):
        x = morphable_shape(alpha, model.mean, model.basis, backend)
        assert x.shape == (3, 36, 3)
        ref = model.mean + torch.einsum("bd,dnk->bnk", alpha, model.basis)
        torch.testing.assert_close(x, ref, rtol=0, atol=1e-12)
        torch.testing.assert_close(x, model.shape(alpha), rtol=0, atol=1e-12)


def test_zero_alpha_gives_the_mean(model):
    x = morphable_shape(torch.zeros(2, 5, dtype=torch.float64), model.mean, model.basis)
    assert torch.equal(x[0], model.mean) and torch.equal(x[1], model.mean)


def test_gradcheck_alpha_mean_basis(model):
    alpha = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    mean = model.mean.clone().requires_grad_()
    basis = model.basis.clone().requires_grad_()
    for backend in ("analytic", "autograd"):
        assert torch.autograd.gradcheck(lambda a, m, p, b=backend: morphable_shape(a, m, p, b), (alpha, mean, basis))


def test_hand_written_backward_equals_autograd(model):
    alpha = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    mean = model.mean.clone().requires_grad_()
    basis = model.basis.clone().requires_grad_()
    g = backend_grads(morphable_shape, (alpha, mean, basis))
    for a, b in zip(g["analytic"], g["autograd"], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    # and dα = Pᵀ vec(dX) literally
    w = torch.randn(4, 36, 3, dtype=torch.float64)
    (da,) = torch.autograd.grad((morphable_shape(alpha, model.mean, model.basis) * w).sum(), alpha)
    torch.testing.assert_close(da, w.reshape(4, -1) @ model.basis.reshape(5, -1).T, rtol=0, atol=1e-10)


def test_layer_buffers_or_parameters(model):
    frozen = MorphableLayer(model)
    assert not list(frozen.parameters()) and {"mean", "basis"} <= set(dict(frozen.named_buffers()))
    trainable = MorphableLayer(model, trainable=True)
    assert {n for n, _ in trainable.named_parameters()} == {"mean", "basis"}
    alpha = torch.randn(2, 5, dtype=torch.float64)
    trainable(alpha).sum().backward()
    assert trainable.basis.grad is not None and trainable.mean.grad is not None
    torch.testing.assert_close(trainable.mean.grad, torch.full_like(model.mean, 2.0))


def test_shape_errors_name_the_argument(model):
    with pytest.raises(ShapeError, match="alpha"):
        morphable_shape(torch.zeros(2, 4, dtype=torch.float64), model.mean, model.basis)
    with pytest.raises(ShapeError, match="alpha"):
        morphable_shape(torch.zeros(5, dtype=torch.float64), model.mean, model.basis)
    with pytest.raises(ValueError, match="backend"):
        morphable_shape(torch.zeros(1, 5, dtype=torch.float64), model.mean, model.basis, "numeric")
