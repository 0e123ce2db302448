"""θ, the STN's parameters, as one type that carries its own meaning.

Layout of the plain tensor form (the authors' ``vl_nnsplit.m``), one row per image, width 6 + D:

=========  =======  ===============================================================
columns    name     meaning
=========  =======  ===============================================================
0:3        r        axis-angle rotation, radians (R = Rodrigues(r))
3:5        t        2-D translation, pixels, in the *label frame* (1-based column, y up)
5          logs     log-scale; s = 0.99^logs (base ``"0.99"``) or exp(logs) (base ``"exp"``), px per mm
6:6+D      α        shape coefficients, α ~ N(0, I)
=========  =======  ===============================================================

A plain tensor says nothing about which base its logs column uses; :class:`Theta` does, so the STN can
convert instead of silently mis-scaling (:meth:`Theta.with_scale_base`).

Euler angles (:meth:`Theta.from_euler`, :meth:`Theta.to_euler`) are in **degrees** with the convention
R = Rz(roll)·Ry(yaw)·Rx(pitch) of :mod:`mmstn.transforms` (pitch about x first, then yaw about y, then
roll about z, column vectors).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from mmstn.errors import ShapeError, check_finite
from mmstn.layers.scale import ScaleBase, scale_rate
from mmstn.transforms import axis_angle_to_matrix, euler_to_matrix, matrix_to_axis_angle, matrix_to_euler

__all__ = [
    "LABEL_FRAME",
    "THETA_ALPHA",
    "THETA_LOGS",
    "THETA_R",
    "THETA_T",
    "Theta",
    "ThetaConvention",
    "make_theta",
    "split_theta",
    "theta_size",
]

THETA_R = slice(0, 3)
THETA_T = slice(3, 5)
THETA_LOGS = slice(5, 6)
THETA_ALPHA = slice(6, None)

#: The frame of t: label-frame pixels (1-based column index, y up), the frame of the STN's points.
LABEL_FRAME = "label"


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


def _base_name(base: ScaleBase | str | float) -> ScaleBase | float:
    scale_rate(base)  # validates
    if isinstance(base, (int, float)) and not isinstance(base, bool):
        return float(base)
    return ScaleBase(base)


@dataclass(frozen=True)
class ThetaConvention:
    """What gives θ's numbers their meaning.

    Attributes:
        scale_base: s = base^logs: ``"exp"`` (the paper), ``"0.99"`` (the authors' code) or a float.
        frame: the frame of t; only ``"label"`` (label-frame pixels, 1-based column, y up) exists.
    """

    scale_base: ScaleBase | str | float = ScaleBase.MATCONVNET
    frame: str = LABEL_FRAME

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale_base", _base_name(self.scale_base))
        if self.frame != LABEL_FRAME:
            raise ValueError(f"theta frame must be {LABEL_FRAME!r}, got {self.frame!r}")

    @property
    def scale_rate(self) -> float:
        """κ with s = exp(κ·logs)."""
        return scale_rate(self.scale_base)

    @classmethod
    def of(cls, config: object) -> ThetaConvention:
        """The convention of an :class:`~mmstn.stn.STNConfig`, an STN, a Theta or a convention."""
        if isinstance(config, ThetaConvention):
            return config
        for obj in (config, getattr(config, "config", None), getattr(config, "convention", None)):
            if isinstance(obj, ThetaConvention):
                return obj
            if obj is not None and hasattr(obj, "scale_base") and not isinstance(obj, type):
                return cls(scale_base=obj.scale_base)
        if isinstance(config, (str, float, ScaleBase)):
            return cls(scale_base=config)
        raise TypeError(f"cannot read a theta convention from {type(config).__name__}")


ConventionLike = ThetaConvention | ScaleBase | str | float | object


@dataclass(frozen=True)
class Theta:
    """A batch of STN parameters and their convention.

    Attributes:
        r: (B, 3) axis-angle rotation, radians.
        t: (B, 2) translation, label-frame pixels.
        logs: (B, 1) log-scale (s = base^logs, px per mm).
        alpha: (B, D) shape coefficients.
        convention: :class:`ThetaConvention` (scale base and frame of t).
    """

    r: torch.Tensor
    t: torch.Tensor
    logs: torch.Tensor
    alpha: torch.Tensor
    convention: ThetaConvention = ThetaConvention()

    def __post_init__(self) -> None:
        if self.logs.ndim == 1:
            object.__setattr__(self, "logs", self.logs[:, None])
        b = self.r.shape[0] if self.r.ndim == 2 else -1
        for name, x, width in (("r", self.r, 3), ("t", self.t, 2), ("logs", self.logs, 1)):
            if x.ndim != 2 or x.shape[1] != width or x.shape[0] != b:
                raise ShapeError(f"Theta.{name} must have shape (B, {width}) with one B, got {tuple(x.shape)}")
        if self.alpha.ndim != 2 or self.alpha.shape[0] != b:
            raise ShapeError(f"Theta.alpha must have shape (B, D) with B = {b}, got {tuple(self.alpha.shape)}")
        if not isinstance(self.convention, ThetaConvention):
            object.__setattr__(self, "convention", ThetaConvention.of(self.convention))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_tensor(cls, x: torch.Tensor, convention: ConventionLike = None) -> Theta:
        """θ (B, 6 + D) (or (6 + D,), one image) → Theta. ``convention``: a :class:`ThetaConvention`,
        a scale base, an STNConfig or an STN (default: the faithful ``"0.99"`` base)."""
        if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
            raise ShapeError(f"theta must be a floating-point tensor, got {type(x).__name__}")
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] < 6:
            raise ShapeError(f"theta must have shape (B, 6 + D), got {tuple(x.shape)}")
        conv = ThetaConvention() if convention is None else ThetaConvention.of(convention)
        return cls(x[:, THETA_R], x[:, THETA_T], x[:, THETA_LOGS], x[:, THETA_ALPHA], conv)

    @classmethod
    def from_euler(
        cls,
        yaw: torch.Tensor | Sequence[float] | float,
        pitch: torch.Tensor | Sequence[float] | float,
        roll: torch.Tensor | Sequence[float] | float,
        t: torch.Tensor | Sequence[float],
        *,
        scale: torch.Tensor | Sequence[float] | float | None = None,
        logs: torch.Tensor | Sequence[float] | float | None = None,
        alpha: torch.Tensor | None = None,
        n_components: int = 0,
        convention: ConventionLike = None,
        dtype: torch.dtype = torch.float32,
    ) -> Theta:
        """Theta from Euler angles in **degrees**, R = Rz(roll)·Ry(yaw)·Rx(pitch).

        Args:
            yaw, pitch, roll: (B,) or scalars, degrees.
            t: (B, 2) or (2,) label-frame pixels.
            scale: s in px per mm (B,) or scalar; or give ``logs`` directly (one of the two, default s = 1).
            alpha: (B, D); default zeros with D = ``n_components``.
            convention: scale base (default ``"0.99"``).
        """
        conv = ThetaConvention() if convention is None else ThetaConvention.of(convention)
        ang = [torch.as_tensor(a, dtype=torch.float64).reshape(-1) for a in (yaw, pitch, roll)]
        ang = list(torch.broadcast_tensors(*ang))
        tt = torch.as_tensor(t, dtype=torch.float64)
        tt = tt.reshape(1, 2) if tt.ndim == 1 else tt
        if scale is not None and logs is not None:
            raise ValueError("give either scale or logs, not both")
        if logs is None:
            s = torch.as_tensor(1.0 if scale is None else scale, dtype=torch.float64).reshape(-1)
            if (s <= 0).any() or not torch.isfinite(s).all():
                raise ValueError(f"scale must be positive and finite (px per mm), got {s.tolist()}")
            lg = torch.log(s) / conv.scale_rate
        else:
            lg = torch.as_tensor(logs, dtype=torch.float64).reshape(-1)
        b = max(ang[0].shape[0], tt.shape[0], lg.shape[0])  # every argument broadcasts to one batch
        ang = [x.expand(b) for x in ang]
        r = matrix_to_axis_angle(euler_to_matrix(*(torch.deg2rad(x) for x in ang)))
        a = torch.zeros(b, n_components, dtype=torch.float64) if alpha is None else alpha
        return cls(r.to(dtype), tt.expand(b, 2).to(dtype), lg.expand(b)[:, None].to(dtype), a.to(dtype), conv)

    # ------------------------------------------------------------------ views
    def tensor(self) -> torch.Tensor:
        """θ (B, 6 + D) in this Theta's own convention."""
        return make_theta(self.r, self.t, self.logs, self.alpha)

    as_tensor = tensor

    def as_tensor_for(self, convention: ConventionLike) -> torch.Tensor:
        """θ (B, 6 + D) expressed in another convention (e.g. an STN's): the logs column is converted."""
        return self.with_scale_base(ThetaConvention.of(convention).scale_base).tensor()

    @property
    def scale_base(self) -> ScaleBase | float:
        return self.convention.scale_base

    @property
    def scale(self) -> torch.Tensor:
        """s = base^logs (B, 1), pixels per mm."""
        return torch.exp(self.convention.scale_rate * self.logs)

    @property
    def rotation(self) -> torch.Tensor:
        """R (B, 3, 3)."""
        return axis_angle_to_matrix(self.r)

    @property
    def n_components(self) -> int:
        return int(self.alpha.shape[1])

    def to_euler(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(yaw, pitch, roll), each (B,), degrees, for R = Rz(roll)·Ry(yaw)·Rx(pitch)."""
        y, p, ro = matrix_to_euler(axis_angle_to_matrix(self.r.double()))
        return tuple(torch.rad2deg(a).to(self.r.dtype) for a in (y, p, ro))  # type: ignore[return-value]

    def with_scale_base(self, base: ScaleBase | str | float) -> Theta:
        """The same pose with logs re-expressed for another base (s is unchanged): logs′ = logs·κ/κ′."""
        new = ThetaConvention(scale_base=base, frame=self.convention.frame)
        if new.scale_rate == self.convention.scale_rate:
            return replace(self, convention=new)
        return replace(self, logs=self.logs * (self.convention.scale_rate / new.scale_rate), convention=new)

    def check(self, n_components: int | None = None) -> Theta:
        """Raise unless θ is finite (and has D = ``n_components``)."""
        if n_components is not None and self.n_components != n_components:
            raise ShapeError(f"theta has D = {self.n_components} shape coefficients, the model has {n_components}")
        check_finite("theta", self.tensor())
        return self

    # ------------------------------------------------------------------ batching and devices
    def __len__(self) -> int:
        return int(self.r.shape[0])

    def __getitem__(self, index: int | slice | torch.Tensor | Sequence[int]) -> Theta:
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return Theta(self.r[index], self.t[index], self.logs[index], self.alpha[index], self.convention)

    @staticmethod
    def cat(items: Sequence[Theta]) -> Theta:
        """Concatenate along the batch; every item is converted to the first one's scale base."""
        if not items:
            raise ValueError("Theta.cat needs at least one Theta")
        base = items[0].scale_base
        conv = [it.with_scale_base(base) for it in items]
        return Theta(*(torch.cat([getattr(c, f) for c in conv]) for f in ("r", "t", "logs", "alpha")),
                     items[0].convention)

    def _map(self, fn) -> Theta:
        return Theta(fn(self.r), fn(self.t), fn(self.logs), fn(self.alpha), self.convention)

    def to(self, *args, **kwargs) -> Theta:
        """``Tensor.to`` on every field (device and/or dtype)."""
        return self._map(lambda x: x.to(*args, **kwargs))

    def detach(self) -> Theta:
        return self._map(lambda x: x.detach())

    def clone(self) -> Theta:
        return self._map(lambda x: x.clone())

    @property
    def dtype(self) -> torch.dtype:
        return self.r.dtype

    @property
    def device(self) -> torch.device:
        return self.r.device

    def __repr__(self) -> str:
        base = self.scale_base.value if isinstance(self.scale_base, ScaleBase) else self.scale_base
        return f"Theta(B={len(self)}, D={self.n_components}, scale_base={base!r}, frame={self.convention.frame!r})"


def identity_logs(scale: float, base: ScaleBase | str | float) -> float:
    """logs with base^logs = ``scale`` (px per mm)."""
    return math.log(scale) / scale_rate(base)
