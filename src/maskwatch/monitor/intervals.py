"""Counts over time: one row per source and interval (frames, faces and people per class, compliance).

A person is a track; within an interval it counts once, in the class it showed most often there. Tracks
seen in fewer than ``min_hits`` frames in all (a flicker, a false face) are not people, as in the tracker's
own unique-people count.
"""

from __future__ import annotations

import csv
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from maskwatch.faces import TOO_SMALL, Face
from maskwatch.monitor.config import MASKED


@dataclass
class IntervalRow:
    """Figures of one source over ``[start, end)`` (seconds of the source's timeline, or Unix time)."""

    source: str
    start: float
    end: float
    frames: int = 0
    faces: dict[str, int] = field(default_factory=dict)
    people: dict[str, int] = field(default_factory=dict)
    masked_classes: tuple[str, ...] = MASKED

    @property
    def people_total(self) -> int:
        return sum(self.people.values())

    @property
    def compliance(self) -> float | None:
        """Correctly masked people / people; None with nobody seen."""
        total = self.people_total
        return None if total == 0 else sum(self.people.get(c, 0) for c in self.masked_classes) / total

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "frames": self.frames,
            "faces": dict(self.faces),
            "people": dict(self.people),
            "compliance": None if self.compliance is None else round(self.compliance, 4),
        }


class IntervalCounter:
    """Feeds frames of one source, hands back the rows of the intervals that closed."""

    def __init__(
        self, source: str, interval: float, start: float = 0.0, min_hits: int = 3, masked: tuple[str, ...] = MASKED
    ) -> None:
        self.source = source
        self.interval = interval
        self.start = start
        self.min_hits = min_hits
        self.masked = masked
        self.frames = 0
        self.faces: Counter = Counter()
        self.labels: dict[int, Counter] = defaultdict(Counter)
        self.hits: Counter = Counter()
        """Frames each track was seen in, over the whole run (a track is a person from ``min_hits`` on)."""

    def add(self, t: float, faces: list[Face]) -> list[IntervalRow]:
        rows = []
        while t >= self.start + self.interval:
            rows.append(self._close(self.start + self.interval))
        self.frames += 1
        for face in faces:
            self.faces[face.label] += 1
            if face.track_id is not None and face.label != TOO_SMALL:
                self.labels[face.track_id][face.label] += 1
                self.hits[face.track_id] += 1
        return rows

    def flush(self, end: float) -> IntervalRow | None:
        """The row of the interval in progress (a run that stops), or None when it saw no frame."""
        return self._close(max(end, self.start)) if self.frames else None

    def current(self, end: float) -> IntervalRow:
        """The interval in progress so far, without closing it (for a live view)."""
        return self._row(end)

    def _row(self, end: float) -> IntervalRow:
        people: Counter = Counter()
        for track, labels in self.labels.items():
            if self.hits[track] >= self.min_hits:
                people[labels.most_common(1)[0][0]] += 1
        return IntervalRow(self.source, self.start, end, self.frames, dict(self.faces), dict(people), self.masked)

    def _close(self, end: float) -> IntervalRow:
        row = self._row(end)
        self.start = end
        self.frames = 0
        self.faces = Counter()
        self.labels = defaultdict(Counter)
        return row


UNIX_TIME = 1e9
"""Times above this are Unix times (a live source's clock), below it seconds into a replayed recording."""


def format_time(t: float) -> str:
    """A Unix time as ISO 8601 (UTC, to the millisecond); seconds of a recording as they are."""
    if t < UNIX_TIME:
        return f"{t:.3f}"
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CsvReport:
    """The report file: one row per source and interval, flushed as written (an interrupted run keeps its rows).

    Columns: source, start, end, frames, faces_<class>…, people_<class>…, people, compliance. The class columns
    are fixed when the file is opened; a file already there with the same header is appended to.
    """

    def __init__(self, path: Path, classes: list[str]) -> None:
        self.path = path
        self.classes = list(classes)
        self.columns = (
            ["source", "start", "end", "frames"]
            + [f"faces_{c}" for c in self.classes]
            + [f"people_{c}" for c in self.classes]
            + ["people", "compliance"]
        )
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        append = path.is_file() and path.stat().st_size > 0 and self._same_header(path)
        if not append and path.is_file() and path.stat().st_size > 0:
            from maskwatch.errors import InputError

            raise InputError(f"{path}: exists with other columns; choose another report file")
        self.stream = path.open("a", encoding="utf-8", newline="")
        self.writer = csv.writer(self.stream)
        if not append:
            self.writer.writerow(self.columns)
            self.stream.flush()

    def _same_header(self, path: Path) -> bool:
        with path.open(encoding="utf-8", newline="") as fh:
            return next(csv.reader(fh), None) == self.columns

    def write(self, row: IntervalRow) -> None:
        compliance = row.compliance
        values = (
            [row.source, format_time(row.start), format_time(row.end), row.frames]
            + [row.faces.get(c, 0) for c in self.classes]
            + [row.people.get(c, 0) for c in self.classes]
            + [row.people_total, "" if compliance is None else f"{compliance:.4f}"]
        )
        with self._lock:
            self.writer.writerow(values)
            self.stream.flush()

    def close(self) -> None:
        with self._lock:
            self.stream.close()
