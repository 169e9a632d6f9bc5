"""``Monitor``: every source of a watch file on its own thread, sharing the store, the alert delivery, the report
and the metrics. Used by ``maskwatch watch`` and by ``maskwatch serve --watch`` (the dashboard)."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace

from maskwatch.faces import TOO_SMALL
from maskwatch.monitor.clips import ClipWriter
from maskwatch.monitor.config import SourceConfig, WatchConfig
from maskwatch.monitor.delivery import DeliveryWorker, make_sinks
from maskwatch.monitor.intervals import CsvReport
from maskwatch.monitor.metrics import MonitorMetrics
from maskwatch.monitor.status import people_text
from maskwatch.monitor.store import EventStore
from maskwatch.monitor.worker import SourceWorker
from maskwatch.pipeline import Detector
from maskwatch.settings import PipelineSettings

log = logging.getLogger("maskwatch")

HOUSEKEEPING_SECONDS = 3600.0
"""How often retention runs during a long watch (also once at the start)."""


@dataclass
class SourceSummary:
    name: str
    status: str
    frames: int
    fps: float
    dropped: int
    reconnects: int
    events: int
    people: dict[str, int] = field(default_factory=dict)
    error: str | None = None


@dataclass
class WatchSummary:
    sources: list[SourceSummary]
    seconds: float
    delivered: dict[str, int]
    failed: dict[str, int]
    dropped: int
    pending: int
    interrupted: bool = False


class Monitor:
    """Start with ``start()``; ``wait()`` until every source ended or Ctrl-C; always ``stop()``."""

    def __init__(self, config: WatchConfig) -> None:
        self.config = config
        self.stop_event = threading.Event()
        """Set when the whole run ends: delivery, housekeeping."""
        self.sources_stop = threading.Event()
        """Set first, when the sources must stop; the delivery keeps its drain time after it."""
        self.metrics = MonitorMetrics()
        sinks = make_sinks(config, self.stop_event)
        self.store = EventStore(config.storage.folder, [s.name for s in sinks])
        self.delivery = DeliveryWorker(
            self.store, sinks, config.delivery.queue_size, config.delivery.retry_interval, self.stop_event
        )
        self.delivery.on_result = self.metrics.delivery
        self.detectors: dict[PipelineSettings, Detector] = {}
        self.workers = [self._worker(s) for s in config.sources]  # every model loads before any source opens
        classes = sorted({c for w in self.workers for c in w.detector.classes})
        self.report = CsvReport(config.report.path, classes) if config.report.path is not None else None
        self.clip_writer_started = False
        self.started = 0.0
        self._housekeeping = threading.Thread(target=self._housekeep, name="maskwatch-housekeeping", daemon=True)

    def _worker(self, source: SourceConfig) -> SourceWorker:
        sources = len(self.config.sources)
        # several sources share the cores: ONNX Runtime threads split them
        threads = max(1, (os.cpu_count() or 1) // sources) if sources > 1 else None
        key = replace(source.pipeline_settings(), threads=threads)
        if key not in self.detectors:
            self.detectors[key] = Detector.from_settings(key)
        return SourceWorker(
            source, self.config.rules_for(source), self.detectors[key], self, self.config.report.interval
        )

    @property
    def clip_writer(self) -> ClipWriter:
        if not hasattr(self, "_clip_writer"):
            self._clip_writer = ClipWriter()
        return self._clip_writer

    def start(self) -> Monitor:
        self.started = time.monotonic()
        self.retention()
        self.delivery.start()
        for worker in self.workers:
            worker.start()
        self._housekeeping.start()
        return self

    def retention(self) -> int:
        removed = self.store.apply_retention(self.config.storage.keep_days, self.config.storage.keep_events)
        if removed:
            log.info("retention: %d old event(s) removed", removed)
        return removed

    def _housekeep(self) -> None:
        while not self.stop_event.wait(HOUSEKEEPING_SECONDS):
            self.retention()
            self.metrics.pending.set(self.delivery.pending())
        self.store.close()

    @property
    def running(self) -> bool:
        return any(w.alive for w in self.workers)

    def wait(self, on_tick=None, period: float = 0.25) -> None:
        """Block until every source has ended (KeyboardInterrupt passes through to the caller)."""
        while self.running:
            if on_tick is not None:
                on_tick(self)
            time.sleep(period)

    def stop(self, drain_seconds: float = 10.0) -> WatchSummary:
        """Stop every source, write the last report rows and clips, deliver what is queued; then sum up."""
        interrupted = self.running
        self.sources_stop.set()
        for worker in self.workers:
            worker.thread.join(timeout=30)
        self.delivery.close(drain_seconds)  # what is queued gets its drain time; then the run's stop is set
        self.stop_event.set()
        if hasattr(self, "_clip_writer"):
            self._clip_writer.close()
        if self.report is not None:
            self.report.close()
        summary = WatchSummary(
            sources=[self._source_summary(w) for w in self.workers],
            seconds=round(time.monotonic() - self.started, 3),
            delivered=dict(self.delivery.delivered),
            failed=dict(self.delivery.failed),
            dropped=self.delivery.dropped,
            pending=self.delivery.pending(),
            interrupted=interrupted,
        )
        self.store.close()
        return summary

    def _source_summary(self, worker: SourceWorker) -> SourceSummary:
        s = worker.state
        return SourceSummary(
            s.name, s.status, s.frames, round(s.fps, 2), s.dropped, s.reconnects, s.events, s.unique_people(), s.error
        )

    def status_text(self) -> str:
        """One line for the terminal: each source's frames, fps and people, plus the alerts' state."""
        parts = []
        for worker in self.workers:
            s = worker.state
            row = worker.current_row()
            people = people_text(row.people if row else {}, worker.masked)
            parts.append(f"{s.name} [{s.status}] {s.frames} fr {s.fps:.1f} fps, {people}, {s.events} ev")
        d = self.delivery
        alerts = f"alerts sent {sum(d.delivered.values())}, failed {sum(d.failed.values())}, dropped {d.dropped}"
        return " | ".join([*parts, alerts])

    def snapshot(self) -> dict:
        """The live state for the dashboard (JSON-ready)."""
        out = []
        for worker in self.workers:
            s = worker.state
            row = worker.current_row()
            out.append(
                {
                    "name": s.name,
                    "status": s.status,
                    "error": s.error,
                    "frames": s.frames,
                    "fps": round(s.fps, 2),
                    "dropped": s.dropped,
                    "reconnects": s.reconnects,
                    "events": s.events,
                    "compliance": None if s.compliance is None else round(s.compliance, 4),
                    "people_in_window": s.people_in_window,
                    "current": row.to_dict() if row else None,
                    "people_total": s.unique_people(),
                    "faces_now": _labels(s.latest[1]) if s.latest else {},
                }
            )
        d = self.delivery
        return {
            "sources": out,
            "alerts": {
                "sinks": list(d.sinks),
                "delivered": dict(d.delivered),
                "failed": dict(d.failed),
                "dropped": d.dropped,
            },
        }

    def worker(self, name: str) -> SourceWorker | None:
        return next((w for w in self.workers if w.config.name == name), None)


def _labels(faces) -> dict[str, int]:
    out: dict[str, int] = {}
    for face in faces:
        if face.label != TOO_SMALL:
            out[face.label] = out.get(face.label, 0) + 1
    return out
