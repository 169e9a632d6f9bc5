"""Held-out validation for ``train-detector --holdout-fold``: the detector figures on photos the run never trained on.

Every shipped maskface model has trained on every train-half photo, so figures measured there say how well a
model fits, not how well it finds faces in new photos. A run that keeps one fold of the train half out of its
samples (photos by number, ``annotations.scene_fold``, the folds the classifier benchmarks use too) is scored
on that fold at each checkpoint, through the same detector code that will run its ONNX export, so recipes can
be compared without touching the test half.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskwatch.data.annotations import AnnotatedImage, load_voc_dir, scene_split
from maskwatch.errors import InputError
from maskwatch.evaluation.scene_metrics import ImageResult, compute_metrics
from maskwatch.evaluation.scene_run import face_results
from maskwatch.training.detector.data import HeldOutFold, read_scene_image

VALIDATION_FILE = "validation.jsonl"
"""One JSON line per validation (step and figures) in the run folder: the run's validation curve."""
MIN_SCORE = 0.05
"""Detections kept for the figures: low, so face AP and the threshold sweep see the whole curve."""
OPERATING_SCORE = 0.5
"""The shipped operating point (the pipeline's default confidence)."""


@dataclass
class HeldOutPhotos:
    """The held-out fold's photos, decoded once, with their annotations."""

    items: list[AnnotatedImage]
    images: list[np.ndarray]


def load_held_out(scenes_dir: str | Path, held_out: HeldOutFold) -> HeldOutPhotos:
    """The train-half photos of one fold; a fold without photos is a one-line error (nothing to validate on)."""
    scenes_dir = Path(scenes_dir)
    items = [
        item
        for item in load_voc_dir(scenes_dir / "annotations", scenes_dir / "images")
        if scene_split(item.name) == "train" and held_out.holds(item.name)
    ]
    if not items:
        raise InputError(f"{scenes_dir}: no train-half photos in fold {held_out.fold} of {held_out.folds}")
    return HeldOutPhotos(items, [read_scene_image(item) for item in items])


def face_figures(results: Sequence[ImageResult]) -> dict[str, float | None]:
    """The detector figures at IoU 0.5: recall of faces >= 24 px at <= 0.15 false faces per image (every false
    face counted), face AP, and recall >= 24 px with false faces per image at the operating score."""
    metrics = compute_metrics(results, 0.5)
    budget = metrics.at_fp_budget["all"]
    kept = [
        ImageResult(r.image_path, r.ground_truth, [p for p in r.predictions if p.score >= OPERATING_SCORE])
        for r in results
    ]
    at_operating = compute_metrics(kept, 0.5)
    found, total = at_operating.recall_min_side
    return {
        "recall_ge24_at_0.15_fp": _number(budget.recall),
        "face_ap": _number(metrics.face.ap),
        f"recall_ge24_at_{OPERATING_SCORE:g}": found / total if total else None,
        f"fp_per_image_at_{OPERATING_SCORE:g}": at_operating.face.fp / max(1, len(results)),
    }


def validate(network: Callable[[np.ndarray], np.ndarray], photos: HeldOutPhotos, input_size: int) -> dict:
    """Score a model in training on the held-out photos, one pass at its inference size plus the coarse pass."""
    from maskwatch.detectors.maskface import MaskFaceDetector

    detector = MaskFaceDetector(min_score=MIN_SCORE, size=input_size, threshold=0.5, network=network)
    items = [(item.name, image, item.objects) for item, image in zip(photos.items, photos.images)]
    return face_figures(face_results(detector, items))


def append_line(out_dir: Path, step: int, figures: dict) -> None:
    """Add one validation to the run's curve (a resumed run goes on appending; a step already there, as when
    ``--resume`` only exports a checkpoint trained elsewhere, is not written twice)."""
    path = out_dir / VALIDATION_FILE
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        try:
            if lines and json.loads(lines[-1]).get("step") == step:
                return
        except ValueError:
            pass  # a damaged last line: the new one goes after it
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"step": step, **figures}) + "\n")


def describe(figures: dict) -> str:
    """One log line's worth of figures."""
    return ", ".join(f"{key} {'-' if value is None else f'{value:.3f}'}" for key, value in figures.items())


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)
