"""Face detectors behind one interface; pick one by name with ``create_detector``."""

from maskwatch.detectors import blazeface, ensemble, maskface, tiled  # noqa: F401  (each registers its detectors)
from maskwatch.detectors.base import FaceDetector, create_detector, detector_names, register_detector
from maskwatch.settings import DEFAULT_DETECTOR

PHOTO_DETECTORS = {"maskface": "maskface-multiscale"}
"""A live detector's slower sibling for still photos, used when the user names no detector: a photo is read
once, so three passes (40 ms instead of 7) buy its small faces (scenes test half at conf 0.5: recall >= 24 px
0.868 vs 0.831 at 0.18 vs 0.19 false faces per image, face AP 0.736 vs 0.660)."""

__all__ = [
    "DEFAULT_DETECTOR",
    "PHOTO_DETECTORS",
    "FaceDetector",
    "create_detector",
    "detector_names",
    "register_detector",
]
