"""FastAPI app factory: the page, the REST API and the live-webcam WebSocket.

Every route calls the same library code as the CLI — ``Detector`` for images and
live frames, ``run_sources`` for videos, ``maskwatch.schemas`` for the JSON — and
runs it in a bounded thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from maskwatch.errors import MaskwatchError
from maskwatch.inference.tracker import FaceTracker
from maskwatch.media.imageio import MAX_PIXELS
from maskwatch.pipeline import MAX_THREADS, Detector
from maskwatch.settings import PipelineSettings
from maskwatch.web.auth import TokenMiddleware
from maskwatch.web.jobs import JobStore, probe_video
from maskwatch.web.limits import BodyLimitMiddleware
from maskwatch.web.models import DetectOut, ErrorOut, HealthOut, JobCreated, JobOut, ModelInfoOut
from maskwatch.web.work import detect_bytes

log = logging.getLogger("maskwatch")

STATIC_DIR = Path(str(resources.files("maskwatch.web") / "static"))
IMAGE_TYPES = ("image/",)
VIDEO_TYPES = ("video/",)
GENERIC_TYPES = ("application/octet-stream", "")
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
) -> FastAPI:
    """The maskwatch web app.

    ``settings`` name the model, face detector and thresholds as ``maskwatch detect`` takes them (default:
    ``PipelineSettings()``); or pass a ready ``detector`` to share one. ``token``: when set, every ``/v1`` call needs it
    (``Authorization: Bearer T``, ``X-Maskwatch-Token: T`` or ``?token=T``). Uploads above
    ``max_upload_mb`` get 413; inference runs in a pool of ``workers`` threads.
    """
    workers = workers or default_workers()
    if detector is None:
        settings = settings or PipelineSettings()
        if settings.threads is None:
            settings = replace(settings, threads=min(MAX_THREADS, max(1, (os.cpu_count() or 1) // workers)))
        detector = Detector.from_settings(settings)  # ModelError here: before the server starts
    max_bytes = int(max_upload_mb * 1024 * 1024)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="maskwatch-infer")
    temp_root = Path(tempfile.mkdtemp(prefix="maskwatch-serve-"))
    jobs = JobStore(detector, temp_root, max_jobs=max_jobs, max_video_frames=max_video_frames)
    model_info = detector.model_info()
    pending = {"n": 0}
    max_pending = workers * 16

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        try:
            yield
        finally:
            jobs.shutdown()
            pool.shutdown(wait=False, cancel_futures=True)
            shutil.rmtree(temp_root, ignore_errors=True)

    app = FastAPIOffline(  # /docs and /redoc with their scripts served from the package, no CDN: works offline
        title="maskwatch",
        version=_version(),
        description="Face-mask detection: upload an image or a short video, or stream a webcam.",
        lifespan=lifespan,
    )
    app.state.detector = detector
    app.state.jobs = jobs
    app.state.temp_root = temp_root
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_bytes)
    app.add_middleware(TokenMiddleware, token=token)  # added last, so it runs first: before any body is read

    @app.exception_handler(MaskwatchError)
    async def _maskwatch_error(_request: Request, exc: MaskwatchError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """One line, like every other error, instead of FastAPI's list of validation records."""
        return JSONResponse({"detail": validation_detail(exc.errors())}, status_code=422)

    def check_query(request: Request, accepted: set[str]) -> None:
        """A parameter the endpoint does not take is an error, not silently ignored (e.g. a per-request conf)."""
        unknown = sorted(set(request.query_params) - accepted - {"token"})
        if unknown:
            raise HTTPException(422, f"unknown query parameter {unknown[0]!r}; this endpoint takes {sorted(accepted)}")

    async def in_pool(fn, *args):
        """Run blocking work in the bounded pool; 503 when its queue is full."""
        if pending["n"] >= max_pending:
            raise HTTPException(503, "server busy: too many requests queued, retry shortly", {"Retry-After": "1"})
        pending["n"] += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        finally:
            pending["n"] -= 1

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", response_model=HealthOut, tags=["service"])
    async def healthz() -> HealthOut:
        return HealthOut(model=model_info.source, workers=workers, jobs_running=jobs.active())

    @app.get("/v1/model", response_model=ModelInfoOut, tags=["detect"], responses={401: {"model": ErrorOut}})
    async def get_model(request: Request) -> ModelInfoOut:
        check_query(request, set())
        return ModelInfoOut(
            **model_info.model_dump(),
            max_upload_mb=max_upload_mb,
            max_pixels=max_pixels,
            max_video_frames=max_video_frames,
            token_required=token is not None,
        )

    @app.post(
        "/v1/detect",
        response_model=DetectOut,
        tags=["detect"],
        responses={code: {"model": ErrorOut} for code in (400, 401, 413, 415, 422, 503)},
    )
    async def detect_image(
        request: Request,
        file: UploadFile = File(..., description="a JPEG, PNG, BMP, WebP or TIFF image"),
        annotate: bool = Query(False, description="also return the annotated image as base64 JPEG"),
    ) -> DetectOut:
        """Find faces in one image: the same JSON as one line of ``maskwatch detect --json``."""
        check_query(request, {"annotate"})
        await check_one_file(request)
        _check_type(file, IMAGE_TYPES, "an image")
        data = await file.read()
        name = Path(file.filename or "upload").name or "upload"
        return await in_pool(lambda: detect_bytes(detector, data, name, max_pixels, annotate))

    @app.post(
        "/v1/detect/video",
        response_model=JobCreated,
        status_code=202,
        tags=["detect"],
        responses={code: {"model": ErrorOut} for code in (400, 401, 413, 415, 422, 429, 503)},
    )
    async def detect_video(
        request: Request, file: UploadFile = File(..., description="a short video (MP4, AVI, MKV, WebM …)")
    ):
        """Start a detection job on a short video; poll ``GET /v1/jobs/{id}`` for progress and the result."""
        check_query(request, set())
        await check_one_file(request)
        _check_type(file, VIDEO_TYPES, "a video")
        jobs.check_room()  # before the upload is copied to disk
        folder = Path(tempfile.mkdtemp(prefix="upload-", dir=temp_root))
        try:
            name = Path(file.filename or "upload.mp4").name
            path = folder / ("video" + _video_suffix(name))
            with path.open("wb") as fh:
                while chunk := await file.read(1 << 20):
                    fh.write(chunk)
            frames_total = await in_pool(probe_video, path, name, max_pixels, max_video_frames)
            job = jobs.submit(path, folder, name, frames_total)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return JobCreated(id=job.id, status=job.status, url=f"/v1/jobs/{job.id}")

    @app.get(
        "/v1/jobs/{job_id}",
        response_model=JobOut,
        response_model_exclude_unset=True,
        tags=["detect"],
        responses={code: {"model": ErrorOut} for code in (401, 404, 422)},
    )
    async def get_job(job_id: str, request: Request) -> JobOut:
        """Progress of a video job; once ``done``, its frames (CLI JSON lines) and summary."""
        check_query(request, set())
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        return job.to_out()

    @app.websocket("/v1/live")
    async def live(websocket: WebSocket) -> None:
        """Live webcam: the client sends JPEG frames (binary), gets one JSON ``DetectOut`` per frame.

        Send the next frame after the answer to the previous one arrives. Bad frames get
        ``{"error": "..."}`` and the connection stays open.
        """
        unknown = sorted(set(websocket.query_params) - {"token"})
        if unknown:  # refused at the handshake (HTTP 403), as the REST endpoints refuse them (422)
            await websocket.close(code=1008, reason=f"unknown query parameter {unknown[0]!r}")
            return
        await websocket.accept()
        tracker = FaceTracker(detector.classes)
        index = 0
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("bytes")
                if data is None:
                    await websocket.send_json({"error": "send each frame as a binary message (JPEG or PNG), not text"})
                    continue
                if len(data) > max_bytes:
                    await websocket.send_json({"error": f"frame of {len(data)} bytes is over the upload limit"})
                    continue
                try:
                    out = await asyncio.get_running_loop().run_in_executor(
                        pool, lambda d=data, i=index: detect_bytes(detector, d, "webcam", max_pixels, False, tracker, i)
                    )
                except MaskwatchError as exc:
                    await websocket.send_json({"error": str(exc)})
                    continue
                index += 1
                await websocket.send_text(out.model_dump_json())  # the same keys as /v1/detect and the CLI
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            with contextlib.suppress(RuntimeError):
                await websocket.close()

    return app


def validation_detail(errors: list[dict]) -> str:
    """FastAPI's first validation record as one line: 'file: Field required', 'annotate: Input should be …'."""
    if not errors:
        return "invalid request"
    first = errors[0]
    if "Expected UploadFile" in str(first.get("msg", "")):  # a text field, or a file part without a file name
        return "file: not a file upload (send a multipart file part with a file name)"
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid request"))


async def check_one_file(request: Request) -> None:
    """Two ``file`` fields are refused rather than one of them silently used."""
    count = len((await request.form()).getlist("file"))  # the form FastAPI already parsed (cached)
    if count > 1:
        raise HTTPException(422, f"file: send one file per request, not {count}")


def _check_type(file: UploadFile, accepted: tuple[str, ...], what: str) -> None:
    content_type = (file.content_type or "").split(";")[0].strip().lower()
    if content_type in GENERIC_TYPES or content_type.startswith(accepted):
        return
    raise HTTPException(415, f"{file.filename or 'upload'}: content type {content_type!r} is not {what}")


def _video_suffix(name: str) -> str:
    from maskwatch.media.sources import VIDEO_SUFFIXES

    suffix = Path(name).suffix.lower()
    return suffix if suffix in VIDEO_SUFFIXES else ".mp4"


def _version() -> str:
    from maskwatch import __version__

    return __version__
