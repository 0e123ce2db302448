"""The assembled 3DMM spatial transformer: grid generator (θ → sampling grid) and STN (image, θ → flattened face).

θ layout (method-spec §2.1, the authors' ``vl_nnsplit.m``), one row per image, width 6 + D:

=========  =======  ===============================================================
columns    name     meaning
=========  =======  ===============================================================
0:3        r        axis-angle rotation, radians (R = Rodrigues(r))
3:5        t        2-D translation, label-frame pixels (the authors initialise it to 112)
5          logs     log-scale; s = 0.99^logs (faithful) or exp(logs) (paper), pixels per mm
6:6+D      α        shape coefficients, α ~ N(0, I)
=========  =======  ===============================================================

Data flow (paper Fig. 2): α → X = μ + Pα → X′ = R X → Y = (x′, y′) → s·Y + t (label frame) →
grid (B, G, G, 2) → V = sampler(image, grid); X′ → visibility mask M; W = V ∘ M. The landmarks are the
label-frame points of the model's landmark vertices.

The model must be a *grid model*: N = G² vertices in row-major order over the output image (vertex
k = row·G + col; row 0 at the top = forehead; col 0 on the image left), with the CCW grid
triangulation of :func:`mmstn.layers.grid.grid_triangles` (other CCW triangulations work, through the
slower general-mesh path of the visibility layer).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from mmstn.errors import ShapeError, check_finite
from mmstn.layers._common import Backend, check_backend
from mmstn.layers.grid import GridFrame, points_to_grid
from mmstn.layers.masking import apply_mask
from mmstn.layers.morphable import MorphableLayer
from mmstn.layers.projection import orthographic_projection
from mmstn.layers.rotate import rotate_points
from mmstn.layers.rotation import rodrigues
from mmstn.layers.sampler import SAMPLER_BACKENDS, SamplerBackend, bilinear_sample
from mmstn.layers.scale import ScaleBase, log_scale_to_scale, scale_2d, scale_rate
from mmstn.layers.selection import SelectFunction
from mmstn.layers.translation import translate_2d
from mmstn.layers.visibility import AUTHORS_CORNER_ORDER, Rule, VisibilityMask, Weighting
from mmstn.models.morphable import MorphableModel

__all__ = [
    "STN3DMM",
    "THETA_ALPHA",
    "THETA_LOGS",
    "THETA_R",
    "THETA_T",
    "GridGenerator",
    "GridGeneratorOutput",
    "STNConfig",
    "STNOutput",
    "make_theta",
    "split_theta",
    "theta_size",
]

THETA_R = slice(0, 3)
THETA_T = slice(3, 5)
THETA_LOGS = slice(5, 6)
THETA_ALPHA = slice(6, None)


def theta_size(n_components: int) -> int:
    """Width of θ for a model with D components: 3 + 2 + 1 + D."""
    return 6 + int(n_components)


def split_theta(
    theta: torch.Tensor, n_components: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check θ and split it into (r (B, 3), t (B, 2), logs (B, 1), α (B, D)).

    Raises:
        ShapeError: θ is not a floating-point (B, 6 + D) tensor (the message names θ).
        ValueError: θ holds NaN or inf.
    """
    want = theta_size(n_components)
    if not isinstance(theta, torch.Tensor) or not torch.is_floating_point(theta):
        raise ShapeError(f"theta must be a floating-point tensor of shape (B, {want}), got {type(theta).__name__}")
    if theta.ndim != 2 or theta.shape[1] != want:
        raise ShapeError(
            f"theta must have shape (B, {want}) = (B, 3 r + 2 t + 1 logs + {n_components} alpha), "
            f"got {tuple(theta.shape)}"
        )
    check_finite("theta", theta)
    return theta[:, THETA_R], theta[:, THETA_T], theta[:, THETA_LOGS], theta[:, THETA_ALPHA]


def make_theta(r: torch.Tensor, t: torch.Tensor, logs: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Concatenate (r (B, 3), t (B, 2), logs (B, 1) or (B,), α (B, D)) into θ (B, 6 + D)."""
    if logs.ndim == 1:
        logs = logs[:, None]
    return torch.cat([r, t, logs, alpha], 1)


@dataclass(frozen=True)
class STNConfig:
    """Settings of the grid generator and the STN. The defaults are :meth:`faithful`'s.

    Attributes:
        grid_size: G, the output is G×G (faithful 112, paper 224).
        scale_base: s = base^logs: ``"0.99"`` (authors' code) or ``"exp"`` (paper), or a float.
        frame: grid normalisation, ``"matconvnet"`` ((X − W/2)/(W/2)) or ``"pixel"`` (exact pixel centres).
        image_size: (H, W) used by the grid generator when no image is given (the STN uses the image's).
        visibility_weighting: ``"area"``, ``"angle"`` or ``"angle_area"`` (see :mod:`mmstn.layers.visibility`).
        visibility_rule: ``"accumulate"`` or ``"last_write"`` (the authors' MATLAB assignment; written
            in :data:`~mmstn.layers.visibility.AUTHORS_CORNER_ORDER` on our faces).
        visibility_strict: visible ⇔ n_z > 0 (``True``) or n_z ≥ 0 (``False``, the authors').
        backend: ``"analytic"`` (hand-written backwards) or ``"autograd"``.
        sampler_backend: ``"native"`` (``F.grid_sample``), ``"analytic"`` or ``"reference"``.
        landmark_set: the model's landmark set returned as ``landmarks`` (missing → (B, 0, 2)).
        trainable_model: make μ and P ``nn.Parameter`` s (the paper's "could be trainable").
    """

    grid_size: int = 112
    scale_base: ScaleBase | str | float = ScaleBase.MATCONVNET
    frame: GridFrame | str = GridFrame.MATCONVNET
    image_size: tuple[int, int] = (224, 224)
    visibility_weighting: Weighting = "angle_area"
    visibility_rule: Rule = "last_write"
    visibility_strict: bool = False
    backend: Backend = "analytic"
    sampler_backend: SamplerBackend = "native"
    landmark_set: str = "aflw21"
    trainable_model: bool = False
    name: str = field(default="faithful", compare=False)

    def __post_init__(self) -> None:
        if int(self.grid_size) < 2:
            raise ValueError(f"grid_size must be at least 2, got {self.grid_size}")
        scale_rate(self.scale_base)
        GridFrame(self.frame)
        check_backend(self.backend)
        if self.sampler_backend not in SAMPLER_BACKENDS:
            raise ValueError(f"sampler_backend must be one of {SAMPLER_BACKENDS}, got {self.sampler_backend!r}")

    @classmethod
    def faithful(cls, **changes: object) -> STNConfig:
        """The authors' released code: G = 112, s = 0.99^logs, MatConvNet grid normalisation, angle×area
        normals with MATLAB's last-write rule and visible ⇔ n_z ≥ 0."""
        return replace(cls(), name="faithful", **changes)

    @classmethod
    def paper(cls, **changes: object) -> STNConfig:
        """The paper's text: G = 224, s = exp(logs), exact pixel-centre grid, accumulated area-weighted
        vertex normals with visible ⇔ n_z > 0."""
        base = cls(
            grid_size=224,
            scale_base=ScaleBase.EXP,
            frame=GridFrame.PIXEL,
            visibility_weighting="area",
            visibility_rule="accumulate",
            visibility_strict=True,
            name="paper",
        )
        return replace(base, **changes)

    @property
    def scale_rate(self) -> float:
        """κ with s = exp(κ·logs): 1 for exp, ln 0.99 for the authors' base."""
        return scale_rate(self.scale_base)


@dataclass
class GridGeneratorOutput:
    """What the grid generator computes for a batch θ.

    Attributes:
        grid: (B, G, G, 2) normalised sampler coordinates (g_x, g_y), ``grid_sample(align_corners=True)``.
        points: (B, N, 2) label-frame 2-D points (1-based column, y up) of every grid vertex.
        rotated: (B, N, 3) rotated 3-D shape X′ = R X(α), mm.
        rotation: (B, 3, 3) R.
        scale: (B, 1) s, pixels per mm.
        shape: (B, N, 3) X(α), mm.
    """

    grid: torch.Tensor
    points: torch.Tensor
    rotated: torch.Tensor
    rotation: torch.Tensor
    scale: torch.Tensor
    shape: torch.Tensor


@dataclass
class STNOutput:
    """What the STN computes for a batch of images and θ.

    Attributes:
        flattened: (B, C, G, G) W = V ∘ M, the masked "flattened" face texture.
        mask: (B, 1, G, G) visibility mask M (0/1, no gradient).
        points: (B, N, 2) label-frame 2-D points of every grid vertex.
        landmarks: (B, L, 2) label-frame landmark points (L = 0 if the model has no such set).
        sampled: (B, C, G, G) V before masking.
        grid: (B, G, G, 2) the sampling grid.
        rotated: (B, N, 3) X′, mm.
        rotation: (B, 3, 3) R.
    """

    flattened: torch.Tensor
    mask: torch.Tensor
    points: torch.Tensor
    landmarks: torch.Tensor
    sampled: torch.Tensor
    grid: torch.Tensor
    rotated: torch.Tensor
    rotation: torch.Tensor


class GridGenerator(nn.Module):
    """θ → 2-D points and sampling grid of a grid model (paper Fig. 2, left half).

    Args:
        model: a grid model, N = G² vertices (row-major over the output image).
        config: :class:`STNConfig` (default :meth:`STNConfig.faithful`).

    ``forward(theta, image_size=None)``: θ (B, 6 + D) → :class:`GridGeneratorOutput`.
    """

    landmark_indices: torch.Tensor

    def __init__(self, model: MorphableModel, config: STNConfig | None = None) -> None:
        super().__init__()
        self.config = STNConfig.faithful() if config is None else config
        g = int(self.config.grid_size)
        if model.n_vertices != g * g:
            raise ShapeError(
                f"model {model.name!r} has N = {model.n_vertices} vertices, but the STN needs a grid model with "
                f"G² = {g}² = {g * g} (resample it onto the grid first, or set STNConfig.grid_size)"
            )
        self.grid_size = g
        self.morphable = MorphableLayer(model, trainable=self.config.trainable_model, backend=self.config.backend)
        idx = model.landmarks.get(self.config.landmark_set, torch.empty(0, dtype=torch.int64))
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= model.n_vertices):
            raise ValueError(
                f"landmark set {self.config.landmark_set!r} of model {model.name!r} has undefined (−1) "
                "or out-of-range entries"
            )
        self.register_buffer("landmark_indices", idx.clone().long())

    @property
    def n_components(self) -> int:
        """D."""
        return self.morphable.n_components

    def forward(self, theta: torch.Tensor, image_size: int | tuple[int, int] | None = None) -> GridGeneratorOutput:
        cfg, be = self.config, self.config.backend
        r, t, logs, alpha = split_theta(theta, self.n_components)
        if theta.dtype != self.morphable.mean.dtype:
            raise ShapeError(
                f"theta has dtype {theta.dtype} but the model buffers are {self.morphable.mean.dtype}; "
                "convert one of them (e.g. module.double())"
            )
        shape = self.morphable(alpha)
        rotation = rodrigues(r, be)
        rotated = rotate_points(shape, rotation, be)
        s = log_scale_to_scale(logs, cfg.scale_base, be)
        points = translate_2d(scale_2d(orthographic_projection(rotated, be), s, be), t, be)
        size = cfg.image_size if image_size is None else image_size
        grid = points_to_grid(points, size, cfg.frame, self.grid_size, be)
        return GridGeneratorOutput(grid=grid, points=points, rotated=rotated, rotation=rotation, scale=s, shape=shape)

    def landmarks(self, points: torch.Tensor) -> torch.Tensor:
        """(B, N, 2) points → (B, L, 2) landmark points (selection layer)."""
        if self.landmark_indices.numel() == 0:
            return points.new_zeros(points.shape[0], 0, points.shape[2])
        if self.config.backend == "analytic":  # indices were validated once, in __init__
            return SelectFunction.apply(points, self.landmark_indices)
        return points.index_select(1, self.landmark_indices)

    def extra_repr(self) -> str:
        c = self.config
        return f"config={c.name!r}, G={self.grid_size}, scale_base={c.scale_base!s}, frame={GridFrame(c.frame).value!r}"


class STN3DMM(nn.Module):
    """The 3DMM spatial transformer: (image, θ) → flattened face, visibility mask, 2-D points, landmarks.

    Args:
        model: a grid model (see the module docstring).
        config: :class:`STNConfig` (default :meth:`STNConfig.faithful`).

    ``forward(image, theta)``: image (B, C, H, W), θ (B, 6 + D) → :class:`STNOutput`.
    """

    def __init__(self, model: MorphableModel, config: STNConfig | None = None) -> None:
        super().__init__()
        self.config = STNConfig.faithful() if config is None else config
        self.generator = GridGenerator(model, self.config)
        order = AUTHORS_CORNER_ORDER if self.config.visibility_rule == "last_write" else (0, 1, 2)
        self.visibility = VisibilityMask(
            model.triangles,
            self.generator.grid_size,
            weighting=self.config.visibility_weighting,
            rule=self.config.visibility_rule,
            strict=self.config.visibility_strict,
            corner_order=order,
        )

    def forward(self, image: torch.Tensor, theta: torch.Tensor) -> STNOutput:
        if not isinstance(image, torch.Tensor) or image.ndim != 4:
            raise ShapeError(f"image must be a (B, C, H, W) tensor, got {getattr(image, 'shape', type(image))}")
        if isinstance(theta, torch.Tensor) and theta.ndim == 2 and theta.shape[0] != image.shape[0]:
            raise ShapeError(f"theta has batch {theta.shape[0]} but image has batch {image.shape[0]}")
        gen = self.generator(theta, image_size=(image.shape[2], image.shape[3]))
        sampled = bilinear_sample(image, gen.grid, self.config.sampler_backend)
        mask = self.visibility(gen.rotated)
        flattened = apply_mask(sampled, mask, self.config.backend)
        return STNOutput(
            flattened=flattened,
            mask=mask,
            points=gen.points,
            landmarks=self.generator.landmarks(gen.points),
            sampled=sampled,
            grid=gen.grid,
            rotated=gen.rotated,
            rotation=gen.rotation,
        )
