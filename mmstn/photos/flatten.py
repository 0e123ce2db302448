"""From a photo to a flattened face: detect, fit θ, run the 3DMM-STN, export.

For each face in a photo:

1. **box**: the iBUG-68 landmark box (jaw line to brows) in photo pixels, given (``box=``) or found by
   MediaPipe's detector (:class:`~mmstn.photos.landmarker.MediaPipeFaces`);
2. **crop**: a square of ``CROP_FACTOR`` × the box's larger side around its centre, resampled to
   ``image_size`` (224) pixels: the frame θ lives in, like the authors' 224 × 224 crops;
3. **θ**: the face mesh's 468 points on the crop, tied to the model's vertices
   (:mod:`~mmstn.photos.correspondence`), fitted by :func:`~mmstn.photos.fit.fit_points`. When the face
   mesh finds no face in the box (rare: extreme profiles, heavy occlusion) the mean face is placed in the box
   instead, and ``method`` says so;
4. optional **refinement** by the paper's own losses (symmetry and siamese, no landmarks) through the STN;
5. **the STN**: the grid model of the same morphable model samples the crop at θ: the flattened face
   (G × G), its visibility mask, and every landmark set of the model projected back to photo pixels.

The landmarks are the fitted model's own landmark vertices (as in the paper: the STN's landmarks are
projected model points), so every markup the model carries (``ibug68``, ``aflw21``) comes out, each with a
visibility flag from the fitted pose (ray-cast self-occlusion).

Coordinates: 0-based photo pixels as stored in the file (EXIF rotation is not applied), x to the right,
y down.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from mmstn.data.errors import DataFormatError
from mmstn.data.images import hwc_uint8_to_chw_float, open_rgb
from mmstn.fitting import fit
from mmstn.layers.grid import grid_triangles, labels_to_pixels, pixels_to_labels
from mmstn.layers.visibility import occlusion_visibility
from mmstn.losses import LossWeights
from mmstn.models.ict import ict_face_model
from mmstn.models.morphable import MorphableModel
from mmstn.photos.correspondence import correspondence_for
from mmstn.photos.fit import fit_points
from mmstn.render import pose_vertices
from mmstn.stn import STN3DMM, STNConfig
from mmstn.theta import THETA_ALPHA, THETA_LOGS, THETA_R, THETA_T, theta_size
from mmstn.train.checkpoint import DEFAULT_LOCALISER, available_pretrained, load_pretrained, load_weights
from mmstn.train.model import data_model
from mmstn.transforms import axis_angle_to_euler
from mmstn.uv.grid_model import make_grid_model

from .landmarker import MESH_CONTEXT, FaceBox, MediaPipeFaces, crop_square

__all__ = [
    "CROP_FACTOR",
    "FlatFace",
    "Flattener",
    "NoFaceFound",
    "flatten",
    "write_outputs",
]

#: the crop's side in units of the landmark box's larger side (the authors' crops: about 1.9)
CROP_FACTOR = 1.8
IMAGE_SIZE = 224
#: ``"combined"``: above this |yaw| of the CNN's θ its θ is used instead of the face-mesh fit (set on renders,
#: benchmarks/bench_photo_yaw.py)
SWITCH_YAW_DEG = 50.0
#: the values of ``Flattener(theta_from=...)``
THETA_SOURCES = ("combined", "face_mesh", "localiser")


class NoFaceFound(RuntimeError):
    """The detector found no face in a photo (the message names it)."""


@dataclass
class FlatFace:
    """One flattened face.

    Attributes:
        image: the photo's path (as given) or ``"<array>"``.
        index: the face's number in the photo (0: the largest).
        box: the face box used, photo pixels.
        method: how θ was found: ``"face_mesh"`` (fitted to the face mesh), ``"localiser"`` (the CNN
            localiser) or ``"box"`` (mean face in the box).
        theta: (6 + D,) θ, paper convention (s = exp(logs)), label frame of the crop.
        crop_scale, crop_offset: crop pixel = crop_scale · (photo pixel − crop_offset).
        landmarks: ``{set: (L, 2) float64 photo pixels}``; visible: ``{set: (L,) bool}``.
        flat: (G, G, 3) float32 in [0, 1], the flattened face (masked); mask: (G, G) bool.
        shape: (G², 3) float32 mm, the fitted grid-model shape (model frame) for the OBJ export.
        seconds: time spent on this face (fit, STN), excluding reading the photo.
        extra: ``grid_px`` (G², 2) the grid vertices and ``vertex_px`` (N, 2) every model vertex in photo
            pixels, ``vertex_visible`` (N,) bool: the model vertex is seen in the fitted pose (ray cast).
    """

    image: str
    index: int
    box: FaceBox
    method: str
    theta: np.ndarray
    crop_scale: float
    crop_offset: np.ndarray
    landmarks: dict[str, np.ndarray]
    visible: dict[str, np.ndarray]
    flat: np.ndarray
    mask: np.ndarray
    shape: np.ndarray
    model: str = ""
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """The ``<stem>.json`` record (see the README's "Flatten your own photos")."""
        return {
            "image": self.image,
            "model": self.model,
            "box": self.box.as_list(),
            "box_score": self.box.score,
            "method": self.method,
            "theta": {
                "values": [float(v) for v in self.theta],
                "layout": "r (3, axis-angle, rad), t (2, px), logs (1), alpha (D)",
                "convention": "paper: s = exp(logs); t in the label frame (1-based column, y up) of the crop",
                "crop": {
                    "size": IMAGE_SIZE,
                    "scale": self.crop_scale,
                    "offset": [float(v) for v in self.crop_offset],
                    "rule": "crop pixel = scale * (photo pixel - offset), 0-based pixel centres",
                },
            },
            # a landmark the model does not define is null (JSON has no NaN)
            "landmarks": {
                k: [None if not np.isfinite(p).all() else [round(float(p[0]), 3), round(float(p[1]), 3)] for p in v]
                for k, v in self.landmarks.items()
            },
            "visible": {k: [bool(b) for b in v] for k, v in self.visible.items()},
            "frame": "photo pixels as stored in the file, 0-based, x right, y down",
        }


def _load_localiser(name: str | Path | None) -> tuple[torch.nn.Module, MorphableModel]:
    """A shipped localiser by name (None: the default one), or a ``weights.pt`` file, in eval mode, with the
    model it predicts θ for."""
    name = DEFAULT_LOCALISER if name is None else name
    if str(name) in available_pretrained():
        localiser, _, config = load_pretrained(str(name))
    elif Path(name).is_file():
        localiser, _, config = load_weights(Path(name))
    else:
        raise ValueError(
            f"localiser={str(name)!r}: neither a shipped localiser ({', '.join(available_pretrained())}) nor a file"
        )
    if config.stn != "paper":
        raise ValueError(f"localiser={str(name)!r} was trained with stn={config.stn!r}; the photo path needs 'paper'")
    return localiser.eval(), data_model(config.model)


def _default_model() -> MorphableModel:
    return ict_face_model()


class Flattener:
    """Photo → :class:`FlatFace` list. Build once, call for many photos (the models are loaded once).

    Args:
        model: the morphable model (default: the shipped ICT FaceKit face). Its first ``n_components``
            components are fitted.
        grid: G, the flattened face's side (112: the authors' code, 224: the paper).
        refine: run the paper's symmetry and siamese losses after the fit (off by default: on real photos it
            does not reduce the landmark error, see the README).
        largest: keep only the largest detected face.
        n_components: D (default: all the model's components).
        theta_from: where θ comes from:

            * ``"combined"`` (the default with the default model): the face-mesh fit, except where the face
              mesh is unreliable: when it finds no face, or when the CNN localiser sees the face turned by
              more than ``switch_yaw_deg`` (the face mesh flattens near-profile faces towards frontal ones),
              the CNN's θ;
            * ``"face_mesh"`` (the default with another ``model``): the face-mesh fit only;
            * ``"localiser"``: the CNN only. The model is then the localiser's own (5 identity + 5
              expression components), so ``model`` and ``n_components`` must be left out.
        localiser: the CNN localiser: a shipped name (:func:`mmstn.train.available_pretrained`) or a
            ``weights.pt`` file (default: :data:`mmstn.train.checkpoint.DEFAULT_LOCALISER`).
        switch_yaw_deg: the |yaw| of the CNN's θ above which ``"combined"`` uses it.
    """

    def __init__(
        self,
        model: MorphableModel | None = None,
        *,
        grid: int = 112,
        refine: bool = False,
        largest: bool = False,
        n_components: int | None = None,
        theta_from: str | None = None,
        localiser: str | Path | None = None,
        switch_yaw_deg: float = SWITCH_YAW_DEG,
    ) -> None:
        if not isinstance(grid, int) or isinstance(grid, bool) or not 8 <= grid <= 1024:
            raise ValueError(f"grid must be an integer number of cells in [8, 1024], got {grid!r}")
        if theta_from is None:
            theta_from = "combined" if model is None and n_components is None else "face_mesh"
        if theta_from not in THETA_SOURCES:
            raise ValueError(f"theta_from={theta_from!r}: use one of {', '.join(THETA_SOURCES)}")
        self.theta_from, self.switch_yaw_deg = theta_from, float(switch_yaw_deg)
        self.localiser = None
        if theta_from != "face_mesh":
            if model is not None or n_components is not None:
                raise ValueError(
                    f"theta_from={theta_from!r} uses the localiser's own face: leave model and n_components out, "
                    "or use theta_from='face_mesh' with another model"
                )
            self.localiser, self._cnn_model = _load_localiser(localiser)  # None: the shipped default
            if theta_from == "localiser":
                model = self._cnn_model
        self.model = _default_model() if model is None else model
        d = self.model.n_components if n_components is None else int(n_components)
        if not 0 <= d <= self.model.n_components:
            raise ValueError(f"n_components must be in [0, {self.model.n_components}], got {n_components}")
        self.model = self.model.subset(min(d, self.model.n_identity), max(0, d - self.model.n_identity))

        # mean-value weights: the cotangent Tutte map folds 58 triangles of the ICT mesh over
        self.grid_model = make_grid_model(self.model, grid, weights="mean_value")
        self.G = grid
        # landmarks come from the mesh model's own vertices (exact, any markup), not from the grid
        config = replace(STNConfig.paper(grid_size=grid, image_size=(IMAGE_SIZE, IMAGE_SIZE)), landmark_set=None)
        self.stn = STN3DMM(self.grid_model, config)
        self.refine = bool(refine)
        self.largest = bool(largest)
        self.faces = MediaPipeFaces()
        c = correspondence_for(self.model)
        use = c.weight > 0
        self._vertex = torch.from_numpy(c.vertex[use])
        self._weight = torch.from_numpy(c.weight[use])
        self._use = use
        self._lm_sets = dict(self.model.landmarks.items())

    # -- one photo ---------------------------------------------------------------------------------
    def boxes(self, image: np.ndarray, box: Sequence[float] | FaceBox | None = None) -> list[FaceBox]:
        """The face boxes of a photo: ``box`` when given, else the detector's (largest first)."""
        if box is not None:
            return [_as_box(box, image.shape)]
        found = self.faces.detect(image)
        return found[:1] if self.largest else found

    def flatten_image(
        self, image: np.ndarray, box: Sequence[float] | FaceBox | None = None, name: str = "<array>"
    ) -> list[FlatFace]:
        """Every face of ``image`` ((H, W, 3) uint8 RGB), flattened.

        Raises:
            NoFaceFound: no ``box`` was given and the detector found no face.
        """
        import time

        given = box is not None
        boxes = self.boxes(image, box)
        if not boxes:
            boxes = self._mesh_boxes(image)
        if not boxes:
            boxes = self.faces.detect_profiles(image)
        if not boxes:
            raise NoFaceFound(
                f"{name}: no face found. Pass the face's box (--box X0 Y0 X1 Y1, the box of its 68 landmarks "
                "in photo pixels) to skip detection."
            )
        out = []
        for k, b in enumerate(boxes):
            t0 = time.perf_counter()
            face = self._one(image, b, name, k)
            lm = face.landmarks.get("ibug68")
            if not given and face.method != "box" and lm is not None and np.isfinite(lm).all():
                # a detector's box is not the landmark box: crop again around the fitted 68 points, as --box does
                face = self._one(image, FaceBox(*lm.min(0), *lm.max(0), score=b.score), name, k)
            face.seconds = time.perf_counter() - t0
            out.append(face)
        return out

    def _mesh_boxes(self, image: np.ndarray) -> list[FaceBox]:
        """When the detector finds nothing: the face mesh's own search over the whole photo (one face)."""
        h, w = image.shape[:2]
        side = min(h, w) / MESH_CONTEXT
        pts = self.faces.mesh(image, FaceBox(w / 2 - side / 2, h / 2 - side / 2, w / 2 + side / 2, h / 2 + side / 2))
        if pts is None:
            return []
        return [FaceBox(*pts.min(0), *pts.max(0), score=0.0)]

    def _one(self, image: np.ndarray, box: FaceBox, name: str, index: int) -> FlatFace:
        S = IMAGE_SIZE
        crop, k, o = crop_square(image, box.centre, CROP_FACTOR * box.size, S)
        cnn_only = self.theta_from == "localiser"
        points = None if cnn_only else self.faces.mesh(image, box)
        theta_cnn = None
        if self.localiser is not None:
            with torch.no_grad():
                theta_cnn = self.localiser(hwc_uint8_to_chw_float(crop)[None])[0].double()
        if theta_cnn is not None and (cnn_only or points is None or self._turned(theta_cnn)):
            theta = self._from_cnn(theta_cnn)
            method = "localiser"
        elif points is not None:
            p = torch.from_numpy(k * (points[self._use] - o))
            theta = fit_points(self.model, p, self._vertex, self._weight, image_size=S)[0]
            method = "face_mesh"
        else:
            theta = self._box_theta(box, k, o)
            method = "box"
        img = hwc_uint8_to_chw_float(crop)[None]
        if self.refine:
            theta = self._refine(img, theta)
        th = theta[None].to(self.grid_model.dtype)
        with torch.no_grad():
            out = self.stn(img.to(self.grid_model.dtype), th)
            pts, rotated, _ = pose_vertices(self.model, theta[None].to(self.model.dtype), scale_base="exp")
            vis_all = occlusion_visibility(rotated[0].double(), self.model.triangles, backface_culling=True).numpy()
        crop_px = labels_to_pixels(pts[0].double(), S).numpy()
        photo_px = crop_px / k + o
        landmarks, visible = {}, {}
        h, w = image.shape[:2]
        for key, ids in self._lm_sets.items():
            ids_np = ids.numpy()
            ok = ids_np >= 0
            lm = np.full((len(ids_np), 2), np.nan)
            lm[ok] = photo_px[ids_np[ok]]
            vis = np.zeros(len(ids_np), bool)
            vis[ok] = vis_all[ids_np[ok]]
            vis &= (lm[:, 0] >= -0.5) & (lm[:, 0] <= w - 0.5) & (lm[:, 1] >= -0.5) & (lm[:, 1] <= h - 0.5)
            landmarks[key], visible[key] = lm, vis
        grid_px = labels_to_pixels(out.points[0].double(), S).numpy() / k + o  # for the overlay's wireframe
        flat = out.flattened[0].permute(1, 2, 0).float().clamp(0, 1).numpy()
        mask = out.mask[0, 0].numpy() > 0.5
        d = theta.shape[0] - 6

        shape = self.grid_model.shape(theta[THETA_ALPHA].to(self.grid_model.dtype)) if d else self.grid_model.mean
        return FlatFace(
            image=name,
            index=index,
            box=box,
            method=method,
            theta=theta.numpy().astype(np.float64),
            crop_scale=float(k),
            crop_offset=np.asarray(o, np.float64),
            landmarks=landmarks,
            visible=visible,
            flat=flat,
            mask=mask,
            shape=shape.detach().float().numpy(),
            model=self.model.name,
            # the overlay's wireframe; every model vertex in photo pixels and seen or not (photo textures)
            extra={"grid_px": grid_px, "vertex_px": photo_px, "vertex_visible": np.asarray(vis_all) > 0.5},
        )

    def _turned(self, theta: torch.Tensor) -> bool:
        """Is the face of θ turned by more than ``switch_yaw_deg``?"""
        yaw = float(torch.rad2deg(axis_angle_to_euler(theta[None, THETA_R])[0][0]))
        return abs(yaw) > self.switch_yaw_deg

    def _from_cnn(self, theta: torch.Tensor) -> torch.Tensor:
        """The CNN's θ (its model: 5 + 5 components) in the layout of ``self.model`` (the first components)."""
        cnn = self._cnn_model
        if self.model is cnn:
            return theta
        out = torch.zeros(theta_size(self.model.n_components), dtype=theta.dtype)
        out[: THETA_ALPHA.start] = theta[: THETA_ALPHA.start]
        alpha, full = theta[THETA_ALPHA], out[THETA_ALPHA]
        full[: cnn.n_identity] = alpha[: cnn.n_identity]
        full[self.model.n_identity : self.model.n_identity + cnn.n_expression] = alpha[cnn.n_identity :]
        return out

    def _box_theta(self, box: FaceBox, k: float, o: np.ndarray) -> torch.Tensor:
        """The frontal mean face whose iBUG-68 (else all-vertex) box fills ``box``: θ in the crop frame."""
        mean = self.model.mean.double()
        ids = self._lm_sets.get("ibug68")
        ref = mean[ids[ids >= 0]] if ids is not None else mean
        lo, hi = ref[:, :2].min(0).values, ref[:, :2].max(0).values
        width = max(float(hi[0] - lo[0]), float(hi[1] - lo[1]))
        s = k * box.size / width
        c_px = torch.tensor([k * (box.centre[0] - o[0]), k * (box.centre[1] - o[1])], dtype=torch.float64)
        c_lab = pixels_to_labels(c_px, IMAGE_SIZE)
        mid = 0.5 * (lo + hi)
        theta = torch.zeros(theta_size(self.model.n_components), dtype=torch.float64)
        theta[THETA_T] = c_lab - s * mid
        theta[THETA_LOGS] = math.log(s)
        return theta

    def _refine(self, img: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """A few Adam steps of the symmetry and siamese losses (and the prior) from θ."""
        weights = LossWeights(landmark=0.0, prior=1e-3, siamese=1.0, symmetry=1.0)
        img_d = img.to(self.grid_model.dtype)
        n_lm = int(self.stn.generator.landmark_indices.numel())
        labels = torch.zeros(1, n_lm, 2, dtype=img_d.dtype)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*no visible landmark")  # by design: no landmarks here
            res = fit(
                self.stn,
                img_d,
                labels,
                torch.zeros(1, n_lm, dtype=img_d.dtype),
                theta0=theta[None].to(img_d.dtype),
                n_iter=REFINE_STEPS,
                lr=0.01,
                weights=weights,
                method="adam",
                mirrored_images=img_d.flip(-1),
            )
        return res.theta[0].detach().double()


#: Adam steps of the optional refinement
REFINE_STEPS = 20


def _as_box(box: Sequence[float] | FaceBox, shape: tuple[int, ...]) -> FaceBox:
    if isinstance(box, FaceBox):
        b = box
    else:
        vals = list(box)
        if len(vals) != 4:
            raise ValueError(f"box must be X0 Y0 X1 Y1 (4 numbers), got {len(vals)}: {vals}")
        try:
            b = FaceBox(*(float(v) for v in vals))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"box must be 4 numbers X0 Y0 X1 Y1, got {vals}") from exc
    if not all(math.isfinite(v) for v in (b.x0, b.y0, b.x1, b.y1)):
        raise ValueError(f"box must be finite, got {b.as_list()}")
    if b.x1 <= b.x0 or b.y1 <= b.y0:
        raise ValueError(f"box must have X1 > X0 and Y1 > Y0 (X0 Y0 X1 Y1 order), got {b.as_list()}")
    h, w = shape[:2]
    if b.x1 < 0 or b.y1 < 0 or b.x0 > w - 1 or b.y0 > h - 1:
        raise ValueError(f"box {b.as_list()} lies outside the {w} x {h} photo (photo pixels, 0-based)")
    if b.size < 8:
        raise ValueError(f"box {b.as_list()} is only {b.size:.1f} px: too small for a face (at least 8 px)")
    return b


# -- outputs -----------------------------------------------------------------------------------------
def _stem(path: str, index: int, n_faces: int) -> str:
    stem = Path(path).stem if path != "<array>" else "face"
    return stem if n_faces == 1 else f"{stem}_{index}"


def write_outputs(
    face: FlatFace, photo: np.ndarray, out_dir: str | Path, stem: str, triangles: np.ndarray | None = None
) -> list[Path]:
    """Write ``<stem>.json``, ``_flat.png``, ``_mask.png``, ``_overlay.png``, ``.obj``/``.mtl`` into ``out_dir``.

    ``triangles`` (F, 3) of the exported mesh default to the G×G grid's (:func:`mmstn.layers.grid.grid_triangles`).
    """
    from PIL import Image, ImageDraw

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    p = out / f"{stem}.json"
    p.write_text(json.dumps(face.to_json(), indent=1) + "\n")
    paths.append(p)
    flat8 = np.clip(np.rint(face.flat * 255), 0, 255).astype(np.uint8)
    Image.fromarray(flat8).save(out / f"{stem}_flat.png")
    Image.fromarray((face.mask * 255).astype(np.uint8)).save(out / f"{stem}_mask.png")
    paths += [out / f"{stem}_flat.png", out / f"{stem}_mask.png"]
    # overlay: the box, a sparse wireframe of the fitted grid mesh and the landmarks
    im = Image.fromarray(photo).convert("RGB")
    draw = ImageDraw.Draw(im)
    width = max(1, round(face.box.size / 150))
    draw.rectangle(face.box.as_list(), outline=(255, 200, 0), width=width)
    G = round(math.sqrt(face.shape.shape[0]))
    pts = face.extra.get("grid_px")
    if pts is not None:
        step = max(1, G // 16)
        m = face.mask
        for r in range(0, G, step):
            row = [tuple(pts[r * G + c]) for c in range(G) if m[r, c]]
            if len(row) > 1:
                draw.line(row, fill=(120, 200, 255), width=1)
        for c in range(0, G, step):
            col = [tuple(pts[r * G + c]) for r in range(G) if m[r, c]]
            if len(col) > 1:
                draw.line(col, fill=(120, 200, 255), width=1)
    lm = face.landmarks.get("ibug68", next(iter(face.landmarks.values()), None))
    vis = face.visible.get("ibug68", None)
    if lm is not None:
        rad = max(1.5, face.box.size / 100)
        for i, (x, y) in enumerate(lm):
            if not np.isfinite(x):
                continue
            colour = (255, 60, 60) if vis is None or vis[i] else (255, 255, 255)
            draw.ellipse([x - rad, y - rad, x + rad, y + rad], outline=colour, width=max(1, width))
    im.save(out / f"{stem}_overlay.png")
    paths.append(out / f"{stem}_overlay.png")
    # the fitted face as a textured mesh: the G x G grid is its UV map
    tri = grid_triangles(G).numpy() if triangles is None else np.asarray(triangles)
    rc = np.stack(np.divmod(np.arange(G * G), G), 1)
    uv = np.stack([rc[:, 1] / (G - 1), 1.0 - rc[:, 0] / (G - 1)], 1)
    mtl = out / f"{stem}.mtl"
    mtl.write_text(f"newmtl face\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\nmap_Kd {stem}_flat.png\n")
    lines = [
        f"# mmstn flatten: fitted face ({face.model}), millimetres, model frame (y up, z to the viewer)",
        f"mtllib {stem}.mtl",
        "usemtl face",
    ]
    lines += [f"v {x:.4f} {y:.4f} {z:.4f}" for x, y, z in face.shape]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in uv]
    lines += [f"f {a + 1}/{a + 1} {b + 1}/{b + 1} {c + 1}/{c + 1}" for a, b, c in tri]
    obj = out / f"{stem}.obj"
    obj.write_text("\n".join(lines) + "\n")
    paths += [obj, mtl]
    return paths


def _read_photo(path: Path) -> np.ndarray:
    return np.asarray(open_rgb(path), dtype=np.uint8)


def flatten(
    photos: Iterable[str | Path],
    out: str | Path | None = None,
    *,
    box: Sequence[float] | None = None,
    refine: bool = False,
    grid: int = 112,
    largest: bool = False,
    model: MorphableModel | None = None,
    progress: bool = False,
    flattener: Flattener | None = None,
) -> tuple[list[FlatFace], dict[str, str]]:
    """Flatten every face of every photo; write the outputs into ``out`` when given.

    Args:
        photos: image files.
        out: output folder (``None``: nothing is written).
        box: the face's iBUG-68 landmark box X0 Y0 X1 Y1 in photo pixels (skips detection; every photo).
        refine, grid, largest, model: see :class:`Flattener`.
        progress: a progress bar on stderr.

    Returns:
        (faces, errors): the flattened faces, and ``{photo: message}`` for photos that could not be read or
        had no face (the others are still processed).
    """
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder; name a folder for the outputs")
    fl = flattener or Flattener(model, grid=grid, refine=refine, largest=largest)
    photos = [Path(p) for p in photos]
    faces: list[FlatFace] = []
    errors: dict[str, str] = {}
    bar = None
    if progress and len(photos) > 1:
        from tqdm import tqdm

        bar = tqdm(total=len(photos), unit="photo", file=sys.stderr)
    tri = grid_triangles(fl.G).numpy()
    for path in photos:
        try:
            image = _read_photo(path)
            found = fl.flatten_image(image, box, name=str(path))
        except (DataFormatError, NoFaceFound, ValueError) as exc:
            errors[str(path)] = str(exc)
            if bar is not None:
                bar.update(1)
            continue
        for f in found:
            if out is not None:
                write_outputs(f, image, out, _stem(str(path), f.index, len(found)), tri)
        faces.extend(found)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return faces, errors
