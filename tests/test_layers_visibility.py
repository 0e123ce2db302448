"""Vertex normals, the back-face visibility mask, the authors' last-write rule and the exact occlusion test."""

from __future__ import annotations

import math

import pytest
import torch
import trimesh
from _stn_toy_models import one_torch_thread, toy_grid_model  # noqa: F401

from mmstn.layers.grid import grid_triangles
from mmstn.layers.rotation import rodrigues
from mmstn.layers.visibility import (
    AUTHORS_CORNER_ORDER,
    VisibilityMask,
    backface_visibility,
    corner_angles,
    face_normals,
    grid_last_write_normal_z,
    grid_layout,
    grid_normal_z,
    grid_vertex_normals,
    mislabelled_fraction,
    occlusion_visibility,
    vertex_normals,
    visibility_mask,
)

WEIGHTINGS = ("area", "angle", "angle_area")


def rotated(vertices: torch.Tensor, r: list[list[float]]) -> torch.Tensor:
    rot = rodrigues(torch.tensor(r, dtype=torch.float64))
    return vertices.expand(rot.shape[0], -1, -1) @ rot.transpose(1, 2)


@pytest.fixture(scope="module")
def toy():
    return toy_grid_model(24, n_components=2)


@pytest.fixture(scope="module")
def posed(toy):
    return rotated(toy.mean[None], [[0.0, 0.0, 0.0], [0.2, 0.9, 0.1], [-0.4, -1.3, 0.3], [2.5, 0.3, 0.0]])


@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_grid_normals_equal_the_mesh_formula(posed, weighting):
    mesh = vertex_normals(posed, grid_triangles(24), weighting)
    fast = grid_vertex_normals(posed, 24, weighting)
    torch.testing.assert_close(fast, mesh, rtol=1e-12, atol=1e-9)
    if weighting == "area":
        torch.testing.assert_close(grid_normal_z(posed, 24), mesh[..., 2], rtol=1e-12, atol=1e-9)
        torch.testing.assert_close(grid_normal_z(posed[..., :2], 24), mesh[..., 2], rtol=1e-12, atol=1e-9)


def test_corner_angles_sum_to_pi(posed):
    ang = corner_angles(posed, grid_triangles(24))
    torch.testing.assert_close(ang.sum(-1), torch.full(ang.shape[:2], math.pi, dtype=torch.float64))


def test_mask_is_layout_independent(posed):
    faces = grid_triangles(24)
    perm = torch.randperm(faces.shape[0], generator=torch.Generator().manual_seed(0))
    shuffled = faces[perm].roll(1, dims=1)  # other order, corners cyclically rotated: same oriented faces
    assert grid_layout(faces, 24) == "exact"
    assert grid_layout(shuffled, 24) == "same_set"
    assert grid_layout(faces[:, [0, 2, 1]], 24) is None  # clockwise
    for weighting in WEIGHTINGS:
        ref = VisibilityMask(faces, None, weighting, n_vertices=24 * 24).visible(posed)  # general mesh path
        for f in (faces, shuffled):
            assert torch.equal(VisibilityMask(f, 24, weighting).visible(posed), ref)


def _matlab_last_write(vertices, faces, weighting, corner_order):
    """A literal transcription of ``N(tri(:, k), :) = N(tri(:, k), :) + w_k``, one statement per slot k.

    MATLAB evaluates the right-hand side for every face before assigning, then assigns face by face, so a
    vertex repeated in column k keeps the last face's value old + w_k; the next statement starts from there.
    """
    n = face_normals(vertices, faces)[0]
    ang = corner_angles(vertices, faces)[0]
    if weighting == "angle":
        n = n / n.norm(dim=-1, keepdim=True)
    normals = torch.zeros(vertices.shape[1], 3, dtype=vertices.dtype)
    for k in corner_order:
        rhs = [normals[faces[f, k]] + (n[f] if weighting == "area" else ang[f, k] * n[f])
               for f in range(faces.shape[0])]  # read before any write
        for f in range(faces.shape[0]):
            normals[faces[f, k]] = rhs[f]
    return normals


def test_last_write_keeps_the_last_face_per_slot_and_adds_the_slots():
    # Vertex 0 sits in slot 0 of faces 0 and 1 and in slot 1 of face 2: its normal is w_0(face 1) + w_1(face 2).
    v = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.3], [0.0, -1.0, 0.5]]],
                     dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 0, 1]])
    contrib = face_normals(v, faces)[0]
    ang = corner_angles(v, faces)[0]
    expected0 = ang[1, 0] * contrib[1] + ang[2, 1] * contrib[2]
    got = vertex_normals(v, faces, "angle_area", rule="last_write")[0]
    torch.testing.assert_close(got[0], expected0)
    torch.testing.assert_close(got, _matlab_last_write(v, faces, "angle_area", (0, 1, 2)))
    # accumulation would also add face 0's corner: a different vector
    acc = vertex_normals(v, faces, "angle_area")[0]
    assert not torch.allclose(acc[0], got[0])


@pytest.mark.parametrize("order", [(0, 1, 2), AUTHORS_CORNER_ORDER])
def test_last_write_rule_matches_a_literal_loop(order):
    model = toy_grid_model(7, n_components=0)
    v = rotated(model.mean[None], [[0.3, 1.2, -0.2]])
    faces = grid_triangles(7)
    for weighting in WEIGHTINGS:
        got = vertex_normals(v, faces, weighting, rule="last_write", corner_order=order)[0]
        torch.testing.assert_close(got, _matlab_last_write(v, faces, weighting, order))
    ref = _matlab_last_write(v, faces, "angle_area", order)[:, 2] >= 0
    for layout_faces, g in ((faces, 7), (faces, None)):
        layer = VisibilityMask(
            layout_faces, g, "angle_area", "last_write", strict=False, corner_order=order, n_vertices=49
        )
        assert torch.equal(layer.visible(v)[0], ref)


@pytest.mark.parametrize("g", [2, 3, 24])
def test_grid_last_write_slices_equal_the_mesh_formula(posed, g):
    v = posed if g == 24 else rotated(toy_grid_model(g, n_components=0).mean[None], [[0.3, 1.2, -0.2], [2.0, 0.4, 0.1]])
    for weighting in WEIGHTINGS:
        mesh = vertex_normals(v, grid_triangles(g), weighting, rule="last_write")[..., 2]
        torch.testing.assert_close(grid_last_write_normal_z(v, g, weighting), mesh, rtol=1e-12, atol=1e-9)


def test_last_write_differs_from_accumulation_only_slightly(posed):
    acc = backface_visibility(posed, grid_triangles(24), "angle_area", grid_size=24)
    lw = backface_visibility(
        posed, grid_triangles(24), "angle_area", "last_write", corner_order=AUTHORS_CORNER_ORDER, grid_size=24
    )
    frac = mislabelled_fraction(lw, acc)
    assert (frac < 0.05).all()


def test_mask_image_layout_dtype_and_no_gradient(toy):
    v = rotated(toy.mean[None], [[0.0, 0.6, 0.0]]).requires_grad_()
    mask = visibility_mask(v, 24)
    assert mask.shape == (1, 1, 24, 24) and mask.dtype == v.dtype and not mask.requires_grad
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    vis = backface_visibility(v, grid_triangles(24), grid_size=24)
    assert torch.equal(mask.reshape(1, -1).bool(), vis)  # pixel (row, col) ↔ vertex row·G + col
    # yaw by +0.6 rad turns the face to the viewer's right: the left columns stay visible, the far right do not
    assert mask[0, 0, 12, 0] == 1 and mask[0, 0, 12, -1] == 0


def test_strict_versus_authors_rule_on_an_edge_on_grid():
    g = 4
    rows, cols = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
    edge_on = torch.stack([torch.zeros_like(rows), -rows, cols], -1).reshape(1, -1, 3).double()  # plane x = 0
    assert visibility_mask(edge_on, g, strict=True).sum() == 0
    assert visibility_mask(edge_on, g, strict=False).sum() == g * g


def test_backface_equals_occlusion_on_a_sphere():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=50.0)
    v0 = torch.from_numpy(sphere.vertices)[None]
    faces = torch.from_numpy(sphere.faces).long()
    v = rotated(v0, [[0.0, 0.0, 0.0], [0.4, -0.8, 0.3], [2.0, 1.0, -0.5]])
    back = backface_visibility(v, faces)
    exact = occlusion_visibility(v, faces)
    nz = vertex_normals(v, faces)
    nz = nz[..., 2] / nz.norm(dim=-1)
    away_from_silhouette = nz.abs() > 0.1
    assert torch.equal(back[away_from_silhouette], exact[away_from_silhouette])
    # on a convex shape a front-facing vertex is never hidden; the only disagreements are rim vertices
    # whose normal points slightly away but whose ray grazes past the polyhedron (O(1/√N) of them)
    assert not (back & ~exact).any()
    assert (mislabelled_fraction(back, exact) < 0.03).all()
    assert ((back.double().mean(-1) - 0.5).abs() < 0.05).all()  # about half the sphere is visible


def test_occlusion_of_a_square_behind_another():
    g = 5
    rows, cols = torch.meshgrid(torch.arange(g).double(), torch.arange(g).double(), indexing="ij")
    front = torch.stack([cols, -rows, torch.full_like(rows, 10.0)], -1).reshape(-1, 3)
    back = torch.stack([cols * 3 - 6, -rows * 3 + 6, torch.zeros_like(rows)], -1).reshape(-1, 3)  # larger, behind
    v = torch.cat([front, back])
    faces = torch.cat([grid_triangles(g), grid_triangles(g) + g * g])
    vis = occlusion_visibility(v, faces)
    assert vis[: g * g].all()
    b = back.reshape(g, g, 3)
    covered = (b[..., 0] >= 0) & (b[..., 0] <= g - 1) & (b[..., 1] <= 0) & (b[..., 1] >= -(g - 1))  # edges too
    assert int(covered.sum()) == 4
    assert torch.equal(vis[g * g :], ~covered.reshape(-1))


def test_toy_model_mislabelled_fraction():
    """Back-face labels versus ray casting (seen from the front and not hidden) on the toy face."""
    toy = toy_grid_model(48, n_components=0)
    poses = [[0.0, 0.0, 0.0], [0.0, 0.7, 0.0], [0.0, 1.1, 0.0], [0.5, 0.8, 0.0], [-0.6, 0.0, 0.0]]
    v = rotated(toy.mean[None], poses)
    back = backface_visibility(v, toy.triangles, grid_size=48)
    exact = occlusion_visibility(v, toy.triangles, backface_culling=True)
    frac = mislabelled_fraction(back, exact)
    print("toy model, mislabelled fraction by pose:", [round(float(f), 4) for f in frac])
    assert frac[0] == 0  # frontal: nothing self-occluded
    assert (frac[1:4] > 0).all() and (frac < 0.1).all()  # the nose hides part of a cheek when turned
    # back-face errs only one way: it never hides a truly visible vertex
    assert not (exact & ~back).any()
