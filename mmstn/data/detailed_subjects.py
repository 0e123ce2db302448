"""Synthetic test subjects whose albedo carries detail outside the PCA span (pores, freckles, moles, lines).

Real skin has fine structure that no low-dimensional PCA albedo spans: the crux of the paper's argument
(§1.2, §4) that resampling keeps what a model-based reconstruction loses. The models' texture bases are
smooth, so each synthetic subject's albedo is multiplied by a subject-specific detail field defined
continuously on the UV square: band-pass skin grain, freckles concentrated on the cheeks and nose, a few moles
and forehead lines (:func:`fine_detail`). :func:`sample_subjects` renders them from a finer grid model
(2G − 1 vertices a side by default, so that every STN grid vertex is a render vertex) with the project's
ambient + Lambert light (:class:`mmstn.render.Lighting`), which order-2 SH only approximates. The scores that
measure them are in :mod:`mmstn.scores`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from mmstn.data.backgrounds import linear_gradient
from mmstn.data.synthetic import SceneDistribution, draw_lighting, reference_scale, subject_parameters
from mmstn.errors import ShapeError
from mmstn.models.morphable import MorphableModel
from mmstn.render import Lighting, MeshRenderer, shade_vertices
from mmstn.runtime import one_thread
from mmstn.transforms import euler_to_axis_angle_np
from mmstn.uv import default_grid_model
from mmstn.uv.resample import grid_uv

__all__ = ["DetailSettings", "SubjectImages", "fine_detail", "sample_subjects"]


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
    forehead (v = 1 is the top of the grid; the regions are placed for a face that fills the square).

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
    """S synthetic subjects × n images each, with fine detail outside the PCA span (:func:`sample_subjects`).

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
    """Render S subjects of the grid models' face, n poses and lights each, with per-subject fine albedo detail.

    Each subject's identity α_id and texture β come from :func:`mmstn.data.synthetic.subject_parameters`
    (the data generator's subject stream), its detail from :func:`fine_detail`. Per image: yaw, pitch and
    roll uniform in ±the given degrees, expression α_exp ~ N(0, expression_scale²), scale s₀ · U(0.95, 1.05)
    with the synthetic data's s₀ (face 120 px wide at 224²), the posed landmark box centred (± 4 px), the
    ambient + Lambert light and gain drawn from ``scene`` as :func:`mmstn.data.synthetic.draw_parameters`
    does, a soft gradient background and Gaussian pixel noise.

    Args:
        n_subjects, n_images: S and n.
        seed: the set's seed (subject s uses the generator's subject stream for (seed, s)).
        grid_model: the STN's grid model (default :func:`mmstn.uv.default_grid_model` (112)).
        render_model: the finer grid model the images are rendered from; its side must be f·(G − 1) + 1 for an
            integer f so that every STN vertex is a render vertex (default: :func:`~mmstn.uv.default_grid_model`
            at 2G − 1).
        detail: :class:`DetailSettings` (``DetailSettings().scaled(0)`` for PCA-only subjects).
        image_size: H = W.
        pixel_noise: noise standard deviation.
        scene: light ranges (:class:`mmstn.data.synthetic.SceneDistribution`).

    Returns:
        :class:`SubjectImages`.
    """
    if n_subjects < 1 or n_images < 1:
        raise ValueError(f"n_subjects={n_subjects} and n_images={n_images} must be at least 1")
    gm = default_grid_model(112) if grid_model is None else grid_model
    G = math.isqrt(gm.n_vertices)
    rm = default_grid_model(2 * G - 1, gm.n_identity, gm.n_expression) if render_model is None else render_model
    Gr = math.isqrt(rm.n_vertices)
    if G * G != gm.n_vertices or Gr * Gr != rm.n_vertices or (Gr - 1) % (G - 1) != 0:
        raise ShapeError(f"grid_model ({gm.n_vertices} vertices) and render_model ({rm.n_vertices}) must be G×G "
                         "and (f(G−1)+1)² grid models")
    if gm.colour is None or rm.colour is None:
        raise ValueError("both models need a mean albedo (colour)")
    f = (Gr - 1) // (G - 1)
    sub = (np.arange(G)[:, None] * f * Gr + np.arange(G)[None, :] * f).reshape(-1)  # STN vertex → render vertex
    renderer = MeshRenderer(rm)
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
            r = euler_to_axis_angle_np(yaw, pitch, roll)
            s = s0 * rng.uniform(0.95, 1.05)
            rot = renderer.pose(np.concatenate([r, [0.0, 0.0, 0.0], alpha]))[1]
            box = (rot[lm_r, :2].min(0) + rot[lm_r, :2].max(0)) / 2
            t = (H + 1) / 2 + rng.uniform(-4, 4, 2) * H / 224 - s * box
            theta = np.concatenate([r, t, [math.log(s)], alpha]).astype(np.float32)
            light, gain = draw_lighting(rng, scene)
            row.append((light, gain))
            bg = linear_gradient(rng, H, 0.15, 0.85)  # soft: no black or white backgrounds
            out = renderer.render(theta.astype(np.float64), alb, light, H, bg, gain)
            img = out.image
            if pixel_noise > 0:
                img = np.clip(img + rng.normal(0.0, pixel_noise, img.shape), 0.0, 1.0)
            images[si, j] = img.transpose(2, 0, 1)
            thetas[si, j] = theta
            lms[si, j] = out.points[lm_r]
            vis[si, j] = renderer.visibility(out, lm_r, H)
            masks[si, j] = out.fragments.mask
            # the per-vertex colours the renderer interpolated, and those of the PCA albedo under the same light
            truth[si, j] = out.colours[sub].T.reshape(3, G, G)
            truth_pca[si, j] = shade_vertices(out.normals, pca, light, gain)[sub].T.reshape(3, G, G)
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
