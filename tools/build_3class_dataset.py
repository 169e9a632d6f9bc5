"""Build the 3-class training folder (with_mask / without_mask / incorrect_mask) used for maskwatch:3class.

Usage: python tools/build_3class_dataset.py ../shared/data/face-mask OUT [--every 3] [--seed 0]

OUT gets symbolic links to the real images (nothing is copied) plus synthetic images:
``maskwatch synth`` on every ``--every``-th without_mask photo, one correctly worn mask
(→ with_mask) and one wrongly worn mask (→ incorrect_mask) per face. Synthetic files are
named ``<source stem>__synth-...`` so the split keeps each source face and everything made
from it on one side; ``OUT/synth.csv`` records how each was made.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from maskwatch.media.imageio import is_image_path


def link_all(source: Path, target: Path) -> int:
    target.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in sorted(source.iterdir()):
        if is_image_path(path) and not (target / path.name).exists():
            (target / path.name).symlink_to(path.resolve())
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("real", type=Path, help="folder with with_mask/ and without_mask/")
    parser.add_argument("out", type=Path)
    parser.add_argument("--every", type=int, default=3, help="use every N-th without_mask photo as a synth source")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for cls in ("with_mask", "without_mask"):
        print(f"{cls}: linked {link_all(args.real / cls, args.out / cls)} real images")
    with tempfile.TemporaryDirectory() as tmp:
        sources = sorted(p for p in (args.real / "without_mask").iterdir() if is_image_path(p))[:: args.every]
        for path in sources:
            (Path(tmp) / path.name).symlink_to(path.resolve())
        command = [
            sys.executable,
            "-m",
            "maskwatch",
            "synth",
            "--from",
            tmp,
            "--out",
            str(args.out),
            "--correct",
            "1",
            "--incorrect",
            "1",
            "--seed",
            str(args.seed),
        ]
        print("running:", " ".join(command[2:]))
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
