"""A mask-aware face detector on its own, on the scenes: AP per class from its head, face AP and recall.

No classifier behind it: each box is labelled with the head's most probable class and ranked by detection
score × that probability (as ``evaluate-scenes`` ranks the pipeline's faces). Photos are a half of the fixed
split (``--split test``) or one fold of the train half (``--fold K``, the fold ``train-detector
--holdout-fold K`` keeps out), so recipes are chosen on a fold and judged on the test half once. Example::

    python benchmarks/bench_detector_classes.py --detector yunet-mask --model runs/ya/yunet_mask.onnx --fold 0
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from maskwatch.data.annotations import GroundTruth, load_voc_dir, scene_fold, scene_split
from maskwatch.detectors import create_detector
from maskwatch.evaluation.scene_metrics import ImageResult, Prediction, compute_metrics

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ALIASES = {"mask_weared_incorrect": "incorrect_mask"}
CLASSES = ["with_mask", "without_mask", "incorrect_mask"]


def run(detector, items, min_side: float = 0.0) -> list[ImageResult]:
    results = []
    for item, image in items:
        t0 = time.perf_counter()
        found = detector.detect(image)
        seconds = time.perf_counter() - t0
        predictions = []
        for d in found:
            if min(d.box[2] - d.box[0], d.box[3] - d.box[1]) < min_side:
                continue
            label, p = max((d.class_probabilities or {"face": 1.0}).items(), key=lambda kv: kv[1])
            predictions.append(Prediction(d.box, label, d.score * p, d.score))
        truth = [GroundTruth(ALIASES.get(o.label, o.label), o.box, o.difficult) for o in item.objects]
        results.append(ImageResult(item.image_path, truth, predictions, seconds))
    return results


def figures(results: list[ImageResult], threshold: float) -> dict:
    kept = [
        ImageResult(r.image_path, r.ground_truth, [p for p in r.predictions if p.detection_score >= threshold])
        for r in results
    ]
    m = compute_metrics(kept, 0.5, CLASSES)
    found, total = m.recall_min_side
    return {
        **{f"ap_{c}": round(m.per_class[c].ap, 4) for c in CLASSES},
        "face_ap": round(m.face.ap, 4),
        "recall_ge24": round(found / max(1, total), 4),
        "fp_per_image": round(m.face.fp / max(1, len(results)), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="yunet-mask")
    parser.add_argument("--model", help="ONNX file for the detector (default: the packaged one)")
    parser.add_argument("--scenes", type=Path, default=SHARED / "data" / "scenes")
    parser.add_argument("--split", choices=("train", "test"), default="test")
    parser.add_argument("--fold", type=int, help="A fold of the train half instead of --split")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--size", type=int, action="append", help="Pass long side(s) (repeatable)")
    parser.add_argument("--threshold", type=float, action="append", help="Operating score(s) [0.05, 0.5]")
    parser.add_argument("--min-side", type=float, default=0.0, help="Drop boxes with a side under this (image px)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--sweep", action="store_true", help="Also the best-F1 and 0.15 FP/image face thresholds")
    args = parser.parse_args()
    items = load_voc_dir(args.scenes / "annotations", args.scenes / "images")
    if args.fold is not None:
        chosen = [i for i in items if scene_split(i.name) == "train" and scene_fold(i.name, args.folds) == args.fold]
        where = f"train fold {args.fold}/{args.folds}"
    else:
        chosen = [i for i in items if scene_split(i.name) == args.split]
        where = f"{args.split} half"
    options: dict = {"min_score": 0.05}
    if args.model:
        options["model"] = args.model
    if args.size:
        options["sizes" if len(args.size) > 1 else "size"] = args.size if len(args.size) > 1 else args.size[0]
    if args.model and args.model.endswith(".weights.h5"):  # a checkpoint still in training: the Keras network
        from maskwatch.detectors.yunet import YuNetDetector
        from maskwatch.training.detector.yunet import build_model

        model = build_model()
        model.load_weights(args.model)
        del options["model"]
        detector = YuNetDetector(mask=True, network=lambda t: np.asarray(model.predict_on_batch(t))[0], **options)
    else:
        detector = create_detector(args.detector, **options)
    results = run(detector, [(i, cv2.imread(str(i.image_path))) for i in chosen], args.min_side)
    out = {
        "min_side": args.min_side,
        "detector": args.detector,
        "model": args.model,
        "sizes": args.size,
        "photos": where,
        "n": len(chosen),
    }
    for threshold in args.threshold or [0.05, 0.5]:
        out[f"at_{threshold:g}"] = figures(results, threshold)
    if args.sweep:  # the face operating point: best F1 over raw score thresholds, and the 0.15 FP/image budget
        rows = []
        for t in np.round(np.arange(0.2, 0.96, 0.025), 3):
            kept = [
                ImageResult(r.image_path, r.ground_truth, [p for p in r.predictions if p.detection_score >= t])
                for r in results
            ]
            face = compute_metrics(kept, 0.5, CLASSES).face
            f1 = 2 * face.precision * face.recall / max(1e-9, face.precision + face.recall)
            rows.append((float(t), round(face.precision, 4), round(face.recall, 4), round(f1, 4)))
        out["best_f1"] = max(rows, key=lambda row: row[3])
        out["budget_0.15"] = compute_metrics(results, 0.5, CLASSES).at_fp_budget["all"].to_dict()
    out["ms_per_image"] = round(1000 * sum(r.seconds for r in results) / max(1, len(results)), 1)
    print(json.dumps(out))
    if args.json:
        with open(args.json, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
