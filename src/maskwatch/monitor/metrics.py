"""Prometheus metrics of a watch run, in a registry of its own (two runs in one process do not collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from maskwatch.faces import Face

__all__ = ["CONTENT_TYPE_LATEST", "MonitorMetrics"]


class MonitorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames = Counter("maskwatch_frames", "Frames processed", ["source"], registry=r)
        self.dropped = Counter(
            "maskwatch_dropped_frames",
            "Frames a live source delivered that were skipped to stay live",
            ["source"],
            registry=r,
        )
        self.faces = Counter("maskwatch_faces", "Faces seen, summed over frames", ["source", "class"], registry=r)
        self.people = Gauge(
            "maskwatch_people", "People (tracks) per class in the current interval", ["source", "class"], registry=r
        )
        self.compliance = Gauge(
            "maskwatch_compliance",
            "Masked share of people in the rules' compliance window (NaN: nobody)",
            ["source"],
            registry=r,
        )
        self.fps = Gauge("maskwatch_fps", "Frames per second processed", ["source"], registry=r)
        self.up = Gauge("maskwatch_source_up", "1 while a source delivers frames", ["source"], registry=r)
        self.events = Counter("maskwatch_events", "Events raised", ["source", "rule"], registry=r)
        self.deliveries = Counter("maskwatch_alert_deliveries", "Alert deliveries that succeeded", ["sink"], registry=r)
        self.failures = Counter(
            "maskwatch_alert_delivery_failures", "Alert delivery attempts that failed", ["sink"], registry=r
        )
        self.delivery_dropped = Gauge(
            "maskwatch_alert_deliveries_dropped",
            "Deliveries not queued (queue full); retried from the store",
            registry=r,
        )
        self.pending = Gauge("maskwatch_alert_deliveries_pending", "Stored events not yet delivered", registry=r)

    def frame(self, source: str, faces: list[Face]) -> None:
        self.frames.labels(source).inc()
        for face in faces:
            self.faces.labels(source, face.label).inc()

    def delivery(self, sink: str, ok: bool) -> None:
        (self.deliveries if ok else self.failures).labels(sink).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
