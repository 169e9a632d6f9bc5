"""Pipeline defaults (conf, min-face, head weight, photo detector) chosen on the scenes' TRAIN half.

Each photo detector runs once per photo at the AP curve's low threshold with every face
classified (min-face 1, the classifier's and the detector head's probabilities kept
apart); every setting of the grid is then the same detections relabelled as the
pipeline would (``maskwatch.pipeline.label_face``): faces under min-face become
too_small, the head's share is blended in, detections under conf are dropped from the
operating point. Scored as ``evaluate-scenes`` scores: AP over the whole curve, the
operating point's precision/recall per class beside it.

``--model`` may hold ``{k}``: fold k's photos are then classified by that bundle (one
trained without them, e.g. by ``--folds``' recipe), so a classifier trained on the train
half is judged only on photos it never saw. A detector trained on the train half reads
higher here than on photos it never saw; the grid still ranks the settings.

    python benchmarks/bench_defaults.py --model 'runs/3c/folds/fold{k}/bundle' \\
        --detector maskface-multiscale --detector maskface --json benchmarks/results/defaults.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskwatch.data.annotations import load_annotations, scene_fold, select_split
from maskwatch.detectors import create_detector
from maskwatch.evaluation.scene_metrics import ImageResult, Prediction, compute_metrics
from maskwatch.evaluation.scene_run import map_labels
from maskwatch.faces import Detection
from maskwatch.inference.classifier import MaskClassifier
from maskwatch.inference.crops import crop_face
from maskwatch.media.imageio import read_image
from maskwatch.pipeline import label_face
from maskwatch.settings import CURVE_CONF

SCENES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scenes"
CLASS_MAP = {"mask_weared_incorrect": "incorrect_mask"}


@dataclass
class Raw:
    """One photo's detections at the curve threshold with the classifier's own probabilities."""

    image: object
    detections: list[Detection]
    probabilities: np.ndarray


def detect_all(
    name: str, photos: list, cache: Path | None, curve_conf: float = CURVE_CONF
) -> tuple[list[list[Detection]], float]:
    """Every photo's detections at the curve threshold, and ms per photo; kept in ``cache`` for the next bundle."""
    path = cache / f"{name}@{curve_conf:g}-{len(photos)}.pkl" if cache else None
    if path and path.is_file():
        return pickle.loads(path.read_bytes())
    detector = create_detector(name, min_score=curve_conf)
    found, seconds = [], 0.0
    for photo in photos:
        bgr = read_image(photo.image_path)
        t0 = time.perf_counter()
        found.append(detector.detect(bgr))
        seconds += time.perf_counter() - t0
    out = (found, 1000 * seconds / max(1, len(photos)))
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(out))
    return out


def classify_all(photos: list, found: list, classifiers: dict[int, MaskClassifier], folds: int) -> list[Raw]:
    raws = []
    for photo, detections in zip(photos, found):
        classifier = classifiers[scene_fold(photo.image_path.name, folds) if len(classifiers) > 1 else 0]
        bgr = read_image(photo.image_path)
        size, margin = classifier.input_size, classifier.margin
        crops = np.stack([crop_face(bgr, d.box, size, margin) for d in detections]) if detections else np.zeros((0,))
        raws.append(Raw(photo, detections, classifier.predict(crops)))
    return raws


def relabel(raws: list[Raw], classes: list[str], min_face: int, head_weight: float, conf: float) -> list[ImageResult]:
    out = []
    for raw in raws:
        preds = []
        for d, p in zip(raw.detections, raw.probabilities):
            if d.score < conf:
                continue
            small = min(d.box[2] - d.box[0], d.box[3] - d.box[1]) < min_face
            preds.append(Prediction.from_face(label_face(d, None if small else p, classes, head_weight)))
        out.append(ImageResult(raw.image.image_path, raw.image.objects, preds))
    return out


def f1(p: float, r: float) -> float:
    return 0.0 if not (p + r) or math.isnan(p) or math.isnan(r) else 2 * p * r / (p + r)


def grid(raws: list[Raw], classes: list[str], min_faces, head_weights, confs) -> list[dict]:
    rows = []
    for min_face, head_weight in itertools.product(min_faces, head_weights):
        curve = relabel(raws, classes, min_face, head_weight, 0.0)
        for conf in confs:
            m = compute_metrics(relabel(raws, classes, min_face, head_weight, conf), 0.5, classes, curve=curve)
            ap = {c: round(m.per_class[c].ap, 4) for c in m.per_class}
            op = {c: [round(m.per_class[c].precision, 4), round(m.per_class[c].recall, 4)] for c in m.per_class}
            rows.append(
                {
                    "min_face": min_face,
                    "head_weight": head_weight,
                    "conf": conf,
                    "ap": ap,
                    "mAP": round(float(np.mean(list(ap.values()))), 4),
                    "face_ap": round(m.face.ap, 4),
                    "operating_point_precision_recall": op,
                    "mean_f1": round(float(np.mean([f1(*v) for v in op.values()])), 4),
                    "face_precision_recall": [round(m.face.precision, 4), round(m.face.recall, 4)],
                    "accuracy_on_found_faces": round(m.accuracy, 4),
                }
            )
    return rows


SIDES = (0, 8, 12, 16, 24, 10_000)


def accuracy_by_size(raws: list[Raw], classes: list[str], head_weight: float, conf: float) -> dict[str, list]:
    """Classifier accuracy on found faces (IoU >= 0.5) by the face's shorter side: is it right at that size?"""
    from maskwatch.evaluation.scene_metrics import _match_faces, shorter_side

    right = np.zeros(len(SIDES) - 1)
    total = np.zeros(len(SIDES) - 1)
    for r in relabel(raws, classes, 1, head_weight, conf):
        _, status, matched = _match_faces(r, 0.5)
        for p, s, j in zip(r.predictions, status, matched):
            if s != 1:
                continue
            g = r.ground_truth[j]
            k = int(np.searchsorted(SIDES, shorter_side(g.box), side="right")) - 1
            total[k] += 1
            right[k] += p.label == g.label
    names = [f"{a}-{b}" for a, b in zip(SIDES[:-1], SIDES[1:])]
    return {n: [round(float(a / t), 4) if t else None, int(t)] for n, a, t in zip(names, right, total)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="bundle (maskwatch:NAME or folder); '{k}' for fold bundles")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--detector", action="append", required=True)
    parser.add_argument("--split", default="train", choices=("train",), help="only the train half chooses")
    parser.add_argument("--min-face", default="1,4,8,12,16")
    parser.add_argument("--head-weight", default="0,0.25,0.5,0.75")
    parser.add_argument("--conf", default="0.2,0.3,0.4,0.5,0.6")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--curve-conf", type=float, default=CURVE_CONF, help="threshold of the AP curve's run")
    parser.add_argument("--fold", type=int, help="only this fold's photos (e.g. the one a detector held out)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--cache", type=Path, default=Path("runs/bench_defaults"), help="detections kept here")
    parser.add_argument("--detect-only", action="store_true", help="only fill the detection cache")
    args = parser.parse_args()

    photos = select_split(load_annotations(SCENES / "annotations", SCENES / "images"), args.split)
    photos = map_labels(photos[: args.limit] if args.limit else photos, CLASS_MAP)
    mine = [args.fold is None or scene_fold(p.image_path.name, args.folds) == args.fold for p in photos]
    if args.detect_only:
        classifiers = {}
    elif args.model and "{k}" in args.model and args.fold is not None:
        classifiers = {0: MaskClassifier(args.model.format(k=args.fold))}
    elif args.model and "{k}" in args.model:
        classifiers = {k: MaskClassifier(args.model.format(k=k)) for k in range(args.folds)}
    else:
        classifiers = {0: MaskClassifier(args.model)}
    classes = classifiers[0].classes if classifiers else []
    numbers = lambda text, kind: [kind(v) for v in text.split(",")]  # noqa: E731
    results = {}
    for name in args.detector:
        # the whole half, cached; then the fold's photos
        found, ms = detect_all(name, photos, args.cache, args.curve_conf)
        if not classifiers:
            continue
        kept = [(p, f) for p, f, m in zip(photos, found, mine) if m]
        raws = classify_all([p for p, _ in kept], [f for _, f in kept], classifiers, args.folds)
        rows = grid(
            raws,
            classes,
            numbers(args.min_face, int),
            numbers(args.head_weight, float),
            numbers(args.conf, float),
        )
        best_ap = max(rows, key=lambda r: (r["mAP"], r["face_ap"]))
        same = [r for r in rows if (r["min_face"], r["head_weight"]) == (best_ap["min_face"], best_ap["head_weight"])]
        best_op = max(same, key=lambda r: r["mean_f1"])
        results[name] = {"ms_per_photo": round(ms, 1), "best_ap": best_ap, "best_operating_point": best_op}
        results[name]["accuracy_by_size"] = accuracy_by_size(raws, classes, best_ap["head_weight"], best_op["conf"])
        results[name]["grid"] = rows
        print("  accuracy by shorter side (px):", results[name]["accuracy_by_size"])
        print(name, f"{ms:.0f} ms/photo")
        for r in sorted(rows, key=lambda r: -r["mAP"])[:8]:
            print(" ", {k: r[k] for k in ("min_face", "head_weight", "conf", "ap", "mAP", "face_ap", "mean_f1")})
        print("  best conf at that min-face/head weight:", {k: best_op[k] for k in ("conf", "mean_f1")})
        print("  per conf:", [(r["conf"], r["mean_f1"], r["operating_point_precision_recall"]) for r in same])
    if args.json:
        data = json.loads(args.json.read_text()) if args.json.is_file() else {}
        key = str(args.model) + ("" if args.fold is None else f" fold {args.fold}")
        data.setdefault(key, {}).update(results)
        args.json.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
