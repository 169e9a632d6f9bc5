"""Large photos: do small faces survive when the photo is bigger than a detector's input?

A phone photo of a crowd has faces of the same pixel size as the scenes photos,
but many more pixels around them; a detector that shrinks every photo to a fixed
long side loses those faces. Lacking annotated large photos, this builds them:
``k`` × ``k`` mosaics of scenes photos at their own resolution (3 × 3 gives about
1200 × 1200 px), ground truth shifted along, and scores each detector
configuration on them (face AP and recall by size at IoU 0.5, false faces per
image, ms per mosaic) next to the same figures on the single photos. A large
photo can also hold big faces (a group photo, a portrait): the photos enlarged
``--upscale`` times (faces too) check that those are still found.

Tune on the TRAIN half; report on the test half only with settings fixed
beforehand. Example::

    python benchmarks/bench_large_photos.py --split train --config maskface-multiscale@0.1 \\
        --config "maskface-multiscale@0.1:large_max=0" --config maskface@0.5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from bench_scenes import SCENES, detect_all, machine, merge_results, parse_config

from maskwatch.data.annotations import AnnotatedImage, GroundTruth, load_voc_dir, scene_split
from maskwatch.detectors import create_detector
from maskwatch.evaluation.scene_metrics import compute_metrics, json_number


def mosaics(images: list[AnnotatedImage], k: int) -> list[tuple[np.ndarray, list[GroundTruth]]]:
    """Group photos k² at a time (file order) into k × k grids of equal cells, photos top-left in each cell."""
    frames = [cv2.imread(str(i.image_path)) for i in images]
    cell_h = max(f.shape[0] for f in frames)
    cell_w = max(f.shape[1] for f in frames)
    out = []
    for first in range(0, len(images) - k * k + 1, k * k):
        canvas = np.zeros((k * cell_h, k * cell_w, 3), np.uint8)
        truth: list[GroundTruth] = []
        for n in range(k * k):
            frame, item = frames[first + n], images[first + n]
            y0, x0 = (n // k) * cell_h, (n % k) * cell_w
            canvas[y0 : y0 + frame.shape[0], x0 : x0 + frame.shape[1]] = frame
            for g in item.objects:
                x1, y1, x2, y2 = g.box
                truth.append(GroundTruth(g.label, (x1 + x0, y1 + y0, x2 + x0, y2 + y0), g.difficult))
        out.append((canvas, truth))
    return out


def upscaled(images: list[AnnotatedImage], factor: float) -> list[tuple[np.ndarray, list[GroundTruth]]]:
    """Each photo enlarged ``factor`` times, its boxes with it."""
    out = []
    for item in images:
        image = cv2.imread(str(item.image_path))
        big = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        truth = [GroundTruth(g.label, tuple(v * factor for v in g.box), g.difficult) for g in item.objects]
        out.append((big, truth))
    return out


def score(detector, named: list[tuple[str, np.ndarray, list[GroundTruth]]]) -> dict:
    results, seconds = detect_all(detector, named)
    m = compute_metrics(results, 0.5)
    found24, total24 = m.recall_min_side
    return {
        "images": len(named),
        "face_ap_iou50": m.face.ap,
        "recall_ge24_iou50": found24 / max(1, total24),
        "recall_tiny_iou50": json_number(m.recall_for("tiny")),
        "recall_small_iou50": json_number(m.recall_for("small")),
        "fp_per_image_iou50": m.face.fp / max(1, len(named)),
        "ms_per_image": 1000 * seconds / max(1, len(named)),
    }


def _show(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=Path, default=SCENES)
    parser.add_argument("--split", choices=["train", "test"], default="train")
    parser.add_argument("--grid", type=int, default=3, help="Photos per mosaic side.")
    parser.add_argument("--upscale", type=float, default=4.0, help="Enlargement of the 'upscaled' photos.")
    parser.add_argument("--config", action="append", default=None, help="NAME[@CONF][:key=value,...]")
    parser.add_argument("--json", type=Path, default=None, help="Write (merge) the results into this JSON file.")
    args = parser.parse_args()

    images = load_voc_dir(args.scenes / "annotations", args.scenes / "images")
    images = [i for i in images if scene_split(i.image_path.name) == args.split]
    grids = mosaics(images, args.grid)
    used = images[: len(grids) * args.grid**2]
    singles = [(i.image_path.name, cv2.imread(str(i.image_path)), list(i.objects)) for i in used]
    large = [(f"mosaic{n}.png", image, truth) for n, (image, truth) in enumerate(grids)]
    enlarged = [(f"up_{i.image_path.name}", im, truth) for i, (im, truth) in zip(used, upscaled(used, args.upscale))]
    print(
        f"{len(used)} {args.split}-half photos; {len(grids)} mosaics of "
        f"{grids[0][0].shape[1]}x{grids[0][0].shape[0]} px"
    )
    results = {}
    for spec in args.config or ["maskface-multiscale@0.1"]:
        name, conf, options = parse_config(spec)
        detector = create_detector(name, min_score=conf, **options)
        row = {"photos": score(detector, singles), "mosaics": score(detector, large)}
        row["upscaled"] = score(detector, enlarged)
        results[spec] = row
        for kind in ("photos", "mosaics", "upscaled"):
            r = row[kind]
            print(
                f"{spec:55s} {kind:8s} AP {r['face_ap_iou50']:.3f}  recall>=24 {r['recall_ge24_iou50']:.3f}  "
                f"small {_show(r['recall_small_iou50'])}  tiny {_show(r['recall_tiny_iou50'])}  "
                f"FP/image {r['fp_per_image_iou50']:.2f}  {r['ms_per_image']:.0f} ms",
                flush=True,
            )
    if args.json:
        merge_results(
            args.json,
            "runs",
            results,
            split=args.split,
            grid=args.grid,
            mosaics=len(grids),
            upscale=args.upscale,
            machine=machine(),
        )


if __name__ == "__main__":
    main()
