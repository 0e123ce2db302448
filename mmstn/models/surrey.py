"""Surrey Face Model (SFM) in eos's cereal binary format, with its expression blendshapes and metadata.

Files (eos ``share/`` folder; the model is free for non-commercial use only):

* ``sfm_shape_3448.bin``: little-endian cereal binary archive:
  ``uint32`` class version (1); shape PCA model = three matrices, each ``int32 rows, int32 cols`` and
  ``float32`` data in column-major order: mean (3N×1, interleaved xyz, mm), orthonormal basis (3N×K),
  eigenvalues (K×1, **variances**); then ``uint64 n`` and n × 3 ``int32`` triangle indices (0-based);
  then a colour PCA model in the same layout (empty, 0×0, in the shape-only SFM); then ``uint64 n`` and
  n × 2 ``float64`` per-vertex texture coordinates.
* ``expression_blendshapes_3448.bin``: ``uint64`` count; per blendshape ``uint64`` name length, UTF-8 name,
  ``int32 rows, int32 cols`` and 3N ``float32`` values.
* ``ibug_to_sfm.txt``: TOML; table ``[landmark_mappings]`` with lines ``ibug_id = vertex`` (1-based iBUG
  point, 0-based vertex). Points without a mapping (the jaw contour 1–8 and 10–17, inner mouth corners 61
  and 65) become −1 in ``landmarks["ibug68"]``.
* ``sfm_reference_symmetry.txt``: one 1-based vertex index per line (a ``#`` comment may follow), the mirror
  partner of each vertex of the 845-vertex reference mesh (the first 845 vertices of every resolution).

What the files contain, checked numerically on the eos copies (SFM 3448: N = 3448, K = 63, 6736 triangles):

* **Frame** already matches the BFM's: x to the viewer's right (iBUG 18, the subject's right brow corner,
  sits at x = −57 mm; iBUG 27 at x = +57 mm), y up (chin at y = −79 mm), z towards the viewer (the nose
  tip, vertex 114, is the frontmost point at z = +3.3 mm). Units are millimetres. Only the origin differs:
  it lies near the nose tip (mean centroid (−0.1, 0.1, −33.7) mm) instead of inside the head. The loader
  keeps it.
* **Winding**: counter-clockwise seen from the front (98.8 % of the face normals have n_z > 0); the loader
  still checks the area-weighted mean normal and swaps two indices if it pointed to −z.
* **Basis**: orthonormal columns (|BᵀB − I| < 3e−7); the loader multiplies by sqrt(eigenvalue).
* **Expressions are offsets**, not full shapes: their RMS size is 2.7–13.9 mm while each lies 64–72 mm
  (RMS) from the mean. They are appended unscaled after the identity components (``n_expression = 6``:
  anger, disgust, fear, happiness, sadness, surprise). Unlike the identity part they are not a PCA with
  α ~ N(0, I): eos fits them as blendshape weights, typically in [0, 1]. (A blendshape that lies closer to
  the mean than to zero would be read as a full shape and converted to an offset.)
* **UVs** are stored image-style with v pointing down (corr(v, y) = −0.998); the loader flips them to
  v up (v ← 1 − v). The flipped layout is exactly mirror-symmetric (pairs (u, v) ↔ (1 − u, v) within
  6e−8), and that pairing reproduces all 845 entries of ``sfm_reference_symmetry.txt``; the loader uses it
  as the mirror map of all N vertices (84 vertices on u = 0.5 map to themselves).
"""

from __future__ import annotations

import re
import struct
import warnings
from pathlib import Path

import numpy as np

from mmstn.errors import ModelFileError, check_file, check_finite_field
from mmstn.models.authors import uv_mirror_map
from mmstn.models.bfm2009 import ccw_from_clockwise, front_normal, validate_triangles
from mmstn.models.morphable import MorphableModel

__all__ = [
    "SURREY_LICENCE",
    "load_surrey",
    "read_expression_blendshapes",
    "read_ibug_mapping",
    "read_symmetry_list",
]

#: Licence line printed with the Surrey Face Model.
SURREY_LICENCE = (
    "Surrey Face Model (University of Surrey, via eos): non-commercial use only; commercial licences and "
    "other resolutions from cvssp.org/facemodel"
)

_MAX_NAME_BYTES = 1 << 16


class _CerealReader:
    """Sequential little-endian reader that reports truncation with the byte counts involved."""

    def __init__(self, path: Path) -> None:
        self.path = check_file(path, "eos binary file")
        self.data = path.read_bytes()
        self.offset = 0

    def take(self, nbytes: int, what: str) -> bytes:
        end = self.offset + nbytes
        if end > len(self.data):
            raise ModelFileError(
                self.path,
                f"truncated: reading {what} needs bytes {self.offset}..{end}, so the file should have at least "
                f"{end} bytes, but it has {len(self.data)}",
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def scalar(self, fmt: str, what: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt), what))[0]

    def matrix(self, what: str) -> np.ndarray:
        """An eos/Eigen float32 matrix: int32 rows, int32 cols, column-major data → (rows, cols)."""
        rows = self.scalar("i", f"{what} row count")
        cols = self.scalar("i", f"{what} column count")
        if rows < 0 or cols < 0:
            raise ModelFileError(self.path, f"{what} has a negative size {rows}×{cols}; not an eos model file?")
        raw = self.take(4 * rows * cols, f"{what} ({rows}×{cols} float32)")
        out = np.frombuffer(raw, dtype="<f4").reshape(cols, rows).T.astype(np.float32)
        check_finite_field(self.path, what, out)
        return out

    def int_triangles(self, what: str) -> np.ndarray:
        n = self.scalar("Q", f"{what} count")
        raw = self.take(12 * n, f"{what} ({n}×3 int32)")
        return np.frombuffer(raw, dtype="<i4").reshape(n, 3).astype(np.int64)

    def finish(self) -> None:
        if self.offset != len(self.data):
            raise ModelFileError(
                self.path,
                f"{len(self.data) - self.offset} unexpected bytes after the end of the model (read {self.offset} "
                f"of {len(self.data)}); a newer eos format version?",
            )


def _pca_block(reader: _CerealReader, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    mean = reader.matrix(f"{what} mean")
    basis = reader.matrix(f"{what} basis")
    eigenvalues = reader.matrix(f"{what} eigenvalues")
    triangles = reader.int_triangles(f"{what} triangle list")
    return mean, basis, eigenvalues, triangles


def _scaled_basis(path: Path, mean: np.ndarray, basis: np.ndarray, eig: np.ndarray, what: str) -> np.ndarray:
    """(3N, K) orthonormal × sqrt(variances (K,)) → (K, N, 3) float32."""
    n3 = mean.size
    eig = eig.reshape(-1).astype(np.float64)
    if basis.shape[0] != n3:
        raise ModelFileError(path, f"{what} basis has {basis.shape[0]} rows but the mean has {n3} values")
    if eig.size != basis.shape[1]:
        raise ModelFileError(path, f"{what}: {basis.shape[1]} basis columns but {eig.size} eigenvalues")
    if not np.all(np.isfinite(eig)) or np.any(eig < 0):
        raise ModelFileError(path, f"{what} eigenvalues (variances) must be finite and non-negative")
    scaled = basis * np.sqrt(eig).astype(np.float32)[None, :]
    return np.ascontiguousarray(scaled.T).reshape(basis.shape[1], n3 // 3, 3)


def read_expression_blendshapes(path: str | Path, n_vertices: int | None = None) -> tuple[list[str], np.ndarray]:
    """Read eos expression blendshapes (``expression_blendshapes_3448.bin``).

    Args:
        path: the blendshape file.
        n_vertices: expected N; ``None`` skips the check.

    Returns:
        ``(names, shapes)``: the E names and a float32 (E, N, 3) array as stored (offsets in mm for the SFM).

    Raises:
        ModelFileError: missing, truncated (with the byte count expected) or malformed file.
    """
    path = Path(path)
    reader = _CerealReader(path)
    count = reader.scalar("Q", "blendshape count")
    if count == 0 or count > 10_000:
        raise ModelFileError(path, f"implausible blendshape count {count}; not an eos blendshape file?")
    names: list[str] = []
    shapes: list[np.ndarray] = []
    for i in range(count):
        length = reader.scalar("Q", f"name length of blendshape {i}")
        if length > _MAX_NAME_BYTES:
            raise ModelFileError(path, f"blendshape {i} claims a {length}-byte name; not an eos blendshape file?")
        try:
            names.append(reader.take(length, f"name of blendshape {i}").decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ModelFileError(path, f"blendshape {i} has a name that is not UTF-8") from exc
        values = reader.matrix(f"blendshape {i} ({names[-1]!r})").reshape(-1)
        if values.size % 3 or (n_vertices is not None and values.size != 3 * n_vertices):
            expected = "3N" if n_vertices is None else str(3 * n_vertices)
            raise ModelFileError(path, f"blendshape {names[-1]!r} has {values.size} values, expected {expected}")
        shapes.append(values.reshape(-1, 3))
    reader.finish()
    if len({s.shape for s in shapes}) != 1:
        raise ModelFileError(path, "blendshapes have different numbers of vertices")
    return names, np.stack(shapes).astype(np.float32)


def read_ibug_mapping(path: str | Path, n_vertices: int | None = None) -> np.ndarray:
    """Read eos's ``ibug_to_sfm.txt`` into a 68-entry vertex list.

    Args:
        path: the TOML mapping file (``[landmark_mappings]``, ``ibug_id = vertex``).
        n_vertices: if given, every vertex must be below it.

    Returns:
        (68,) int64: 0-based vertex of iBUG point k + 1 at position k, −1 where the file has no mapping.

    Raises:
        ModelFileError: missing file, invalid TOML, no ``[landmark_mappings]`` table, or bad entries.
    """
    path = check_file(path, "landmark mapping file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFileError(path, f"not UTF-8 text (byte {exc.start}); expected eos's ibug_to_sfm.txt") from exc
    except OSError as exc:
        raise ModelFileError(path, f"cannot read the landmark mapping ({exc.strerror or exc})") from exc
    table = _landmark_mappings(path, text)
    landmarks = np.full(68, -1, dtype=np.int64)
    for key, value in table.items():
        try:
            ibug = int(key)
        except ValueError:
            raise ModelFileError(path, f"landmark id {key!r} is not an integer") from None
        if not 1 <= ibug <= 68:
            raise ModelFileError(path, f"iBUG landmark id {ibug} outside 1..68")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ModelFileError(path, f"landmark {ibug} maps to {value!r}, expected a 0-based vertex index")
        if n_vertices is not None and value >= n_vertices:
            raise ModelFileError(path, f"landmark {ibug} maps to vertex {value} but the model has {n_vertices}")
        landmarks[ibug - 1] = value
    return landmarks


def _landmark_mappings(path: Path, text: str) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the file's table is simple enough to read by hand
        return _landmark_mappings_fallback(path, text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModelFileError(path, f"not valid TOML ({exc})") from exc
    table = doc.get("landmark_mappings")
    if not isinstance(table, dict):
        raise ModelFileError(path, "no [landmark_mappings] table")
    return table


def _landmark_mappings_fallback(path: Path, text: str) -> dict:
    table: dict[str, int] = {}
    section = None
    for line_no, line in enumerate(text.splitlines(), start=1):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        if body.startswith("["):
            section = body.strip("[] ")
            continue
        if section != "landmark_mappings":
            continue
        match = re.fullmatch(r"(\d+)\s*=\s*(-?\d+)", body)
        if match is None:
            raise ModelFileError(path, f"line {line_no}: expected 'ibug_id = vertex', got {body!r}")
        table[match.group(1)] = int(match.group(2))
    if section is None and not table:
        raise ModelFileError(path, "no [landmark_mappings] table")
    return table


def read_symmetry_list(path: str | Path) -> np.ndarray:
    """Read ``sfm_reference_symmetry.txt``: one 1-based partner index per line, ``#`` comments.

    Returns:
        (M,) int64 0-based partner of vertex 0..M−1 (M = 845 for the SFM reference mesh).

    Raises:
        ModelFileError: missing file, non-integer entries, or a list that is not an involution.
    """
    path = check_file(path, "symmetry list")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ModelFileError(path, f"not UTF-8 text (byte {exc.start}); expected sfm_reference_symmetry.txt") from exc
    except OSError as exc:
        raise ModelFileError(path, f"cannot read the symmetry list ({exc.strerror or exc})") from exc
    values: list[int] = []
    for line_no, line in enumerate(lines, start=1):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        try:
            values.append(int(body))
        except ValueError:
            raise ModelFileError(path, f"line {line_no}: {body!r} is not a vertex index") from None
    sym = np.asarray(values, dtype=np.int64) - 1
    if sym.size == 0 or sym.min() < 0 or sym.max() >= sym.size:
        raise ModelFileError(path, f"expected 1-based indices in 1..{sym.size}")
    if not np.array_equal(sym[sym], np.arange(sym.size)):
        raise ModelFileError(path, "the symmetry list is not an involution")
    return sym


def load_surrey(
    shape_bin: str | Path,
    expression_bin: str | Path | None = None,
    ibug_map: str | Path | None = None,
    symmetry_txt: str | Path | None = None,
) -> MorphableModel:
    """Load the Surrey Face Model as a :class:`MorphableModel` (BFM frame, mm, counter-clockwise).

    Args:
        shape_bin: ``sfm_shape_3448.bin`` (or another eos cereal model of format version 1).
        expression_bin: ``expression_blendshapes_3448.bin``; its E blendshapes (offsets, mm) are appended
            after the K identity components.
        ibug_map: ``ibug_to_sfm.txt``; sets ``landmarks["ibug68"]`` (−1 for unmapped points).
        symmetry_txt: ``sfm_reference_symmetry.txt``; checked against the UV mirror pairing (see the module
            docstring), or used directly when it covers every vertex.

    Returns:
        mean (N, 3) and basis (K + E, N, 3) in mm, ``n_identity = K``; identity coefficients α ~ N(0, I);
        ``uv`` (N, 2) with v up; ``mirror`` (N,) when the UVs are mirror-symmetric or the list covers all N.

    Raises:
        ModelFileError: a file is missing, truncated (naming the byte count expected), or inconsistent.
    """
    path = Path(shape_bin)
    reader = _CerealReader(path)
    version = reader.scalar("I", "class version")
    if version != 1:
        raise ModelFileError(path, f"eos model format version {version}; only version 1 is supported")
    mean, basis, eig, triangles = _pca_block(reader, "shape")
    c_mean, c_basis, c_eig, _ = _pca_block(reader, "colour")
    n_uv = reader.scalar("Q", "texture coordinate count")
    uv_file = np.frombuffer(reader.take(16 * n_uv, f"texture coordinates ({n_uv}×2 float64)"), dtype="<f8")
    check_finite_field(path, "texture coordinates", uv_file)
    reader.finish()

    if mean.shape[1] != 1 or mean.size == 0 or mean.size % 3:
        raise ModelFileError(path, f"shape mean has size {mean.shape}, expected 3N×1")
    n = mean.size // 3
    vertices = mean.reshape(n, 3)
    identity = _scaled_basis(path, mean, basis, eig, "shape")
    triangles = validate_triangles(path, triangles, n, one_based=False)
    if front_normal(vertices, triangles)[2] < 0:
        triangles = ccw_from_clockwise(triangles)

    colour = texture_basis = None
    if c_mean.size:
        if c_mean.size != 3 * n:
            raise ModelFileError(path, f"colour mean has {c_mean.size} values, expected {3 * n}")
        scale = 255.0 if float(c_mean.max()) > 1.5 else 1.0
        colour = c_mean.reshape(n, 3) / scale
        texture_basis = _scaled_basis(path, c_mean, c_basis, c_eig, "colour") / scale

    uv = mirror = None
    if n_uv:
        if n_uv != n:
            raise ModelFileError(path, f"{n_uv} texture coordinates for {n} vertices")
        uv = uv_file.reshape(n, 2).copy()
        uv[:, 1] = 1.0 - uv[:, 1]  # eos stores v downwards (image rows); ours points up
        try:
            mirror = uv_mirror_map(uv)
        except ValueError:
            mirror = None

    parts = [identity]
    if expression_bin is not None:
        _, shapes = read_expression_blendshapes(expression_bin, n_vertices=n)
        for k in range(shapes.shape[0]):
            if np.linalg.norm(shapes[k] - vertices) < np.linalg.norm(shapes[k]):
                shapes[k] = shapes[k] - vertices  # a full shape, not an offset
        parts.append(shapes)

    landmarks = {}
    if ibug_map is not None:
        landmarks["ibug68"] = read_ibug_mapping(ibug_map, n_vertices=n)

    if symmetry_txt is not None:
        mirror = _mirror_from_list(Path(symmetry_txt), read_symmetry_list(symmetry_txt), mirror, n)

    return MorphableModel(
        name=f"Surrey Face Model ({path.stem})",
        mean=vertices,
        basis=np.concatenate(parts, axis=0),
        n_identity=identity.shape[0],
        triangles=triangles,
        landmarks=landmarks,
        uv=uv,
        colour=colour,
        texture_basis=texture_basis,
        mirror=mirror,
        licence=SURREY_LICENCE,
        source=str(path),
    )


def _mirror_from_list(path: Path, sym: np.ndarray, uv_mirror: np.ndarray | None, n: int) -> np.ndarray | None:
    """Combine the reference symmetry list (M ≤ N entries) with the UV mirror pairing."""
    if sym.size > n:
        raise ModelFileError(path, f"{sym.size} entries but the model has {n} vertices")
    if sym.size == n:
        return sym
    if uv_mirror is None:
        warnings.warn(
            f"{path.name} covers {sym.size} of {n} vertices and the UVs are not mirror-symmetric: no mirror map",
            stacklevel=3,
        )
        return None
    disagree = np.flatnonzero(uv_mirror[: sym.size] != sym)
    if disagree.size:
        raise ModelFileError(
            path,
            f"disagrees with the model's UV mirror pairing at {disagree.size} of its {sym.size} vertices "
            f"(first: vertex {int(disagree[0])})",
        )
    return uv_mirror
