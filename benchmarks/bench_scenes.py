"""Face detection on the scenes photos, class-agnostic: the numbers behind detector settings.

For each detector configuration: face recall at IoU ≥ 0.5 for faces ≥ 24 px (the
detector bar), false positives per image at IoU 0.5, the best recall ≥ 24 px a score
threshold reaches with ≤ 0.15 false positives per image (every false face counted, and
COCO-style counting only false faces ≥ 24 px; see ``recall_at_fp_budget``; run with a
low ``@CONF`` so the sweep has thresholds to choose from), recall per ground-truth class at
IoU ≥ 0.3 for faces ≥ 32 px (the detector table), face AP at IoU 0.5, ms per scene
photo, and ms per 640×480 frame with one face (the fps bar).

Tune on the TRAIN half (even image numbers); report on the test half only with
settings fixed beforehand; a detector trained with ``train-detector --holdout-fold K`` is
judged on that fold (``--fold K``, and ``--folds N`` if it used other than 3), photos it never
trained on. Examples::

    python benchmarks/bench_scenes.py --split train --config blazeface --config blazeface@0.3
    python benchmarks/bench_scenes.py --split test --json benchmarks/results/scenes.json \\
        --config blazeface --config "blazeface-tiled" --config "maskface"

A config is ``NAME[@CONF][:key=value,...]``, e.g. ``blazeface-tiled@0.5:tiles=128|192,overlap=0.3``.
Set MASKWATCH_THREADS to fix the ONNX Runtime threads (2 for the 2-core speed bar).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from maskwatch.data.annotations import AnnotatedImage, GroundTruth, load_voc_dir, scene_fold, scene_split
from maskwatch.detectors import create_detector
from maskwatch.evaluation.scene_metrics import MAX_FP_PER_IMAGE, ImageResult, compute_metrics, match, shorter_side
from maskwatch.evaluation.scene_run import face_results

SCENES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scenes"
CLASSES = ("with_mask", "without_mask", "mask_weared_incorrect")


def parse_config(spec: str) -> tuple[str, float, dict]:
    name, _, options_text = spec.partition(":")
    name, _, conf_text = name.partition("@")
    options: dict = {}
    for item in filter(None, options_text.split(",")):
        key, value = item.split("=")
        if "|" in value or key == "tiles":
            options[key] = tuple(int(v) for v in value.split("|"))
        elif key == "box_scale":
            options[key] = tuple(float(v) for v in value.split("x"))
        else:
            options[key] = int(value) if value.isdigit() else float(value)
    return name, float(conf_text or 0.5), options


def detect_all(detector, items: list[tuple[str, np.ndarray, list[GroundTruth]]]) -> tuple[list[ImageResult], float]:
    """Run the detector on (name, image, ground truth) items: class-agnostic results and seconds spent detecting."""
    results = face_results(detector, items)
    return results, sum(r.seconds for r in results)


def evaluate(detector, images: list[AnnotatedImage], frames: list[np.ndarray]) -> dict:
    """Class-agnostic face figures through the library's VOC matching (``maskwatch.evaluation.scene_metrics``)."""
    by_class = {c: [0, 0] for c in CLASSES}
    results, seconds = detect_all(detector, [(i.image_path.name, f, list(i.objects)) for i, f in zip(images, frames)])
    for item, result in zip(images, results):
        gt = np.array([o.box for o in item.objects], np.float64).reshape(-1, 4)
        difficult = np.array([o.difficult for o in item.objects], bool)
        det = np.array([p.box for p in result.predictions], np.float64).reshape(-1, 4)
        status, matched = match(gt, difficult, det, np.array([p.score for p in result.predictions]), 0.3)
        hit30 = np.zeros(len(gt), bool)
        hit30[matched[status == 1]] = True
        for obj, hit in zip(item.objects, hit30):
            if shorter_side(obj.box) >= 32 and obj.label in by_class and not obj.difficult:
                by_class[obj.label][0] += int(hit)
                by_class[obj.label][1] += 1
    metrics = compute_metrics(results, 0.5)
    found24, total24 = metrics.recall_min_side
    return {
        "recall_ge24_iou50": found24 / max(1, total24),
        "faces_ge24": total24,
        "fp_per_image_iou50": metrics.face.fp / max(1, len(images)),
        f"recall_ge24_at_max_{MAX_FP_PER_IMAGE:g}_fp_per_image": {
            k: v.to_dict() for k, v in metrics.at_fp_budget.items()
        },
        "recall_ge32_iou30": {c: (h / n if n else None) for c, (h, n) in by_class.items()},
        "faces_ge32": {c: n for c, (_, n) in by_class.items()},
        "face_ap_iou50": metrics.face.ap,
        "ms_per_scene": 1000 * seconds / max(1, len(images)),
    }


def machine() -> dict:
    """Where a benchmark ran: timings only compare within one machine."""
    return {
        "cpu_count": os.cpu_count(),
        "onnx_threads": os.environ.get("MASKWATCH_THREADS", "default"),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def merge_results(path: Path, key: str, results: dict, **fields: object) -> None:
    """Merge ``results`` into the file's ``key`` section (earlier configurations kept) and set ``fields``."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.setdefault(key, {}).update(results)
    data.update(fields)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def frame_ms(detector, frame: np.ndarray, repeats: int = 60) -> float:
    """Median ms of one detect() call on a 640×480 frame."""
    for _ in range(5):
        detector.detect(frame)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        detector.detect(frame)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def one_face_frame(images: list[AnnotatedImage]) -> np.ndarray:
    """A 640×480 frame holding the largest single-face scene photo, letterboxed."""
    single = [i for i in images if len(i.objects) == 1] or images
    image = cv2.imread(str(single[0].image_path))
    h, w = image.shape[:2]
    scale = min(640 / w, 480 / h)
    resized = cv2.resize(image, (round(w * scale), round(h * scale)))
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[: resized.shape[0], : resized.shape[1]] = resized
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=Path, default=SCENES)
    parser.add_argument("--split", choices=["train", "test", "all"], default="train")
    parser.add_argument("--config", action="append", default=None, help="NAME[@CONF][:key=value,...]")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument(
        "--fold",
        type=int,
        default=None,
        help="Only this fold of the train half (the held-out photos of a `train-detector --holdout-fold` run).",
    )
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="Write (merge) the results into this JSON file.")
    args = parser.parse_args()
    if args.fold is not None and (args.split != "train" or args.folds < 2 or not 0 <= args.fold < args.folds):
        parser.error("--fold K needs --split train and 0 <= K < --folds (at least 2)")

    images = load_voc_dir(args.scenes / "annotations", args.scenes / "images")
    if args.split != "all":
        images = [i for i in images if scene_split(i.image_path.name) == args.split]
    if args.fold is not None:
        images = [i for i in images if scene_split(i.name) == "train" and scene_fold(i.name, args.folds) == args.fold]
    if args.limit:
        images = images[: args.limit]
    frames = [cv2.imread(str(i.image_path)) for i in images]
    frame = one_face_frame(images)
    results = {}
    for spec in args.config or ["blazeface"]:
        name, conf, options = parse_config(spec)
        detector = create_detector(name, min_score=conf, **options)
        row = evaluate(detector, images, frames)
        row["ms_640x480_one_face"] = frame_ms(detector, frame)
        results[spec] = row
        r = row["recall_ge32_iou30"]
        budget = row[f"recall_ge24_at_max_{MAX_FP_PER_IMAGE:g}_fp_per_image"]
        print(
            f"{spec:50s} recall>=24px@0.5 {row['recall_ge24_iou50']:.3f}  FP/img {row['fp_per_image_iou50']:.2f}  "
            f"AP {row['face_ap_iou50']:.3f}  >=32px@0.3 with {r['with_mask']:.3f} without {r['without_mask']:.3f} "
            f"incorrect {r['mask_weared_incorrect'] or 0:.3f}  {row['ms_per_scene']:.1f} ms/scene  "
            f"{row['ms_640x480_one_face']:.1f} ms/640x480  "
            f"at<={MAX_FP_PER_IMAGE:g}FP/img {budget['all']['recall']:.3f} (t {budget['all']['threshold']:.2f}) "
            f"sized {budget['sized']['recall']:.3f} (t {budget['sized']['threshold']:.2f})",
            flush=True,
        )
    if args.json:
        merge_results(
            args.json,
            "runs",
            results,
            split=args.split if args.fold is None else f"train fold {args.fold} of {args.folds}",
            images=len(images),
            machine={**machine(), "note": "shared CPU, other jobs running: timings are upper bounds"},
        )


if __name__ == "__main__":
    main()
