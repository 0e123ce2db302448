"""Model-based texture and lighting reconstruction: the alternative the 3DMM-STN is measured against.

A model-based method (Blanz & Vetter 1999/2003; the regressors of Tran et al., CVPR 2017, and Deng et al.,
CVPRW 2019) explains the face pixels of an image by the morphable model alone: a linear albedo
c(β) = c̄ + Σ_k β_k T_k, lit by a low-order spherical-harmonics (SH) environment. Whatever the model cannot
express — pores, freckles, moles, stubble, make-up — is lost. The 3DMM-STN instead *resamples* the image
into the model's dense correspondence, so its flattened output keeps that detail (paper §1.2, §4, Fig. 9).
This module provides the model-based side of that comparison: :func:`fit_texture`, β and the SH lighting from
one image, given θ (fitted or true), by regularised least squares on the flattened grid, and
:func:`render_reconstruction`, the fit rendered back over the image where the STN sampled it. The light model
(second-order real spherical harmonics: :func:`~mmstn.render.shading.sh_basis`,
:func:`~mmstn.render.shading.lambert_sh`) and the renderers (:func:`~mmstn.render.grid.render_grid_colours`,
:func:`~mmstn.render.mesh.render_sh` for test images with known lighting) are in :mod:`mmstn.render`.

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

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from mmstn.errors import ShapeError
from mmstn.layers.visibility import grid_vertex_normals, occlusion_visibility
from mmstn.models.morphable import MorphableModel
from mmstn.render.grid import (
    GridRender,
    check_one_image,
    check_one_theta,
    grid_mask,
    rasterize_grid,
    render_grid_colours,
)
from mmstn.render.shading import sh_basis
from mmstn.runtime import one_thread
from mmstn.stn import STN3DMM
from mmstn.theta import Theta

__all__ = ["SamplingOperator", "TextureFit", "fit_texture", "render_reconstruction", "sampling_operator"]

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
def sampling_operator(stn: STN3DMM, theta: Theta | torch.Tensor, image_size: int | tuple[int, int],
                      cells: torch.Tensor | np.ndarray | None = None) -> SamplingOperator:
    """The linear map from per-vertex colours to the STN's samples of their rendering (see :class:`SamplingOperator`).

    Args:
        stn: the STN; theta: one image's Theta, or (6 + D,) / (1, 6 + D) in the STN's convention; image_size: H = W
            or (H, W) of the image the STN samples.
        cells: grid cells to build rows for (default: all G²).
    """
    G = stn.generator.grid_size
    theta = check_one_theta(theta, stn)
    pix, tri, frag = rasterize_grid(stn, theta, image_size)
    h, w = frag.face.shape
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
    theta: Theta | torch.Tensor,
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
        theta: a one-image :class:`~mmstn.theta.Theta` (e.g. ``fit(...).params()`` or the true θ), or a
            (6 + D,) / (1, 6 + D) tensor in the STN's convention.
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
    image = check_one_image(image)
    theta = check_one_theta(theta, stn)
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
    use = grid_mask(stn_mask, G) if mask is None else grid_mask(mask, G)
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


def render_reconstruction(stn: STN3DMM, fit: TextureFit, background: torch.Tensor | None = None,
                          image_size: int | tuple[int, int] = 224) -> GridRender:
    """Render a :class:`TextureFit`'s reconstruction (shaded model albedo) at its θ; ``valid`` = the fit's cells."""
    return render_grid_colours(stn, fit.theta, fit.reconstruction_grid, image_size, background=background,
                               visible=fit.mask)
