"""maskwatch: find faces and tell whether each wears a mask properly, wrongly or not at all."""

import os

# Quiet FFmpeg's and OpenCV's own console chatter (dropped-stream noise); our log says what matters.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

from maskwatch.errors import InputError, MaskwatchError, ModelError
from maskwatch.faces import Detection, Face

__version__ = "0.1.0"

__all__ = ["Detection", "Detector", "Face", "InputError", "MaskwatchError", "ModelError", "__version__"]


def __getattr__(name: str):
    """Import the pipeline lazily so ``import maskwatch`` stays cheap."""
    if name == "Detector":
        from maskwatch.pipeline import Detector

        return Detector
    raise AttributeError(name)
