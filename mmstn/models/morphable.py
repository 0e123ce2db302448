"""The one morphable-model type every chapter uses.

Conventions (every loader converts to these):

* **Frame**: BFM 2009's. Right-handed, x to the viewer's right (the subject's left), y up, z towards the
  viewer. An orthographic camera looks along −z.
* **Units**: millimetres.
* **Basis scaling**: ``basis[k]`` is a principal direction multiplied by its standard deviation, so the
  coefficients follow α ~ N(0, I), the paper's statistical prior (eq. 6).
* **Winding**: triangles are **counter-clockwise seen from the front**, so the usual normal
  (p1 − p0) × (p2 − p0) points out of the face (towards +z for a frontal face), as in OpenGL and trimesh.
  The BFM and the authors' resampled grid are clockwise; their loaders swap two indices (docs/conventions.md §0.10).
* **Indices**: 0-based everywhere (the ``.anl`` and MATLAB readers subtract one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from mmstn.errors import ModelFileError, ShapeError, check_file, check_finite, check_finite_field

__all__ = ["UNIT_SCALE", "MorphableModel", "UnitsError", "check_units", "sample_alpha"]

_NPZ_FORMAT = "mmstn-morphable-model"
_NPZ_VERSION = 1

#: Millimetres per unit, for the ``units`` argument of :meth:`MorphableModel.from_arrays` and mesh loading.
UNIT_SCALE: dict[str, float] = {"mm": 1.0, "cm": 10.0, "m": 1000.0}


class UnitsError(ValueError):
    """A mesh whose size says another length unit than the one stated; ``guess`` is the likely unit or None."""

    def __init__(self, message: str, guess: str | None) -> None:
        super().__init__(message)
        self.guess = guess


def check_units(mean, units: str = "mm", where: str = "mean") -> float:
    """Check that a face's size matches ``units``; return the factor that converts it to millimetres.

    A human face is about 120-200 mm wide (bounding-box width along x, ear to ear). A width 10x or 1000x
    smaller than that range, once converted, says the data are in centimetres or metres and ``units`` is wrong.

    Args:
        mean: vertices, array of shape (N, 3), in ``units``.
        units: ``"mm"``, ``"cm"`` or ``"m"``.
        where: what to name in the error (an argument or a file).

    Returns:
        Millimetres per input unit (1, 10 or 1000).

    Raises:
        ValueError: unknown unit; :class:`UnitsError` (a ValueError) for a size that says another unit (naming
            it and ``units=...``).
    """
    if units not in UNIT_SCALE:
        raise ValueError(f"units={units!r} is not known; use one of {sorted(UNIT_SCALE)}")
    v = np.asarray(mean, dtype=np.float64)
    width = float(np.ptp(v, axis=0).max()) * UNIT_SCALE[units]  # largest extent, mm
    # 30-600 mm accepts a face region or a whole head; outside it the ratio names the likely unit.
    if not 30.0 <= width <= 600.0:
        raw = width / UNIT_SCALE[units]
        guess = next((u for u, k in UNIT_SCALE.items() if 30.0 <= raw * k <= 600.0), None)
        hint = (
            f"it looks like {guess!r}; pass units={guess!r} to convert to millimetres"
            if guess
            else "no unit among mm, cm, m gives a face-sized mesh; check the scale of the data"
        )
        as_mm = f" ({width:g} mm)" if units != "mm" else ""
        raise UnitsError(
            f"{where}: the mesh is {raw:g} {units}{as_mm} across (largest bounding-box side), but a face is about "
            f"120-200 mm; {hint}",
            guess,
        )
    return UNIT_SCALE[units]


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

    # ------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        mean,
        triangles,
        *,
        basis=None,
        std=None,
        n_identity: int | None = None,
        landmarks: dict | None = None,
        uv=None,
        colour=None,
        mirror=None,
        units: str = "mm",
        name: str = "custom",
        licence: str = "unknown",
        source: str = "from arrays",
        check_size: bool = True,
    ) -> MorphableModel:
        """Build a model from plain arrays (NumPy or torch), validating each with an error that names it.

        Args:
            mean: mean shape, (N, 3), in ``units``.
            triangles: (F, 3) integer vertex ids, 0-based, counter-clockwise seen from the front.
            basis: optional shape basis, (3N, K) (x, y, z interleaved per vertex, the BFM layout), (N, 3, K) or
                (K, N, 3) (the model's own layout),
                in ``units`` per unit coefficient. ``None`` gives a mean-only model (K = 0).
            std: optional (K,) standard deviations of the components; folded into the basis so that
                α ~ N(0, I). Leave ``None`` when the basis is already scaled.
            n_identity: how many leading components are identity (default: all K).
            landmarks: ``{set name: vertex ids}``, e.g. ``{"ibug68": [...]}`` (−1 where undefined).
            uv: optional (N, 2) texture coordinates in [0, 1].
            colour: optional (N, 3) per-vertex albedo, RGB in [0, 1].
            mirror: optional (N,) mirror map (an involution).
            units: ``"mm"`` (default), ``"cm"`` or ``"m"``; coordinates are converted to millimetres.
            name, licence, source: metadata.
            check_size: check that the face's size matches ``units`` (see :func:`check_units`).

        Returns:
            A validated :class:`MorphableModel` in millimetres.

        Raises:
            ShapeError / ValueError: naming the argument, the problem and the fix.
        """
        mean_np = np.asarray(mean.detach().cpu() if isinstance(mean, torch.Tensor) else mean)
        if mean_np.ndim != 2 or mean_np.shape[1] != 3 or mean_np.shape[0] < 3:
            raise ShapeError(
                f"mean must have shape (N, 3) with N >= 3, got {mean_np.shape}; pass one row (x, y, z) per vertex"
            )
        if not np.issubdtype(mean_np.dtype, np.number):
            raise ShapeError(f"mean must be numeric, got dtype {mean_np.dtype}")
        mean_np = mean_np.astype(np.float64)
        n = mean_np.shape[0]
        bad = ~np.isfinite(mean_np)
        if bad.any():
            raise ValueError(
                f"mean holds {int(bad.any(axis=1).sum())} vertices with NaN or inf coordinates (first: vertex "
                f"{int(np.argmax(bad.any(axis=1)))}); remove or repair them before building the model"
            )
        scale = check_units(mean_np, units, "mean") if check_size else UNIT_SCALE.get(units, 1.0)
        if units not in UNIT_SCALE:
            raise ValueError(f"units={units!r} is not known; use one of {sorted(UNIT_SCALE)}")

        tri = np.asarray(triangles.cpu() if isinstance(triangles, torch.Tensor) else triangles)
        if tri.ndim != 2 or tri.shape[1] != 3 or tri.shape[0] == 0:
            raise ShapeError(f"triangles must have shape (F, 3) with F >= 1, got {tri.shape}; quads need splitting")
        if not np.issubdtype(tri.dtype, np.integer):
            if np.issubdtype(tri.dtype, np.floating) and np.all(np.isfinite(tri)) and np.all(tri == np.round(tri)):
                tri = tri.astype(np.int64)
            else:
                raise ShapeError(f"triangles must hold integer vertex ids, got dtype {tri.dtype}")
        tri = tri.astype(np.int64)
        if tri.min() < 0 or tri.max() >= n:
            one_based = tri.min() == 1 and tri.max() == n
            raise ShapeError(
                f"triangles index vertices {int(tri.min())}..{int(tri.max())} but mean has {n} vertices; "
                + ("they look 1-based: pass triangles - 1" if one_based else "ids must lie in [0, N)")
            )
        repeated = (tri[:, 0] == tri[:, 1]) | (tri[:, 1] == tri[:, 2]) | (tri[:, 0] == tri[:, 2])
        v = mean_np[tri]
        area2 = np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1)
        # zero area relative to the typical edge length, so the test does not depend on the unit
        edge = float(np.median(np.linalg.norm(v[:, 1] - v[:, 0], axis=1))) or 1.0
        degenerate = repeated | (area2 <= 1e-12 * edge**2)
        if degenerate.any():
            raise ValueError(
                f"triangles holds {int(degenerate.sum())} degenerate (zero-area or repeated-vertex) triangles, first "
                f"at row {int(np.argmax(degenerate))}; drop them, e.g. triangles[~degenerate]"
            )

        if basis is None:
            if std is not None:
                raise ValueError("std was given without a basis; pass basis=(3N, K) or drop std")
            b = np.zeros((0, n, 3))
        else:
            b = np.asarray(basis.detach().cpu() if isinstance(basis, torch.Tensor) else basis, dtype=np.float64)
            if b.ndim == 2 and b.shape[0] == 3 * n:
                b = b.reshape(n, 3, -1)
            elif b.ndim == 3 and b.shape[1:] == (n, 3) and b.shape[:2] != (n, 3):
                b = np.moveaxis(b, 0, -1)  # (K, N, 3), the model's own layout (e.g. orthogonalise_basis)
            elif not (b.ndim == 3 and b.shape[:2] == (n, 3)):
                raise ShapeError(
                    f"basis must have shape (3N, K) = ({3 * n}, K), (N, 3, K) = ({n}, 3, K) or (K, N, 3) = "
                    f"(K, {n}, 3) for the {n} vertices of mean, got {b.shape}; a (K, 3N) basis needs .T"
                )
            if not np.isfinite(b).all():
                raise ValueError("basis holds NaN or inf values; repair the basis before building the model")
            b = np.moveaxis(b, 2, 0)  # (K, N, 3)
            if std is not None:
                s = np.asarray(std, dtype=np.float64).reshape(-1)
                if s.shape[0] != b.shape[0]:
                    raise ShapeError(f"std has {s.shape[0]} entries but basis has K={b.shape[0]} components")
                if not np.isfinite(s).all() or (s < 0).any():
                    raise ValueError("std must be finite and >= 0 (standard deviations, not variances)")
                b = b * s[:, None, None]
        k = b.shape[0]
        n_id = k if n_identity is None else int(n_identity)
        if not 0 <= n_id <= k:
            raise ValueError(f"n_identity={n_id} must lie in [0, K={k}]")

        sets: dict[str, np.ndarray] = {}
        for key, ids in (landmarks or {}).items():
            a = np.asarray(ids.cpu() if isinstance(ids, torch.Tensor) else ids)
            if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
                raise ShapeError(
                    f"landmarks[{key!r}] must be a 1-D list of integer vertex ids, got {a.shape} {a.dtype}"
                )
            a = a.astype(np.int64)
            if a.size and (a.min() < -1 or a.max() >= n):
                raise ShapeError(f"landmarks[{key!r}] holds ids outside [-1, {n}) (−1 marks an undefined point)")
            sets[str(key)] = a

        uv_np = None
        if uv is not None:
            uv_np = np.asarray(uv.detach().cpu() if isinstance(uv, torch.Tensor) else uv, dtype=np.float64)
            if uv_np.shape != (n, 2):
                raise ShapeError(f"uv must have shape ({n}, 2), one (u, v) per vertex, got {uv_np.shape}")
            if not np.isfinite(uv_np).all():
                raise ValueError("uv holds NaN or inf values")
            if uv_np.min() < -1e-6 or uv_np.max() > 1 + 1e-6:
                raise ValueError(f"uv must lie in [0, 1], got {uv_np.min():g}..{uv_np.max():g}; normalise it first")
        colour_np = None
        if colour is not None:
            colour_np = np.asarray(colour.detach().cpu() if isinstance(colour, torch.Tensor) else colour, np.float64)
            if colour_np.shape != (n, 3):
                raise ShapeError(f"colour must have shape ({n}, 3), got {colour_np.shape}")
            if not np.isfinite(colour_np).all():
                raise ValueError("colour holds NaN or inf values")
            if colour_np.max() > 1.0 + 1e-6:
                raise ValueError("colour must be RGB in [0, 1]; divide 0-255 values by 255")
        return cls(
            name=name,
            mean=torch.from_numpy(mean_np * scale).float(),
            basis=torch.from_numpy(b * scale).float(),
            n_identity=n_id,
            triangles=torch.from_numpy(tri),
            landmarks=sets,
            uv=None if uv_np is None else torch.from_numpy(uv_np).float(),
            colour=None if colour_np is None else torch.from_numpy(colour_np).float(),
            mirror=mirror,
            licence=licence,
            source=source,
        )

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
        if d == 0:  # θ without shape components: the mean, batched
            x = self.mean.expand(alpha.shape[0], -1, -1).clone()
            return x[0] if squeeze else x
        flat = self.basis[:d].reshape(d, self.n_vertices * 3)
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

        ``subset(5, 5)`` builds the paper's D = 10 model (docs/conventions.md §3.2–3.3).
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
        check_file(path, "model file")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except Exception as exc:  # zipfile/numpy raise many types for corrupt archives
            raise ModelFileError(path, f"not a readable .npz archive ({type(exc).__name__}: {exc})") from exc
        for key in ("meta", "mean", "basis", "triangles"):
            if key not in data:
                raise ModelFileError(path, f"missing array {key!r}; is this a file written by MorphableModel.save?")
        try:
            meta = json.loads(str(data["meta"]))
        except ValueError as exc:
            raise ModelFileError(
                path, f"the 'meta' entry is not JSON ({exc})", "Write the file with MorphableModel.save(path)"
            ) from exc
        if not isinstance(meta, dict) or meta.get("format") != _NPZ_FORMAT:
            meta = meta if isinstance(meta, dict) else {}
            raise ModelFileError(path, f"unexpected format tag {meta.get('format')!r}")
        landmarks = {k[len("landmarks__") :]: v for k, v in data.items() if k.startswith("landmarks__")}
        for key, value in data.items():
            if key != "meta":
                check_finite_field(path, key, value)
        missing = [k for k in ("name", "n_identity") if k not in meta]
        if missing:
            raise ModelFileError(path, f"the 'meta' entry lacks {missing}", "Write it with MorphableModel.save(path)")
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
            import difflib

            close = difflib.get_close_matches(name, list(self.landmarks), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise KeyError(
                f"model {self.name!r} has no landmark set {name!r}{hint}; it has {sorted(self.landmarks) or 'none'}"
            )
        return self.landmarks[name]

    def with_fields(self, **changes: object) -> MorphableModel:
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)


def sample_alpha(model: MorphableModel, n: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    """Draw ``n`` coefficient vectors from the prior α ~ N(0, scale²·I); tensor of shape (n, D)."""
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(n, model.n_components, generator=g, dtype=model.dtype)
