"""FastAPI app factory: the page, the REST API (``api``) and the live-webcam WebSocket (``live``).

Every route calls the same library code as the CLI — ``Detector`` for images and
live frames, ``run_sources`` for videos, ``maskwatch.schemas`` for the JSON — and
runs it in a bounded thread pool, never on the event loop. Routes share one
``WebContext`` per app (``app.state.context``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from maskwatch.errors import MaskwatchError
from maskwatch.media.imageio import MAX_PIXELS
from maskwatch.pipeline import MAX_THREADS, Detector
from maskwatch.settings import PipelineSettings
from maskwatch.web import api, live
from maskwatch.web.auth import TokenMiddleware
from maskwatch.web.context import WebContext
from maskwatch.web.jobs import JobStore
from maskwatch.web.limits import BodyLimitMiddleware
from maskwatch.web.ondevice import add_ondevice_routes

log = logging.getLogger("maskwatch")

STATIC_DIR = Path(str(resources.files("maskwatch.web") / "static"))
DEFAULT_MAX_VIDEO_FRAMES = 3000
"""A "short video": at most this many frames (two minutes at 25 fps) per job."""


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def create_app(
    settings: PipelineSettings | None = None,
    detector: Detector | None = None,
    token: str | None = None,
    max_upload_mb: float = 20.0,
    workers: int | None = None,
    max_pixels: int = MAX_PIXELS,
    max_video_frames: int = DEFAULT_MAX_VIDEO_FRAMES,
    max_jobs: int = 4,
    monitor=None,
) -> FastAPI:
    """The maskwatch web app.

    ``settings`` name the model, face detector and thresholds as ``maskwatch detect`` takes them (default:
    ``PipelineSettings()``); or pass a ready ``detector`` to share one. ``token``: when set, every ``/v1`` call needs it
    (``Authorization: Bearer T``, ``X-Maskwatch-Token: T`` or ``?token=T``). Uploads above
    ``max_upload_mb`` get 413; inference runs in a pool of ``workers`` threads. ``monitor``: a
    ``maskwatch.monitor.watch.Monitor`` whose cameras the dashboard (``/dashboard``, ``/metrics``) shows; it starts
    and stops with the app.
    """
    workers = workers or default_workers()
    if detector is None:
        settings = settings or PipelineSettings()
        if settings.threads is None:
            settings = replace(settings, threads=min(MAX_THREADS, max(1, (os.cpu_count() or 1) // workers)))
        detector = Detector.from_settings(settings)  # ModelError here: before the server starts
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="maskwatch-infer")
    temp_root = Path(tempfile.mkdtemp(prefix="maskwatch-serve-"))
    jobs = JobStore(detector, temp_root, max_jobs=max_jobs, max_video_frames=max_video_frames)
    # Clients see the bundle's name (maskwatch:default, or its folder's name), never the server's install path.
    ctx = WebContext(
        detector=detector,
        jobs=jobs,
        pool=pool,
        model_info=detector.model_info().model_copy(update={"source": detector.classifier.bundle.name}),
        workers=workers,
        temp_root=temp_root,
        max_upload_mb=max_upload_mb,
        max_bytes=int(max_upload_mb * 1024 * 1024),
        max_pixels=max_pixels,
        max_video_frames=max_video_frames,
        token_required=token is not None,
        max_pending=workers * 16,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if monitor is not None:
            monitor.start()
        try:
            yield
        finally:
            if monitor is not None:
                await asyncio.get_running_loop().run_in_executor(None, monitor.stop)
            jobs.shutdown()
            pool.shutdown(wait=False, cancel_futures=True)
            shutil.rmtree(temp_root, ignore_errors=True)

    app = FastAPIOffline(  # /docs and /redoc with their scripts served from the package, no CDN: works offline
        title="maskwatch",
        version=_version(),
        description="Face-mask detection: upload an image or a short video, or stream a webcam.",
        lifespan=lifespan,
    )
    app.state.context = ctx
    app.state.detector = detector
    app.state.jobs = jobs
    app.state.temp_root = temp_root
    app.add_middleware(BodyLimitMiddleware, max_bytes=ctx.max_bytes)
    app.add_middleware(TokenMiddleware, token=token)  # added last, so it runs first: before any body is read
    app.add_exception_handler(MaskwatchError, _maskwatch_error)
    app.add_exception_handler(RequestValidationError, _validation_error)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if monitor is not None:
        from maskwatch.monitor.dashboard import dashboard_router

        app.state.monitor = monitor
        app.include_router(dashboard_router(monitor, STATIC_DIR))

    add_ondevice_routes(app, detector, STATIC_DIR)  # models and settings for the browser, manifest, service worker
    app.include_router(api.router)
    app.include_router(live.router)
    return app


async def _maskwatch_error(_request: Request, exc: MaskwatchError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=exc.http_status)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """One line, like every other error, instead of FastAPI's list of validation records."""
    return JSONResponse({"detail": validation_detail(exc.errors())}, status_code=422)


def validation_detail(errors: list[dict]) -> str:
    """FastAPI's first validation record as one line: 'file: Field required', 'annotate: Input should be …'."""
    if not errors:
        return "invalid request"
    first = errors[0]
    if "Expected UploadFile" in str(first.get("msg", "")):  # a text field, or a file part without a file name
        return "file: not a file upload (send a multipart file part with a file name)"
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid request"))


def _version() -> str:
    from maskwatch import __version__

    return __version__
