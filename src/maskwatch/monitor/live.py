"""Counts over time for ``maskwatch detect`` on videos and streams: the live status line and the CSV report.

``run_sources`` calls ``on_frame`` for every frame; this keeps one interval counter per source (a video on its
own timeline, a camera or stream on the clock) and writes each closed interval as a report row.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from maskwatch.faces import TOO_SMALL
from maskwatch.monitor.intervals import CsvReport, IntervalCounter
from maskwatch.monitor.status import FrameStats, StatusLine, people_text
from maskwatch.pipeline import FrameResult

DEFAULT_INTERVAL = 60.0


class RunCounts:
    """Per-frame hook: report rows, and the status line's frames, fps, people by class and masked share."""

    def __init__(
        self, classes: list[str], report: Path | None, interval: float = DEFAULT_INTERVAL, status=None
    ) -> None:
        self.interval = interval
        self.report = CsvReport(report, list(classes)) if report is not None else None
        self.status: StatusLine | None = status
        self.stats = FrameStats()
        self.counter: IntervalCounter | None = None
        self.source: str | None = None
        self.last_t = 0.0
        self.people: dict[int, Counter] = {}
        self.rows = 0

    def __call__(self, result: FrameResult, source) -> None:
        if source.kind == "image":
            self.stats.tick()
            return
        if source.kind == "video":
            t = result.timestamp if result.timestamp is not None else result.index / (source.fps or 25.0)
        else:
            t = time.time()
        if self.source != source.name:
            self._flush()
            self.source = source.name
            self.counter = IntervalCounter(source.name, self.interval, start=t)
            self.people = {}
        self.last_t = t
        for row in self.counter.add(t, result.faces):
            self._write(row)
        for face in result.faces:
            if face.track_id is not None and face.label != TOO_SMALL:
                self.people.setdefault(face.track_id, Counter())[face.label] += 1
        self.stats.tick()
        if self.status is not None and self.status.due():
            self.status.update(self.text())

    def write(self, result: FrameResult, source) -> None:
        """The sink interface (``write``/``close``) of the run's other outputs."""
        self(result, source)

    def text(self) -> str:
        people: Counter = Counter()
        for labels in self.people.values():
            if sum(labels.values()) >= 3:
                people[labels.most_common(1)[0][0]] += 1
        name = self.source or ""
        name = name if "://" in name or name.startswith("camera:") else Path(name).name  # a file: its name only
        return f"{name}: {self.stats.frames} frames, {self.stats.fps:.1f} fps, people {people_text(dict(people))}"

    def _write(self, row) -> None:
        self.rows += 1
        if self.report is not None:
            self.report.write(row)

    def _flush(self) -> None:
        if self.counter is not None:
            row = self.counter.flush(self.last_t)
            if row is not None:
                self._write(row)
        self.counter = None

    def close(self) -> None:
        """Write the interval in progress (a run that ends or is stopped keeps its last minutes)."""
        self._flush()
        if self.report is not None:
            self.report.close()
