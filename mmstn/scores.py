"""Scores for flattened faces: photometric error, retained detail, correspondence.

The test subjects they are measured on are in :mod:`mmstn.data.detailed_subjects`; the comparison of the
STN's resampling with a model-based reconstruction is in :mod:`mmstn.comparison`.

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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from mmstn.errors import ShapeError, check_finite
from mmstn.runtime import one_thread

__all__ = [
    "CorrespondenceScore",
    "DetailScore",
    "correspondence_score",
    "detail_energy",
    "detail_layer",
    "masked_lowpass",
    "photometric_error",
    "radial_power_spectrum",
    "retained_detail",
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
Normalise = Literal["none", "gain", "standardise", "chromaticity"]


@dataclass
class CorrespondenceScore:
    """Do flattened outputs of the same person agree more than outputs of different people?
    (:func:`correspondence_score`)

    Attributes:
        within: mean RMS distance over pairs of outputs of the same subject, over the cells both saw.
        between: the same over pairs of different subjects.
        ratio: within / between (1: the outputs carry no identity; → 0: perfectly consistent per subject).
        nn_accuracy: fraction of outputs whose nearest other output (by that distance) shows the same subject.
        distances: (N, N) pairwise distances (NaN on the diagonal and for pairs with too little overlap).
        overlap: (N, N) fraction of the G² cells seen by both.
        subject_ids: (N,) subject id of each row.
        n_within, n_between: pairs counted.
    """

    within: float
    between: float
    ratio: float
    nn_accuracy: float
    distances: np.ndarray
    overlap: np.ndarray
    subject_ids: np.ndarray
    n_within: int
    n_between: int

    def per_subject(self) -> dict[int, tuple[float, float]]:
        """subject id → (mean distance within the subject, mean distance to other subjects)."""
        out = {}
        ids = self.subject_ids
        for sid in np.unique(ids):
            rows = ids == sid
            d = self.distances[rows]
            same, other = d[:, rows], d[:, ~rows]
            out[int(sid)] = (
                float(np.nanmean(same)) if np.isfinite(same).any() else float("nan"),
                float(np.nanmean(other)) if np.isfinite(other).any() else float("nan"),
            )
        return out


def _score_inputs(flattened, mask, subject_ids) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(N, C, G, G) float64 outputs, (N, 1, G, G) binary masks and (N,) ids from either accepted layout."""
    if not isinstance(flattened, torch.Tensor) or not torch.is_floating_point(flattened):
        raise ShapeError(f"flattened outputs must be a floating-point tensor, got {type(flattened).__name__}")
    x = flattened.detach().cpu().double()
    if x.ndim == 5:  # (S, n, C, G, G): S subjects × n outputs, subject-major
        s, n, c, h, w = x.shape
        if s < 2 or n < 2:
            raise ShapeError(f"outputs need at least 2 subjects and 2 images per subject, got S={s}, n={n}")
        if subject_ids is not None:
            raise ValueError("subject_ids is implied by (S, n, C, G, G) outputs; pass (N, C, G, G) outputs with ids")
        if mask is not None and tuple(mask.shape) != (s, n, 1, h, w):
            raise ShapeError(f"masks must have shape ({s}, {n}, 1, {h}, {w}), got {tuple(mask.shape)}")
        ids = np.repeat(np.arange(s), n)
        x = x.reshape(s * n, c, h, w)
        m = None if mask is None else mask.detach().cpu().reshape(s * n, 1, h, w)
    elif x.ndim == 4:  # (N, C, G, G) with subject ids
        if subject_ids is None:
            raise ShapeError("(N, C, G, G) outputs need subject_ids (N,); or pass outputs (S, n, C, G, G)")
        ids = np.asarray(torch.as_tensor(subject_ids).reshape(-1).tolist(), dtype=np.int64)
        if len(ids) != x.shape[0]:
            raise ShapeError(f"{len(ids)} subject ids for {x.shape[0]} outputs")
        m = None if mask is None else mask.detach().cpu()
        if m is not None and m.ndim == 3:
            m = m[:, None]
        if m is not None and tuple(m.shape) != (x.shape[0], 1, *x.shape[2:]):
            raise ShapeError(f"masks must have shape ({x.shape[0]}, 1, {x.shape[2]}, {x.shape[3]}), got "
                             f"{tuple(mask.shape)}")
    else:
        raise ShapeError(f"outputs must be (S, n, C, G, G) or (N, C, G, G) with subject ids, got {tuple(x.shape)}")
    check_finite("outputs", x)
    m = torch.ones(x.shape[0], 1, *x.shape[2:], dtype=torch.float64) if m is None else (m.double() > 0.5).double()
    return x, m, ids


@one_thread()
def correspondence_score(
    flattened: torch.Tensor,
    mask: torch.Tensor | None = None,
    subject_ids: torch.Tensor | Sequence[int] | None = None,
    *,
    normalise: Normalise = "none",
    highpass_sigma: float | None = None,
    min_overlap: float = 0.05,
) -> CorrespondenceScore:
    """Within- vs between-subject distances of flattened outputs, over the cells visible in both.

    For outputs a, b with masks m_a, m_b the distance is
    d(a, b) = √( Σ_i m_a,i m_b,i ‖x_a,i − x_b,i‖² / (C Σ_i m_a,i m_b,i) ), for all pairs at once with matrix
    products in float64. The one correspondence metric of mmstn: chapters 07 and 08 and the photo averages
    all use it.

    Args:
        flattened: (N, C, G, G) outputs with ``subject_ids`` (N,), or (S, n, C, G, G): S subjects × n outputs.
        mask: (N, 1, G, G) or (S, n, 1, G, G) visibility (default: every cell).
        subject_ids: (N,) for (N, C, G, G) outputs; implied by the layout of (S, n, C, G, G) outputs.
        normalise: compare the outputs as they are (``"none"``); divide each output of a pair by its
            per-channel mean over the pair's jointly visible cells (``"gain"``: removes light intensity and
            colour, for renders); standardise each over its visible cells (``"standardise"``: zero mean, unit
            variance; discounts exposure and contrast, for photos); or compare chromaticities W_c / Σ_c W_c
            (``"chromaticity"``: discounts white-light shading entirely; useless on grey photos).
        highpass_sigma: compare the detail layers (σ in cells, :func:`detail_layer`) instead of the colours;
            with ``"gain"`` each output is first divided by its mean over its own mask.
        min_overlap: pairs sharing less than this fraction of the G² cells are left out (NaN).

    Returns:
        :class:`CorrespondenceScore`.
    """
    if normalise not in ("none", "gain", "standardise", "chromaticity"):
        raise ValueError(f"normalise={normalise!r}: use 'none', 'gain', 'standardise' or 'chromaticity'")
    x, m, ids = _score_inputs(flattened, mask, subject_ids)
    p, c, h, w = x.shape
    if normalise == "chromaticity":
        x = x / x.sum(1, keepdim=True).clamp(min=1e-3)
    elif normalise == "standardise":
        cnt = (m.sum((1, 2, 3)) * c).clamp(min=1)
        mean = (x * m).sum((1, 2, 3)) / cnt
        var = (((x - mean[:, None, None, None]) * m) ** 2).sum((1, 2, 3)) / cnt
        x = (x - mean[:, None, None, None]) / var.clamp(min=1e-12).sqrt()[:, None, None, None]
    if highpass_sigma is not None:
        if normalise == "gain":  # own-mask gain first: the detail layer of a brighter copy is a brighter copy
            mean = (x * m).sum((2, 3), keepdim=True) / m.sum((2, 3), keepdim=True).clamp_min(1)
            x = x / mean.clamp_min(1e-6)
        x, m = detail_layer(x, m, highpass_sigma)
    xm = (x * m).reshape(p, c, -1)
    mm = m.reshape(p, -1)
    x2 = (x * x * m).reshape(p, c, -1)
    overlap = mm @ mm.T
    sq = torch.zeros(p, p, dtype=torch.float64)
    for ch in range(c):
        s2 = x2[:, ch] @ mm.T  # (a, b): Σ_i m_a m_b x_a²
        cross = xm[:, ch] @ xm[:, ch].T
        if normalise == "gain" and highpass_sigma is None:
            mu = ((xm[:, ch] @ mm.T) / overlap.clamp_min(1)).clamp_min(1e-6)  # mean of a where b is seen too
            sq += s2 / mu**2 + s2.T / mu.T**2 - 2.0 * cross / (mu * mu.T)
        else:
            sq += s2 + s2.T - 2.0 * cross
    frac = (overlap / (h * w)).numpy()
    dist = (sq.clamp_min(0) / (c * overlap.clamp_min(1))).sqrt().numpy()
    dist = np.where((frac >= min_overlap) & ~np.eye(p, dtype=bool), dist, np.nan)
    within, between, ratio, nn_acc, n_within, n_between = summarise_distances(dist, ids)
    return CorrespondenceScore(within=within, between=between, ratio=ratio, nn_accuracy=nn_acc, distances=dist,
                               overlap=frac, subject_ids=ids, n_within=n_within, n_between=n_between)


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
