"""The blocking work behind the API, run in the server's thread pool: bytes in, CLI schema out."""

from __future__ import annotations

import base64
import time

import cv2
import numpy as np

from maskwatch.errors import InputError
from maskwatch.faces import Face
from maskwatch.inference.tracker import FaceTracker
from maskwatch.media.draw import annotate
from maskwatch.media.imageio import MAX_SIDE, decode_image
from maskwatch.pipeline import Detector, FrameResult
from maskwatch.web.models import DetectOut


def jpeg_base64(image_bgr: np.ndarray, faces: list[Face], quality: int = 85) -> str:
    """The frame with its faces drawn (``maskwatch.media.draw.annotate``), as base64 JPEG."""
    if max(image_bgr.shape[:2]) > MAX_SIDE:
        height, width = image_bgr.shape[:2]
        raise InputError(f"cannot annotate a {width}x{height} image: over JPEG's {MAX_SIDE} px a side (drop annotate)")
    ok, data = cv2.imencode(".jpg", annotate(image_bgr, faces), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise InputError("cannot encode the annotated image")
    return base64.b64encode(data.tobytes()).decode("ascii")


def detect_bytes(
    detector: Detector,
    data: bytes,
    name: str,
    max_pixels: int,
    with_annotation: bool = False,
    tracker: FaceTracker | None = None,
    index: int = 0,
) -> DetectOut:
    """Decode an uploaded image and find its faces; ``InputError`` for empty, corrupt or huge input."""
    start = time.perf_counter()
    image = decode_image(data, name, max_pixels)
    faces = detector.detect(image, photo=tracker is None)  # an upload is a photo; a webcam frame is not
    if tracker is not None:
        faces = tracker.update(faces, index)
    frame = FrameResult(name, index, None, image, faces).to_schema()
    annotated = jpeg_base64(image, faces) if with_annotation else None
    ms = round((time.perf_counter() - start) * 1000, 2)
    return DetectOut(**frame.model_dump(), annotated_jpeg=annotated, ms=ms)
