"""Video jobs: an uploaded video runs through ``run_sources`` in the background, polled by id."""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
from fastapi import HTTPException

from maskwatch.errors import EmptyInputError, InputError, InputTooLargeError
from maskwatch.faces import TOO_SMALL
from maskwatch.inference.tracker import FaceTracker
from maskwatch.media.runner import run_sources
from maskwatch.media.sources import Source, VideoSource
from maskwatch.pipeline import Detector, FrameResult
from maskwatch.schemas import FaceOut, FrameOut, Summary
from maskwatch.web.models import JobOut, PersonOut
from maskwatch.web.work import jpeg_base64

log = logging.getLogger("maskwatch")


def probe_video(path: Path, name: str, max_pixels: int, max_frames: int) -> int | None:
    """Frame count of an uploaded video (None if unknown); ``InputError`` if unreadable, huge or too long."""
    if path.stat().st_size == 0:
        raise EmptyInputError(f"{name}: empty file")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise InputError(f"{name}: not a readable video (corrupt or unsupported format)")
        # the size the container declares, checked before a frame is decoded: a 3 MB upload can hold a 12000 x
        # 12000 JPEG frame that takes 1 GB to decode; the decoded size is checked again below
        declared = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        _check_pixels(name, *declared, max_pixels)
        ok, image = capture.read()
        if not ok or image is None:
            raise InputError(f"{name}: not a readable video (corrupt or unsupported format)")
        _check_pixels(name, image.shape[1], image.shape[0], max_pixels)
        total = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))  # some streams report a negative count
        if total > max_frames:
            raise InputTooLargeError(f"{name}: {total} frames is over the limit of {max_frames} frames per video")
        return total or None
    finally:
        capture.release()


def _check_pixels(name: str, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise InputTooLargeError(f"{name}: {width}x{height} pixels is over the limit of {max_pixels}")


class TooManyFrames(InputTooLargeError):
    """Raised inside a job when a video holds more frames than it announced and than allowed."""


def people_in(frames: list[FrameOut], min_hits: int = FaceTracker([]).min_hits) -> list[PersonOut]:
    """One entry per face track, counted as the tracker counts people: seen in ``min_hits`` frames or more, named
    by the class its smoothed label showed most often (too-small frames count as seen but cast no vote)."""
    seen: dict[int, list[tuple[FrameOut, FaceOut]]] = {}
    for frame in frames:
        for face in frame.faces:
            if face.track_id is not None:
                seen.setdefault(face.track_id, []).append((frame, face))
    people = []
    for track_id, hits in seen.items():
        votes = Counter(face.label for _, face in hits if face.label != TOO_SMALL)
        if len(hits) < min_hits or not votes:
            continue
        (first, _), (last, _) = hits[0], hits[-1]
        people.append(
            PersonOut(
                track_id=track_id,
                label=votes.most_common(1)[0][0],
                first_frame=first.frame,
                last_frame=last.frame,
                first_seen=first.timestamp,
                last_seen=last.timestamp,
                frames=len(hits),
                confidence=round(max(f.detection_score * f.score for _, f in hits if f.label != TOO_SMALL), 4),
            )
        )
    return sorted(people, key=lambda p: (p.first_frame, p.track_id))


@dataclass
class Job:
    id: str
    source: str
    frames_total: int | None
    status: str = "queued"
    frames_done: int = 0
    error: str | None = None
    summary: Summary | None = None
    frames: list[FrameOut] = field(default_factory=list)
    keyframe_jpeg: str | None = None
    keyframe_faces: int = -1

    def to_out(self) -> JobOut:
        done = self.status == "done"
        progress = 1.0 if done else min(0.99, self.frames_done / self.frames_total) if self.frames_total else 0.0
        later = {  # shown once they exist; frames_total is always shown (null: the video did not say)
            "error": self.error,
            "summary": self.summary,
            "frames": list(self.frames) if done else None,
            "people": people_in(self.frames) if done else None,
            "keyframe_jpeg": self.keyframe_jpeg if done else None,
        }
        return JobOut(
            id=self.id,
            status=self.status,
            source=self.source,
            frames_done=self.frames_done,
            frames_total=self.frames_total,
            progress=round(progress, 3),
            **{key: value for key, value in later.items() if value is not None},
        )


class JobStore:
    """At most ``max_jobs`` queued or running jobs (429 beyond); finished jobs kept for polling."""

    def __init__(self, detector: Detector, temp_root: Path, max_jobs: int = 4, max_video_frames: int = 3000) -> None:
        self.detector = detector
        self.temp_root = temp_root
        self.max_jobs = max_jobs
        self.max_video_frames = max_video_frames
        self.keep = 64
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maskwatch-video")

    def active(self) -> int:
        with self.lock:
            return self._active()

    def _active(self) -> int:
        return sum(j.status in ("queued", "running") for j in self.jobs.values())

    def check_room(self) -> None:
        """429 when ``max_jobs`` are queued or running: asked before an upload is saved, and again on submit."""
        if self.active() >= self.max_jobs:
            self._refuse()

    def _refuse(self) -> None:
        raise HTTPException(
            429, f"{self.max_jobs} video jobs already queued or running; retry later", {"Retry-After": "5"}
        )

    def get(self, job_id: str) -> Job | None:
        with self.lock:
            return self.jobs.get(job_id)

    def submit(self, path: Path, folder: Path, name: str, frames_total: int | None) -> Job:
        """Queue a job on a video already saved in ``folder``; the folder is removed when the job ends."""
        with self.lock:
            if self._active() >= self.max_jobs:
                self._refuse()
            job = Job(id=uuid.uuid4().hex, source=name, frames_total=frames_total)
            self.jobs[job.id] = job
            finished = [k for k, j in self.jobs.items() if j.status in ("done", "failed")]
            for key in finished[: max(0, len(self.jobs) - self.keep)]:
                del self.jobs[key]
        self.executor.submit(self._run, job, path, folder)
        return job

    def _run(self, job: Job, path: Path, folder: Path) -> None:
        try:
            job.status = "running"
            source = VideoSource(path)
            source.name = job.source

            sink = _JobSink(job, self.max_video_frames)
            summary = run_sources(self.detector, [source], [sink])
            job.summary = summary
            if summary.failed_sources:  # a video cut short keeps its frames (done, with the note); nothing read fails
                job.error = summary.failed_sources[0]
                job.status = "done" if job.frames and not sink.over_limit else "failed"
            else:
                job.status = "done"
        except Exception as exc:  # a bug must still end the job, not leave it running forever
            log.exception("video job %s failed", job.id)
            job.error = f"internal error: {type(exc).__name__}"
            job.status = "failed"
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class _JobSink:
    """A job's frames, progress and key frame (the frame with most faces), as they are made."""

    def __init__(self, job: Job, max_frames: int) -> None:
        self.job, self.max_frames = job, max_frames
        self.over_limit = False

    def write(self, result: FrameResult, source: Source) -> None:
        job = self.job
        if result.index >= self.max_frames:
            self.over_limit = True
            raise TooManyFrames(f"{job.source}: over the limit of {self.max_frames} frames per video")
        job.frames.append(result.to_schema())
        job.frames_done = result.index + 1
        if len(result.faces) > job.keyframe_faces:
            job.keyframe_faces = len(result.faces)
            job.keyframe_jpeg = jpeg_base64(result.image, result.faces)

    def close(self) -> None:
        pass
