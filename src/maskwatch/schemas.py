"""JSON schemas shared by the CLI's JSON lines, the web API and batch outputs."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FaceOut(BaseModel):
    """One face: the JSON form of ``maskwatch.faces.Face``."""

    box: list[float] = Field(min_length=4, max_length=4, description="x1, y1, x2, y2 in pixels")
    label: str = Field(description="a class of the model bundle, or 'too_small' when not classified")
    score: float = Field(ge=0, le=1, description="probability of the label (0 for too_small)")
    detection_score: float = Field(ge=0, le=1)
    probabilities: dict[str, float] = Field(default_factory=dict)
    track_id: int | None = Field(default=None, description="stable id across frames of a video or stream")


class FrameOut(BaseModel):
    """One JSON line: the faces of one frame of one source."""

    source: str
    frame: int = Field(ge=0)
    timestamp: float | None = Field(default=None, description="seconds from the start of a video or stream")
    width: int
    height: int
    faces: list[FaceOut]


class ModelOut(BaseModel):
    """What a client needs to know about the model in use."""

    source: str
    classes: list[str]
    input_size: int
    backbone: str
    detector: str
    """Face detector for video frames, streams and the webcam."""
    photo_detector: str
    """Face detector for still photos (uploads, image files)."""
    metrics: dict


class Summary(BaseModel):
    """Closing figures of a run over one or more sources."""

    frames: int = 0
    faces: int = 0
    faces_per_class: dict[str, int] = Field(default_factory=dict)
    people_per_class: dict[str, int] = Field(default_factory=dict, description="unique tracks per class")
    seconds: float = 0.0
    fps: float = 0.0
    failed_sources: list[str] = Field(default_factory=list)
    interrupted: bool = Field(default=False, description="the run was stopped by Ctrl-C; outputs are complete")
