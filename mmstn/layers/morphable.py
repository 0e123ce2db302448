"""The 3DMM layer: shape coefficients α → 3-D vertices X(α) = μ + Pα (paper eq. 1, ``vl_nnmodel.m``).

Shapes (B = batch, D = components, N = vertices):

* ``alpha``: (B, D), unit-free coefficients (α ~ N(0, I) for a model scaled as :class:`MorphableModel` is);
* ``mean``: (N, 3), millimetres;
* ``basis``: (D, N, 3), millimetres per unit coefficient;
* result: (B, N, 3), millimetres, in the model frame (x right, y up, z towards the viewer).

Derivatives (what the hand-written backward computes, with dX the incoming gradient of shape (B, N, 3)
flattened to (B, 3N) and P the basis flattened to (D, 3N)):

* dα = dX · Pᵀ, i.e. dα_k = Σ_n ⟨P_k,n, dX_n⟩ (the authors' ``dα = Pᵀ vec(dX)``);
* dP = αᵀ · dX and dμ = Σ_b dX, used only when the basis is trainable (paper §2.1: the model "could
  be made trainable").
"""

from __future__ import annotations

import torch
from torch import nn

from mmstn.errors import ShapeError
from mmstn.layers._common import Backend, check_backend, check_tensor
from mmstn.models.morphable import MorphableModel

__all__ = ["MorphableFunction", "MorphableLayer", "morphable_shape"]


class MorphableFunction(torch.autograd.Function):
    """X = μ + α·P with the hand-written backward dα = dX·Pᵀ (and dP = αᵀ·dX, dμ = Σ_b dX)."""

    @staticmethod
    def forward(ctx, alpha: torch.Tensor, mean: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
        d, n = basis.shape[0], basis.shape[1]
        flat = basis.reshape(d, 3 * n)
        ctx.save_for_backward(alpha, flat)
        ctx.n = n
        return torch.addmm(mean.reshape(1, 3 * n), alpha, flat).view(alpha.shape[0], n, 3)

    @staticmethod
    def backward(ctx, grad_x: torch.Tensor):
        alpha, flat = ctx.saved_tensors
        g = grad_x.reshape(grad_x.shape[0], 3 * ctx.n)
        d_alpha = g @ flat.T if ctx.needs_input_grad[0] else None
        d_mean = g.sum(0).view(ctx.n, 3) if ctx.needs_input_grad[1] else None
        d_basis = (alpha.T @ g).view(-1, ctx.n, 3) if ctx.needs_input_grad[2] else None
        return d_alpha, d_mean, d_basis


def morphable_shape(
    alpha: torch.Tensor, mean: torch.Tensor, basis: torch.Tensor, backend: Backend = "analytic"
) -> torch.Tensor:
    """The 3DMM layer X(α) = μ + Σ_k α_k P_k, batched.

    Args:
        alpha: coefficients, (B, D).
        mean: mean shape μ, (N, 3), millimetres.
        basis: shape basis P, (D, N, 3), millimetres per unit coefficient.
        backend: ``"analytic"`` (hand-written backward) or ``"autograd"``.

    Returns:
        Vertices X, (B, N, 3), millimetres.
    """
    check_backend(backend)
    check_tensor("alpha", alpha, 2)
    check_tensor("mean", mean, 2, (None, 3))
    check_tensor("basis", basis, 3, (None, mean.shape[0], 3))
    if alpha.shape[1] != basis.shape[0]:
        raise ShapeError(f"alpha has {alpha.shape[1]} coefficients but the basis has D = {basis.shape[0]} components")
    if backend == "analytic":
        return MorphableFunction.apply(alpha, mean, basis)
    d, n = basis.shape[0], basis.shape[1]
    return (mean.reshape(1, 3 * n) + alpha @ basis.reshape(d, 3 * n)).view(alpha.shape[0], n, 3)


class MorphableLayer(nn.Module):
    """nn.Module wrapper of :func:`morphable_shape` holding μ and P.

    Args:
        model: the morphable model; its ``mean`` (N, 3) and ``basis`` (D, N, 3) are copied.
        trainable: if ``False`` (the authors' setting) μ and P are buffers (they move with ``.to()`` and
            are saved in the state dict, but get no gradient); if ``True`` they are ``nn.Parameter`` s.
        backend: ``"analytic"`` or ``"autograd"``.

    Shapes: ``forward(alpha)``: (B, D) → (B, N, 3) millimetres.
    """

    mean: torch.Tensor
    basis: torch.Tensor

    def __init__(self, model: MorphableModel, trainable: bool = False, backend: Backend = "analytic") -> None:
        super().__init__()
        self.backend = check_backend(backend)
        self.trainable = bool(trainable)
        mean = model.mean.detach().clone()
        basis = model.basis.detach().clone()
        if self.trainable:
            self.mean = nn.Parameter(mean)
            self.basis = nn.Parameter(basis)
        else:
            self.register_buffer("mean", mean)
            self.register_buffer("basis", basis)

    @property
    def n_components(self) -> int:
        """D, the number of coefficients ``forward`` expects."""
        return int(self.basis.shape[0])

    @property
    def n_vertices(self) -> int:
        """N, the number of vertices."""
        return int(self.mean.shape[0])

    def forward(self, alpha: torch.Tensor) -> torch.Tensor:
        return morphable_shape(alpha, self.mean, self.basis, self.backend)

    def extra_repr(self) -> str:
        return f"N={self.n_vertices}, D={self.n_components}, trainable={self.trainable}, backend={self.backend!r}"
