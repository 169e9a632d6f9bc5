"""Training: Keras transfer learning from face crops to a model bundle.

Importing this package is cheap; the modules that need TensorFlow/Keras import it
themselves, so ``maskwatch detect`` never pays for it.
"""

import os

from maskwatch.errors import MaskwatchError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter hides real messages


BACKBONE_NAMES = ("mobilenetv2", "mobilenet", "xception", "densenet169", "efficientnetb0", "smallcnn")
"""Backbones ``maskwatch train --backbone`` knows (``backbones.BACKBONES`` builds them; importing it loads Keras)."""


def check_backbone_name(name: str) -> None:
    """A one-line error for an unknown backbone, before TensorFlow is loaded."""
    from maskwatch.errors import InputError

    if name not in BACKBONE_NAMES:
        raise InputError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONE_NAMES)}")


class TrainingInterrupted(MaskwatchError):
    """Ctrl-C during training: the last finished epoch is checkpointed and ``--resume`` continues from it."""

    exit_code = 130


__all__ = ["BACKBONE_NAMES", "TrainingInterrupted", "check_backbone_name"]
