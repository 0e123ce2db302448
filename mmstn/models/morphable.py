"""The one morphable-model type every chapter uses.

Conventions (every loader converts to these):

* **Frame**: BFM 2009's. Right-handed, x to the viewer's right (the subject's left), y up, z towards the
  viewer. An orthographic camera looks along −z.
* **Units**: millimetres.
* **Basis scaling**: ``basis[k]`` is a principal direction multiplied by its standard deviation, so the
  coefficients follow α ~ N(0, I), the paper's statistical prior (eq. 6).
* **Winding**: triangles are **counter-clockwise seen from the front**, so the usual normal
  (p1 − p0) × (p2 − p0) points out of the face (towards +z for a frontal face), as in OpenGL and trimesh.
  The BFM and the authors' resampled grid are clockwise; their loaders swap two indices (method-spec §0.10).
* **Indices**: 0-based everywhere (the ``.anl`` and MATLAB readers subtract one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from mmstn.errors import ModelFileError, ShapeError, check_finite

__all__ = ["MorphableModel"]

_NPZ_FORMAT = "mmstn-morphable-model"
_NPZ_VERSION = 1


def _as_float(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if not torch.is_floating_point(t):
        t = t.to(torch.float32)
    return t


def _as_index(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if torch.is_floating_point(t) or t.dtype == torch.bool:
        raise ShapeError(f"{name} must hold integer indices, got dtype {t.dtype}")
    return t.to(torch.int64)


@dataclass(eq=False)
class MorphableModel:
    """A linear 3D morphable model of face shape, with optional colour, texture basis, UVs and symmetry.

    Attributes:
        name: short human-readable name, e.g. ``"builtin"`` or ``"BFM 2009 + 3DDFA expressions"``.
        mean: mean shape, tensor of shape (N, 3), millimetres.
        basis: shape basis, tensor of shape (D, N, 3), millimetres per unit coefficient; scaled so that
            α ~ N(0, I). The first ``n_identity`` components are identity, the rest expression.
        n_identity: how many leading components of ``basis`` are identity components.
        triangles: long tensor of shape (F, 3), 0-based, counter-clockwise seen from the front.
        landmarks: named landmark sets, each a long tensor of vertex indices; ``"aflw21"`` holds the
            21 AFLW points in the paper's order, ``"ibug68"`` the 68 iBUG points (−1 where undefined).
        uv: optional per-vertex texture coordinates, tensor of shape (N, 2) in [0, 1], v up.
        colour: optional per-vertex albedo, tensor of shape (N, 3), RGB in [0, 1].
        texture_basis: optional albedo basis, tensor of shape (K, N, 3), in [0, 1] units per unit
            coefficient, scaled so that β ~ N(0, I); its mean is ``colour``.
        mirror: optional long tensor of shape (N,): ``mirror[i]`` is the vertex symmetric to ``i``
            (an involution; midline vertices map to themselves).
        licence: the licence of the data the model was built from.
        source: where it came from (a path, or ``"built in code"``).
    """

    name: str
    mean: torch.Tensor
    basis: torch.Tensor
    n_identity: int
    triangles: torch.Tensor
    landmarks: dict[str, torch.Tensor] = field(default_factory=dict)
    uv: torch.Tensor | None = None
    colour: torch.Tensor | None = None
    texture_basis: torch.Tensor | None = None
    mirror: torch.Tensor | None = None
    licence: str = "unknown"
    source: str = ""

    def __post_init__(self) -> None:
        self.mean = _as_float(self.mean, "mean")
        self.basis = _as_float(self.basis, "basis")
        self.triangles = _as_index(self.triangles, "triangles")
        self.landmarks = {k: _as_index(v, f"landmarks[{k!r}]") for k, v in dict(self.landmarks).items()}
        if self.uv is not None:
            self.uv = _as_float(self.uv, "uv")
        if self.colour is not None:
            self.colour = _as_float(self.colour, "colour")
        if self.texture_basis is not None:
            self.texture_basis = _as_float(self.texture_basis, "texture_basis")
        if self.mirror is not None:
            self.mirror = _as_index(self.mirror, "mirror")
        self.n_identity = int(self.n_identity)
        self.validate()

    # ------------------------------------------------------------------ sizes
    @property
    def n_vertices(self) -> int:
        """N, the number of vertices."""
        return int(self.mean.shape[0])

    @property
    def n_components(self) -> int:
        """D, the number of shape components (identity + expression)."""
        return int(self.basis.shape[0])

    @property
    def n_expression(self) -> int:
        """How many trailing components of ``basis`` are expression components."""
        return self.n_components - self.n_identity

    @property
    def n_triangles(self) -> int:
        """F, the number of triangles."""
        return int(self.triangles.shape[0])

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def dtype(self) -> torch.dtype:
        return self.mean.dtype

    # ------------------------------------------------------------- validation
    def validate(self) -> None:
        """Check shapes, index ranges and finiteness; raise ``ShapeError``/``ValueError`` naming the field."""
        n = self.mean.shape[0] if self.mean.ndim == 2 else -1
        if self.mean.ndim != 2 or self.mean.shape[1] != 3 or n < 3:
            raise ShapeError(f"mean must have shape (N, 3) with N >= 3, got {tuple(self.mean.shape)}")
        if self.basis.ndim != 3 or self.basis.shape[1:] != (n, 3):
            raise ShapeError(f"basis must have shape (D, {n}, 3), got {tuple(self.basis.shape)}")
        if not 0 <= self.n_identity <= self.basis.shape[0]:
            raise ShapeError(f"n_identity={self.n_identity} must lie in [0, D={self.basis.shape[0]}]")
        if self.triangles.ndim != 2 or self.triangles.shape[1] != 3 or self.triangles.shape[0] == 0:
            raise ShapeError(f"triangles must have shape (F, 3) with F >= 1, got {tuple(self.triangles.shape)}")
        if int(self.triangles.min()) < 0 or int(self.triangles.max()) >= n:
            raise ShapeError(
                f"triangles index vertices {int(self.triangles.min())}..{int(self.triangles.max())} but the "
                f"model has {n} vertices (0-based indices expected; 1-based MATLAB files need -1)"
            )
        for key, idx in self.landmarks.items():
            if idx.ndim != 1 or (idx.numel() and (int(idx.max()) >= n or int(idx.min()) < -1)):
                raise ShapeError(f"landmarks[{key!r}] must be a 1-D list of vertex indices in [-1, {n})")
        if self.uv is not None and tuple(self.uv.shape) != (n, 2):
            raise ShapeError(f"uv must have shape ({n}, 2), got {tuple(self.uv.shape)}")
        if self.colour is not None and tuple(self.colour.shape) != (n, 3):
            raise ShapeError(f"colour must have shape ({n}, 3), got {tuple(self.colour.shape)}")
        if self.texture_basis is not None:
            if self.colour is None:
                raise ShapeError("texture_basis needs a mean albedo in colour")
            if self.texture_basis.ndim != 3 or self.texture_basis.shape[1:] != (n, 3):
                raise ShapeError(f"texture_basis must have shape (K, {n}, 3), got {tuple(self.texture_basis.shape)}")
        if self.mirror is not None:
            if tuple(self.mirror.shape) != (n,):
                raise ShapeError(f"mirror must have shape ({n},), got {tuple(self.mirror.shape)}")
            if int(self.mirror.min()) < 0 or int(self.mirror.max()) >= n:
                raise ShapeError("mirror holds indices outside the vertex range")
            if not torch.equal(self.mirror[self.mirror], torch.arange(n, device=self.mirror.device)):
                raise ShapeError("mirror must be an involution: mirror[mirror[i]] == i for every vertex")
        check_finite("mean", self.mean)
        check_finite("basis", self.basis)

    # ------------------------------------------------------------------ maths
    def shape(self, alpha: torch.Tensor | None = None) -> torch.Tensor:
        """The 3DMM layer: X(α) = μ + Σ_k α_k P_k.

        Args:
            alpha: coefficients, tensor of shape (B, D) or (D,); ``None`` gives the mean. D may be
                smaller than ``n_components`` (the leading components are used).

        Returns:
            Vertices, tensor of shape (B, N, 3) (or (N, 3) for 1-D ``alpha``), millimetres.
        """
        if alpha is None:
            return self.mean
        alpha = torch.as_tensor(alpha, dtype=self.dtype, device=self.device)
        squeeze = alpha.ndim == 1
        if squeeze:
            alpha = alpha[None]
        if alpha.ndim != 2 or alpha.shape[1] > self.n_components:
            raise ShapeError(
                f"alpha must have shape (B, D) with D <= {self.n_components}, got {tuple(alpha.shape)}"
            )
        check_finite("alpha", alpha)
        d = alpha.shape[1]
        flat = self.basis[:d].reshape(d, -1)
        x = (alpha @ flat).view(alpha.shape[0], self.n_vertices, 3) + self.mean
        return x[0] if squeeze else x

    def albedo(self, beta: torch.Tensor | None = None) -> torch.Tensor:
        """Per-vertex albedo c(β) = c̄ + Σ_k β_k T_k, tensor of shape (B, N, 3) (or (N, 3)), RGB in [0, 1]."""
        if self.colour is None:
            raise ValueError(f"model {self.name!r} has no colour; use a model with per-vertex albedo")
        if beta is None:
            return self.colour
        if self.texture_basis is None:
            raise ValueError(f"model {self.name!r} has no texture basis")
        beta = torch.as_tensor(beta, dtype=self.dtype, device=self.device)
        squeeze = beta.ndim == 1
        if squeeze:
            beta = beta[None]
        k = beta.shape[1]
        if k > self.texture_basis.shape[0]:
            raise ShapeError(f"beta has {k} coefficients but the texture basis has {self.texture_basis.shape[0]}")
        c = (beta @ self.texture_basis[:k].reshape(k, -1)).view(beta.shape[0], self.n_vertices, 3) + self.colour
        return c[0] if squeeze else c

    # --------------------------------------------------------------- variants
    def subset(self, n_identity: int, n_expression: int = 0) -> MorphableModel:
        """Keep the first ``n_identity`` identity and the first ``n_expression`` expression components.

        ``subset(5, 5)`` builds the paper's D = 10 model (method-spec §3.2–3.3).
        """
        if not 0 <= n_identity <= self.n_identity:
            raise ValueError(f"n_identity={n_identity}: the model has {self.n_identity} identity components")
        if not 0 <= n_expression <= self.n_expression:
            raise ValueError(f"n_expression={n_expression}: the model has {self.n_expression} expression components")
        keep = list(range(n_identity)) + list(range(self.n_identity, self.n_identity + n_expression))
        return replace(self, basis=self.basis[keep].clone(), n_identity=n_identity)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> MorphableModel:
        """A copy on ``device`` with floating-point fields cast to ``dtype`` (indices stay int64)."""

        def f(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device=device, dtype=dtype)

        def i(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device=device)

        return replace(
            self,
            mean=f(self.mean),
            basis=f(self.basis),
            triangles=i(self.triangles),
            landmarks={k: i(v) for k, v in self.landmarks.items()},
            uv=f(self.uv),
            colour=f(self.colour),
            texture_basis=f(self.texture_basis),
            mirror=i(self.mirror),
        )

    def describe(self) -> str:
        """One line: name, sizes and licence (what the notebooks print)."""
        parts = [
            f"{self.name}: N={self.n_vertices} vertices, F={self.n_triangles} triangles, "
            f"D={self.n_components} components ({self.n_identity} identity + {self.n_expression} expression)"
        ]
        extras = [k for k in ("uv", "colour", "texture_basis", "mirror") if getattr(self, k) is not None]
        if extras:
            parts.append("has " + ", ".join(extras))
        if self.landmarks:
            parts.append("landmarks " + ", ".join(sorted(self.landmarks)))
        parts.append(f"licence: {self.licence}")
        return "; ".join(parts)

    def __repr__(self) -> str:
        return f"MorphableModel({self.describe()})"

    # -------------------------------------------------------------------- I/O
    def save(self, path: str | Path) -> Path:
        """Write the model to a compressed ``.npz`` (float32 arrays, 0-based indices, JSON metadata)."""
        path = Path(path)
        meta = {
            "format": _NPZ_FORMAT,
            "version": _NPZ_VERSION,
            "name": self.name,
            "n_identity": self.n_identity,
            "licence": self.licence,
            "source": self.source,
            "landmark_sets": sorted(self.landmarks),
        }
        arrays: dict[str, np.ndarray] = {
            "meta": np.array(json.dumps(meta)),
            "mean": self.mean.detach().cpu().numpy().astype(np.float32),
            "basis": self.basis.detach().cpu().numpy().astype(np.float32),
            "triangles": self.triangles.cpu().numpy().astype(np.int32),
        }
        for key, idx in self.landmarks.items():
            arrays[f"landmarks__{key}"] = idx.cpu().numpy().astype(np.int32)
        for key in ("uv", "colour", "texture_basis"):
            value = getattr(self, key)
            if value is not None:
                arrays[key] = value.detach().cpu().numpy().astype(np.float32)
        if self.mirror is not None:
            arrays["mirror"] = self.mirror.cpu().numpy().astype(np.int32)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> MorphableModel:
        """Read a model written by :meth:`save`; errors name the file and the problem."""
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(path, "no such file", "Save a model first with MorphableModel.save(path).")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except Exception as exc:  # zipfile/numpy raise many types for corrupt archives
            raise ModelFileError(path, f"not a readable .npz archive ({type(exc).__name__}: {exc})") from exc
        for key in ("meta", "mean", "basis", "triangles"):
            if key not in data:
                raise ModelFileError(path, f"missing array {key!r}; is this a file written by MorphableModel.save?")
        meta = json.loads(str(data["meta"]))
        if meta.get("format") != _NPZ_FORMAT:
            raise ModelFileError(path, f"unexpected format tag {meta.get('format')!r}")
        landmarks = {k[len("landmarks__") :]: v for k, v in data.items() if k.startswith("landmarks__")}
        try:
            return cls(
                name=meta["name"],
                mean=data["mean"],
                basis=data["basis"],
                n_identity=meta["n_identity"],
                triangles=data["triangles"].astype(np.int64),
                landmarks={k: v.astype(np.int64) for k, v in landmarks.items()},
                uv=data.get("uv"),
                colour=data.get("colour"),
                texture_basis=data.get("texture_basis"),
                mirror=None if "mirror" not in data else data["mirror"].astype(np.int64),
                licence=meta.get("licence", "unknown"),
                source=meta.get("source", str(path)),
            )
        except (ShapeError, ValueError) as exc:
            raise ModelFileError(path, f"inconsistent contents: {exc}") from exc

    # ---------------------------------------------------------------- helpers
    def landmark_indices(self, name: str = "aflw21") -> torch.Tensor:
        """Vertex indices of landmark set ``name``; a ``KeyError`` lists the sets the model has."""
        if name not in self.landmarks:
            raise KeyError(f"model {self.name!r} has no landmark set {name!r}; it has {sorted(self.landmarks)}")
        return self.landmarks[name]

    def with_fields(self, **changes: object) -> MorphableModel:
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)
