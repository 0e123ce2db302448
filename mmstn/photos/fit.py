"""Fit θ = (r, t, logs, α) of a morphable model to 2-D points tied to its vertices.

The model is posed as the grid generator poses it (docs/conventions.md): x = s·(R(r)·X(α))_xy + t in the
label frame (1-based column, y up) of an S × S image, with s = exp(logs) (the paper's convention), so the θ
found here drives :class:`~mmstn.stn.STN3DMM` with ``STNConfig.paper`` on the same image unchanged.

Objective: the weighted mean squared distance (pixels²) between the posed vertices and the points, divided by
``sigma_px²`` (the points' noise), plus ‖α‖² (α ~ N(0, I) is the prior). Minimised by batched Levenberg–Marquardt from
a few yaw angles; only the vertices in use are evaluated, so a fit takes milliseconds. Batched over faces.
"""

from __future__ import annotations

import math

import torch

from mmstn.errors import ShapeError
from mmstn.layers.grid import pixels_to_labels
from mmstn.layers.rotation import rodrigues, rodrigues_jacobian
from mmstn.models.morphable import MorphableModel
from mmstn.theta import THETA_ALPHA, THETA_LOGS, THETA_R, THETA_T, theta_size
from mmstn.transforms import euler_to_axis_angle

__all__ = ["DEFAULT_SIGMA_PX", "fit_points"]

#: noise of the face mesh's points on a 224-pixel crop (pixels): sets the data term's weight against the prior
DEFAULT_SIGMA_PX = 1.0
#: yaw angles the fits start from, radians
START_YAWS = (-0.7, 0.0, 0.7)


def _pose(mean: torch.Tensor, basis: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """(B, 6 + D) θ → (B, K, 2) label-frame points of the K selected vertices (mean (K, 3), basis (D, K, 3))."""
    d = basis.shape[0]
    shape = mean + torch.einsum("bd,dkc->bkc", theta[:, THETA_ALPHA][:, :d], basis)
    rotated = shape @ rodrigues(theta[:, THETA_R], "autograd").transpose(1, 2)
    return rotated[..., :2] * torch.exp(theta[:, THETA_LOGS])[:, :, None] + theta[:, THETA_T][:, None]


def residuals(
    mean: torch.Tensor, basis: torch.Tensor, theta: torch.Tensor, target: torch.Tensor, sqrt_w: torch.Tensor
) -> torch.Tensor:
    """The least-squares residuals (N, 2K + D): √w_k (x_k(θ) − target_k) for each point (x, y), then α."""
    e = (_pose(mean, basis, theta) - target) * sqrt_w[..., None]
    return torch.cat([e.flatten(1), theta[:, THETA_ALPHA]], 1)


def residual_jacobian(
    mean: torch.Tensor, basis: torch.Tensor, theta: torch.Tensor, sqrt_w: torch.Tensor
) -> torch.Tensor:
    """∂ :func:`residuals` / ∂θ, (N, 2K + D, 6 + D), written out (checked against autograd in the tests).

    With X = μ + Bα, x = s·(R X)_xy + t and s = exp(logs): ∂x/∂r_i = s·(∂R/∂r_i X)_xy (Gallego–Yezzi),
    ∂x/∂t = I₂, ∂x/∂logs = s·(R X)_xy, ∂x/∂α_d = s·(R B_d)_xy; the prior rows are the identity on α.
    """
    n, k, d = theta.shape[0], mean.shape[0], basis.shape[0]
    R = rodrigues(theta[:, THETA_R], "autograd")
    dR = rodrigues_jacobian(theta[:, THETA_R], R)  # (N, 3, 3, 3): dR[:, i] = ∂R/∂r_i
    s = torch.exp(theta[:, THETA_LOGS])[:, :, None]  # (N, 1, 1)
    X = mean + torch.einsum("nd,dkc->nkc", theta[:, THETA_ALPHA][:, :d], basis)  # (N, K, 3)
    J = theta.new_zeros(n, k, 2, theta_size(d))
    J[..., THETA_R] = s[..., None] * torch.einsum("nirc,nkc->nkri", dR[:, :, :2], X)
    J[..., THETA_T] = torch.eye(2, dtype=theta.dtype)  # ∂x/∂t = I₂
    J[..., THETA_LOGS.start] = s * (X @ R.transpose(1, 2))[..., :2]
    if d:
        J[..., THETA_ALPHA] = s[..., None] * torch.einsum("nrc,dkc->nkrd", R[:, :2], basis)
    J = J * sqrt_w[..., None, None]
    prior = theta.new_zeros(n, d, theta_size(d))
    prior[:, :, THETA_ALPHA] = torch.eye(d, dtype=theta.dtype)
    return torch.cat([J.reshape(n, 2 * k, theta_size(d)), prior], 1)


def fit_points(
    model: MorphableModel,
    points: torch.Tensor,
    vertex: torch.Tensor,
    weight: torch.Tensor | None = None,
    *,
    image_size: int,
    n_components: int | None = None,
    sigma_px: float = DEFAULT_SIGMA_PX,
    iterations: int = 30,
) -> torch.Tensor:
    """θ (B, 6 + D) that poses ``model``'s vertices ``vertex`` onto ``points``.

    Args:
        model: the morphable model (any number of components; its first D are fitted).
        points: (B, K, 2) or (K, 2) 0-based pixel coordinates (x right, y down) in an S × S image.
        vertex: (K,) vertex ids the points lie on.
        weight: (K,) or (B, K) non-negative point weights (default 1); NaN points must have weight 0.
        image_size: S, pixels.
        n_components: D (default: all of the model's).
        sigma_px: the points' noise, pixels (larger: the prior counts more).
        iterations: Levenberg–Marquardt iterations.

    Returns:
        θ (B, 6 + D) float64, paper convention (s = exp(logs)), label frame of the S × S image.
    """
    pts = torch.as_tensor(points, dtype=torch.float64)
    if pts.ndim == 2:
        pts = pts[None]
    if pts.ndim != 3 or pts.shape[-1] != 2:
        raise ShapeError(f"points must be (B, K, 2) or (K, 2) pixel coordinates, got {tuple(pts.shape)}")
    vertex = torch.as_tensor(vertex, dtype=torch.long)
    if vertex.shape != (pts.shape[1],):
        raise ShapeError(f"vertex must hold one id per point, ({pts.shape[1]},), got {tuple(vertex.shape)}")
    if int(vertex.min()) < 0 or int(vertex.max()) >= model.n_vertices:
        raise ShapeError(f"vertex ids must lie in [0, {model.n_vertices}) for model {model.name!r}")
    w = (
        torch.ones(pts.shape[:2], dtype=torch.float64)
        if weight is None
        else torch.as_tensor(weight, dtype=torch.float64)
    )
    w = w.expand(pts.shape[:2]).clone()
    if (w < 0).any() or not torch.isfinite(w).all():
        raise ValueError("weight must be finite and non-negative")
    w = torch.where(torch.isfinite(pts).all(-1), w, torch.zeros_like(w))
    pts = torch.nan_to_num(pts)
    if (w.sum(1) <= 0).any():
        raise ValueError("every face needs at least one point with positive weight")
    d = model.n_components if n_components is None else int(n_components)
    if not 0 <= d <= model.n_components:
        raise ValueError(f"n_components must be in [0, {model.n_components}], got {n_components}")
    if sigma_px <= 0 or not math.isfinite(sigma_px):
        raise ValueError(f"sigma_px must be a positive number of pixels, got {sigma_px}")
    S = int(image_size)
    target = pixels_to_labels(pts, S)
    mean = model.mean.detach().double()[vertex]
    basis = model.basis.detach().double()[:d, vertex] if d else torch.zeros(0, len(vertex), 3, dtype=torch.float64)
    B = pts.shape[0]
    wn = w / w.sum(1, keepdim=True)

    # all starts in one batch: face b, start j is row j·B + b
    J = len(START_YAWS)
    target_j, wn_j = target.repeat(J, 1, 1), wn.repeat(J, 1)
    theta = torch.zeros(J * B, theta_size(d), dtype=torch.float64)
    yaws = torch.tensor(START_YAWS, dtype=torch.float64).repeat_interleave(B)
    theta[:, THETA_R] = euler_to_axis_angle(yaws, torch.zeros_like(yaws), torch.zeros_like(yaws))
    # closed-form scale and translation of the mean at each start's yaw
    x0 = _pose(mean, basis[:0], theta[:, : THETA_ALPHA.start])
    centre = (wn_j[..., None] * target_j).sum(1)
    xc = (wn_j[..., None] * x0).sum(1)
    num = (wn_j * ((x0 - xc[:, None]) * (target_j - centre[:, None])).sum(-1)).sum(1)
    den = (wn_j * ((x0 - xc[:, None]) ** 2).sum(-1)).sum(1).clamp(min=1e-12)
    s = (num / den).clamp(min=1e-6)
    theta[:, THETA_LOGS] = torch.log(s)[:, None]
    theta[:, THETA_T] = centre - s[:, None] * xc
    sw = wn_j.sqrt() / sigma_px

    def res(th: torch.Tensor) -> torch.Tensor:
        return residuals(mean, basis, th, target_j, sw)

    def jac(th: torch.Tensor) -> torch.Tensor:
        return residual_jacobian(mean, basis, th, sw)

    # Levenberg–Marquardt, batched: every face and start takes its own damped Gauss–Newton steps
    lam = torch.full((J * B,), 1e-3, dtype=torch.float64)
    r = res(theta)
    cost = (r**2).sum(1)
    eye = torch.eye(theta_size(d), dtype=torch.float64)
    for _ in range(iterations):
        Jm = jac(theta)
        JtJ = Jm.transpose(1, 2) @ Jm
        g = (Jm.transpose(1, 2) @ r[..., None])[..., 0]
        diag = torch.diagonal(JtJ, dim1=1, dim2=2).clamp(min=1e-9)
        A = JtJ + lam[:, None, None] * torch.diag_embed(diag) + 1e-12 * eye
        step = torch.linalg.solve(A, -g)
        cand = theta + step
        r_new = res(cand)
        cost_new = (r_new**2).sum(1)
        ok = cost_new < cost
        theta = torch.where(ok[:, None], cand, theta)
        r = torch.where(ok[:, None], r_new, r)
        converged = (ok & (cost - cost_new <= 1e-9 * cost)) | (~ok & (lam >= 1e8))
        cost = torch.where(ok, cost_new, cost)
        lam = torch.where(ok, lam * 0.3, lam * 10.0).clamp(1e-9, 1e9)
        if bool(converged.all()):
            break
    loss = cost.view(J, B)
    best = loss.argmin(0)
    best_theta = theta.view(J, B, -1)[best, torch.arange(B)]
    return best_theta
