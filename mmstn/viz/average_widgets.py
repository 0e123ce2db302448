"""Widget of the averaging chapter: pick a subject and a number of images, compare masked and plain averages.

The callbacks live here so that tests can drive them without a browser. The first slider is the number of
images (the browser test presses ArrowRight on it and expects the picture to change).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from mmstn.averaging import SubjectAverager, masked_average, plain_average, texture_psnr
from mmstn.viz.mesh import figure_to_png

__all__ = ["AverageExplorer", "average_explorer"]


@dataclass
class AverageExplorer:
    """Average the first n stored outputs of a subject, masked (Σ W·M / Σ M) or plain (Σ W / n).

    Attributes:
        n_images: the number-of-images slider (first).
        subject: the subject dropdown.
        mode: ``"masked"`` / ``"plain"`` toggle.
        image: the ``ipywidgets.Image`` with the current picture (PNG).
        status: a label (coverage, PSNR when a true texture is known).
        widget: the box to display.
        averager: the :class:`~mmstn.averaging.SubjectAverager` (built with ``keep=True``).
        truths: subject id → true texture (3, G, G), optional.
        renders: redraws so far.
    """

    n_images: widgets.IntSlider
    subject: widgets.Dropdown
    mode: widgets.ToggleButtons
    image: widgets.Image
    status: widgets.Label
    widget: widgets.Box
    averager: SubjectAverager
    truths: Mapping[int, torch.Tensor]
    renders: int = 0

    def compute(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """(average (3, G, G), count (G, G), last output (3, G, G), n used) for the current settings."""
        s = int(self.subject.value)
        w, m, _ = self.averager.stack([s], int(self.n_images.value))
        avg, count, _ = masked_average(w, m)
        if self.mode.value == "plain":
            avg = plain_average(w)
        return avg, count, w[-1] * m[-1], len(w)

    def render(self, *_: object) -> None:
        """Redraw for the current slider, dropdown and toggle values."""
        s = int(self.subject.value)
        avg, count, last, n = self.compute()
        true = self.truths.get(s)
        cols = 3 + (true is not None)
        fig, axes = plt.subplots(1, cols, figsize=(2.3 * cols, 2.7))
        panels = [(last, f"image {n} (flattened)"), (avg, f"{self.mode.value} average of {n}")]
        for ax, (x, t) in zip(axes, panels, strict=False):
            ax.imshow(x.clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_title(t, fontsize=9)
        axes[2].imshow(count.numpy(), cmap="viridis", vmin=0, vmax=max(n, 1), interpolation="nearest")
        axes[2].set_title("images that saw each cell", fontsize=9)
        if true is not None:
            axes[3].imshow(true.clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
            axes[3].set_title("true texture", fontsize=9)
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout(pad=0.3)
        self.image.value = figure_to_png(fig, dpi=72)
        text = f"{n} images; {float((count > 0).float().mean()):.0%} of the cells seen"
        if true is not None:
            text += f"; PSNR {texture_psnr(avg, true, count > 0):.1f} dB (gain-matched)"
        self.status.value = text
        self.renders += 1

    def _subject_changed(self, *_: object) -> None:
        n = len(self.averager.kept.get(int(self.subject.value), []))
        self.n_images.max = max(n, 1)
        self.render()


def average_explorer(averager: SubjectAverager, names: Mapping[int, str] | None = None,
                     truths: Mapping[int, torch.Tensor] | None = None, n_start: int = 1) -> AverageExplorer:
    """Build the averaging explorer.

    Args:
        averager: a :class:`~mmstn.averaging.SubjectAverager` built with ``keep=True`` (e.g.
            ``result.averagers[112]`` from :func:`mmstn.averaging.average_subjects`).
        names: subject id → name for the dropdown.
        truths: subject id → true texture (3, G, G) (synthetic subjects): shown, with the PSNR.
        n_start: the slider's starting number of images.
    """
    subjects = [s for s in averager.subject_ids if averager.kept.get(s)]
    if not subjects:
        raise ValueError("the averager holds no stored outputs: build it with keep=True and add images")
    names = names or {}
    n_max = len(averager.kept[subjects[0]])
    n_images = widgets.IntSlider(value=min(max(n_start, 1), n_max), min=1, max=n_max, step=1,
                                 description="images", continuous_update=False)
    subject = widgets.Dropdown(options=[(names.get(s, f"subject {s}"), s) for s in subjects], value=subjects[0],
                               description="subject")
    mode = widgets.ToggleButtons(options=[("masked", "masked"), ("plain", "plain")], value="masked",
                                 description="average")
    image = widgets.Image(format="png")
    status = widgets.Label()
    box = widgets.VBox([n_images, subject, mode, status, image])
    ex = AverageExplorer(n_images, subject, mode, image, status, box, averager, dict(truths or {}))
    n_images.observe(ex.render, names="value")
    mode.observe(ex.render, names="value")
    subject.observe(ex._subject_changed, names="value")
    ex.render()
    return ex
