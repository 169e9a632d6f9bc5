"""The event store: SQLite (standard library) plus JPEG snapshots and MP4 clips in one folder.

Every event is written here before any delivery is tried, with one row per (event, sink) saying whether it
was delivered; a receiver that is down only delays its rows, which are retried until they go through.
Each thread gets its own connection (SQLite's rule); WAL mode lets the dashboard read while the watch writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maskwatch.faces import Face
from maskwatch.media.draw import annotate, blur_faces

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    source TEXT NOT NULL,
    source_time REAL NOT NULL,
    rule TEXT NOT NULL,
    track INTEGER,
    class TEXT,
    snapshot TEXT,
    clip TEXT,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS deliveries (
    event_id INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    sink TEXT NOT NULL,
    delivered REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (event_id, sink)
);
CREATE TABLE IF NOT EXISTS intervals (
    time REAL NOT NULL,
    source TEXT NOT NULL,
    start REAL NOT NULL,
    "end" REAL NOT NULL,
    frames INTEGER NOT NULL,
    faces TEXT NOT NULL,
    people TEXT NOT NULL,
    compliance REAL
);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
CREATE INDEX IF NOT EXISTS intervals_time ON intervals(time);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries(delivered) WHERE delivered IS NULL;
"""


@dataclass
class Event:
    id: int
    time: float
    source: str
    source_time: float
    rule: str
    track: int | None
    label: str | None
    snapshot: str | None
    clip: str | None
    details: dict

    def to_dict(self) -> dict:
        """The JSON every sink receives (paths relative to the store's folder)."""
        return {
            "id": self.id,
            "time": round(self.time, 3),
            "source": self.source,
            "source_time": round(self.source_time, 3),
            "rule": self.rule,
            "track": self.track,
            "class": self.label,
            "snapshot": self.snapshot,
            "clip": self.clip,
            "details": self.details,
        }


def render_frame(image_bgr: np.ndarray, faces: list[Face], blur: bool) -> np.ndarray:
    """What is saved or shown of a frame: faces blurred when asked, then the boxes drawn."""
    return annotate(blur_faces(image_bgr, faces) if blur else image_bgr, faces)


class EventStore:
    """Events, their files and their delivery state under one folder."""

    def __init__(self, folder: Path, sinks: list[str] | None = None) -> None:
        self.folder = Path(folder)
        self.snapshots = self.folder / "snapshots"
        self.clips = self.folder / "clips"
        for path in (self.folder, self.snapshots, self.clips):
            path.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "events.sqlite3"
        self.sinks = list(sinks or [])
        self._local = threading.local()
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30)
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
        return db

    def add(
        self,
        source: str,
        source_time: float,
        rule: str,
        track: int | None,
        label: str | None,
        details: dict,
        snapshot_jpeg: bytes | None = None,
    ) -> Event:
        """Store an event (and its snapshot) with one pending delivery per sink."""
        now = time.time()
        db = self._db()
        with db:
            cursor = db.execute(
                "INSERT INTO events (time, source, source_time, rule, track, class, details) VALUES (?,?,?,?,?,?,?)",
                (now, source, source_time, rule, track, label, json.dumps(details)),
            )
            event_id = int(cursor.lastrowid)
            snapshot = None
            if snapshot_jpeg is not None:
                snapshot = f"snapshots/{event_id:08d}.jpg"
                _write_atomic(self.folder / snapshot, snapshot_jpeg)
                db.execute("UPDATE events SET snapshot=? WHERE id=?", (snapshot, event_id))
            db.executemany(
                "INSERT INTO deliveries (event_id, sink) VALUES (?, ?)", [(event_id, sink) for sink in self.sinks]
            )
        return Event(event_id, now, source, source_time, rule, track, label, snapshot, None, details)

    def add_interval(self, row: dict) -> None:
        """One closed report interval (``IntervalRow.to_dict()``), kept for the dashboard's history."""
        with self._db() as db:
            db.execute(
                'INSERT INTO intervals (time, source, start, "end", frames, faces, people, compliance) '
                "VALUES (?,?,?,?,?,?,?,?)",
                (
                    time.time(),
                    row["source"],
                    row["start"],
                    row["end"],
                    row["frames"],
                    json.dumps(row["faces"]),
                    json.dumps(row["people"]),
                    row["compliance"],
                ),
            )

    def intervals(self, since: float) -> list[dict]:
        """Interval rows closed since ``since`` (Unix time), oldest first."""
        rows = self._db().execute(
            'SELECT time, source, start, "end", frames, faces, people, compliance FROM intervals '
            "WHERE time >= ? ORDER BY time",
            (since,),
        )
        return [
            {
                "time": round(r[0], 3),
                "source": r[1],
                "start": r[2],
                "end": r[3],
                "frames": r[4],
                "faces": json.loads(r[5]),
                "people": json.loads(r[6]),
                "compliance": r[7],
            }
            for r in rows
        ]

    def set_clip(self, event_id: int, clip: str) -> None:
        with self._db() as db:
            db.execute("UPDATE events SET clip=? WHERE id=?", (clip, event_id))

    def get(self, event_id: int) -> Event | None:
        row = self._db().execute(f"SELECT {_COLUMNS} FROM events WHERE id=?", (event_id,)).fetchone()
        return _event(row) if row else None

    def events(self, limit: int = 100, since: float | None = None, source: str | None = None) -> list[Event]:
        """Newest first."""
        query, args = f"SELECT {_COLUMNS} FROM events WHERE 1=1", []
        if since is not None:
            query, args = query + " AND time >= ?", [*args, since]
        if source is not None:
            query, args = query + " AND source = ?", [*args, source]
        rows = self._db().execute(query + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [_event(r) for r in rows]

    def count(self) -> int:
        return int(self._db().execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def pending(self, sinks: list[str], limit: int = 1000) -> list[tuple[int, str]]:
        """(event id, sink) pairs not yet delivered, oldest first, for the sinks configured now."""
        if not sinks:
            return []
        marks = ",".join("?" * len(sinks))
        rows = self._db().execute(
            f"SELECT event_id, sink FROM deliveries WHERE delivered IS NULL AND sink IN ({marks}) "
            "ORDER BY event_id LIMIT ?",
            (*sinks, limit),
        )
        return [(int(a), str(b)) for a, b in rows]

    def mark(self, event_id: int, sink: str, error: str | None) -> None:
        """Record one delivery attempt: delivered (error None) or failed with its reason."""
        with self._db() as db:
            if error is None:
                db.execute(
                    "UPDATE deliveries SET delivered=?, attempts=attempts+1, last_error=NULL "
                    "WHERE event_id=? AND sink=?",
                    (time.time(), event_id, sink),
                )
            else:
                db.execute(
                    "UPDATE deliveries SET attempts=attempts+1, last_error=? WHERE event_id=? AND sink=?",
                    (error[:500], event_id, sink),
                )

    def delivery_state(self, event_id: int) -> dict[str, bool]:
        rows = self._db().execute("SELECT sink, delivered FROM deliveries WHERE event_id=?", (event_id,))
        return {sink: delivered is not None for sink, delivered in rows}

    def apply_retention(self, keep_days: float | None, keep_events: int | None) -> int:
        """Delete events older than ``keep_days`` and beyond the newest ``keep_events``, with their files."""
        db = self._db()
        doomed: list[tuple[int, str | None, str | None]] = []
        if keep_days is not None:
            cutoff = time.time() - keep_days * 86400.0
            doomed += db.execute("SELECT id, snapshot, clip FROM events WHERE time < ?", (cutoff,)).fetchall()
        if keep_events is not None:
            doomed += db.execute(
                "SELECT id, snapshot, clip FROM events ORDER BY id DESC LIMIT -1 OFFSET ?", (keep_events,)
            ).fetchall()
        if keep_days is not None:
            with db:
                db.execute("DELETE FROM intervals WHERE time < ?", (time.time() - keep_days * 86400.0,))
        ids = sorted({row[0] for row in doomed})
        if not ids:
            return 0
        with db:
            db.executemany("DELETE FROM events WHERE id=?", [(i,) for i in ids])
        for _, snapshot, clip in doomed:
            for name in (snapshot, clip):
                if name:
                    (self.folder / name).unlink(missing_ok=True)
        return len(ids)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


_COLUMNS = "id, time, source, source_time, rule, track, class, snapshot, clip, details"


def _event(row: tuple) -> Event:
    return Event(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], json.loads(row[9] or "{}"))


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(path.suffix + ".part")
    temporary.write_bytes(data)
    temporary.replace(path)


def encode_jpeg(image_bgr: np.ndarray, quality: int = 85) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buffer.tobytes()
