"""Two detectors on the same frame, merged: each covers the faces the other misses.

maskface (our detector, trained on masked scene faces) finds far more tiny and small
faces than BlazeFace, and BlazeFace finds nearly every large one; running both and
merging overlapping boxes keeps the best of each at the cost of both passes
(docs/results-log.md has the figures).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from maskwatch.detectors.base import (
    FaceDetector,
    create_detector,
    detector_version,
    fingerprint,
    register_detector,
)
from maskwatch.faces import Detection
from maskwatch.inference.boxes import inside_larger, nms_clusters, score_weighted_mean


def merge_detections(found: Sequence[Detection], iou_threshold: float) -> list[Detection]:
    """Cluster boxes overlapping the best remaining one; average each cluster's box weighted by score.

    The cluster keeps its best score, and the keypoints and class probabilities of its best
    member that has any (only BlazeFace gives eye keypoints, only maskface classes). A box lying
    mostly inside a merged box at least twice its size is a face part (one detector saw
    just the mask or the eyes) and is dropped.
    """
    if not found:
        return []
    boxes = np.array([d.box for d in found], np.float32)
    scores = np.array([d.score for d in found], np.float32)
    out = []
    for cluster in nms_clusters(boxes, scores, iou_threshold):
        box = score_weighted_mean(boxes, scores, cluster)
        keypoints = next((found[k].keypoints for k in cluster if found[k].keypoints), ())
        classes = next((found[k].class_probabilities for k in cluster if found[k].class_probabilities), None)
        out.append(Detection(tuple(float(v) for v in box), float(scores[cluster[0]]), keypoints, classes))
    kept = np.array([d.box for d in out], np.float32)
    return [d for k, d in enumerate(out) if not inside_larger(d.box, np.delete(kept, k, axis=0))]


class EnsembleDetector:
    """Runs every member detector on the frame and merges their faces (``merge_detections``)."""

    def __init__(self, members: Sequence[FaceDetector], nms_iou: float = 0.4) -> None:
        self.members = list(members)
        self.nms_iou = nms_iou
        self.name = "+".join(m.name for m in self.members)
        self.version = fingerprint(*(detector_version(m) for m in self.members), f"nms{nms_iou:g}")

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        return merge_detections([d for m in self.members for d in m.detect(image_bgr)], self.nms_iou)


def _maskface_blazeface(min_score: float = 0.5, threads: int | None = None, **options: object) -> EnsembleDetector:
    members = [
        create_detector("maskface", min_score=min_score, threads=threads, **options),
        create_detector("blazeface", min_score=min_score, threads=threads),
    ]
    return EnsembleDetector(members)


register_detector("maskface+blazeface", _maskface_blazeface)
