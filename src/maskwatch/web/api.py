"""The REST API: health, model, image detection and video jobs (``/healthz``, ``/v1/...``)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, File, HTTPException, Query, Request, UploadFile

from maskwatch.web.context import context
from maskwatch.web.jobs import probe_video
from maskwatch.web.models import DetectOut, ErrorOut, HealthOut, JobCreated, JobOut, ModelInfoOut
from maskwatch.web.work import detect_bytes

IMAGE_TYPES = ("image/",)
VIDEO_TYPES = ("video/",)
GENERIC_TYPES = ("application/octet-stream", "")

router = APIRouter()


@router.get("/healthz", response_model=HealthOut, tags=["service"])
async def healthz(request: Request) -> HealthOut:
    ctx = context(request)
    return HealthOut(model=ctx.model_info.source, workers=ctx.workers, jobs_running=ctx.jobs.active())


@router.get("/v1/model", response_model=ModelInfoOut, tags=["detect"], responses={401: {"model": ErrorOut}})
async def get_model(request: Request) -> ModelInfoOut:
    check_query(request, set())
    ctx = context(request)
    return ModelInfoOut(
        **ctx.model_info.model_dump(),
        max_upload_mb=ctx.max_upload_mb,
        max_pixels=ctx.max_pixels,
        max_video_frames=ctx.max_video_frames,
        token_required=ctx.token_required,
    )


@router.post(
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
    ctx = context(request)
    return await ctx.in_pool(lambda: detect_bytes(ctx.detector, data, name, ctx.max_pixels, annotate))


@router.post(
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
    ctx = context(request)
    ctx.jobs.check_room()  # before the upload is copied to disk
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=ctx.temp_root))
    try:
        name = Path(file.filename or "upload.mp4").name
        path = folder / ("video" + _video_suffix(name))
        with path.open("wb") as fh:
            while chunk := await file.read(1 << 20):
                fh.write(chunk)
        frames_total = await ctx.in_pool(probe_video, path, name, ctx.max_pixels, ctx.max_video_frames)
        job = ctx.jobs.submit(path, folder, name, frames_total)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return JobCreated(id=job.id, status=job.status, url=f"/v1/jobs/{job.id}")


@router.get(
    "/v1/jobs/{job_id}",
    response_model=JobOut,
    response_model_exclude_unset=True,
    tags=["detect"],
    responses={code: {"model": ErrorOut} for code in (401, 404, 422)},
)
async def get_job(job_id: str, request: Request) -> JobOut:
    """Progress of a video job; once ``done``, its frames (CLI JSON lines) and summary."""
    check_query(request, set())
    job = context(request).jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job.to_out()


def check_query(request: Request, accepted: set[str]) -> None:
    """A parameter the endpoint does not take is an error, not silently ignored (e.g. a per-request conf)."""
    unknown = sorted(set(request.query_params) - accepted - {"token"})
    if unknown:
        raise HTTPException(422, f"unknown query parameter {unknown[0]!r}; this endpoint takes {sorted(accepted)}")


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
