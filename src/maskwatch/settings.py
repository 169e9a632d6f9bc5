"""Pipeline settings shared by the Python API, every CLI command, batch and the web server.

Plain constants and a small dataclass, so that the CLI can show them in ``--help`` without importing
ONNX Runtime or OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_DETECTOR = "maskface"
"""The face detector run when nothing names one (the packaged bundles' own)."""
DEFAULT_CONF = 0.5
"""Face detection score threshold. A lower one scores better on crowd photos but puts false faces on portraits
and face-free photos (docs/detectors.md, "Defaults")."""
DEFAULT_MIN_FACE = 4
"""Faces whose shorter side is below this many pixels are reported as too small, not classified. The classifier is
as right on faces of 8-16 px as on large ones, so only specks are left unclassified."""
DEFAULT_HEAD_WEIGHT = 0.5
"""Share of a mask-aware detector's own class guess in a face's probabilities (the classifier has the rest):
the best three-class AP with a detector head that never saw the photos it was scored on."""
CURVE_CONF = 0.05
"""Detection threshold of the run that draws ``evaluate-scenes``' PR curves (AP over the whole curve, as detector
benchmarks score); the user's ``conf`` sets the operating point reported beside it."""


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
