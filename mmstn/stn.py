"""The assembled 3DMM spatial transformer: grid generator (θ → sampling grid) and STN (image, θ → flattened face).

θ layout (docs/conventions.md §2.1, the authors' ``vl_nnsplit.m``), one row per image, width 6 + D:

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

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from mmstn.errors import ShapeError
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
from mmstn.layers.visibility import (
    AUTHORS_CORNER_ORDER,
    Rule,
    VisibilityMask,
    Weighting,
    mislabelled_fraction,
    occlusion_visibility,
)
from mmstn.models.morphable import MorphableModel
from mmstn.theta import (  # re-exported: the θ layout lives in mmstn.theta
    THETA_ALPHA,
    THETA_LOGS,
    THETA_R,
    THETA_T,
    Theta,
    ThetaConvention,
    make_theta,
    split_theta,
    theta_size,
)

__all__ = [
    "STN3DMM",
    "THETA_ALPHA",
    "THETA_LOGS",
    "THETA_R",
    "THETA_T",
    "GridGenerator",
    "GridGeneratorOutput",
    "ImageRangeWarning",
    "STNConfig",
    "STNOutput",
    "Theta",
    "check_image_range",
    "make_theta",
    "split_theta",
    "theta_size",
    "visibility_sweep",
]

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
        landmark_set: the model's landmark set returned as ``landmarks``. A model with no landmark sets at all
            gives (B, 0, 2) (the landmark loss is then off); a name the model lacks while it has other sets is
            an error that lists them; ``None`` switches landmarks off explicitly.
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
    landmark_set: str | None = "aflw21"
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

    @property
    def theta_convention(self) -> ThetaConvention:
        """The :class:`~mmstn.theta.ThetaConvention` a plain θ tensor is read with."""
        return ThetaConvention(scale_base=self.scale_base)


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


#: Accepted range of the derived scale s (px per mm): a face is 100–200 mm wide, so s outside this range
#: puts it below 1e-4 px or above 1e8 px — a broken θ, not a pose.
SCALE_RANGE: tuple[float, float] = (1e-6, 1e6)


def _check_scale(s: torch.Tensor, logs: torch.Tensor, base: object) -> None:
    """Raise if s = base^logs overflowed, underflowed or left :data:`SCALE_RANGE` (θ itself is finite)."""
    with torch.no_grad():
        sd = s.detach().double()
        bad = ~torch.isfinite(sd) | (sd < SCALE_RANGE[0]) | (sd > SCALE_RANGE[1])
        if bool(bad.any()):
            k = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"theta's logs column (column 5) gives a scale s = {float(sd[k, 0]):.3g} px/mm for image {k} "
                f"(logs = {float(logs[k, 0]):.6g}, scale base {base!s}); s must be finite and within "
                f"[{SCALE_RANGE[0]:g}, {SCALE_RANGE[1]:g}] px/mm — check the logs column and the scale base"
            )


def _check_points(points: torch.Tensor, size: int | tuple[int, int]) -> None:
    """Raise if the projected points are not finite or lie absurdly far from the image (> 1000 image sizes)."""
    h, w = (size, size) if isinstance(size, int) else size
    with torch.no_grad():
        p = points.detach()
        if not bool(torch.isfinite(p).all()):
            raise ValueError("the projected 2-D points are not finite; check theta's logs (column 5) and t columns")
        lim = 1000.0 * max(h, w)
        if bool((p.abs() > lim).all(dim=(1, 2)).any()):
            raise ValueError(
                f"every projected point of some image lies beyond ±{lim:g} px (image {h}×{w}); theta's logs "
                "(column 5) or t (columns 3:5) is far outside a sane range"
            )


class ImageRangeWarning(UserWarning):
    """An image expected in [0, 1] holds values that look like 0–255 or 0–65535 data."""


def check_image_range(name: str, image: torch.Tensor, error: bool = False) -> None:
    """Warn (or raise ValueError with ``error=True``) if ``image``, expected in [0, 1], looks like 0–255 or
    0–65535 data. The STN warns rather than raises because sampling an arbitrary signal (a coordinate ramp,
    a feature map) is legitimate; images of faces must be in [0, 1].

    A small overshoot (values up to 1.5, e.g. after augmentation or interpolation) is tolerated.
    """
    if image.numel() == 0 or not torch.is_floating_point(image):
        return
    with torch.no_grad():
        finite = image.detach()[torch.isfinite(image.detach())]
        top = float(finite.max()) if finite.numel() else 0.0
    if top > 1.5:
        hint = "0-65535 (16-bit)" if top > 255.5 else "0-255 (8-bit)"
        msg = (f"{name} must hold values in [0, 1], but its maximum is {top:g} — it looks like {hint} data; "
               f"divide it by {65535 if top > 255.5 else 255} first")
        if error:
            raise ValueError(msg)
        warnings.warn(msg, ImageRangeWarning, stacklevel=3)


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
        name = self.config.landmark_set
        if name is None or not model.landmarks:
            idx = torch.empty(0, dtype=torch.int64)
        else:
            try:
                idx = model.landmark_indices(name)
            except KeyError as exc:  # a misspelt set would silently switch the landmark loss off
                raise KeyError(
                    f"STNConfig.landmark_set={name!r}: {exc.args[0]} Pass one of them, or landmark_set=None for "
                    "no landmarks."
                ) from None
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

    def theta_tensor(self, theta: torch.Tensor | Theta) -> torch.Tensor:
        """θ as a (B, 6 + D) tensor in this generator's convention: a :class:`~mmstn.theta.Theta` of another
        scale base is converted (same s), a plain tensor is read with ``config.scale_base``."""
        if isinstance(theta, Theta):
            return theta.as_tensor_for(self.config.theta_convention)
        return theta

    def theta_params(self, theta: torch.Tensor | Theta) -> Theta:
        """θ as a :class:`~mmstn.theta.Theta` in this generator's convention (a (6 + D,) tensor is one image)."""
        return Theta.from_tensor(self.theta_tensor(theta), self.config.theta_convention)

    def forward(
        self, theta: torch.Tensor | Theta, image_size: int | tuple[int, int] | None = None
    ) -> GridGeneratorOutput:
        cfg, be = self.config, self.config.backend
        theta = self.theta_tensor(theta)
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
        _check_scale(s, logs, cfg.scale_base)
        points = translate_2d(scale_2d(orthographic_projection(rotated, be), s, be), t, be)
        size = cfg.image_size if image_size is None else image_size
        _check_points(points, size)
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

    def forward(self, image: torch.Tensor, theta: torch.Tensor | Theta) -> STNOutput:
        """image (B, C, H, W) in [0, 1]; θ a :class:`~mmstn.theta.Theta` (converted to this STN's scale base)
        or a (B, 6 + D) tensor (read with ``config.scale_base``).

        Warns (:class:`ImageRangeWarning`) for an image in 0–255/0–65535; raises ValueError for a θ whose
        scale or points are absurd.
        On CPU, float16/bfloat16 images are sampled in float32 and cast back (torch's CPU ``grid_sample``
        is wrong in half precision).
        """
        if not isinstance(image, torch.Tensor) or image.ndim != 4:
            raise ShapeError(f"image must be a (B, C, H, W) tensor, got {getattr(image, 'shape', type(image))}")
        check_image_range("image", image)
        theta = self.generator.theta_tensor(theta)
        if isinstance(theta, torch.Tensor) and theta.ndim == 2 and theta.shape[0] != image.shape[0]:
            raise ShapeError(f"theta has batch {theta.shape[0]} but image has batch {image.shape[0]}")
        gen = self.generator(theta, image_size=(image.shape[2], image.shape[3]))
        sampled = _sample(image, gen.grid, self.config.sampler_backend)
        mask = self.visibility(gen.rotated).to(sampled.dtype)  # a half image gives a half output
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


def _sample(image: torch.Tensor, grid: torch.Tensor, backend: SamplerBackend) -> torch.Tensor:
    """Bilinear sampling; half-precision on CPU goes through float32 (torch's CPU kernel is wrong there)."""
    if image.device.type == "cpu" and image.dtype in (torch.float16, torch.bfloat16):
        return bilinear_sample(image.float(), grid.float(), backend).to(image.dtype)
    return bilinear_sample(image, grid, backend)


# ---------------------------------------------------------------------------------------- analysis
def visibility_sweep(stn, yaws_deg: Sequence[float], theta: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """The STN's back-face visibility against the exact occlusion reference over a sweep of yaw angles.

    Args:
        stn: a :class:`~mmstn.stn.STN3DMM` (its grid model, its visibility layer).
        yaws_deg: yaw angles, degrees; the rotation is r = (0, yaw, 0).
        theta: (1, 6 + D) base θ whose t, logs and α are kept (default: t = (112, 112), logs = 0, α = 0).

    Returns:
        ``{"yaw": (K,), "mislabelled": (K,), "visible": (K,), "exact_visible": (K,)}`` float arrays: the fraction
        of vertices on which the back-face mask and the exact visibility (ray cast with back-face culling,
        :func:`~mmstn.layers.occlusion_visibility`) disagree, and the visible fraction under each.
    """
    yaws = np.asarray(yaws_deg, dtype=np.float64)
    d = stn.generator.n_components
    base = torch.zeros(1, theta_size(d)) if theta is None else torch.as_tensor(theta).reshape(1, -1).float()
    if theta is None:
        base[0, THETA_T] = 112.0
    th = base.repeat(len(yaws), 1).to(stn.generator.morphable.mean.dtype)
    th[:, THETA_R] = 0.0
    th[:, THETA_R.start + 1] = torch.from_numpy(np.deg2rad(yaws)).to(th.dtype)  # r = (0, yaw, 0)
    with torch.no_grad():
        rotated = stn.generator(th).rotated
        approx = stn.visibility.visible(rotated)
    exact = occlusion_visibility(rotated.double(), stn.visibility.faces, backface_culling=True)
    return {
        "yaw": yaws,
        "mislabelled": mislabelled_fraction(approx, exact).numpy(),
        "visible": approx.double().mean(-1).numpy(),
        "exact_visible": exact.double().mean(-1).numpy(),
    }
