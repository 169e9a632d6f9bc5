"""Frame sources: image files, folders, globs, video files, camera indices and network streams.

Every source yields ``Frame``s; opening or reading problems become one-line
``InputError``s. Network streams reconnect with exponential backoff when they
drop, so a long run survives a flaky camera.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maskwatch.errors import EmptyInputError, InputError
from maskwatch.media.imageio import is_image_path, read_image

log = logging.getLogger("maskwatch")

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".ts", ".flv"})
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


@dataclass(frozen=True)
class Frame:
    index: int
    timestamp: float | None
    image: np.ndarray


class ImageSource:
    """One still image."""

    kind = "image"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self.fps: float | None = None

    def frames(self) -> Iterator[Frame]:
        yield Frame(0, None, read_image(self.path))


class VideoSource:
    """A video file, read frame by frame; a truncated file yields what it holds, then raises ``InputError``."""

    kind = "video"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self.fps: float | None = None

    def frames(self) -> Iterator[Frame]:
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such file")
        if self.path.stat().st_size == 0:
            raise EmptyInputError(f"{self.path}: empty file")
        capture = cv2.VideoCapture(str(self.path))
        try:
            if not capture.isOpened():
                raise InputError(f"{self.path}: not a readable video (corrupt or unsupported format)")
            fps = capture.get(cv2.CAP_PROP_FPS)
            self.fps = fps if fps and 0 < fps < 1000 else None
            expected = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            index = 0
            while True:
                ok, image = capture.read()
                if not ok or image is None:
                    break
                yield Frame(index, index / self.fps if self.fps else None, image)
                index += 1
            if index == 0:
                raise InputError(f"{self.name}: no decodable frames (corrupt or truncated video)")
            if expected and index < expected * 0.9:  # the frames read are already out: only the exit code changes
                raise InputError(f"{self.name}: video ended after {index} of {expected} frames (truncated?)")
        finally:
            capture.release()


class CaptureSource:
    """A camera index or a network stream (RTSP, HTTP MJPEG, …), reconnecting with backoff.

    A source that cannot be opened at the start fails at once; one that drops
    later is reopened up to ``reconnects`` times (delays 0.5 s, 1 s, 2 s … capped
    at ``max_delay``) and the run goes on. When it cannot be reopened, ``frames``
    raises ``InputError`` after the frames it delivered (callers keep their outputs).
    """

    def __init__(
        self,
        target: int | str,
        reconnects: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        timeout_ms: int = 5000,
    ) -> None:
        self.target = target
        self.kind = "camera" if isinstance(target, int) else "stream"
        self.name = f"camera:{target}" if isinstance(target, int) else str(target)
        self.reconnects = reconnects
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout_ms = timeout_ms
        self.fps: float | None = None
        self.reconnections = 0

    def _open(self) -> cv2.VideoCapture | None:
        if isinstance(self.target, int):
            capture = cv2.VideoCapture(self.target)
        else:
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self.timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.timeout_ms]
            capture = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, params)
        if capture.isOpened():
            fps = capture.get(cv2.CAP_PROP_FPS)
            self.fps = fps if fps and 0 < fps < 1000 else self.fps
            return capture
        capture.release()
        return None

    def frames(self) -> Iterator[Frame]:
        capture = self._open()
        if capture is None:
            what = "camera not found or busy" if self.kind == "camera" else "stream unreachable or not a video"
            raise InputError(f"{self.name}: {what}")
        start = time.monotonic()
        index, failures = 0, 0
        try:
            while True:
                ok, image = capture.read() if capture is not None else (False, None)
                if ok and image is not None:
                    failures = 0
                    yield Frame(index, time.monotonic() - start, image)
                    index += 1
                    continue
                if capture is not None:
                    capture.release()
                    capture = None
                if failures >= self.reconnects:
                    raise InputError(f"{self.name}: stream lost; gave up after {failures} reconnection attempts")
                delay = min(self.max_delay, self.base_delay * 2**failures)
                failures += 1
                log.warning(
                    "%s: stream dropped; reconnecting in %.1fs (%d/%d)", self.name, delay, failures, self.reconnects
                )
                time.sleep(delay)
                capture = self._open()
                if capture is not None:
                    self.reconnections += 1
                    log.warning("%s: reconnected", self.name)
        finally:
            if capture is not None:
                capture.release()


Source = ImageSource | VideoSource | CaptureSource


def expand_sources(specs: list[str], reconnects: int = 5) -> tuple[list[Source], list[str]]:
    """Turn command-line SOURCE arguments into sources.

    Returns the sources and the problems found while expanding (missing paths, a folder
    with no image or video). A folder or glob lists the images and videos inside it,
    sorted; other files in it (notes, Thumbs.db) are skipped with one warning, not a problem:
    nobody asked for them.
    """
    sources: list[Source] = []
    problems: list[str] = []
    for spec in specs:
        if not spec.strip():  # Path("") is the current folder: an empty argument must not mean "everything here"
            problems.append("an empty source was given")
        elif spec.isdigit():
            sources.append(CaptureSource(int(spec), reconnects=reconnects))
        elif spec.lower().startswith(STREAM_SCHEMES):
            sources.append(CaptureSource(spec, reconnects=reconnects))
        elif any(ch in spec for ch in "*?[") and not os.path.exists(spec):  # "photo [1].jpg" is a file, not a glob
            matches = sorted(Path(p) for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
            found = _file_sources(matches, listed_from=spec)
            if not found:
                problems.append(f"{spec}: no image or video matches" if matches else f"{spec}: no file matches")
            sources.extend(found)
        else:
            path = Path(spec)
            if path.is_dir():
                files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
                found = _file_sources(files, listed_from=str(path))
                if not found:
                    problems.append(f"{path}: folder holds no image or video")
                sources.extend(found)
            elif not path.exists():
                problems.append(f"{path}: no such file, folder or camera")
            else:
                sources.extend(_file_sources([path], explicit=True))
    return sources, problems


def _file_sources(paths: list[Path], explicit: bool = False, listed_from: str | None = None) -> list[Source]:
    """Sources for files; a file named on its own is tried whatever its suffix, one listed from a folder or glob
    (``listed_from``) only with an image or video suffix, the others named in one warning."""
    out: list[Source] = []
    others: list[str] = []
    for path in paths:
        if is_image_path(path):
            out.append(ImageSource(path))
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            out.append(VideoSource(path))
        elif explicit:
            out.append(_guess_source(path))
        else:
            others.append(path.name)
    if others and out:
        shown = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
        log.warning("%s: %d file(s) that are not images or videos skipped (%s)", listed_from, len(others), shown)
    return out


def _guess_source(path: Path) -> Source:
    """A named file with an unknown suffix: a video if OpenCV can open it as one, else an image."""
    capture = cv2.VideoCapture(str(path))
    try:
        if capture.isOpened() and capture.get(cv2.CAP_PROP_FRAME_COUNT) > 1:
            return VideoSource(path)
    finally:
        capture.release()
    return ImageSource(path)
