"""Build the three-class training folder (with_mask / without_mask / incorrect_mask) of ``maskwatch:default``.

Usage: python tools/build_3class_dataset.py ../shared/data/face-mask OUT [--scene-faces FACES] [--every 3] [--seed 0]

OUT gets one subfolder per source inside each class folder, as symbolic links to the real
images (nothing is copied) plus synthetic images:

* ``OUT/<class>/face-mask``: the face-mask crops (with_mask, without_mask);
* ``OUT/<class>/scenes``: ``--scene-faces``, the annotated faces of the scenes' train half cut by
  ``maskwatch collect-boxes`` (all three classes; the scenes' ``mask_weared_incorrect`` mapped to
  ``incorrect_mask`` there);
* ``OUT/<class>/synth``: ``maskwatch synth`` on every ``--every``-th without_mask photo, one correctly
  worn mask (→ with_mask) and one wrongly worn mask (→ incorrect_mask) per face. The correct ones
  keep the model from learning "drawn mask = incorrect". Synthetic files are named
  ``<source stem>__synth-...`` so the split keeps each source face and everything made from it on
  one side; ``OUT/synth.csv`` records how each was made.
"""

from __future__ import annotations

import argparse
import shutil
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
    parser.add_argument("--scene-faces", type=Path, help="collect-boxes output of the scenes' train half")
    parser.add_argument("--every", type=int, default=3, help="use every N-th without_mask photo as a synth source")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for cls in ("with_mask", "without_mask"):
        print(f"{cls}: linked {link_all(args.real / cls, args.out / cls / 'face-mask')} face-mask images")
    if args.scene_faces:
        for folder in sorted(p for p in args.scene_faces.iterdir() if p.is_dir()):
            print(f"{folder.name}: linked {link_all(folder, args.out / folder.name / 'scenes')} scene faces")
    with tempfile.TemporaryDirectory() as tmp:
        sources, made = Path(tmp) / "sources", Path(tmp) / "made"
        sources.mkdir()
        for path in sorted(p for p in (args.real / "without_mask").iterdir() if is_image_path(p))[:: args.every]:
            (sources / path.name).symlink_to(path.resolve())
        command = [sys.executable, "-m", "maskwatch", "synth", "--from", str(sources), "--out", str(made)]
        command += ["--correct", "1", "--incorrect", "1", "--seed", str(args.seed)]
        print("running:", " ".join(command[2:]))
        subprocess.run(command, check=True)
        for cls in ("with_mask", "incorrect_mask"):
            target = args.out / cls / "synth"
            target.mkdir(parents=True, exist_ok=True)
            for path in sorted((made / cls).iterdir()):
                if "__synth-" in path.name:  # synth links the originals beside what it made
                    shutil.move(path, target / path.name)
        shutil.move(made / "synth.csv", args.out / "synth.csv")


if __name__ == "__main__":
    main()
