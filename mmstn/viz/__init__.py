"""Plotting helpers and widget factories used by the notebooks (matplotlib + ipywidgets)."""

from mmstn.transforms import rotation_from_angles
from mmstn.viz.environment import print_environment, use_compact_figures
from mmstn.viz.mesh import draw_mesh, save_figure

__all__ = ["draw_mesh", "print_environment", "rotation_from_angles", "save_figure", "use_compact_figures"]
