"""Scene metrics against cases worked out by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from maskwatch.data.annotations import AnnotatedImage, GroundTruth
from maskwatch.evaluation.scene_metrics import (
    MISSED,
    SPURIOUS,
    ImageResult,
    Prediction,
    compute_metrics,
    match,
    recall_at_fp_budget,
    size_bucket,
    voc_ap,
)
from maskwatch.evaluation.scene_run import evaluate_scenes, map_labels
from maskwatch.faces import TOO_SMALL, Face

W, WO = "with_mask", "without_mask"


def gt(label: str, box: tuple[float, float, float, float], difficult: bool = False) -> GroundTruth:
    return GroundTruth(label, box, difficult)


def pred(label: str, box: tuple[float, float, float, float], score: float) -> Prediction:
    return Prediction(box, label, score, score)


def image(objects: list[GroundTruth], preds: list[Prediction], name: str = "a1.jpg") -> ImageResult:
    return ImageResult(Path(name), objects, preds)


A = (0.0, 0.0, 40.0, 40.0)
B = (100.0, 100.0, 140.0, 140.0)
C = (200.0, 0.0, 240.0, 40.0)
NEAR_A = (4.0, 0.0, 44.0, 40.0)  # IoU with A = 36/44 = 0.818


def cell(m, row: str, col: str) -> int:
    return int(m.confusion[m.confusion_rows.index(row), m.confusion_cols.index(col)])


def test_voc_ap_hand_computed() -> None:
    # TP, FP, TP on 2 ground-truth boxes: precision 1, .5, .667 at recall .5, .5, 1.
    # Interpolated: 0.5 * 1 + 0.5 * 0.667 = 0.8333.
    assert voc_ap(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(5 / 6)
    assert voc_ap(np.array([]), np.array([])) == 0.0


def test_perfect() -> None:
    results = [image([gt(W, A), gt(WO, B)], [pred(W, A, 0.9), pred(WO, B, 0.8)])]
    m = compute_metrics(results, 0.5, [W, WO])
    assert m.per_class[W].ap == 1.0 and m.per_class[WO].ap == 1.0
    assert m.mean_ap() == 1.0
    assert m.per_class[W].precision == 1.0 and m.per_class[W].recall == 1.0
    assert m.detection_recall == 1.0 and m.accuracy == 1.0
    assert cell(m, W, W) == 1 and cell(m, WO, WO) == 1
    assert m.confusion.sum() == 2


def test_ranking_ap_and_operating_point() -> None:
    results = [image([gt(W, A), gt(W, B)], [pred(W, A, 0.9), pred(W, C, 0.8), pred(W, B, 0.7)])]
    m = compute_metrics(results, 0.5, [W])
    assert m.per_class[W].ap == pytest.approx(5 / 6)
    assert m.per_class[W].precision == pytest.approx(2 / 3)
    assert m.per_class[W].recall == 1.0
    assert (m.per_class[W].tp, m.per_class[W].fp) == (2, 1)
    assert cell(m, SPURIOUS, W) == 1


def test_empty() -> None:
    m = compute_metrics([image([], [])], 0.5, [W, WO])
    assert math.isnan(m.mean_ap()) and math.isnan(m.detection_recall) and math.isnan(m.accuracy)
    assert m.confusion.sum() == 0
    m = compute_metrics([], 0.5, [W])
    assert math.isnan(m.per_class[W].ap)


def test_ground_truth_but_no_predictions() -> None:
    m = compute_metrics([image([gt(W, A), gt(WO, B)], [])], 0.5, [W, WO])
    assert m.per_class[W].ap == 0.0 and m.mean_ap() == 0.0
    assert m.detection_recall == 0.0
    assert cell(m, W, MISSED) == 1 and cell(m, WO, MISSED) == 1
    assert m.images[0].missed == 2


def test_predictions_but_no_ground_truth() -> None:
    m = compute_metrics([image([], [pred(W, A, 0.9)])], 0.5, [W])
    assert math.isnan(m.per_class[W].ap)  # undefined, left out of mAP
    assert m.per_class[W].precision == 0.0
    assert cell(m, SPURIOUS, W) == 1 and m.images[0].spurious == 1


def test_all_wrong_class() -> None:
    results = [image([gt(W, A), gt(WO, B)], [pred(WO, A, 0.9), pred(W, B, 0.8)])]
    m = compute_metrics(results, 0.5, [W, WO])
    assert m.per_class[W].ap == 0.0 and m.per_class[WO].ap == 0.0
    assert m.detection_recall == 1.0  # the faces were found ...
    assert m.accuracy == 0.0  # ... and all misclassified
    assert cell(m, W, WO) == 1 and cell(m, WO, W) == 1
    assert m.images[0].misclassified == 2


def test_duplicates_are_false_positives() -> None:
    results = [image([gt(W, A)], [pred(W, A, 0.9), pred(W, NEAR_A, 0.8)])]
    m = compute_metrics(results, 0.5, [W])
    # The duplicate ranks below the true positive, so AP stays 1 but precision halves.
    assert m.per_class[W].ap == 1.0
    assert (m.per_class[W].tp, m.per_class[W].fp) == (1, 1)
    assert m.per_class[W].precision == 0.5
    assert cell(m, SPURIOUS, W) == 1 and cell(m, W, W) == 1
    # Ranked first, the duplicate would take the box: VOC gives the higher score the match.
    results = [image([gt(W, A)], [pred(W, A, 0.5), pred(W, NEAR_A, 0.8)])]
    status, matched = match(np.array([A]), np.array([False]), np.array([A, NEAR_A]), np.array([0.5, 0.8]), 0.5)
    assert status.tolist() == [0, 1] and matched.tolist() == [0, 0]
    assert compute_metrics(results, 0.5, [W]).per_class[W].ap == 1.0


def test_difficult_is_neither_tp_nor_fp() -> None:
    results = [image([gt(W, A), gt(W, B, difficult=True)], [pred(W, B, 0.95), pred(W, A, 0.9)])]
    m = compute_metrics(results, 0.5, [W])
    assert m.per_class[W].n_gt == 1
    assert (m.per_class[W].tp, m.per_class[W].fp) == (1, 0)
    assert m.per_class[W].ap == 1.0 and m.per_class[W].precision == 1.0
    assert m.face.n_gt == 1 and m.detection_recall == 1.0
    assert m.confusion.sum() == 1  # the difficult face is in no cell
    # An undetected difficult face is not missed either.
    m = compute_metrics([image([gt(W, B, difficult=True)], [])], 0.5, [W])
    assert m.face.n_gt == 0 and m.confusion.sum() == 0


def test_iou_threshold() -> None:
    loose = (0.0, 0.0, 40.0, 70.0)  # IoU with A = 1600 / 2800 = 0.571 ... 0.5 passes
    shifted = (0.0, 0.0, 40.0, 100.0)  # IoU 0.4: only 0.3 passes
    results = [image([gt(W, A)], [pred(W, shifted, 0.9)])]
    assert compute_metrics(results, 0.5, [W]).per_class[W].ap == 0.0
    assert compute_metrics(results, 0.3, [W]).per_class[W].ap == 1.0
    results = [image([gt(W, A)], [pred(W, loose, 0.9)])]
    assert compute_metrics(results, 0.5, [W]).per_class[W].ap == 1.0


def test_size_buckets_and_min_side_recall() -> None:
    assert [size_bucket(s) for s in (5, 15.9, 16, 31, 32, 95, 96, 500)] == [
        "tiny",
        "tiny",
        "small",
        "small",
        "medium",
        "medium",
        "large",
        "large",
    ]
    tiny = (0.0, 0.0, 10.0, 12.0)
    small = (50.0, 50.0, 70.0, 90.0)  # shorter side 20: small, under 24
    medium = (100.0, 0.0, 140.0, 40.0)  # 40: medium, counts for the ≥ 24 px bar
    large = (200.0, 200.0, 320.0, 330.0)
    results = [
        image(
            [gt(W, tiny), gt(W, small), gt(W, medium), gt(W, large)],
            [pred(W, small, 0.9), pred(W, large, 0.8)],
        )
    ]
    m = compute_metrics(results, 0.5, [W])
    assert m.recall_by_size == {"tiny": (0, 1), "small": (1, 1), "medium": (0, 1), "large": (1, 1)}
    assert m.recall_min_side == (1, 2)
    assert m.detection_recall == 0.5


def test_too_small_counts_as_found_but_not_classified() -> None:
    tiny = (0.0, 0.0, 10.0, 10.0)
    results = [image([gt(W, tiny)], [Prediction.from_face(Face(tiny, TOO_SMALL, 0.0, 0.9))])]
    m = compute_metrics(results, 0.5, [W])
    assert m.detection_recall == 1.0
    assert m.per_class[W].ap == 0.0  # no class given, so no class credit
    assert m.matched == 0 and math.isnan(m.accuracy)
    assert cell(m, W, TOO_SMALL) == 1


def test_multi_image_pooling() -> None:
    # AP pools ranks across images: image 1 FP at 0.9, image 2 TP at 0.8 → precision 0.5 at recall 1.
    results = [image([], [pred(W, A, 0.9)], "a1.jpg"), image([gt(W, A)], [pred(W, A, 0.8)], "a2.jpg")]
    assert compute_metrics(results, 0.5, [W]).per_class[W].ap == 0.5


def test_unknown_ground_truth_class_scores_zero() -> None:
    results = [image([gt(W, A), gt("incorrect_mask", B)], [pred(W, A, 0.9), pred(W, B, 0.8)])]
    m = compute_metrics(results, 0.5, [W])
    assert m.per_class["incorrect_mask"].ap == 0.0
    assert m.mean_ap() == pytest.approx((1.0 + 0.0) / 2)
    assert m.mean_ap([W]) == 1.0
    assert cell(m, "incorrect_mask", W) == 1


class _Fixed:
    """Returns fixed faces per call: a test double for the pipeline."""

    classes = [W, WO]

    def __init__(self, faces: list[list[Face]]) -> None:
        self.faces = faces

    def detect(self, image_bgr: np.ndarray, *, photo: bool = False) -> list[Face]:
        assert photo, "scene photos are still photos"
        return self.faces.pop(0)


def test_evaluate_scenes_maps_classes_and_ignores() -> None:
    images = [
        AnnotatedImage(Path("s1.jpg"), 300, 300, [gt("mask", A), gt("no_mask", B), gt("mask_weared_incorrect", C)])
    ]
    finder = _Fixed([[Face(A, W, 0.9, 0.8), Face(B, WO, 0.6, 0.9)]])
    report = evaluate_scenes(
        images,
        finder,
        class_map={"mask": W, "no_mask": WO, "mask_weared_incorrect": "-"},
        read=lambda p: np.zeros((300, 300, 3), np.uint8),
    )
    m = report.metrics[0.5]
    assert m.mean_ap() == 1.0 and m.face.n_gt == 2
    assert report.results[0].predictions[0].score == pytest.approx(0.72)
    data = report.to_dict()
    assert data["metrics"]["iou_0.5"]["mAP"] == 1.0 and data["faces"] == 2
    assert map_labels(images, {"mask": W})[0].objects[0].label == W


def test_recall_at_fp_budget_strict_and_sized() -> None:
    tiny = (300.0, 300.0, 310.0, 310.0)
    small_spurious = (400.0, 400.0, 410.0, 410.0)
    results = [
        image(
            [gt(W, A), gt(W, tiny)],
            # ranked: face A (TP), big spurious C, small spurious, the tiny face (under 24 px: neither TP nor FP)
            [pred(W, A, 0.9), pred(W, C, 0.8), pred(W, small_spurious, 0.7), pred(W, tiny, 0.6)],
        ),
        image([gt(W, B)], [pred(W, B, 0.5)], "a2.jpg"),
    ]
    # No false face allowed (0.15 per image over 2 images): only A is kept.
    strict = recall_at_fp_budget(results, 0.5, 0.15)
    assert (strict.recall, strict.threshold, strict.fp_per_image) == (0.5, 0.9, 0.0)
    # One false face allowed: the strict count pays 2 (C and the small one) to reach B; the sized one pays 1.
    assert recall_at_fp_budget(results, 0.5, 0.5).recall == 0.5
    sized = recall_at_fp_budget(results, 0.5, 0.5, small_false_positives=False)
    assert (sized.recall, sized.threshold, sized.fp_per_image) == (1.0, 0.5, 0.5)
    strict = recall_at_fp_budget(results, 0.5, 1.0)
    assert (strict.recall, strict.threshold, strict.fp_per_image) == (1.0, 0.5, 1.0)
    m = compute_metrics(results, 0.5, [W])
    assert m.at_fp_budget["all"].recall == 0.5 and m.at_fp_budget["sized"].recall == 0.5
    assert m.to_dict()["face_detection"]["recall_min_side_24px"]["at_max_0.15_fp_per_image"]["all"]["recall"] == 0.5


def test_recall_at_fp_budget_ties_and_no_faces() -> None:
    # A face and a false face with the same score: no threshold keeps one without the other.
    tied = recall_at_fp_budget([image([gt(W, A)], [pred(W, A, 0.8), pred(W, C, 0.8)])], 0.5, 0.15)
    assert tied.recall == 0.0 and tied.fp_per_image == 0.0 and math.isinf(tied.threshold)
    assert tied.to_dict()["threshold"] is None  # JSON has no infinity
    assert recall_at_fp_budget([image([gt(W, A)], [pred(W, A, 0.8), pred(W, C, 0.8)])], 0.5, 1.0).recall == 1.0
    assert math.isnan(recall_at_fp_budget([image([], [pred(W, A, 0.8)])]).recall)
    assert math.isnan(recall_at_fp_budget([]).recall)


def test_curve_run_gives_ap_operating_point_gives_precision_recall() -> None:
    # The user's run (conf 0.5) finds face A only; the curve run (lower threshold) also finds a spurious C
    # and face B. AP is the curve's (TP, FP, TP over 2 faces: 5/6); precision and recall are the user's (1, 1/2).
    truth = [gt(W, A), gt(W, B)]
    user = [image(truth, [pred(W, A, 0.9)])]
    curve = [image(truth, [pred(W, A, 0.9), pred(W, C, 0.3), pred(W, B, 0.2)])]
    alone = compute_metrics(user, 0.5, [W])
    assert alone.per_class[W].ap == pytest.approx(0.5)  # the cut curve: recall stops at 1/2
    m = compute_metrics(user, 0.5, [W], curve=curve)
    w = m.per_class[W]
    assert w.ap == pytest.approx(5 / 6)
    assert (w.precision, w.recall, w.tp, w.fp, w.n_pred) == (1.0, 0.5, 1, 0, 1)
    assert w.curve_n_pred == 3 and len(w.curve_recall) == 3
    assert m.face.ap == pytest.approx(5 / 6) and m.face.recall == 0.5
    assert cell(m, W, MISSED) == 1 and cell(m, SPURIOUS, W) == 0  # the confusion table is the user's
    assert m.to_dict()["per_class"][W]["curve_n_pred"] == 3
    assert "curve_n_pred" not in alone.to_dict()["per_class"][W]


def test_curve_run_recovers_a_class_the_threshold_hides() -> None:
    # A bare face found only below the user's threshold: AP 0 at the operating point, 1 over the whole curve.
    truth = [gt(WO, B)]
    m = compute_metrics([image(truth, [])], 0.5, [W, WO], curve=[image(truth, [pred(WO, B, 0.1)])])
    assert m.per_class[WO].ap == 1.0 and m.per_class[WO].recall == 0.0 and math.isnan(m.per_class[WO].precision)
    assert m.at_fp_budget["all"].recall == 1.0  # the threshold sweep runs over the curve too


def test_curve_run_must_hold_the_same_images() -> None:
    with pytest.raises(ValueError, match="same images"):
        compute_metrics([image([], [], "a1.jpg")], 0.5, [W], curve=[image([], [], "a2.jpg")])


def test_evaluate_scenes_with_a_curve_detector() -> None:
    images = [AnnotatedImage(Path("s1.jpg"), 300, 300, [gt(W, A), gt(WO, B)])]
    user = _Fixed([[Face(A, W, 0.9, 0.8)]])
    curve = _Fixed([[Face(A, W, 0.9, 0.8), Face(B, WO, 0.7, 0.2)]])
    report = evaluate_scenes(images, user, read=lambda p: np.zeros((300, 300, 3), np.uint8), curve_detector=curve)
    m = report.metrics[0.5]
    assert m.per_class[WO].ap == 1.0 and m.per_class[WO].recall == 0.0
    assert report.curve_results is not None and len(report.curve_results[0].predictions) == 2
    assert len(report.results[0].predictions) == 1
