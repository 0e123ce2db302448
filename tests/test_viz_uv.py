"""Figures and the widget of notebook 02 (the symmetric Tutte embedding), driven without a browser."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pytest

from mmstn.models.ict import ict_face_model
from mmstn.uv import FoldOverWarning, resample_to_grid, symmetric_tutte
from mmstn.uv.embedding import boundary_sides, quality_table
from mmstn.uv.synthetic import symmetric_disk_mesh
from mmstn.viz import uv_figures as uvf
from mmstn.viz.uv_widgets import WEIGHTING_OPTIONS, uv_explorer

WEIGHTINGS = ("cotan", "mean_value", "uniform")


@pytest.fixture(scope="module")
def model():
    return ict_face_model()


@pytest.fixture(scope="module")
def embeddings(model):
    # the cotangent weights fold 58 of the real face's triangles over (warned); the tables and figures show it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FoldOverWarning)
        return {w: symmetric_tutte(model, weights=w) for w in WEIGHTINGS}


@pytest.fixture(scope="module")
def grid_model(model, embeddings):
    return resample_to_grid(model, embeddings["mean_value"].uv, 24)  # the weights of default_grid_model


def _images(ax) -> list:
    return ax.get_images()


def test_boundary_sides_split_the_loop_at_the_corners(model, embeddings):
    emb = embeddings["mean_value"]
    sides = boundary_sides(emb)
    assert list(sides) == ["midline", "top", "outer", "bottom"]
    uv = emb.uv
    expected = {"midline": (0, 0.5), "top": (1, 1.0), "outer": (0, 0.0), "bottom": (1, 0.0)}
    for name, path in sides.items():
        axis, value = expected[name]
        assert np.all(uv[path, axis] == value), name
    # consecutive sides share their corner; together they cover the loop once (+ 4 shared corners)
    assert sides["midline"][-1] == sides["top"][0] == emb.corners["top_mid"]
    assert sides["top"][-1] == sides["outer"][0] == emb.corners["top_outer"]
    assert sides["outer"][-1] == sides["bottom"][0] == emb.corners["bottom_outer"]
    assert sides["bottom"][-1] == sides["midline"][0] == emb.corners["bottom_mid"]
    assert sum(len(p) for p in sides.values()) == len(emb.boundary) + 4
    assert np.array_equal(sides["midline"][np.isin(sides["midline"], emb.midline)], emb.midline)


def test_figures_have_the_expected_panels(model, embeddings, grid_model):
    emb = embeddings["mean_value"]
    V, F, mirror = symmetric_disk_mesh(300, seed=0, jitter=0.45)
    squashed = (V * np.array([1.0, 0.03, 1.0]), F, mirror)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FoldOverWarning)
        dome = {w: symmetric_tutte(squashed, weights=w, corners="arclength") for w in ("cotan", "mean_value")}
    cases = [
        (uvf.fig_half_mesh(model, emb), 2),
        (uvf.fig_weightings(model, embeddings), 7),  # 2 x 3 panels + the colour bar
        (uvf.fig_distortion_histograms(model, embeddings), 2),
        (uvf.fig_fold_overs(squashed[0], F, dome, display_xy=V[:, :2]), 3),
        (uvf.fig_grid_layout(emb.uv, model.triangles, 24, colour=model.colour), 2),
        (uvf.fig_grid_model(model, grid_model), 3),
        (uvf.fig_geometry_images(grid_model), 3),
        (uvf.fig_grid_landmarks(model, emb.uv, grid_model), 2),
        (uvf.fig_authors_uv(emb.uv, model.landmarks["aflw21"].numpy()), 2),
    ]
    for fig, n_axes in cases:
        assert len(fig.axes) == n_axes, fig.axes
        plt.close(fig)


def test_figure_contents(model, embeddings, grid_model):
    emb = embeddings["mean_value"]
    fig = uvf.fig_half_mesh(model, emb)
    # the four sides are drawn in both panels; the legend (on the UV panel) counts the vertices per side
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    sides = boundary_sides(emb)
    assert labels == [f"{name} ({len(path)})" for name, path in sides.items()]
    plt.close(fig)

    fig = uvf.fig_geometry_images(grid_model)
    (colour,), (geometry,) = _images(fig.axes[1]), _images(fig.axes[2])
    assert colour.get_array().shape == geometry.get_array().shape == (24, 24, 3)
    plt.close(fig)

    fig = uvf.fig_grid_landmarks(model, emb.uv, grid_model)
    (img,) = _images(fig.axes[1])
    assert img.get_array().shape == (24, 24, 3)
    plt.close(fig)


def test_fold_over_figure_marks_the_flipped_triangles():
    V, F, mirror = symmetric_disk_mesh(300, seed=0, jitter=0.45)
    squashed = (V * np.array([1.0, 0.03, 1.0]), F, mirror)
    bad = symmetric_tutte(squashed, weights="cotan", corners="arclength", warn=False)
    assert bad.n_flipped > 0
    fig = uvf.fig_fold_overs(squashed[0], F, {"cotan": bad})
    assert f"{bad.n_flipped} flipped" in fig.axes[1].get_title()
    assert "edges with w < 0" in fig.axes[0].get_title()
    assert len(fig.axes[1].child_axes) == 1, "a zoom inset on the flipped triangles"
    plt.close(fig)
    good = symmetric_tutte(squashed, weights="mean_value", corners="arclength")
    fig = uvf.fig_fold_overs(squashed[0], F, {"mean_value": good})
    assert "0 flipped" in fig.axes[1].get_title() and not fig.axes[1].child_axes
    plt.close(fig)


def test_quality_table_rounds_and_lists_every_weighting(embeddings):
    table = quality_table(embeddings).splitlines()
    assert table[0].split()[:3] == ["weighting", "w<0", "flipped"]
    rows = {line.split()[0]: line.split() for line in table[2:]}
    assert list(rows) == list(WEIGHTINGS)
    assert rows["cotan"][1] == str(embeddings["cotan"].n_negative_weights) != "0"
    assert rows["mean_value"][1] == "0" and rows["uniform"][1] == "0"
    # only the cotangent weights fold the real face over (at the mouth corners); every map stays symmetric
    assert rows["cotan"][2] == str(embeddings["cotan"].quality.n_flipped) != "0"
    assert rows["mean_value"][2] == rows["uniform"][2] == "0"
    assert all(r[-1] == "yes" for r in rows.values())


def test_uv_explorer_controls_redraw(model):
    # not the default cotangent weights: they fold the real face over (see the quality table test above)
    ex = uv_explorer(model, weighting="mean_value", grid_size=32)
    assert ex.renders == 1 and ex.image.value[:4] == b"\x89PNG"
    assert ex.grid_model.n_vertices == 32 * 32
    # the first slider of the box is the grid size (the browser test moves the first .widget-slider)
    sliders = [w for w in _walk(ex.widget) if isinstance(w, widgets.IntSlider | widgets.FloatSlider)]
    assert sliders[0] is ex.grid_size
    assert [v for _, v in ex.weighting.options] == [v for _, v in WEIGHTING_OPTIONS]

    before = ex.image.value
    ex.grid_size.value = 40
    assert ex.renders == 2 and ex.image.value != before
    assert ex.grid_model.n_vertices == 40 * 40 and ex.grid_model.n_triangles == 2 * 39 * 39

    before = ex.image.value
    ex.weighting.value = "uniform"
    assert ex.renders == 3 and ex.image.value != before
    assert np.array_equal(ex.embedding().uv, symmetric_tutte(model, weights="uniform").uv)

    before = ex.image.value
    ex.edges.value = True
    assert ex.renders == 4 and ex.image.value != before
    assert ex.grid_model.n_vertices == 40 * 40

    # embeddings are cached per weighting: going back does not re-solve
    first = ex.embedding("mean_value")
    ex.weighting.value = "mean_value"
    assert ex.embedding() is first and ex.renders == 5


def test_uv_explorer_rejects_bad_input(model):
    with pytest.raises(ValueError, match="weighting="):
        uv_explorer(model, weighting="harmonic")
    with pytest.raises(ValueError, match="mirror"):
        uv_explorer(model.with_fields(mirror=None))


def _walk(w):
    yield w
    for child in getattr(w, "children", ()):
        yield from _walk(child)
