"""Parity and speed of an export against its float ONNX source, measured the same way for every export."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from maskwatch.annotations import AnnotatedImage
from maskwatch.bench import bench_frame, run_bench
from maskwatch.detectors.base import FaceDetector
from maskwatch.imageio import read_image

THREADS = 2
"""Speed is measured on two cores: a small edge box, and what the figures in the docs were taken on."""
CROP_BATCH = 8
"""Crops per classifier call for the batched per-crop time (a busy frame)."""
DETECTION_MIN_SCORE = 0.05
"""Detections kept for face AP: low, so AP sees the whole precision-recall curve."""


ROUNDS = 12
"""Timing rounds per model, float and export taking turns: a burst of other work on a shared machine then slows
a round of each rather than all of one, and the best round (of medians) is what the hardware can do."""


def compare_ms(runs: dict[str, Callable[[], Any]], rounds: int = ROUNDS, per_round: int = 8) -> dict[str, float]:
    """Per kind, ms of one call of ``runs[kind]``: the lowest of ``rounds`` medians of ``per_round`` calls."""
    for run in runs.values():
        run()
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for kind, run in runs.items():
            times = []
            for _ in range(per_round):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            best[kind] = min(best[kind], float(np.median(times)))
    return {kind: round(1000 * value, 3) for kind, value in best.items()}


def classifier_parity(
    predict_float: Callable[[np.ndarray], np.ndarray],
    predict_export: Callable[[np.ndarray], np.ndarray],
    crops: np.ndarray,
    labels: np.ndarray,
) -> dict[str, Any]:
    """Max absolute difference of probabilities, accuracy of both, and how many crops change class."""
    float_p = np.concatenate([predict_float(crops[i : i + 64]) for i in range(0, len(crops), 64)])
    export_p = np.concatenate([predict_export(crops[i : i + 64]) for i in range(0, len(crops), 64)])
    return {
        "n": len(crops),
        "max_abs_diff": round(float(np.abs(float_p - export_p).max()), 6),
        "mean_abs_diff": round(float(np.abs(float_p - export_p).mean()), 6),
        "accuracy_float": round(float((float_p.argmax(1) == labels).mean()), 4),
        "accuracy_export": round(float((export_p.argmax(1) == labels).mean()), 4),
        "class_changed": int((float_p.argmax(1) != export_p.argmax(1)).sum()),
    }


def classifier_speed(predicts: dict[str, Callable[[np.ndarray], np.ndarray]], crops: np.ndarray) -> dict[str, dict]:
    """Per kind, ms for one crop alone and per crop in a batch of ``CROP_BATCH``."""
    one, batch = crops[:1], np.resize(crops, (CROP_BATCH, *crops.shape[1:]))
    single = compare_ms({kind: (lambda p=p: p(one)) for kind, p in predicts.items()})
    batched = compare_ms({kind: (lambda p=p: p(batch)) for kind, p in predicts.items()})
    return {
        kind: {"ms_per_crop": single[kind], f"ms_per_crop_batch{CROP_BATCH}": round(batched[kind] / CROP_BATCH, 3)}
        for kind in predicts
    }


def detector_figures(detector: FaceDetector, photos: Sequence[AnnotatedImage]) -> dict[str, Any]:
    """Face AP at IoU 0.5 and recall of faces >= 24 px on annotated photos (class-agnostic: the detector alone)."""
    from maskwatch.detector_train.validation import face_figures
    from maskwatch.scene_metrics import face_results

    items = [(item.name, read_image(item.image_path), item.objects) for item in photos]
    return {
        k: None if v is None else round(float(v), 4) for k, v in face_figures(face_results(detector, items)).items()
    }


def detector_speed(detectors: dict[str, FaceDetector]) -> dict[str, dict]:
    """Per kind, ms per 640×480 frame (the bench's one-face frame)."""
    frame = bench_frame(1)
    ms = compare_ms({kind: (lambda d=d: d.detect(frame)) for kind, d in detectors.items()})
    return {kind: {"ms_per_frame": value} for kind, value in ms.items()}


def end_to_end(pipelines: dict[str, Any], rounds: int = 4, frames: int = 25) -> dict[str, dict]:
    """Per kind, the bench's end-to-end fps (detect, crop, classify, track, draw) with 1 and 5 faces: the best of
    ``rounds`` short runs, the kinds taking turns."""
    best: dict[str, dict[str, float]] = {kind: {} for kind in pipelines}
    for _ in range(rounds):
        for faces in (1, 5):
            for kind, pipeline in pipelines.items():
                fps = run_bench(pipeline, faces, frames=frames, warmup=3)["fps"]
                key = f"fps_{faces}_faces"
                best[kind][key] = max(best[kind].get(key, 0.0), fps)
    return best


def outputs_max_abs_diff(float_session: Any, export_session: Any, feeds: list[dict]) -> float:
    """Largest absolute difference between two ONNX sessions' raw outputs over the same inputs."""
    worst = 0.0
    for feed in feeds:
        for a, b in zip(float_session.run(None, feed), export_session.run(None, feed)):
            worst = max(worst, float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max()))
    return round(worst, 6)
