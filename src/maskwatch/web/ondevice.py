"""The page's on-device mode: the models and their settings for ONNX Runtime Web, and the installable-app files.

The browser runs the server's own face detector and classifier (the same ONNX files) on the
camera's frames, so no frame leaves the device. Every pre- and post-processing parameter the
page uses comes from here — the detector's JSON (``maskface.json``: stride, input size,
threshold, classes), the bundle's JSON (classes, input size, crop margin) and the detector
object's settings (passes, NMS, the server's ``--conf`` and ``--min-face``) — so the page
decodes exactly as the Python pipeline does. ``static/ondevice.js`` mirrors
``maskwatch.detectors.maskface`` and ``.yunet`` (decoding, NMS, calibration), ``maskwatch.inference.crops`` and
``maskwatch.pipeline.fuse_probabilities``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, Response

from maskwatch.faces import TOO_SMALL
from maskwatch.pipeline import Detector
from maskwatch.web import vendor

PREFIX = "/v1/ondevice"
DETECTOR_URL = f"{PREFIX}/detector.onnx"
CLASSIFIER_URL = f"{PREFIX}/classifier.onnx"
ONNX_TYPE = "application/octet-stream"


def maskface_config(face_detector: Any) -> dict[str, Any]:
    """What the page's maskface decoder needs: the detector JSON's fields and the detector object's settings."""
    from maskwatch.detectors import maskface

    meta = getattr(face_detector, "meta", {}) or {}
    return {
        "decoder": "maskface",
        "name": face_detector.name,
        "version": face_detector.version,
        "classes": list(meta.get("classes", maskface.CLASSES)),
        "stride": int(meta.get("stride", maskface.STRIDE)),
        "multiple": maskface.MULTIPLE,
        "size": face_detector.size,
        "coarse_size": face_detector.coarse_size,
        "coarse_min_side": maskface.COARSE_MIN_SIDE,
        "threshold": face_detector.threshold,
        "min_score": face_detector.min_score,
        "nms_iou": face_detector.nms_iou,
        "max_peaks": inspect.signature(maskface.decode_maps).parameters["max_peaks"].default,
        "model": DETECTOR_URL,
    }


def yunet_config(face_detector: Any) -> dict[str, Any]:
    """What the page's YuNet decoder needs: the detector module's constants and the detector object's settings."""
    from maskwatch.detectors import yunet

    split = bool(getattr(face_detector, "_nchw", False))  # YuNet's own file: BGR NCHW in, one output per stride
    return {
        "decoder": "yunet",
        "name": face_detector.name,
        "version": face_detector.version,
        "classes": list(yunet.CLASSES) if face_detector.mask else None,
        "strides": list(yunet.STRIDES),
        "multiple": yunet.MULTIPLE,
        "map_channels": yunet.MAP_CHANNELS,
        "layout": "nchw-bgr-split" if split else "nhwc-rgb",
        "scores_are_logits": not split,
        "size": face_detector.sizes[0],
        "min_score": face_detector.min_score,
        "nms_iou": face_detector.nms_iou,
        "model": DETECTOR_URL,
    }


def detector_config(face_detector: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The page's settings for this detector, or why the page cannot run it itself."""
    from maskwatch.detectors.maskface import MaskFaceDetector

    name = getattr(face_detector, "name", type(face_detector).__name__)
    if getattr(face_detector, "onnx", None) is None:
        return None, f"the on-device mode needs the detector's ONNX file; {name!r} does not expose one"
    if isinstance(face_detector, MaskFaceDetector):
        if len(face_detector.sizes) > 1 or face_detector.flip or face_detector.large_max:
            return None, f"the on-device mode runs one-pass detectors; {name!r} runs several passes"
        return maskface_config(face_detector), None
    try:
        from maskwatch.detectors.yunet import YuNetDetector
    except ImportError:
        YuNetDetector = None  # noqa: N806 (a detector family this version does not have)
    if YuNetDetector is not None and isinstance(face_detector, YuNetDetector):
        if len(face_detector.sizes) > 1:
            return None, f"the on-device mode runs one-pass detectors; {name!r} runs several passes"
        return yunet_config(face_detector), None
    return None, f"the on-device mode runs maskface and YuNet detectors; this server uses {name!r}"


def ondevice_config(detector: Detector) -> dict[str, Any]:
    """The whole on-device configuration: runtime, detector, classifier and the pipeline's settings."""
    face_detector = detector.face_detector
    bundle = detector.classifier.bundle
    detector_settings, reason = detector_config(face_detector)
    if reason is None and not vendor.is_vendored():
        reason = (
            f"onnxruntime-web {vendor.ORT_WEB_VERSION} is not packaged: reinstall maskwatch with access to the npm "
            "registry (or run python -m maskwatch.web.vendor in a source checkout)"
        )
    return {
        "available": reason is None,
        "reason": reason,
        "runtime": {"name": "onnxruntime-web", "version": vendor.ORT_WEB_VERSION, "path": "/static/vendor/"},
        "detector": detector_settings if reason is None else {"name": getattr(face_detector, "name", "?")},
        "classifier": {
            "name": Path(str(bundle.source).split(":", 1)[-1]).name,  # not the server's folder: no paths leave it
            "classes": list(bundle.meta.classes),
            "input_size": bundle.meta.input_size,
            "margin": bundle.meta.crop.margin,
            "preprocessing": bundle.meta.preprocessing,
            "model": CLASSIFIER_URL,
        },
        "min_face": detector.min_face,
        "head_weight": detector.head_weight,
        "too_small": TOO_SMALL,
    }


def app_icon_png(size: int) -> bytes:
    """The icon of ``static/icon.svg`` (a face with a mask on green) drawn with OpenCV."""
    import cv2
    import numpy as np

    k = size / 100.0
    image = np.zeros((size, size, 3), np.uint8)
    image[:] = (63, 122, 44)  # BGR of #2c7a3f
    cv2.circle(image, (round(50 * k), round(46 * k)), round(30 * k), (177, 217, 243), -1, cv2.LINE_AA)
    mask = np.array([[22, 50], [50, 47], [78, 50], [74, 70], [50, 80], [26, 70]], np.float64) * k
    cv2.fillPoly(image, [mask.round().astype(np.int32)], (255, 255, 255), cv2.LINE_AA)
    for x in (39, 61):
        cv2.circle(image, (round(x * k), round(38 * k)), round(4 * k), (51, 51, 51), -1, cv2.LINE_AA)
    ok, data = cv2.imencode(".png", image)
    return data.tobytes()


ISOLATION_HEADERS = [
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-embedder-policy", b"require-corp"),
]
"""A cross-origin-isolated page may share memory with workers: ONNX Runtime Web then runs on several threads."""


class IsolationMiddleware:
    """Add ``ISOLATION_HEADERS`` to the page and its static files (the page loads nothing from other origins)."""

    def __init__(self, app, paths: tuple[str, ...] = ("/", "/sw.js")) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path in self.paths or path.startswith("/static/")):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *ISOLATION_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def add_ondevice_routes(app: FastAPI, detector: Detector, static_dir) -> None:
    """``GET /v1/ondevice`` (settings), the two ONNX files, the web manifest and the service worker at ``/sw.js``."""
    router = APIRouter(prefix=PREFIX, tags=["on-device"])
    config = ondevice_config(detector)

    def no_query(request: Request) -> None:
        unknown = sorted(set(request.query_params) - {"token"})
        if unknown:
            raise HTTPException(422, f"unknown query parameter {unknown[0]!r}; this endpoint takes none")

    @router.get("")
    async def get_config(request: Request) -> dict[str, Any]:
        """Models and settings for running detection in the browser (the page's on-device mode)."""
        no_query(request)
        return config

    @router.get("/detector.onnx", response_class=Response)
    async def detector_model(request: Request) -> Response:
        no_query(request)
        if not config["available"]:
            raise HTTPException(404, config["reason"])
        return Response(detector.face_detector.onnx, media_type=ONNX_TYPE)

    @router.get("/classifier.onnx", response_class=Response)
    async def classifier_model(request: Request) -> Response:
        no_query(request)
        return Response(detector.classifier.bundle.onnx, media_type=ONNX_TYPE)

    app.include_router(router)
    app.add_middleware(IsolationMiddleware)

    @app.get("/sw.js", include_in_schema=False)
    async def service_worker() -> FileResponse:
        """At the root, so that it may control the whole page (a worker's scope is its own folder and below)."""
        return FileResponse(static_dir / "sw.js", media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    @app.get("/icon-{size}.png", include_in_schema=False)
    async def icon(size: int) -> Response:
        """The app icon as PNG (installers want 192 and 512 px), drawn here rather than kept as a binary file."""
        if size not in (192, 512):
            raise HTTPException(404, "icons come in 192 and 512 px")
        return Response(app_icon_png(size), media_type="image/png", headers={"Cache-Control": "max-age=86400"})

    @app.get("/manifest.webmanifest", include_in_schema=False)
    async def manifest() -> FileResponse:
        return FileResponse(static_dir / "manifest.webmanifest", media_type="application/manifest+json")
