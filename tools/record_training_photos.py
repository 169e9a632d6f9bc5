"""Record in a model's metadata which annotated photos it learnt from (``trained_on_photos``).

Usage: python tools/record_training_photos.py META.json IMAGES ANNOTATIONS --split train|all

META.json is a bundle's ``bundle.json`` or a detector's JSON (``maskface.json``, ``yunet_mask.json``).
``maskwatch train`` (through ``collect-boxes``' records) and ``train-detector`` write this record
themselves; this tool adds it to a model made before they did, or from crops cut without
``collect-boxes``. Existing digests are kept.
``evaluate-scenes`` then warns when it scores the model on those photos.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from maskwatch.data.annotations import load_annotations, select_split
from maskwatch.data.provenance import TRAINED_ON, photo_digests, recorded_digests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("meta", type=Path, help="bundle.json or a detector's JSON")
    parser.add_argument("images", type=Path)
    parser.add_argument("annotations", type=Path)
    parser.add_argument("--split", required=True, choices=("train", "all"), help="the photos the model trained on")
    args = parser.parse_args()
    meta = json.loads(args.meta.read_text(encoding="utf-8"))
    photos = select_split(load_annotations(args.annotations, args.images), args.split)
    digests = sorted(recorded_digests(meta) | set(photo_digests(p.image_path for p in photos)))
    meta[TRAINED_ON] = digests
    args.meta.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"{args.meta}: {len(digests)} photos recorded ({len(photos)} of split {args.split})")


if __name__ == "__main__":
    main()
