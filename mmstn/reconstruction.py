"""Model-based texture and lighting reconstruction: the alternative the 3DMM-STN is measured against.

A model-based method (Blanz & Vetter 1999/2003; the regressors of Tran et al., CVPR 2017, and Deng et al.,
CVPRW 2019) explains the face pixels of an image by the morphable model alone: a linear albedo
c(β) = c̄ + Σ_k β_k T_k, lit by a low-order spherical-harmonics (SH) environment. Whatever the model cannot
express — pores, freckles, moles, stubble, make-up — is lost. The 3DMM-STN instead *resamples* the image
into the model's dense correspondence, so its flattened output keeps that detail (paper §1.2, §4, Fig. 9).
This module provides the model-based side of that comparison:

* :func:`sh_basis`, :func:`sh_shading`, :func:`lambert_sh` — second-order real spherical harmonics;
* :func:`fit_texture` — β and the SH lighting from one image, given θ (fitted or true), by regularised least
  squares on the flattened grid;
* :func:`render_grid_colours`, :func:`render_reconstruction` — per-grid-vertex colours (a reconstruction,
  or the STN's own output) rendered back into the image exactly where the STN sampled them;
* :func:`render_sh` — an SH-lit rendering of any morphable model, for test images with known lighting.

**Spherical harmonics.** The nine real SH functions of degree l ≤ 2 are evaluated on unit normals
n = (x, y, z) in the camera frame (x right, y up, z towards the viewer), in the order

    Y₀₀ = c₀,  Y₁₋₁ = c₁ y,  Y₁₀ = c₁ z,  Y₁₁ = c₁ x,
    Y₂₋₂ = c₂ xy,  Y₂₋₁ = c₂ yz,  Y₂₀ = c₂₀ (3z² − 1),  Y₂₁ = c₂ xz,  Y₂₂ = c₂₂ (x² − y²),

with c₀ = ½√(1/π) = 0.282095, c₁ = √(3/4π) = 0.488603, c₂ = ½√(15/π) = 1.092548,
c₂₀ = ¼√(5/π) = 0.315392, c₂₂ = ¼√(15/π) = 0.546274: the **orthonormal** basis, ∫ Y_i Y_j dω = δ_ij
over the sphere. Shading is s_c(n) = Σ_j ℓ_cj Y_j(n) per colour channel c, so the coefficients ℓ (3, 9)
are *irradiance* coefficients. For a distant environment with radiance coefficients L_j, ℓ_j = Â_l L_j
with the clamped-cosine factors Â₀ = π, Â₁ = 2π/3, Â₂ = π/4 (Ramamoorthi & Hanrahan 2001), listed in
:data:`SH_IRRADIANCE_FACTORS`; order 2 captures about 99 % of the energy of Lambertian shading.

**The fit** (:func:`fit_texture`). The STN's sample W_i (3,) at grid cell i is in correspondence with the
model's vertex i, so on the visible cells

    W_ic ≈ s_ic(ℓ) · a_ic(β),   s_ic = Σ_j ℓ_cj Y_j(n_i),   a_ic = c̄_ic + Σ_k β_k T_kic,

with n_i the unit normal of the posed grid model (rotated shape of θ, area-weighted). We minimise the MAP
objective of Gaussian pixel noise σ and the model's priors β ~ N(0, I), ℓ ~ N(0, τ² I):

    E(β, ℓ) = Σ_i∈M Σ_c (W_ic − s_ic a_ic)²  +  σ² ‖β‖²  +  (σ/τ)² ‖ℓ‖²,

σ = ``noise_sigma`` (default 0.02: the residual that the model is not expected to explain) and τ =
``light_sigma`` (default 1, weak: it only bounds lighting terms that the visible normals do not constrain).
The problem is bilinear (linear in β for fixed ℓ and in ℓ for fixed β). We start from β = 0 with ℓ the
linear least-squares lighting of the mean albedo (the first step of alternating least squares), then take
**joint Gauss–Newton** steps in (β, ℓ) with Levenberg–Marquardt damping: the normal equations have only
K + 27 unknowns, converge in a handful of iterations, and — unlike alternation — do not crawl along the
near-ambiguity between overall brightness and the albedo components that scale the skin tone. Each step
is accepted only if E decreases. ``lighting=False`` replaces the SH shading by a per-channel gain (only ℓ_c0),
i.e. the image colours are taken for albedo up to white balance and exposure.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from mmstn.errors import ShapeError, check_finite
from mmstn.layers.grid import grid_to_pixels, grid_triangles
from mmstn.layers.visibility import grid_vertex_normals, occlusion_visibility
from mmstn.models.morphable import MorphableModel
from mmstn.render import Fragments, Lighting, posed_for_raster, rasterize, render_colours
from mmstn.stn import STN3DMM

__all__ = [
    "SH_CONSTANTS",
    "SH_IRRADIANCE_FACTORS",
    "SH_NAMES",
    "GridRender",
    "SHRender",
    "SamplingOperator",
    "TextureFit",
    "fit_texture",
    "lambert_sh",
    "one_thread",
    "render_grid_colours",
    "render_reconstruction",
    "render_sh",
    "sampling_operator",
    "sh_basis",
    "sh_shading",
]

@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch single-threaded inside the block (or decorated function), then restore the thread count.

    The fits and renderings here work on a few thousand grid cells at a time: intra-op parallelism costs
    more than it saves, and on a busy machine a thread that waits for a descheduled partner makes every small
    operation ten to thirty times slower. (The setting is process-wide while the block runs.)
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# ----------------------------------------------------------------------------------- spherical harmonics
#: Names of the nine basis functions, in the order of :func:`sh_basis`.
SH_NAMES: tuple[str, ...] = ("Y00", "Y1-1", "Y10", "Y11", "Y2-2", "Y2-1", "Y20", "Y21", "Y22")

#: Normalisation constants c₀, c₁, c₂, c₂₀, c₂₂ of the orthonormal real SH (module docstring).
SH_CONSTANTS: dict[str, float] = {
    "c0": 0.5 * math.sqrt(1.0 / math.pi),
    "c1": math.sqrt(3.0 / (4.0 * math.pi)),
    "c2": 0.5 * math.sqrt(15.0 / math.pi),
    "c20": 0.25 * math.sqrt(5.0 / math.pi),
    "c22": 0.25 * math.sqrt(15.0 / math.pi),
}

#: Â_l per basis function: irradiance coefficient = Â_l × radiance coefficient (clamped-cosine convolution).
SH_IRRADIANCE_FACTORS: tuple[float, ...] = (math.pi,) + (2.0 * math.pi / 3.0,) * 3 + (math.pi / 4.0,) * 5


def sh_basis(normals: torch.Tensor, normalise: bool = True) -> torch.Tensor:
    """The nine orthonormal real SH functions of degree ≤ 2 at the given directions (module docstring).

    Args:
        normals: (..., 3) directions (x, y, z) in the camera frame; normalised first when ``normalise``
            (zero vectors stay zero and give Y₀₀ only).
        normalise: divide by the length.

    Returns:
        (..., 9) in the order of :data:`SH_NAMES`, same dtype as ``normals``.

    Raises:
        ShapeError: ``normals`` is not a floating-point tensor with last dimension 3.
        ValueError: ``normals`` holds NaN or inf.
    """
    if not isinstance(normals, torch.Tensor) or not torch.is_floating_point(normals):
        raise ShapeError(f"normals must be a floating-point tensor of shape (..., 3), got {type(normals).__name__}")
    if normals.ndim < 1 or normals.shape[-1] != 3:
        raise ShapeError(f"normals must have shape (..., 3), got {tuple(normals.shape)}")
    check_finite("normals", normals)
    n = normals
    if normalise:
        n = n / n.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(n.dtype).tiny)
    x, y, z = n.unbind(-1)
    c = SH_CONSTANTS
    return torch.stack(
        [
            torch.full_like(x, c["c0"]),
            c["c1"] * y,
            c["c1"] * z,
            c["c1"] * x,
            c["c2"] * x * y,
            c["c2"] * y * z,
            c["c20"] * (3.0 * z * z - 1.0),
            c["c2"] * x * z,
            c["c22"] * (x * x - y * y),
        ],
        dim=-1,
    )


def _check_sh(sh: torch.Tensor) -> torch.Tensor:
    if not isinstance(sh, torch.Tensor) or not torch.is_floating_point(sh):
        raise ShapeError(f"sh must be a floating-point tensor of shape (3, 9), got {type(sh).__name__}")
    if tuple(sh.shape) != (3, 9):
        raise ShapeError(f"sh must have shape (3, 9) (one row of 9 coefficients per colour), got {tuple(sh.shape)}")
    check_finite("sh", sh)
    return sh


def sh_shading(normals: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
    """Per-channel shading s_c(n) = Σ_j sh[c, j] Y_j(n).

    Args:
        normals: (..., 3) directions (normalised here).
        sh: (3, 9) irradiance coefficients per colour channel.

    Returns:
        (..., 3) shading (multiplies the albedo), same dtype as ``normals``.
    """
    sh = _check_sh(sh)
    return sh_basis(normals) @ sh.to(normals.dtype).T


_DEFAULT_LIGHT = Lighting()


def lambert_sh(lighting: Lighting = _DEFAULT_LIGHT, gain=(1.0, 1.0, 1.0)) -> torch.Tensor:
    """Order-2 SH coefficients (3, 9) of the project's ambient + Lambert light (:class:`mmstn.render.Lighting`).

    The shading ``gain_c · (ambient + diffuse · max(n·d, 0))`` (d the unit direction towards the light) has
    irradiance coefficients ℓ_c0 = gain_c · (ambient / c₀ + diffuse · Â₀ Y₀₀(d)) and
    ℓ_cj = gain_c · diffuse · Â_l Y_j(d) for j > 0: a directional light is a delta of radiance, whose
    clamped-cosine convolution has the factors :data:`SH_IRRADIANCE_FACTORS`. The truncation at l = 2 is
    the only approximation: ¼ + ½ cos γ + (5/16)·(3 cos² γ − 1)/2 instead of max(cos γ, 0) at angle γ from
    the light, i.e. 1.0625 facing it, 0.0625 opposite, and at most 0.094 · ``diffuse`` off (at γ = 90°);
    the mean over the sphere is exact.

    Returns:
        float64 tensor (3, 9).
    """
    d = torch.as_tensor(lighting.direction, dtype=torch.float64)
    if d.shape != (3,) or float(d.norm()) == 0.0:
        raise ValueError(f"lighting.direction must be a non-zero 3-vector, got {lighting.direction}")
    y = sh_basis(d)
    factors = torch.tensor(SH_IRRADIANCE_FACTORS, dtype=torch.float64)
    row = lighting.diffuse * factors * y
    row[0] += lighting.ambient / SH_CONSTANTS["c0"]
    g = torch.as_tensor(gain, dtype=torch.float64).reshape(3, 1)
    return g * row[None]


# ----------------------------------------------------------------------------------------- the fit
@dataclass
class TextureFit:
    """A model-based texture and lighting fit to one image (:func:`fit_texture`).

    Attributes:
        beta: (K,) texture coefficients (β ~ N(0, I) units).
        sh: (3, 9) SH irradiance coefficients per colour channel; with ``lighting=False`` only column 0
            (the per-channel gain, ℓ_c0 = gain_c / c₀) is non-zero.
        albedo_grid: (3, G, G) reconstructed albedo c̄ + Σ β_k T_k, clipped to [0, 1].
        shading_grid: (3, G, G) the fitted shading at every grid vertex (also the invisible ones).
        reconstruction_grid: (3, G, G) clip(shading · albedo, 0, 1): the model's explanation of the
            flattened image at every grid vertex.
        target: (3, G, G) what was fitted: the STN's samples V (unmasked) at θ.
        mask: (1, G, G) float 0/1, the cells used by the fit.
        stn_mask: (1, G, G) the STN's visibility mask at θ.
        theta: (6 + D,) the θ used.
        n_components: K.
        lighting: whether SH lighting was modelled (else a per-channel gain).
        noise_sigma, light_sigma: the regularisation (module docstring).
        rmse: root-mean-square residual over the mask and the three channels (colour units).
        history: objective E after each accepted step (the first entry is the initialisation).
        sampling: ``"bilinear"`` or ``"point"`` (how samples were predicted, :func:`fit_texture`).
    """

    beta: torch.Tensor
    sh: torch.Tensor
    albedo_grid: torch.Tensor
    shading_grid: torch.Tensor
    reconstruction_grid: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor
    stn_mask: torch.Tensor
    theta: torch.Tensor
    n_components: int
    lighting: bool
    noise_sigma: float
    light_sigma: float
    rmse: float
    history: list[float] = field(default_factory=list)
    sampling: str = "bilinear"

    @property
    def iterations(self) -> int:
        """Accepted Gauss–Newton steps."""
        return max(len(self.history) - 1, 0)


def _as_image(image: torch.Tensor) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or not torch.is_floating_point(image):
        raise ShapeError(
            f"image must be a floating-point tensor (3, H, W) or (1, 3, H, W), got {type(image).__name__}"
        )
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3 or image.shape[0] != 3:
        raise ShapeError(f"image must have shape (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
    check_finite("image", image)
    return image


def _as_theta(theta: torch.Tensor, d: int) -> torch.Tensor:
    if not isinstance(theta, torch.Tensor) or not torch.is_floating_point(theta):
        raise ShapeError(
            f"theta must be a floating-point tensor ({6 + d},) or (1, {6 + d}), got {type(theta).__name__}"
        )
    if theta.ndim == 2 and theta.shape[0] == 1:
        theta = theta[0]
    if theta.ndim != 1 or theta.shape[0] != 6 + d:
        raise ShapeError(f"theta must have shape ({6 + d},) or (1, {6 + d}) for one image, got {tuple(theta.shape)}")
    check_finite("theta", theta)
    return theta


def _check_grid_model(stn: STN3DMM, model: MorphableModel | None, n_components: int | None) -> tuple[int, int]:
    if model is None:
        raise ValueError(
            "fit_texture needs model=<the grid model> (the STN keeps only the shape; the colour and texture "
            "basis live in the MorphableModel it was built from, e.g. mmstn.uv.builtin_grid_model(G))"
        )
    G = stn.generator.grid_size
    if model.n_vertices != G * G:
        raise ShapeError(f"model {model.name!r} has {model.n_vertices} vertices; the STN's grid needs G² = {G * G}")
    if model.colour is None:
        raise ValueError(f"model {model.name!r} has no colour (mean albedo); a texture fit needs one")
    k_max = 0 if model.texture_basis is None else int(model.texture_basis.shape[0])
    k = k_max if n_components is None else int(n_components)
    if not 0 <= k <= k_max:
        raise ValueError(f"n_components={n_components}: model {model.name!r} has {k_max} texture components")
    return G, k


def _mask_grid(mask, G: int) -> torch.Tensor:
    m = torch.as_tensor(mask)
    while m.ndim > 2 and m.shape[0] == 1:
        m = m[0]
    if tuple(m.shape) != (G, G):
        raise ShapeError(f"mask must have shape (G, G), (1, G, G) or (1, 1, G, G) with G = {G}, got {tuple(m.shape)}")
    return m.to(torch.float64) > 0.5


def _erode(mask: torch.Tensor, steps: int) -> torch.Tensor:
    """Remove ``steps`` rings of cells (3×3 neighbourhood) from a (G, G) bool mask; outside the grid counts as
    invisible, so the grid's own border (the mesh boundary, where samples straddle the silhouette) goes too."""
    m = mask[None, None].to(torch.float64)
    for _ in range(int(steps)):
        m = -F.max_pool2d(-F.pad(m, (1, 1, 1, 1), value=0.0), 3, stride=1)
    return m[0, 0] > 0.5


@dataclass
class SamplingOperator:
    """How the STN's bilinear samples mix the colours of the grid vertices, for one θ (:func:`sampling_operator`).

    Rendering per-vertex colours c (N, 3) with :func:`render_grid_colours` and sampling the result with the STN
    gives, at every cell i of ``cells``, exactly (A c)_i: the four bilinear taps around the cell's sampling
    position, each a barycentric mix of the three vertices of the front-most grid triangle at that pixel.

    Attributes:
        matrix: scipy CSR (n, N), rows sum to 1 for clean cells.
        cells: (n,) int64 grid cells (row·G + col) the rows belong to.
        clean: (n,) bool, True when every tap with non-zero weight lies in the image on a covered pixel
            (a sample that mixes in background or padding is not clean).
    """

    matrix: sp.csr_matrix
    cells: np.ndarray
    clean: np.ndarray


@one_thread()
def sampling_operator(stn: STN3DMM, theta: torch.Tensor, image_size: int | tuple[int, int],
                      cells: torch.Tensor | np.ndarray | None = None) -> SamplingOperator:
    """The linear map from per-vertex colours to the STN's samples of their rendering (see :class:`SamplingOperator`).

    Args:
        stn: the STN; theta: (6 + D,) or (1, 6 + D); image_size: H = W or (H, W) of the image the STN samples.
        cells: grid cells to build rows for (default: all G²).
    """
    G = stn.generator.grid_size
    theta = _as_theta(theta, stn.generator.n_components)
    h, w = (image_size, image_size) if isinstance(image_size, int) else (int(image_size[0]), int(image_size[1]))
    dtype = stn.generator.morphable.mean.dtype
    with torch.no_grad():
        gen = stn.generator(theta[None].to(dtype), image_size=(h, w))
    pix = grid_to_pixels(gen.grid[0].reshape(-1, 2).double(), (h, w)).numpy()
    p3 = np.concatenate([pix, gen.rotated[0, :, 2:3].double().numpy()], 1)
    tri = grid_triangles(G).numpy()
    frag = rasterize(p3, tri, h, w, cull_backfaces=True)
    cells = np.arange(G * G) if cells is None else np.asarray(cells, dtype=np.int64).reshape(-1)
    x, y = pix[cells, 0], pix[cells, 1]
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    rows, cols, vals = [], [], []
    clean = np.ones(len(cells), dtype=bool)
    for dx, dy, wt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        px, py = x0 + dx, y0 + dy
        used = wt > 1e-12
        inside = (px >= 0) & (px < w) & (py >= 0) & (py < h)
        face = np.full(len(cells), -1, dtype=np.int64)
        face[inside] = frag.face[py[inside], px[inside]]
        clean &= ~used | (face >= 0)
        ok = used & (face >= 0)
        r = np.flatnonzero(ok)
        bary = frag.bary[py[ok], px[ok]]  # (m, 3)
        rows.append(np.repeat(r, 3))
        cols.append(tri[face[ok]].reshape(-1))
        vals.append((bary * wt[ok, None]).reshape(-1))
    A = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(len(cells), G * G))
    return SamplingOperator(A, cells, clean)


@one_thread()
def fit_texture(
    stn: STN3DMM,
    image: torch.Tensor,
    theta: torch.Tensor,
    n_components: int | None = None,
    lighting: bool = True,
    *,
    model: MorphableModel,
    mask: torch.Tensor | np.ndarray | None = None,
    sampling: Literal["bilinear", "point"] = "bilinear",
    exact_visibility: bool = False,
    erode: int = 1,
    noise_sigma: float = 0.02,
    light_sigma: float = 1.0,
    max_iter: int = 30,
    tol: float = 1e-9,
) -> TextureFit:
    """Fit texture coefficients β and SH lighting to one image by regularised least squares on the grid.

    The STN samples the image at θ; the samples of visible cells are explained as shading × albedo
    (module docstring: objective, initialisation, Gauss–Newton).

    Args:
        stn: the 3DMM-STN (its grid generator and visibility mask are used).
        image: (3, H, W) or (1, 3, H, W), RGB in [0, 1].
        theta: (6 + D,) or (1, 6 + D), e.g. from :func:`mmstn.fitting.fit` or the true θ.
        n_components: K, the leading texture components to fit (0 = mean albedo only; default: all).
        lighting: model the light with 9 SH coefficients per channel; ``False``: a per-channel gain only.
        model: the grid model the STN was built from, with ``colour`` and (for K > 0) ``texture_basis``.
        mask: optional (G, G) (or (1, G, G), (1, 1, G, G)) cells to use instead of the STN's mask.
        sampling: ``"bilinear"`` (default) predicts each sample as the STN's bilinear sample of the rendered
            model (:func:`sampling_operator`: four pixels, each a mix of a triangle's vertices; self-occlusion
            is then explained, not an error) and drops samples that touch background; ``"point"`` takes
            sample i for the colour of vertex i (biased at sharp albedo edges and behind the nose).
        exact_visibility: also drop cells hidden by another part of the face (ray casting,
            :func:`mmstn.layers.visibility.occlusion_visibility`); the STN's mask is back-face only.
        erode: rings of cells removed from the mask's border (the grid border included: silhouette samples
            mix in background).
        noise_sigma: σ, the pixel noise of the MAP objective (β's prior weight is σ²).
        light_sigma: τ, the prior standard deviation of every SH coefficient.
        max_iter: Gauss–Newton iterations at most.
        tol: stop when an accepted step lowers E by less than ``tol`` · E.

    Returns:
        :class:`TextureFit`.

    Raises:
        ShapeError: image, θ, mask or model sizes do not fit (the message names the argument).
        ValueError: NaN/inf in the inputs, K out of range, no usable cells, a model without colour.
    """
    G, K = _check_grid_model(stn, model, n_components)
    image = _as_image(image)
    d = stn.generator.n_components
    theta = _as_theta(theta, d)
    if noise_sigma <= 0 or light_sigma <= 0:
        raise ValueError(f"noise_sigma={noise_sigma} and light_sigma={light_sigma} must be positive")
    if sampling not in ("bilinear", "point"):
        raise ValueError(f"sampling={sampling!r}: use 'bilinear' or 'point'")
    dtype = stn.generator.morphable.mean.dtype
    with torch.no_grad():
        out = stn(image[None].to(dtype), theta[None].to(dtype))
    sampled = out.sampled[0].double()  # (3, G, G)
    stn_mask = out.mask[0].double()
    rotated = out.rotated[0].double()  # (N, 3)
    use = _mask_grid(stn_mask, G) if mask is None else _mask_grid(mask, G)
    use = use & (out.grid[0].abs() <= 1.0).all(-1)  # sampled inside the image
    if exact_visibility:
        use = use & occlusion_visibility(rotated, model.triangles, backface_culling=True).reshape(G, G)
    use = _erode(use, erode)
    cells = np.flatnonzero(use.reshape(-1).numpy())
    if sampling == "bilinear":
        op = sampling_operator(stn, theta, (int(image.shape[1]), int(image.shape[2])), cells)
        cells = cells[op.clean]
        A = op.matrix[op.clean].tocsc()
        touched = np.flatnonzero(np.asarray(A.getnnz(axis=0)) > 0)  # vertices the samples depend on
        A = A[:, touched].tocsr()
    else:
        touched, A = cells, None
    if cells.size < 10:
        raise ValueError(f"only {cells.size} grid cells are usable at this θ; is the face in the image?")
    idx = torch.from_numpy(touched)

    normals = grid_vertex_normals(rotated[None], G, "area")[0]
    Y_all = sh_basis(normals) if lighting else sh_basis(normals)[:, :1]  # (N, J)
    J = Y_all.shape[1]
    Y = Y_all[idx]  # (m, J) at the vertices the samples depend on
    W = sampled.reshape(3, -1).T[torch.from_numpy(cells)]  # (n, 3)
    cbar = model.colour.detach().double()[idx]  # (m, 3)
    T = model.texture_basis.detach().double()[:K][:, idx] if K else torch.zeros(0, len(idx), 3, dtype=torch.float64)
    lam_b = noise_sigma**2
    lam_l = (noise_sigma / light_sigma) ** 2

    def sample(x: torch.Tensor) -> torch.Tensor:
        """Per-vertex values (m, q) → predicted samples (n, q)."""
        return x if A is None else torch.from_numpy(A @ x.numpy())

    def albedo(beta: torch.Tensor) -> torch.Tensor:
        return cbar + torch.einsum("k,knc->nc", beta, T) if K else cbar

    def objective(beta: torch.Tensor, ell: torch.Tensor) -> float:
        r = W - sample((Y @ ell.T) * albedo(beta))
        return float((r * r).sum() + lam_b * (beta * beta).sum() + lam_l * (ell * ell).sum())

    # initialisation: β = 0 and the least-squares lighting of the mean albedo, channel by channel
    beta = torch.zeros(K, dtype=torch.float64)
    ell = torch.zeros(3, J, dtype=torch.float64)
    eye_j = torch.eye(J, dtype=torch.float64)
    for c in range(3):
        Ac = sample(Y * cbar[:, c : c + 1])
        ell[c] = torch.linalg.solve(Ac.T @ Ac + lam_l * eye_j, Ac.T @ W[:, c])
    history = [objective(beta, ell)]
    mu = 1e-6
    n_par = K + 3 * J
    for _ in range(int(max_iter)):
        a = albedo(beta)
        s = Y @ ell.T  # (m, 3)
        r = W - sample(s * a)
        H = torch.zeros(n_par, n_par, dtype=torch.float64)
        g = torch.zeros(n_par, dtype=torch.float64)
        for c in range(3):
            Jb = sample(s[:, c : c + 1] * T[:, :, c].T) if K else torch.zeros(len(cells), 0, dtype=torch.float64)
            Jl = sample(Y * a[:, c : c + 1])  # (n, J)
            sl = slice(K + c * J, K + (c + 1) * J)
            H[:K, :K] += Jb.T @ Jb
            H[:K, sl] += Jb.T @ Jl
            H[sl, :K] += Jl.T @ Jb
            H[sl, sl] += Jl.T @ Jl
            g[:K] += Jb.T @ r[:, c]
            g[sl] += Jl.T @ r[:, c]
        H[:K, :K] += lam_b * torch.eye(K, dtype=torch.float64)
        g[:K] -= lam_b * beta
        H[K:, K:] += lam_l * torch.eye(3 * J, dtype=torch.float64)
        g[K:] -= lam_l * ell.reshape(-1)
        diag = torch.diagonal(H).clone().clamp_min(1e-12)
        accepted = False
        for _ in range(12):
            step = torch.linalg.solve(H + mu * torch.diag(diag), g)
            b_new, l_new = beta + step[:K], ell + step[K:].reshape(3, J)
            e_new = objective(b_new, l_new)
            if e_new <= history[-1]:
                accepted = True
                break
            mu *= 10.0
        if not accepted:
            break
        decrease = history[-1] - e_new
        beta, ell = b_new, l_new
        history.append(e_new)
        mu = max(mu / 10.0, 1e-9)
        if decrease <= tol * max(history[-2], 1e-300):
            break

    sh = torch.zeros(3, 9, dtype=torch.float64)
    sh[:, :J] = ell
    alb_all = (model.albedo(beta.to(model.dtype)) if K else model.colour).detach().double()
    shade_all = Y_all @ ell.T  # (N, 3)
    recon_all = (shade_all * alb_all).clamp(0.0, 1.0)
    r = W - sample((Y @ ell.T) * albedo(beta))
    rmse = float(r.pow(2).mean().sqrt())
    used = torch.zeros(G * G, dtype=torch.float32)
    used[torch.from_numpy(cells)] = 1.0

    def grid(x: torch.Tensor) -> torch.Tensor:
        return x.T.reshape(3, G, G).float()

    return TextureFit(
        beta=beta.float(),
        sh=sh.float(),
        albedo_grid=grid(alb_all.clamp(0.0, 1.0)),
        shading_grid=grid(shade_all),
        reconstruction_grid=grid(recon_all),
        target=sampled.float(),
        mask=used.reshape(1, G, G),
        stn_mask=stn_mask.float(),
        theta=theta.detach().float(),
        n_components=K,
        lighting=bool(lighting),
        noise_sigma=float(noise_sigma),
        light_sigma=float(light_sigma),
        rmse=rmse,
        history=history,
        sampling=sampling,
    )


# ------------------------------------------------------------------------------------------ rendering
@dataclass
class GridRender:
    """Per-grid-vertex colours rendered into the image where the STN samples them.

    Attributes:
        image: float32 (3, H, W): the colours over the background.
        coverage: bool (H, W): pixels covered by a front-facing grid triangle (the nearest one).
        valid: bool (H, W): covered by a triangle whose three vertices are all in ``visible``.
        fragments: the rasterisation.
    """

    image: torch.Tensor
    coverage: np.ndarray
    valid: np.ndarray
    fragments: Fragments


def _grid_colours(colours: torch.Tensor, G: int) -> np.ndarray:
    c = torch.as_tensor(colours)
    if c.ndim == 4 and c.shape[0] == 1:
        c = c[0]
    if tuple(c.shape) == (3, G, G):
        c = c.reshape(3, -1).T
    if tuple(c.shape) != (G * G, 3):
        raise ShapeError(f"colours must have shape (3, G, G) or (G², 3) with G = {G}, got {tuple(colours.shape)}")
    check_finite("colours", c)
    return c.detach().cpu().double().numpy()


@one_thread()
def render_grid_colours(
    stn: STN3DMM,
    theta: torch.Tensor,
    colours: torch.Tensor,
    image_size: int | tuple[int, int] = 224,
    *,
    background: torch.Tensor | None = None,
    visible: torch.Tensor | None = None,
) -> GridRender:
    """Render per-grid-vertex colours at θ: vertex k lands on the pixel position the STN samples for it.

    The posed grid model is rasterised (front faces, z-buffer on the rotated depth) with the vertices at
    :func:`mmstn.layers.grid.grid_to_pixels` of the STN's sampling grid, so rendering the STN's own samples
    reproduces the input up to two bilinear interpolations, and rendering a reconstruction puts it exactly
    over the face it explains.

    Args:
        stn: the STN.
        theta: (6 + D,) or (1, 6 + D).
        colours: (3, G, G) or (G², 3), RGB in [0, 1] (e.g. :attr:`TextureFit.reconstruction_grid`).
        image_size: H = W, or (H, W); taken from ``background`` when given.
        background: optional (3, H, W) image drawn behind (black otherwise).
        visible: optional (G, G) (or (1, G, G)) cells whose colours are meaningful (default: all); decides
            :attr:`GridRender.valid`.

    Returns:
        :class:`GridRender`.
    """
    G = stn.generator.grid_size
    theta = _as_theta(theta, stn.generator.n_components)
    cols = _grid_colours(colours, G)
    if background is not None:
        background = _as_image(background)
        image_size = (int(background.shape[1]), int(background.shape[2]))
    h, w = (image_size, image_size) if isinstance(image_size, int) else (int(image_size[0]), int(image_size[1]))
    dtype = stn.generator.morphable.mean.dtype
    with torch.no_grad():
        gen = stn.generator(theta[None].to(dtype), image_size=(h, w))
    pix = grid_to_pixels(gen.grid[0].reshape(-1, 2).double(), (h, w))
    p3 = torch.cat([pix, gen.rotated[0, :, 2:3].double()], 1).numpy()
    tri = grid_triangles(G).numpy()
    frag = rasterize(p3, tri, h, w, cull_backfaces=True)
    img = render_colours(frag, tri, cols)
    bg = np.zeros((h, w, 3)) if background is None else background.detach().cpu().double().numpy().transpose(1, 2, 0)
    img = np.where(frag.mask[..., None], img, bg)
    vis = np.ones(G * G, dtype=bool) if visible is None else _mask_grid(visible, G).reshape(-1).numpy()
    ok_tri = vis[tri].all(axis=1)
    valid = frag.mask & ok_tri[np.where(frag.mask, frag.face, 0)]
    return GridRender(
        image=torch.from_numpy(np.clip(img, 0.0, 1.0).transpose(2, 0, 1).astype(np.float32)),
        coverage=frag.mask,
        valid=valid,
        fragments=frag,
    )


def render_reconstruction(stn: STN3DMM, fit: TextureFit, background: torch.Tensor | None = None,
                          image_size: int | tuple[int, int] = 224) -> GridRender:
    """Render a :class:`TextureFit`'s reconstruction (shaded model albedo) at its θ; ``valid`` = the fit's cells."""
    return render_grid_colours(stn, fit.theta, fit.reconstruction_grid, image_size, background=background,
                               visible=fit.mask)


@dataclass
class SHRender:
    """An SH-lit rendering of a morphable model (:func:`render_sh`).

    Attributes:
        image: float32 (3, H, W), RGB in [0, 1].
        mask: bool (H, W), True on the face.
        points: (N, 2) every vertex in the label frame.
        normals: (N, 3) unit vertex normals of the posed shape (camera frame).
        colours: (N, 3) the per-vertex colours rasterised (clip(shading · albedo, 0, 1)).
        fragments: the rasterisation.
    """

    image: torch.Tensor
    mask: np.ndarray
    points: torch.Tensor
    normals: torch.Tensor
    colours: torch.Tensor
    fragments: Fragments


@one_thread()
def render_sh(
    model: MorphableModel,
    theta: torch.Tensor,
    sh: torch.Tensor,
    albedo: torch.Tensor | None = None,
    *,
    image_size: int = 224,
    background: torch.Tensor | None = None,
    scale_base: str | float = "exp",
) -> SHRender:
    """Render ``model`` posed by θ with per-vertex albedo and SH shading (z-buffer, orthographic).

    The same pose, pixel frame and area-weighted vertex normals as :func:`mmstn.render.render_face`; only the
    shading differs: colour_i = clip(albedo_i · Σ_j sh[:, j] Y_j(n_i), 0, 1) per vertex, interpolated over
    the triangles.

    Args:
        model: any :class:`~mmstn.models.MorphableModel` (a grid model too).
        theta: (6 + D′,) or (1, 6 + D′), D′ ≤ D.
        sh: (3, 9) irradiance coefficients (:func:`lambert_sh` converts an ambient + Lambert light).
        albedo: (N, 3) in [0, 1]; default the model's ``colour``.
        image_size: H = W.
        background: optional (3, H, W) image in [0, 1] (black otherwise).
        scale_base: how logs maps to the scale (``"exp"`` as the synthetic data, or ``"0.99"``).

    Returns:
        :class:`SHRender`.
    """
    sh = _check_sh(torch.as_tensor(sh, dtype=torch.float64) if not isinstance(sh, torch.Tensor) else sh.double())
    theta = torch.as_tensor(theta).reshape(1, -1)
    if albedo is None:
        if model.colour is None:
            raise ValueError(f"model {model.name!r} has no colour; pass albedo=(N, 3)")
        albedo = model.colour
    albedo = torch.as_tensor(albedo).double()
    if tuple(albedo.shape) != (model.n_vertices, 3):
        raise ShapeError(f"albedo must have shape ({model.n_vertices}, 3), got {tuple(albedo.shape)}")
    check_finite("albedo", albedo)
    points, _, p3, normals = posed_for_raster(model, theta, image_size, scale_base)
    with torch.no_grad():
        colours = (sh_shading(normals, sh) * albedo).clamp(0.0, 1.0)
    frag = rasterize(p3, model.triangles, image_size, image_size)
    img = render_colours(frag, model.triangles, colours.numpy())
    if background is not None:
        bg = _as_image(background).detach().cpu().double().numpy().transpose(1, 2, 0)
        if bg.shape[:2] != (image_size, image_size):
            raise ShapeError(f"background must be (3, {image_size}, {image_size}), got {tuple(background.shape)}")
        img = np.where(frag.mask[..., None], img, bg)
    return SHRender(
        image=torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32)),
        mask=frag.mask,
        points=points[0],
        normals=normals,
        colours=colours,
        fragments=frag,
    )
