"""Running the pipeline (or a face detector alone) on annotated photos and scoring it: ``evaluate-scenes``.

The scoring itself (matching, AP, recall by size, operating points) is ``scene_metrics``: pure functions of
the results this module collects.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from maskwatch.data.annotations import AnnotatedImage, GroundTruth
from maskwatch.data.provenance import photo_digest, recorded_digests
from maskwatch.evaluation.scene_metrics import (
    IGNORE,
    SIZE_BUCKETS,
    ImageResult,
    Prediction,
    SceneMetrics,
    compute_metrics,
)
from maskwatch.faces import Face


class FaceFinder(Protocol):
    """Anything with the pipeline's ``detect``: ``maskwatch.pipeline.Detector`` or a test double."""

    def detect(self, image_bgr: np.ndarray, *, photo: bool = False) -> list[Face]: ...


def map_labels(images: Iterable[AnnotatedImage], class_map: dict[str, str]) -> list[AnnotatedImage]:
    """Dataset class names → bundle class names; a class mapped to ``-`` becomes difficult (ignored)."""
    out = []
    for image in images:
        objects = []
        for g in image.objects:
            label = class_map.get(g.label, g.label)
            if label == IGNORE:
                objects.append(GroundTruth(g.label, g.box, True))
            else:
                objects.append(GroundTruth(label, g.box, g.difficult))
        out.append(AnnotatedImage(image.image_path, image.width, image.height, objects))
    return out


@dataclass
class SceneReport:
    """The outcome of one scene evaluation: per-image results and metrics at each IoU threshold."""

    results: list[ImageResult]
    metrics: dict[float, SceneMetrics]
    classes: list[str]
    settings: dict[str, Any] = field(default_factory=dict)
    map_classes: list[str] | None = None
    curve_results: list[ImageResult] | None = None
    """The lower-threshold run behind AP and the PR curves (None: ``results`` themselves)."""
    trained_on: dict[str, int] = field(default_factory=dict)
    """Models of the pipeline that learnt from some of these photos (their metadata says so): name → how many.
    Figures on a model's own training photos flatter it."""

    def mean_ap(self, iou: float = 0.5) -> float:
        """mAP over ``map_classes`` when set, else over every class with ground truth."""
        return self.metrics[iou].mean_ap(self.map_classes)

    def to_dict(self) -> dict[str, Any]:
        seconds = [r.seconds for r in self.results]
        return {
            "settings": self.settings,
            "images": len(self.results),
            "faces": sum(not g.difficult for r in self.results for g in r.ground_truth),
            "seconds_per_image": round(float(np.mean(seconds)), 4) if seconds else None,
            "classes": self.classes,
            "size_buckets_shorter_side_px": {n: [lo, None if math.isinf(hi) else hi] for n, lo, hi in SIZE_BUCKETS},
            "metrics": {f"iou_{iou:g}": m.to_dict(self.map_classes) for iou, m in self.metrics.items()},
            "models_trained_on_these_photos": self.trained_on,
        }


def evaluate_scenes(
    images: Sequence[AnnotatedImage],
    detector: FaceFinder,
    classes: Sequence[str] | None = None,
    class_map: dict[str, str] | None = None,
    ious: Sequence[float] = (0.5, 0.3),
    map_classes: Sequence[str] | None = None,
    settings: dict[str, Any] | None = None,
    read: Callable[[Path], np.ndarray] | None = None,
    progress: Callable[[int, int], None] | None = None,
    curve_detector: FaceFinder | None = None,
) -> SceneReport:
    """Run the full pipeline on annotated photos and score it against their boxes.

    The library entry point behind ``maskwatch evaluate-scenes``; a new face
    detector or model is measured by passing another ``detector``.
    ``curve_detector``: the same pipeline with a lower detection threshold, run on
    each image too; AP and PR curves are then its (see ``compute_metrics``).
    """
    from maskwatch.media.imageio import read_image

    read = read or read_image
    classes = list(classes if classes is not None else getattr(detector, "classes", []))
    mapped = map_labels(images, class_map or {})
    results: list[ImageResult] = []
    curve: list[ImageResult] = []
    for i, image in enumerate(mapped):
        bgr = read(image.image_path)
        results.append(_run_one(detector, bgr, image))
        if curve_detector is not None:
            curve.append(_run_one(curve_detector, bgr, image))
        if progress:
            progress(i + 1, len(mapped))
    curve_results = curve if curve_detector is not None else None
    metrics = {iou: compute_metrics(results, iou, classes, curve=curve_results) for iou in ious}
    selected = [c for c in map_classes] if map_classes else None
    trained_on = training_overlap(detector, images)
    return SceneReport(results, metrics, classes, dict(settings or {}), selected, curve_results, trained_on)


def training_overlap(pipeline: Any, images: Sequence[AnnotatedImage]) -> dict[str, int]:
    """How many of ``images`` each model of ``pipeline`` learnt from, by the photo digests its metadata records
    (``maskwatch.data.provenance``); models that record none, or none of these, are left out."""
    models = list(_recorded_models(pipeline))
    if not models:
        return {}
    digests = {photo_digest(i.image_path) for i in images if Path(i.image_path).is_file()}
    overlap = {name: len(recorded & digests) for name, recorded in models}
    return {name: n for name, n in overlap.items() if n}


def _recorded_models(pipeline: Any):
    """(name, recorded digests) of the pipeline's classifier bundle and of its photo detector and their parts."""
    classifier = getattr(pipeline, "classifier", None)
    if classifier is not None:
        recorded = set(classifier.bundle.meta.trained_on_photos)
        if recorded:
            yield classifier.bundle.name, recorded
    pending = [getattr(pipeline, "photo_detector", None)]
    while pending:
        detector = pending.pop()
        if detector is None:
            continue
        recorded = recorded_digests(getattr(detector, "meta", None))
        if recorded:
            yield detector.name, recorded
        pending += [*getattr(detector, "members", []), getattr(detector, "base", None)]


def _run_one(detector: FaceFinder, bgr: np.ndarray, image: AnnotatedImage) -> ImageResult:
    t0 = time.perf_counter()
    faces = detector.detect(bgr, photo=True)
    seconds = time.perf_counter() - t0
    return ImageResult(image.image_path, image.objects, [Prediction.from_face(f) for f in faces], seconds)


def face_results(detector: Any, named_images: Sequence[tuple[str, np.ndarray, Sequence[Any]]]) -> list[ImageResult]:
    """Run a face detector (not the pipeline) on (name, image, ground truth) items: class-agnostic results,
    each timed; ``evaluate_scenes`` is the pipeline's twin."""
    results = []
    for name, image, truth in named_images:
        t0 = time.perf_counter()
        found = detector.detect(image)
        seconds = time.perf_counter() - t0
        predictions = [Prediction.from_detection(d) for d in found]
        results.append(ImageResult(Path(name), list(truth), predictions, seconds))
    return results
