"""The UV explorer of notebook 02: pick a weighting and a grid size, see the flattening and the G×G images.

Like :class:`mmstn.viz.widgets.ModelExplorer`, the explorer draws a matplotlib figure into an
``ipywidgets.Image`` (PNG), so it works in a browser, under nbval and in plain Python tests, where setting a
control's ``value`` runs the same callback a reader triggers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

from mmstn.models.morphable import MorphableModel
from mmstn.uv.embedding import UVEmbedding, symmetric_tutte
from mmstn.uv.images import flattened_colour, geometry_image
from mmstn.uv.quality import flipped_triangles
from mmstn.uv.resample import GridResampler
from mmstn.viz.mesh import figure_to_png
from mmstn.viz.uv_figures import _draw_uv_edges, _fill_uv, _grid_image_axes, _uv_axes, _vertex_colours

__all__ = ["WEIGHTING_OPTIONS", "UVExplorer", "uv_explorer"]

#: Dropdown labels and the ``weights=`` value of :func:`mmstn.uv.symmetric_tutte` each selects.
WEIGHTING_OPTIONS: tuple[tuple[str, str], ...] = (
    ("cotangent (the paper's)", "cotan"),
    ("mean value (Floater)", "mean_value"),
    ("uniform (Tutte)", "uniform"),
)


@dataclass
class UVExplorer:
    """A weighting dropdown, a grid-size slider and an edge toggle, redrawing the flattening live.

    Attributes:
        model: the morphable model flattened (its mean shape, triangles, mirror map and colour are used).
        weighting: ``Dropdown`` whose value is ``"cotan"``, ``"mean_value"`` or ``"uniform"``.
        grid_size: ``IntSlider`` for G, the side of the output grid (the first slider of :attr:`widget`).
        edges: ``ToggleButton``; when on, the mesh edges are drawn over the UV map.
        image: the ``ipywidgets.Image`` holding the current rendering (PNG).
        widget: the whole box to display.
        renders: how many times the figure was drawn (1 after construction).
        grid_model: the model resampled on the current G×G grid (set by every render).
    """

    model: MorphableModel
    weighting: widgets.Dropdown
    grid_size: widgets.IntSlider
    edges: widgets.ToggleButton
    image: widgets.Image
    widget: widgets.Box
    renders: int = 0
    grid_model: MorphableModel | None = None
    _embeddings: dict[str, UVEmbedding] = field(default_factory=dict, repr=False)

    def embedding(self, weights: str | None = None) -> UVEmbedding:
        """The symmetric Tutte embedding for ``weights`` (default: the dropdown's), computed once and cached."""
        weights = self.weighting.value if weights is None else weights
        if weights not in self._embeddings:
            self._embeddings[weights] = symmetric_tutte(self.model, weights=weights, warn=False)
        return self._embeddings[weights]

    def render(self, *_: object) -> None:
        """Redraw: the UV map of the chosen weighting, and the flattened colour and geometry image at G×G."""
        emb = self.embedding()
        G = int(self.grid_size.value)
        F = self.model.triangles.cpu().numpy()
        self.grid_model = GridResampler.from_uv(emb.uv, F, G).resample_model(self.model)
        fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.5))
        ax = axes[0]
        _fill_uv(ax, emb.uv, F, facecolors=_vertex_colours(self.model)[F].mean(1))
        if self.edges.value:
            _draw_uv_edges(ax, emb.uv, F, colour="k", lw=0.25)
        flipped, _ = flipped_triangles(emb.uv, F)
        if flipped.any():
            _fill_uv(ax, emb.uv, F[flipped], facecolors="red", zorder=3)
        t = np.linspace(0.0, 1.0, G)
        ax.plot(t, np.ones_like(t), "|", color="tab:blue", ms=7, mew=0.7, clip_on=False)  # grid columns
        ax.plot(np.zeros_like(t), t, "_", color="tab:blue", ms=7, mew=0.7, clip_on=False)  # grid rows
        q = emb.quality
        _uv_axes(ax, f"{emb.weights}: {q.n_flipped} flipped,\nangle error {q.angle_error_mean_deg:.1f}°, "
                     f"log-area std {q.log_area_ratio_std:.2f}")
        if self.grid_model.colour is not None:
            axes[1].imshow(flattened_colour(self.grid_model), interpolation="nearest")
            _grid_image_axes(axes[1], G, f"flattened colour, G = {G}")
        else:
            axes[1].axis("off")
            axes[1].set_title("no colour in this model", fontsize=9)
        axes[2].imshow(geometry_image(self.grid_model), interpolation="nearest")
        _grid_image_axes(axes[2], G, f"geometry image, G = {G}")
        fig.tight_layout()
        self.image.value = figure_to_png(fig)
        self.renders += 1


def uv_explorer(
    model: MorphableModel, weighting: str = "cotan", grid_size: int = 64, g_min: int = 16, g_max: int = 128,
    g_step: int = 8,
) -> UVExplorer:
    """Build the live UV explorer of notebook 02 (``model`` needs a mirror map; its colour is shown if present).

    The grid-size slider runs from ``g_min`` to ``g_max`` in steps of ``g_step`` and is the first slider of the
    box; embeddings are cached per weighting, so moving the slider only resamples (about 0.1 s for the built-in
    model).
    """
    if model.mirror is None:
        raise ValueError(f"model {model.name!r} has no mirror map; the symmetric embedding needs one")
    values = [w for _, w in WEIGHTING_OPTIONS]
    if weighting not in values:
        raise ValueError(f"weighting={weighting!r}: choose one of {values}")
    slider = widgets.IntSlider(value=int(np.clip(grid_size, g_min, g_max)), min=g_min, max=g_max, step=g_step,
                               description="grid G", continuous_update=False)
    dropdown = widgets.Dropdown(options=list(WEIGHTING_OPTIONS), value=weighting, description="weights")
    toggle = widgets.ToggleButton(value=False, description="mesh edges", tooltip="draw the mesh edges in UV")
    image = widgets.Image(format="png")
    box = widgets.VBox([widgets.HBox([slider, dropdown, toggle]), image])
    explorer = UVExplorer(model, dropdown, slider, toggle, image, box)
    for control in (slider, dropdown, toggle):
        control.observe(explorer.render, names="value")
    explorer.render()
    return explorer
