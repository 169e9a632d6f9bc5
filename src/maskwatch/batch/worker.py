"""What a worker does with a chunk: decode its frames, detect and classify faces, send back plain records.

Workers do the per-frame work only (decoding, detection, classification), which
is stateless. Tracking (ids, smoothed labels, people counts) needs every frame of
a video in order; it is cheap, so the driver replays it over the chunks in order
(``maskwatch.batch.assemble``). That makes a batch run's output identical to a
single-process ``maskwatch detect`` run, whatever the chunking.
"""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from maskwatch.batch.plan import Chunk, _is_url
from maskwatch.errors import InputError
from maskwatch.faces import Face
from maskwatch.media.imageio import decode_image, read_image
from maskwatch.media.sources import Frame
from maskwatch.settings import PipelineSettings

try:
    import resource
except ImportError:  # Windows
    resource = None

CRASH_ENV = "MASKWATCH_BATCH_CRASH_ONCE"
"""Test hook: ``UNIT:SEQ:MARKER_FILE`` makes the worker that gets that chunk die (``os._exit``) once;
``UNIT:SEQ:always`` makes it die every time (a poison chunk)."""

URL_TIMEOUT_S = 30


@dataclass(frozen=True)
class FrameRecord:
    """One frame's untracked faces, without its pixels: what travels back to the driver."""

    source: str
    index: int
    timestamp: float | None
    width: int
    height: int
    faces: list[Face]


@dataclass
class ChunkResult:
    unit: int
    seq: int
    frames: list[FrameRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    fatal: str | None = None
    """Set when the chunk could not be read at all (a video that fails to open): the unit fails."""
    seconds: float = 0.0
    worker_pid: int = 0
    worker_peak_rss_mb: float = 0.0


def read_video_chunk(target: str, start: int, stop: int | None, fps: float | None) -> Iterator[Frame]:
    """Frames [start, stop) of a video (to its end when ``stop`` is None), numbered as ``VideoSource`` numbers them.

    Seeks to ``start``; if the backend cannot land exactly there, decodes from the
    beginning and skips, so frame numbers and pixels always match a sequential read.
    """
    capture = cv2.VideoCapture(target)
    try:
        if not capture.isOpened():
            raise InputError(f"{target}: not a readable video (corrupt or unsupported format)")
        if start > 0:
            capture.set(cv2.CAP_PROP_POS_FRAMES, start)
            if int(capture.get(cv2.CAP_PROP_POS_FRAMES)) != start:
                capture.release()
                capture = cv2.VideoCapture(target)
                for _ in range(start):
                    if not capture.grab():
                        return
        index = start
        while stop is None or index < stop:
            ok, image = capture.read()
            if not ok or image is None:
                break
            yield Frame(index, index / fps if fps else None, image)
            index += 1
    finally:
        capture.release()


def read_photo(target: str):
    """A photo from a path or an http(s) URL, as BGR, or ``InputError``."""
    if _is_url(target):
        try:
            with urllib.request.urlopen(target, timeout=URL_TIMEOUT_S) as response:  # noqa: S310 (user's own URLs)
                data = response.read()
        except OSError as exc:
            raise InputError(f"{target}: cannot download ({exc})") from None
        return decode_image(data, target)
    return read_image(Path(target))


def maybe_crash(chunk: Chunk, hook: str | None) -> None:
    """The test hook of ``CRASH_ENV``: die hard, once, on the named chunk (as an OOM kill would)."""
    if not hook:
        return
    unit, seq, marker = hook.split(":", 2)
    if (chunk.unit, chunk.seq) != (int(unit), int(seq)):
        return
    if marker == "always":
        os._exit(1)
    if not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os._exit(1)


def process_chunk(detector, chunk: Chunk) -> ChunkResult:
    """Detect and classify every frame of a chunk with a loaded ``Detector``; per-photo problems are listed."""
    start = time.perf_counter()
    result = ChunkResult(chunk.unit, chunk.seq, worker_pid=os.getpid())
    if chunk.kind == "images":
        for item in chunk.items:
            try:
                image = read_photo(item.target)
            except InputError as exc:
                result.errors.append(str(exc).replace(item.target, item.name))
                continue
            h, w = image.shape[:2]
            result.frames.append(FrameRecord(item.name, 0, None, w, h, detector.detect(image, photo=True)))
    else:
        item = chunk.items[0]
        try:
            for frame in read_video_chunk(item.target, chunk.start, chunk.stop, chunk.fps):
                h, w = frame.image.shape[:2]
                faces = detector.detect(frame.image)
                result.frames.append(FrameRecord(item.name, frame.index, frame.timestamp, w, h, faces))
        except InputError as exc:
            result.fatal = str(exc).replace(item.target, item.name)
    result.seconds = time.perf_counter() - start
    if resource is not None:  # ru_maxrss is in KiB on Linux
        result.worker_peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


class ChunkWorker:
    """The body of a Ray actor: loads the model bundle and detector once, then processes chunks."""

    def __init__(self, settings: PipelineSettings, crash_hook: str | None = None) -> None:
        from maskwatch.pipeline import Detector

        self.detector = Detector.from_settings(settings)
        self.crash_hook = crash_hook

    def classes(self) -> list[str]:
        return self.detector.classes

    def model_info(self) -> dict:
        return self.detector.model_info().model_dump()

    def process(self, chunk: Chunk) -> ChunkResult:
        maybe_crash(chunk, self.crash_hook)
        return process_chunk(self.detector, chunk)
