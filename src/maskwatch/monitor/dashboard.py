"""The watch dashboard's routes for ``maskwatch serve --watch``: live views, state, history, events, downloads and
Prometheus ``/metrics``. JPEGs are encoded here, on request, never in a source's frame loop."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from pathlib import Path

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse

from maskwatch.media.draw import annotate, blur_faces
from maskwatch.monitor.intervals import format_time
from maskwatch.monitor.metrics import CONTENT_TYPE_LATEST
from maskwatch.monitor.store import encode_jpeg
from maskwatch.monitor.watch import Monitor

LIVE_FPS = 5.0
"""Frames per second of a dashboard live view (the source may run faster; the view needs no more)."""


def dashboard_router(monitor: Monitor, static_dir: Path) -> APIRouter:
    router = APIRouter()
    cache: dict[str, tuple[float, bytes]] = {}

    def source_or_404(name: str):
        worker = monitor.worker(name)
        if worker is None:
            raise HTTPException(404, f"no source {name!r}")
        return worker

    def frame_jpeg(name: str) -> bytes | None:
        """The source's newest frame with its boxes (faces blurred when the watch file asks), cached per frame."""
        state = source_or_404(name).state
        latest, at = state.latest, state.latest_at
        if latest is None:
            return None
        hit = cache.get(name)
        if hit is not None and hit[0] == at:
            return hit[1]
        image, faces = latest
        base = blur_faces(image, faces) if monitor.config.storage.blur_faces else image
        jpeg = encode_jpeg(annotate(base, faces), quality=80)
        cache[name] = (at, jpeg)
        return jpeg

    @router.get("/dashboard", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(static_dir / "dashboard.html")

    @router.get("/metrics", tags=["watch"])
    async def metrics() -> Response:
        """Prometheus metrics: frames, faces and people by class, compliance, fps, dropped frames, alerts."""
        monitor.metrics.pending.set(len(monitor.store.pending(list(monitor.delivery.sinks))))
        monitor.metrics.delivery_dropped.set(monitor.delivery.dropped)
        for worker in monitor.workers:
            monitor.metrics.up.labels(worker.config.name).set(1.0 if worker.state.status == "running" else 0.0)
        return Response(monitor.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @router.get("/v1/watch/state", tags=["watch"])
    async def state() -> dict:
        """Every source's status, frames, fps, current counts and compliance; the alert sinks' counters."""
        return monitor.snapshot()

    @router.get("/v1/watch/sources/{name}/frame.jpg", tags=["watch"])
    async def frame(name: str) -> Response:
        jpeg = await asyncio.to_thread(frame_jpeg, name)
        if jpeg is None:
            raise HTTPException(404, f"{name}: no frame yet")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @router.get("/v1/watch/sources/{name}/live.mjpg", tags=["watch"])
    async def live(name: str, request: Request) -> StreamingResponse:
        """The source's live view with boxes as MJPEG (an ``<img>`` shows it), at most LIVE_FPS."""
        source_or_404(name)

        async def parts():
            last = None
            while not await request.is_disconnected():
                jpeg = await asyncio.to_thread(frame_jpeg, name)
                if jpeg is not None and jpeg is not last:
                    last = jpeg
                    yield b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                    yield jpeg + b"\r\n"
                await asyncio.sleep(1.0 / LIVE_FPS)

        return StreamingResponse(parts(), media_type="multipart/x-mixed-replace; boundary=frame")

    def history_rows(hours: float) -> list[dict]:
        rows = monitor.store.intervals(time.time() - hours * 3600.0)
        monitor.store.close()  # this pool thread's connection: threads come and go
        for worker in monitor.workers:
            current = worker.current_row()
            if current is not None and current.frames:
                rows.append({"time": round(time.time(), 3), **current.to_dict(), "partial": True})
        return rows

    @router.get("/v1/watch/history", tags=["watch"])
    async def history(
        hours: float = Query(1.0, gt=0, le=24 * 7), format: str = Query("json", pattern="^(json|csv)$")
    ) -> Response:
        """Interval rows (one per source and report interval) of the last ``hours``, the open interval last."""
        rows = await asyncio.to_thread(history_rows, hours)
        if format == "json":
            return Response(json.dumps(rows), media_type="application/json")
        classes = sorted({c for r in rows for c in r["people"]} | {c for r in rows for c in r["faces"]})
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            ["time", "source", "start", "end", "frames"]
            + [f"faces_{c}" for c in classes]
            + [f"people_{c}" for c in classes]
            + ["people", "compliance"]
        )
        for r in rows:
            writer.writerow(
                [format_time(r["time"]), r["source"], format_time(r["start"]), format_time(r["end"]), r["frames"]]
                + [r["faces"].get(c, 0) for c in classes]
                + [r["people"].get(c, 0) for c in classes]
                + [sum(r["people"].values()), "" if r["compliance"] is None else r["compliance"]]
            )
        return _download(out.getvalue(), "history.csv", "text/csv")

    @router.get("/v1/watch/events", tags=["watch"])
    async def events(
        limit: int = Query(100, ge=1, le=10000), format: str = Query("json", pattern="^(json|csv)$")
    ) -> Response:
        """Stored events, newest first, each with its snapshot's URL and delivery state."""
        items = await asyncio.to_thread(_events, monitor, limit)
        if format == "json":
            return Response(json.dumps(items), media_type="application/json")
        out = io.StringIO()
        writer = csv.writer(out)
        columns = ["id", "time", "source", "source_time", "rule", "track", "class", "snapshot", "clip", "delivered"]
        writer.writerow(columns)
        for e in items:
            writer.writerow([format_time(e["time"]) if c == "time" else e[c] for c in columns])
        return _download(out.getvalue(), "events.csv", "text/csv")

    @router.get("/v1/watch/files/{kind}/{name}", tags=["watch"])
    async def event_file(kind: str, name: str) -> FileResponse:
        """An event's snapshot (JPEG) or clip (MP4)."""
        if kind not in ("snapshots", "clips") or "/" in name or name.startswith("."):
            raise HTTPException(404, "no such file")
        path = monitor.store.folder / kind / name
        if not path.is_file():
            raise HTTPException(404, "no such file")
        return FileResponse(path, media_type="image/jpeg" if kind == "snapshots" else "video/mp4")

    return router


def _events(monitor: Monitor, limit: int) -> list[dict]:
    out = []
    for event in monitor.store.events(limit=limit):
        item = event.to_dict()
        state = monitor.store.delivery_state(event.id)
        item["delivered"] = all(state.values()) if state else None
        item["snapshot_url"] = f"/v1/watch/files/{event.snapshot}" if event.snapshot else None
        item["clip_url"] = f"/v1/watch/files/{event.clip}" if event.clip else None
        out.append(item)
    monitor.store.close()  # this pool thread's connection: threads come and go
    return out


def _download(text: str, name: str, media_type: str) -> Response:
    return Response(text, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'})
