"""Training: Keras transfer learning from face crops to a model bundle.

Importing this package is cheap; the modules that need TensorFlow/Keras import it
themselves, so ``maskwatch detect`` never pays for it.
"""

import os

from maskwatch.errors import MaskwatchError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter hides real messages


class TrainingInterrupted(MaskwatchError):
    """Ctrl-C during training: the last finished epoch is checkpointed and ``--resume`` continues from it."""

    exit_code = 130


__all__ = ["TrainingInterrupted"]
