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

from maskwatch.data.annotations import GroundTruth, load_voc_dir, scene_fold, scene_split
from maskwatch.detectors import create_detector
from maskwatch.evaluation.scene_metrics import ImageResult, Prediction, compute_metrics

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ALIASES = {"mask_weared_incorrect": "incorrect_mask"}
CLASSES = ["with_mask", "without_mask", "incorrect_mask"]


def run(detector, items) -> list[ImageResult]:
    results = []
    for item, image in items:
        t0 = time.perf_counter()
        found = detector.detect(image)
        seconds = time.perf_counter() - t0
        predictions = []
        for d in found:
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
    parser.add_argument("--json", type=Path)
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
        import numpy as np

        from maskwatch.training.detector.yunet import build_model
        from maskwatch.detectors.yunet import YuNetDetector

        model = build_model()
        model.load_weights(args.model)
        del options["model"]
        detector = YuNetDetector(mask=True, network=lambda t: np.asarray(model.predict_on_batch(t))[0], **options)
    else:
        detector = create_detector(args.detector, **options)
    results = run(detector, [(i, cv2.imread(str(i.image_path))) for i in chosen])
    out = {"detector": args.detector, "model": args.model, "sizes": args.size, "photos": where, "n": len(chosen)}
    for threshold in args.threshold or [0.05, 0.5]:
        out[f"at_{threshold:g}"] = figures(results, threshold)
    out["ms_per_image"] = round(1000 * sum(r.seconds for r in results) / max(1, len(results)), 1)
    print(json.dumps(out))
    if args.json:
        with open(args.json, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
