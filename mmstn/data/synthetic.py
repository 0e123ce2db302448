"""Synthetic face images with exact ground truth: θ, landmarks, visibility, subject, face mask.

Every image is an orthographic, Lambert-lit rendering of the morphable model (the ICT face by default)
posed by a known θ = (r, t, logs, α) (:mod:`mmstn.stn` layout, s = exp(logs) px/mm, t in label-frame
pixels), over a random background, with optional flat-colour occluders. Generation is deterministic per
(seed, index): sample ``index`` of a dataset with ``seed`` draws everything from
``np.random.default_rng([seed, index])`` and from child streams of ``SeedSequence([seed, index])``, so any
image can be regenerated alone, in any order, by any number of worker processes.

The distributions (:class:`ThetaDistribution`, :class:`SceneDistribution`):

* **Pose.** yaw ~ U(±90°), pitch ~ U(±30°), roll ~ U(±30°), turned into the axis-angle r of
  R = R_z(roll) · R_y(yaw) · R_x(pitch) (pitch applied first, in the head frame; roll last, in the image
  plane). In the model frame (x to the viewer's right, y up, z to the viewer) positive yaw turns the nose to
  the image right, positive pitch tilts it down, positive roll turns the face counter-clockwise on screen.
* **Shape.** α = (α_id, α_exp): the identity part is fixed per subject, α_id ~ N(0, I) drawn from
  ``default_rng([seed, 1, subject_id])``; the expression part ~ N(0, I) per image; both optionally scaled,
  and truncated to ±3 (``alpha_clip``).
* **Texture.** Per subject β ~ N(0, I) (same subject stream); albedo = clip(colour + Σ_k β_k T_k, 0, 1).
* **Scale.** s₀ = ``face_width_px`` / (ear-to-ear width of the mean face, the x-extent of its AFLW-21
  landmarks): a face 120 px wide at 224², like the authors' crops (docs/conventions.md §6). For the ICT face that
  width is 143.0 mm, so s₀ = 0.839 px/mm (the BFM and the cartoon face: 178.0 mm, 0.674 px/mm); s = s₀ · U(0.9, 1.1).
* **Translation.** t puts the centre of the posed landmark box (all 21 AFLW points, visible or not) at the
  image centre ((W + 1)/2, (H + 1)/2) = (112.5, 112.5), plus U(±8 px) per axis, like a detector crop
  (``centring="posed"``); ``"frontal"`` uses the frontal mean face's box for every pose instead.
* **Light.** Ambient U(0.3, 0.6) + Lambert U(0.4, 0.8) from a direction with azimuth U(±60°) and
  elevation U(±45°) about the viewing axis, per-channel gain U(0.9, 1.1).
* **Background.** Smooth multi-scale noise, a linear colour gradient, or one or two other random faces
  (random shape, texture, pose, scale 0.6–1.4 s₀, displaced 0.3–0.6 W) over noise or a gradient.
* **Occluders.** With probability 0.3, one or two flat-colour rectangles or ellipses near the face.
* **Pixel noise.** Gaussian, σ = 0.01, on the whole image.

Ground truth per image (:func:`generate_sample`): the image (3, H, W) in [0, 1]; landmarks21 (21, 2) and,
when the model has them, landmarks68 (68, 2) — the exact projections of the landmark vertices in the label
frame, also for invisible ones; vis21/vis68: 1 when the landmark vertex is inside the image, faces the
camera (area-weighted vertex normal n_z > 0), is not hidden by another part of the face (an exact ray cast,
the same test as :func:`mmstn.layers.visibility.occlusion_visibility` with back-face culling) and is not
covered by an occluder; the face mask (H, W) (face pixels not covered by an occluder); θ; the subject id.

Faces are rendered by :class:`mmstn.render.MeshRenderer` (the renderer of :func:`mmstn.render.render_face`),
with the exact visibility of the landmark vertices only. A whole sample (background, face, occluders, landmark
visibility) takes about 24 ms; two worker processes make about 85 images/s (``benchmarks/bench_data.py``).

On disk (:func:`generate_dataset`, :class:`SyntheticFaces`)::

    out_dir/manifest.json            settings, model fingerprint, per-shard counts and SHA-256 checksums
    out_dir/images_00000.npy         uint8 (n, H, W, 3)
    out_dir/masks_00000.npy          uint8 (n, H, ⌈W/8⌉): the face masks, np.packbits along the width
    out_dir/labels_00000.npz         landmarks21 (n, 21, 2) f32, vis21 (n, 21) f32, [landmarks68, vis68],
                                     theta (n, 6 + D) f32, subject_id (n,) int64
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from mmstn import __version__, transforms
from mmstn.data.backgrounds import linear_gradient, smooth_noise
from mmstn.data.errors import DatasetFolderError
from mmstn.models.ict import ict_face_model
from mmstn.render import Lighting, MeshRender, MeshRenderer, renderer_for
from mmstn.runtime import atomic_write
from mmstn.theta import THETA_ALPHA, THETA_LOGS, THETA_R, THETA_T

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Occluder",
    "SampleParameters",
    "SceneDistribution",
    "SyntheticFaces",
    "SyntheticRender",
    "ThetaDistribution",
    "draw_parameters",
    "generate_dataset",
    "generate_sample",
    "model_fingerprint",
    "reference_scale",
    "reference_width_mm",
    "render_parameters",
    "subject_parameters",
    "synthetic_face_at_yaw",
]

#: Format tag and version written to ``manifest.json``.
FORMAT = "mmstn-synthetic-faces"
FORMAT_VERSION = 1

_REFERENCE_SIZE = 224  # the distributions' pixel quantities refer to a 224 × 224 image
_SUBJECT_STREAM = 1  # default_rng([seed, _SUBJECT_STREAM, subject_id]): per-subject identity and texture
_BACKGROUNDS = ("noise", "gradient", "faces")


# ------------------------------------------------------------------------------------------ distributions
@dataclass(frozen=True)
class ThetaDistribution:
    """The distribution of the true θ (module docstring: the order of the rotations and the centring).

    Angles in degrees, pixel quantities for a 224 × 224 image (scaled by image_size / 224 otherwise).

    Attributes:
        yaw_deg: yaw ~ U(−yaw_deg, yaw_deg) (rotation about the model's y axis).
        pitch_deg: pitch ~ U(±pitch_deg) (about x).
        roll_deg: roll ~ U(±roll_deg) (about z, the viewing axis).
        identity_scale: α_id ~ N(0, identity_scale² I), fixed per subject.
        expression_scale: α_exp ~ N(0, expression_scale² I), per image.
        alpha_clip: truncate every α_k to ±alpha_clip (None: no truncation).
        face_width_px: ear-to-ear width of the mean face at scale s₀ (the authors' crops: 120 px).
        scale: fixed s₀ in px/mm (overrides ``face_width_px``).
        scale_jitter: s = s₀ · U(1 − j, 1 + j).
        translation_jitter_px: t = centre + U(±j) per axis.
        centring: ``"posed"`` — the posed landmark box is centred; ``"frontal"`` — the frontal one.
    """

    yaw_deg: float = 90.0
    pitch_deg: float = 30.0
    roll_deg: float = 30.0
    identity_scale: float = 1.0
    expression_scale: float = 1.0
    alpha_clip: float | None = 3.0
    face_width_px: float = 120.0
    scale: float | None = None
    scale_jitter: float = 0.10
    translation_jitter_px: float = 8.0
    centring: Literal["posed", "frontal"] = "posed"

    def __post_init__(self) -> None:
        if self.centring not in ("posed", "frontal"):
            raise ValueError(f"centring={self.centring!r}: use 'posed' or 'frontal'")
        if not 0 <= self.scale_jitter < 1:
            raise ValueError(f"scale_jitter={self.scale_jitter} must lie in [0, 1)")


@dataclass(frozen=True)
class SceneDistribution:
    """Texture, light, background, occluders and noise of the synthetic images.

    Attributes:
        texture_scale: β ~ N(0, texture_scale² I) per subject.
        background_weights: probabilities of the backgrounds ("noise", "gradient", "faces").
        max_background_faces: "faces" backgrounds hold 1..max other faces.
        occluder_probability: chance that an image has occluders (1..max_occluders of them).
        max_occluders: at most this many occluders.
        occluder_size: half-size range of an occluder, as a fraction of the face width in pixels.
        ambient: ambient light range.
        diffuse: Lambert weight range.
        light_azimuth_deg: light direction azimuth ~ U(±) about the viewing axis (+ = from the right).
        light_elevation_deg: elevation ~ U(±) (+ = from above).
        light_gain_jitter: per-channel light colour gain U(1 ± j).
        pixel_noise: standard deviation of the Gaussian noise added to every pixel.
    """

    texture_scale: float = 1.0
    background_weights: tuple[float, float, float] = (0.3, 0.3, 0.4)
    max_background_faces: int = 2
    occluder_probability: float = 0.3
    max_occluders: int = 2
    occluder_size: tuple[float, float] = (0.08, 0.25)
    ambient: tuple[float, float] = (0.3, 0.6)
    diffuse: tuple[float, float] = (0.4, 0.8)
    light_azimuth_deg: float = 60.0
    light_elevation_deg: float = 45.0
    light_gain_jitter: float = 0.1
    pixel_noise: float = 0.01

    def __post_init__(self) -> None:
        w = np.asarray(self.background_weights, dtype=np.float64)
        if w.shape != (3,) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"background_weights={self.background_weights}: three non-negative weights, not all 0")
        if not 0 <= self.occluder_probability <= 1:
            raise ValueError(f"occluder_probability={self.occluder_probability} must lie in [0, 1]")


def _to_json_dict(obj: Any) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(obj)))


def _from_json_dict(cls: type, data: dict) -> Any:
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            v = data[f.name]
            kwargs[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**kwargs)


# ------------------------------------------------------------------------------------------ geometry
def reference_width_mm(model) -> float:
    """Ear-to-ear width of the model's mean face in mm (x-extent of its AFLW-21 landmarks, else of all vertices)."""
    mean = model.mean.detach().cpu().double().numpy()
    idx = model.landmarks.get("aflw21")
    if idx is not None and idx.numel() and int(idx.min()) >= 0:
        x = mean[idx.cpu().numpy(), 0]
    else:
        x = mean[:, 0]
    return float(np.ptp(x))


def reference_scale(model, dist: ThetaDistribution = ThetaDistribution(), image_size: int = 224) -> float:
    """s₀ in px/mm: ``dist.scale`` or ``face_width_px / reference_width_mm(model)``, times image_size / 224."""
    s0 = dist.scale if dist.scale is not None else dist.face_width_px / reference_width_mm(model)
    return float(s0) * image_size / _REFERENCE_SIZE


# ------------------------------------------------------------------------------------------ parameters
@dataclass(frozen=True)
class Occluder:
    """A flat-colour shape drawn over the face.

    Attributes:
        kind: ``"rect"`` or ``"ellipse"``.
        centre: (x0, y0), 0-based pixel coordinates (y down).
        half_size: (a, b) half-extents in pixels along the shape's own axes.
        angle: rotation of the shape's axes, radians.
        colour: RGB in [0, 1].
    """

    kind: Literal["rect", "ellipse"]
    centre: tuple[float, float]
    half_size: tuple[float, float]
    angle: float
    colour: tuple[float, float, float]

    def contains(self, x0: np.ndarray, y0: np.ndarray) -> np.ndarray:
        """bool array: which 0-based pixel positions (x0, y0) lie inside the shape (boundary included)."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        dx, dy = np.asarray(x0) - self.centre[0], np.asarray(y0) - self.centre[1]
        u = (c * dx + s * dy) / self.half_size[0]
        v = (-s * dx + c * dy) / self.half_size[1]
        if self.kind == "rect":
            return np.maximum(np.abs(u), np.abs(v)) <= 1.0
        return u * u + v * v <= 1.0


@dataclass
class SampleParameters:
    """Everything random about one synthetic image (from :func:`draw_parameters`).

    Attributes:
        index, seed: the sample's coordinates.
        subject_id: the subject (fixes α_id and β).
        theta: float32 (6 + D,) θ; the rendering uses exactly these float32 values.
        beta: (K,) the subject's texture coefficients.
        lighting: ambient, diffuse, direction.
        light_gain: (3,) per-channel gain.
        background: ``"noise"``, ``"gradient"`` or ``"faces"``.
        background_seed: seed of the background's own stream.
        occluders: the occluders, possibly none.
        noise_seed: seed of the pixel noise.
        image_size: H = W.
    """

    index: int
    seed: int
    subject_id: int
    theta: np.ndarray
    beta: np.ndarray
    lighting: Lighting
    light_gain: tuple[float, float, float]
    background: str
    background_seed: int
    occluders: list[Occluder] = field(default_factory=list)
    noise_seed: int = 0
    image_size: int = 224


def subject_parameters(
    model,
    subject_id: int,
    seed: int,
    dist: ThetaDistribution = ThetaDistribution(),
    scene: SceneDistribution = SceneDistribution(),
) -> tuple[np.ndarray, np.ndarray]:
    """A subject's identity coefficients α_id (n_identity,) and texture coefficients β (K,).

    Drawn from ``default_rng([seed, 1, subject_id])``: the same for every image of the subject.
    """
    rng = np.random.default_rng([int(seed), _SUBJECT_STREAM, int(subject_id)])
    alpha_id = rng.standard_normal(model.n_identity) * dist.identity_scale
    n_tex = 0 if model.texture_basis is None else int(model.texture_basis.shape[0])
    beta = rng.standard_normal(n_tex) * scene.texture_scale
    if dist.alpha_clip is not None:
        alpha_id = np.clip(alpha_id, -dist.alpha_clip, dist.alpha_clip)
    return alpha_id, beta


def _landmark_box_centre(points: np.ndarray) -> np.ndarray:
    return (points.min(axis=0) + points.max(axis=0)) / 2.0


def draw_lighting(rng: np.random.Generator, scene: SceneDistribution) -> tuple[Lighting, tuple[float, float, float]]:
    """Draw a light of the scene distribution: (ambient + Lambert :class:`~mmstn.render.Lighting`, RGB gain).

    Draw order (azimuth, elevation, ambient, diffuse, 3 gains) is part of the generator's determinism.
    """
    az = np.deg2rad(rng.uniform(-1.0, 1.0) * scene.light_azimuth_deg)
    el = np.deg2rad(rng.uniform(-1.0, 1.0) * scene.light_elevation_deg)
    lighting = Lighting(
        ambient=float(rng.uniform(*scene.ambient)),
        diffuse=float(rng.uniform(*scene.diffuse)),
        direction=(float(np.sin(az) * np.cos(el)), float(np.sin(el)), float(np.cos(az) * np.cos(el))),
    )
    jit = scene.light_gain_jitter
    gain = tuple(float(g) for g in rng.uniform(1.0 - jit, 1.0 + jit, 3))
    return lighting, gain  # type: ignore[return-value]


def draw_parameters(
    model,
    index: int,
    seed: int,
    dist: ThetaDistribution = ThetaDistribution(),
    scene: SceneDistribution = SceneDistribution(),
    n_subjects: int = 100,
    image_size: int = 224,
) -> SampleParameters:
    """Draw the parameters of sample ``index`` of the dataset ``seed`` (deterministic; module docstring)."""
    if n_subjects < 1:
        raise ValueError(f"n_subjects={n_subjects} must be at least 1")
    if index < 0 or seed < 0:
        raise ValueError(f"index={index} and seed={seed} must be non-negative")
    rng = np.random.default_rng([int(seed), int(index)])
    bg_ss, occ_ss, noise_ss = np.random.SeedSequence([int(seed), int(index)]).spawn(3)
    k = image_size / _REFERENCE_SIZE

    subject = int(rng.integers(n_subjects))
    yaw, pitch, roll = np.deg2rad(rng.uniform(-1.0, 1.0, 3) * [dist.yaw_deg, dist.pitch_deg, dist.roll_deg])
    alpha_exp = rng.standard_normal(model.n_expression) * dist.expression_scale
    if dist.alpha_clip is not None:
        alpha_exp = np.clip(alpha_exp, -dist.alpha_clip, dist.alpha_clip)
    s = reference_scale(model, dist, image_size) * rng.uniform(1.0 - dist.scale_jitter, 1.0 + dist.scale_jitter)
    jitter = rng.uniform(-1.0, 1.0, 2) * dist.translation_jitter_px * k
    lighting, gain = draw_lighting(rng, scene)
    weights = np.asarray(scene.background_weights, dtype=np.float64)
    background = _BACKGROUNDS[int(rng.choice(3, p=weights / weights.sum()))]

    alpha_id, beta = subject_parameters(model, subject, seed, dist, scene)
    alpha = np.concatenate([alpha_id, alpha_exp])
    r = transforms.euler_to_axis_angle_np(yaw, pitch, roll)
    renderer = renderer_for(model)
    centre = np.array([(image_size + 1) / 2.0, (image_size + 1) / 2.0])
    lm = _landmark_vertices(model)
    if dist.centring == "posed":
        rotated_lm = renderer.pose(np.concatenate([r, [0.0, 0.0, 0.0], alpha]))[1][lm]
        offset = _landmark_box_centre(rotated_lm[:, :2])
    else:
        offset = _landmark_box_centre(renderer.mean[lm, :2])
    t = centre + jitter - s * offset
    theta = np.concatenate([r, t, [np.log(s)], alpha]).astype(np.float32)

    occluders = _draw_occluders(np.random.default_rng(occ_ss), scene, theta, renderer, lm, image_size)
    return SampleParameters(
        index=int(index),
        seed=int(seed),
        subject_id=subject,
        theta=theta,
        beta=beta,
        lighting=lighting,
        light_gain=gain,  # type: ignore[arg-type]
        background=background,
        background_seed=int(bg_ss.generate_state(1, np.uint64)[0] >> np.uint64(1)),
        occluders=occluders,
        noise_seed=int(noise_ss.generate_state(1, np.uint64)[0] >> np.uint64(1)),
        image_size=int(image_size),
    )


def _landmark_vertices(model) -> np.ndarray:
    idx = model.landmarks.get("aflw21")
    if idx is None or idx.numel() != 21 or int(idx.min()) < 0:
        raise ValueError(
            f"model {model.name!r} needs the 21 AFLW landmark vertices (landmarks['aflw21']) for synthetic data"
        )
    return idx.cpu().numpy().astype(np.int64)


def _draw_occluders(
    rng: np.random.Generator,
    scene: SceneDistribution,
    theta: np.ndarray,
    renderer: MeshRenderer,
    lm: np.ndarray,
    image_size: int,
) -> list[Occluder]:
    if rng.uniform() >= scene.occluder_probability or scene.max_occluders < 1:
        return []
    points, _, s = renderer.pose(theta.astype(np.float64))
    p = points[lm]
    x0, y0 = p[:, 0] - 1.0, image_size - p[:, 1]
    width_px = reference_width_mm(renderer.model) * s
    out = []
    for _ in range(int(rng.integers(1, scene.max_occluders + 1))):
        cx = rng.uniform(x0.min(), x0.max())
        cy = rng.uniform(y0.min(), y0.max())
        half = rng.uniform(*scene.occluder_size, 2) * width_px
        out.append(
            Occluder(
                kind="rect" if rng.uniform() < 0.5 else "ellipse",
                centre=(float(cx), float(cy)),
                half_size=(float(half[0]), float(half[1])),
                angle=float(rng.uniform(0.0, np.pi)),
                colour=tuple(float(c) for c in rng.uniform(0.0, 1.0, 3)),  # type: ignore[arg-type]
            )
        )
    return out


# ------------------------------------------------------------------------------------------ backgrounds
def _background(
    model, renderer: MeshRenderer, params: SampleParameters, dist: ThetaDistribution, scene: SceneDistribution
) -> np.ndarray:
    rng = np.random.default_rng(params.background_seed)
    size = params.image_size
    if params.background == "noise":
        return smooth_noise(rng, size)
    if params.background == "gradient":
        return linear_gradient(rng, size)
    img = smooth_noise(rng, size) if rng.uniform() < 0.5 else linear_gradient(rng, size)
    s0 = reference_scale(model, dist, size)
    n_tex = 0 if renderer.texture is None else renderer.texture.shape[0]
    for _ in range(int(rng.integers(1, max(scene.max_background_faces, 1) + 1))):
        alpha = np.clip(rng.standard_normal(model.n_components), -3.0, 3.0)
        beta = rng.standard_normal(n_tex)
        yaw, pitch, roll = np.deg2rad(rng.uniform(-1.0, 1.0, 3) * [90.0, 30.0, 30.0])
        s = s0 * rng.uniform(0.6, 1.4)
        radius, phi = rng.uniform(0.3, 0.6) * size, rng.uniform(0.0, 2 * np.pi)
        t = np.array([(size + 1) / 2 + radius * np.cos(phi), (size + 1) / 2 + radius * np.sin(phi)])
        az, el = np.deg2rad(rng.uniform(-60.0, 60.0)), np.deg2rad(rng.uniform(-45.0, 45.0))
        light = Lighting(
            ambient=float(rng.uniform(0.3, 0.6)),
            diffuse=float(rng.uniform(0.4, 0.8)),
            direction=(float(np.sin(az) * np.cos(el)), float(np.sin(el)), float(np.cos(az) * np.cos(el))),
        )
        theta = np.concatenate([transforms.euler_to_axis_angle_np(yaw, pitch, roll), t, [np.log(s)], alpha])
        img = renderer.render(theta, renderer.albedo(beta), light, size, img).image
    return img


# ------------------------------------------------------------------------------------------ samples
@dataclass
class SyntheticRender:
    """A rendered synthetic sample before packing (from :func:`render_parameters`).

    Attributes:
        image: float64 (H, W, 3) in [0, 1], final (background, face, occluders, noise).
        face: the face rendering (:class:`~mmstn.render.MeshRender`; background, no occluders or noise).
        background: float64 (H, W, 3), the background alone.
        occluder_mask: bool (H, W), pixels covered by occluders.
        mask: bool (H, W), face pixels not covered by an occluder.
        landmarks: name → (L, 2) label-frame projections of the landmark vertices (L = 21 or 68).
        visible: name → (L,) bool exact visibility (module docstring), occluders included.
        albedo: (N, 3) the subject's albedo.
    """

    image: np.ndarray
    face: MeshRender
    background: np.ndarray
    occluder_mask: np.ndarray
    mask: np.ndarray
    landmarks: dict[str, np.ndarray]
    visible: dict[str, np.ndarray]
    albedo: np.ndarray


def render_parameters(
    model,
    params: SampleParameters,
    dist: ThetaDistribution = ThetaDistribution(),
    scene: SceneDistribution = SceneDistribution(),
) -> SyntheticRender:
    """Render the image and compute the ground truth of drawn parameters."""
    renderer = renderer_for(model)
    size = params.image_size
    background = _background(model, renderer, params, dist, scene)
    albedo = renderer.albedo(params.beta)
    face = renderer.render(
        params.theta.astype(np.float64), albedo, params.lighting, size, background, params.light_gain
    )
    img = face.image.copy()
    ys, xs = np.mgrid[0:size, 0:size]
    occ = np.zeros((size, size), dtype=bool)
    for o in params.occluders:
        inside = o.contains(xs, ys)
        img[inside] = o.colour
        occ |= inside
    if scene.pixel_noise > 0:
        noise_rng = np.random.default_rng(params.noise_seed)
        img = np.clip(img + noise_rng.normal(0.0, scene.pixel_noise, img.shape), 0.0, 1.0)
    landmarks, visible = {}, {}
    for name in ("aflw21", "ibug68"):
        idx = model.landmarks.get(name)
        if idx is None or idx.numel() == 0:
            continue
        idx = idx.cpu().numpy().astype(np.int64)
        defined = idx >= 0
        safe = np.where(defined, idx, 0)
        pts = np.where(defined[:, None], face.points[safe], 0.0)
        vis = renderer.visibility(face, safe, size) & defined
        x0, y0 = pts[:, 0] - 1.0, size - pts[:, 1]
        for o in params.occluders:
            vis &= ~o.contains(x0, y0)
        landmarks[name], visible[name] = pts, vis
    return SyntheticRender(
        image=img,
        face=face,
        background=background,
        occluder_mask=occ,
        mask=face.fragments.mask & ~occ,
        landmarks=landmarks,
        visible=visible,
        albedo=albedo,
    )


def generate_sample(
    model=None,
    index: int = 0,
    seed: int = 0,
    dist: ThetaDistribution = ThetaDistribution(),
    scene: SceneDistribution = SceneDistribution(),
    n_subjects: int = 100,
    image_size: int = 224,
) -> dict[str, torch.Tensor]:
    """Synthetic sample ``index`` of the dataset ``seed``: deterministic in (model, seed, index, settings).

    Args:
        model: a :class:`~mmstn.models.MorphableModel` with ``landmarks["aflw21"]`` (default: the shipped ICT face).
        index: the sample's index.
        seed: the dataset seed.
        dist: :class:`ThetaDistribution`.
        scene: :class:`SceneDistribution`.
        n_subjects: the subject id is uniform in [0, n_subjects).
        image_size: H = W in pixels (224 for the paper).

    Returns:
        dict of tensors: ``image`` float32 (3, H, W) in [0, 1]; ``landmarks21`` float32 (21, 2) label frame;
        ``vis21`` float32 (21,) 0/1; ``landmarks68``/``vis68`` (68, 2)/(68,) when the model has ``ibug68``
        (undefined −1 entries at (0, 0) with visibility 0); ``theta`` float32 (6 + D,) with s = exp(logs);
        ``subject_id`` int64 (); ``mask`` bool (H, W) visible face pixels.
    """
    if model is None:
        model = ict_face_model()
    params = draw_parameters(model, index, seed, dist, scene, n_subjects, image_size)
    out = render_parameters(model, params, dist, scene)
    sample: dict[str, torch.Tensor] = {
        "image": torch.from_numpy(np.ascontiguousarray(out.image.transpose(2, 0, 1), dtype=np.float32)),
        "landmarks21": torch.from_numpy(out.landmarks["aflw21"].astype(np.float32)),
        "vis21": torch.from_numpy(out.visible["aflw21"].astype(np.float32)),
    }
    if "ibug68" in out.landmarks:
        sample["landmarks68"] = torch.from_numpy(out.landmarks["ibug68"].astype(np.float32))
        sample["vis68"] = torch.from_numpy(out.visible["ibug68"].astype(np.float32))
    sample["theta"] = torch.from_numpy(params.theta.copy())
    sample["subject_id"] = torch.tensor(params.subject_id, dtype=torch.int64)
    sample["mask"] = torch.from_numpy(out.mask.copy())
    return sample


# ------------------------------------------------------------------------------------------ datasets on disk
_MANIFEST = "manifest.json"


def synthetic_face_at_yaw(model, index: int, yaw_deg: float, seed: int = 777, image_size: int = 224) -> dict:
    """Synthetic sample ``index`` of the dataset ``seed``, re-posed to the given yaw (pitch, roll, shape, light,
    background and the centring rule unchanged).

    Returns:
        dict with ``image`` (3, S, S), ``landmarks21`` (21, 2), ``vis21`` (21,), ``theta`` (6 + D,) (s = exp(logs)).
    """
    params = draw_parameters(model, int(index), int(seed), n_subjects=1000, image_size=image_size)
    th = params.theta.astype(np.float64)
    _, pitch, roll = transforms.matrix_to_euler_np(transforms.axis_angle_to_matrix_np(th[THETA_R]))
    r_new = transforms.matrix_to_axis_angle_np(transforms.euler_to_matrix_np(np.deg2rad(yaw_deg), pitch, roll))
    renderer = renderer_for(model)
    lm = _landmark_vertices(model)
    shape = renderer.shape(th[THETA_ALPHA])[lm]

    def box_centre(r: np.ndarray) -> np.ndarray:
        p = shape @ transforms.axis_angle_to_matrix_np(r).T
        return (p[:, :2].min(0) + p[:, :2].max(0)) / 2

    s = float(np.exp(th[THETA_LOGS.start]))
    th[THETA_T] += s * (box_centre(th[THETA_R]) - box_centre(r_new))  # keep the posed landmark box where it was
    th[THETA_R] = r_new
    params.theta = th.astype(np.float32)
    out = render_parameters(model, params)
    return {
        "image": torch.from_numpy(np.ascontiguousarray(out.image.transpose(2, 0, 1), dtype=np.float32)),
        "landmarks21": torch.from_numpy(out.landmarks["aflw21"].astype(np.float32)),
        "vis21": torch.from_numpy(out.visible["aflw21"].astype(np.float32)),
        "theta": torch.from_numpy(params.theta.copy()),
    }



def _shard_names(k: int) -> dict[str, str]:
    return {"images": f"images_{k:05d}.npy", "masks": f"masks_{k:05d}.npy", "labels": f"labels_{k:05d}.npz"}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def model_fingerprint(model) -> str:
    """First 16 hex digits of the SHA-256 of the model's arrays (mean, basis, triangles, colour, texture, landmarks)."""
    h = hashlib.sha256()
    for t in (model.mean, model.basis, model.triangles, model.colour, model.texture_basis):
        if t is not None:
            h.update(np.ascontiguousarray(t.detach().cpu().numpy()).tobytes())
    for k in sorted(model.landmarks):
        h.update(k.encode())
        h.update(np.ascontiguousarray(model.landmarks[k].cpu().numpy()).tobytes())
    return h.hexdigest()[:16]


def _settings(model, seed, dist, scene, n_subjects, image_size, shard_size) -> dict:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "seed": int(seed),
        "shard_size": int(shard_size),
        "image_size": int(image_size),
        "n_subjects": int(n_subjects),
        "model": {
            "name": model.name,
            "source": model.source,
            "n_vertices": model.n_vertices,
            "n_components": model.n_components,
            "n_identity": model.n_identity,
            "fingerprint": model_fingerprint(model),
        },
        "landmark_sets": [k for k in ("aflw21", "ibug68") if k in model.landmarks],
        "theta_distribution": _to_json_dict(dist),
        "scene_distribution": _to_json_dict(scene),
        "reference_scale_px_per_mm": reference_scale(model, dist, image_size),
    }


def _mmstn_version() -> str:
    return __version__


def _write_json_atomic(path: Path, data: dict) -> None:
    with atomic_write(path, "w") as fh:
        fh.write(json.dumps(data, indent=1, sort_keys=False) + "\n")


def _generate_chunk(model, indices: Sequence[int], seed, dist, scene, n_subjects, image_size) -> dict[str, np.ndarray]:
    """Render ``indices`` → stacked arrays in the on-disk layout."""
    images, masks, cols = (
        [],
        [],
        {"landmarks21": [], "vis21": [], "landmarks68": [], "vis68": [], "theta": [], "subject_id": []},
    )
    for i in indices:
        s = generate_sample(model, int(i), seed, dist, scene, n_subjects, image_size)
        images.append(np.clip(np.rint(s["image"].numpy().transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8))
        masks.append(np.packbits(s["mask"].numpy(), axis=1))
        for k in cols:
            if k in s:
                cols[k].append(s[k].numpy())
    out = {"images": np.stack(images), "masks": np.stack(masks)}
    out.update({k: np.stack(v) for k, v in cols.items() if v})
    return out


_WORKER_MODEL: Any = None


def _worker_init(model) -> None:
    global _WORKER_MODEL
    torch.set_num_threads(1)
    _WORKER_MODEL = model


def _worker_chunk(args) -> dict[str, np.ndarray]:
    return _generate_chunk(_WORKER_MODEL, *args)


def _chunks(start: int, count: int, size: int) -> Iterator[list[int]]:
    for a in range(start, start + count, size):
        yield list(range(a, min(a + size, start + count)))


def generate_dataset(
    out_dir: str | Path,
    n_images: int,
    seed: int = 0,
    model=None,
    dist: ThetaDistribution = ThetaDistribution(),
    scene: SceneDistribution = SceneDistribution(),
    shard_size: int = 500,
    n_subjects: int = 1000,
    image_size: int = 224,
    workers: int | None = None,
    verify: bool = True,
    progress: bool = True,
) -> Path:
    """Generate ``n_images`` synthetic samples into ``out_dir`` (layout in the module docstring), resumably.

    Shards are written one at a time (to a temporary name, then renamed) and recorded in ``manifest.json``
    with their counts and SHA-256 checksums. Rerunning with the same settings keeps every complete shard
    (checked against the manifest; ``verify`` also rehashes them) and regenerates the rest, so an
    interrupted run resumes and the result is byte-identical to an uninterrupted one. A larger
    ``n_images`` extends a dataset; other changed settings raise an error.

    Args:
        out_dir: the dataset folder (created if needed).
        n_images: number of images.
        seed: dataset seed; sample i is :func:`generate_sample` (model, i, seed, …).
        model: the morphable model (default: the ICT face, :func:`~mmstn.models.ict_face_model`).
        dist, scene: the distributions.
        shard_size: images per shard.
        n_subjects: number of distinct subjects.
        image_size: H = W.
        workers: processes; default min(2, CPU count); 0 or 1 render in this process. The result does
            not depend on it.
        verify: rehash kept shards.
        progress: show a ``tqdm.auto`` bar (``TQDM_DISABLE=1`` also hides it).

    Returns:
        ``out_dir`` as a Path.
    """
    from tqdm.auto import tqdm

    if model is None:
        model = ict_face_model()
    if n_images < 0 or shard_size < 1:
        raise ValueError(f"n_images={n_images} must be >= 0 and shard_size={shard_size} >= 1")
    _landmark_vertices(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = _settings(model, seed, dist, scene, n_subjects, image_size, shard_size)
    manifest_path = out / _MANIFEST
    kept: dict[int, dict] = {}
    if manifest_path.exists():
        try:
            old = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError):
            old = None  # unreadable: start again (shards are rewritten)
        if isinstance(old, dict):
            old_settings = {k: old.get(k) for k in settings}
            if old_settings != settings:
                diff = sorted(k for k in settings if old_settings.get(k) != settings[k])
                raise DatasetFolderError(
                    out,
                    f"holds a dataset generated with other settings (differs in: {', '.join(diff)})",
                    "Use another folder, delete this one, or call generate_dataset with the same settings to resume",
                )
            for entry in old.get("shards", []):
                if isinstance(entry, dict) and isinstance(entry.get("index"), int):
                    kept[entry["index"]] = entry
    n_shards = (n_images + shard_size - 1) // shard_size
    plan = [(k, k * shard_size, min(shard_size, n_images - k * shard_size)) for k in range(n_shards)]
    shards: list[dict | None] = []
    for k, start, count in plan:
        entry = kept.get(k)
        ok = (
            entry is not None
            and entry.get("start") == start
            and entry.get("count") == count
            and set(entry.get("files", {})) == set(_shard_names(k).values())
        )
        if ok:
            for name, info in entry["files"].items():
                p = out / name
                if not p.is_file() or p.stat().st_size != info["bytes"] or (verify and _sha256(p) != info["sha256"]):
                    ok = False
                    break
        shards.append(entry if ok else None)
    for k in sorted(set(kept) - set(range(n_shards))):  # a shrunken dataset: drop the extra shards
        for name in _shard_names(k).values():
            (out / name).unlink(missing_ok=True)

    def write_manifest(complete: bool) -> None:
        data = dict(settings)
        data["n_images"] = int(n_images)
        data["complete"] = complete
        data["mmstn_version"] = _mmstn_version()
        data["shards"] = [s for s in shards if s is not None]
        _write_json_atomic(manifest_path, data)

    write_manifest(all(s is not None for s in shards))
    todo = [p for p, s in zip(plan, shards, strict=True) if s is None]
    n_workers = min(2, os.cpu_count() or 1) if workers is None else int(workers)
    chunk = max(1, min(25, shard_size // max(2 * n_workers, 1)))
    bar_kwargs: dict[str, Any] = {
        "total": n_images,
        "initial": n_images - sum(c for _, _, c in todo),
        "unit": "img",
        "desc": f"synthetic faces → {out.name}",
    }
    if not progress:
        bar_kwargs["disable"] = True
    pool = None
    if todo and n_workers > 1:
        # fork (Linux): workers inherit the model and need no `if __name__ == "__main__":` guard in scripts;
        # elsewhere spawn. The pool is started before the progress bar's monitor thread exists.
        import multiprocessing as mp

        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        pool = mp.get_context(method).Pool(n_workers, initializer=_worker_init, initargs=(model,))
    jobs = [(k, idx) for k, start, count in todo for idx in _chunks(start, count, chunk)]
    args = [(idx, seed, dist, scene, n_subjects, image_size) for _, idx in jobs]
    try:
        with tqdm(**bar_kwargs) as bar:
            results = pool.imap(_worker_chunk, args) if pool is not None else (_generate_chunk(model, *a) for a in args)
            parts: list[dict[str, np.ndarray]] = []
            for n, ((k, _), part) in enumerate(zip(jobs, results, strict=True)):
                parts.append(part)
                bar.update(len(part["images"]))
                if n + 1 < len(jobs) and jobs[n + 1][0] == k:
                    continue
                _, start, count = plan[k]
                arrays = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
                parts = []
                files = {}
                for kind, name in _shard_names(k).items():
                    with atomic_write(out / name) as fh:
                        if kind == "labels":
                            np.savez(fh, **{key: v for key, v in arrays.items() if key not in ("images", "masks")})
                        else:
                            np.save(fh, arrays[kind])
                    files[name] = {"bytes": (out / name).stat().st_size, "sha256": _sha256(out / name)}
                shards[k] = {"index": k, "start": start, "count": count, "files": files}
                write_manifest(all(s is not None for s in shards))
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return out


class SyntheticFaces(torch.utils.data.Dataset):
    """A dataset written by :func:`generate_dataset`, memory-mapped.

    ``dataset[i]`` is a dict of tensors with the keys of :func:`generate_sample`: ``image`` float32
    (3, H, W) in [0, 1] (stored as uint8, so within 1/510 of the generated values), ``landmarks21``,
    ``vis21``, ``landmarks68``/``vis68`` (when stored), ``theta``, ``subject_id``, ``mask`` (unless
    ``with_mask=False``).

    Args:
        folder: the dataset folder.
        with_mask: return the face masks.
        verify: rehash every shard against the manifest on opening (slow for large datasets).

    Raises:
        DatasetFolderError: no or unreadable manifest, an incomplete generation, no images, or shards that
            do not match the manifest; the message names the folder and how to fix it.
    """

    def __init__(self, folder: str | Path, with_mask: bool = True, verify: bool = False) -> None:
        self.folder = Path(folder)
        fix = "Generate it with mmstn.data.synthetic.generate_dataset(folder, n_images, seed)"
        if not self.folder.is_dir():
            raise DatasetFolderError(self.folder, "no such folder", fix)
        path = self.folder / _MANIFEST
        if not path.is_file():
            raise DatasetFolderError(self.folder, f"no {_MANIFEST}: not a generated synthetic dataset", fix)
        try:
            manifest = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetFolderError(
                self.folder,
                f"{_MANIFEST} is unreadable ({type(exc).__name__}: {exc})",
                "Rerun generate_dataset with the original settings to rebuild it, or delete the folder",
            ) from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise DatasetFolderError(self.folder, f"{_MANIFEST} is not a {FORMAT} manifest", fix)
        if manifest.get("version") != FORMAT_VERSION:
            raise DatasetFolderError(
                self.folder,
                f"format version {manifest.get('version')} (this mmstn reads {FORMAT_VERSION})",
                "Regenerate the dataset with this version of mmstn",
            )
        if not manifest.get("complete", False):
            raise DatasetFolderError(
                self.folder,
                "the generation did not finish",
                "Rerun generate_dataset with the same arguments: it resumes where it stopped",
            )
        self.manifest = manifest
        self.shards = sorted(manifest.get("shards", []), key=lambda e: e["start"])
        self.n_images = int(sum(e["count"] for e in self.shards))
        if self.n_images == 0:
            raise DatasetFolderError(self.folder, "the dataset holds no images", "Generate it with n_images > 0")
        if self.n_images != manifest.get("n_images"):
            raise DatasetFolderError(self.folder, "the shards do not add up to n_images", fix)
        self.with_mask = with_mask
        self.image_size = int(manifest["image_size"])
        self._starts = np.array([e["start"] for e in self.shards], dtype=np.int64)
        labels: dict[str, list[np.ndarray]] = {}
        for e in self.shards:
            names = _shard_names(int(e["index"]))
            for name in names.values():
                p = self.folder / name
                info = e["files"].get(name)
                if not p.is_file() or info is None or p.stat().st_size != info["bytes"]:
                    raise DatasetFolderError(
                        self.folder,
                        f"shard file {name} is missing or has the wrong size",
                        "Rerun generate_dataset with the same arguments to regenerate it",
                    )
                if verify and _sha256(p) != info["sha256"]:
                    raise DatasetFolderError(
                        self.folder,
                        f"shard file {name} does not match its checksum",
                        "Rerun generate_dataset with the same arguments to regenerate it",
                    )
            with np.load(self.folder / names["labels"], allow_pickle=False) as z:
                for key in z.files:
                    labels.setdefault(key, []).append(z[key])
        self.labels = {k: np.concatenate(v) for k, v in labels.items()}
        for k, v in self.labels.items():
            if len(v) != self.n_images:
                raise DatasetFolderError(
                    self.folder, f"labels {k!r} hold {len(v)} rows for {self.n_images} images", "Regenerate the dataset"
                )
        self._maps: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_maps"] = {}  # memory maps are reopened in each DataLoader worker
        return state

    def __len__(self) -> int:
        return self.n_images

    def _shard(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        m = self._maps.get(k)
        if m is None:
            names = _shard_names(int(self.shards[k]["index"]))
            m = (
                np.load(self.folder / names["images"], mmap_mode="r"),
                np.load(self.folder / names["masks"], mmap_mode="r"),
            )
            size = self.image_size
            if m[0].shape != (self.shards[k]["count"], size, size, 3):
                raise DatasetFolderError(
                    self.folder, f"{names['images']} has shape {m[0].shape}", "Regenerate the dataset"
                )
            self._maps[k] = m
        return m

    def subject_indices(self) -> dict[int, np.ndarray]:
        """subject id → indices of its images."""
        sid = self.labels["subject_id"]
        return {int(s): np.flatnonzero(sid == s) for s in np.unique(sid)}

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        i = int(i)
        if i < 0:
            i += self.n_images
        if not 0 <= i < self.n_images:
            raise IndexError(f"index {i} out of range for a dataset of {self.n_images} images")
        k = int(np.searchsorted(self._starts, i, side="right") - 1)
        j = i - int(self._starts[k])
        images, masks = self._shard(k)
        out = {"image": torch.from_numpy(np.ascontiguousarray(images[j].transpose(2, 0, 1))).float().div_(255.0)}
        for key in ("landmarks21", "vis21", "landmarks68", "vis68", "theta"):
            if key in self.labels:
                out[key] = torch.from_numpy(self.labels[key][i].copy())
        out["subject_id"] = torch.tensor(int(self.labels["subject_id"][i]), dtype=torch.int64)
        if self.with_mask:
            out["mask"] = torch.from_numpy(np.unpackbits(masks[j], axis=1, count=self.image_size).astype(bool))
        return out
