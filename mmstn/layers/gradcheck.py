"""Checking a hand-written backward: against another backend (autograd) and against finite differences.

The tool of chapter 3's and chapter 4's gradient checks; every layer's own tests use ``torch.autograd.gradcheck``
directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = ["GradientCheck", "_as_tuple", "check_gradients"]


@dataclass
class GradientCheck:
    """Result of :func:`check_gradients`.

    Attributes:
        name: what was checked (printed first).
        backend: the backend under test (``"analytic"``, ``"native"``, ...).
        reference: the backend compared with (``"autograd"``, ``"reference"``, ...).
        max_diff: largest |analytic − reference| over the forward values and the input gradients.
        tol: threshold printed with ``max_diff``.
        gradcheck: whether ``torch.autograd.gradcheck`` (finite differences, float64) passed.
    """

    name: str
    backend: str
    reference: str
    max_diff: float
    tol: float
    gradcheck: bool

    @property
    def ok(self) -> bool:
        return self.max_diff < self.tol and self.gradcheck

    def __str__(self) -> str:
        return (
            f"{self.name}: max |{self.backend} − {self.reference}| < {self.tol:.0e}: {self.max_diff < self.tol}\n"
            f"{self.name}: gradcheck (finite differences, float64): {self.gradcheck}"
        )


def _as_tuple(x) -> tuple[torch.Tensor, ...]:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def check_gradients(
    fn: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]],
    inputs: Sequence[torch.Tensor],
    name: str = "layer",
    *,
    backends: tuple[str, str] = ("analytic", "autograd"),
    tol: float = 1e-10,
    seed: int = 0,
    fast_mode: bool = False,
    eps: float = 1e-6,
    atol: float = 1e-5,
) -> GradientCheck:
    """Check a layer's hand-written backward against another backend and against finite differences.

    Args:
        fn: ``fn(backend, *inputs)`` → tensor (or tuple of tensors); ``backend`` is one of ``backends``.
        inputs: float64 tensors; those with ``requires_grad=True`` are differentiated.
        name: label for the printed lines.
        backends: (the backend under test, the reference backend).
        tol: the threshold for ``max_diff``.
        seed: seeds the random output cotangent used to compare the two backwards.
        fast_mode, eps, atol: passed to ``torch.autograd.gradcheck`` (``fast_mode`` for large outputs).

    Returns:
        :class:`GradientCheck` (``print`` it).
    """
    test, ref = backends
    diffs = [x for x in inputs if isinstance(x, torch.Tensor) and x.requires_grad]
    outs = {be: _as_tuple(fn(be, *inputs)) for be in (test, ref)}
    gen = torch.Generator().manual_seed(seed)
    cot = [torch.randn(y.shape, generator=gen, dtype=y.dtype) for y in outs[test]]
    max_diff = max(
        (float((a - b).detach().abs().max()) if a.numel() else 0.0 for a, b in zip(outs[test], outs[ref], strict=True)),
        default=0.0,
    )
    grads = {}
    for be in (test, ref):
        total = sum((y * c).sum() for y, c in zip(outs[be], cot, strict=True))
        grads[be] = torch.autograd.grad(total, diffs, allow_unused=True)
    for a, b in zip(grads[test], grads[ref], strict=True):
        if a is None or b is None:
            if (a is None) != (b is None):
                max_diff = math.inf
            continue
        max_diff = max(max_diff, float((a - b).detach().abs().max()))
    ok = torch.autograd.gradcheck(lambda *x: fn(test, *x), tuple(inputs), eps=eps, atol=atol, fast_mode=fast_mode,
                                  raise_exception=False)
    return GradientCheck(name=name, backend=test, reference=ref, max_diff=max_diff, tol=tol, gradcheck=bool(ok))
