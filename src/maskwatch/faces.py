"""The one currency of the pipeline: a detected face and what we think of it.

CLI JSON lines, the web API, batch jobs and the Python API all speak ``Face``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

Box = tuple[float, float, float, float]
"""(x1, y1, x2, y2) in pixels of the frame, x2/y2 exclusive."""

TOO_SMALL = "too_small"
"""Label for faces smaller than ``min_face``: reported, never guessed."""


@dataclass(frozen=True)
class Detection:
    """A face found by a detector, before classification."""

    box: Box
    score: float
    keypoints: tuple[tuple[float, float], ...] = ()
    class_probabilities: dict[str, float] | None = field(default=None, hash=False)
    """A mask-aware detector's own guess of the class (maskface); the classifier refines it."""


@dataclass(frozen=True)
class Face:
    """A classified face in one frame."""

    box: Box
    label: str
    score: float
    detection_score: float
    probabilities: dict[str, float] = field(default_factory=dict)
    track_id: int | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    def with_track(self, track_id: int, label: str, score: float, probabilities: dict[str, float]) -> Face:
        """A copy carrying the tracker's id and its smoothed class."""
        return replace(self, track_id=track_id, label=label, score=score, probabilities=probabilities)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form, the one schema of ``maskwatch.schemas.FaceOut``."""
        return {
            "box": [round(float(v), 1) for v in self.box],
            "label": self.label,
            "score": round(float(self.score), 4),
            "detection_score": round(float(self.detection_score), 4),
            "probabilities": {k: round(float(v), 4) for k, v in self.probabilities.items()},
            "track_id": self.track_id,
        }
