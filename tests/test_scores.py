"""Scores for flattened faces and the detailed test subjects (mmstn.scores)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmstn.comparison import compare_methods
from mmstn.data.detailed_subjects import DetailSettings, fine_detail, sample_subjects
from mmstn.errors import ShapeError
from mmstn.scores import (
    correspondence_score,
    detail_energy,
    detail_layer,
    masked_lowpass,
    photometric_error,
    radial_power_spectrum,
    retained_detail,
)
from mmstn.stn import STN3DMM, STNConfig
from mmstn.theta import THETA_ALPHA, THETA_T
from mmstn.uv import default_grid_model
from mmstn.uv.resample import grid_uv

G = 48


def _smooth(seed: int = 0, c: int = 3, g: int = G) -> torch.Tensor:
    """A smooth image (c, g, g): a few long-wavelength cosines around 0.5."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:g, 0:g] / g
    out = np.full((c, g, g), 0.5)
    for ch in range(c):
        for _ in range(3):
            kx, ky, ph = r.uniform(-1.5, 1.5), r.uniform(-1.5, 1.5), r.uniform(0, 2 * np.pi)
            out[ch] += 0.08 * np.cos(2 * np.pi * (kx * x + ky * y) + ph)
    return torch.from_numpy(out)


def _fine(seed: int = 1, c: int = 3, g: int = G, amp: float = 0.05) -> torch.Tensor:
    """Detail with wavelengths of 2.5–4 cells."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:g, 0:g]
    out = np.zeros((c, g, g))
    for _ in range(20):
        lam, ang, ph = r.uniform(2.5, 4.0), r.uniform(0, np.pi), r.uniform(0, 2 * np.pi)
        out += amp / math.sqrt(10) * np.cos(2 * np.pi * (np.cos(ang) * x + np.sin(ang) * y) / lam + ph)
    return torch.from_numpy(out)


def _disk(g: int = G, radius: float = 0.42) -> torch.Tensor:
    y, x = np.mgrid[0:g, 0:g] / (g - 1) - 0.5
    return torch.from_numpy((x**2 + y**2 <= radius**2)[None].astype(np.float64))


# ------------------------------------------------------------------------------------------ photometric
def test_photometric_error_values_masks_and_batches():
    a = _smooth()
    assert float(photometric_error(a, a)) == 0.0
    assert float(photometric_error(a + 0.1, a)) == pytest.approx(0.1)
    m = torch.zeros(1, G, G)
    m[:, :10] = 1
    b = a.clone()
    b[:, 10:] += 1.0  # outside the mask
    assert float(photometric_error(b, a, m)) == pytest.approx(0.0, abs=1e-12)
    batch = photometric_error(torch.stack([a, a + 0.2]), torch.stack([a, a]), m[None].expand(2, -1, -1, -1))
    assert batch.shape == (2,) and torch.allclose(batch, torch.tensor([0.0, 0.2], dtype=batch.dtype))
    assert torch.isnan(photometric_error(a, a, torch.zeros(G, G)))


def test_photometric_error_errors():
    a = _smooth()
    with pytest.raises(ShapeError, match="same shape"):
        photometric_error(a, a[:, :10])
    with pytest.raises(ShapeError, match="mask"):
        photometric_error(a, a, torch.ones(5, 5))
    with pytest.raises(ValueError, match="x"):
        photometric_error(torch.full_like(a, float("nan")), a)
    with pytest.raises(ShapeError, match="x"):
        photometric_error(a[0, 0], a[0, 0])


# ------------------------------------------------------------------------------------------ detail
def test_masked_lowpass_keeps_constants_up_to_the_mask_border():
    m = _disk()
    x = torch.full((3, G, G), 0.7, dtype=torch.float64)
    x[:, m[0] == 0] = 0.0  # what lies outside the mask must not leak in
    low, weight = masked_lowpass(x, m, 2.0)
    assert torch.allclose(low[:, m[0] > 0], torch.full_like(low[:, m[0] > 0], 0.7))
    assert weight.shape == (1, G, G)
    with pytest.raises(ValueError, match="sigma"):
        masked_lowpass(x, m, 0.0)


def test_detail_layer_removes_smooth_content_and_keeps_fine_detail():
    m = _disk()
    smooth, fine = _smooth(), _fine()
    e_smooth = float(detail_energy(smooth, m))
    e_fine = float(detail_energy(fine, m))
    assert e_smooth < 0.01 * e_fine
    d, interior = detail_layer(smooth + fine, m)
    assert interior.sum() < m.sum()  # the border ring is not interior
    assert float((d * interior).abs().max()) > 0
    score = retained_detail(smooth + fine, fine, m)
    assert float(score.energy_ratio) == pytest.approx(1.0, abs=0.05)
    assert float(score.correlation) > 0.98
    assert score.cutoff == pytest.approx(0.1874 / 1.5, rel=1e-3)


def test_retained_detail_of_a_blurred_copy_and_with_a_baseline():
    m = _disk()
    truth = _smooth() + _fine()
    blurred, _ = masked_lowpass(truth, m, 1.5)
    score = retained_detail(blurred, truth, m)
    assert float(score.energy_ratio) < 0.1
    # against the baseline "truth without the fine detail", the smooth image keeps none of that detail
    base = retained_detail(_smooth(), truth, m, baseline=_smooth())
    assert float(base.correlation) == pytest.approx(0.0, abs=1e-9)
    keeps = retained_detail(truth, truth, m, baseline=_smooth())
    assert float(keeps.correlation) == pytest.approx(1.0)
    with pytest.raises(ShapeError, match="baseline"):
        retained_detail(truth, truth, m, baseline=truth[:, :5])


def test_radial_power_spectrum_peaks_at_a_sinusoids_frequency():
    x = np.mgrid[0:64, 0:64][1]
    wave = torch.from_numpy(0.5 + 0.1 * np.cos(2 * np.pi * 0.25 * x))[None].repeat(3, 1, 1)
    f, p = radial_power_spectrum(wave, torch.ones(1, 64, 64), n_bins=20)
    assert f.shape == p.shape == (20,)
    assert abs(f[np.nanargmax(p)] - 0.25) <= 0.5 / 20


# ------------------------------------------------------------------------------------------ correspondence
def test_correspondence_score_separates_subjects():
    S, n = 3, 4
    r = torch.Generator().manual_seed(0)
    identity = torch.rand(S, 1, 3, G, G, generator=r, dtype=torch.float64) * 0.5 + 0.25
    outputs = identity + 0.02 * torch.randn(S, n, 3, G, G, generator=r, dtype=torch.float64)
    score = correspondence_score(outputs.float())
    assert score.within < score.between
    assert score.ratio < 0.3 and score.nn_accuracy == 1.0
    assert score.distances.shape == (S * n, S * n) and np.isnan(np.diag(score.distances)).all()
    assert score.subject_ids.tolist() == [0] * n + [1] * n + [2] * n
    # the (N, C, G, G) + ids layout is the same score
    flat = correspondence_score(outputs.float().reshape(S * n, 3, G, G), None, torch.arange(S).repeat_interleave(n))
    np.testing.assert_allclose(flat.distances, score.distances, equal_nan=True)
    same = correspondence_score(identity.expand(S, n, -1, -1, -1).clone().float() * 0 + 0.5)
    assert same.within == pytest.approx(0.0, abs=1e-6) and same.between == pytest.approx(0.0, abs=1e-6)


def test_correspondence_score_uses_joint_masks_and_gain_normalisation():
    S, n = 2, 2
    base = _smooth(0)[None, None].repeat(S, n, 1, 1, 1).float()
    base[1] += _fine(3).float()[None]
    outputs = base.clone()
    outputs[:, 1] *= 1.7  # a brighter light on every second image: removed by the gain normalisation
    masks = torch.ones(S, n, 1, G, G)
    masks[:, 0, :, :, : G // 2] = 0  # first images see the right half, second images all of it
    score = correspondence_score(outputs, masks, normalise="gain")
    assert score.within == pytest.approx(0.0, abs=1e-5)
    assert score.nn_accuracy == 1.0
    raw = correspondence_score(outputs, masks)
    assert raw.within > 0.1
    tiny = torch.zeros(S, n, 1, G, G)
    tiny[..., :2, :2] = 1
    assert math.isnan(correspondence_score(outputs, tiny).within)
    hp = correspondence_score(outputs, masks, normalise="gain", highpass_sigma=1.5)
    assert hp.within < 0.2 * hp.between


def test_correspondence_score_errors():
    with pytest.raises(ShapeError, match="subject_ids"):
        correspondence_score(torch.zeros(2, 3, G, G))
    with pytest.raises(ShapeError, match="outputs"):
        correspondence_score(torch.zeros(2, G, G))
    with pytest.raises(ValueError, match="normalise"):
        correspondence_score(torch.zeros(2, 2, 3, G, G), normalise="bogus")
    with pytest.raises(ShapeError, match="2 subjects"):
        correspondence_score(torch.zeros(1, 3, 3, G, G))
    with pytest.raises(ShapeError, match="masks"):
        correspondence_score(torch.zeros(2, 2, 3, G, G), torch.ones(2, 2, G, G))
    with pytest.raises(ValueError, match="outputs"):
        correspondence_score(torch.full((2, 2, 3, G, G), float("nan")))


# ------------------------------------------------------------------------------------------ detail field
def test_fine_detail_is_deterministic_per_subject_and_can_be_switched_off():
    uv = grid_uv(64)
    a, b = fine_detail(uv, 0, seed=0), fine_detail(uv, 0, seed=0)
    assert np.array_equal(a, b) and a.shape == (64 * 64, 3)
    assert not np.allclose(a, fine_detail(uv, 1, seed=0))
    assert 0.9 < a.mean() < 1.02 and a.std() > 0.03
    assert np.all(fine_detail(uv, 0, settings=DetailSettings().scaled(0.0)) == 1.0)
    with pytest.raises(ShapeError, match="uv"):
        fine_detail(uv[:, :1], 0)


def test_fine_detail_lies_outside_the_texture_span():
    g = default_grid_model(112)
    pca = g.colour.double()
    detail = pca * torch.from_numpy(fine_detail(grid_uv(112), 3, seed=0)) - pca  # (N, 3)
    T = g.texture_basis.double().reshape(g.texture_basis.shape[0], -1).T  # (3N, K)
    coef = torch.linalg.lstsq(T, detail.reshape(-1, 1)).solution
    explained = float((T @ coef).pow(2).sum() / detail.pow(2).sum())
    assert explained < 0.05, explained


# ------------------------------------------------------------------------------------------ the comparison
@pytest.fixture(scope="module")
def subjects():
    return sample_subjects(2, 2, seed=0)


@pytest.fixture(scope="module")
def stn():
    return STN3DMM(default_grid_model(112), STNConfig.paper(grid_size=112))


def test_sample_subjects_ground_truth(subjects, stn):
    s = subjects
    assert s.images.shape == (2, 2, 3, 224, 224) and s.theta.shape == (2, 2, 16)
    assert s.truth.shape == s.truth_pca.shape == (2, 2, 3, 112, 112)
    assert s.albedo.shape == s.model_albedo.shape == (2, 3, 112, 112)
    assert s.beta.shape == (2, 4)  # the ICT face has 4 colour modes
    assert s.landmarks.shape == (2, 2, 21, 2) and s.visible.shape == (2, 2, 21) and s.visible.sum() > 40
    assert s.flat("images").shape == (4, 3, 224, 224)
    n_id = default_grid_model(112).n_identity
    assert torch.equal(s.theta[0, 0, THETA_ALPHA][:n_id], s.theta[0, 1, THETA_ALPHA][:n_id])  # identity per subject
    assert not torch.equal(s.albedo[0], s.albedo[1])
    # an exact resampling at the true θ holds the true texture (noise σ = 0.005 and bilinear mixing aside)
    with torch.no_grad():
        out = stn(s.flat("images"), s.flat("theta"))
    inner = out.mask * (out.grid.abs() < 0.98).all(-1)[:, None]
    err = photometric_error(out.sampled, s.flat("truth"), inner)
    assert float(err.max()) < 0.075  # measured 0.03-0.07 on the ICT face (a grid cell spans ~2 px here)
    shifted = s.flat("theta").clone()
    shifted[:, THETA_T] += 2.0  # two pixels off: clearly worse on every image
    with torch.no_grad():
        off = stn(s.flat("images"), shifted)
    assert (err < 0.8 * photometric_error(off.sampled, s.flat("truth"), inner)).all()
    again = sample_subjects(2, 1, seed=0)
    assert torch.equal(again.images[:, 0], s.images[:, 0])


def test_stn_output_retains_more_detail_than_the_reconstruction(subjects, stn):
    g = default_grid_model(112)
    s = subjects
    comp = compare_methods(stn, g, s.flat("images"), s.flat("theta"), truth=s.flat("truth"),
                           truth_pca=s.flat("truth_pca"), face_mask=s.flat("face_mask"))
    scores = comp.scores()
    ours, model = scores["3DMM-STN output"], scores["model-based reconstruction"]
    assert ours["detail energy vs truth"] > model["detail energy vs truth"] + 0.2
    assert ours["detail corr. vs truth"] > model["detail corr. vs truth"] + 0.1
    assert ours["out-of-span detail corr."] > 0.6 > 0.1 > model["out-of-span detail corr."]
    assert ours["grid RMSE vs input"] == 0.0 and model["grid RMSE vs input"] > 0.01
    assert ours["image RMSE"] < model["image RMSE"]
    assert comp.reconstruction.shape == comp.stn_output.shape == (4, 3, 112, 112)
    assert comp.pixels.shape == (4, 224, 224) and comp.pixels.any()
    with pytest.raises(ShapeError, match="theta"):
        compare_methods(stn, g, s.flat("images"), s.flat("theta")[:2])
