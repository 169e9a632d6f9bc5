"""Face detectors behind one interface; pick one by name with ``create_detector``."""

from maskwatch.detectors import blazeface, ensemble, maskface, tiled  # noqa: F401  (each registers its detectors)
from maskwatch.detectors.base import FaceDetector, create_detector, detector_names, register_detector

DEFAULT_DETECTOR = "maskface"

__all__ = ["DEFAULT_DETECTOR", "FaceDetector", "create_detector", "detector_names", "register_detector"]
