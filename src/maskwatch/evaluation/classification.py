"""``maskwatch evaluate``: a bundle on any folder dataset, cropped exactly as ``detect`` crops.

Inference only (ONNX Runtime): no TensorFlow needed. Reuses the dataset scanner,
the face-crop cache and the report writer of training, so a training run's test
report can be reproduced on its own split or on data from another source.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maskwatch.data.dataset import (
    Dataset,
    ImageRecord,
    check_out_outside_dataset,
    class_folders,
    identical_across_classes,
    read_manifest,
    scan_dataset,
)
from maskwatch.data.facecache import FaceCache, FaceCrops, cache_root
from maskwatch.errors import InputError
from maskwatch.evaluation.reports import Evaluation, write_evaluation
from maskwatch.inference.bundle import Bundle, load_bundle
from maskwatch.inference.classifier import MaskClassifier
from maskwatch.media.files import prepare_output_folder

SOURCE_RULES: tuple[tuple[str, str], ...] = (
    (r"__synth", "synthetic"),
    (r"__box-\d+$", "box-annotated photos"),
    (r"^augmented_image_\d+$", "augmented copies"),
    (r"^\d+_\d+_", "RMFD-style crops"),
)
"""Name patterns that tell sources apart in a flat class folder (see ../shared/data/face-mask/SOURCE.md)."""


def source_of(record: ImageRecord) -> str:
    """A subfolder inside the class folder names the source; else a filename family; else ``other``."""
    parts = Path(record.path).parts
    if len(parts) > 2:
        return parts[1]
    stem = Path(record.path).stem
    for pattern, name in SOURCE_RULES:
        if re.search(pattern, stem):
            return name
    return "other"


def load_eval_dataset(folder: str | Path, classes: list[str], manifest: str | None, split: str | None) -> Dataset:
    """The images to score: a whole folder dataset, or one split of a training run's manifest."""
    found = [p.name for p in class_folders(folder, min_classes=1)]
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise InputError(f"{folder}: class folders {unknown} are not classes of the model ({', '.join(classes)})")
    if manifest:
        dataset = read_manifest(manifest, folder, found)
        if split:
            dataset = Dataset(dataset.root, dataset.classes, [r for r in dataset.records if r.split == split])
    else:
        dataset, _ = scan_dataset(folder, require_images=False, min_classes=1)
    if not dataset.records:
        raise InputError(f"{folder}: no readable images to evaluate")
    return dataset


@dataclass
class FolderPredictions:
    """A bundle's probabilities for a folder dataset's images (sorted by path), with their crops."""

    records: list[ImageRecord]
    crops: FaceCrops
    probabilities: np.ndarray
    skipped: list[tuple[str, str]]
    """Unreadable files, with the reason."""


def classify_folder(
    bundle: Bundle,
    folder: str | Path,
    manifest: str | None = None,
    split: str | None = None,
    cache: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FolderPredictions:
    """Classify every image of a folder dataset, cut as training cuts it (cached crops)."""
    dataset = load_eval_dataset(folder, list(bundle.meta.classes), manifest, split)
    records = sorted(dataset.records, key=lambda r: r.path)
    meta = bundle.meta
    cache_of_crops = FaceCache(cache_root(cache), meta.input_size, meta.crop.margin, meta.crop.detector)
    crops = cache_of_crops.crops(dataset, records, progress)
    classifier = MaskClassifier(bundle)
    probabilities = np.concatenate([classifier.predict(crops.images[i : i + 64]) for i in range(0, len(records), 64)])
    return FolderPredictions(records, crops, probabilities, list(dataset.skipped))


def evaluate_bundle(
    model: str | Path | None,
    folder: str | Path,
    out: str | Path | None = None,
    manifest: str | None = None,
    split: str | None = None,
    cache: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Score a bundle on a folder dataset; writes the report files to ``out`` when given; returns the summary."""
    if out is not None:
        check_out_outside_dataset(out, folder)
        if (Path(out) / "config.json").is_file():  # trainer.CONFIG_FILE: a run whose reports these would replace
            raise InputError(f"{out}: holds a training run whose reports this would overwrite; choose another --out")
        prepare_output_folder(out)
    bundle = load_bundle(model)
    classes = list(bundle.meta.classes)
    scored = classify_folder(bundle, folder, manifest, split, cache, progress)
    records = scored.records
    evaluation = Evaluation(
        classes,
        np.array([classes.index(r.label) for r in records]),
        scored.probabilities,
        sources=[source_of(r) for r in records],
    )
    summary = evaluation.summary()
    summary["no_face"] = scored.crops.no_face
    summary["skipped"] = [f"{p}: {why}" for p, why in scored.skipped]
    summary["identical_across_classes"] = identical_across_classes(records)
    if out is not None:
        write_evaluation(evaluation, out, images=scored.crops.images, names=[r.path for r in records])
    return summary
