"""The localiser: a CNN that maps an image to θ = (r, t, logs, α) (paper section 2.1, docs/conventions.md §6).

Two trunks:

* :class:`VGGFaceTrunk`, the paper's VGG-16 (VGG-Face) trunk up to fc7 + ReLU, with loaders for the user's
  VGG-Face weights (MatConvNet ``vgg-face.mat`` and the common PyTorch conversion ``vgg_face_dag.pth``).
  Too slow for CPU training (about 10 s per step of 8 images on 2 cores).
* :class:`SmallTrunk`, a compact convolutional trunk on a downscaled input, trained from scratch; the
  default, practical on a CPU.

The θ layer (:class:`ThetaHead`) is initialised as the authors do: tiny random weights and biases that put
a frontal (r = 0), centred (t at the image centre), right-sized face (logs chosen so that s = s₀) with the
mean shape (α = 0).

Images everywhere in mmstn are float tensors (B, 3, H, W), RGB in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mmstn.errors import ModelFileError, ShapeError
from mmstn.models.morphable import MorphableModel
from mmstn.stn import STN3DMM, STNConfig
from mmstn.theta import THETA_LOGS, THETA_T, Theta, ThetaConvention

__all__ = [
    "VGG_FACE_MEAN_RGB",
    "Localiser",
    "SmallTrunk",
    "ThetaHead",
    "VGGFaceTrunk",
    "load_vgg_face_weights",
]

#: Mean RGB (0–255) of the VGG-Face training images (MatConvNet ``normalization.averageImage``).
VGG_FACE_MEAN_RGB: tuple[float, float, float] = (129.1863, 104.7624, 93.5940)



class ThetaHead(nn.Module):
    """The θ layer: a linear map from trunk features to θ (6 + D values), initialised at a frontal face.

    Args:
        in_features: trunk feature size.
        n_alpha: D, the number of shape coefficients.
        centre: (x, y) of the image centre in the label frame the grid layer uses (112, 112 for the
            authors' 224² frame).
        logs0: the log-scale bias (s = scale_fn(logs0) is the initial scale).
        weight_std_factor: the weights are drawn with std sqrt(2 / in_features) times this factor
            (the authors' ``xavier(1, 1, 4096, 16) * 0.001``).

    Shape:
        - Input: (B, in_features)
        - Output: (B, 6 + D)
    """

    def __init__(
        self,
        in_features: int,
        n_alpha: int,
        centre: tuple[float, float] = (112.0, 112.0),
        logs0: float = 0.0,
        weight_std_factor: float = 1e-3,
    ) -> None:
        super().__init__()
        self.n_alpha = n_alpha
        self.linear = nn.Linear(in_features, 6 + n_alpha)
        with torch.no_grad():
            self.linear.weight.normal_(0.0, math.sqrt(2.0 / in_features) * weight_std_factor)
            self.linear.bias.zero_()
            self.linear.bias[THETA_T] = torch.tensor(centre, dtype=self.linear.bias.dtype)
            self.linear.bias[THETA_LOGS] = logs0

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)


class SmallTrunk(nn.Module):
    """A compact CNN for CPU training: resize to ``input_size``², five stride-2 conv blocks, global pooling.

    Args:
        input_size: the side the image is resized to (antialiased) before the convolutions.
        widths: channels of the five blocks; the last is the feature size.

    Shape:
        - Input: (B, 3, H, W), RGB in [0, 1]
        - Output: (B, widths[-1])
    """

    def __init__(self, input_size: int = 112, widths: Sequence[int] = (32, 64, 96, 128, 192)) -> None:
        super().__init__()
        self.input_size = input_size
        layers: list[nn.Module] = []
        c_in = 3
        for c in widths:
            layers += [
                nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
                nn.Conv2d(c, c, 3, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
            ]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.out_features = c_in

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ShapeError(f"image must have shape (B, 3, H, W), got {tuple(image.shape)}")
        x = image
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              align_corners=False, antialias=True)
        x = (x - 0.5) / 0.25  # roughly zero-mean, unit-variance inputs
        return self.features(x).mean(dim=(-2, -1))


#: VGG-16 convolution layout: (name, out_channels) per conv, "M" for max-pooling.
_VGG16: tuple[tuple[str, int] | str, ...] = (
    ("conv1_1", 64), ("conv1_2", 64), "M",
    ("conv2_1", 128), ("conv2_2", 128), "M",
    ("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256), "M",
    ("conv4_1", 512), ("conv4_2", 512), ("conv4_3", 512), "M",
    ("conv5_1", 512), ("conv5_2", 512), ("conv5_3", 512), "M",
)  # fmt: skip


class VGGFaceTrunk(nn.Module):
    """VGG-16 as in VGG-Face, up to fc7 + ReLU (fc8 and the softmax removed, as the authors do).

    Layer names follow the MatConvNet/``vgg_face_dag`` naming (``conv1_1`` … ``conv5_3``, ``fc6``, ``fc7``)
    so that weight files map one to one. fc6 and fc7 are convolutions (7×7 and 1×1), as in MatConvNet.

    Args:
        width_divisor: divide every channel count (for tiny test networks; 1 for the real one).

    Shape:
        - Input: (B, 3, 224, 224), RGB in [0, 1] (converted to the 0–255, mean-subtracted input VGG-Face
          expects; the authors fed raw 0–255 without the mean, ``subtract_mean=False`` reproduces that).
        - Output: (B, 4096 / width_divisor)
    """

    def __init__(self, width_divisor: int = 1, subtract_mean: bool = True) -> None:
        super().__init__()
        self.subtract_mean = subtract_mean
        self.register_buffer("mean_rgb", torch.tensor(VGG_FACE_MEAN_RGB).view(1, 3, 1, 1), persistent=False)
        self.convs = nn.ModuleDict()
        self._order: list[str] = []
        c_in = 3
        for item in _VGG16:
            if item == "M":
                self._order.append("M")
                continue
            name, c = item  # type: ignore[misc]
            c = max(1, c // width_divisor)
            self.convs[name] = nn.Conv2d(c_in, c, 3, padding=1)
            self._order.append(name)
            c_in = c
        fc = max(1, 4096 // width_divisor)
        self.convs["fc6"] = nn.Conv2d(c_in, fc, 7)
        self.convs["fc7"] = nn.Conv2d(fc, fc, 1)
        self.out_features = fc

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim != 4 or image.shape[1:] != (3, 224, 224):
            raise ShapeError(f"VGG-Face expects images of shape (B, 3, 224, 224), got {tuple(image.shape)}")
        x = image * 255.0
        if self.subtract_mean:
            x = x - self.mean_rgb
        for name in self._order:
            x = F.max_pool2d(x, 2) if name == "M" else F.relu(self.convs[name](x))
        x = F.relu(self.convs["fc6"](x))
        x = F.relu(self.convs["fc7"](x))
        return x.flatten(1)


class Localiser(nn.Module):
    """Trunk + θ head: image (B, 3, H, W) in [0, 1] → θ (B, 6 + D).

    Args:
        trunk, head: the feature extractor and the θ layer.
        convention: the :class:`~mmstn.theta.ThetaConvention` (scale base, frame of t) its θ is trained in;
            an STNConfig or a scale base is accepted. ``forward`` returns the plain tensor (for the training
            loop); :meth:`predict` returns a :class:`~mmstn.theta.Theta` carrying the convention, and
            :meth:`make_stn` an STN that reads the plain tensor the same way.
    """

    def __init__(self, trunk: nn.Module, head: ThetaHead, convention: object = None) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = head
        self.convention: ThetaConvention | None = None if convention is None else ThetaConvention.of(convention)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(image))

    def _need_convention(self) -> ThetaConvention:
        if self.convention is None:
            raise ValueError(
                "this Localiser has no θ convention (scale base); build it with Localiser(..., convention=stn.config) "
                "or load it with mmstn.train.checkpoint.load_pretrained / load_weights"
            )
        return self.convention

    def predict(self, image: torch.Tensor) -> Theta:
        """image (B, 3, H, W) in [0, 1] → :class:`~mmstn.theta.Theta` in this localiser's convention."""
        return Theta.from_tensor(self(image), self._need_convention())

    def make_stn(self, model: MorphableModel, config: STNConfig | None = None) -> STN3DMM:
        """An :class:`~mmstn.stn.STN3DMM` on ``model`` whose scale base is this localiser's (``config``: an
        STNConfig whose other settings are kept, default faithful)."""
        conv = self._need_convention()
        cfg = STNConfig.faithful() if config is None else config
        return STN3DMM(model, replace(cfg, scale_base=conv.scale_base))

    def parameter_groups(self, lr: float, head_weight_mult: float = 4.0, head_bias_mult: float = 8.0,
                         weight_decay: float = 5e-4) -> list[dict]:
        """Optimiser groups with the authors' learning-rate multipliers (θ weights ×4, θ bias ×8) and no
        weight decay on the θ bias (docs/conventions.md §6)."""
        return [
            {"params": list(self.trunk.parameters()), "lr": lr, "weight_decay": weight_decay},
            {"params": [self.head.linear.weight], "lr": lr * head_weight_mult, "weight_decay": weight_decay},
            {"params": [self.head.linear.bias], "lr": lr * head_bias_mult, "weight_decay": 0.0},
        ]


# ------------------------------------------------------------------------------------ weight loading
def _state_from_pth(path: Path) -> dict[str, np.ndarray]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelFileError(path, f"not a readable PyTorch state dict ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise ModelFileError(path, f"expected a state dict (a mapping of tensors), found {type(state).__name__}")
    return {k: v.numpy() for k, v in state.items() if isinstance(v, torch.Tensor)}


def _state_from_matconvnet(path: Path) -> dict[str, np.ndarray]:
    """Filters come back in MatConvNet's H × W × C_in × C_out layout (singleton dims may be squeezed)."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as exc:
        raise ModelFileError(path, f"not a readable MATLAB file ({type(exc).__name__}: {exc})") from exc
    state: dict[str, np.ndarray] = {}
    if "params" in mat:  # DagNN: params(i) = {name: 'conv1_1f' / 'conv1_1b', value}
        for p in np.atleast_1d(mat["params"]):
            name = str(p.name)
            kind = {"f": "weight", "b": "bias"}.get(name[-1])
            if kind:
                state[f"{name[:-1]}.{kind}"] = np.asarray(p.value, dtype=np.float32)
    elif "layers" in mat:  # SimpleNN: layers{i} = {name, type, weights: {filters, biases}}
        for layer in np.atleast_1d(mat["layers"]):
            if getattr(layer, "type", "") == "conv":
                filters, biases = layer.weights
                state[f"{layer.name}.weight"] = np.asarray(filters, dtype=np.float32)
                state[f"{layer.name}.bias"] = np.asarray(biases, dtype=np.float32)
    else:
        raise ModelFileError(path, "neither a MatConvNet SimpleNN ('layers') nor DagNN ('params') network")
    return state


def load_vgg_face_weights(trunk: VGGFaceTrunk, path: str | Path) -> VGGFaceTrunk:
    """Load VGG-Face weights into ``trunk`` from ``vgg_face_dag.pth`` or MatConvNet ``vgg-face.mat``.

    Fully connected weights stored as matrices (fc6: 4096 × 25088 in ``vgg_face_dag.pth``) are reshaped
    to the convolution layout (4096, 512, 7, 7); the C, H, W flattening order makes that exact. fc8 is
    ignored. Raises :class:`ModelFileError` naming the file and the first missing or mis-shaped tensor.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(path, "no such file")
    matconvnet = path.suffix == ".mat"
    raw = _state_from_matconvnet(path) if matconvnet else _state_from_pth(path)
    own = trunk.convs.state_dict()
    new: dict[str, torch.Tensor] = {}
    for key, target in own.items():
        if key not in raw:
            raise ModelFileError(path, f"missing tensor {key!r} (found {sorted(raw)[:6]}...)")
        value = raw[key]
        if matconvnet and value.size == target.numel() and target.ndim == 4:
            # H × W × C_in × C_out → C_out × C_in × H × W (dropping singleton dims keeps the element order)
            o, i, kh, kw = target.shape
            value = value.reshape(kh, kw, i, o).transpose(3, 2, 0, 1)
        if value.shape != tuple(target.shape):
            if value.size == target.numel():
                value = value.reshape(tuple(target.shape))
            else:
                raise ModelFileError(
                    path, f"tensor {key!r} has shape {value.shape}, the trunk expects {tuple(target.shape)}"
                )
        new[key] = torch.from_numpy(np.ascontiguousarray(value)).to(target.dtype)
    trunk.convs.load_state_dict(new)
    return trunk
