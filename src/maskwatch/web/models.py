"""Response bodies of the REST API, built on the CLI's JSON-lines schemas (``maskwatch.schemas``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from maskwatch.schemas import FrameOut, ModelOut, Summary


class DetectOut(FrameOut):
    """``POST /v1/detect``: exactly one CLI JSON line (``FrameOut``), plus optional extras."""

    annotated_jpeg: str | None = Field(default=None, description="base64 JPEG with the faces drawn (?annotate=true)")
    ms: float = Field(description="server time spent decoding and detecting, in milliseconds")


class PersonOut(BaseModel):
    """One person in a video: a face track, its class and when it was seen."""

    track_id: int
    label: str = Field(description="the class the track showed in most frames (as people_per_class counts it)")
    first_frame: int
    last_frame: int
    first_seen: float | None = Field(default=None, description="seconds from the start of the video")
    last_seen: float | None = None
    frames: int = Field(description="frames in which the person's face was found")
    confidence: float = Field(
        ge=0, le=1, description="highest combined confidence (detection score x class probability) of the track"
    )


class JobOut(BaseModel):
    """``GET /v1/jobs/{id}``: a video detection job, its progress and, once done, its result."""

    id: str
    status: Literal["queued", "running", "done", "failed"]
    source: str = Field(description="the uploaded file name")
    frames_done: int = 0
    frames_total: int | None = Field(default=None, description="frame count announced by the video, if any")
    progress: float = Field(default=0.0, ge=0, le=1)
    error: str | None = None
    summary: Summary | None = None
    frames: list[FrameOut] | None = Field(default=None, description="one CLI JSON line per frame, once done")
    people: list[PersonOut] | None = Field(
        default=None, description="one entry per person (face track seen in enough frames to count), once done"
    )
    keyframe_jpeg: str | None = Field(default=None, description="base64 annotated JPEG of the frame with most faces")


class JobCreated(BaseModel):
    id: str
    status: str
    url: str = Field(description="where to poll for progress and the result")


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"
    model: str
    workers: int
    jobs_running: int


class ErrorOut(BaseModel):
    detail: str


class ModelInfoOut(ModelOut):
    """``GET /v1/model``: the model in use (classes, metrics) and the server's limits."""

    max_upload_mb: float
    max_pixels: int
    max_video_frames: int
    token_required: bool
