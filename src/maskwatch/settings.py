"""Pipeline settings shared by the Python API, every CLI command, batch and the web server.

Plain constants and a small dataclass, so that the CLI can show them in ``--help`` without importing
ONNX Runtime or OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_DETECTOR = "maskface"
"""The face detector run when nothing names one (the packaged bundles' own)."""
DEFAULT_CONF = 0.5
"""Face detection score threshold: maskface's low-false-positive operating point (chosen on the scenes' train half)."""
DEFAULT_MIN_FACE = 16
"""Faces whose shorter side is below this many pixels are reported as too small, not classified."""
DEFAULT_HEAD_WEIGHT = 0.5
"""Share of a mask-aware detector's own class guess in a face's probabilities (the classifier has the rest).
Fixed at an even split, not tuned: both were trained on the scenes' train half, so it cannot tune it fairly."""


@dataclass(frozen=True)
class PipelineSettings:
    """Every setting that changes what the pipeline finds: one object for ``Detector``, batch and the web app.

    ``model``: a bundle folder or ``maskwatch:NAME`` (None: ``$MASKWATCH_MODEL``, else the packaged default).
    ``detector``: a registered face detector's name (None: the bundle's, and its multi-scale sibling for photos).
    ``threads``: ONNX Runtime threads per session (None: ONNX Runtime's choice); speed only, never results.
    """

    model: str | None = None
    detector: str | None = None
    conf: float = DEFAULT_CONF
    min_face: int = DEFAULT_MIN_FACE
    head_weight: float = DEFAULT_HEAD_WEIGHT
    threads: int | None = None
