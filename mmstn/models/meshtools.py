"""Mesh preparation tools for building a morphable model: boundaries, hole closing, cropping, mirror maps,
exact symmetrisation and PCA orthogonalisation of a basis.

All functions take plain arrays: vertices ``V`` (N, 3) float (any length unit, mm in this package),
triangles ``F`` (F, 3) int, 0-based, and per-vertex bases ``B`` (D, N, 3). They are what
:mod:`mmstn.models.ict` uses to turn the ICT FaceKit into the default model, and they are public so that
a user's own mesh can be prepared the same way.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.spatial import cKDTree

__all__ = [
    "MeshError",
    "boundary_loops",
    "check_mesh",
    "close_holes",
    "close_model_holes",
    "crop",
    "largest_component",
    "median_edge_length",
    "mirror_map",
    "orthogonalise_basis",
    "symmetrise",
]


class MeshError(ValueError):
    """A mesh problem; the message names the problem and the tool that fixes it."""


def _edges(F: np.ndarray) -> np.ndarray:
    """Directed edges (3F, 2) of the triangles, in triangle order."""
    F = np.asarray(F, dtype=np.int64)
    return np.concatenate([F[:, [0, 1]], F[:, [1, 2]], F[:, [2, 0]]])


def _undirected_edges(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct undirected edges (E, 2) of the triangles (smaller id first, sorted) and how many triangles
    use each (E,). One int64 key per edge: a 1-D unique is ~20x faster than ``np.unique(axis=0)`` on rows."""
    und = np.sort(_edges(F), axis=1)
    n = int(und.max()) + 1 if und.size else 1
    keys, counts = np.unique(und[:, 0] * n + und[:, 1], return_counts=True)
    return np.stack([keys // n, keys % n], axis=1), counts


def check_mesh(V: np.ndarray, F: np.ndarray, *, name: str = "mesh", one_piece: bool = False) -> None:
    """Raise :class:`MeshError` for NaN coordinates, bad indices, degenerate or non-manifold triangles.

    With ``one_piece`` (what a flattening needs) also for vertices in no triangle and for a mesh of several
    edge-connected pieces. Each message names the tool that fixes it.
    """
    V = np.asarray(V, dtype=np.float64)
    F = np.asarray(F, dtype=np.int64)
    if V.ndim != 2 or V.shape[1] != 3 or F.ndim != 2 or F.shape[1] != 3:
        raise MeshError(f"{name}: expected V (N, 3) and F (F, 3), got {V.shape} and {F.shape}")
    if not np.isfinite(V).all():
        raise MeshError(
            f"{name}: {int((~np.isfinite(V)).any(1).sum())} vertices have NaN/inf coordinates; "
            "remove them with mmstn.models.meshtools.crop(V, F, np.isfinite(V).all(1))"
        )
    if len(F) and (F.min() < 0 or F.max() >= len(V)):
        raise MeshError(f"{name}: triangle indices outside 0..{len(V) - 1}")
    area2 = np.linalg.norm(np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]]), axis=1)
    bad = (
        (area2 <= 1e-12 * max(float(np.ptp(V)), 1e-30) ** 2)
        | (F[:, 0] == F[:, 1])
        | (F[:, 1] == F[:, 2])
        | (F[:, 0] == F[:, 2])
    )
    if bad.any():
        raise MeshError(
            f"{name}: {int(bad.sum())} degenerate (zero-area) triangles, e.g. #{int(np.flatnonzero(bad)[0])}; "
            "drop them with meshtools.crop(V, F[area > 0], ...) before building the model"
        )
    _, counts = _undirected_edges(F)
    if (counts > 2).any():
        raise MeshError(
            f"{name}: {int((counts > 2).sum())} non-manifold edges (shared by 3+ triangles); "
            "crop the region with meshtools.crop or repair the mesh in a mesh editor"
        )
    if not one_piece:
        return
    used = np.zeros(len(V), bool)
    used[F.ravel()] = True
    if not used.all():
        raise MeshError(
            f"{name}: {int((~used).sum())} of {len(V)} vertices belong to no triangle (e.g. vertex "
            f"{int(np.argmin(used))}); drop them with meshtools.crop(V, F, np.ones(len(V), bool))"
        )
    keep = largest_component(F, len(V))
    if not keep.all():
        raise MeshError(
            f"{name}: {len(V) - int(keep.sum())} of {len(V)} vertices lie outside the largest connected piece "
            "(the mesh has several); keep the largest with meshtools.crop(V, F, np.ones(len(V), bool)), which "
            "also returns the kept vertex ids for the basis and landmarks"
        )


def boundary_loops(F: np.ndarray) -> list[np.ndarray]:
    """Boundary loops of an oriented manifold triangle mesh, longest first; each an int64 array of vertex ids.

    A loop follows the directed boundary half-edges (a → b of a triangle whose edge b → a has no partner), so
    for triangles counter-clockwise seen from the front the outer loop runs counter-clockwise.

    Raises:
        MeshError: an edge used twice in one direction (inconsistent winding or a non-manifold edge), or a
            boundary vertex that starts two boundary edges (a pinched, "bow-tie" vertex).
    """
    F = np.asarray(F, dtype=np.int64)
    if F.size == 0:
        return []
    n = int(F.max()) + 1
    a = F.ravel()
    b = F[:, [1, 2, 0]].ravel()
    key = np.sort(a * n + b)  # sorted once: duplicates are neighbours, membership is a binary search
    if (key[1:] == key[:-1]).any():
        raise MeshError(
            "a directed edge occurs twice: the triangles are not consistently oriented or an edge is non-manifold; "
            "check the mesh with meshtools.check_mesh and re-orient or crop it (meshtools.crop)"
        )
    twin = b * n + a
    boundary = key[np.minimum(np.searchsorted(key, twin), key.size - 1)] != twin
    ba, bb = a[boundary], b[boundary]
    if ba.size and np.bincount(ba).max() > 1:
        raise MeshError(
            "a boundary vertex starts two boundary edges (a pinched, 'bow-tie' vertex): the surface is not a disk "
            "there; crop the region with meshtools.crop"
        )
    nxt = np.full(n, -1, dtype=np.int64)
    nxt[ba] = bb
    seen = np.zeros(n, dtype=bool)
    loops: list[np.ndarray] = []
    for start in ba:
        if seen[start]:
            continue
        loop = [int(start)]
        seen[start] = True
        cur = int(nxt[start])
        while cur != start:
            if cur < 0 or seen[cur]:
                raise MeshError("boundary edges do not close into simple loops; repair the mesh or crop it")
            loop.append(cur)
            seen[cur] = True
            cur = int(nxt[cur])
        loops.append(np.asarray(loop, dtype=np.int64))
    return sorted(loops, key=len, reverse=True)


def close_holes(V: np.ndarray, F: np.ndarray, *, keep: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Close all but the ``keep`` longest boundary loops by a centroid fan.

    Each hole gets one new vertex at its loop's centroid and one triangle per loop edge, oriented like the
    surrounding triangles, so a face with open eyes and mouth becomes a disk (one boundary loop).

    Args:
        V: (N, 3) vertices, or a stack (…, N, 3) of shapes on the same triangles (registered scans, a basis):
            every shape gets the same new vertices, each the mean of its own rim.
        F: (F, 3) triangles.
        keep: how many of the longest loops stay open (1: the outer rim).

    Returns:
        (V2 (…, N + holes, 3), F2 (F + sum of hole lengths, 3)).
    """
    V = np.asarray(V, dtype=np.float64)
    F = np.asarray(F, dtype=np.int64)
    loops = boundary_loops(F)[keep:]
    n = V.shape[-2]
    centres = [V[..., loop, :].mean(-2, keepdims=True) for loop in loops]
    # boundary edges run a->b in the triangle's order, so the fill triangle uses b->a to keep orientation
    fans = [np.stack([np.roll(loop, -1), loop, np.full_like(loop, n + i)], 1) for i, loop in enumerate(loops)]
    return np.concatenate([V, *centres], -2), np.concatenate([F, *fans])


def close_model_holes(model, *, keep: int = 1):
    """A :class:`~mmstn.models.MorphableModel` with all but ``keep`` boundary loops closed (:func:`close_holes`).

    A hole's new vertex is the mean of its rim in the mean shape, in every basis component, in the colour and
    texture basis and in the UVs, so the model stays exactly linear; the mirror map pairs the new vertices of
    mirror-image holes. For a model with an open mouth (the Surrey Face Model), so that the symmetric
    embedding does not collapse the mouth onto a slit.

    Raises:
        ValueError: the mirror image of a hole is not a hole (the mirror map and the mesh disagree).
    """
    import torch

    F = model.triangles.cpu().numpy()
    loops = boundary_loops(F)[keep:]
    if not loops:
        return model
    n = model.n_vertices
    index = [torch.as_tensor(loop) for loop in loops]

    def extend(t):
        if t is None:
            return None
        rims = torch.stack([t[..., i, :].mean(-2) for i in index], -2)
        return torch.cat([t, rims.to(t.dtype)], -2)

    _, F2 = close_holes(model.mean.detach().cpu().numpy(), F, keep=keep)
    mirror = None
    if model.mirror is not None:
        m = model.mirror.cpu().numpy()
        rim = {frozenset(loop.tolist()): n + k for k, loop in enumerate(loops)}
        try:
            extra = [rim[frozenset(m[loop].tolist())] for loop in loops]
        except KeyError as exc:
            raise ValueError(
                f"model {model.name!r}: the mirror image of a hole is not a hole; check the mirror map "
                "(mmstn.models.meshtools.mirror_map) or symmetrise the mesh first"
            ) from exc
        mirror = torch.as_tensor(np.concatenate([m, extra]), dtype=model.mirror.dtype)
    return replace(
        model,
        mean=extend(model.mean),
        basis=extend(model.basis),
        triangles=torch.as_tensor(F2, dtype=model.triangles.dtype),
        colour=extend(model.colour),
        texture_basis=extend(model.texture_basis),
        uv=extend(model.uv),
        mirror=mirror,
    )


def largest_component(F: np.ndarray, n_vertices: int) -> np.ndarray:
    """Boolean mask (n_vertices,) of the vertices of the largest edge-connected component."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    E = _edges(F)
    A = sp.coo_matrix((np.ones(len(E)), (E[:, 0], E[:, 1])), shape=(n_vertices, n_vertices))
    _, lab = connected_components(A, directed=False)
    used = np.zeros(n_vertices, bool)
    used[np.asarray(F).ravel()] = True
    counts = np.bincount(lab[used], minlength=lab.max() + 1)
    return (lab == np.argmax(counts)) & used


def crop(
    V: np.ndarray, F: np.ndarray, mask: np.ndarray, *, largest: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the vertices in ``mask`` (N,) and the triangles whose three corners are kept, reindexed.

    Args:
        largest: also drop everything outside the largest connected component.

    Returns:
        (V2 (M, 3), F2 (F2, 3), index (M,)): ``index[j]`` is the old id of new vertex ``j``.
    """
    V = np.asarray(V)
    F = np.asarray(F, dtype=np.int64)
    mask = np.asarray(mask, bool)
    F = F[mask[F].all(1)]
    keep = np.zeros(len(V), bool)
    keep[F.ravel()] = True
    if largest and len(F):
        keep &= largest_component(F, len(V))
        F = F[keep[F].all(1)]
    index = np.flatnonzero(keep)
    remap = np.full(len(V), -1, np.int64)
    remap[index] = np.arange(len(index))
    return V[index], remap[F], index


def median_edge_length(V: np.ndarray, F: np.ndarray) -> float:
    """Median edge length of the mesh, in the units of ``V``."""
    E, _ = _undirected_edges(F)
    return float(np.median(np.linalg.norm(V[E[:, 0]] - V[E[:, 1]], axis=1)))


def mirror_map(V: np.ndarray, F: np.ndarray, *, rel_tol: float = 0.25) -> np.ndarray:
    """The vertex map x -> -x: ``mirror[i]`` is the vertex at the reflection of vertex ``i``.

    The tolerance is ``rel_tol`` times the mesh's median edge length. Raises :class:`MeshError` naming how
    many vertices have no partner (then use :func:`symmetrise`, which builds an exactly symmetric mesh).
    """
    V = np.asarray(V, dtype=np.float64)
    tol = rel_tol * median_edge_length(V, F)
    R = V * np.array([-1.0, 1.0, 1.0])
    d, j = cKDTree(V).query(R)
    ok = d <= tol
    mutual = ok & (j[j] == np.arange(len(V)))
    if not mutual.all():
        raise MeshError(
            f"{int((~mutual).sum())} of {len(V)} vertices have no mirror partner within {tol:.4g} "
            f"({rel_tol} x median edge length): the mesh is not symmetric about x = 0; centre it "
            "on its symmetry plane or rebuild it with meshtools.symmetrise"
        )
    return j.astype(np.int64)


def symmetrise(
    V: np.ndarray, F: np.ndarray, *, rel_tol: float = 0.25
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An exactly mirror-symmetric copy of a nearly symmetric mesh, made from its x <= 0 half.

    A vertex is on the midline when it is its own mirror partner: within ``rel_tol`` median edge lengths
    of x = 0 *and* nearer to its own reflection than any other vertex is. (Closeness to the plane alone is
    not enough: the two sides of a thin part that runs along the plane, such as the nasal septum of a mean
    of few scans, come within that distance of it, and snapping both would fold the surface onto itself.)
    Midline vertices are snapped onto x = 0; the left half (x < 0 plus the midline) is kept and
    reflected, and triangles are mirrored with reversed order so they stay counter-clockwise.
    ``np.array_equal`` then holds between the vertex set and its reflection.

    Returns:
        (V2 (M, 3), F2 (F2, 3), mirror (M,), source (M,)): ``source[j]`` is the input vertex that new
        vertex ``j`` was taken from (for a right-half vertex, the input vertex nearest its position), so
        per-vertex data can be carried over with ``data[:, source]``.

    Raises:
        MeshError: no midline found; a triangle lying on the plane x = 0; the left half folding over the
            midline (an edge between two midline vertices inside it); or triangles crossing x = 0 away from
            the midline vertices (the copy would have a slit there). Each message names the fix.
    """
    V = np.asarray(V, dtype=np.float64)
    F = np.asarray(F, dtype=np.int64)
    h = rel_tol * median_edge_length(V, F)
    tree = cKDTree(V)  # built once: the midline test and the carried-over source ids both query it
    _, partner = tree.query(V * np.array([-1.0, 1.0, 1.0]))
    mid = (np.abs(V[:, 0]) <= h) & (partner == np.arange(len(V)))
    left = (V[:, 0] < 0) | mid
    if mid.sum() < 2:
        raise MeshError(
            "no vertices on the plane x = 0: no symmetry plane found; centre the mesh on its "
            "symmetry plane (subtract the midline x) before symmetrise"
        )
    VL, FL, idx = crop(V, F, left, largest=True)
    midL = mid[idx]
    on_plane = midL[FL].all(1)
    if on_plane.any():
        raise MeshError(
            f"{int(on_plane.sum())} triangles lie on the plane x = 0 (all three corners on the midline, e.g. "
            f"input vertices {idx[FL[np.flatnonzero(on_plane)[0]]].tolist()}): a mirror-symmetric surface "
            "cannot contain them; remove them with meshtools.crop, or pass a smaller rel_tol to symmetrise "
            "if they are only near the plane"
        )
    _check_midline_cut(F, FL, idx, midL)
    VL[midL, 0] = 0.0
    nL = len(VL)
    side = np.flatnonzero(~midL)
    right_id = np.full(nL, -1, np.int64)
    right_id[midL] = np.flatnonzero(midL)
    right_id[side] = nL + np.arange(len(side))
    V2 = np.concatenate([VL, VL[side] * np.array([-1.0, 1.0, 1.0])])
    Fr = right_id[FL][:, ::-1]
    F2 = np.concatenate([FL, Fr])
    mirror = np.arange(len(V2))
    mirror[side] = nL + np.arange(len(side))
    mirror[nL + np.arange(len(side))] = side
    _, nearest = tree.query(V2[nL:])
    source = np.concatenate([idx, nearest])
    return V2, F2, mirror, source


def _check_midline_cut(F: np.ndarray, FL: np.ndarray, idx: np.ndarray, midL: np.ndarray) -> None:
    """Raise :class:`MeshError` unless the left half ``FL`` meets the midline only along its own boundary.

    ``FL`` are the kept triangles (reindexed, ``idx`` maps back to the input ``F``'s ids), ``midL`` marks
    their midline vertices. Two left triangles sharing a midline edge would become four after mirroring (a
    fold); a boundary edge of the left half that is interior to the input mesh but not on the midline is a
    cut through triangles that cross x = 0 elsewhere, and would open a slit between the two halves.
    """
    edges, counts = _undirected_edges(FL)
    on_mid = midL[edges].all(1)
    folded = on_mid & (counts > 1)
    if folded.any():
        a, b = idx[edges[np.flatnonzero(folded)[0]]]
        raise MeshError(
            f"{int(folded.sum())} edges between two midline vertices lie inside the x <= 0 half (e.g. input "
            f"vertices {int(a)}-{int(b)}): the surface folds over the plane x = 0 there; centre the mesh on its "
            "symmetry plane, pass a smaller rel_tol to symmetrise, or crop the fold (meshtools.crop)"
        )
    whole, wcounts = _undirected_edges(F)
    n = int(max(F.max(), idx.max())) + 1
    cut = np.sort(idx[edges[(counts == 1) & ~on_mid]], axis=1)  # back in input ids, smaller first
    inner = np.isin(cut[:, 0] * n + cut[:, 1], whole[wcounts > 1, 0] * n + whole[wcounts > 1, 1])
    if inner.any():
        a, b = cut[np.flatnonzero(inner)[0]]
        raise MeshError(
            f"{int(inner.sum())} triangles' edges cross the plane x = 0 away from the midline vertices (e.g. at "
            f"input vertices {int(a)}-{int(b)}): the mirrored copy would have a slit there; the mesh needs a "
            "row of vertices on its symmetry plane (centre it there: subtract the midline x; or re-mesh it), "
            "and no part of one side may cross the plane (average more scans, or crop that part)"
        )


def symmetrise_field(B: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Per-vertex field (..., N, 3) made exactly symmetric: the average of B and its mirror image."""
    flip = np.array([-1.0, 1.0, 1.0])
    return 0.5 * (B + B[..., mirror, :] * flip)


def orthogonalise_basis(
    B: np.ndarray, n: int | None = None, *, mirror: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """PCA of a set of per-vertex modes (D, N, 3) treated as samples, ordered by variance.

    The modes are taken as samples with zero mean whose coefficients are N(0, 1) (upstream's convention),
    so the covariance is ``B^T B``; the returned components are orthogonal and scaled so that α ~ N(0, I)
    reproduces that covariance. With ``mirror``, the sample set is augmented with the mirror image of
    every mode so the span is closed under x -> -x (an exactly symmetric basis set).

    Returns:
        (components (n, N, 3), standard deviations (n,)) in the units of ``B``.
    """
    B = np.asarray(B, dtype=np.float64)
    if not np.isfinite(B).all():
        raise MeshError("basis has NaN/inf entries; rebuild the modes")
    D, N, _ = B.shape
    X = B.reshape(D, -1)
    if mirror is not None:
        M = (B[:, mirror, :] * np.array([-1.0, 1.0, 1.0])).reshape(D, -1)
        X = np.concatenate([X, M]) / np.sqrt(2.0)
    _, s, Vt = np.linalg.svd(X, full_matrices=False)
    n = min(n or D, len(s))
    comps = (Vt[:n] * s[:n, None]).reshape(n, N, 3)
    return comps, s[:n]
