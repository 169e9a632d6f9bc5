"""Face detectors behind one interface; pick one by name with ``create_detector``."""

from maskwatch.detectors import (  # noqa: F401  (each registers its detectors)
    blazeface,
    ensemble,
    exported,
    maskface,
    tiled,
    yunet,
)
from maskwatch.detectors.base import FaceDetector, create_detector, detector_names, register_detector
from maskwatch.settings import DEFAULT_DETECTOR

PHOTO_DETECTORS = {"maskface": "maskface-multiscale"}
"""A live detector's slower sibling for still photos, used when the user names no detector: a photo is read
once, so several passes buy its small faces (figures in docs/detectors.md)."""

__all__ = [
    "DEFAULT_DETECTOR",
    "PHOTO_DETECTORS",
    "FaceDetector",
    "create_detector",
    "detector_names",
    "register_detector",
]
