"""Close-up faces: in how many face-mask photos does each detector find a face?

The scenes photos are crowds with mostly small faces; a webcam or a portrait shows one
large face. ``../shared/data/face-mask`` is the close-up case: one face per photo, from
a tight RMFD crop (the face fills the frame) to a web photo of a person. A detector that
misses close-ups cannot be the default, and its misses also decide which crops the
classifier trains on (a photo with no face found is used whole).

Reported per detector, class and source: the share of photos with at least one face at
the detector's threshold. maskface's training pastes up to 800 RMFD crops per class, so
the ``web`` photos are the ones no detector here has trained on. Example::

    python benchmarks/bench_closeups.py --config blazeface --config maskface \\
        --json benchmarks/results/closeups.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from bench_scenes import machine, merge_results, parse_config

from maskwatch.detectors import create_detector
from maskwatch.media.imageio import is_image_path
from maskwatch.training.detector.data import RMFD_NAME

FACE_MASK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "face-mask"


def photos(root: Path) -> list[tuple[str, str, Path]]:
    """(class, source, path) for every image under root/<class>/, source 'rmfd' or 'web'."""
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            if is_image_path(path):
                items.append((folder.name, "rmfd" if RMFD_NAME.match(path.name) else "web", path))
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=FACE_MASK)
    parser.add_argument("--config", action="append", required=True, help="NAME[@CONF][:key=value,...]")
    parser.add_argument("--json", type=Path, help="Merge the results into this file (keyed by config).")
    args = parser.parse_args()

    items = photos(args.data)
    images = [(cls, src, cv2.imdecode(np.fromfile(str(p), np.uint8), cv2.IMREAD_COLOR)) for cls, src, p in items]
    images = [(cls, src, image) for cls, src, image in images if image is not None]
    results = {}
    for spec in args.config:
        name, conf, options = parse_config(spec)
        detector = create_detector(name, min_score=conf, **options)
        found: dict[str, list[int]] = {}
        start = time.perf_counter()
        for cls, src, image in images:
            hit = int(bool(detector.detect(image)))
            for key in (f"{cls}/{src}", cls, "all"):
                counts = found.setdefault(key, [0, 0])
                counts[0] += hit
                counts[1] += 1
        seconds = time.perf_counter() - start
        results[spec] = {
            "found": {key: round(hit / total, 4) for key, (hit, total) in sorted(found.items())},
            "photos": {key: total for key, (_, total) in sorted(found.items())},
            "ms_per_photo": round(1000 * seconds / len(images), 2),
        }
        shown = "  ".join(f"{key} {hit / total:.3f}" for key, (hit, total) in sorted(found.items()))
        print(f"{spec:24s} {shown}")
    if args.json:
        merge_results(args.json, "results", results, machine=machine(), data=str(args.data.name))


if __name__ == "__main__":
    main()
