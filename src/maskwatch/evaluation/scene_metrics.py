"""Scene-level metrics: how the whole pipeline does on box-annotated photos.

Crop accuracy says nothing about faces the detector never finds, so this module
matches the pipeline's output to ground-truth boxes and reports:

* per class: AP (Pascal VOC all-point interpolation) over the whole precision-recall
  curve, precision and recall at the pipeline's operating point, and the PR curve;
  mAP over classes with ground truth;
* class-agnostic face detection: recall overall and by face size, AP;
* classification accuracy on faces the detector found, and a confusion matrix
  with ``missed`` (ground truth without any detection) and ``spurious``
  (detections without ground truth, duplicates included).

Matching follows the VOC devkit: predictions in descending score order, each
compared with the ground-truth box it overlaps most (IoU ≥ threshold, continuous
coordinates); a second hit on a taken box is a false positive; a hit on a
``difficult`` box is neither true nor false positive, and difficult boxes are not
counted in recall. Sizes are the ground-truth box's shorter side, the same
measure the pipeline's ``min_face`` uses.

A pipeline cut at its user-facing score threshold (0.5) ends its PR curve early, so its
AP says more about the threshold than about the ranking. As detector benchmarks do, the
curve comes from a second run of the same pipeline with only its detection threshold
lowered (``maskwatch.settings.CURVE_CONF``): AP and PR curves from that run, precision, recall, confusion
and accuracy from the user's own settings (``compute_metrics(..., curve=...)``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from maskwatch.data.annotations import GroundTruth
from maskwatch.faces import TOO_SMALL, Box, Face
from maskwatch.inference.boxes import iou_matrix

MISSED = "missed"
SPURIOUS = "spurious"
IGNORE = "-"
"""A ``--class-map`` target meaning: treat boxes of this dataset class as difficult (ignored)."""

SIZE_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("tiny", 0.0, 16.0),
    ("small", 16.0, 32.0),
    ("medium", 32.0, 96.0),
    ("large", 96.0, math.inf),
)
"""(name, lower, upper) by the box's shorter side in pixels: lower ≤ side < upper."""

RECALL_MIN_SIDE = 24.0
"""The product bar: faces whose shorter side is at least this are the ones users expect found."""

MAX_FP_PER_IMAGE = 0.15
"""The product bar's false-positive budget that goes with the ≥ 24 px recall."""



@dataclass(frozen=True)
class Prediction:
    """A face the pipeline reported: ``score`` ranks it for AP (detection score × class probability)."""

    box: Box
    label: str
    score: float
    detection_score: float

    @classmethod
    def from_face(cls, face: Face) -> Prediction:
        class_score = face.score if face.label != TOO_SMALL else 0.0
        return cls(face.box, face.label, float(face.detection_score) * float(class_score), float(face.detection_score))

    @classmethod
    def from_detection(cls, detection: Any) -> Prediction:
        """A face detector's box, class-agnostic (label "face"): detector benchmarks and held-out validation."""
        return cls(detection.box, "face", float(detection.score), float(detection.score))


@dataclass
class ImageResult:
    """Ground truth and predictions of one image (labels already mapped to the bundle's classes)."""

    image_path: Path
    ground_truth: list[GroundTruth]
    predictions: list[Prediction]
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.image_path.name


# --------------------------------------------------------------------------- matching and AP


def match(
    gt_boxes: np.ndarray, gt_difficult: np.ndarray, pred_boxes: np.ndarray, pred_scores: np.ndarray, iou: float
) -> tuple[np.ndarray, np.ndarray]:
    """VOC greedy matching in one image.

    Returns, per prediction, its status (1 true positive, 0 false positive,
    -1 ignored because it hit a difficult box) and the index of the ground-truth
    box it was compared with (-1 when no box reached the threshold).
    """
    n_pred = len(pred_boxes)
    status = np.zeros(n_pred, np.int8)
    matched = np.full(n_pred, -1, np.int64)
    if n_pred == 0 or len(gt_boxes) == 0:
        return status, matched
    overlaps = iou_matrix(np.asarray(pred_boxes, np.float64), np.asarray(gt_boxes, np.float64))
    taken = np.zeros(len(gt_boxes), bool)
    for p in np.argsort(-np.asarray(pred_scores), kind="stable"):
        j = int(np.argmax(overlaps[p]))
        if overlaps[p, j] < iou - 1e-9:
            continue
        matched[p] = j
        if gt_difficult[j]:
            status[p] = -1
        elif not taken[j]:
            taken[j] = True
            status[p] = 1
    return status, matched


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the PR curve with VOC all-point interpolation (precision made monotone, summed at recall steps)."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


@dataclass
class ClassMetrics:
    """AP and the operating point of one class (or of "face" for class-agnostic detection)."""

    name: str
    n_gt: int
    n_pred: int
    tp: int
    fp: int
    ap: float
    precision: float
    recall: float
    curve_precision: np.ndarray = field(repr=False)
    curve_recall: np.ndarray = field(repr=False)
    curve_n_pred: int | None = None
    """Predictions on the PR curve when it comes from a lower-threshold run (None: the same run)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_gt": self.n_gt,
            "n_pred": self.n_pred,
            "tp": self.tp,
            "fp": self.fp,
            "ap": json_number(self.ap),
            "precision": json_number(self.precision),
            "recall": json_number(self.recall),
            **({} if self.curve_n_pred is None else {"curve_n_pred": self.curve_n_pred}),
        }

    def with_curve(self, curve: ClassMetrics) -> ClassMetrics:
        """This operating point with the AP and PR curve of ``curve`` (a lower-threshold run of the same pipeline)."""
        return replace(
            self,
            ap=curve.ap,
            curve_precision=curve.curve_precision,
            curve_recall=curve.curve_recall,
            curve_n_pred=curve.n_pred,
        )


def ranked_metrics(name: str, scores: np.ndarray, status: np.ndarray, n_gt: int) -> ClassMetrics:
    """AP, PR curve and final precision/recall from per-prediction scores and TP/FP/ignored status."""
    keep = status >= 0
    scores, status = scores[keep], status[keep]
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(status[order] == 1)
    fp = np.cumsum(status[order] == 0)
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / n_gt if n_gt else np.zeros(len(tp))
    ap = voc_ap(recall, precision) if n_gt else math.nan
    n_tp, n_fp = (int(tp[-1]), int(fp[-1])) if len(tp) else (0, 0)
    return ClassMetrics(
        name=name,
        n_gt=n_gt,
        n_pred=len(scores),
        tp=n_tp,
        fp=n_fp,
        ap=ap,
        precision=n_tp / (n_tp + n_fp) if n_tp + n_fp else math.nan,
        recall=n_tp / n_gt if n_gt else math.nan,
        curve_precision=precision,
        curve_recall=recall,
    )


def size_bucket(side: float) -> str:
    """The name of the size bucket for a shorter side in pixels."""
    for name, low, high in SIZE_BUCKETS:
        if low <= side < high:
            return name
    return SIZE_BUCKETS[-1][0]


def shorter_side(box: Sequence[float]) -> float:
    return float(min(box[2] - box[0], box[3] - box[1]))


@dataclass(frozen=True)
class OperatingPoint:
    """The best ≥ ``RECALL_MIN_SIDE`` face recall a single score threshold reaches within a false-positive budget."""

    threshold: float
    """Lowest detection score kept (inf: no threshold fits the budget but keeping nothing)."""
    recall: float
    fp_per_image: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": json_number(self.threshold),
            "recall": json_number(self.recall),
            "fp_per_image": json_number(self.fp_per_image),
        }


@dataclass
class _FaceHits:
    """Per prediction of a set of images, what the threshold sweep of ``recall_at_fp_budget`` needs."""

    scores: np.ndarray
    true_pos: np.ndarray
    """Matched a face of at least ``min_side``."""
    false_pos: np.ndarray
    """Matched no face (duplicates included)."""
    small: np.ndarray
    """Shorter than ``min_side`` itself."""
    n_faces: int
    n_images: int


def _match_faces(r: ImageResult, iou: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class-agnostic VOC matching of one image's predictions by detection score: (scores, status, matched)."""
    gt_boxes, gt_difficult = _gt_arrays(r.ground_truth)
    pred_boxes = np.array([p.box for p in r.predictions], np.float64).reshape(-1, 4)
    det_scores = np.array([p.detection_score for p in r.predictions], np.float64)
    status, matched = match(gt_boxes, gt_difficult, pred_boxes, det_scores, iou)
    return det_scores, status, matched


def _face_hits(
    results: Sequence[ImageResult], matches: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], min_side: float
) -> _FaceHits:
    """What the threshold sweep needs, from each image's ``_match_faces``."""
    scores, true_pos, false_pos, small = [], [], [], []
    n_faces = 0
    for r, (det_scores, status, matched) in zip(results, matches):
        gt_sides = np.array([shorter_side(g.box) for g in r.ground_truth], np.float64)
        gt_difficult = np.array([g.difficult for g in r.ground_truth], bool)
        n_faces += int(((gt_sides >= min_side) & ~gt_difficult).sum())
        scores.append(det_scores)
        true_pos.append((status == 1) & (gt_sides[matched] >= min_side if len(gt_sides) else False))
        false_pos.append(status == 0)
        small.append(np.array([shorter_side(p.box) < min_side for p in r.predictions], bool))

    def joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    return _FaceHits(
        joined(scores, np.float64),
        joined(true_pos, bool),
        joined(false_pos, bool),
        joined(small, bool),
        n_faces,
        len(results),
    )


def _best_point(hits: _FaceHits, false_pos: np.ndarray, max_fp_per_image: float) -> OperatingPoint:
    """The threshold sweep over ``hits`` with ``false_pos`` as the boxes charged to the budget."""
    if not hits.n_faces:
        return OperatingPoint(math.nan, math.nan, math.nan)
    order = np.argsort(-hits.scores, kind="stable")
    ranked = hits.scores[order]
    tp = np.concatenate([[0], np.cumsum(hits.true_pos[order])])
    fp = np.concatenate([[0], np.cumsum(false_pos[order])])
    # A threshold keeps every detection with an equal score: cut only where the score changes.
    cuts = [0] + [k + 1 for k in range(len(ranked)) if k + 1 == len(ranked) or ranked[k + 1] < ranked[k]]
    n_images = max(1, hits.n_images)
    fits = [k for k in cuts if fp[k] / n_images <= max_fp_per_image + 1e-12]
    best = max(fits, key=lambda k: (tp[k], -fp[k]))
    return OperatingPoint(
        threshold=float(ranked[best - 1]) if best else math.inf,
        recall=float(tp[best]) / hits.n_faces,
        fp_per_image=float(fp[best]) / n_images,
    )


def recall_at_fp_budget(
    results: Sequence[ImageResult],
    iou: float = 0.5,
    max_fp_per_image: float = MAX_FP_PER_IMAGE,
    min_side: float = RECALL_MIN_SIDE,
    small_false_positives: bool = True,
) -> OperatingPoint:
    """Sweep the detection-score threshold (FDDB-style) and keep the best recall of faces ≥ ``min_side``.

    With ``small_false_positives`` every detection that matches no face counts
    against the budget. Without it the sweep follows COCO's area ranges: a
    detection smaller than ``min_side`` that matches no face, or that matches a
    face smaller than ``min_side``, is left out. The difference matters on crowd
    photos, where many small faces carry no annotation, so a detector that finds
    them is charged for it. VOC matching in score order makes every prefix's
    matching the same as a run at that threshold, so one matching serves all.
    """
    hits = _face_hits(results, [_match_faces(r, iou) for r in results], min_side)
    charged = hits.false_pos if small_false_positives else hits.false_pos & ~hits.small
    return _best_point(hits, charged, max_fp_per_image)


# --------------------------------------------------------------------------- all metrics at one IoU


@dataclass
class ImageErrors:
    """What went wrong in one image at one IoU threshold (for the worst-images gallery)."""

    name: str
    missed: int
    spurious: int
    misclassified: int
    too_small: int
    gt_found: list[bool] = field(default_factory=list)
    pred_status: list[int] = field(default_factory=list)
    """Per prediction: 1 matched a face, 0 spurious or duplicate, -1 hit a difficult box."""

    @property
    def total(self) -> int:
        return self.missed + self.spurious + self.misclassified


@dataclass
class SceneMetrics:
    """Every scene-level figure at one IoU threshold."""

    iou: float
    classes: list[Any]
    per_class: dict[str, ClassMetrics]
    face: ClassMetrics
    recall_by_size: dict[str, tuple[int, int]]
    recall_min_side: tuple[int, int]
    matched: int
    correct: int
    confusion_rows: list[str]
    confusion_cols: list[str]
    confusion: np.ndarray
    images: list[ImageErrors]
    at_fp_budget: dict[str, OperatingPoint] = field(default_factory=dict)
    """``all``: every unmatched detection is a false positive; ``sized``: only those ≥ RECALL_MIN_SIDE (COCO)."""

    def mean_ap(self, classes: Iterable[str] | None = None) -> float:
        """Mean AP over ``classes`` (default: every class with ground truth); classes without ground truth skip."""
        names = list(classes) if classes is not None else list(self.per_class)
        aps = [self.per_class[c].ap for c in names if c in self.per_class and not math.isnan(self.per_class[c].ap)]
        return float(np.mean(aps)) if aps else math.nan

    @property
    def accuracy(self) -> float:
        """Classification accuracy on found faces (those labelled too_small are left out: never classified)."""
        return self.correct / self.matched if self.matched else math.nan

    @property
    def detection_recall(self) -> float:
        return self.face.recall

    def recall_for(self, bucket: str) -> float:
        found, total = self.recall_by_size[bucket]
        return found / total if total else math.nan

    def to_dict(self, map_classes: Sequence[str] | None = None) -> dict[str, Any]:
        found, total = self.recall_min_side
        out: dict[str, Any] = {
            "iou": self.iou,
            "mAP": json_number(self.mean_ap()),
            "per_class": {c: m.to_dict() for c, m in self.per_class.items()},
            "face_detection": {
                **self.face.to_dict(),
                "recall_by_size": {
                    b: {"found": f, "total": t, "recall": json_number(f / t if t else math.nan)}
                    for b, (f, t) in self.recall_by_size.items()
                },
                f"recall_min_side_{RECALL_MIN_SIDE:g}px": {
                    "found": found,
                    "total": total,
                    "recall": json_number(found / total if total else math.nan),
                    f"at_max_{MAX_FP_PER_IMAGE:g}_fp_per_image": {k: v.to_dict() for k, v in self.at_fp_budget.items()},
                },
            },
            "classification": {
                "matched": self.matched,
                "correct": self.correct,
                "accuracy": json_number(self.accuracy),
            },
            "confusion": {
                "rows_ground_truth": self.confusion_rows,
                "cols_predicted": self.confusion_cols,
                "matrix": self.confusion.astype(int).tolist(),
            },
        }
        if map_classes:
            out["mAP_selected"] = {"classes": list(map_classes), "mAP": json_number(self.mean_ap(map_classes))}
        return out


def compute_metrics(
    results: Sequence[ImageResult],
    iou: float = 0.5,
    classes: Sequence[str] = (),
    curve: Sequence[ImageResult] | None = None,
) -> SceneMetrics:
    """All scene metrics at one IoU threshold.

    ``classes`` are the model's classes; any ground-truth class beyond them is
    still scored (AP 0: the model cannot say it) so a gap is never hidden.
    ``curve``: the same images run at a lower detection threshold; AP, PR curves and the
    false-positive-budget sweep come from it, everything else from ``results``.
    """
    metrics = _compute_metrics(results, iou, classes)
    if curve is None:
        return metrics
    if [r.image_path for r in curve] != [r.image_path for r in results]:
        raise ValueError("the curve run must hold the same images, in the same order, as the operating point's")
    full = _compute_metrics(curve, iou, metrics.classes)
    metrics.per_class = {c: m.with_curve(full.per_class[c]) for c, m in metrics.per_class.items()}
    metrics.face = metrics.face.with_curve(full.face)
    metrics.at_fp_budget = full.at_fp_budget
    return metrics


def _compute_metrics(results: Sequence[ImageResult], iou: float, classes: Sequence[str]) -> SceneMetrics:
    gt_classes = sorted({g.label for r in results for g in r.ground_truth if not g.difficult})
    all_classes = list(classes) + [c for c in gt_classes if c not in classes]
    per_class = {c: _class_metrics(results, c, iou) for c in all_classes}

    face_scores, face_status = [], []
    n_faces = 0
    by_size = {name: [0, 0] for name, _, _ in SIZE_BUCKETS}
    min_side = [0, 0]
    rows = all_classes + [SPURIOUS]
    cols = all_classes + [c for c in sorted({p.label for r in results for p in r.predictions}) if c not in all_classes]
    if TOO_SMALL not in cols:
        cols.append(TOO_SMALL)
    cols.append(MISSED)
    confusion = np.zeros((len(rows), len(cols)), np.int64)
    matched_n = correct_n = 0
    errors = []
    matches = [_match_faces(r, iou) for r in results]  # one matching for every face-level figure
    for r, (det_scores, status, matched) in zip(results, matches):
        face_scores.append(det_scores)
        face_status.append(status)
        found = np.zeros(len(r.ground_truth), bool)
        found[matched[status == 1]] = True
        missed = spurious = wrong = small = 0
        for j, g in enumerate(r.ground_truth):
            if g.difficult:
                continue
            n_faces += 1
            side = shorter_side(g.box)
            bucket = by_size[size_bucket(side)]
            bucket[0] += int(found[j])
            bucket[1] += 1
            if side >= RECALL_MIN_SIDE:
                min_side[0] += int(found[j])
                min_side[1] += 1
            if not found[j]:
                missed += 1
                confusion[rows.index(g.label), cols.index(MISSED)] += 1
        for p, (s, j) in enumerate(zip(status, matched)):
            label = r.predictions[p].label
            if s == 1:
                gt_label = r.ground_truth[j].label
                confusion[rows.index(gt_label), cols.index(label)] += 1
                if label == TOO_SMALL:
                    small += 1
                    continue
                matched_n += 1
                correct_n += int(label == gt_label)
                wrong += int(label != gt_label)
            elif s == 0:
                spurious += 1
                confusion[rows.index(SPURIOUS), cols.index(label)] += 1
        errors.append(ImageErrors(r.name, missed, spurious, wrong, small, found.tolist(), [int(v) for v in status]))
    hits = _face_hits(results, matches, RECALL_MIN_SIDE)
    face = ranked_metrics(
        "face",
        np.concatenate(face_scores) if face_scores else np.zeros(0),
        np.concatenate(face_status) if face_status else np.zeros(0, np.int8),
        n_faces,
    )
    return SceneMetrics(
        iou=iou,
        classes=all_classes,
        per_class=per_class,
        face=face,
        recall_by_size={k: (v[0], v[1]) for k, v in by_size.items()},
        recall_min_side=(min_side[0], min_side[1]),
        matched=matched_n,
        correct=correct_n,
        confusion_rows=rows,
        confusion_cols=cols,
        confusion=confusion,
        images=errors,
        at_fp_budget={
            "all": _best_point(hits, hits.false_pos, MAX_FP_PER_IMAGE),
            "sized": _best_point(hits, hits.false_pos & ~hits.small, MAX_FP_PER_IMAGE),
        },
    )


def _gt_arrays(objects: Sequence[GroundTruth]) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.array([g.box for g in objects], np.float64).reshape(-1, 4)
    return boxes, np.array([g.difficult for g in objects], bool)


def _class_metrics(results: Sequence[ImageResult], cls: str, iou: float) -> ClassMetrics:
    scores, status = [], []
    n_gt = 0
    for r in results:
        objects = [g for g in r.ground_truth if g.label == cls]
        n_gt += sum(not g.difficult for g in objects)
        preds = [p for p in r.predictions if p.label == cls]
        if not preds:
            continue
        gt_boxes, gt_difficult = _gt_arrays(objects)
        pred_scores = np.array([p.score for p in preds], np.float64)
        s, _ = match(gt_boxes, gt_difficult, np.array([p.box for p in preds], np.float64), pred_scores, iou)
        scores.append(pred_scores)
        status.append(s)
    return ranked_metrics(
        cls,
        np.concatenate(scores) if scores else np.zeros(0),
        np.concatenate(status) if status else np.zeros(0, np.int8),
        n_gt,
    )


def json_number(value: float | None) -> float | None:
    """JSON-safe rounding: NaN (undefined, e.g. no ground truth) and infinity (no threshold fits) become null."""
    return None if value is None or not math.isfinite(value) else round(float(value), 4)
