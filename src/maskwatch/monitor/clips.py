"""Event clips: a ring buffer of the last seconds of frames, and MP4s of before + after an event.

Frames are kept at most ``MAX_SIDE`` px wide (a 1080p stream would need gigabytes for ten seconds) and written
by a background thread, so a clip never stalls the frame loop.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from maskwatch.faces import Face
from maskwatch.monitor.store import render_frame

log = logging.getLogger("maskwatch")

MAX_SIDE = 640


@dataclass
class _OpenClip:
    event_id: int
    until: float
    frames: list[tuple[np.ndarray, list[Face]]] = field(default_factory=list)


class ClipRecorder:
    """Per source: remembers ``before`` seconds; after an event, gathers ``after`` more, then writes the clip."""

    def __init__(
        self, before: float, after: float, folder: Path, on_written, writer: ClipWriter, blur: bool = False
    ) -> None:
        self.before, self.after = before, after
        self.blur = blur
        self.folder = folder
        self.on_written = on_written
        self.writer = writer
        self.ring: deque[tuple[float, tuple]] = deque()
        self.open: list[_OpenClip] = []

    @property
    def enabled(self) -> bool:
        return self.before > 0 or self.after > 0

    def add(self, t: float, image: np.ndarray, faces: list[Face]) -> None:
        if not self.enabled:
            return
        small = _shrink(image, faces)
        self.ring.append((t, small))
        while self.ring and t - self.ring[0][0] > self.before:
            self.ring.popleft()
        for clip in list(self.open):
            clip.frames.append(small)
            if t >= clip.until:
                self._finish(clip, t)

    def start(self, event_id: int, t: float) -> None:
        """An event at time t: the clip holds the buffered frames and those of the next ``after`` seconds."""
        if not self.enabled:
            return
        clip = _OpenClip(event_id, t + self.after, [f for _, f in self.ring])
        self.open.append(clip)
        if self.after <= 0:
            self._finish(clip, t)

    def _finish(self, clip: _OpenClip, t: float) -> None:
        self.open.remove(clip)
        span = max(1e-3, self.before + self.after)
        fps = max(1.0, min(60.0, len(clip.frames) / span))
        name = f"clips/{clip.event_id:08d}.mp4"
        self.writer.put(self.folder / name, clip.frames, fps, self.blur, lambda: self.on_written(clip.event_id, name))

    def close(self) -> None:
        """A run that stops writes the clips it began, shorter."""
        for clip in list(self.open):
            self._finish(clip, clip.until)


class ClipWriter:
    """One thread encoding clips for every source."""

    def __init__(self) -> None:
        self.jobs: queue.Queue = queue.Queue(maxsize=64)
        self.thread = threading.Thread(target=self._run, name="maskwatch-clips", daemon=True)
        self.thread.start()

    def put(self, path: Path, frames: list[tuple], fps: float, blur: bool, done) -> None:
        try:
            self.jobs.put_nowait((path, frames, fps, blur, done))
        except queue.Full:
            log.warning("%s: clip skipped (clip writer busy)", path.name)

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            path, frames, fps, blur, done = job
            if not frames:
                continue
            try:
                frames = [render_frame(image, faces, blur) for image, faces in frames]
                h, w = frames[0].shape[:2]
                temporary = path.with_suffix(".part.mp4")
                writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                for frame in frames:
                    writer.write(frame if frame.shape[:2] == (h, w) else cv2.resize(frame, (w, h)))
                writer.release()
                temporary.replace(path)
                done()
            except Exception as exc:  # a clip is a bonus: its failure is logged, the event is already stored
                log.warning("%s: clip not written (%s)", path.name, exc)

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=30)


def _shrink(image: np.ndarray, faces: list[Face]) -> tuple[np.ndarray, list[Face]]:
    """The frame at most MAX_SIDE px, with its face boxes scaled to match."""
    h, w = image.shape[:2]
    if max(h, w) <= MAX_SIDE:
        return image, faces
    scale = MAX_SIDE / max(h, w)
    small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return small, [replace(f, box=tuple(v * scale for v in f.box)) for f in faces]
