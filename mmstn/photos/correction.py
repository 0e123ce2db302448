"""A learned correction of the face mesh's points, for the poses it was not made for.

MediaPipe's face mesh is built for near-frontal faces. Past about 45° of yaw its points drift towards a
frontal face: on renders of the default model at 70° yaw the fitted yaw comes out near 53°, and the
landmark error doubles. This module learns that drift from profiled renders of real faces
(:mod:`mmstn.photos.profiling`), whose true vertex positions are known, and removes it:

    p′ = p + σ · f((p − c) / σ),

with c the points' centroid, σ their RMS radius and f a small MLP (2K → 256 → 256 → 2K, K used points).
θ is then fitted to p′. The network sees only the 468 points, never the image, so it learns the face mesh's
geometric bias and not the renders' look.

The shipped weights (``mmstn/models/assets/ict_mesh_correction.pt``) belong to the default model; another
model gets no correction (the fit runs on the raw points). Retrain with
``python -m mmstn.photos.correction --samples FILE [FILE ...] --out FILE``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmstn.models.morphable import MorphableModel

__all__ = ["ASSET", "MeshCorrection", "apply_correction", "load_correction", "train_correction"]

ASSET = Path(__file__).resolve().parents[1] / "models" / "assets" / "ict_mesh_correction.pt"
HIDDEN = 256


class MeshCorrection(nn.Module):
    """f: normalised points (B, K, 2) → normalised residuals (B, K, 2)."""

    def __init__(self, n_points: int, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.n_points = int(n_points)
        self.net = nn.Sequential(
            nn.Linear(2 * n_points, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, 2 * n_points),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).view(x.shape)


def _normalise(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    c = p.mean(1, keepdim=True)
    s = ((p - c) ** 2).sum(-1).mean(1, keepdim=True).sqrt()[..., None].clamp(min=1e-6)
    return (p - c) / s, c, s


def apply_correction(net: MeshCorrection, points: torch.Tensor) -> torch.Tensor:
    """Corrected points (B, K, 2) or (K, 2), same units as ``points``."""
    single = points.ndim == 2
    p = points[None] if single else points
    x, _, s = _normalise(p.float())
    with torch.no_grad():
        out = p + (net(x) * s).to(p.dtype)
    return out[0] if single else out


def _fingerprint(model: MorphableModel) -> str:
    from mmstn.data.synthetic import model_fingerprint

    return model_fingerprint(model)


def load_correction(model: MorphableModel, path: str | Path = ASSET) -> MeshCorrection | None:
    """The shipped correction when it was trained for ``model`` (same fingerprint), else None."""
    path = Path(path)
    if not path.is_file():
        return None
    blob = path.read_bytes()
    digest = path.with_name(path.name + ".sha256")
    if digest.is_file() and digest.read_text().split()[0] != hashlib.sha256(blob).hexdigest():
        raise ValueError(f"{path}: the SHA-256 does not match {digest.name}; the file is damaged, reinstall mmstn")
    state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    if state.get("fingerprint") != _fingerprint(model):
        return None
    net = MeshCorrection(int(state["n_points"]), int(state["hidden"]))
    net.load_state_dict(state["weights"])
    net.eval()
    return net


def train_correction(
    mesh: np.ndarray,
    true: np.ndarray,
    use: np.ndarray,
    *,
    epochs: int = 400,
    seed: int = 0,
    val_fraction: float = 0.15,
    groups: np.ndarray | None = None,
    verbose: bool = True,
) -> tuple[MeshCorrection, dict]:
    """Fit f on samples (mesh (N, 468, 2), true (N, 468, 2)) restricted to the ``use`` points.

    Validation faces are whole source photos (``groups``), held out from training.

    Returns:
        (net, {"train_rmse", "val_rmse", "val_rmse_raw"}: normalised RMS point error after / before).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    p = torch.from_numpy(mesh[:, use]).float()
    t = torch.from_numpy(true[:, use]).float()
    x, _, s = _normalise(p)
    y = (t - p) / s
    groups = np.arange(len(p)) if groups is None else np.asarray(groups)
    uniq = np.unique(groups)
    val_groups = rng.choice(uniq, max(1, round(val_fraction * len(uniq))), replace=False)
    val = torch.from_numpy(np.isin(groups, val_groups))
    net = MeshCorrection(int(use.sum()))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    xt, yt = x[~val], y[~val]
    for epoch in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 128):
            b = perm[i : i + 128]
            # mirror augmentation is not needed: yaw is drawn symmetrically
            loss = ((net(xt[b]) - yt[b]) ** 2).sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        if verbose and (epoch + 1) % 100 == 0:
            with torch.no_grad():
                v = ((net(x[val]) - y[val]) ** 2).sum(-1).mean().sqrt()
            print(f"epoch {epoch + 1}: train {loss.sqrt():.4f}  val {v:.4f}", flush=True)
    with torch.no_grad():
        stats = {
            "train_rmse": float(((net(xt) - yt) ** 2).sum(-1).mean().sqrt()),
            "val_rmse": float(((net(x[val]) - y[val]) ** 2).sum(-1).mean().sqrt()),
            "val_rmse_raw": float((y[val] ** 2).sum(-1).mean().sqrt()),
            "n_train": int((~val).sum()),
            "n_val": int(val.sum()),
        }
    net.eval()
    return net, stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mmstn.photos.correction", description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", nargs="+", type=Path, required=True, help="files of mmstn.photos.profiling")
    parser.add_argument("--out", type=Path, default=ASSET)
    parser.add_argument("--epochs", type=int, default=400)
    args = parser.parse_args(argv)
    from mmstn.models.ict import ict_face_model
    from mmstn.photos.correspondence import correspondence_for

    model = ict_face_model()
    use = correspondence_for(model).weight > 0
    parts = [np.load(f) for f in args.samples]
    mesh = np.concatenate([d["mesh"] for d in parts])
    true = np.concatenate([d["true"] for d in parts])
    groups = np.concatenate([d["source"] + 10000 * i for i, d in enumerate(parts)])
    net, stats = train_correction(mesh, true, use, epochs=args.epochs, groups=groups)
    state = {
        "weights": net.state_dict(),
        "n_points": net.n_points,
        "hidden": HIDDEN,
        "fingerprint": _fingerprint(model),
        "stats": stats,
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    args.out.write_bytes(buf.getvalue())
    args.out.with_name(args.out.name + ".sha256").write_text(hashlib.sha256(buf.getvalue()).hexdigest() + "\n")
    print(f"wrote {args.out}: {stats}")


if __name__ == "__main__":
    main()
