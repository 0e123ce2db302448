"""Rendering a morphable model posed by θ: orthographic, z-buffered, shaded per vertex.

:class:`MeshRenderer` is the one renderer of morphable faces. It poses the model in NumPy (float64), shades
the vertices (:mod:`mmstn.render.shading`: ambient + Lambert or spherical harmonics), rasterises them
(:mod:`mmstn.render.raster`) and gives the exact visibility of chosen vertices on demand. The synthetic data,
the detailed test subjects, the figures and the quick start all render through it; :func:`render_face` and
:func:`render_sh` are its one-call forms with exact visibility and tensors out.

Frames. θ = (r, t, logs, α) as everywhere (:mod:`mmstn.theta`): the rotated shape R·X(α) in mm, its x and y
scaled by s = exp(κ·logs) px/mm and shifted by t give the label frame (1-based, y up); the rasteriser works
in 0-based pixels, y down, with the depth s·z (larger = nearer, the BFM's z points to the viewer).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from mmstn.errors import ShapeError, check_finite
from mmstn.layers.rotate import rotate_points
from mmstn.layers.rotation import rodrigues
from mmstn.layers.scale import log_scale_to_scale, scale_rate
from mmstn.layers.visibility import unoccluded
from mmstn.render.raster import Fragments, composite, rasterize, render_colours
from mmstn.render.shading import Lighting, shade_vertices
from mmstn.runtime import as_numpy
from mmstn.theta import THETA_ALPHA, THETA_LOGS, THETA_R, THETA_T, Theta, split_theta

__all__ = [
    "MeshRender",
    "MeshRenderer",
    "RenderedFace",
    "SHRender",
    "pose_vertices",
    "render_face",
    "render_sh",
    "renderer_for",
]



def pose_vertices(model, theta: Theta | torch.Tensor, scale_base: str | float = "exp"):
    """Apply θ = (r, t, logs, α) to any morphable model, in torch (differentiable, batched).

    Args:
        model: a :class:`~mmstn.models.MorphableModel`.
        theta: a :class:`~mmstn.theta.Theta` (any convention), or (B, 6 + D) read with ``scale_base``;
            D ≤ the model's components.
        scale_base: ``"exp"`` (paper) or ``"0.99"`` (authors' code).

    Returns:
        (points (B, N, 2) in the label frame, rotated shape (B, N, 3) in mm, scale (B, 1) px/mm).
    """
    if isinstance(theta, Theta):
        theta = theta.as_tensor_for(scale_base)
    theta = torch.as_tensor(theta, dtype=model.dtype)
    d = theta.shape[-1] - 6
    r, t, logs, alpha = split_theta(theta, d)
    rotated = rotate_points(model.shape(alpha), rodrigues(r, "autograd"), "autograd")
    s = log_scale_to_scale(logs, scale_base, "autograd")
    points = rotated[..., :2] * s[:, None, :] + t[:, None, :]
    return points, rotated, s


@dataclass
class MeshRender:
    """One face rendered by :class:`MeshRenderer`.

    Attributes:
        image: float64 (H, W, 3) in [0, 1]: the face over the background (black when none was given).
        fragments: the rasterisation; ``fragments.mask`` is the face.
        points: float64 (N, 2), every vertex in the label frame.
        rotated: float64 (N, 3), the rotated shape R·X(α) in mm.
        scale: s in px/mm.
        normals: float64 (N, 3), unit area-weighted vertex normals of the rotated shape (camera frame).
        normal_z: float64 (N,), z of the *unnormalised* area-weighted normals (its sign is the back-face test).
        colours: float64 (N, 3), the shaded vertex colours that were interpolated.
    """

    image: np.ndarray
    fragments: Fragments
    points: np.ndarray
    rotated: np.ndarray
    scale: float
    normals: np.ndarray
    normal_z: np.ndarray
    colours: np.ndarray


class MeshRenderer:
    """Render a morphable model posed by θ (module docstring); build once per model (:func:`renderer_for`).

    Args:
        model: a :class:`~mmstn.models.MorphableModel` (a grid model too). Its ``colour`` is the default
            albedo (grey 0.75 when it has none), its ``texture_basis`` spans :meth:`albedo`.
    """

    def __init__(self, model) -> None:
        self.model = model
        self.mean = model.mean.detach().cpu().double().numpy()
        self.basis = model.basis.detach().cpu().double().numpy().reshape(model.n_components, -1)
        self.triangles = model.triangles.cpu().numpy().astype(np.int64)
        self.n_vertices = self.mean.shape[0]
        f = self.triangles
        rows = f.reshape(-1)
        cols = np.repeat(np.arange(len(f)), 3)
        # vertex ← incident faces; summing unnormalised face normals gives the area-weighted vertex normals
        self._incidence = sp.csr_matrix(
            (np.ones(rows.size), (rows, cols)), shape=(self.n_vertices, len(f)), dtype=np.float64
        )
        self.colour = (
            np.full((self.n_vertices, 3), 0.75)
            if model.colour is None
            else model.colour.detach().cpu().double().numpy()
        )
        self.texture = (
            None
            if model.texture_basis is None
            else model.texture_basis.detach().cpu().double().numpy().reshape(model.texture_basis.shape[0], -1)
        )

    # -- geometry
    def shape(self, alpha: np.ndarray) -> np.ndarray:
        """X(α) (N, 3) mm for α (D′,), D′ ≤ D."""
        a = np.asarray(alpha, dtype=np.float64)
        return self.mean + np.einsum("k,kn->n", a, self.basis[: len(a)]).reshape(-1, 3)

    def albedo(self, beta: np.ndarray | None) -> np.ndarray:
        """clip(colour + Σ β_k T_k, 0, 1), (N, 3)."""
        if beta is None or self.texture is None or len(beta) == 0:
            return self.colour.copy()
        b = np.asarray(beta, dtype=np.float64)
        return np.clip(self.colour + np.einsum("k,kn->n", b, self.texture[: len(b)]).reshape(-1, 3), 0.0, 1.0)

    def area_normals(self, rotated: np.ndarray) -> np.ndarray:
        """Unnormalised area-weighted vertex normals (N, 3) of a rotated shape (N, 3)."""
        f = self.triangles
        p0, p1, p2 = rotated[f[:, 0]], rotated[f[:, 1]], rotated[f[:, 2]]
        return self._incidence @ np.cross(p1 - p0, p2 - p0)

    def pose(self, theta: np.ndarray, scale_base: str | float = "exp") -> tuple[np.ndarray, np.ndarray, float]:
        """θ (6 + D′,) → (label-frame points (N, 2), rotated shape (N, 3) mm, s px/mm), s = exp(κ·logs)."""
        th = np.asarray(theta, dtype=np.float64)
        rotation = rodrigues(torch.from_numpy(th[THETA_R][None].copy()), "autograd")[0].numpy()
        # einsum, not BLAS: multithreaded BLAS on tiny products is slower than a loop and thrashes when
        # several data-generation processes share the cores
        rotated = np.einsum("nj,ij->ni", self.shape(th[THETA_ALPHA]), rotation)
        kappa = 1.0 if scale_base == "exp" else scale_rate(scale_base)
        s = float(np.exp(kappa * th[THETA_LOGS.start]))
        return rotated[:, :2] * s + th[THETA_T], rotated, s

    # -- rendering
    def render(
        self,
        theta: np.ndarray,
        albedo: np.ndarray | None = None,
        light: Lighting | torch.Tensor | None = None,
        image_size: int = 224,
        background: np.ndarray | None = None,
        light_gain: Sequence[float] = (1.0, 1.0, 1.0),
        scale_base: str | float = "exp",
    ) -> MeshRender:
        """Render θ over ``background``.

        Args:
            theta: (6 + D′,) θ.
            albedo: (N, 3) in [0, 1]; the model's colour by default.
            light: a :class:`~mmstn.render.shading.Lighting` (default ``Lighting()``) or SH coefficients (3, 9).
            image_size: H = W.
            background: float (H, W, 3) in [0, 1], or None (black).
            light_gain: per-channel multiplier of the shading (1 = white light).
            scale_base: how logs maps to the scale (``"exp"``, ``"0.99"`` or a positive float).
        """
        points, rotated, s = self.pose(theta, scale_base)
        h = w = int(image_size)
        p3 = np.empty((self.n_vertices, 3))
        p3[:, 0] = points[:, 0] - 1.0  # label frame (1-based, y up) → pixels (0-based, y down)
        p3[:, 1] = h - points[:, 1]
        p3[:, 2] = rotated[:, 2] * s
        frag = rasterize(p3, self.triangles, h, w)
        normals = self.area_normals(rotated)
        nz = normals[:, 2].copy()
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        alb = self.colour if albedo is None else np.asarray(albedo, dtype=np.float64)
        rgb = shade_vertices(normals, alb, Lighting() if light is None else light, light_gain)
        img = composite(render_colours(frag, self.triangles, rgb), frag.mask, background)
        return MeshRender(image=img, fragments=frag, points=points, rotated=rotated, scale=s, normals=normals,
                          normal_z=nz, colours=rgb)

    def visibility(
        self, render: MeshRender, vertices: np.ndarray | None, image_size: int, rel_tol: float = 1e-7
    ) -> np.ndarray:
        """Exact visibility (Q,) bool of the chosen vertices of a rendering (all of them when None).

        True when the vertex projects inside the image (0-based pixel coordinates in [0, size − 1]), its
        area-weighted normal faces the camera (n_z > 0) and the ray from it towards the camera (+z) crosses no
        triangle that does not contain it (:func:`mmstn.layers.visibility.unoccluded`).
        """
        q = np.arange(self.n_vertices) if vertices is None else np.asarray(vertices, dtype=np.int64)
        x0 = render.points[q, 0] - 1.0
        y0 = image_size - render.points[q, 1]
        inside = (x0 >= 0) & (x0 <= image_size - 1) & (y0 >= 0) & (y0 <= image_size - 1)
        return inside & (render.normal_z[q] > 0) & unoccluded(render.rotated, self.triangles, rel_tol, q)


_RENDERERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def renderer_for(model) -> MeshRenderer:
    """The :class:`MeshRenderer` of ``model``, built on first use and kept while the model lives."""
    r = _RENDERERS.get(model)
    if r is None:
        r = _RENDERERS[model] = MeshRenderer(model)
    return r


# ------------------------------------------------------------------------------------------ one call
@dataclass
class RenderedFace:
    """One orthographic rendering of a morphable face with exact ground truth (:func:`render_face`).

    Attributes:
        image: float32 tensor (3, H, W), RGB in [0, 1].
        mask: bool array (H, W), True on the face.
        points: tensor (N, 2), every vertex in the label frame (1-based column, y up).
        visible: bool array (N,), exact (ray-cast) visibility of every vertex.
        fragments: the rasterisation (visible triangle and barycentrics per pixel).
    """

    image: torch.Tensor
    mask: np.ndarray
    points: torch.Tensor
    visible: np.ndarray
    fragments: Fragments


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


def _one_theta(theta, scale_base: str | float) -> np.ndarray:
    """θ of one image as float64 (6 + D,); a :class:`~mmstn.theta.Theta` is written in ``scale_base`` (same s)."""
    if isinstance(theta, Theta):
        if len(theta) != 1:
            raise ShapeError(f"render one face at a time: theta holds {len(theta)} images (index it: theta[i])")
        theta = theta.as_tensor_for(scale_base)
    th = as_numpy(theta).astype(np.float64).reshape(-1)
    check_finite("theta", th)
    return th


def _background_hwc(background, image_size: int) -> np.ndarray | None:
    """(3, H, W) or (H, W, 3) in [0, 1] → float64 (H, W, 3); None stays None."""
    if background is None:
        return None
    bg = as_numpy(background).astype(np.float64)
    if bg.ndim == 3 and bg.shape[0] == 3 and bg.shape[-1] != 3:
        bg = bg.transpose(1, 2, 0)
    if bg.shape != (image_size, image_size, 3):
        raise ShapeError(f"background must be (3, {image_size}, {image_size}) or ({image_size}, {image_size}, 3), "
                         f"got {tuple(background.shape)}")
    return bg


def _image(render: MeshRender) -> torch.Tensor:
    return torch.from_numpy(render.image.transpose(2, 0, 1).astype(np.float32))


def render_face(
    model,
    theta: Theta | torch.Tensor,
    *,
    image_size: int = 224,
    albedo: torch.Tensor | np.ndarray | None = None,
    lighting: Lighting | None = None,
    background: torch.Tensor | np.ndarray | None = None,
    scale_base: str | float = "exp",
) -> RenderedFace:
    """Render one face of ``model`` posed by θ, ambient + Lambert lit, with the exact visibility of every vertex.

    Args:
        model: the morphable model (its ``colour`` is the default albedo; grey when it has none).
        theta: a one-image :class:`~mmstn.theta.Theta` (any convention), or a (6 + D,) / (1, 6 + D) tensor
            r (rad), t (label frame px), logs, α read with ``scale_base``.
        image_size: H = W in pixels.
        albedo: optional (N, 3) per-vertex albedo in [0, 1] (e.g. a subject's texture).
        lighting: :class:`~mmstn.render.shading.Lighting` (default ``Lighting()``).
        background: optional (3, H, W) or (H, W, 3) image in [0, 1]; black by default.
        scale_base: how a tensor's logs maps to the scale (``"exp"`` or ``"0.99"``).

    Returns:
        :class:`RenderedFace`.
    """
    renderer = renderer_for(model)
    alb = None if albedo is None else as_numpy(albedo).astype(np.float64)
    out = renderer.render(_one_theta(theta, scale_base), alb, lighting, image_size,
                          _background_hwc(background, image_size), scale_base=scale_base)
    return RenderedFace(
        image=_image(out),
        mask=out.fragments.mask,
        points=torch.from_numpy(out.points).to(model.dtype),
        visible=renderer.visibility(out, None, image_size),
        fragments=out.fragments,
    )


def render_sh(
    model,
    theta: Theta | torch.Tensor,
    sh: torch.Tensor,
    albedo: torch.Tensor | None = None,
    *,
    image_size: int = 224,
    background: torch.Tensor | None = None,
    scale_base: str | float = "exp",
) -> SHRender:
    """Render ``model`` posed by θ with per-vertex albedo and spherical-harmonics shading.

    The same pose, pixel frame, normals and rasteriser as :func:`render_face`; only the shading differs:
    colour_i = clip(albedo_i · Σ_j sh[:, j] Y_j(n_i), 0, 1) per vertex, interpolated over the triangles.

    Args:
        model: any :class:`~mmstn.models.MorphableModel` (a grid model too).
        theta: a one-image :class:`~mmstn.theta.Theta`, or a (6 + D′,) / (1, 6 + D′) tensor, D′ ≤ D.
        sh: (3, 9) irradiance coefficients (:func:`~mmstn.render.shading.lambert_sh` converts a
            :class:`~mmstn.render.shading.Lighting`).
        albedo: (N, 3) in [0, 1]; default the model's ``colour``.
        image_size: H = W.
        background: optional (3, H, W) image in [0, 1] (black otherwise).
        scale_base: how a tensor's logs maps to the scale.

    Returns:
        :class:`SHRender`.
    """
    sh = torch.as_tensor(sh, dtype=torch.float64) if not isinstance(sh, torch.Tensor) else sh.double()
    if albedo is None:
        if model.colour is None:
            raise ValueError(f"model {model.name!r} has no colour; pass albedo=(N, 3)")
        albedo = model.colour
    alb = as_numpy(albedo).astype(np.float64)
    if alb.shape != (model.n_vertices, 3):
        raise ShapeError(f"albedo must have shape ({model.n_vertices}, 3), got {tuple(alb.shape)}")
    check_finite("albedo", alb)
    out = renderer_for(model).render(_one_theta(theta, scale_base), alb, sh, image_size,
                                     _background_hwc(background, image_size), scale_base=scale_base)
    return SHRender(
        image=_image(out),
        mask=out.fragments.mask,
        points=torch.from_numpy(out.points).to(model.dtype),
        normals=torch.from_numpy(out.normals),
        colours=torch.from_numpy(out.colours),
        fragments=out.fragments,
    )
