"""The four geometric losses: values on hand-computed cases, gradients, and the authors' discrepancies."""

from __future__ import annotations

import pytest
import torch

from mmstn.errors import ShapeError
from mmstn.losses import (
    AUTHORS_LOSS_VALUES,
    AUTHORS_WEIGHTS,
    DEFAULT_LOSS_CONFIG,
    LossConfig,
    LossWeights,
    appearance_terms,
    landmark_loss,
    mask_from_nonzero,
    matconvnet_gradient_ratios,
    mirror_columns,
    objective,
    prior_loss,
    siamese_loss,
    siamese_loss_matconvnet,
    symmetry_loss,
    symmetry_loss_matconvnet,
)

G = 6


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=torch.float64)


def _mask(b: int, seed: int = 1) -> torch.Tensor:
    return (_rand(b, 1, G, G, seed=seed) > 0.3).to(torch.float64)


def test_symmetry_zero_for_mirror_symmetric_image_and_positive_otherwise() -> None:
    w = _rand(2, 3, G, G)
    sym = 0.5 * (w + mirror_columns(w))
    m = torch.ones(2, 1, G, G, dtype=torch.float64)
    assert symmetry_loss(sym, m).item() == pytest.approx(0.0, abs=1e-15)
    assert symmetry_loss(w, m).item() > 1e-3


def test_symmetry_hand_computed_sum_and_mean() -> None:
    w = torch.zeros(1, 1, 1, 4, dtype=torch.float64)
    w[0, 0, 0] = torch.tensor([1.0, 2.0, 5.0, 3.0])
    m = torch.ones(1, 1, 1, 4, dtype=torch.float64)
    # pairs (0,3): (1-3)^2 counted twice, (1,2): (2-5)^2 counted twice
    assert symmetry_loss(w, m, reduction="sum").item() == pytest.approx(2 * 4 + 2 * 9)
    assert symmetry_loss(w, m, reduction="mean").item() == pytest.approx((2 * 4 + 2 * 9) / 4)
    m[0, 0, 0, 1] = 0  # cell 1 invisible: pair (1,2) drops out on both sides
    assert symmetry_loss(w, m, reduction="sum").item() == pytest.approx(2 * 4)


def test_symmetry_ignores_masked_cells_whatever_their_value() -> None:
    w = _rand(1, 3, G, G)
    m = _mask(1)
    w2 = w.clone()
    w2[(m * mirror_columns(m)).expand_as(w) == 0] = 1e6
    assert symmetry_loss(w2, m).item() == pytest.approx(symmetry_loss(w, m).item())


def test_siamese_mirrored_is_zero_for_a_face_and_its_reflection() -> None:
    w = _rand(2, 3, G, G)
    m = _mask(2)
    # The reflection of the image, flattened through a mirror-consistent fit, is the mirrored grid.
    assert siamese_loss(w, m, mirror_columns(w), mirror_columns(m)).item() == pytest.approx(0.0, abs=1e-15)
    assert siamese_loss(w, m, mirror_columns(w), mirror_columns(m), mode="direct").item() > 1e-3
    assert siamese_loss(w, m, w, m, mode="direct").item() == pytest.approx(0.0, abs=1e-15)


def test_landmark_loss_hand_computed_and_invisible_landmarks_ignored() -> None:
    pred = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]], dtype=torch.float64)
    target = torch.tensor([[[2.0, 2.0], [3.0, 6.0], [float("nan"), 7.0]]], dtype=torch.float64)
    weight = torch.tensor([[1.0, 0.5, 0.0]], dtype=torch.float64)
    value = landmark_loss(pred, target, weight)
    assert value.item() == pytest.approx(1.0 * 1 + 0.5 * 4)
    pred.requires_grad_(True)
    landmark_loss(pred, target, weight).backward()
    assert torch.isfinite(pred.grad).all()
    assert torch.equal(pred.grad[0, 2], torch.zeros(2, dtype=torch.float64))
    assert landmark_loss(pred.detach()[None, 0].repeat(2, 1, 1), target.repeat(2, 1, 1), weight.repeat(2, 1),
                         reduction="mean").item() == pytest.approx(3.0)


def test_prior_is_squared_norm() -> None:
    a = _rand(4, 10)
    assert prior_loss(a).item() == pytest.approx(float((a**2).sum()))
    assert prior_loss(a, reduction="mean").item() == pytest.approx(float((a**2).sum()) / 4)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_losses_pass_gradcheck(reduction: str) -> None:
    w = _rand(2, 3, G, G).requires_grad_(True)
    w2 = _rand(2, 3, G, G, seed=5).requires_grad_(True)
    m, m2 = _mask(2), _mask(2, seed=7)
    assert torch.autograd.gradcheck(lambda x: symmetry_loss(x, m, reduction), (w,))
    assert torch.autograd.gradcheck(lambda a, b: siamese_loss(a, m, b, m2, reduction=reduction), (w, w2))
    pred = _rand(2, 21, 2, seed=3).requires_grad_(True)
    target = _rand(2, 21, 2, seed=4)
    weight = (_rand(2, 21, seed=6) > 0.2).to(torch.float64)
    assert torch.autograd.gradcheck(lambda p: landmark_loss(p, target, weight, reduction), (pred,))
    alpha = _rand(2, 10, seed=8).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: prior_loss(a, reduction), (alpha,))


def test_matconvnet_symmetry_backward_is_half_the_true_gradient_without_count() -> None:
    w = _rand(2, 3, G, G) * (_rand(2, 3, G, G, seed=9) > 0.2)  # some exact zeros, as masked samples have
    x = w.clone().requires_grad_(True)
    symmetry_loss_matconvnet(x).backward()
    y = w.clone().requires_grad_(True)
    m = mask_from_nonzero(y) * mirror_columns(mask_from_nonzero(y))
    (0.5 * (((y - mirror_columns(y)) * m) ** 2).sum()).backward()
    torch.testing.assert_close(x.grad, y.grad, rtol=0, atol=1e-12)
    # ... and autograd of the forward *value* (Σ/count) is 2/count times that.
    count = (w != 0).sum()
    z = w.clone().requires_grad_(True)
    mz = mask_from_nonzero(z) * mirror_columns(mask_from_nonzero(z))
    ((((z - mirror_columns(z)) * mz) ** 2).sum() / count).backward()
    torch.testing.assert_close(z.grad, x.grad * 2 / count, rtol=1e-12, atol=1e-15)
    # Forward value agrees with the correct loss under the authors' normalisation.
    expected = float((((w - mirror_columns(w)) * mz) ** 2).sum() / count)
    assert symmetry_loss_matconvnet(w).item() == pytest.approx(expected)


def test_matconvnet_siamese_gives_the_mirror_image_the_wrong_sign() -> None:
    w = _rand(4, 3, G, G) + 0.1
    x = w.clone().requires_grad_(True)
    siamese_loss_matconvnet(x).backward()
    true = w.clone().requires_grad_(True)
    (((true[0::2] - true[1::2]) ** 2).sum() / (w != 0).sum()).backward()
    count = (w != 0).sum()
    # odd (original) images: MatConvNet drops the count; even (mirror) images: wrong sign as well.
    torch.testing.assert_close(x.grad[0::2], true.grad[0::2] * count, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x.grad[1::2], -true.grad[1::2] * count, rtol=1e-12, atol=1e-12)


def test_objective_uses_authors_weights_by_default_and_rejects_unknown_terms() -> None:
    terms = {k: torch.tensor(1.0) for k in ("landmark", "prior", "siamese", "symmetry")}
    assert objective(terms).item() == pytest.approx(0.8998 + 0.1 + 1e-4 + 1e-4)
    assert objective(terms, normaliser=32).item() == pytest.approx((0.8998 + 0.1 + 2e-4) / 32)
    assert objective({"prior": torch.tensor(2.0)}, LossWeights(prior=3.0)).item() == pytest.approx(6.0)
    assert AUTHORS_WEIGHTS.landmark == 0.8998
    with pytest.raises(KeyError, match="unknown loss terms"):
        objective({"photometric": torch.tensor(1.0)})


def test_shape_errors_name_the_argument() -> None:
    with pytest.raises(ShapeError, match="w must have shape"):
        symmetry_loss(torch.zeros(3, G, G), torch.ones(3, 1, G, G))
    with pytest.raises(ShapeError, match="mask"):
        symmetry_loss(torch.zeros(1, 3, G, G), torch.ones(1, 1, G, G + 1))
    with pytest.raises(ShapeError, match="alpha"):
        prior_loss(torch.zeros(10))
    with pytest.raises(ShapeError, match="even batch"):
        siamese_loss_matconvnet(torch.ones(3, 3, G, G))


def test_gradient_ratio_report_quantifies_the_authors_discrepancies() -> None:
    w = _rand(4, 3, G, G) * (_rand(4, 3, G, G, seed=11) > 0.2)
    report = matconvnet_gradient_ratios(w)
    count = float((w != 0).sum())
    assert report["count"] == count
    assert report["symmetry"] == pytest.approx(count / 2, rel=1e-9)
    assert report["siamese_original"] == pytest.approx(count, rel=1e-9)
    assert report["siamese_mirror"] == pytest.approx(-count, rel=1e-9)


def _authors_batch(b: int = 3, seed: int = 5) -> torch.Tensor:
    """Masked textures of b originals then b mirrors, with exact zeros (invisible, padding, black)."""
    v = _rand(2 * b, 3, G, G, seed=seed)
    w = v * _mask(2 * b, seed=seed + 1)
    w[0, 1, 2, 3] = 0.0  # a black sample in one channel of a visible cell
    return w


def _authors_values_by_hand(w: torch.Tensor, b: int) -> tuple[float, float]:
    """The authors' forward values, element by element: pairs interleaved, x_odd = original, x_even = mirror.

    symmetry: Σ over every image, channel and cell with x ≠ 0 and its mirror cell ≠ 0 of (x − mirror)²;
    siamese: Σ over pairs, channels and cells with both ≠ 0 of (x_odd − x_even)²; both / #{x ≠ 0}.
    """
    x = [w[i] if j == 0 else w[b + i] for i in range(b) for j in (0, 1)]  # the interleaved batch
    nnz = sum(int((xi != 0).sum()) for xi in x)
    sym = siam = 0.0
    for xi in x:
        for ch in range(3):
            for r in range(G):
                for c in range(G):
                    a, m = float(xi[ch, r, c]), float(xi[ch, r, G - 1 - c])
                    if a != 0 and m != 0:
                        sym += (a - m) ** 2
    for odd, even in zip(x[0::2], x[1::2], strict=True):
        for ch in range(3):
            for r in range(G):
                for c in range(G):
                    a, e = float(odd[ch, r, c]), float(even[ch, r, c])
                    if a != 0 and e != 0:
                        siam += (a - e) ** 2
    return sym / nnz, siam / nnz


def test_authors_loss_values_reproduce_the_authors_formulas() -> None:
    b = 3
    w = _authors_batch(b)
    sym, siam = _authors_values_by_hand(w, b)
    got = appearance_terms(w, None, n_original=b, config=AUTHORS_LOSS_VALUES)
    assert got["symmetry"].item() == pytest.approx(sym, rel=1e-12)
    assert got["siamese"].item() == pytest.approx(siam, rel=1e-12)
    # the same values as the forward of the authors' layers on the interleaved batch
    pairs = torch.stack([w[:b], w[b:]], 1).flatten(0, 1)
    assert symmetry_loss_matconvnet(pairs).item() == pytest.approx(sym, rel=1e-12)
    assert siamese_loss_matconvnet(pairs).item() == pytest.approx(siam, rel=1e-12)
    assert AUTHORS_LOSS_VALUES.weights == AUTHORS_WEIGHTS


def test_authors_loss_values_differ_from_the_default_and_have_true_gradients() -> None:
    b = 2
    w = _authors_batch(b, seed=9).requires_grad_()
    mask = _mask(2 * b, seed=10)
    ours = appearance_terms(w, mask, n_original=b, config=DEFAULT_LOSS_CONFIG)
    theirs = appearance_terms(w, None, n_original=b, config=AUTHORS_LOSS_VALUES)
    assert ours["siamese"].item() != pytest.approx(theirs["siamese"].item())
    # true gradients: perturb only the non-zero entries (a zero that moves would change the implicit mask)
    nz = w.detach() != 0

    def on_nonzero(vals: torch.Tensor) -> torch.Tensor:
        x = torch.zeros_like(w.detach()).masked_scatter(nz, vals)
        t = appearance_terms(x, None, b, AUTHORS_LOSS_VALUES)
        return t["siamese"] + t["symmetry"]

    assert torch.autograd.gradcheck(on_nonzero, (w.detach()[nz].clone().requires_grad_(),))
    # the default is the plain loss functions with the explicit mask
    assert ours["symmetry"].item() == pytest.approx(symmetry_loss(w, mask).item())
    ref = siamese_loss(w[:b], mask[:b], w[b:], mask[b:])
    assert ours["siamese"].item() == pytest.approx(ref.item())


def test_loss_config_rejects_unknown_options_and_missing_masks() -> None:
    with pytest.raises(ValueError, match="reduction"):
        LossConfig(reduction="nnz")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="siamese_mode"):
        LossConfig(siamese_mode="matconvnet")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mask"):
        appearance_terms(_authors_batch(), None)
    with pytest.raises(ShapeError, match="n_original"):
        appearance_terms(_authors_batch(3), None, n_original=2, config=AUTHORS_LOSS_VALUES)
