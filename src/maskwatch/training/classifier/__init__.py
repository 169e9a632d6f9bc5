"""Training: Keras transfer learning from face crops to a model bundle.

Importing this package is cheap; the modules that need TensorFlow/Keras import it
themselves, so ``maskwatch detect`` never pays for it.
"""

import os
from pathlib import Path

from maskwatch.errors import MaskwatchError
from maskwatch.training.common import check_hdf5

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter hides real messages


BACKBONE_NAMES = ("mobilenetv2", "mobilenet", "xception", "densenet169", "efficientnetb0", "smallcnn")
"""Backbones ``maskwatch train --backbone`` knows (``backbones.BACKBONES`` builds them; importing it loads Keras)."""


BACKBONE_MIN_SIZE = {name: 71 if name == "xception" else 32 for name in BACKBONE_NAMES}
"""Smallest input side each backbone builds with (Keras' own limits), checked before TensorFlow loads."""

PRETRAINABLE = frozenset(BACKBONE_NAMES) - {"smallcnn"}
"""Backbones that can load ImageNet weights (``smallcnn`` trains from scratch only)."""


def check_backbone_name(name: str) -> None:
    """A one-line error for an unknown backbone, before TensorFlow is loaded."""
    from maskwatch.errors import InputError

    if name not in BACKBONE_NAMES:
        raise InputError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONE_NAMES)}")


def resolve_weights(weights: str | None) -> str | None:
    """``imagenet``, an existing weights file (absolute path), or None for ``none``/empty; cheap (no Keras)."""
    from maskwatch.errors import ModelError

    if weights is None or weights.lower() in ("", "none", "scratch"):
        return None
    if weights.lower() == "imagenet":
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ModelError(f"{weights}: weights file not found")
    if not path.name.endswith(".h5"):
        raise ModelError(f"{weights}: weights must be a Keras .h5 or .weights.h5 file")
    check_hdf5(path)
    return str(path.resolve())


class TrainingInterrupted(MaskwatchError):
    """Ctrl-C during training: the last finished epoch is checkpointed and ``--resume`` continues from it."""

    exit_code = 130


__all__ = [
    "BACKBONE_MIN_SIZE",
    "BACKBONE_NAMES",
    "PRETRAINABLE",
    "TrainingInterrupted",
    "check_backbone_name",
    "check_hdf5",
    "resolve_weights",
]
