"""False faces on photos with no human face: scikit-image's sample images.

The scenes measure false positives only among crowds; a detector that calls coins, lamps,
galaxies or a cat a face fails a user on other footage. scikit-image ships a set of face-free
photos and renders (coins, a clock, the Hubble deep field, a cat, a rocket, text, textures...),
so anyone can rerun this. Every detection counts as a false face. Example::

    python benchmarks/bench_facefree.py --config blazeface --config maskface --config maskface@0.6 \\
        --json benchmarks/results/facefree.json

Caveat: maskface's ``--negative-prob`` distractors (discs, glowing blobs) were designed after
looking at its false faces here (coins, galaxies), so this is not an unbiased test set for it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import skimage
import skimage.data
from bench_scenes import machine, merge_results, parse_config

from maskwatch.detectors import create_detector

FACE_FREE = [
    "binary_blobs",
    "brick",
    "chelsea",
    "checkerboard",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
    "shepp_logan_phantom",
    "microaneurysms",
    "stereo_motorcycle",
    "cell",
]
"""Every sample bundled with scikit-image except those showing a person (astronaut, camera, lfw_subset)."""


def face_free_images() -> dict[str, np.ndarray]:
    """name → BGR uint8 image, float and grey samples converted the way a photo would be."""
    images = {}
    for name in FACE_FREE:
        image = getattr(skimage.data, name)()
        if isinstance(image, tuple):  # stereo pairs
            image = image[0]
        image = skimage.util.img_as_ubyte(image) if image.dtype != np.uint8 else image
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGR)
        else:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        images[name] = np.ascontiguousarray(image)
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", required=True, help="NAME[@CONF][:key=value,...]")
    parser.add_argument("--json", type=Path, help="Merge the results into this file (keyed by config).")
    args = parser.parse_args()

    images = face_free_images()
    results = {}
    for spec in args.config:
        name, conf, options = parse_config(spec)
        detector = create_detector(name, min_score=conf, **options)
        per_image = {key: len(detector.detect(image)) for key, image in images.items()}
        results[spec] = {
            "false_faces": sum(per_image.values()),
            "images_with_false_faces": sum(1 for n in per_image.values() if n),
            "per_image": {key: n for key, n in per_image.items() if n},
        }
        shown = ", ".join(f"{key} {n}" for key, n in sorted(per_image.items(), key=lambda kv: -kv[1]) if n)
        print(f"{spec:28s} {results[spec]['false_faces']:3d} false faces on {len(images)} images  ({shown})")
    if args.json:
        merge_results(
            args.json,
            "results",
            results,
            images={key: list(image.shape[:2]) for key, image in images.items()},
            skimage=skimage.__version__,
            machine=machine(),
        )


if __name__ == "__main__":
    main()
