"""Model-file loaders on tiny fixture files that the tests write in each exact format.

Every fixture is the same small symmetric "face" patch (a bump on a grid, x to the right, y up, nose
towards +z, millimetres), written the way each provider stores it: BFM 2009 in micrometres with clockwise
1-based triangles (MATLAB v5 and v7.3), statismo HDF5 for BFM 2017, eos cereal binaries for the Surrey model.
"""

from __future__ import annotations

import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

from mmstn.errors import ModelFileError
from mmstn.models.authors import load_bfm_uv, read_anl, uv_mirror_map
from mmstn.models.bfm2009 import front_normal, load_bfm2009, read_mat_variables
from mmstn.models.bfm2017 import load_bfm2017
from mmstn.models.morphable import MorphableModel
from mmstn.models.registry import available_models, load_model
from mmstn.models.surrey import load_surrey, read_expression_blendshapes, read_ibug_mapping
from mmstn.models.tddfa import (
    build_paper_model,
    laplace_beltrami,
    load_tddfa_expressions,
    transfer_expressions,
)

NX, NY = 7, 6  # odd NX: one midline column
N = NX * NY
K = 6


# ----------------------------------------------------------------------------- fixture geometry
def grid_face(nx: int = NX, ny: int = NY) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices (N, 3) mm, triangles (F, 3) 0-based counter-clockwise from +z, uv (N, 2) v up)."""
    xs = np.linspace(-40.0, 40.0, nx)
    ys = np.linspace(-50.0, 50.0, ny)
    x, y = np.meshgrid(xs, ys)
    z = 30.0 * np.exp(-(x**2 + y**2) / 1500.0)
    vertices = np.column_stack([x.ravel(), y.ravel(), z.ravel()])
    idx = np.arange(nx * ny).reshape(ny, nx)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    triangles = np.concatenate([np.column_stack([a, b, d]), np.column_stack([a, d, c])])
    uv = np.column_stack([(x.ravel() + 40.0) / 80.0, (y.ravel() + 50.0) / 100.0])
    return vertices, triangles, uv


def orthonormal(rows: int, cols: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((rows, cols)))
    return q


V, F, UV = grid_face()
SHAPE_PC = orthonormal(3 * N, K, 1)
SHAPE_EV = np.array([3000.0, 2000.0, 1500.0, 1000.0, 700.0, 500.0])  # µm standard deviations
TEX_MU = np.random.default_rng(2).uniform(0, 255, 3 * N)
TEX_PC = orthonormal(3 * N, K, 3)
TEX_EV = np.array([30.0, 20.0, 10.0, 8.0, 6.0, 4.0])


def bfm_variables(**overrides) -> dict[str, np.ndarray]:
    """The BFM 2009 variables with their MATLAB sizes (µm, interleaved, 1-based clockwise tl)."""
    var = {
        "shapeMU": (V * 1000.0).reshape(-1, 1).astype(np.float32),
        "shapePC": SHAPE_PC.astype(np.float32),
        "shapeEV": SHAPE_EV.reshape(-1, 1).astype(np.float32),
        "texMU": TEX_MU.reshape(-1, 1).astype(np.float32),
        "texPC": TEX_PC.astype(np.float32),
        "texEV": TEX_EV.reshape(-1, 1).astype(np.float32),
        "tl": (F[:, [0, 2, 1]] + 1).astype(np.float64),  # clockwise from the front, 1-based
        "segbin": np.ones((N, 4)),
    }
    var.update(overrides)
    return {k: v for k, v in var.items() if v is not None}


def write_mat5(path: Path, variables: dict[str, np.ndarray]) -> Path:
    scipy.io.savemat(str(path), variables, format="5")
    return path


def write_mat73(path: Path, variables: dict[str, np.ndarray]) -> Path:
    """A MATLAB v7.3 file: HDF5 with a 512-byte MATLAB header, arrays stored transposed, MATLAB_class."""
    classes = {np.dtype("float64"): "double", np.dtype("float32"): "single", np.dtype("uint16"): "uint16"}
    with h5py.File(str(path), "w", userblock_size=512) as f:
        for name, value in variables.items():
            value = np.asarray(value)
            ds = f.create_dataset(name, data=value.T)  # MATLAB is column-major
            ds.attrs["MATLAB_class"] = np.bytes_(classes[value.dtype])
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with path.open("r+b") as fh:
        fh.write(header.ljust(116, b" ") + b"\x00" * 8 + struct.pack("<H", 0x0200) + b"IM")
    return path


def write_anl(path: Path, one_based: list[int], header: str = "test landmarks") -> Path:
    path.write_text(f"%{header}\n%\n" + "\n".join(str(i) for i in one_based) + "\n")
    return path


def write_statismo(path: Path, *, clockwise: bool = False, drop: str | None = None) -> dict[str, np.ndarray]:
    """A tiny BFM 2017-like statismo file; returns the arrays written."""
    rng = np.random.default_rng(5)
    k_shape, k_expr, k_col = 4, 3, 2
    arrays = {
        "shape/model/mean": V.reshape(-1).astype(np.float32),
        "shape/model/pcaBasis": orthonormal(3 * N, k_shape, 6).astype(np.float32),
        "shape/model/pcaVariance": np.array([400.0, 100.0, 25.0, 4.0], dtype=np.float32),
        "shape/model/noiseVariance": np.array(0.0, dtype=np.float32),
        "shape/representer/points": V.T.astype(np.float32),
        "shape/representer/cells": (F[:, [0, 2, 1]] if clockwise else F).T.astype(np.int32),
        "expression/model/mean": rng.normal(0, 0.5, 3 * N).astype(np.float32),
        "expression/model/pcaBasis": orthonormal(3 * N, k_expr, 7).astype(np.float32),
        "expression/model/pcaVariance": np.array([9.0, 4.0, 1.0], dtype=np.float32),
        "color/model/mean": rng.uniform(0.2, 0.8, 3 * N).astype(np.float32),
        "color/model/pcaBasis": orthonormal(3 * N, k_col, 8).astype(np.float32),
        "color/model/pcaVariance": np.array([0.01, 0.0025], dtype=np.float32),
    }
    with h5py.File(str(path), "w") as f:
        for key, value in arrays.items():
            if key != drop:
                f.create_dataset(key, data=value)
    return arrays


# eos cereal binaries -----------------------------------------------------------------------------
def _matrix(a: np.ndarray) -> bytes:
    a = np.asarray(a, dtype="<f4")
    if a.ndim == 1:
        a = a[:, None]
    return struct.pack("<ii", *a.shape) + a.ravel(order="F").tobytes()


SFM_BASIS = orthonormal(3 * N, 3, 9)
SFM_EIG = np.array([900.0, 400.0, 100.0])  # variances, mm²


def sfm_bytes(*, clockwise: bool = False, version: int = 1, with_uv: bool = True) -> bytes:
    tri = F[:, [0, 2, 1]] if clockwise else F
    out = struct.pack("<I", version)
    out += _matrix(V.reshape(-1)) + _matrix(SFM_BASIS) + _matrix(SFM_EIG)
    out += struct.pack("<Q", len(tri)) + tri.astype("<i4").tobytes()
    out += struct.pack("<ii", 0, 1) + struct.pack("<ii", 0, 0) + struct.pack("<ii", 0, 1)  # empty colour model
    out += struct.pack("<Q", 0)
    uv_file = np.column_stack([UV[:, 0], 1.0 - UV[:, 1]])  # eos: v downwards
    if with_uv:
        out += struct.pack("<Q", N) + uv_file.astype("<f8").tobytes()
    else:
        out += struct.pack("<Q", 0)
    return out


EXPR_NAMES = ["anger", "happiness"]
EXPR_OFFSETS = np.stack([np.tile([0.0, 1.0, 0.5], (N, 1)), np.tile([2.0, 0.0, -1.0], (N, 1))])


def blendshape_bytes(shapes: np.ndarray = EXPR_OFFSETS, names: list[str] = EXPR_NAMES) -> bytes:
    out = struct.pack("<Q", len(names))
    for name, shape in zip(names, shapes, strict=True):
        raw = name.encode()
        out += struct.pack("<Q", len(raw)) + raw + _matrix(shape.reshape(-1))
    return out


IBUG_TEXT = """# a comment
[landmark_mappings]
            # 1 to 8 absent
 9 =    3   # chin
31 =   24   # nose tip
37 = 29
46 = 33

[contour_landmarks]
right = [ 1,
          2 ]
"""


def write_sfm(folder: Path, **kwargs) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sfm_shape_3448.bin").write_bytes(sfm_bytes(**kwargs))
    (folder / "expression_blendshapes_3448.bin").write_bytes(blendshape_bytes())
    (folder / "ibug_to_sfm.txt").write_text(IBUG_TEXT)
    # mirror of the first 14 vertices (two grid rows): column c <-> NX-1-c, 1-based, comment on line 1
    first = [r * NX + (NX - 1 - c) + 1 for r in range(2) for c in range(NX)]
    lines = [f"{first[0]} # 1-based mirror partners"] + [str(i) for i in first[1:]]
    (folder / "sfm_reference_symmetry.txt").write_text("\n".join(lines) + "\n")
    return folder / "sfm_shape_3448.bin"


def grid_mirror() -> np.ndarray:
    idx = np.arange(N).reshape(NY, NX)
    return idx[:, ::-1].ravel()


# ----------------------------------------------------------------------------- BFM 2009
@pytest.mark.parametrize("writer", [write_mat5, write_mat73], ids=["v5", "v7.3"])
def test_bfm2009_units_scaling_winding(tmp_path, writer):
    path = writer(tmp_path / "01_MorphableModel.mat", bfm_variables())
    model = load_bfm2009(path)
    assert model.n_vertices == N and model.n_components == K and model.n_identity == K
    np.testing.assert_allclose(model.mean.numpy(), V, atol=1e-4)  # µm -> mm
    expected = (SHAPE_PC * SHAPE_EV).T.reshape(K, N, 3) / 1000.0
    np.testing.assert_allclose(model.basis.numpy(), expected, atol=1e-5)
    # one unit of α_k moves the face by exactly shapeEV[k] µm (RMS over 3N values, orthonormal PC)
    np.testing.assert_allclose(np.linalg.norm(model.basis.numpy().reshape(K, -1), axis=1), SHAPE_EV / 1000, rtol=1e-5)
    np.testing.assert_array_equal(model.triangles.numpy(), F)  # clockwise 1-based -> CCW 0-based
    assert front_normal(model.mean.numpy(), model.triangles.numpy())[2] > 0.9
    np.testing.assert_allclose(model.colour.numpy(), TEX_MU.reshape(N, 3) / 255.0, atol=1e-6)
    np.testing.assert_allclose(model.texture_basis.numpy(), (TEX_PC * TEX_EV).T.reshape(K, N, 3) / 255.0, atol=1e-6)
    assert "Basel" in model.licence and model.source == str(path)


def test_mat73_fixture_is_transposed_hdf5_with_header(tmp_path):
    path = write_mat73(tmp_path / "m.mat", bfm_variables())
    assert path.read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
    with h5py.File(path, "r") as f:
        assert f["shapePC"].shape == (K, 3 * N)  # what h5py sees: MATLAB's 3N×K transposed
        assert f["shapePC"].attrs["MATLAB_class"] == b"single"
    var = read_mat_variables(path, ["shapePC", "shapeMU"])
    assert var["shapePC"].shape == (3 * N, K) and var["shapeMU"].shape == (3 * N, 1)


def test_bfm2009_without_texture(tmp_path):
    variables = bfm_variables(texMU=None, texPC=None, texEV=None)
    model = load_bfm2009(write_mat5(tmp_path / "bfm.mat", variables), with_texture=False)
    assert model.colour is None and model.texture_basis is None


def test_bfm2009_landmarks_and_uv(tmp_path):
    path = write_mat5(tmp_path / "bfm.mat", bfm_variables())
    a21 = write_anl(tmp_path / "Landmarks21_BFM.anl", list(range(1, 22)))
    a68 = write_anl(tmp_path / "Landmarks68_BFM.anl", [(i % N) + 1 for i in range(68)])
    uv_path = write_mat5(tmp_path / "BFM_UV.mat", {"UV": UV})
    model = load_bfm2009(path, landmarks_anl=[a21, a68], uv_path=uv_path)
    np.testing.assert_array_equal(model.landmarks["aflw21"].numpy(), np.arange(21))  # 1-based -> 0-based
    np.testing.assert_array_equal(model.landmarks["ibug68"].numpy(), np.arange(68) % N)
    np.testing.assert_allclose(model.uv.numpy(), UV)
    np.testing.assert_array_equal(model.mirror.numpy(), grid_mirror())
    mean = model.mean.numpy()
    np.testing.assert_allclose(mean[model.mirror.numpy()] * [-1, 1, 1], mean, atol=1e-4)


def test_bfm2009_single_anl_path(tmp_path):
    path = write_mat5(tmp_path / "bfm.mat", bfm_variables())
    model = load_bfm2009(path, landmarks_anl=write_anl(tmp_path / "l.anl", list(range(1, 22))))
    assert set(model.landmarks) == {"aflw21"}


@pytest.mark.parametrize("writer", [write_mat5, write_mat73], ids=["v5", "v7.3"])
def test_bfm2009_truncated(tmp_path, writer):
    full = writer(tmp_path / "full.mat", bfm_variables())
    cut = tmp_path / "01_MorphableModel.mat"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ModelFileError, match=r"01_MorphableModel\.mat") as info:
        load_bfm2009(cut)
    assert "data/README.md" in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"shapePC": None}, "shapePC"),
        ({"shapeEV": SHAPE_EV[:3].reshape(-1, 1)}, "standard deviations"),
        ({"shapeMU": np.zeros((3 * N - 1, 1))}, "3N"),
        ({"tl": F + 0.0}, "1-based"),  # 0-based indices in a 1-based file
        ({"tl": F + 1.5}, "non-integer"),
        ({"texMU": np.zeros((6, 1))}, "texMU"),
    ],
)
def test_bfm2009_malformed(tmp_path, overrides, needle):
    path = write_mat5(tmp_path / "bad_bfm.mat", bfm_variables(**overrides))
    with pytest.raises(ModelFileError, match=r"bad_bfm\.mat") as info:
        load_bfm2009(path)
    assert needle in str(info.value)


def test_bfm2009_missing_and_garbage(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        load_bfm2009(tmp_path / "absent.mat")
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ModelFileError, match=r"junk\.mat"):
        load_bfm2009(junk)


def test_bfm2009_wrong_landmark_file(tmp_path):
    path = write_mat5(tmp_path / "bfm.mat", bfm_variables())
    grid = write_anl(tmp_path / "Landmarks21_112.anl", [2489] * 21)
    with pytest.raises(ModelFileError, match=r"Landmarks21_112\.anl"):
        load_bfm2009(path, landmarks_anl=grid)
    odd = write_anl(tmp_path / "odd.anl", [1, 2, 3])
    with pytest.raises(ModelFileError, match="expected 21"):
        load_bfm2009(path, landmarks_anl=odd)


# ----------------------------------------------------------------------------- authors' files
def test_read_anl(tmp_path):
    path = tmp_path / "x.anl"
    path.write_text("%header line\n% another\n\n12\n  7  % trailing comment\n1\n")
    idx = read_anl(path)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx, [11, 6, 0])


@pytest.mark.parametrize("body", ["%only comments\n", "3\nfoo\n", "0\n", "2.5\n"])
def test_read_anl_errors(tmp_path, body):
    path = tmp_path / "bad.anl"
    path.write_text(body)
    with pytest.raises(ModelFileError, match=r"bad\.anl"):
        read_anl(path)


def test_load_bfm_uv_checks(tmp_path):
    path = write_mat5(tmp_path / "BFM_UV.mat", {"UV": UV})
    np.testing.assert_allclose(load_bfm_uv(path, n_vertices=N), UV)
    with pytest.raises(ModelFileError, match="53490"):
        load_bfm_uv(path)  # default: the BFM's 53490 vertices
    bad = write_mat5(tmp_path / "bad_uv.mat", {"UV": UV * 2})
    with pytest.raises(ModelFileError, match=r"bad_uv\.mat.*\[0, 1\]"):
        load_bfm_uv(bad, n_vertices=N)
    with pytest.raises(ModelFileError, match="'UV'"):
        load_bfm_uv(write_mat5(tmp_path / "other.mat", {"X": UV}), n_vertices=N)


def test_uv_mirror_map():
    mirror = uv_mirror_map(UV)
    np.testing.assert_array_equal(mirror, grid_mirror())
    assert (mirror == np.arange(N)).sum() == NY  # the midline column
    skewed = UV.copy()
    skewed[0, 0] += 0.01
    with pytest.raises(ValueError, match="no mirror partner"):
        uv_mirror_map(skewed)


# ----------------------------------------------------------------------------- BFM 2017
def test_bfm2017(tmp_path):
    arrays = write_statismo(tmp_path / "model2017-1_bfm_nomouth.h5")
    model = load_bfm2017(tmp_path / "model2017-1_bfm_nomouth.h5")
    assert model.n_identity == 4 and model.n_expression == 3
    mean = arrays["shape/model/mean"] + arrays["expression/model/mean"]
    np.testing.assert_allclose(model.mean.numpy(), mean.reshape(N, 3), atol=1e-5)
    shape_basis = arrays["shape/model/pcaBasis"] * np.sqrt(arrays["shape/model/pcaVariance"])
    np.testing.assert_allclose(model.basis.numpy()[:4], shape_basis.T.reshape(4, N, 3), atol=1e-6)
    expr_basis = arrays["expression/model/pcaBasis"] * np.sqrt(arrays["expression/model/pcaVariance"])
    np.testing.assert_allclose(model.basis.numpy()[4:], expr_basis.T.reshape(3, N, 3), atol=1e-6)
    np.testing.assert_array_equal(model.triangles.numpy(), F)  # (3, M) cells -> (M, 3), CCW kept
    np.testing.assert_allclose(model.colour.numpy(), arrays["color/model/mean"].reshape(N, 3), atol=1e-6)
    assert model.texture_basis.shape == (2, N, 3)


def test_bfm2017_clockwise_cells_are_flipped(tmp_path):
    write_statismo(tmp_path / "cw.h5", clockwise=True)
    model = load_bfm2017(tmp_path / "cw.h5", with_expression=False, with_texture=False)
    assert model.n_expression == 0 and model.colour is None
    assert front_normal(model.mean.numpy(), model.triangles.numpy())[2] > 0.9


def test_bfm2017_errors(tmp_path):
    write_statismo(tmp_path / "noVariance.h5", drop="shape/model/pcaVariance")
    with pytest.raises(ModelFileError, match=r"noVariance\.h5.*pcaVariance"):
        load_bfm2017(tmp_path / "noVariance.h5")
    write_statismo(tmp_path / "full.h5")
    data = (tmp_path / "full.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFileError, match=r"cut\.h5"):
        load_bfm2017(tmp_path / "cut.h5")


# ----------------------------------------------------------------------------- Surrey
def test_surrey_full(tmp_path):
    shape_bin = write_sfm(tmp_path / "sfm")
    folder = shape_bin.parent
    model = load_surrey(
        shape_bin,
        folder / "expression_blendshapes_3448.bin",
        folder / "ibug_to_sfm.txt",
        folder / "sfm_reference_symmetry.txt",
    )
    assert model.n_vertices == N and model.n_identity == 3 and model.n_expression == 2
    np.testing.assert_allclose(model.mean.numpy(), V, atol=1e-4)
    expected = (SFM_BASIS * np.sqrt(SFM_EIG)).T.reshape(3, N, 3)  # orthonormal × sqrt(variance)
    np.testing.assert_allclose(model.basis.numpy()[:3], expected, atol=1e-5)
    np.testing.assert_allclose(model.basis.numpy()[3:], EXPR_OFFSETS, atol=1e-6)  # offsets, unscaled
    np.testing.assert_array_equal(model.triangles.numpy(), F)
    np.testing.assert_allclose(model.uv.numpy(), UV, atol=1e-12)  # v flipped back to "up"
    np.testing.assert_array_equal(model.mirror.numpy(), grid_mirror())
    lm = model.landmarks["ibug68"].numpy()
    assert lm.shape == (68,) and lm[8] == 3 and lm[30] == 24 and lm[36] == 29 and lm[45] == 33
    assert (lm == -1).sum() == 64
    assert "non-commercial" in model.licence


def test_surrey_clockwise_file_is_flipped_and_plain(tmp_path):
    path = tmp_path / "cw.bin"
    path.write_bytes(sfm_bytes(clockwise=True, with_uv=False))
    model = load_surrey(path)
    assert front_normal(model.mean.numpy(), model.triangles.numpy())[2] > 0.9
    assert model.uv is None and model.mirror is None and model.n_expression == 0


def test_surrey_full_shape_blendshapes_become_offsets(tmp_path):
    shape_bin = write_sfm(tmp_path / "sfm")
    (tmp_path / "full.bin").write_bytes(blendshape_bytes(EXPR_OFFSETS + V[None]))
    model = load_surrey(shape_bin, tmp_path / "full.bin")
    np.testing.assert_allclose(model.basis.numpy()[3:], EXPR_OFFSETS, atol=1e-4)


def test_surrey_read_helpers(tmp_path):
    write_sfm(tmp_path)
    names, shapes = read_expression_blendshapes(tmp_path / "expression_blendshapes_3448.bin", n_vertices=N)
    assert names == EXPR_NAMES and shapes.shape == (2, N, 3)
    lm = read_ibug_mapping(tmp_path / "ibug_to_sfm.txt", n_vertices=N)
    assert lm[30] == 24
    (tmp_path / "bad.txt").write_text("[landmark_mappings]\n70 = 3\n")
    with pytest.raises(ModelFileError, match=r"bad\.txt"):
        read_ibug_mapping(tmp_path / "bad.txt")
    (tmp_path / "none.txt").write_text("[other]\n1 = 3\n")
    with pytest.raises(ModelFileError, match="landmark_mappings"):
        read_ibug_mapping(tmp_path / "none.txt")
    with pytest.raises(ModelFileError, match="vertex 24"):
        read_ibug_mapping(tmp_path / "ibug_to_sfm.txt", n_vertices=10)


def test_surrey_symmetry_disagreement(tmp_path):
    shape_bin = write_sfm(tmp_path)
    (tmp_path / "sym.txt").write_text("2\n1\n3\n")  # swaps vertices 0 and 1: not the mirror
    with pytest.raises(ModelFileError, match=r"sym\.txt.*disagrees"):
        load_surrey(shape_bin, symmetry_txt=tmp_path / "sym.txt")
    (tmp_path / "notinv.txt").write_text("2\n3\n1\n")
    with pytest.raises(ModelFileError, match="involution"):
        load_surrey(shape_bin, symmetry_txt=tmp_path / "notinv.txt")


@pytest.mark.parametrize("keep", [2, 20, 100, 400, -3])
def test_surrey_truncated(tmp_path, keep):
    data = sfm_bytes()
    path = tmp_path / "sfm_shape_3448.bin"
    path.write_bytes(data[:keep])
    with pytest.raises(ModelFileError, match=r"sfm_shape_3448\.bin: truncated") as info:
        load_surrey(path)
    assert "at least" in str(info.value) and f"it has {len(data[:keep])}" in str(info.value)


def test_surrey_malformed(tmp_path):
    path = tmp_path / "m.bin"
    path.write_bytes(sfm_bytes() + b"\x00\x00")
    with pytest.raises(ModelFileError, match="unexpected bytes"):
        load_surrey(path)
    path.write_bytes(sfm_bytes(version=2))
    with pytest.raises(ModelFileError, match="version 2"):
        load_surrey(path)
    shape_bin = write_sfm(tmp_path / "sfm")
    cut = tmp_path / "expression_blendshapes_3448.bin"
    cut.write_bytes(blendshape_bytes()[:-10])
    with pytest.raises(ModelFileError, match=r"expression_blendshapes_3448\.bin: truncated.*at least"):
        load_surrey(shape_bin, cut)


# ----------------------------------------------------------------------------- 3DDFA transfer
def flat_grid(n: int = 9) -> tuple[np.ndarray, np.ndarray]:
    v, f, _ = grid_face(n, n)
    return v, f


def stacked_solution(vertices, triangles, w, vertex_map):
    """The authors' formulation: lstsq of [L; S] X = [L V; S V + W], D = X − V (dense, small meshes)."""
    n = len(vertices)
    lap = laplace_beltrami(vertices, triangles).toarray()
    sel = np.zeros((len(vertex_map), n))
    sel[np.arange(len(vertex_map)), vertex_map] = 1.0
    a = np.vstack([lap, sel])
    b = np.vstack([lap @ vertices, sel @ vertices + w])
    x, *_ = np.linalg.lstsq(a, b, rcond=None)
    return x - vertices


def test_laplace_beltrami_properties():
    v, f = flat_grid()
    lap = laplace_beltrami(v, f)
    assert sp.issparse(lap)
    dense = lap.toarray()
    np.testing.assert_allclose(dense, dense.T, atol=1e-12)
    np.testing.assert_allclose(dense.sum(axis=1), 0.0, atol=1e-10)
    assert np.linalg.eigvalsh(dense).min() > -1e-9  # positive semi-definite
    igl = pytest.importorskip("igl")
    np.testing.assert_allclose(dense, -2.0 * igl.cotmatrix(v, f.astype(np.int64)).toarray(), atol=1e-10)


def test_transfer_matches_stacked_least_squares():
    v, f = flat_grid()
    n = len(v)
    trimmed = np.array([30, 31, 39, 40, 41, 49])  # a small interior patch, like the mouth interior
    keep = np.setdiff1d(np.arange(n), trimmed)
    rng = np.random.default_rng(0)
    w_exp = rng.normal(0, 1000.0, (3 * keep.size, 3))  # µm
    d = transfer_expressions((v, f), w_exp, keep, n_expression=2)
    assert d.shape == (2, n, 3)
    for e in range(2):
        ref = stacked_solution(v, f, w_exp[:, e].reshape(-1, 3), keep) / 1000.0
        np.testing.assert_allclose(d[e], ref, atol=1e-8)


def test_transfer_reproduces_and_fills_smoothly():
    v, f = flat_grid(15)
    n = len(v)
    centre = np.argmin(np.linalg.norm(v[:, :2], axis=1))
    trimmed = np.flatnonzero(np.linalg.norm(v[:, :2] - v[centre, :2], axis=1) < 12.0)  # 11 vertices
    keep = np.setdiff1d(np.arange(n), trimmed)
    # expression 0: a constant shift (different per xyz, to check the interleaving): in L's null space,
    # so it is reproduced exactly, trimmed vertices included.
    # expression 1: a gentle field of amplitude ~1 mm: a soft fit on the kept vertices (the unweighted
    # Laplacian term pulls mostly at the mesh boundary) and a close, smooth fill of the trimmed patch.
    shift = np.array([1000.0, -2000.0, 500.0])
    smooth = 1000.0 * np.column_stack([np.sin(v[:, 0] / 80), np.cos(v[:, 1] / 90), 0.3 + v[:, 0] * v[:, 1] / 20000])
    w_exp = np.column_stack([np.tile(shift, keep.size), smooth[keep].reshape(-1)])
    d = transfer_expressions((v, f), w_exp, keep, n_expression=2)
    np.testing.assert_allclose(d[0], np.tile(shift / 1000.0, (n, 1)), atol=1e-9)
    assert np.abs(d[1][keep] - smooth[keep] / 1000.0).max() < 0.1
    assert np.abs(d[1][trimmed] - smooth[trimmed] / 1000.0).max() < 0.02


def test_transfer_input_checks():
    v, f = flat_grid(5)
    keep = np.arange(20)
    with pytest.raises(ValueError, match="3M"):
        transfer_expressions((v, f), np.zeros((10, 2)), keep)
    with pytest.raises(ValueError, match="n_expression"):
        transfer_expressions((v, f), np.zeros((60, 2)), keep, n_expression=3)
    with pytest.raises(ValueError, match="vertex_map"):
        transfer_expressions((v, f), np.zeros((60, 2)), keep + 10, n_expression=1)


def write_tddfa(folder: Path, keep: np.ndarray, n_cols: int = 6) -> tuple[Path, Path, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(4)
    w_exp = rng.normal(0, 800.0, (3 * keep.size, n_cols)).astype(np.float32)
    expr = write_mat5(folder / "Model_Expression.mat", {"w_exp": w_exp, "mu_exp": np.zeros((3 * keep.size, 1))})
    vmap = write_mat5(folder / "map_tddfa_to_basel.mat", {"map_tddfa_to_basel": keep.astype(np.uint16)[None, :]})
    return expr, vmap, w_exp


def test_paper_model(tmp_path):
    bfm = write_mat5(tmp_path / "bfm.mat", bfm_variables())
    keep = np.setdiff1d(np.arange(N), [17, 24])
    expr, vmap, _ = write_tddfa(tmp_path, keep)
    w_loaded, map_loaded = load_tddfa_expressions(expr, vmap)
    np.testing.assert_array_equal(map_loaded, keep)
    model = build_paper_model(bfm, expr, vmap)
    assert model.n_components == 10 and model.n_identity == 5 and model.n_expression == 5
    full = load_bfm2009(bfm)
    np.testing.assert_allclose(model.basis.numpy()[:5], full.basis.numpy()[:5])
    ref = transfer_expressions(full, w_loaded, map_loaded, 5)
    np.testing.assert_allclose(model.basis.numpy()[5:], ref, rtol=1e-5, atol=1e-6)
    assert "3DDFA" in model.licence


def test_tddfa_file_errors(tmp_path):
    keep = np.arange(10)
    expr, _, _ = write_tddfa(tmp_path, keep)
    other = write_mat5(tmp_path / "short_map.mat", {"map_tddfa_to_basel": np.arange(5, dtype=np.uint16)[None]})
    with pytest.raises(ModelFileError, match=r"Model_Expression\.mat.*w_exp"):
        load_tddfa_expressions(expr, other)
    dup = write_mat5(tmp_path / "dup.mat", {"map_tddfa_to_basel": np.zeros((1, 10), np.uint16)})
    with pytest.raises(ModelFileError, match=r"dup\.mat"):
        load_tddfa_expressions(expr, dup)
    with pytest.raises(ModelFileError, match="map_tddfa_to_basel"):
        load_tddfa_expressions(expr, write_mat5(tmp_path / "empty.mat", {"x": np.zeros(1)}))


# ----------------------------------------------------------------------------- registry
def populate(root: Path) -> None:
    (root / "PublicMM1").mkdir(parents=True)
    write_mat5(root / "PublicMM1" / "01_MorphableModel.mat", bfm_variables())
    keep = np.setdiff1d(np.arange(N), [17])
    write_tddfa(root / "3DDFA", keep)
    (root / "3DDFA" / "map_tddfa_to_basel.mat").rename(root / "map_tddfa_to_basel.mat")
    (root / "3dmmasstn" / "landmarks").mkdir(parents=True)
    (root / "map_tddfa_to_basel.mat").rename(root / "3dmmasstn" / "map_tddfa_to_basel.mat")
    write_anl(root / "3dmmasstn" / "landmarks" / "Landmarks21_BFM.anl", list(range(1, 22)))
    write_sfm(root / "sfm")


def test_registry_finds_and_loads(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MMSTN_DATA", str(tmp_path))
    populate(tmp_path)
    found = available_models()
    assert list(found) == ["paper", "bfm2009", "surrey", "ict", "builtin"]
    assert found["surrey"] == tmp_path / "sfm" / "sfm_shape_3448.bin" and found["builtin"] is None
    model = load_model()
    out = capsys.readouterr().out
    assert model.n_components == 10 and "licence" in out and "3DDFA" in out
    assert "aflw21" in model.landmarks
    surrey = load_model("surrey", verbose=False)
    assert surrey.n_expression == 2 and "ibug68" in surrey.landmarks and surrey.mirror is not None
    assert load_model("BFM2009", verbose=False).n_components == K
    assert capsys.readouterr().out == ""


def test_registry_by_path(tmp_path, monkeypatch):
    monkeypatch.setenv("MMSTN_DATA", str(tmp_path / "empty"))
    shape_bin = write_sfm(tmp_path / "elsewhere")
    surrey = load_model(shape_bin, verbose=False)
    assert surrey.n_expression == 2  # sidecar files next to the .bin are used
    saved = surrey.save(tmp_path / "m.npz")
    again = load_model(str(saved), verbose=False)
    assert isinstance(again, MorphableModel) and torch_equal(again.mean, surrey.mean)
    write_statismo(tmp_path / "x.h5")
    assert load_model(tmp_path / "x.h5", verbose=False).n_expression == 3
    bfm = write_mat5(tmp_path / "bfm.mat", bfm_variables())
    assert load_model(bfm, verbose=False).name == "BFM 2009"
    expr, _, _ = write_tddfa(tmp_path / "t", np.arange(N))
    with pytest.raises(ModelFileError, match="3DDFA expression file"):
        load_model(expr, verbose=False)
    (tmp_path / "a.xyz").write_text("v 0 0 0\n")
    with pytest.raises(ModelFileError, match="unknown model file type"):
        load_model(tmp_path / "a.xyz", verbose=False)


def test_registry_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("MMSTN_DATA", str(tmp_path))
    assert available_models() == {"ict": None, "builtin": None}
    with pytest.raises(ModelFileError, match=r"01_MorphableModel\.mat.*not found.*data/README\.md"):
        load_model("bfm2009")
    with pytest.raises(ModelFileError, match="model2017"):
        load_model("bfm2017")
    with pytest.raises(ModelFileError, match="not a model name"):
        load_model("no-such-model")


def test_registry_falls_back_to_the_shipped_ict_face(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MMSTN_DATA", str(tmp_path))
    model = load_model()
    assert model.name.startswith("ICT FaceKit") and model.n_vertices == 7482
    assert "MIT" in capsys.readouterr().out
    # the Surrey model is not chosen automatically: its licence is non-commercial
    write_sfm(tmp_path / "sfm")
    assert "surrey" in available_models() and load_model(verbose=False).name.startswith("ICT FaceKit")


def torch_equal(a, b) -> bool:
    return bool((a == b).all())
