"""The "bring your own face model" path of notebook 01: OBJ scans -> meshtools -> from_arrays -> grid model -> STN.

The stand-in scans are drawn from the shipped ICT face's identity components and written as OBJ files with the
flaws of real scans (open eyes and mouth, an asymmetric cheek, a stray speck), exactly as the notebook does.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

trimesh = pytest.importorskip("trimesh")

from mmstn.models import MorphableModel, ict_face_model, load_mesh, load_model  # noqa: E402
from mmstn.models import meshtools as mt  # noqa: E402
from mmstn.stn import STN3DMM, STNConfig  # noqa: E402
from mmstn.theta import Theta  # noqa: E402
from mmstn.uv import make_grid_model  # noqa: E402

N_SCANS = 20  # the notebook's number


def _write_scans(folder: Path, n_scans: int = N_SCANS) -> list[Path]:
    ict = ict_face_model()
    people = ict.subset(ict.n_identity, 0)
    g = torch.Generator().manual_seed(0)
    shapes = people.shape(torch.randn(n_scans, people.n_components, generator=g)).numpy()
    opened = np.arange(ict.n_vertices) < ict.n_vertices - 3  # the last 3 vertices are the hole-closing fans
    _, faces, _ = mt.crop(ict.mean.numpy(), ict.triangles.numpy(), opened, largest=False)
    n = int(opened.sum())
    faces = np.concatenate([faces, [[n, n + 1, n + 2]]])
    paths = []
    for s, shape in enumerate(shapes):
        x = shape[opened].copy()
        x[:, 2] += 1.5 * np.exp(-((x[:, 0] - 45) ** 2 + (x[:, 1] + 15) ** 2) / (2 * 20**2))
        x = np.concatenate([x, [[0.0, 115.0, 60.0], [3.0, 115.0, 60.0], [0.0, 118.0, 60.0]]])
        paths.append(folder / f"scan_{s:02d}.obj")
        trimesh.Trimesh(x, faces, process=False).export(paths[-1])
    return paths


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> list[Path]:
    return _write_scans(tmp_path_factory.mktemp("own_model"))


def test_the_shipped_fans_are_the_last_three_vertices() -> None:
    """The notebook opens the eyes and mouth by dropping the last 3 vertices; they must be the fan centres."""
    ict = ict_face_model()
    F = ict.triangles.numpy()
    assert len(mt.boundary_loops(F)) == 1
    _, F_open, _ = mt.crop(ict.mean.numpy(), F, np.arange(ict.n_vertices) < ict.n_vertices - 3, largest=False)
    assert [len(b) for b in mt.boundary_loops(F_open)][1:] == [74, 42, 42]


def test_obj_reads_as_mean_only_model_in_file_order(scans) -> None:
    first = load_model(scans[0], verbose=False)
    assert first.n_components == 0 and first.mirror is None
    assert sorted(len(b) for b in mt.boundary_loops(first.triangles.numpy())) == [3, 42, 42, 74, 254]
    with pytest.raises(mt.MeshError, match=r"no mirror partner.*symmetrise"):
        mt.mirror_map(first.mean.numpy(), first.triangles.numpy())


def _cleaned_scans(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lines 1-5 of notebook 01's eight: read, keep the largest piece, close the holes, symmetrise the mean.

    Returns (X (S, N, 3) the cleaned scans, V (M, 3) the symmetric mean, F (F, 3), mirror (M,), src (M,)).
    """
    first = load_model(paths[0], verbose=False)
    X = np.stack([load_model(p, verbose=False).mean.numpy() for p in paths]).astype(np.float64)
    _, F, kept = mt.crop(X[0], first.triangles.numpy(), np.ones(X.shape[1], bool))
    X = X[:, kept]
    X, F = np.stack([mt.close_holes(x, F)[0] for x in X]), mt.close_holes(X[0], F)[1]
    V, F, mirror, src = mt.symmetrise(X.mean(0), F)
    return X, V, F, mirror, src


def test_eight_line_path_gives_a_working_stn(scans) -> None:
    X, V, F, mirror, src = _cleaned_scans(scans)
    basis, sd = mt.orthogonalise_basis((X[:, src] - V) / np.sqrt(len(X) - 1), 10, mirror=mirror)
    mine = MorphableModel.from_arrays(V, F, basis=np.moveaxis(basis, 0, -1), mirror=mirror, name="mine")
    stn = STN3DMM(make_grid_model(mine, G=32, weights="mean_value"), STNConfig.paper(grid_size=32))

    ict = ict_face_model()
    assert (mine.n_vertices, mine.n_triangles, mine.n_components) == (ict.n_vertices, ict.n_triangles, 10)
    assert len(mt.boundary_loops(F)) == 1
    assert np.array_equal(V[mirror] * [-1, 1, 1], V)
    assert np.array_equal(mt.mirror_map(V, F), mirror)
    assert np.all(np.diff(sd) <= 0)
    theta = Theta.from_euler(yaw=25, pitch=0, roll=0, t=(112.0, 112.0), scale=0.75, n_components=10, convention="exp")
    out = stn(torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(1)), theta)
    assert out.flattened.shape == (1, 3, 32, 32) and out.landmarks.shape == (1, 0, 2)
    assert 0.3 < float(out.mask.mean()) < 1.0


@pytest.mark.parametrize("n_scans", [2, 3, 5])
def test_a_mean_of_few_scans_symmetrises_without_losing_vertices(n_scans, tmp_path) -> None:
    """The nasal septum of a mean of few scans comes within the midline tolerance on both sides; it stays two-sided."""
    _, V, F2, mirror, _ = _cleaned_scans(_write_scans(tmp_path, n_scans))
    ict = ict_face_model()
    assert (len(V), len(F2)) == (ict.n_vertices, ict.n_triangles)
    assert np.sum(mirror == np.arange(len(V))) == np.sum(ict.mirror.numpy() == np.arange(ict.n_vertices))
    assert np.array_equal(mt.mirror_map(V, F2), mirror) and len(mt.boundary_loops(F2)) == 1


def test_mesh_in_centimetres_names_the_unit(scans, tmp_path) -> None:
    first = load_model(scans[0], verbose=False)
    path = tmp_path / "in_cm.obj"
    trimesh.Trimesh(first.mean.numpy() / 10, first.triangles.numpy(), process=False).export(path)
    with pytest.raises(ValueError, match="units='cm'"):
        load_model(path, verbose=False)
    again = load_mesh(path, units="cm")
    np.testing.assert_allclose(again.mean.numpy(), first.mean.numpy(), rtol=1e-5, atol=1e-4)


def _bad_meshes() -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """Meshes the UV command must refuse: (V, F, what the message must name), each made from the ICT mean."""
    ict = ict_face_model()
    V, F = ict.mean.numpy().astype(np.float64), ict.triangles.numpy()
    mid = np.flatnonzero(ict.mirror.numpy() == np.arange(len(V)))
    und, counts = np.unique(np.sort(np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]]), 1), axis=0,
                            return_counts=True)
    a, b = und[np.flatnonzero(np.isin(und, mid).all(1) & (counts == 2))[0]]  # an interior midline edge
    fin = V[[a, b]].mean(0) + np.array([0.0, 0.0, 5.0])
    opened = np.arange(len(V)) < len(V) - 3  # drop the fan centres: eyes and mouth open again
    _, F_open, _ = mt.crop(V, F, opened, largest=False)
    return {
        "two_pieces": (np.concatenate([V, V * 0.3 + np.array([0.0, 300.0, 0.0])]), np.concatenate([F, F + len(V)]),
                       r"several.*meshtools\.crop"),
        "fin": (np.concatenate([V, [fin]]), np.concatenate([F, [[a, b, len(V)]]]), r"non-manifold.*meshtools\.crop"),
        "open_eyes": (V[opened], F_open, r"boundary loops.*close_holes"),
        "off_centre": (V + np.array([20.0, 0.0, 0.0]), F, r"no mirror partner.*symmetrise"),
    }


@pytest.mark.parametrize("case", ["two_pieces", "fin", "open_eyes", "off_centre"])
def test_uv_command_refuses_a_bad_mesh_by_name_and_writes_nothing(case, tmp_path, capsys) -> None:
    from mmstn.uv.__main__ import main

    V, F, expected = _bad_meshes()[case]
    path = tmp_path / f"{case}.obj"
    trimesh.Trimesh(V, F, process=False).export(path)
    out = tmp_path / "UV.mat"
    assert main([str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}") and re.search(expected, err), err
    assert list(tmp_path.iterdir()) == [path]  # no UV.mat, no partial file
