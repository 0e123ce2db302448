"""mmstn: 3D Morphable Models as Spatial Transformer Networks (Bas et al., ICCVW 2017) in PyTorch."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mmstn")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"

from mmstn.models import MorphableModel

__all__ = ["MorphableModel", "__version__"]
