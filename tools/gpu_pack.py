"""Pack what ``train-detector`` needs on an offline GPU host into ``.gpu/`` (ignored by git; copy it along).

Such a host may reach no network and get only the repository's working tree, so ``../shared`` stays
behind; one with JAX and PyTorch but no TensorFlow (whose wheel is large to copy) trains on Keras' JAX backend.
This writes, from ``../shared``, never into the repository's history:

- ``.gpu/scenes``: the train half of the scenes (photos and annotations; the test half stays here);
- ``.gpu/face-mask``: the crops ``train-detector`` would load (seed 0, ``--crops-per-class``), under plain
  names (the originals hold spaces and non-ASCII characters): the same crops, not in the same order, so the
  samples differ from a local run's;
- ``.gpu/weights``: the MobileNetV2 α 0.35 backbone weights;
- ``.gpu/wheels``: Keras and the two of its dependencies such a host may lack, for Python 3.12.

Then, on the GPU host (with ``.gpu/`` copied beside the working tree)::

    bash tools/gpu_train_detector.sh --holdout-fold 0 --steps 3000 --batch 64 --size 384 --lr 4e-3

trains on Keras' JAX backend with a worker process per spare core (nproc - 2) and writes the checkpoint under
``$RUN_DIR`` (``runs/run`` unless set); back here, the export command it prints (a ``--resume`` of a
writable copy) exports it to ONNX.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from maskwatch.data.annotations import load_voc_dir, scene_split
from maskwatch.training.detector.data import RMFD_NAME

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
WHEELS = ("keras==3.15.1", "namex==0.1.0", "optree==0.20.0")
"""Keras (pure Python) and the dependencies a JAX-only GPU image may lack."""
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def pack_scenes(source: Path, target: Path) -> int:
    """Copies (not links: links do not travel) of the train half's photos and annotations."""
    for sub in ("images", "annotations"):
        (target / sub).mkdir(parents=True, exist_ok=True)
    items = [i for i in load_voc_dir(source / "annotations", source / "images") if scene_split(i.name) == "train"]
    for item in items:
        shutil.copy2(item.image_path, target / "images" / item.image_path.name)
        shutil.copy2(source / "annotations" / f"{item.image_path.stem}.xml", target / "annotations")
    return len(items)


def pack_crops(source: Path, target: Path, per_class: int, seed: int) -> int:
    """The crops ``load_face_crops`` draws with ``seed``, renamed ``<k>_0_crop.jpg`` (RMFD-like, plain ASCII)."""
    rng = np.random.default_rng(seed)
    count = 0
    for folder in ("with_mask", "without_mask"):
        files = sorted(p for p in (source / folder).glob("*.jpg") if RMFD_NAME.match(p.name))
        rng.shuffle(files)
        (target / folder).mkdir(parents=True, exist_ok=True)
        kept = 0
        for k, path in enumerate(files[:per_class]):
            image = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_COLOR)
            if image is None or min(image.shape[:2]) < 24:
                continue  # load_face_crops skips these too
            shutil.copy2(path, target / folder / f"{k:05d}_0_crop.jpg")
            kept += 1
        count += kept
    return count


def fetch_wheels(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
         "3.12", "--implementation", "cp", *platforms, "-d", str(target), *WHEELS],
        check=True,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--out", type=Path, default=ROOT / ".gpu")
    parser.add_argument("--crops-per-class", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0, help="train-detector's --seed (it draws the crops)")
    parser.add_argument("--no-wheels", action="store_true", help="Skip the download (no network here).")
    args = parser.parse_args()
    for folder in ("scenes", "face-mask", "weights", *(() if args.no_wheels else ("wheels",))):
        shutil.rmtree(args.out / folder, ignore_errors=True)  # a repack never mixes in an earlier one's files
    scenes = pack_scenes(args.shared / "data" / "scenes", args.out / "scenes")
    crops = pack_crops(args.shared / "data" / "face-mask", args.out / "face-mask", args.crops_per_class, args.seed)
    (args.out / "weights").mkdir(parents=True, exist_ok=True)
    shutil.copy2(args.shared / "weights" / "mobilenet_v2_0.35_no_top.weights.h5", args.out / "weights")
    if not args.no_wheels:
        fetch_wheels(args.out / "wheels")
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    wheels = "" if args.no_wheels else ", wheels"
    print(f"{args.out}: {scenes} train-half scenes, {crops} face crops, weights{wheels}; {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
