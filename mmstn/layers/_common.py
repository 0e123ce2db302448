"""Small helpers shared by the layers: the backend switch and shape checks.

Every differentiable layer in :mod:`mmstn.layers` can run on two backends:

* ``"analytic"``: a :class:`torch.autograd.Function` whose ``backward`` is the derivative written out
  by hand, as in the paper and in the authors' MatConvNet layers (``vl_nn*.m``);
* ``"autograd"``: the same forward written with ordinary differentiable torch operations, so that
  PyTorch derives the backward itself.

The two give the same values and (to rounding) the same gradients; the tests check both with
``torch.autograd.gradcheck`` and against each other.
"""

from __future__ import annotations

from typing import Literal

import torch

from mmstn.errors import ShapeError

__all__ = ["BACKENDS", "Backend", "check_backend", "check_tensor"]

#: Which implementation of a layer's backward pass to use.
Backend = Literal["analytic", "autograd"]

BACKENDS: tuple[str, ...] = ("analytic", "autograd")


def check_backend(backend: str) -> str:
    """Return ``backend`` if it is one of :data:`BACKENDS`, else raise ``ValueError`` listing them."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def check_tensor(name: str, x: object, ndim: int, last: tuple[int | None, ...] = ()) -> torch.Tensor:
    """Check that ``x`` is a floating-point tensor with ``ndim`` dimensions whose trailing sizes are ``last``.

    ``None`` in ``last`` accepts any size. Raises :class:`~mmstn.errors.ShapeError` naming ``name``.
    """
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise ShapeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    ok = x.ndim == ndim and all(
        want is None or have == want for have, want in zip(x.shape[ndim - len(last) :], last, strict=True)
    )
    if not ok:
        want_txt = ", ".join(
            ["B" if i == 0 else "·" for i in range(ndim - len(last))] + ["·" if w is None else str(w) for w in last]
        )
        raise ShapeError(f"{name} must have shape ({want_txt}), got {tuple(x.shape)}")
    return x
