"""The four geometric losses of the paper (section 3, eqs. 2–6) and the weighted objective.

All losses take the flattened output W (B, C, G, G) of the STN, whose column ``c`` is the mirror of column
``G − 1 − c`` (the UV map is exactly symmetric, docs/conventions.md §2.4), and an explicit visibility mask
M (B, 1, G, G) in {0, 1}. The authors inferred visibility from exactly-zero pixels instead; that is
reproducible with :func:`mask_from_nonzero`.

Two families are provided:

* the **correct** losses (``symmetry_loss``, ``siamese_loss``, ``landmark_loss``, ``prior_loss``): plain
  differentiable functions whose gradient is the gradient of the value they return;
* the **authors' MatConvNet layers** (``symmetry_loss_matconvnet``, ``siamese_loss_matconvnet``), whose
  backward passes are *not* the gradients of their forward values (docs/conventions.md §5): the count
  normalisation is applied in the forward only, the symmetry gradient is half the true one, and the
  siamese gradient of the mirrored image has the wrong sign. They exist to demonstrate the discrepancy.

How the two appearance terms are masked, paired and normalised is named by a :class:`LossConfig`:
:data:`DEFAULT_LOSS_CONFIG` (explicit masks, mirrored siamese pairs, means) or
:data:`AUTHORS_LOSS_VALUES` (the values the authors' layers report), evaluated by
:func:`appearance_terms`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch

from mmstn.errors import ShapeError

__all__ = [
    "AUTHORS_LOSS_VALUES",
    "AUTHORS_WEIGHTS",
    "DEFAULT_LOSS_CONFIG",
    "LossConfig",
    "LossWeights",
    "appearance_terms",
    "landmark_loss",
    "mask_from_nonzero",
    "matconvnet_gradient_ratios",
    "objective",
    "prior_loss",
    "siamese_loss",
    "siamese_loss_matconvnet",
    "symmetry_loss",
    "symmetry_loss_matconvnet",
]

Reduction = Literal["sum", "mean"]


def _check_image(name: str, x: torch.Tensor) -> None:
    if x.ndim != 4:
        raise ShapeError(f"{name} must have shape (B, C, G, G), got {tuple(x.shape)}")


def _check_mask(name: str, m: torch.Tensor, w: torch.Tensor) -> None:
    if m.ndim != 4 or m.shape[0] != w.shape[0] or m.shape[2:] != w.shape[2:] or m.shape[1] not in (1, w.shape[1]):
        raise ShapeError(
            f"{name} must have shape (B, 1, G, G) matching the image {tuple(w.shape)}, got {tuple(m.shape)}"
        )


def mirror_columns(x: torch.Tensor) -> torch.Tensor:
    """Mirror a flattened grid: column c ↔ G − 1 − c. Tensor (..., G, G) → same shape."""
    return torch.flip(x, dims=(-1,))


def mask_from_nonzero(w: torch.Tensor) -> torch.Tensor:
    """The authors' implicit mask: 1 where the masked sample is not exactly 0, per channel; (B, C, G, G)."""
    return (w != 0).to(w.dtype)


def symmetry_loss(w: torch.Tensor, mask: torch.Tensor, reduction: Reduction = "mean") -> torch.Tensor:
    """Bilateral symmetry loss (paper eq. 2).

    Over the cells visible both at (r, c) and at the mirror cell (r, G − 1 − c), the squared colour
    difference between the two.

    Args:
        w: flattened images, tensor of shape (B, C, G, G).
        mask: visibility, tensor of shape (B, 1, G, G) (or (B, C, G, G)), values in {0, 1}; detached.
        reduction: ``"sum"`` over everything, or ``"mean"`` over the number of compared entries
            (cells × channels, both halves counted, the count treated as a constant).

    Returns:
        Scalar tensor.
    """
    _check_image("w", w)
    _check_mask("mask", mask, w)
    # Each pair (c, G − 1 − c) appears twice in the sum: evaluate the left half once and double it
    # (half the memory traffic; an odd G's centre column is its own mirror and contributes 0).
    g = w.shape[-1]
    h = g // 2
    m = (mask[..., :h] * mask[..., g - h :].flip(-1)).detach()
    diff = w[..., :h] - w[..., g - h :].flip(-1)
    total = 2.0 * (diff.square() * m).sum()
    if reduction == "sum":
        return total
    count = 2.0 * m.sum() * (w.shape[1] if m.shape[1] == 1 else 1)
    return total / count.clamp(min=1.0)


def siamese_loss(
    w1: torch.Tensor,
    mask1: torch.Tensor,
    w2: torch.Tensor,
    mask2: torch.Tensor,
    *,
    mode: Literal["mirrored", "direct"] = "mirrored",
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Siamese multi-view loss (paper eq. 3).

    ``mode="mirrored"`` (default): ``w2`` is the flattened output of the horizontally reflected image;
    it is mirrored back (columns reversed) before comparing, so that the same surface point is compared.
    ``mode="direct"``: compare cell by cell, for true multi-view pairs of the same face (or to reproduce
    the authors' comparison, which does not mirror).

    Args:
        w1, w2: flattened images, tensors of shape (B, C, G, G).
        mask1, mask2: their visibility masks, (B, 1, G, G).
        mode: see above.
        reduction: ``"sum"`` or ``"mean"`` over the compared entries.

    Returns:
        Scalar tensor.
    """
    for name, x in (("w1", w1), ("w2", w2)):
        _check_image(name, x)
    if w1.shape != w2.shape:
        raise ShapeError(f"w1 and w2 must have the same shape, got {tuple(w1.shape)} and {tuple(w2.shape)}")
    _check_mask("mask1", mask1, w1)
    _check_mask("mask2", mask2, w2)
    if mode == "mirrored":
        w2, mask2 = mirror_columns(w2), mirror_columns(mask2)
    elif mode != "direct":
        raise ValueError(f"mode={mode!r}: use 'mirrored' or 'direct'")
    m = (mask1 * mask2).detach()
    total = ((w1 - w2).square() * m).sum()  # m is 0/1, so m·d² = (m·d)²
    if reduction == "sum":
        return total
    count = m.sum() * (w1.shape[1] if m.shape[1] == 1 else 1)
    return total / count.clamp(min=1.0)


def landmark_loss(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, reduction: Reduction = "sum"
) -> torch.Tensor:
    """Landmark loss (paper eq. 5): Σ_b Σ_l c_bl ‖ŷ_bl − y_bl‖².

    Args:
        pred: predicted landmark positions, (B, L, 2), in the label frame the grid layer uses.
        target: labelled positions, (B, L, 2), same frame.
        weight: confidences c, (B, L); 0 for invisible landmarks (their labels are ignored, even NaN).
        reduction: ``"sum"`` (the authors') or ``"mean"`` (divided by the batch size B).

    Returns:
        Scalar tensor, squared pixels.
    """
    if pred.ndim != 3 or pred.shape[-1] != 2 or target.shape != pred.shape:
        raise ShapeError(
            f"pred and target must both have shape (B, L, 2), got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if weight is None:
        weight = torch.ones(pred.shape[:2], dtype=pred.dtype, device=pred.device)
    if weight.shape != pred.shape[:2]:
        raise ShapeError(f"weight must have shape {tuple(pred.shape[:2])}, got {tuple(weight.shape)}")
    # Invisible labels may be stored as (0, 0) or NaN: zero them so they cannot poison the sum.
    visible = weight != 0
    target = torch.where(visible[..., None], target, pred.detach())
    sq = ((pred - target) ** 2).sum(-1)
    total = (weight * sq).sum()
    return total if reduction == "sum" else total / pred.shape[0]


def prior_loss(alpha: torch.Tensor, reduction: Reduction = "sum") -> torch.Tensor:
    """Statistical prior (paper eq. 6): Σ_b ‖α_b‖², the negative log-likelihood of α ~ N(0, I) up to ½.

    Args:
        alpha: shape coefficients, (B, D).
        reduction: ``"sum"`` over the batch (the authors') or ``"mean"``.
    """
    if alpha.ndim != 2:
        raise ShapeError(f"alpha must have shape (B, D), got {tuple(alpha.shape)}")
    total = (alpha * alpha).sum()
    return total if reduction == "sum" else total / alpha.shape[0]


# ----------------------------------------------------------------------------- the authors' layers
class _SymmetryMatConvNet(torch.autograd.Function):
    """``vl_nnsymmetry``: forward Σd²/#{x ≠ 0}; backward 2·(x − fliplr x)·m with no count (docs/conventions.md §5.3)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        fx = mirror_columns(x)
        m = ((x != 0) & (fx != 0)).to(x.dtype)
        d = (x - fx) * m
        ctx.save_for_backward(d)
        return (d * d).sum() / (x != 0).sum().clamp(min=1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor]:  # type: ignore[override]
        (d,) = ctx.saved_tensors
        return (2.0 * d * grad,)


class _SiameseMatConvNet(torch.autograd.Function):
    """``vl_nnsiamese``: forward Σ((x_odd − x_even)m)²/#{x ≠ 0}; backward gives *both* images +g (the bug)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        odd, even = x[0::2], x[1::2]
        m = ((odd != 0) & (even != 0)).to(x.dtype)
        d = (odd - even) * m
        ctx.save_for_backward(d)
        return (d * d).sum() / (x != 0).sum().clamp(min=1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor]:  # type: ignore[override]
        (d,) = ctx.saved_tensors
        g = 2.0 * d * grad
        return (torch.repeat_interleave(g, 2, dim=0),)  # MATLAB repelem: the even image gets +g, not −g


def symmetry_loss_matconvnet(w: torch.Tensor) -> torch.Tensor:
    """The authors' symmetry layer on masked samples (B, C, G, G), with its (inconsistent) backward."""
    _check_image("w", w)
    return _SymmetryMatConvNet.apply(w)


def siamese_loss_matconvnet(w: torch.Tensor) -> torch.Tensor:
    """The authors' siamese layer on a batch of (original, mirror) pairs interleaved along B (B even)."""
    _check_image("w", w)
    if w.shape[0] % 2:
        raise ShapeError(f"the siamese layer needs an even batch of (image, mirror) pairs, got B={w.shape[0]}")
    return _SiameseMatConvNet.apply(w)


# ---------------------------------------------------------------------------------- the objective
@dataclass(frozen=True)
class LossWeights:
    """Weights of the four terms. The defaults are the authors' (``opts.derOutputs``, docs/conventions.md §5)."""

    landmark: float = 0.8998
    prior: float = 0.1
    siamese: float = 1e-4
    symmetry: float = 1e-4

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


AUTHORS_WEIGHTS = LossWeights()


@dataclass(frozen=True)
class LossConfig:
    """How the symmetry and siamese terms are masked, paired and normalised (see :func:`appearance_terms`).

    Attributes:
        siamese_mode: ``"mirrored"`` (compare V with the column-mirrored V′ of the reflected image: the same
            surface point) or ``"direct"`` (cell by cell, as the authors' layer does).
        reduction: ``"mean"`` (over the compared entries), ``"sum"``, or ``"nonzero"``: the sum divided by
            the number of non-zero entries of the images the term sees (the authors' forward).
        mask: ``"explicit"`` (the STN's visibility mask M) or ``"nonzero"`` (visible ⇔ the masked sample is
            not exactly 0, per channel: the authors' implicit mask, which also drops zero padding and black).
        weights: the weights of the four terms in the objective.
    """

    siamese_mode: Literal["mirrored", "direct"] = "mirrored"
    reduction: Literal["mean", "sum", "nonzero"] = "mean"
    mask: Literal["explicit", "nonzero"] = "explicit"
    weights: LossWeights = AUTHORS_WEIGHTS

    def __post_init__(self) -> None:
        for name, allowed in (("siamese_mode", ("mirrored", "direct")), ("reduction", ("mean", "sum", "nonzero")),
                              ("mask", ("explicit", "nonzero"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"LossConfig.{name}={getattr(self, name)!r}: use one of {allowed}")
        if not isinstance(self.weights, LossWeights):
            raise ValueError(f"LossConfig.weights={self.weights!r}: must be a LossWeights")


#: The recommended configuration: explicit visibility masks, mirrored siamese pairs, means over the
#: compared entries (a term's scale does not depend on G, the batch or how much of the face is visible).
DEFAULT_LOSS_CONFIG = LossConfig()

#: The configuration whose values equal those of the authors' MatConvNet layers (``vl_nnsymmetry``,
#: ``vl_nnsiamese``): cells compared directly (the mirror's texture is not mirrored back), masks taken from
#: the non-zero masked samples, sums divided by the number of non-zero entries of the whole batch tensor
#: the layer sees (both images of every pair). Only the values: the authors' backward passes are not the
#: gradients of these values (see :func:`matconvnet_gradient_ratios`); the gradients here are the true ones.
#: The landmark and prior losses need nothing special: with ``reduction="sum"`` (their default) they are
#: already the authors' values.
AUTHORS_LOSS_VALUES = LossConfig(siamese_mode="direct", reduction="nonzero", mask="nonzero", weights=AUTHORS_WEIGHTS)


def objective(
    terms: dict[str, torch.Tensor], weights: LossWeights = AUTHORS_WEIGHTS, normaliser: float = 1.0
) -> torch.Tensor:
    """Weighted sum of the loss terms present in ``terms`` (keys: landmark, prior, siamese, symmetry).

    ``normaliser`` divides the total: the authors' MatConvNet trainer divides the gradient by the
    32 imdb images of a batch although the network sees 64 (each image and its mirror), docs/conventions.md §5.
    """
    unknown = set(terms) - set(weights.as_dict())
    if unknown:
        raise KeyError(f"unknown loss terms {sorted(unknown)}; expected a subset of {sorted(weights.as_dict())}")
    total = sum(getattr(weights, k) * v for k, v in terms.items())
    return total / normaliser  # type: ignore[return-value]


def appearance_terms(
    w: torch.Tensor,
    mask: torch.Tensor | None,
    n_original: int | None = None,
    config: LossConfig = DEFAULT_LOSS_CONFIG,
) -> dict[str, torch.Tensor]:
    """The symmetry and siamese terms of a batch, formed as ``config`` says.

    Args:
        w: (B, C, G, G) masked flattened images W = V ∘ M. With ``n_original = b``, rows b.. are the
            flattened outputs of the reflected images, row b + i the mirror of row i (B = 2b).
        mask: (B, 1, G, G) visibility M in {0, 1}; ignored (may be ``None``) when ``config.mask ==
            "nonzero"``.
        n_original: b, to also return the siamese term; ``None`` for the symmetry term only.
        config: :data:`DEFAULT_LOSS_CONFIG`, :data:`AUTHORS_LOSS_VALUES` or another :class:`LossConfig`.

    Returns:
        ``{"symmetry": scalar}``, plus ``"siamese"`` when ``n_original`` is given; the symmetry term runs
        over all B images (originals and mirrors), as in the authors' network.
    """
    _check_image("w", w)
    if config.mask == "nonzero":
        mask = mask_from_nonzero(w)
    elif mask is None:
        raise ValueError("appearance_terms: a mask is needed unless config.mask == 'nonzero'")
    red: Reduction = "sum" if config.reduction == "nonzero" else config.reduction  # type: ignore[assignment]
    terms = {"symmetry": symmetry_loss(w, mask, reduction=red)}
    if n_original is not None:
        b = int(n_original)
        if w.shape[0] != 2 * b:
            raise ShapeError(f"n_original={b} needs a batch of 2·{b} images (originals, then mirrors), "
                             f"got B={w.shape[0]}")
        terms["siamese"] = siamese_loss(w[:b], mask[:b], w[b:], mask[b:], mode=config.siamese_mode, reduction=red)
    if config.reduction == "nonzero":
        # both layers see the whole batch tensor (every pair's two images) and divide by its non-zero count
        count = (w != 0).sum().clamp(min=1).to(w.dtype)
        terms = {k: v / count for k, v in terms.items()}
    return terms


def matconvnet_gradient_ratios(w: torch.Tensor) -> dict[str, float]:
    """How the authors' backward passes relate to the true gradients of their own forward values.

    Args:
        w: masked flattened outputs (B, C, G, G), B even, (original, mirror) pairs interleaved, with exact
            zeros where invisible (the authors' convention).

    Returns:
        Least-squares ratios ⟨g_authors, g_true⟩ / ⟨g_true, g_true⟩, plus the count #{x ≠ 0} that the
        forward divides by: ``symmetry`` (count / 2: no count in the backward, half the gradient),
        ``siamese_original`` (count) and ``siamese_mirror`` (−count: the wrong sign).
    """

    def grads(fn) -> torch.Tensor:
        x = w.detach().clone().requires_grad_(True)
        fn(x).backward()
        return x.grad

    def true_symmetry(x: torch.Tensor) -> torch.Tensor:
        m = mask_from_nonzero(x).detach()
        m = m * mirror_columns(m)
        return (((x - mirror_columns(x)) * m) ** 2).sum() / (x != 0).sum()

    def true_siamese(x: torch.Tensor) -> torch.Tensor:
        m = (mask_from_nonzero(x[0::2]) * mask_from_nonzero(x[1::2])).detach()
        return (((x[0::2] - x[1::2]) * m) ** 2).sum() / (x != 0).sum()

    def ratio(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a * b).sum() / (b * b).sum().clamp(min=1e-300))

    g_sym, t_sym = grads(symmetry_loss_matconvnet), grads(true_symmetry)
    g_siam, t_siam = grads(siamese_loss_matconvnet), grads(true_siamese)
    return {
        "count": float((w != 0).sum()),
        "symmetry": ratio(g_sym, t_sym),
        "siamese_original": ratio(g_siam[0::2], t_siam[0::2]),
        "siamese_mirror": ratio(g_siam[1::2], t_siam[1::2]),
    }
