"""Face detection on the scenes photos, class-agnostic: the numbers behind detector settings.

For each detector configuration: face recall at IoU ≥ 0.5 for faces ≥ 24 px (the
issue-9 bar), false positives per image at IoU 0.5, recall per ground-truth class at
IoU ≥ 0.3 for faces ≥ 32 px (the issue-9 table), face AP at IoU 0.5, ms per scene
photo, and ms per 640×480 frame with one face (the fps bar).

Tune on the TRAIN half (even image numbers); report on the test half only with
settings fixed beforehand. Examples::

    python benchmarks/bench_scenes.py --split train --config blazeface --config blazeface@0.3
    python benchmarks/bench_scenes.py --split test --json benchmarks/results/scenes.json \\
        --config blazeface --config "blazeface-tiled" --config "maskface"

A config is ``NAME[@CONF][:key=value,...]``, e.g. ``blazeface-tiled@0.5:tiles=128|192,overlap=0.3``.
Set MASKWATCH_THREADS to fix the ONNX Runtime threads (2 for the issue's 2-core bar).
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

from maskwatch.annotations import AnnotatedImage, load_voc_dir, scene_split
from maskwatch.detectors import create_detector
from maskwatch.detectors.base import iou_matrix

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


def greedy_match(det: np.ndarray, scores: np.ndarray, gt: np.ndarray, iou: float) -> tuple[np.ndarray, np.ndarray]:
    """VOC-style: detections by score, each takes its best-overlapping ground truth if free and IoU ≥ ``iou``.

    Returns (ground truth matched: bool per gt, detection matched: index of gt or -1).
    """
    gt_hit = np.zeros(len(gt), bool)
    det_gt = np.full(len(det), -1)
    if len(det) == 0 or len(gt) == 0:
        return gt_hit, det_gt
    overlaps = iou_matrix(det, gt)
    for i in np.argsort(-scores, kind="stable"):
        j = int(np.argmax(overlaps[i]))
        if overlaps[i, j] >= iou and not gt_hit[j]:
            gt_hit[j] = True
            det_gt[i] = j
    return gt_hit, det_gt


def face_ap(records: list[tuple[float, bool]], n_gt: int) -> float:
    if not records or n_gt == 0:
        return 0.0
    records.sort(key=lambda r: -r[0])
    tp = np.cumsum([r[1] for r in records])
    fp = np.cumsum([not r[1] for r in records])
    recall, precision = tp / n_gt, tp / np.maximum(tp + fp, 1)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    for k in range(len(mpre) - 2, -1, -1):
        mpre[k] = max(mpre[k], mpre[k + 1])
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def evaluate(detector, images: list[AnnotatedImage], frames: list[np.ndarray]) -> dict:
    hits24 = total24 = fp50 = 0
    by_class = {c: [0, 0] for c in CLASSES}
    ap_records: list[tuple[float, bool]] = []
    n_gt = 0
    seconds = 0.0
    for item, image in zip(images, frames):
        t0 = time.perf_counter()
        found = detector.detect(image)
        seconds += time.perf_counter() - t0
        det = np.array([d.box for d in found], np.float32).reshape(-1, 4)
        scores = np.array([d.score for d in found], np.float32)
        gt = np.array([o.box for o in item.objects], np.float32).reshape(-1, 4)
        labels = [o.label for o in item.objects]
        side = np.minimum(gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]) if len(gt) else np.zeros(0)
        hit50, det50 = greedy_match(det, scores, gt, 0.5)
        hit30, _ = greedy_match(det, scores, gt, 0.3)
        total24 += int((side >= 24).sum())
        hits24 += int((hit50 & (side >= 24)).sum())
        fp50 += int((det50 < 0).sum())
        for label, s, h in zip(labels, side, hit30):
            if s >= 32 and label in by_class:
                by_class[label][0] += int(h)
                by_class[label][1] += 1
        n_gt += len(gt)
        ap_records += [(float(sc), bool(j >= 0)) for sc, j in zip(scores, det50)]
    return {
        "recall_ge24_iou50": hits24 / max(1, total24),
        "faces_ge24": total24,
        "fp_per_image_iou50": fp50 / max(1, len(images)),
        "recall_ge32_iou30": {c: (h / n if n else None) for c, (h, n) in by_class.items()},
        "faces_ge32": {c: n for c, (_, n) in by_class.items()},
        "face_ap_iou50": face_ap(ap_records, n_gt),
        "ms_per_scene": 1000 * seconds / max(1, len(images)),
    }


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
    parser.add_argument("--json", type=Path, default=None, help="Write (merge) the results into this JSON file.")
    args = parser.parse_args()

    images = load_voc_dir(args.scenes / "annotations", args.scenes / "images")
    if args.split != "all":
        images = [i for i in images if scene_split(i.image_path.name) == args.split]
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
        print(
            f"{spec:50s} recall>=24px@0.5 {row['recall_ge24_iou50']:.3f}  FP/img {row['fp_per_image_iou50']:.2f}  "
            f"AP {row['face_ap_iou50']:.3f}  >=32px@0.3 with {r['with_mask']:.3f} without {r['without_mask']:.3f} "
            f"incorrect {r['mask_weared_incorrect'] or 0:.3f}  {row['ms_per_scene']:.1f} ms/scene  "
            f"{row['ms_640x480_one_face']:.1f} ms/640x480",
            flush=True,
        )
    if args.json:
        data = json.loads(args.json.read_text()) if args.json.is_file() else {}
        data.setdefault("runs", {})
        data["split"] = args.split
        data["images"] = len(images)
        data["machine"] = {
            "cpu_count": os.cpu_count(),
            "onnx_threads": os.environ.get("MASKWATCH_THREADS", "default"),
            "platform": platform.platform(),
            "note": "shared CPU, other jobs running: timings are upper bounds",
        }
        data["runs"].update(results)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
