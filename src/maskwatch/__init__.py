"""maskwatch: find faces and tell whether each wears a mask properly, wrongly or not at all."""

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
