"""Speed benchmark: end-to-end frames per second at 640×480 (or another frame size), with the time per stage.

Frames are composed from the packaged astronaut photo (scikit-image's sample,
public domain) pasted onto a generated background, so anyone can reproduce the
figures with nothing but the installed package.
"""

from __future__ import annotations

import os
import platform
import time
from importlib import resources

import cv2
import numpy as np

from maskwatch.errors import InputError
from maskwatch.inference.tracker import FaceTracker
from maskwatch.media.draw import annotate
from maskwatch.pipeline import Detector

FRAME_W, FRAME_H = 640, 480


def sample_head() -> np.ndarray:
    """The astronaut's head and shoulders, cut generously around her face."""
    data = resources.files("maskwatch.assets").joinpath("astronaut.jpg").read_bytes()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return image[30:250, 120:330]


def bench_frame(faces: int, seed: int = 0, size: tuple[int, int] = (FRAME_W, FRAME_H)) -> np.ndarray:
    """A frame (default 640×480) with ``faces`` copies of the sample head on a textured background.

    Another ``size`` (width, height) scales the 640×480 layout with it, so an HD frame shows the same scene.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    background = np.stack([(xs * 0.25) % 255, (ys * 0.3) % 255, (xs + ys) * 0.1 % 255], axis=-1)
    frame = (background * 0.6 + rng.integers(0, 40, (height, width, 3))).astype(np.uint8)
    head = sample_head()
    scale = min(width / FRAME_W, height / FRAME_H)
    if faces == 1:
        slots = [(FRAME_W // 2 - 90, FRAME_H // 2 - 110, 180)]
    else:
        cols = 3
        slots = [(20 + (i % cols) * 210, 20 + (i // cols) * 235, 150) for i in range(faces)]
    for x, y, side in ((round(x * scale), round(y * scale), max(8, round(w * scale))) for x, y, w in slots):
        if x + side > width or y >= height:
            continue  # more faces than the layout holds at this size
        full = cv2.resize(head, (side, int(side * head.shape[0] / head.shape[1])))
        h = min(full.shape[0], height - y)
        frame[y : y + h, x : x + side] = full[:h]
    return frame


def parse_size(text: str) -> tuple[int, int]:
    """``"1920x1080"`` → (1920, 1080); anything else is a one-line ``InputError``."""
    width, sep, height = text.lower().replace("×", "x").partition("x")
    if not (sep and width.isdigit() and height.isdigit() and 64 <= int(width) <= 8192 and 64 <= int(height) <= 8192):
        raise InputError(f"--size {text!r}: give WIDTHxHEIGHT in pixels, each 64..8192 (e.g. 1920x1080)")
    return int(width), int(height)


def run_bench(
    detector: Detector, faces: int, frames: int = 200, warmup: int = 10, size: tuple[int, int] = (FRAME_W, FRAME_H)
) -> dict:
    """Time the pipeline on one synthetic frame repeated: per-stage ms and end-to-end fps."""
    frame = bench_frame(faces, size=size)
    tracker = FaceTracker(detector.classes)
    for i in range(warmup):
        tracker.update(detector.detect(frame), i)
    stages: dict[str, float] = {}
    found = 0
    start = time.perf_counter()
    for i in range(frames):
        result, timings = detector.detect_timed(frame)
        for stage, seconds in timings.items():
            stages[stage] = stages.get(stage, 0.0) + seconds
        t = time.perf_counter()
        result = tracker.update(result, warmup + i)
        t2 = time.perf_counter()
        annotate(frame, result)
        t3 = time.perf_counter()
        stages["track"] = stages.get("track", 0.0) + (t2 - t)
        stages["annotate"] = stages.get("annotate", 0.0) + (t3 - t2)
        found += len(result)
    total = time.perf_counter() - start
    return {
        "frame_size": f"{size[0]}x{size[1]}",
        "faces_in_frame": faces,
        "faces_found_per_frame": round(found / frames, 2),
        "frames": frames,
        "fps": round(frames / total, 1),
        "ms_per_frame": round(1000 * total / frames, 2),
        "ms_per_stage": {k: round(1000 * v / frames, 2) for k, v in stages.items()},
    }


def machine_info() -> dict:
    import onnxruntime

    return {
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "opencv": cv2.__version__,
        "threads": os.environ.get("MASKWATCH_THREADS", "default"),
    }
