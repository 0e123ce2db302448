"""Checkpoints (full training state, written atomically), weight files, and the shipped pretrained localiser.

Two file kinds, both ``torch.save`` dicts readable with ``torch.load(weights_only=True)``:

* **training checkpoint** (``checkpoint.pt``): ``format`` = :data:`CHECKPOINT_FORMAT`, ``config`` (the
  :class:`~mmstn.train.config.TrainConfig` as a dict), ``step``, ``model``, ``optimizer``, ``scheduler``,
  ``scaler``, ``rng`` (Python, NumPy, torch, CUDA), ``sampler`` (what positions the data stream),
  ``elapsed_s``;
* **weights** (``weights.pt``, the shipped ``mmstn/checkpoints/<name>.pt``): ``format`` =
  :data:`WEIGHTS_FORMAT`, ``config``, ``model`` (the localiser's state dict), ``metrics``.

Every reader fails with a :class:`CheckpointError` that names the file and the problem: missing, a
folder, empty, unreadable or truncated, altered after it was written, not an mmstn file, written by a
different configuration, or holding tensors of the wrong shape.

Integrity (torch.load does not check the zip archive's CRCs, so a damaged tensor would load silently):

* every file mmstn writes carries ``sha256``, a SHA-256 digest of its whole content (every tensor's dtype,
  shape and bytes, every number and string, :func:`content_digest`) computed before writing; a reader
  recomputes it from what it loaded and refuses a file whose digest differs. Being inside the file, the
  digest is replaced with it by the one atomic rename, so a kill can never leave file and digest apart;
* a reader also checks the CRC-32 of every stored zip entry, which catches any altered or truncated byte
  of the stored data, also in files without a digest;
* a ``<file>.sha256`` sidecar (``sha256sum`` format: the hex digest of the file's bytes, then its name),
  when present beside a file, must match the file's bytes. The shipped ``mmstn/checkpoints/<name>.pt``
  predate the embedded digest and carry such a sidecar; :func:`load_pretrained` always requires it.
  Files with neither (written by an older mmstn) load after the CRC check only.

Writes go to a temporary file unique to the process (``<name>.<pid>.<random>.tmp``), are flushed to disk
and renamed over the target, so two writers never share a temporary file and a reader never sees half a
file.
"""

from __future__ import annotations

import hashlib
import zipfile
from contextlib import ExitStack
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmstn.errors import ModelFileError
from mmstn.localiser import Localiser
from mmstn.runtime import atomic_write
from mmstn.stn import STN3DMM
from mmstn.train.config import RESUME_MUTABLE_FIELDS, TrainConfig, config_differences
from mmstn.train.model import build_model

__all__ = [
    "CHECKPOINT_FORMAT",
    "WEIGHTS_FORMAT",
    "CheckpointError",
    "available_pretrained",
    "content_digest",
    "file_sha256",
    "load_pretrained",
    "load_training_checkpoint",
    "load_weights",
    "pretrained_metrics",
    "save_training_checkpoint",
    "save_weights",
    "write_sidecar",
]

CHECKPOINT_FORMAT = "mmstn-train-checkpoint"
WEIGHTS_FORMAT = "mmstn-localiser-weights"
FORMAT_VERSION = 1
_PACKAGE_DIR = "checkpoints"


class CheckpointError(ModelFileError):
    """A checkpoint or weight file is missing, unreadable, of another configuration or of the wrong shapes."""

    def __init__(self, path: str | Path, problem: str, hint: str | None = None) -> None:
        super().__init__(path, problem, hint or "Check the path, or delete the file to start training afresh")


_DAMAGED_HINT = (
    "Delete it and resume from an earlier copy, or start the run afresh (--restart, or train(..., resume=False)); "
    "for a weight file, restore a good copy or retrain"
)
DIGEST_KEY = "sha256"
SIDECAR_SUFFIX = ".sha256"


# ------------------------------------------------------------------------------------------ integrity
def _feed(h: Any, obj: Any) -> None:
    """Hash ``obj`` into ``h`` in a canonical order (dict keys sorted), tagging each kind of node so that
    differently structured payloads cannot collide."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(obj.shape)}".encode())
        if t.numel():
            h.update(t.view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for k in sorted(obj, key=repr):
            _feed(h, repr(k))
            _feed(h, obj[k])
    elif isinstance(obj, (list, tuple)):  # the same tag: torch.load may hand a tuple back as either
        h.update(f"L{len(obj)}".encode())
        for v in obj:
            _feed(h, v)
    else:
        text = repr(obj).encode()
        h.update(f"S{len(text)}:".encode() + text)


def content_digest(obj: dict[str, Any]) -> str:
    """SHA-256 (hex) of a checkpoint dict's content, leaving out its own ``sha256`` entry."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in obj.items() if k != DIGEST_KEY})
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_sidecar(path: str | Path) -> Path:
    """Write ``<path>.sha256`` (``sha256sum`` format) for the file's current bytes; returns the sidecar."""
    path = Path(path)
    side = path.with_name(path.name + SIDECAR_SUFFIX)
    _atomic_write_bytes(f"{file_sha256(path)}  {path.name}\n".encode(), side)
    return side


def _sidecar_digest(path: Path, text: str) -> str:
    digest = text.split()[0].lower() if text.split() else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise CheckpointError(path, "its checksum file is not a SHA-256 digest",
                              f"Delete {path.name}{SIDECAR_SUFFIX} or regenerate it with sha256sum")
    return digest


def _check_sidecar(path: Path, text: str) -> None:
    expected = _sidecar_digest(path, text)
    actual = file_sha256(path)
    if actual != expected:
        raise CheckpointError(
            path, f"its bytes do not match their recorded SHA-256 (expected {expected[:12]}…, found {actual[:12]}…): "
            "the file was altered or damaged after it was written", _DAMAGED_HINT,
        )


def _check_zip(path: Path) -> None:
    """Verify the CRC-32 of every stored entry (torch.load does not)."""
    if not zipfile.is_zipfile(path):
        return  # not torch's zip format (or truncated before the central directory): torch.load decides
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(path, f"truncated or corrupt archive ({type(exc).__name__}: {exc or 'no detail'})",
                              _DAMAGED_HINT) from exc
    if bad is not None:
        raise CheckpointError(path, f"stored entry {bad!r} fails its CRC check: the file was altered or damaged "
                              "after it was written", _DAMAGED_HINT)


# ------------------------------------------------------------------------------------------ writing
def _atomic_write_bytes(data: bytes, path: Path) -> None:
    with atomic_write(path, fsync=True) as fh:
        fh.write(data)


def _atomic_save(obj: dict, path: Path) -> None:
    """Add the content digest, torch.save to a unique temporary file, flush to disk, then rename over
    ``path`` (never a half-written file; the temporary file is removed if anything fails)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {**obj, DIGEST_KEY: content_digest(obj)}
    with atomic_write(path, fsync=True) as fh:
        torch.save(obj, fh)
    # a sidecar left from an earlier file of this name would now contradict it
    path.with_name(path.name + SIDECAR_SUFFIX).unlink(missing_ok=True)


def _portable_rng(state: dict[str, Any]) -> dict[str, Any]:
    """RNG states as tensors and plain numbers (loadable with ``weights_only=True``)."""
    version, mt, gauss = state["python"]
    name, keys, pos, has_gauss, cached = state["numpy"]
    out = {
        "python": {"version": int(version), "state": torch.tensor(mt, dtype=torch.int64),
                   "gauss": None if gauss is None else float(gauss)},
        "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": state["torch"],
    }
    if "cuda" in state:
        out["cuda"] = list(state["cuda"])
    return out


def _native_rng(state: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`_portable_rng`."""
    p, n = state["python"], state["numpy"]
    out = {
        "python": (p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]),
        "numpy": (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]),
        "torch": state["torch"],
    }
    if "cuda" in state:
        out["cuda"] = state["cuda"]
    return out


def save_training_checkpoint(path: str | Path, *, config: TrainConfig, step: int, model: Localiser,
                             optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any, rng: dict[str, Any],
                             sampler: dict[str, int], elapsed_s: float = 0.0) -> Path:
    """Write the full training state atomically (module docstring); returns the path."""
    path = Path(path)
    _atomic_save(
        {
            "format": CHECKPOINT_FORMAT,
            "version": FORMAT_VERSION,
            "config": config.to_dict(),
            "step": int(step),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else {},
            "rng": _portable_rng(rng),
            "sampler": dict(sampler),
            "elapsed_s": float(elapsed_s),
            "torch_version": str(torch.__version__),
        },
        path,
    )
    return path


def save_weights(path: str | Path, localiser: Localiser, config: TrainConfig, metrics: dict | None = None,
                 dtype: torch.dtype = torch.float32) -> Path:
    """Write the localiser's weights (floating tensors cast to ``dtype``), its config and metrics, atomically."""
    state = {k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu())
             for k, v in localiser.state_dict().items()}
    path = Path(path)
    _atomic_save({"format": WEIGHTS_FORMAT, "version": FORMAT_VERSION, "config": config.to_dict(), "model": state,
                  "metrics": dict(metrics or {})}, path)
    return path


# ------------------------------------------------------------------------------------------ reading
def _read(path: Path, kinds: tuple[str, ...], map_location: Any = "cpu") -> dict[str, Any]:
    """Load an mmstn file after checking it (module docstring: size, zip CRCs, sidecar, embedded digest)."""
    if path.is_dir():
        raise CheckpointError(path, "is a folder, not a checkpoint or weight file",
                              "Pass the checkpoint.pt / weights.pt inside it")
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "is empty (0 bytes): an interrupted write or copy", _DAMAGED_HINT)
    _check_zip(path)
    side = path.with_name(path.name + SIDECAR_SUFFIX)
    if side.is_file():
        _check_sidecar(path, side.read_text(errors="replace"))
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        detail = (str(exc).strip().splitlines() or ["no detail"])[0][:200]  # some errors have no message
        raise CheckpointError(
            path, f"unreadable, truncated or corrupt ({type(exc).__name__}: {detail})", _DAMAGED_HINT,
        ) from exc
    if not isinstance(obj, dict) or obj.get("format") not in kinds:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(path, f"not an mmstn {' or '.join(kinds)} file (format: {found!r})")
    if obj.get("version") != FORMAT_VERSION:
        raise CheckpointError(path, f"format version {obj.get('version')} (this mmstn reads {FORMAT_VERSION})")
    if DIGEST_KEY in obj:
        recorded = obj[DIGEST_KEY]
        actual = content_digest(obj)
        if recorded != actual:
            raise CheckpointError(
                path, f"its content does not match its recorded SHA-256 (recorded {str(recorded)[:12]}…, found "
                f"{actual[:12]}…): the file was altered or damaged after it was written", _DAMAGED_HINT,
            )
    missing = [k for k in ("config", "model") if k not in obj]
    if missing:
        raise CheckpointError(path, f"lacks the entries {missing}")
    return obj


def _config_of(path: Path, obj: dict[str, Any]) -> TrainConfig:
    try:
        return TrainConfig.from_dict(obj["config"], source=f"{path} (its config)")
    except ValueError as exc:
        raise CheckpointError(path, f"holds an invalid config: {exc}") from exc


def _check_state(path: Path, model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise CheckpointError(
            path, f"tensors do not match the localiser: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(
                path, f"tensor {k!r} has shape {tuple(state[k].shape)}, the localiser expects {tuple(v.shape)}",
                "The file was written for another trunk, grid model or number of components",
            )


def load_training_checkpoint(path: str | Path, config: TrainConfig | None = None, map_location: Any = "cpu",
                             model: torch.nn.Module | None = None) -> dict[str, Any]:
    """Read a training checkpoint and check that it belongs to ``config`` (and fits ``model``, when given).

    Returns:
        the checkpoint dict, with ``rng`` converted back to :func:`mmstn.train.loop.set_rng_state`'s form and
        ``config`` as a :class:`TrainConfig`.

    Raises:
        CheckpointError: missing, unreadable, not a training checkpoint, another configuration (the message
            lists the differing fields), or tensors of the wrong shape.
    """
    path = Path(path)
    obj = _read(path, (CHECKPOINT_FORMAT,), map_location)
    for key in ("optimizer", "scheduler", "rng", "step"):
        if key not in obj:
            raise CheckpointError(path, f"lacks the entry {key!r}: not a complete training checkpoint")
    saved = _config_of(path, obj)
    if config is not None:
        diff = config_differences(saved, config, RESUME_MUTABLE_FIELDS)
        if diff:
            changes = ", ".join(f"{k}: {saved.to_dict()[k]!r} → {config.to_dict()[k]!r}" for k in diff[:6])
            more = f" and {len(diff) - 6} more" if len(diff) > 6 else ""
            raise CheckpointError(
                path, f"was written by a run with another configuration (differing fields: {changes}{more})",
                "A run folder holds one run: pass the same config (its config.json) to resume it, use a new --out "
                "for the new config, or start afresh in this folder with --restart (train(..., resume=False))",
            )
    if model is not None:
        _check_state(path, model, obj["model"])
    obj["config"] = saved
    obj["rng"] = _native_rng(obj["rng"])
    return obj


def load_weights(path: str | Path, config: TrainConfig | None = None,
                 device: str | torch.device = "cpu") -> tuple[Localiser, STN3DMM, TrainConfig]:
    """Build the localiser and STN a weight file (or training checkpoint) was trained for and load it.

    Args:
        path: a ``weights.pt``/``checkpoint.pt`` or a shipped ``<name>.pt``.
        config: when given, the file's model-defining fields must agree with it.
        device: where to put the models.

    Returns:
        (localiser in eval mode, stn, the file's config).
    """

    path = Path(path)
    obj = _read(path, (WEIGHTS_FORMAT, CHECKPOINT_FORMAT))
    saved = _config_of(path, obj)
    if config is not None:
        model_fields = ("model", "grid_size", "stn", "trunk", "trunk_input", "trunk_widths", "image_size")
        diff = [k for k in model_fields if saved.to_dict()[k] != config.to_dict()[k]]
        if diff:
            raise CheckpointError(path, f"was trained with another model configuration (differs in: {', '.join(diff)})",
                                  "Pass the config saved with it, or None to use the file's own")
    with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten; leave the caller's RNG alone
        localiser, stn = build_model(saved.replace(vgg_weights=None))
    state = obj["model"]
    _check_state(path, localiser, state)
    own = localiser.state_dict()
    localiser.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    localiser.to(device).eval()
    stn.to(device)
    return localiser, stn, saved


# ------------------------------------------------------------------------------------------ pretrained
def available_pretrained() -> list[str]:
    """Names of the localisers shipped in ``mmstn/checkpoints/``."""
    root = resources.files("mmstn") / _PACKAGE_DIR
    if not root.is_dir():
        return []
    return sorted(p.name[:-3] for p in root.iterdir() if p.name.endswith(".pt"))  # not the .pt.sha256 sidecars


def _resource(name: str, suffix: str):
    res = resources.files("mmstn") / _PACKAGE_DIR / f"{name}{suffix}"
    if not res.is_file():
        raise CheckpointError(
            f"mmstn/{_PACKAGE_DIR}/{name}{suffix}", "no such shipped file",
            f"Available pretrained localisers: {available_pretrained() or 'none'} (is mmstn installed with its "
            "package data?)",
        )
    return res


#: the shipped localiser that :func:`load_pretrained` and the photo path load by default
DEFAULT_LOCALISER = "photo_small"


def load_pretrained(
    name: str = DEFAULT_LOCALISER, device: str | torch.device = "cpu"
) -> tuple[Localiser, STN3DMM, TrainConfig]:
    """The shipped localiser ``name``: ``photo_small``, trained by mmstn on renders of the ICT face textured
    from photos (``mmstn/checkpoints/README.md``).

    Returns:
        (localiser in eval mode: image (B, 3, 224, 224) in [0, 1] → θ (B, 16), its STN3DMM, its TrainConfig).
    """
    res = _resource(name, ".pt")
    side = _resource(name, ".pt" + SIDECAR_SUFFIX)  # shipped files must carry their checksum
    with ExitStack() as stack:
        path = stack.enter_context(resources.as_file(res))
        _check_sidecar(path, side.read_text(errors="replace"))
        return load_weights(path, device=device)


def pretrained_metrics(name: str = DEFAULT_LOCALISER) -> dict[str, Any]:
    """The validation metrics recorded for the shipped localiser ``name`` (``<name>_metrics.json``)."""
    import json

    return json.loads(_resource(name, "_metrics.json").read_text())
