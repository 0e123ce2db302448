"""Real photos: find faces, fit θ, flatten them with the 3DMM-STN, export, and score by the standard protocol.

``python -m mmstn flatten`` and ``python -m mmstn evaluate`` are the command-line front ends. Finding faces and
points needs the optional extra ``mmstn[photos]`` (MediaPipe).
"""

from mmstn.photos.demo import demo_photo
from mmstn.photos.evaluate import EvaluationReport, evaluate_folder, read_labels
from mmstn.photos.fit import fit_points
from mmstn.photos.flatten import FlatFace, Flattener, NoFaceFound, flatten, write_outputs
from mmstn.photos.landmarker import FaceBox, MediaPipeFaces, mediapipe_available

__all__ = [
    "EvaluationReport",
    "FaceBox",
    "FlatFace",
    "Flattener",
    "MediaPipeFaces",
    "NoFaceFound",
    "demo_photo",
    "evaluate_folder",
    "fit_points",
    "flatten",
    "mediapipe_available",
    "read_labels",
    "write_outputs",
]
