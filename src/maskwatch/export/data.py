"""Calibration and parity data: face crops for a classifier bundle, scene photos for a detector.

Calibration only ever sees training images (a bundle's train split, the scenes' train half); parity is measured
on images neither training nor calibration saw (the test split, the scenes' test half).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maskwatch.data.annotations import AnnotatedImage, load_voc_dir, select_split
from maskwatch.data.dataset import Dataset, class_folders, make_split, read_manifest, scan_dataset, write_manifest
from maskwatch.data.facecache import FaceCache, cache_root
from maskwatch.errors import InputError
from maskwatch.inference.bundle import Bundle
from maskwatch.media.imageio import read_image

Progress = Callable[[str, int, int], None]
"""(stage, done, total): how long work reports itself."""

RUN_MANIFEST = "split.csv"
"""A training run's split manifest, beside its ``bundle`` folder."""


@dataclass
class CropSets:
    """Face crops (N×S×S×3 RGB uint8) to calibrate on and to measure parity on, with the latter's labels."""

    calibration: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray
    description: dict[str, Any]


def _split_of(bundle: Bundle, dataset: str | Path, manifest: str | Path | None, progress: Progress) -> tuple:
    """The bundle's split: ``manifest``, else its training run's ``split.csv``, else the split ``train`` would make
    of ``dataset`` now (checked against the hash the bundle recorded)."""
    classes = [p.name for p in class_folders(dataset, min_classes=1)]
    unknown = sorted(set(classes) - set(bundle.classes))
    if unknown:
        raise InputError(
            f"{dataset}: class folders {unknown} are not classes of the model ({', '.join(bundle.classes)})"
        )
    run_manifest = Path(bundle.source).parent / RUN_MANIFEST
    if manifest is None and run_manifest.is_file():
        manifest = run_manifest
    if manifest is not None:
        if not Path(manifest).is_file():
            raise InputError(f"{manifest}: no such split manifest")
        return read_manifest(manifest, dataset, classes), f"manifest {manifest}"
    scanned, mirrored = scan_dataset(dataset, progress=lambda i, n: progress("Scanning images", i, n), min_classes=1)
    split = make_split(scanned, mirrored)
    with tempfile.TemporaryDirectory(prefix="maskwatch-split-") as tmp:
        sha = write_manifest(split, Path(tmp) / RUN_MANIFEST)
    if sha == bundle.meta.split_manifest_sha256:
        return split, f"the bundle's own split of {dataset} (recomputed; SHA-256 {sha[:12]}… as recorded)"
    return split, (
        f"a fresh split of {dataset} (SHA-256 {sha[:12]}…, not the bundle's recorded split: its test images may "
        "include training images)"
    )


def _sample(records: list, limit: int, seed: int) -> list:
    """Up to ``limit`` records, a seeded sample spread over the classes as they come."""
    records = sorted(records, key=lambda r: r.path)
    if len(records) <= limit:
        return records
    picks = np.random.default_rng(seed).permutation(len(records))[:limit]
    return [records[i] for i in sorted(picks)]


def classifier_crops(
    bundle: Bundle,
    dataset: str | Path,
    manifest: str | Path | None = None,
    cache: str | None = None,
    calibration_images: int = 256,
    progress: Progress | None = None,
) -> CropSets:
    """Train-split crops to calibrate on and the test split's crops, cut as ``detect`` cuts them (cached)."""
    progress = progress or (lambda stage, i, n: None)
    if not Path(dataset).is_dir():
        raise InputError(f"{dataset}: calibration dataset not found (a folder with one subfolder per class)")
    split, where = _split_of(bundle, dataset, manifest, progress)
    meta = bundle.meta
    faces = FaceCache(cache_root(cache), meta.input_size, meta.crop.margin, meta.crop.detector)
    train = _sample([r for r in split.records if r.split == "train"], calibration_images, seed=0)
    test = sorted((r for r in split.records if r.split == "test"), key=lambda r: r.path)
    if not train:
        raise InputError(f"{dataset}: no training images to calibrate on ({where})")
    if not test:
        raise InputError(f"{dataset}: no test images to measure parity on ({where})")
    subset = Dataset(split.root, split.classes, train + test)
    calibration = faces.crops(subset, train, lambda i, n: progress("Face crops (calibration)", i, n)).images
    test_crops = faces.crops(subset, test, lambda i, n: progress("Face crops (test)", i, n)).images
    labels = np.array([bundle.classes.index(r.label) for r in test])
    description = {
        "dataset": str(dataset),
        "split": where,
        "calibration": f"{len(train)} face crops sampled (seed 0) from the train split",
        "test": f"{len(test)} face crops of the test split",
    }
    return CropSets(calibration, test_crops, labels, description)


@dataclass
class ScenePhotos:
    """Train-half photos to calibrate a detector on; test-half photos (with their boxes) to measure it on."""

    calibration: list[np.ndarray]
    test: list[AnnotatedImage]
    description: dict[str, Any]


def scene_photos(scenes: str | Path, calibration_images: int = 64) -> ScenePhotos:
    """The scenes' fixed split (even photo numbers train, odd test), as ``evaluate-scenes`` and training use it."""
    scenes = Path(scenes)
    if not (scenes / "annotations").is_dir() or not (scenes / "images").is_dir():
        raise InputError(f"{scenes}: calibration photos not found (a folder with images/ and annotations/)")
    items = load_voc_dir(scenes / "annotations", scenes / "images")
    train, test = select_split(items, "train"), select_split(items, "test")
    if not train or not test:
        raise InputError(f"{scenes}: needs photos in both halves of the split (train {len(train)}, test {len(test)})")
    step = max(1, len(train) // calibration_images)
    chosen = train[::step][:calibration_images]
    description = {
        "scenes": str(scenes),
        "calibration": f"{len(chosen)} photos of the train half (one in {step})",
        "test": f"{len(test)} photos of the test half",
    }
    return ScenePhotos([read_image(item.image_path) for item in chosen], test, description)
