"""Parity and speed of an export against its float ONNX source, measured the same way for every export."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from maskwatch.data.annotations import AnnotatedImage
from maskwatch.detectors.base import FaceDetector
from maskwatch.evaluation.bench import bench_frame
from maskwatch.media.imageio import read_image

THREADS = 2
"""Speed is measured on two cores: a small edge box, and what the figures in the docs were taken on."""
CROP_BATCH = 8
"""Crops per classifier call for the batched per-crop time (a busy frame)."""
DETECTION_MIN_SCORE = 0.05
"""Detections kept for face AP: low, so AP sees the whole precision-recall curve."""


ROUNDS = 12
"""Timing rounds: each round times every kind ``CALLS_PER_ROUND`` times."""
CALLS_PER_ROUND = 8


def compare_ms(runs: dict[str, Callable[[], Any]], rounds: int = ROUNDS) -> dict[str, dict]:
    """Per kind, the median ms of one call of ``runs[kind]``, wall clock (``ms``) and CPU time of the process
    (``cpu_ms``: all threads' work). The kinds take turns call by call, the order rotating, so a burst of other work
    on a shared machine slows all of them alike rather than whichever was running."""
    kinds = list(runs)
    for run in runs.values():
        run()
    wall: dict[str, list[float]] = {kind: [] for kind in kinds}
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    for i in range(rounds * CALLS_PER_ROUND):
        for k in range(len(kinds)):
            kind = kinds[(i + k) % len(kinds)]
            start, start_cpu = time.perf_counter(), time.process_time()
            runs[kind]()
            wall[kind].append(time.perf_counter() - start)
            cpu[kind].append(time.process_time() - start_cpu)
    return {
        kind: {
            "ms": round(1000 * float(np.median(wall[kind])), 3),
            "cpu_ms": round(1000 * float(np.median(cpu[kind])), 3),
        }
        for kind in kinds
    }


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


def classifier_speed(
    predicts: dict[str, Callable[[np.ndarray], np.ndarray]], crops: np.ndarray, rounds: int = ROUNDS
) -> dict[str, dict]:
    """Per kind, ms (wall and CPU) for one crop alone and per crop in a batch of ``CROP_BATCH``."""
    one, batch = crops[:1], np.resize(crops, (CROP_BATCH, *crops.shape[1:]))
    single = compare_ms({kind: (lambda p=p: p(one)) for kind, p in predicts.items()}, rounds)
    batched = compare_ms({kind: (lambda p=p: p(batch)) for kind, p in predicts.items()}, rounds)
    per = f"per_crop_batch{CROP_BATCH}"
    return {
        kind: {
            "ms_per_crop": single[kind]["ms"],
            f"ms_{per}": round(batched[kind]["ms"] / CROP_BATCH, 3),
            "cpu_ms_per_crop": single[kind]["cpu_ms"],
            f"cpu_ms_{per}": round(batched[kind]["cpu_ms"] / CROP_BATCH, 3),
        }
        for kind in predicts
    }


def detector_figures(detector: FaceDetector, photos: Sequence[AnnotatedImage]) -> tuple[dict[str, Any], list]:
    """Face AP at IoU 0.5 and recall of faces >= 24 px on annotated photos (class-agnostic: the detector alone),
    and the detections per photo."""
    from maskwatch.evaluation.scene_metrics import ImageResult, Prediction
    from maskwatch.training.detector.validation import face_figures

    found = [detector.detect(read_image(item.image_path)) for item in photos]
    results = [
        ImageResult(item.image_path, list(item.objects), [Prediction.from_detection(d) for d in faces])
        for item, faces in zip(photos, found)
    ]
    figures = {k: None if v is None else round(float(v), 4) for k, v in face_figures(results).items()}
    return figures, found


def detection_diff(float_found: list, export_found: list, min_score: float = 0.5) -> dict[str, Any]:
    """Faces at ``min_score`` or more matched between float and export (IoU >= 0.5, best score first): the largest
    difference of face score and of class probability over matched faces, and the faces only one of them finds."""
    from maskwatch.inference.boxes import iou_matrix

    score_diff, prob_diff, unmatched = 0.0, 0.0, 0
    for a_all, b_all in zip(float_found, export_found):
        a = [p for p in a_all if p.score >= min_score]
        b = [p for p in b_all if p.score >= min_score]
        overlaps = iou_matrix(np.array([p.box for p in a]).reshape(-1, 4), np.array([p.box for p in b]).reshape(-1, 4))
        taken: set[int] = set()
        for i in np.argsort([-p.score for p in a], kind="stable"):
            free = [j for j in np.argsort(-overlaps[i]) if j not in taken and overlaps[i, j] >= 0.5] if len(b) else []
            if not free:
                unmatched += 1
                continue
            j = int(free[0])
            taken.add(j)
            score_diff = max(score_diff, abs(a[i].score - b[j].score))
            pa, pb = a[i].class_probabilities or {}, b[j].class_probabilities or {}
            prob_diff = max([prob_diff, *(abs(pa[c] - pb.get(c, 0.0)) for c in pa)])
        unmatched += len(b) - len(taken)
    return {
        "score_max_abs_diff": round(score_diff, 6),
        "class_probability_max_abs_diff": round(prob_diff, 6),
        f"faces_found_by_one_only_at_{min_score:g}": unmatched,
    }


def detector_speed(detectors: dict[str, FaceDetector], rounds: int = ROUNDS) -> dict[str, dict]:
    """Per kind, ms (wall and CPU) per 640×480 frame (the bench's one-face frame)."""
    frame = bench_frame(1)
    ms = compare_ms({kind: (lambda d=d: d.detect(frame)) for kind, d in detectors.items()}, rounds)
    return {kind: {"ms_per_frame": value["ms"], "cpu_ms_per_frame": value["cpu_ms"]} for kind, value in ms.items()}


def _frame_step(pipeline: Any, frame: np.ndarray) -> Callable[[], None]:
    """One frame through ``pipeline`` as the bench runs it: detect, track (its own tracker), draw."""
    from maskwatch.inference.tracker import FaceTracker
    from maskwatch.media.draw import annotate

    tracker, count = FaceTracker(pipeline.classes), iter(range(1 << 40))

    def step() -> None:
        annotate(frame.copy(), tracker.update(pipeline.detect(frame), next(count)))

    return step


def end_to_end(pipelines: dict[str, Any], frames: int = 96) -> dict[str, dict]:
    """Per kind, end-to-end fps (detect, track, draw; the bench's frames with 1 and 5 faces) from the median frame
    time, and the CPU ms a frame took; the pipelines take turns frame by frame, as in ``compare_ms``."""
    out: dict[str, dict] = {kind: {} for kind in pipelines}
    for faces in (1, 5):
        frame = bench_frame(faces)
        steps = {kind: _frame_step(pipeline, frame) for kind, pipeline in pipelines.items()}
        for kind, value in compare_ms(steps, max(1, frames // CALLS_PER_ROUND)).items():
            out[kind][f"fps_{faces}_faces"] = round(1000 / value["ms"], 1)
            out[kind][f"cpu_ms_per_frame_{faces}_faces"] = value["cpu_ms"]
    return out


def outputs_max_abs_diff(float_session: Any, export_session: Any, feeds: list[dict]) -> float:
    """Largest absolute difference between two ONNX sessions' raw outputs over the same inputs."""
    worst = 0.0
    for feed in feeds:
        for a, b in zip(float_session.run(None, feed), export_session.run(None, feed)):
            worst = max(worst, float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max()))
    return round(worst, 6)
