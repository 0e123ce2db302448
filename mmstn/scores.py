"""Scores for flattened faces — photometric error, retained detail, correspondence — and the test subjects they
are measured on: built-in subjects whose albedo carries fine detail the morphable model cannot represent.

Every score takes plain tensors, so it applies to any flattened output (the 3DMM-STN's, a model-based
reconstruction resampled onto the grid, an albedo map, a true texture). Conventions: a flattened image is
(C, G, G) (a batch (B, C, G, G)), a mask (1, G, G) (or (B, 1, G, G)) with 1 = use this cell.

**Photometric error** (:func:`photometric_error`): root-mean-square difference over the masked cells (or
pixels) and the channels, in colour units (images in [0, 1]).

**Retained detail** (:func:`detail_layer`, :func:`retained_detail`). The detail layer of x is
D(x) = x − L_σ(x), where L_σ is a Gaussian low-pass of standard deviation σ grid cells computed by normalised
convolution inside the mask, L_σ(x) = g_σ ⋆ (m x) / g_σ ⋆ m, so the mask's border does not leak into it.
Its frequency response is exp(−2π²σ²f²): the detail layer keeps what lies above the half-power cut-off
f_c = √(ln 2 / 2π²) / σ = 0.187/σ cycles per cell (σ = 1.5: f_c = 0.125, wavelengths shorter than 8 cells,
about 13 mm on the built-in mean face at G = 112). The detail energy E(x) = mean of D(x)² over the channels
and the *interior* cells, those whose low-pass weight g_σ ⋆ m is at least 0.75 (at least three quarters of the
low-pass support is valid). :func:`retained_detail` reports, against a reference r (the true texture, or the
input's own resampling): the energy ratio E(x)/E(r) and the correlation
ρ = ⟨D(x), D(r)⟩ / (‖D(x)‖ ‖D(r)‖) over the interior, i.e. whether the detail is *the right detail in the
right place*, not only the right amount.

**Correspondence** (:func:`correspondence_score`): for S subjects × n images of flattened outputs, the
root-mean-square distance of every pair of images over their jointly visible cells; within-subject pairs
should be closer than between-subject pairs when the outputs are in dense correspondence and carry identity.

**Subjects with detail outside the PCA span** (:func:`fine_detail`, :func:`sample_subjects`): real skin has
pores, freckles, moles and lines that no low-dimensional PCA albedo spans — the crux of the paper's
argument (§1.2, §4). The built-in texture basis is smooth, so each synthetic subject's albedo is multiplied by
a subject-specific detail field defined continuously on the UV square: band-pass skin grain, freckles
concentrated on the cheeks and nose, a few moles and forehead lines. Images are rendered from a finer grid
model (2G − 1 vertices a side by default, so that every STN grid vertex is a render vertex) with the project's
ambient + Lambert light (:class:`mmstn.render.Lighting`), which order-2 SH only approximates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from mmstn.data.synthetic import (
    FastFaceRenderer,
    SceneDistribution,
    draw_lighting,
    euler_to_axis_angle,
    reference_scale,
    subject_parameters,
)
from mmstn.errors import ShapeError, check_finite
from mmstn.models.morphable import MorphableModel
from mmstn.reconstruction import one_thread
from mmstn.render import Lighting

__all__ = [
    "Comparison",
    "CorrespondenceScore",
    "DetailScore",
    "DetailSettings",
    "SubjectImages",
    "compare_methods",
    "correspondence_score",
    "detail_energy",
    "detail_layer",
    "fine_detail",
    "masked_lowpass",
    "photometric_error",
    "radial_power_spectrum",
    "retained_detail",
    "sample_subjects",
    "summarise_distances",
]

#: Interior cells: at least this fraction of the low-pass support lies inside the mask.
INTERIOR = 0.75


# ------------------------------------------------------------------------------------------ helpers
def _batch(x: torch.Tensor, name: str) -> tuple[torch.Tensor, bool]:
    if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
        raise ShapeError(f"{name} must be a floating-point tensor (C, H, W) or (B, C, H, W), got {type(x).__name__}")
    if x.ndim == 3:
        return x[None], True
    if x.ndim != 4:
        raise ShapeError(f"{name} must have shape (C, H, W) or (B, C, H, W), got {tuple(x.shape)}")
    return x, False


def _mask_like(mask, x: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """A (B, 1, H, W) float 0/1 mask for x (B, C, H, W); accepts (H, W), (1, H, W), (B, 1, H, W), bool/float/array."""
    if mask is None:
        return torch.ones(x.shape[0], 1, *x.shape[2:], dtype=x.dtype)
    m = torch.as_tensor(mask)
    if m.ndim == 2:
        m = m[None, None]
    elif m.ndim == 3:
        m = m[None] if m.shape[0] == 1 else m[:, None]
    if m.ndim != 4 or m.shape[1] != 1 or m.shape[2:] != x.shape[2:] or m.shape[0] not in (1, x.shape[0]):
        raise ShapeError(f"{name} must have shape (H, W), (1, H, W) or (B, 1, H, W) matching {tuple(x.shape)}, "
                         f"got {tuple(torch.as_tensor(mask).shape)}")
    return (m.to(x.dtype) > 0.5).to(x.dtype).expand(x.shape[0], 1, *x.shape[2:])


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) with zero padding (radius ⌈3σ⌉)."""
    r = max(math.ceil(3.0 * sigma), 1)
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    y = F.conv2d(F.pad(x, (r, r, 0, 0)), k.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(y, (0, 0, r, r)), k.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


# ------------------------------------------------------------------------------------------ photometric
@one_thread()
def photometric_error(x: torch.Tensor, reference: torch.Tensor, mask=None) -> torch.Tensor:
    """Root-mean-square difference over the masked cells/pixels and the channels.

    Args:
        x, reference: (C, H, W) or (B, C, H, W), colour units.
        mask: (H, W), (1, H, W) or (B, 1, H, W), 1 = compare; default everywhere.

    Returns:
        () for unbatched input, else (B,); NaN where the mask is empty.
    """
    xb, single = _batch(x, "x")
    rb, _ = _batch(reference, "reference")
    if rb.shape != xb.shape:
        raise ShapeError(f"x {tuple(x.shape)} and reference {tuple(reference.shape)} must have the same shape")
    check_finite("x", xb)
    check_finite("reference", rb)
    m = _mask_like(mask, xb)
    n = m.sum((1, 2, 3)) * xb.shape[1]
    err = (((xb - rb) ** 2) * m).sum((1, 2, 3)) / n
    out = torch.where(n > 0, err.sqrt(), torch.full_like(err, float("nan")))
    return out[0] if single else out


# ------------------------------------------------------------------------------------------ detail
@one_thread()
def masked_lowpass(x: torch.Tensor, mask=None, sigma: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised-convolution Gaussian low-pass L_σ(x) = g_σ ⋆ (m x) / g_σ ⋆ m (module docstring).

    Args:
        x: (C, G, G) or (B, C, G, G).
        mask: cells to use (default all).
        sigma: σ in cells.

    Returns:
        (low-pass, like x; support weight g_σ ⋆ m, (B, 1, G, G) or (1, G, G)).
    """
    if sigma <= 0:
        raise ValueError(f"sigma={sigma} must be positive (cells)")
    xb, single = _batch(x, "x")
    check_finite("x", xb)
    m = _mask_like(mask, xb)
    num = _gaussian_blur(xb * m, sigma)
    den = _gaussian_blur(m, sigma)
    low = num / den.clamp_min(1e-12)
    return (low[0], den[0]) if single else (low, den)


@one_thread()
def detail_layer(x: torch.Tensor, mask=None, sigma: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """D(x) = x − L_σ(x) on the interior cells (0 elsewhere), and the interior mask (module docstring).

    Returns:
        (D (like x), interior (B, 1, G, G) or (1, G, G) float 0/1).
    """
    xb, single = _batch(x, "x")
    m = _mask_like(mask, xb)
    low, den = masked_lowpass(xb, m, sigma)
    interior = m * (den >= INTERIOR).to(xb.dtype)
    d = (xb - low) * interior
    return (d[0], interior[0]) if single else (d, interior)


@one_thread()
def detail_energy(x: torch.Tensor, mask=None, sigma: float = 1.5) -> torch.Tensor:
    """E(x): mean of D(x)² over the channels and the interior cells; () or (B,)."""
    xb, single = _batch(x, "x")
    d, interior = detail_layer(xb, mask, sigma)
    n = interior.sum((1, 2, 3)) * xb.shape[1]
    e = (d**2).sum((1, 2, 3)) / n.clamp_min(1)
    e = torch.where(n > 0, e, torch.full_like(e, float("nan")))
    return e[0] if single else e


@dataclass
class DetailScore:
    """How much of a reference's fine detail an output keeps (:func:`retained_detail`).

    Attributes:
        energy_ratio: E(x)/E(reference), (B,) or ().
        correlation: ρ of the two detail layers over the common interior, (B,) or ().
        sigma: the low-pass σ in cells.
        cutoff: its half-power frequency, cycles per cell.
    """

    energy_ratio: torch.Tensor
    correlation: torch.Tensor
    sigma: float
    cutoff: float


@one_thread()
def retained_detail(x: torch.Tensor, reference: torch.Tensor, mask=None, sigma: float = 1.5,
                    baseline: torch.Tensor | None = None) -> DetailScore:
    """Detail energy ratio and detail correlation of ``x`` against ``reference`` on the same mask.

    Args:
        x, reference: (C, G, G) or (B, C, G, G).
        mask: cells to compare (default all); both layers use the same mask and interior.
        sigma: low-pass σ in cells (module docstring: σ = 1.5 keeps wavelengths below 8 cells).
        baseline: optional (like x) image whose detail is subtracted from both layers first, e.g. the true
            texture *without* the detail the model cannot represent: the scores then measure how much of
            exactly that detail ``x`` keeps (the reconstruction's own in-span detail no longer counts).
    """
    xb, single = _batch(x, "x")
    rb, _ = _batch(reference, "reference")
    if rb.shape != xb.shape:
        raise ShapeError(f"x {tuple(x.shape)} and reference {tuple(reference.shape)} must have the same shape")
    dx, interior = detail_layer(xb, mask, sigma)
    dr, _ = detail_layer(rb, mask, sigma)
    if baseline is not None:
        bb, _ = _batch(baseline, "baseline")
        if bb.shape != xb.shape:
            raise ShapeError(f"baseline {tuple(baseline.shape)} must have the shape of x {tuple(x.shape)}")
        db, _ = detail_layer(bb, mask, sigma)
        dx, dr = dx - db, dr - db
    n = interior.sum((1, 2, 3)).clamp_min(1) * xb.shape[1]
    ex, er = (dx**2).sum((1, 2, 3)) / n, (dr**2).sum((1, 2, 3)) / n
    ratio = ex / er.clamp_min(1e-30)
    corr = (dx * dr).sum((1, 2, 3)) / ((dx**2).sum((1, 2, 3)) * (dr**2).sum((1, 2, 3))).sqrt().clamp_min(1e-30)
    cutoff = math.sqrt(math.log(2.0) / (2.0 * math.pi**2)) / sigma
    if single:
        ratio, corr = ratio[0], corr[0]
    return DetailScore(energy_ratio=ratio, correlation=corr, sigma=float(sigma), cutoff=cutoff)


@one_thread()
def radial_power_spectrum(x: torch.Tensor, mask=None, n_bins: int = 28, taper: float = 2.0,
                          detrend_sigma: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of a flattened image inside its mask.

    The image minus its broad masked low-pass (σ = ``detrend_sigma`` cells: removes the mean colour and
    shading that would otherwise dominate) is multiplied by a soft window (the mask blurred by ``taper`` cells,
    so its border does not ring), Fourier-transformed per channel, and |F|² is averaged over the channels and
    over rings of equal frequency, normalised by the window's energy.

    Args:
        x: (C, G, G) or (B, C, G, G) (a batch is averaged).
        mask: cells to use.
        n_bins: rings between 0 and 0.5 cycles per cell.

    Returns:
        (frequencies (n_bins,) cycles per cell, power (n_bins,)).
    """
    xb, _ = _batch(x, "x")
    xb = xb.double()
    m = _mask_like(mask, xb)
    low, _ = masked_lowpass(xb, m, detrend_sigma)
    w = _gaussian_blur(m, taper) * m
    y = (xb - low) * w
    g = xb.shape[-1]
    spec = torch.fft.fft2(y).abs() ** 2  # (B, C, G, G)
    spec = spec.mean(1).sum(0) / (w**2).sum().clamp_min(1e-12)
    f = torch.fft.fftfreq(g, dtype=torch.float64)
    rad = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    edges = torch.linspace(0.0, 0.5, n_bins + 1, dtype=torch.float64)
    centres = 0.5 * (edges[1:] + edges[:-1])
    power = torch.zeros(n_bins, dtype=torch.float64)
    for i in range(n_bins):
        sel = (rad >= edges[i]) & (rad < edges[i + 1])
        power[i] = spec[sel].mean() if sel.any() else float("nan")
    return centres.numpy(), power.numpy()


# ------------------------------------------------------------------------------------------ correspondence
@dataclass
class CorrespondenceScore:
    """Within- and between-subject distances of flattened outputs (:func:`correspondence_score`).

    Attributes:
        within: mean RMS distance over pairs of images of the same subject.
        between: mean RMS distance over pairs of images of different subjects.
        ratio: within / between (1: the outputs carry no identity; → 0: perfectly consistent per subject).
        nn_accuracy: fraction of images whose nearest other image (smallest distance) shows the same subject.
        distances: (P, P) pairwise distances, P = S·n in subject-major order (NaN on the diagonal and for
            pairs with too little overlap).
        subject: (P,) subject index of each row.
    """

    within: float
    between: float
    ratio: float
    nn_accuracy: float
    distances: torch.Tensor
    subject: torch.Tensor


@one_thread()
def correspondence_score(
    outputs: torch.Tensor,
    masks: torch.Tensor | None = None,
    *,
    normalise: bool = True,
    highpass_sigma: float | None = None,
    min_overlap: float = 0.05,
) -> CorrespondenceScore:
    """How consistently flattened outputs of the same subject agree, compared with different subjects.

    For images a, b with masks m_a, m_b the distance is
    d(a, b) = √( Σ_i m_a,i m_b,i ‖x_a,i − x_b,i‖² / (C Σ_i m_a,i m_b,i) ) over the jointly visible cells.

    Args:
        outputs: (S, n, C, G, G): S subjects × n images each (n ≥ 2 for within-subject pairs, S ≥ 2).
        masks: (S, n, 1, G, G) visibility (default: all cells).
        normalise: divide each image of a pair by its per-channel mean over the pair's jointly visible cells
            (removes global light intensity and colour; the comparison is then about the pattern). With
            ``highpass_sigma`` each image is divided by its mean over its own mask before the detail layer.
        highpass_sigma: compare the detail layers D (σ in cells, :func:`detail_layer`) instead of the colours.
        min_overlap: pairs sharing fewer than this fraction of the G² cells are left out (NaN).

    Returns:
        :class:`CorrespondenceScore`.
    """
    if not isinstance(outputs, torch.Tensor) or not torch.is_floating_point(outputs) or outputs.ndim != 5:
        raise ShapeError(f"outputs must be a floating-point tensor (S subjects, n images, C, G, G), got "
                         f"{tuple(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs).__name__}")
    s, n, c, h, w = outputs.shape
    if s < 2 or n < 2:
        raise ShapeError(f"outputs need at least 2 subjects and 2 images per subject, got S={s}, n={n}")
    check_finite("outputs", outputs)
    x = outputs.reshape(s * n, c, h, w).double()
    if masks is None:
        m = torch.ones(s * n, 1, h, w, dtype=torch.float64)
    else:
        if tuple(masks.shape) != (s, n, 1, h, w):
            raise ShapeError(f"masks must have shape ({s}, {n}, 1, {h}, {w}), got {tuple(masks.shape)}")
        m = (masks.reshape(s * n, 1, h, w).double() > 0.5).double()
    if highpass_sigma is not None:
        if normalise:  # own-mask gain first: the detail layer of a brighter copy is a brighter copy
            mean = (x * m).sum((2, 3), keepdim=True) / m.sum((2, 3), keepdim=True).clamp_min(1)
            x = x / mean.clamp_min(1e-6)
        x, m = detail_layer(x, m, highpass_sigma)
    xm = (x * m).reshape(s * n, c, -1)
    mm = m.reshape(s * n, -1)
    x2 = (x * x * m).reshape(s * n, c, -1)
    overlap = mm @ mm.T
    sq = torch.zeros(s * n, s * n, dtype=torch.float64)
    for ch in range(c):
        s2 = x2[:, ch] @ mm.T  # (a, b): Σ_i m_a m_b x_a²
        cross = xm[:, ch] @ xm[:, ch].T
        if normalise and highpass_sigma is None:
            # each image divided by its mean over the pair's joint region (per channel)
            mu = (xm[:, ch] @ mm.T) / overlap.clamp_min(1)  # (a, b): mean of a where b is visible too
            mu = mu.clamp_min(1e-6)
            sq += s2 / mu**2 + s2.T / mu.T**2 - 2.0 * cross / (mu * mu.T)
        else:
            sq += s2 + s2.T - 2.0 * cross
    dist = (sq.clamp_min(0) / (c * overlap.clamp_min(1))).sqrt()
    dist[overlap < min_overlap * h * w] = float("nan")
    dist.fill_diagonal_(float("nan"))
    subject = torch.arange(s).repeat_interleave(n)
    within, between, ratio, nn_acc, _, _ = summarise_distances(dist.numpy(), subject.numpy())
    return CorrespondenceScore(within=within, between=between, ratio=ratio, nn_accuracy=nn_acc,
                               distances=dist.float(), subject=subject)


def summarise_distances(dist: np.ndarray, subject: np.ndarray) -> tuple[float, float, float, float, int, int]:
    """Within/between summary of a pairwise distance matrix, shared by every correspondence score.

    Args:
        dist: (P, P) symmetric distances, NaN on the diagonal and for pairs to leave out.
        subject: (P,) subject id of each row.

    Returns:
        (within, between, ratio, nn_accuracy, n_within, n_between): the mean distance over pairs of the same
        subject and of different subjects (each unordered pair once), their ratio, the fraction of rows whose
        nearest other row shows the same subject, and the pair counts.
    """
    d = np.asarray(dist, dtype=np.float64)
    ids = np.asarray(subject)
    valid = np.isfinite(d)
    same = ids[:, None] == ids[None, :]
    upper = np.triu(np.ones(d.shape, dtype=bool), 1) & valid
    wv, bv = d[upper & same], d[upper & ~same]
    within = float(wv.mean()) if wv.size else float("nan")
    between = float(bv.mean()) if bv.size else float("nan")
    ratio = within / between if bv.size and between > 0 else float("nan")
    has = valid.any(1)
    nearest = np.where(valid, d, np.inf).argmin(1)
    nn = float(same[np.arange(len(ids)), nearest][has].mean()) if has.any() else float("nan")
    return within, between, ratio, nn, int(wv.size), int(bv.size)


# ------------------------------------------------------------------------------------------ subjects
@dataclass(frozen=True)
class DetailSettings:
    """Fine-scale albedo detail of the synthetic subjects (a multiplicative field on the UV square).

    Lengths are in UV units (the G×G grid spans [0, 1]²; at G = 112 one cell is 0.009).

    Attributes:
        grain: root-mean-square of the band-pass skin grain (relative albedo change).
        grain_wavelength: its wavelengths, uniform in this range (UV).
        n_grain_waves: plane waves summed for the grain.
        freckles: (min, max) number of freckles per subject.
        freckle_radius: Gaussian σ range of a freckle (UV).
        freckle_strength: darkening range at a freckle's centre (blue darkens most: brown spots).
        moles: (min, max) number of moles.
        mole_radius: σ range of a mole (UV).
        mole_strength: darkening range of a mole.
        lines: (min, max) number of forehead lines.
        line_strength: darkening of a line's centre.
        line_width: Gaussian σ of a line's profile (UV).
    """

    grain: float = 0.05
    grain_wavelength: tuple[float, float] = (0.027, 0.055)
    n_grain_waves: int = 96
    freckles: tuple[int, int] = (60, 160)
    freckle_radius: tuple[float, float] = (0.008, 0.013)
    freckle_strength: tuple[float, float] = (0.12, 0.30)
    moles: tuple[int, int] = (1, 4)
    mole_radius: tuple[float, float] = (0.010, 0.016)
    mole_strength: tuple[float, float] = (0.35, 0.6)
    lines: tuple[int, int] = (1, 4)
    line_strength: float = 0.12
    line_width: float = 0.007

    def scaled(self, factor: float) -> DetailSettings:
        """The same detail with every strength multiplied by ``factor`` (0 = no detail)."""
        from dataclasses import replace

        f = float(factor)
        return replace(
            self,
            grain=self.grain * f,
            freckle_strength=(self.freckle_strength[0] * f, self.freckle_strength[1] * f),
            mole_strength=(self.mole_strength[0] * f, self.mole_strength[1] * f),
            line_strength=self.line_strength * f,
        )


_DEFAULT_SCENE = SceneDistribution()
_DETAIL_STREAM = 8  # default_rng([seed, _DETAIL_STREAM, subject]): this module's own per-subject stream
_BROWN = np.array([0.55, 0.75, 1.0])  # relative darkening per channel of freckles and moles


def fine_detail(uv, subject: int, seed: int = 0, settings: DetailSettings = DetailSettings()) -> np.ndarray:
    """A subject's multiplicative albedo detail at UV positions: albedo ← clip(albedo · field, 0, 1).

    Deterministic in (seed, subject, settings) and continuous in UV, so the same detail can be evaluated
    on the STN's grid and on a finer render mesh. Freckles gather on the cheeks and the nose, lines on the
    forehead (the built-in layout: v = 1 is the top of the grid, the eyes are near v = 0.76).

    Args:
        uv: (N, 2) UV positions in [0, 1]² (e.g. :func:`mmstn.uv.grid_uv`).
        subject: subject id; seed: the set's seed.
        settings: :class:`DetailSettings`.

    Returns:
        float64 (N, 3) factors, around 1.
    """
    p = np.asarray(uv, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ShapeError(f"uv must have shape (N, 2), got {p.shape}")
    rng = np.random.default_rng([int(seed), _DETAIL_STREAM, int(subject)])
    u, v = p[:, 0], p[:, 1]
    out = np.ones((len(p), 3))
    nw = int(settings.n_grain_waves)
    if settings.grain > 0 and nw > 0:
        lam = rng.uniform(*settings.grain_wavelength, nw)
        ang = rng.uniform(0.0, np.pi, nw)
        phase = rng.uniform(0.0, 2 * np.pi, nw)
        k = np.stack([np.cos(ang), np.sin(ang)], 1) / lam[:, None]  # (nw, 2) cycles per UV unit
        field_ = np.cos(2 * np.pi * (p @ k.T) + phase).sum(1) * settings.grain * math.sqrt(2.0 / nw)
        out *= (1.0 + field_)[:, None]

    def spots(count: int, centres: np.ndarray, radius, strength) -> None:
        nonlocal out
        for cu, cv in centres[:count]:
            r = rng.uniform(*radius)
            a = rng.uniform(*strength)
            g = np.exp(-0.5 * ((u - cu) ** 2 + (v - cv) ** 2) / r**2)
            out *= 1.0 - a * g[:, None] * _BROWN

    n_f = int(rng.integers(settings.freckles[0], settings.freckles[1] + 1))
    # cheeks (mirror pair) and nose bridge, Gaussian clusters in UV
    which = rng.choice(3, size=n_f, p=[0.4, 0.4, 0.2])
    mu = np.array([[0.29, 0.60], [0.71, 0.60], [0.5, 0.66]])
    sd = np.array([[0.07, 0.055], [0.07, 0.055], [0.03, 0.05]])
    cen = mu[which] + rng.standard_normal((n_f, 2)) * sd[which]
    spots(n_f, cen, settings.freckle_radius, settings.freckle_strength)
    n_m = int(rng.integers(settings.moles[0], settings.moles[1] + 1))
    spots(n_m, rng.uniform([0.2, 0.25], [0.8, 0.85], (n_m, 2)), settings.mole_radius, settings.mole_strength)
    n_l = int(rng.integers(settings.lines[0], settings.lines[1] + 1))
    for _ in range(n_l):
        v0 = rng.uniform(0.84, 0.94)
        bend = rng.uniform(-0.3, 0.1)
        centre_line = v0 + bend * (u - 0.5) ** 2
        width = np.exp(-0.5 * ((u - 0.5) / rng.uniform(0.10, 0.16)) ** 4)  # fades towards the temples
        g = np.exp(-0.5 * ((v - centre_line) / settings.line_width) ** 2) * width
        out *= 1.0 - settings.line_strength * g[:, None]
    return out


@dataclass
class SubjectImages:
    """S built-in subjects × n images each, with fine detail outside the PCA span (:func:`sample_subjects`).

    Attributes:
        images: float32 (S, n, 3, H, W) in [0, 1].
        theta: float32 (S, n, 6 + D) true θ (s = exp(logs)).
        landmarks: float32 (S, n, 21, 2) the grid model's AFLW-21 vertices projected (label frame).
        visible: float32 (S, n, 21) 1 = visible (in the image, facing the camera, not occluded).
        truth: float32 (S, n, 3, G, G) the true shaded colour at every STN grid vertex: what an exact
            resampling holds (the per-vertex colours the renderer interpolated).
        truth_pca: float32 (S, n, 3, G, G) the same without the fine detail (PCA albedo, same light): the
            best any model-based reconstruction with the full basis and exact lighting could do.
        albedo: float32 (S, 3, G, G) each subject's true albedo on the grid (PCA part × detail).
        model_albedo: float32 (S, 3, G, G) the PCA part alone, c̄ + Σ β_k T_k (clipped).
        beta: float32 (S, K) the subjects' texture coefficients.
        lighting: per image, the :class:`~mmstn.render.Lighting` and its per-channel gain.
        face_mask: bool (S, n, H, W) face pixels.
        seed: the set's seed; settings: the detail.
    """

    images: torch.Tensor
    theta: torch.Tensor
    landmarks: torch.Tensor
    visible: torch.Tensor
    truth: torch.Tensor
    truth_pca: torch.Tensor
    albedo: torch.Tensor
    model_albedo: torch.Tensor
    beta: torch.Tensor
    lighting: list[list[tuple[Lighting, tuple[float, float, float]]]]
    face_mask: torch.Tensor
    seed: int
    settings: DetailSettings = field(default_factory=DetailSettings)

    @property
    def n_subjects(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_images(self) -> int:
        return int(self.images.shape[1])

    def flat(self, name: str) -> torch.Tensor:
        """A per-image field with the (S, n) axes merged into one of S·n, subject-major."""
        x = getattr(self, name)
        return x.reshape(-1, *x.shape[2:])


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A soft random two-colour gradient (size, size, 3) in [0, 1]."""
    c0, c1 = rng.uniform(0.15, 0.85, (2, 3))
    phi = rng.uniform(0.0, 2 * np.pi)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) / size - 0.5
    t = np.clip(xs * np.cos(phi) + ys * np.sin(phi) + 0.5, 0.0, 1.0)[..., None]
    return c0 + t * (c1 - c0)


@one_thread()
def sample_subjects(
    n_subjects: int = 6,
    n_images: int = 4,
    seed: int = 0,
    *,
    grid_model: MorphableModel | None = None,
    render_model: MorphableModel | None = None,
    detail: DetailSettings = DetailSettings(),
    yaw_deg: float = 40.0,
    pitch_deg: float = 15.0,
    roll_deg: float = 10.0,
    expression_scale: float = 0.5,
    image_size: int = 224,
    pixel_noise: float = 0.005,
    scene: SceneDistribution = _DEFAULT_SCENE,
) -> SubjectImages:
    """Render S built-in subjects, n poses and lights each, with per-subject fine albedo detail.

    Each subject's identity α_id and texture β come from :func:`mmstn.data.synthetic.subject_parameters`
    (the data generator's subject stream), its detail from :func:`fine_detail`. Per image: yaw, pitch and
    roll uniform in ±the given degrees, expression α_exp ~ N(0, expression_scale²), scale s₀ · U(0.95, 1.05)
    with the synthetic data's s₀ (face 120 px wide at 224²), the posed landmark box centred (± 4 px), the
    ambient + Lambert light and gain drawn from ``scene`` as :func:`mmstn.data.synthetic.draw_parameters`
    does, a soft gradient background and Gaussian pixel noise.

    Args:
        n_subjects, n_images: S and n.
        seed: the set's seed (subject s uses the generator's subject stream for (seed, s)).
        grid_model: the STN's grid model (default :func:`mmstn.uv.builtin_grid_model` (112)).
        render_model: the finer grid model the images are rendered from; its side must be f·(G − 1) + 1 for an
            integer f so that every STN vertex is a render vertex (default :func:`builtin_grid_model` (2G − 1)).
        detail: :class:`DetailSettings` (``DetailSettings().scaled(0)`` for PCA-only subjects).
        image_size: H = W.
        pixel_noise: noise standard deviation.
        scene: light ranges (:class:`mmstn.data.synthetic.SceneDistribution`).

    Returns:
        :class:`SubjectImages`.
    """
    from mmstn.uv import builtin_grid_model
    from mmstn.uv.resample import grid_uv

    if n_subjects < 1 or n_images < 1:
        raise ValueError(f"n_subjects={n_subjects} and n_images={n_images} must be at least 1")
    gm = builtin_grid_model(112) if grid_model is None else grid_model
    G = math.isqrt(gm.n_vertices)
    rm = builtin_grid_model(2 * G - 1, gm.n_identity, gm.n_expression) if render_model is None else render_model
    Gr = math.isqrt(rm.n_vertices)
    if G * G != gm.n_vertices or Gr * Gr != rm.n_vertices or (Gr - 1) % (G - 1) != 0:
        raise ShapeError(f"grid_model ({gm.n_vertices} vertices) and render_model ({rm.n_vertices}) must be G×G "
                         "and (f(G−1)+1)² grid models")
    if gm.colour is None or rm.colour is None:
        raise ValueError("both models need a mean albedo (colour)")
    f = (Gr - 1) // (G - 1)
    sub = (np.arange(G)[:, None] * f * Gr + np.arange(G)[None, :] * f).reshape(-1)  # STN vertex → render vertex
    renderer = FastFaceRenderer(rm)
    uv_r = grid_uv(Gr)
    lm = gm.landmarks["aflw21"].numpy()
    lm_r = sub[lm]
    s0 = reference_scale(gm, image_size=image_size)
    K = 0 if rm.texture_basis is None else int(rm.texture_basis.shape[0])
    S, n, H = int(n_subjects), int(n_images), int(image_size)
    images = np.zeros((S, n, 3, H, H), np.float32)
    thetas = np.zeros((S, n, 6 + gm.n_components), np.float32)
    lms = np.zeros((S, n, 21, 2), np.float32)
    vis = np.zeros((S, n, 21), np.float32)
    truth = np.zeros((S, n, 3, G, G), np.float32)
    truth_pca = np.zeros((S, n, 3, G, G), np.float32)
    albedo_g = np.zeros((S, 3, G, G), np.float32)
    model_alb = np.zeros((S, 3, G, G), np.float32)
    betas = np.zeros((S, K), np.float32)
    masks = np.zeros((S, n, H, H), bool)
    lights: list[list[tuple[Lighting, tuple[float, float, float]]]] = []
    for si in range(S):
        alpha_id, beta = subject_parameters(rm, si, seed, scene=scene)
        betas[si] = beta
        pca = renderer.albedo(beta)  # clip(c̄ + Tβ, 0, 1) on the render mesh, (Nr, 3)
        alb = np.clip(pca * fine_detail(uv_r, si, seed, detail), 0.0, 1.0)
        albedo_g[si] = alb[sub].T.reshape(3, G, G)
        model_alb[si] = pca[sub].T.reshape(3, G, G)
        rng = np.random.default_rng([int(seed), 9, si])
        row = []
        for j in range(n):
            yaw, pitch, roll = np.deg2rad(rng.uniform(-1, 1, 3) * [yaw_deg, pitch_deg, roll_deg])
            alpha_exp = np.clip(rng.standard_normal(rm.n_expression) * expression_scale, -3, 3)
            alpha = np.concatenate([alpha_id, alpha_exp])
            r = euler_to_axis_angle(yaw, pitch, roll)
            s = s0 * rng.uniform(0.95, 1.05)
            rot = renderer.pose(np.concatenate([r, [0.0, 0.0, 0.0], alpha]))[1]
            box = (rot[lm_r, :2].min(0) + rot[lm_r, :2].max(0)) / 2
            t = (H + 1) / 2 + rng.uniform(-4, 4, 2) * H / 224 - s * box
            theta = np.concatenate([r, t, [math.log(s)], alpha]).astype(np.float32)
            light, gain = draw_lighting(rng, scene)
            row.append((light, gain))
            bg = _background(rng, H)
            out = renderer.render(theta.astype(np.float64), alb, light, H, bg, gain)
            img = out.image
            if pixel_noise > 0:
                img = np.clip(img + rng.normal(0.0, pixel_noise, img.shape), 0.0, 1.0)
            images[si, j] = img.transpose(2, 0, 1)
            thetas[si, j] = theta
            lms[si, j] = out.points[lm_r]
            vis[si, j] = renderer.visibility(out, lm_r, H)
            masks[si, j] = out.fragments.mask
            # the per-vertex colours the renderer interpolated (FastFaceRenderer.render's shading)
            nrm = renderer.normal_z(out.rotated)
            nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
            d = np.asarray(light.direction) / np.linalg.norm(light.direction)
            shade = light.ambient + light.diffuse * np.clip(nrm @ d, 0.0, 1.0)
            rgb = np.clip(alb * shade[:, None] * np.asarray(gain), 0.0, 1.0)
            truth[si, j] = rgb[sub].T.reshape(3, G, G)
            rgb_pca = np.clip(pca * shade[:, None] * np.asarray(gain), 0.0, 1.0)
            truth_pca[si, j] = rgb_pca[sub].T.reshape(3, G, G)
        lights.append(row)
    return SubjectImages(
        images=torch.from_numpy(images),
        theta=torch.from_numpy(thetas),
        landmarks=torch.from_numpy(lms),
        visible=torch.from_numpy(vis),
        truth=torch.from_numpy(truth),
        truth_pca=torch.from_numpy(truth_pca),
        albedo=torch.from_numpy(albedo_g),
        model_albedo=torch.from_numpy(model_alb),
        beta=torch.from_numpy(betas),
        lighting=lights,
        face_mask=torch.from_numpy(masks),
        seed=int(seed),
        settings=detail,
    )


# ------------------------------------------------------------------------------------------ comparison
@dataclass
class Comparison:
    """The 3DMM-STN output and a model-based reconstruction of the same images (:func:`compare_methods`).

    P images, G×G grid, H×W images. "Flattened" fields are unmasked; :attr:`mask` says which cells count.

    Attributes:
        images: (P, 3, H, W) the inputs.
        theta: (P, 6 + D) the θ used for both methods.
        stn_output: (P, 3, G, G) the STN's samples V of the input.
        stn_mask: (P, 1, G, G) the STN's visibility mask.
        reconstruction: (P, 3, G, G) the rendered reconstruction sampled by the same STN at the same θ (the
            reconstruction's flattened texture, comparable cell by cell with ``stn_output``).
        reconstruction_vertex: (P, 3, G, G) the fitted shading × albedo at every grid vertex.
        albedo: (P, 3, G, G) the fitted albedo c̄ + Σ β_k T_k.
        mask: (P, 1, G, G) the cells compared: those the fit used (visible, inside, clean samples).
        reconstruction_images: (P, 3, H, W) the reconstruction rendered over the input.
        stn_images: (P, 3, H, W) the STN output rendered back over the input.
        pixels: (P, H, W) bool, the pixels compared: covered by grid triangles with three used vertices (and
            inside the true face mask when one was given).
        fits: the :class:`~mmstn.reconstruction.TextureFit` of every image.
        truth, truth_pca: optional (P, 3, G, G) true shaded texture with and without the fine detail.
    """

    images: torch.Tensor
    theta: torch.Tensor
    stn_output: torch.Tensor
    stn_mask: torch.Tensor
    reconstruction: torch.Tensor
    reconstruction_vertex: torch.Tensor
    albedo: torch.Tensor
    mask: torch.Tensor
    reconstruction_images: torch.Tensor
    stn_images: torch.Tensor
    pixels: torch.Tensor
    fits: list = field(default_factory=list)
    truth: torch.Tensor | None = None
    truth_pca: torch.Tensor | None = None

    def method_outputs(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Method name → (flattened (P, 3, G, G), rendered image (P, 3, H, W))."""
        return {
            "3DMM-STN output": (self.stn_output, self.stn_images),
            "model-based reconstruction": (self.reconstruction, self.reconstruction_images),
        }

    @one_thread()
    def scores(self, sigma: float = 1.5) -> dict[str, dict[str, float]]:
        """Mean scores over the images, per method (the keys are the table's columns):

        * ``image RMSE``: :func:`photometric_error` of the rendered output against the input over :attr:`pixels`;
        * ``grid RMSE vs input``: against the STN's samples of the input over :attr:`mask` (0 for the STN output,
          which *is* that resampling);
        * ``grid RMSE vs truth``: against the true shaded texture (when known);
        * ``detail energy vs input`` / ``vs truth``: :func:`retained_detail` energy ratios (σ cells);
        * ``detail corr. vs truth``: the correlation of the detail layers;
        * ``out-of-span detail corr.``: the correlation with the detail the model cannot represent
          (``baseline=truth_pca``).
        """
        out: dict[str, dict[str, float]] = {}
        for name, (flat, img) in self.method_outputs().items():
            row = {
                "image RMSE": float(photometric_error(img, self.images, self.pixels[:, None]).nanmean()),
                "grid RMSE vs input": float(photometric_error(flat, self.stn_output, self.mask).nanmean()),
                "detail energy vs input": float(
                    retained_detail(flat, self.stn_output, self.mask, sigma).energy_ratio.nanmean()),
            }
            if self.truth is not None:
                d = retained_detail(flat, self.truth, self.mask, sigma)
                row["grid RMSE vs truth"] = float(photometric_error(flat, self.truth, self.mask).nanmean())
                row["detail energy vs truth"] = float(d.energy_ratio.nanmean())
                row["detail corr. vs truth"] = float(d.correlation.nanmean())
                if self.truth_pca is not None:
                    o = retained_detail(flat, self.truth, self.mask, sigma, baseline=self.truth_pca)
                    row["out-of-span detail corr."] = float(o.correlation.nanmean())
            out[name] = row
        return out


@one_thread()
def compare_methods(
    stn,
    model: MorphableModel,
    images: torch.Tensor,
    theta: torch.Tensor,
    n_components: int | None = None,
    lighting: bool = True,
    *,
    truth: torch.Tensor | None = None,
    truth_pca: torch.Tensor | None = None,
    face_mask: torch.Tensor | None = None,
    **fit_options,
) -> Comparison:
    """Run the 3DMM-STN and the model-based fit (:func:`mmstn.reconstruction.fit_texture`) on the same images.

    Args:
        stn: the STN; model: its grid model with colour and texture basis.
        images: (P, 3, H, W); theta: (P, 6 + D), fitted or true.
        n_components, lighting: passed to ``fit_texture``.
        truth, truth_pca: optional (P, 3, G, G) true textures (:class:`SubjectImages`).
        face_mask: optional (P, H, W) true face pixels (restricts the compared pixels).
        fit_options: further keyword arguments of ``fit_texture``.

    Returns:
        :class:`Comparison`.
    """
    from mmstn.reconstruction import fit_texture, render_grid_colours, render_reconstruction

    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ShapeError(f"images must have shape (P, 3, H, W), got {getattr(images, 'shape', type(images))}")
    if not isinstance(theta, torch.Tensor) or theta.ndim != 2 or theta.shape[0] != images.shape[0]:
        raise ShapeError(f"theta must have shape ({images.shape[0]}, 6 + D), got {getattr(theta, 'shape', None)}")
    dtype = stn.generator.morphable.mean.dtype
    keys = ("stn_output", "stn_mask", "reconstruction", "reconstruction_vertex", "albedo", "mask",
            "reconstruction_images", "stn_images", "pixels")
    acc: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    fits = []
    for i in range(images.shape[0]):
        f = fit_texture(stn, images[i], theta[i], n_components, lighting, model=model, **fit_options)
        rec = render_reconstruction(stn, f, background=images[i])
        with torch.no_grad():
            resampled = stn(rec.image[None].to(dtype), theta[i : i + 1].to(dtype)).sampled[0].float()
        back = render_grid_colours(stn, theta[i], f.target, background=images[i], visible=f.mask)
        pix = torch.from_numpy(rec.valid)
        if face_mask is not None:
            pix = pix & face_mask[i].bool()
        for k, v in zip(keys, (f.target, f.stn_mask, resampled, f.reconstruction_grid, f.albedo_grid, f.mask,
                               rec.image, back.image, pix), strict=True):
            acc[k].append(v)
        fits.append(f)
    return Comparison(images=images, theta=theta.detach().clone(), fits=fits, truth=truth, truth_pca=truth_pca,
                      **{k: torch.stack(v) for k, v in acc.items()})
