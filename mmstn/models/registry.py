"""Find and load a morphable model by name or by file, with a safe default.

Names and the files they need, relative to :func:`mmstn.runtime.data_dir` (``$MMSTN_DATA``, default
``<repo>/data``; see ``data/README.md`` for where each file comes from):

============ ==================================================================================
name         files (first existing candidate wins)
============ ==================================================================================
``ict``      none: the shipped ICT FaceKit face, a real human face under the MIT licence
             (:func:`mmstn.models.ict.ict_face_model`)
``builtin``  none: the cartoon face built in code (:func:`mmstn.models.builtin.builtin_model`)
``bfm2009``  ``PublicMM1/01_MorphableModel.mat`` (or ``BFM/…`` or directly in the data folder)
``paper``    the BFM 2009 file above + ``3DDFA/Model_Expression.mat`` +
             ``3dmmasstn/map_tddfa_to_basel.mat`` (or ``3DDFA/map_tddfa_to_basel.mat``)
``bfm2017``  ``model2017-1_bfm_nomouth.h5`` (or ``BFM2017/…``, or the ``face12`` variant)
``surrey``   ``sfm/sfm_shape_3448.bin``; beside it, used when present: ``expression_blendshapes_3448.bin``,
             ``ibug_to_sfm.txt``, ``sfm_reference_symmetry.txt``
============ ==================================================================================

The BFM-based models also pick up, when present, the authors' ``3dmmasstn/BFM_UV.mat`` (UVs and the
mirror map) and ``3dmmasstn/landmarks/Landmarks21_BFM.anl`` / ``Landmarks68_BFM.anl``.

``load_model(None)`` takes the best model available: the paper's model (BFM 2009 + 3DDFA), else the plain
BFM 2009, else the shipped ICT FaceKit face, and prints which one and its licence. The Surrey Face
Model and the cartoon ``builtin`` face are loaded only when asked for by name. The BFM 2017 is only
loaded when asked for (by name or path): the paper's UV map and landmark files index the 2009 topology.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mmstn.errors import ModelFileError, check_file, check_finite_field
from mmstn.models.morphable import MorphableModel, UnitsError
from mmstn.runtime import data_dir

__all__ = ["MODEL_NAMES", "available_models", "load_mesh", "load_model"]

#: Names accepted by :func:`load_model`, in the order ``load_model(None)`` tries them (bfm2017 excluded).
MODEL_NAMES: tuple[str, ...] = ("paper", "bfm2009", "bfm2017", "surrey", "ict", "builtin")
_DEFAULT_ORDER: tuple[str, ...] = ("paper", "bfm2009", "ict")

_CANDIDATES: dict[str, tuple[str, ...]] = {
    "bfm2009": ("PublicMM1/01_MorphableModel.mat", "BFM/01_MorphableModel.mat", "01_MorphableModel.mat"),
    "expression": ("3DDFA/Model_Expression.mat", "Model_Expression.mat"),
    "map": ("3dmmasstn/map_tddfa_to_basel.mat", "3DDFA/map_tddfa_to_basel.mat", "map_tddfa_to_basel.mat"),
    "bfm_uv": ("3dmmasstn/BFM_UV.mat", "BFM_UV.mat"),
    "anl21": ("3dmmasstn/landmarks/Landmarks21_BFM.anl", "3dmmasstn/Landmarks21_BFM.anl"),
    "anl68": ("3dmmasstn/landmarks/Landmarks68_BFM.anl", "3dmmasstn/Landmarks68_BFM.anl"),
    "bfm2017": (
        "model2017-1_bfm_nomouth.h5",
        "BFM2017/model2017-1_bfm_nomouth.h5",
        "model2017-1_face12_nomouth.h5",
        "BFM2017/model2017-1_face12_nomouth.h5",
    ),
    "surrey": ("sfm/sfm_shape_3448.bin", "sfm_3448/sfm_shape_3448.bin", "sfm_shape_3448.bin"),
}
_SURREY_SIDECARS = {
    "expression_bin": "expression_blendshapes_3448.bin",
    "ibug_map": "ibug_to_sfm.txt",
    "symmetry_txt": "sfm_reference_symmetry.txt",
}


def _find(key: str, root: Path) -> Path | None:
    for rel in _CANDIDATES[key]:
        candidate = root / rel
        if candidate.is_file():
            return candidate
    return None


def _require(key: str, root: Path, what: str) -> Path:
    found = _find(key, root)
    if found is None:
        raise ModelFileError(
            root / _CANDIDATES[key][0],
            f"{what} not found (looked for {', '.join(_CANDIDATES[key])} under {root}; set MMSTN_DATA to "
            "change the folder)",
        )
    return found


def available_models() -> dict[str, Path | None]:
    """The models that :func:`load_model` can load right now.

    Returns:
        ``{name: main file}`` for every available model, in :data:`MODEL_NAMES` order. ``"ict"`` and
        ``"builtin"`` are always present and map to ``None`` (shipped in the package / built in code).
        ``"paper"`` maps to the BFM 2009 file (present only when the 3DDFA expression file and the vertex
        map are there too).
    """
    root = data_dir()
    found: dict[str, Path | None] = {}
    bfm = _find("bfm2009", root)
    if bfm is not None and _find("expression", root) is not None and _find("map", root) is not None:
        found["paper"] = bfm
    if bfm is not None:
        found["bfm2009"] = bfm
    for key in ("bfm2017", "surrey"):
        path = _find(key, root)
        if path is not None:
            found[key] = path
    found["ict"] = None
    found["builtin"] = None
    return found


def _bfm_extras(root: Path) -> dict:
    anl = [p for p in (_find("anl21", root), _find("anl68", root)) if p is not None]
    return {"landmarks_anl": anl or None, "uv_path": _find("bfm_uv", root)}


def _load_paper(root: Path) -> MorphableModel:
    from mmstn.models.tddfa import build_paper_model

    bfm = _require("bfm2009", root, "BFM 2009 01_MorphableModel.mat")
    expression = _require("expression", root, "3DDFA Model_Expression.mat")
    vertex_map = _require("map", root, "map_tddfa_to_basel.mat")
    return build_paper_model(bfm, expression, vertex_map, **_bfm_extras(root))


def _load_bfm2009(root: Path, path: Path | None = None) -> MorphableModel:
    from mmstn.models.bfm2009 import load_bfm2009

    path = path or _require("bfm2009", root, "BFM 2009 01_MorphableModel.mat")
    return load_bfm2009(path, **_bfm_extras(root))


def _load_bfm2017(root: Path, path: Path | None = None) -> MorphableModel:
    from mmstn.models.bfm2017 import load_bfm2017

    return load_bfm2017(path or _require("bfm2017", root, "BFM 2017 model2017-1_*_nomouth.h5"))


def _load_surrey(root: Path, path: Path | None = None) -> MorphableModel:
    from mmstn.models.surrey import load_surrey

    path = path or _require("surrey", root, "Surrey Face Model sfm_shape_3448.bin")
    extras = {key: path.parent / name for key, name in _SURREY_SIDECARS.items()}
    return load_surrey(path, **{key: (p if p.is_file() else None) for key, p in extras.items()})


def _load_builtin(root: Path) -> MorphableModel:
    from mmstn.models.builtin import builtin_model

    return builtin_model(seed=0)


def _load_ict(root: Path) -> MorphableModel:
    from mmstn.models.ict import ict_face_model

    return ict_face_model()


_LOADERS: dict[str, Callable[[Path], MorphableModel]] = {
    "paper": _load_paper,
    "bfm2009": _load_bfm2009,
    "bfm2017": _load_bfm2017,
    "surrey": _load_surrey,
    "builtin": _load_builtin,
    "ict": _load_ict,
}


def _load_file(path: Path) -> MorphableModel:
    """Dispatch on the file's extension and, for ambiguous ones, its content."""
    root = data_dir()
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return MorphableModel.load(path)
    if suffix == ".bin":
        return _load_surrey(root, path)
    if suffix in (".h5", ".hdf5"):
        return _load_bfm2017(root, path)
    if suffix == ".mat":
        from mmstn.models.bfm2009 import read_mat_variables

        names = read_mat_variables(path, [], optional=["shapeMU", "w_exp", "UV", "map_tddfa_to_basel"])
        if "shapeMU" in names:
            return _load_bfm2009(root, path)
        what = {"w_exp": "a 3DDFA expression file", "UV": "a UV map", "map_tddfa_to_basel": "a vertex map"}
        kind = next((what[k] for k in what if k in names), "not a BFM 2009 model")
        raise ModelFileError(path, f"{kind}, not a morphable model; load_model('paper') combines it with the BFM")
    if suffix in (".obj", ".ply"):
        return load_mesh(path)
    raise ModelFileError(
        path, f"unknown model file type {suffix or '(no extension)'!r}; expected .mat, .h5, .bin, .npz, .obj or .ply"
    )


def load_mesh(path: str | Path, *, units: str = "mm", name: str | None = None) -> MorphableModel:
    """Read an OBJ or PLY mesh as a mean-only :class:`MorphableModel` (K = 0 components).

    The vertex order of the file is kept (trimesh with ``process=False``), so landmark ids and a basis
    written for the same mesh still apply.

    Args:
        path: the ``.obj`` or ``.ply`` file.
        units: the file's unit, ``"mm"`` (default), ``"cm"`` or ``"m"``; converted to millimetres.
        name: the model name (default: the file's stem).

    Raises:
        ModelFileError: missing, empty, truncated or non-triangle files, NaN coordinates or a size that
            says another unit, each naming the file.
    """
    import numpy as np
    import trimesh

    path = check_file(Path(path), "mesh file")
    try:
        mesh = trimesh.load(str(path), process=False, force="mesh")
    except Exception as exc:  # trimesh raises many types for broken files
        raise ModelFileError(path, f"not a readable mesh ({type(exc).__name__}: {exc})", "Export it again") from exc
    vertices = np.asarray(getattr(mesh, "vertices", np.zeros((0, 3))), dtype=np.float64)
    faces = np.asarray(getattr(mesh, "faces", np.zeros((0, 3))))
    if vertices.shape[0] < 3 or faces.size == 0:
        raise ModelFileError(
            path,
            f"holds {vertices.shape[0]} vertices and {len(faces)} triangles; a truncated file or a point cloud?",
            "Export the mesh again with its faces",
        )
    check_finite_field(path, "vertices", vertices)
    uv = None
    visual = getattr(mesh, "visual", None)
    raw_uv = getattr(visual, "uv", None)
    if raw_uv is not None and len(raw_uv) == len(vertices):
        uv = np.asarray(raw_uv, dtype=np.float64)
        if not (np.isfinite(uv).all() and uv.min() >= 0 and uv.max() <= 1):
            uv = None  # per-vertex UVs outside [0, 1] (tiled textures) are not a flattening
    try:
        return MorphableModel.from_arrays(
            vertices, faces, uv=uv, units=units, name=name or path.stem, source=str(path)
        )
    except UnitsError as exc:
        fix = (f"Load it with mmstn.models.load_mesh({str(path)!r}, units={exc.guess!r})" if exc.guess
               else "Rescale the mesh to millimetres")
        raise ModelFileError(path, str(exc), fix) from exc
    except ValueError as exc:
        raise ModelFileError(
            path, str(exc), "Repair the mesh: mmstn.models.meshtools.check_mesh names the problem, crop removes parts"
        ) from exc


def load_model(name_or_path: str | Path | None = None, *, verbose: bool = True) -> MorphableModel:
    """Load a morphable model by name, by file, or the best one available.

    Args:
        name_or_path: one of :data:`MODEL_NAMES`, a path to a model file (``.mat`` BFM 2009, ``.h5`` BFM 2017,
            ``.bin`` Surrey, ``.npz`` saved with :meth:`MorphableModel.save`, ``.obj`` / ``.ply`` meshes read
            as mean-only models in millimetres, see :func:`load_mesh`), or ``None`` for the best
            available model (paper → bfm2009 → ict).
        verbose: print which model is used and its licence.

    Returns:
        The model, in the :class:`MorphableModel` conventions (mm, BFM frame, α ~ N(0, I) for PCA parts).

    Raises:
        ModelFileError: a named model's files are missing or unreadable, or the path is not a model file.
    """
    root = data_dir()
    if name_or_path is None:
        available = available_models()
        name = next(n for n in _DEFAULT_ORDER if n in available)
        model = _LOADERS[name](root)
    elif isinstance(name_or_path, str) and name_or_path.lower() in _LOADERS:
        model = _LOADERS[name_or_path.lower()](root)
    else:
        path = Path(name_or_path).expanduser()
        if path.is_dir():
            raise ModelFileError(path, "is a directory, not a model file", "Pass the model file inside it")
        if not path.is_file():
            raise ModelFileError(path, f"no such file, and not a model name (known names: {', '.join(_LOADERS)})")
        check_file(path, "model file")
        model = _load_file(path)
    if verbose:
        print(f"mmstn: using model {model.describe()}")
        if model.source:
            print(f"mmstn: loaded from {model.source}")
    return model
