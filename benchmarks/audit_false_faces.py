"""Contact sheets of a detector's unmatched detections on the scenes TRAIN half, for a hand audit.

The recall bar's false-positive budget counts every detection that matches no
annotated face, but crowd photos carry unannotated faces. This draws a random
sample of the unmatched detections (IoU < 0.1 with every face; ground truth in
green, the detection in red, its shorter side and score underneath) so a person
can count what they are. The sheets show dataset photos: write them outside the
repository. Example::

    python benchmarks/audit_false_faces.py --config maskface-multiscale@0.3 --out /tmp/audit
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import cv2
import numpy as np
from bench_scenes import SCENES, parse_config

from maskwatch.data.annotations import load_voc_dir, scene_split
from maskwatch.detectors import create_detector
from maskwatch.evaluation.scene_metrics import match, shorter_side
from maskwatch.inference.boxes import iou_matrix

TILE = 250
PER_SHEET = 15


def unmatched(detector, images) -> list[tuple[Path, list[float], float, float, np.ndarray]]:
    """(image, box, score, best IoU with a face, ground-truth boxes) per detection that matched no face at 0.5."""
    found = []
    for item in images:
        detections = detector.detect(cv2.imread(str(item.image_path)))
        boxes = np.array([d.box for d in detections], np.float64).reshape(-1, 4)
        scores = np.array([d.score for d in detections], np.float64)
        gt = np.array([o.box for o in item.objects], np.float64).reshape(-1, 4)
        status, _ = match(gt, np.zeros(len(gt), bool), boxes, scores, 0.5)
        overlaps = iou_matrix(boxes, gt) if len(gt) and len(boxes) else np.zeros((len(boxes), 1))
        found += [
            (item.image_path, boxes[k].tolist(), float(scores[k]), float(overlaps[k].max()), gt)
            for k in np.nonzero(status == 0)[0]
        ]
    return found


def tile(path: Path, box: list[float], score: float, gt: np.ndarray, index: int) -> np.ndarray:
    image = cv2.imread(str(path))
    x1, y1, x2, y2 = box
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, max(24.0, 1.5 * max(x2 - x1, y2 - y1))
    left, top = int(max(cx - half, 0)), int(max(cy - half, 0))
    crop = image[top : int(min(cy + half, image.shape[0])), left : int(min(cx + half, image.shape[1]))].copy()
    zoom = (TILE - 10) / max(crop.shape[:2])
    crop = cv2.resize(crop, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)

    def draw(b, colour, width):
        p1 = (int((b[0] - left) * zoom), int((b[1] - top) * zoom))
        cv2.rectangle(crop, p1, (int((b[2] - left) * zoom), int((b[3] - top) * zoom)), colour, width)

    for g in gt:
        draw(g, (0, 255, 0), 1)
    draw(box, (0, 0, 255), 2)
    crop = cv2.copyMakeBorder(crop, 0, TILE - crop.shape[0], 0, TILE - crop.shape[1], cv2.BORDER_CONSTANT)
    label = f"{index} {shorter_side(box):.0f}px {score:.2f}"
    cv2.putText(crop, label, (3, TILE - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1)
    return crop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=Path, default=SCENES)
    parser.add_argument("--config", default="maskface-multiscale@0.3", help="NAME[@CONF][:key=value,...]")
    parser.add_argument("--sample", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    images = load_voc_dir(args.scenes / "annotations", args.scenes / "images")
    images = [i for i in images if scene_split(i.image_path.name) == "train"]
    name, conf, options = parse_config(args.config)
    found = unmatched(create_detector(name, min_score=conf, **options), images)
    apart = [f for f in found if f[3] < 0.1]
    sides = np.array([shorter_side(f[1]) for f in apart])
    print(
        f"{len(found)} unmatched detections on {len(images)} photos ({len(found) / len(images):.2f} per photo); "
        f"{len(found) - len(apart)} overlap a face at IoU 0.1-0.5; of the other {len(apart)}: "
        f"{(sides < 16).sum()} under 16 px, {((sides >= 16) & (sides < 24)).sum()} 16-24 px, "
        f"{(sides >= 24).sum()} larger"
    )
    random.seed(args.seed)
    sample = random.sample(apart, min(args.sample, len(apart)))
    tiles = [tile(path, box, score, gt, i) for i, (path, box, score, _, gt) in enumerate(sample)]
    args.out.mkdir(parents=True, exist_ok=True)
    for first in range(0, len(tiles), PER_SHEET):
        sheet = tiles[first : first + PER_SHEET]
        sheet += [np.zeros_like(tiles[0])] * (PER_SHEET - len(sheet))
        rows = [np.hstack(sheet[r : r + 5]) for r in range(0, PER_SHEET, 5)]
        cv2.imwrite(str(args.out / f"sheet_{first // PER_SHEET}.png"), np.vstack(rows))
    print(f"wrote {len(tiles)} crops to {args.out}")


if __name__ == "__main__":
    main()
