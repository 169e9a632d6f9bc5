"""One source's frame loop: read (reconnecting), detect and track, count, apply the rules, store events.

Everything slow or fallible beyond the detector (delivery, clip encoding, the dashboard's JPEGs) happens on
other threads; the loop only stores an event (one SQLite row and its snapshot) and queues its id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field, replace

import numpy as np

from maskwatch.errors import MaskwatchError
from maskwatch.faces import TOO_SMALL, Face
from maskwatch.media.draw import annotate, blur_faces
from maskwatch.media.sources import CaptureSource, Frame, Source, expand_sources
from maskwatch.monitor.clips import ClipRecorder
from maskwatch.monitor.config import RulesConfig, SourceConfig
from maskwatch.monitor.intervals import IntervalCounter, IntervalRow
from maskwatch.monitor.rules import Alert, RuleEngine
from maskwatch.monitor.store import encode_jpeg
from maskwatch.pipeline import Detector

log = logging.getLogger("maskwatch")


class LiveFrames:
    """A live camera or stream read on its own thread; the loop takes the newest frame, the skipped ones are
    counted as dropped (a detector slower than the camera must not fall further and further behind)."""

    def __init__(self, source: CaptureSource, stop: threading.Event) -> None:
        self.source = source
        self.kind, self.name = source.kind, source.name
        self.stop = stop
        self.dropped = 0

    @property
    def fps(self) -> float | None:
        return self.source.fps

    def frames(self) -> Iterator[Frame]:
        slot: list[Frame] = []
        ready = threading.Condition()
        done: list[BaseException | None] = []
        closed = threading.Event()

        def grab() -> None:
            error: BaseException | None = None
            frames = self.source.frames()
            try:
                for frame in frames:
                    with ready:
                        if slot:
                            self.dropped += 1
                            slot.clear()
                        slot.append(frame)
                        ready.notify()
                    if self.stop.is_set() or closed.is_set():
                        break
            except BaseException as exc:  # handed to the loop's thread, raised there
                error = exc
            finally:
                frames.close()  # the capture is released on this thread, before the thread ends
            with ready:
                done.append(error)
                ready.notify()

        thread = threading.Thread(target=grab, name=f"maskwatch-grab-{self.name}", daemon=True)
        thread.start()
        try:
            while True:
                with ready:
                    while not slot and not done:
                        ready.wait(0.5)
                        if self.stop.is_set():
                            return
                    if slot:
                        frame = slot.pop()
                    elif done:
                        if done[0] is not None:
                            raise done[0]
                        return
                yield frame
        finally:
            # wait for the reader: a thread still inside OpenCV's read when the interpreter exits aborts the process
            closed.set()
            thread.join(timeout=self.source.timeout_ms / 1000.0 + 5.0)


@dataclass
class SourceState:
    """What the dashboard and the status line read about a source (written by its loop only)."""

    name: str
    status: str = "starting"
    frames: int = 0
    dropped: int = 0
    reconnects: int = 0
    fps: float = 0.0
    error: str | None = None
    events: int = 0
    compliance: float | None = None
    people_in_window: int = 0
    current: IntervalRow | None = None
    people: dict[int, Counter] = field(default_factory=lambda: defaultdict(Counter))
    hits: Counter = field(default_factory=Counter)
    latest: tuple[np.ndarray, list[Face]] | None = None
    latest_at: float = 0.0
    first_frame: float | None = None
    last_frame: float = 0.0
    """Monotonic times of the first and the latest frame handled: the loop's mean fps over the whole run."""
    cpu_first: float = 0.0
    cpu_last: float = 0.0
    """The loop thread's CPU time at those frames (what the loop itself spends, whatever else runs)."""

    @property
    def cpu_ms_per_frame(self) -> float:
        return 1000.0 * (self.cpu_last - self.cpu_first) / (self.frames - 1) if self.frames > 1 else 0.0

    @property
    def mean_fps(self) -> float:
        span = self.last_frame - (self.first_frame or 0.0)
        return (self.frames - 1) / span if self.frames > 1 and span > 0 else 0.0

    def unique_people(self, min_hits: int = 3) -> dict[str, int]:
        """People seen so far, each in the class it showed most often."""
        out: Counter = Counter()
        for track, labels in list(self.people.items()):
            if self.hits[track] >= min_hits and labels:
                out[labels.most_common(1)[0][0]] += 1
        return dict(out)


class SourceWorker:
    """The thread running one source until the run stops; a failure here never touches another source."""

    def __init__(
        self,
        config: SourceConfig,
        rules: RulesConfig,
        detector: Detector,
        monitor,  # maskwatch.monitor.watch.Monitor: store, delivery, report, metrics, clips (shared)
        interval: float,
    ) -> None:
        self.config = config
        self.detector = detector
        self.monitor = monitor
        self.interval = interval
        self.engine = RuleEngine(rules)
        self.state = SourceState(config.name)
        self.masked = tuple(rules.masked_classes)
        self.counter: IntervalCounter | None = None
        self.clips = ClipRecorder(
            monitor.config.storage.clip_before,
            monitor.config.storage.clip_after,
            monitor.store.folder,
            monitor.store.set_clip,
            monitor.clip_writer,
            blur=monitor.config.storage.blur_faces,
        )
        self.thread = threading.Thread(target=self._run, name=f"maskwatch-{config.name}", daemon=True)
        self._fps_times: deque = deque(maxlen=30)
        self._last_t = 0.0
        self._top_id = 0
        """The highest track id so far: ids stay unique across reconnections (rules and counts key on them)."""

    def start(self) -> SourceWorker:
        self.thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def _open(self) -> tuple[Source | LiveFrames, bool]:
        """The source to read, and whether it runs on its own timeline (a file, or ``fps`` set)."""
        limit = self.config.reconnects
        sources, problems = expand_sources([self.config.url], reconnects=3 if limit is None else min(3, limit))
        if problems or len(sources) != 1:
            raise MaskwatchError(problems[0] if problems else f"{self.config.url}: not one video source")
        source = sources[0]
        if source.kind == "image":
            raise MaskwatchError(f"{self.config.url}: a still image, not a camera, stream or video")
        if isinstance(source, CaptureSource) and self.config.fps is None:
            return LiveFrames(source, self.monitor.sources_stop), False
        return source, True

    def _run(self) -> None:
        attempts = 0
        stop = self.monitor.sources_stop
        while not stop.is_set():
            source = None
            try:
                source, replay = self._open()
                self.state.status = "running"
                base = self._last_t + (1.0 / (self.config.fps or 25.0) if self.state.frames else 0.0)
                id_offset, reported = self._top_id, 0  # a reopened source's tracker starts at 1 again
                # closed however the loop ends, not when the collector finds it: no reader thread outlives the run
                with closing(self.detector.process(source, track=True)) as run:
                    for result in run:
                        if stop.is_set():
                            break
                        faces = [replace(f, track_id=f.track_id + id_offset) if f.track_id else f for f in result.faces]
                        self._top_id = max([self._top_id, *(f.track_id or 0 for f in faces)])
                        if replay:
                            fps = self.config.fps or source.fps or 25.0
                            t = base + result.index / fps
                        else:
                            t = time.time()
                        self.handle(t, result.image, faces)
                        if isinstance(source, LiveFrames) and source.dropped > reported:
                            self.state.dropped += source.dropped - reported
                            self.monitor.metrics.dropped.labels(self.config.name).inc(source.dropped - reported)
                            reported = source.dropped
                        attempts = 0
                if stop.is_set():
                    break
                if source.kind == "video":
                    self.state.status = "ended"
                    log.info("%s: video ended", self.config.name)
                    break
                raise MaskwatchError(f"{self.config.url}: stream ended")
            except MaskwatchError as exc:
                self.state.error = str(exc)
                attempts += 1
                limit = self.config.reconnects
                if (source is not None and source.kind == "video") or (limit is not None and attempts > limit):
                    self.state.status = "failed"
                    log.error("%s: %s; source stopped", self.config.name, exc)
                    break
                self.state.status = "reconnecting"
                self.state.reconnects += 1
                log.warning("%s: %s; opening again in %.0f s", self.config.name, exc, self.config.reconnect_delay)
                if stop.wait(self.config.reconnect_delay):
                    break
            except Exception as exc:  # a bug or a library failure in one source must not end the others
                self.state.status = "failed"
                self.state.error = f"{type(exc).__name__}: {exc}"
                log.exception("%s: stopped by an unexpected error", self.config.name)
                break
        self._close()

    def handle(self, t: float, image: np.ndarray, faces: list[Face]) -> None:
        """One frame: counts, rules, events."""
        name, state, metrics = self.config.name, self.state, self.monitor.metrics
        self._last_t = t
        if self.counter is None:
            self.counter = IntervalCounter(name, self.interval, start=t, masked=self.masked)
        for row in self.counter.add(t, faces):
            self._row(row)
        state.frames += 1
        now = time.monotonic()
        if state.first_frame is None:
            state.first_frame, state.cpu_first = now, time.thread_time()
        state.last_frame, state.cpu_last = now, time.thread_time()
        self._fps_times.append(now)
        if len(self._fps_times) > 1 and now > self._fps_times[0]:
            state.fps = (len(self._fps_times) - 1) / (now - self._fps_times[0])
        for face in faces:
            if face.track_id is not None and face.label != TOO_SMALL:
                state.people[face.track_id][face.label] += 1
                state.hits[face.track_id] += 1
        alerts = self.engine.update(t, faces)
        self.clips.add(t, image, faces)
        for alert in alerts:
            self._event(alert, image, faces)
        state.latest, state.latest_at = (image, faces), time.time()
        metrics.frame(name, faces)
        metrics.fps.labels(name).set(state.fps)
        if state.frames % 10 == 1 or alerts:
            state.compliance, state.people_in_window = self.engine.compliance(t)
            metrics.compliance.labels(name).set(float("nan") if state.compliance is None else state.compliance)

    def _event(self, alert: Alert, image: np.ndarray, faces: list[Face]) -> None:
        monitor = self.monitor
        shown = [alert.face] if alert.face is not None else faces  # the person it is about, or everyone
        base = blur_faces(image, faces) if monitor.config.storage.blur_faces else image
        jpeg = encode_jpeg(annotate(base, shown))
        event = monitor.store.add(
            self.config.name, alert.t, alert.rule, alert.track_id, alert.label, alert.details, jpeg
        )
        self.state.events += 1
        monitor.metrics.events.labels(self.config.name, alert.rule).inc()
        self.clips.start(event.id, alert.t)
        monitor.delivery.submit(event)
        who = f" track {alert.track_id} ({alert.label})" if alert.track_id is not None else ""
        log.info("%s: event %d %s%s", self.config.name, event.id, alert.rule, who)

    def _row(self, row: IntervalRow) -> None:
        self.monitor.store.add_interval(row.to_dict())
        for label, count in row.people.items():
            self.monitor.metrics.people.labels(self.config.name, label).set(count)
        if self.monitor.report is not None:
            self.monitor.report.write(row)

    def _close(self) -> None:
        if self.counter is not None:
            row = self.counter.flush(self._last_t)
            if row is not None:
                self._row(row)
        self.clips.close()
        if self.state.status == "running":
            self.state.status = "stopped"
        self.monitor.store.close()

    def current_row(self) -> IntervalRow | None:
        return None if self.counter is None else self.counter.current(self._last_t)
