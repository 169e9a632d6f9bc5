"""``maskwatch train``: folder dataset → face crops → split → transfer learning → reports → model bundle.

Recipe (fast on a 2-core CPU): crops are cut by the same detector and crop as
``detect`` and cached; the head is trained on cached frozen-backbone features of
the crops and of a few augmented copies; then the top of the backbone is
fine-tuned on augmented crops at a lower rate, one checkpoint per epoch, keeping
the weights with the best validation loss.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maskwatch.data.dataset import (
    DEFAULT_FRACTIONS,
    Dataset,
    check_out_outside_dataset,
    class_folders,
    describe_identical,
    identical_across_classes,
    make_split,
    read_manifest,
    scan_dataset,
    write_manifest,
)
from maskwatch.data.facecache import FaceCache, cache_root, check_cache_writable
from maskwatch.data.provenance import crop_photo_digest
from maskwatch.detectors import detector_names
from maskwatch.errors import InputError, ModelError
from maskwatch.evaluation.classification import source_of
from maskwatch.evaluation.reports import CURVES_PNG, REPORT_TXT, plot_curves, write_evaluation
from maskwatch.media.files import make_folder, read_json_input
from maskwatch.training.classifier import (
    BACKBONE_MIN_SIZE,
    PRETRAINABLE,
    TrainingInterrupted,
    check_backbone_name,
    resolve_weights,
)
from maskwatch.training.classifier.shared import (
    CHECKPOINT_DIR,
    STATE_FILE,
    Reporter,
    SilentReporter,
    Split,
    TrainConfig,
)
from maskwatch.training.common import write_json

CONFIG_FILE = "config.json"
MANIFEST_FILE = "split.csv"
BUNDLE_DIR = "bundle"
METRICS_FILE = "metrics.json"
MAX_SIZE = 1024
"""Largest classifier input side (``--size``)."""
ALPHA_RANGE = (0.1, 1.4)
"""MobileNet width multipliers (``--alpha``): Keras ships ImageNet weights for 0.25 to 1.4."""
NO_TEST_NOTE = "no test images (test fraction 0 or too few images): test evaluation skipped"


def check_config(config: TrainConfig) -> None:
    """Every cheap check of a run's settings, each a one-line error, before anything is written or TensorFlow loads.

    Last, the face-crop cache folder is created (it is shared by runs, not part of this one) and probed.
    """
    check_backbone_name(config.backbone)
    low = BACKBONE_MIN_SIZE[config.backbone]
    if not low <= config.size <= MAX_SIZE:
        raise InputError(f"--size of {config.backbone} must be {low} to {MAX_SIZE} px, got {config.size}")
    ranges = (
        ("--alpha", config.alpha, *ALPHA_RANGE),
        ("--margin", config.margin, 0.0, 1.0),
        ("--finetune-fraction", config.finetune_fraction, 0.0, 1.0),
        ("dropout", config.dropout, 0.0, 0.9),
        ("--low-res", config.low_res, 0.0, 1.0),
    )
    for name, value, lowest, highest in ranges:
        if not lowest <= value <= highest:  # also false for NaN
            raise InputError(f"{name} must be {lowest:g} to {highest:g}, got {value:g}")
    for name, value in (("--head-lr", config.head_lr), ("--finetune-lr", config.finetune_lr)):
        if not 0.0 < value <= 1.0:
            raise InputError(f"{name} must be above 0 and at most 1, got {value:g}")
    for name, value, lowest in (
        ("--head-epochs", config.head_epochs, 1),
        ("--finetune-epochs", config.finetune_epochs, 0),
        ("--batch-size", config.batch_size, 1),
        ("--augment-copies", config.augment_copies, 0),
        ("--patience", config.patience, 1),
        ("--per-class", config.per_class_limit or 2, 2),
    ):
        if value < lowest:
            raise InputError(f"{name} must be at least {lowest}, got {value}")
    train_share, val_share, test_share = config.fractions
    if min(val_share, test_share) < 0 or train_share <= 0:
        raise InputError(
            f"--val and --test must be at least 0 and leave images to train on, got {val_share:g} and {test_share:g}"
        )
    if config.detector not in detector_names():
        raise ModelError(f"unknown detector {config.detector!r}; choose one of: {', '.join(detector_names())}")
    weights = resolve_weights(config.weights)  # a missing or non-HDF5 file: one line here, not after TensorFlow
    if weights is not None and config.backbone not in PRETRAINABLE:
        raise ModelError(f"{config.backbone} has no pretrained weights; use --weights none")
    if config.manifest and not Path(config.manifest).is_file():
        raise InputError(f"{config.manifest}: split manifest not found")
    if config.manifest and (config.per_class_limit or tuple(config.fractions) != tuple(DEFAULT_FRACTIONS)):
        raise InputError("--manifest fixes the split: --per-class, --val and --test cannot change it")
    check_cache_writable(cache_root(config.cache))


def _is_run_config(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"dataset", "backbone", "fractions"} <= set(data)


def training_started(out: Path) -> bool:
    """Whether a run folder holds training results (a checkpoint, the bundle or metrics): ``--resume`` territory.

    A run that failed before its first checkpoint holds only its config and split; starting it again is safe.
    """
    return (
        (out / CHECKPOINT_DIR / STATE_FILE).is_file() or (out / BUNDLE_DIR).exists() or (out / METRICS_FILE).is_file()
    )


def run_state(out: Path) -> str:
    """``new`` (no folder, or an empty one), ``unstarted`` or ``started``; a one-line error for anything else."""
    if not out.exists():
        return "new"
    if not out.is_dir():
        raise InputError(f"{out}: --out is a file, not a folder")
    try:
        entries = [p for p in out.iterdir() if not p.name.startswith(".")]
    except OSError as exc:
        raise InputError(f"{out}: cannot read the run folder ({exc.strerror or exc})") from None
    if not entries:
        return "new"
    if not _is_run_config(out / CONFIG_FILE):
        raise InputError(f"{out}: folder is not empty and holds no maskwatch training run; choose a new or empty --out")
    return "started" if training_started(out) else "unstarted"


@dataclass
class _Created:
    """What making the run folder created, so a run that fails before its first checkpoint leaves nothing behind."""

    out: Path
    top: Path | None
    """The highest folder this run created (``out`` or one of its parents); None when ``out`` existed."""
    before: set[str]
    """Names inside ``out`` before this run started."""

    def remove(self) -> None:
        if self.top is not None:
            shutil.rmtree(self.out, ignore_errors=True)
            for folder in (self.out, *self.out.parents):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # an empty parent this run made; anything else stays
                if folder == self.top:
                    break
            return
        with contextlib.suppress(OSError):
            for entry in self.out.iterdir():
                if entry.name in self.before:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)


def prepare_run(out: Path) -> _Created:
    """Create the run folder (after every check); returns what to remove should the run fail before training."""
    before = {p.name for p in out.iterdir()} if out.is_dir() else set()
    try:
        top = make_folder(out)
    except OSError as exc:
        raise InputError(f"{out}: cannot create run folder ({exc.strerror or exc})") from None
    created = _Created(out, top, before)
    if not os.access(out, os.W_OK):
        created.remove()
        raise InputError(f"{out}: run folder is not writable")
    return created


def _same_folder(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one folder (``data`` and ``../x/data`` can; a missing one is compared by its path)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def load_config(out: str | Path) -> TrainConfig:
    """The run's saved config, checked as a new run's options are: a hand-edited file gets one line, no traceback."""
    path = Path(out) / CONFIG_FILE
    data = read_json_input(path)
    try:
        data["fractions"] = tuple(data["fractions"])
        config = TrainConfig(**data)
        if not isinstance(config.dataset, str) or len(config.fractions) != 3:
            raise TypeError("dataset must be a path and fractions three numbers")
        check_config(config)
    except (TypeError, KeyError, ValueError) as exc:
        raise InputError(f"{path}: not a maskwatch training config ({exc})") from None
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    return config


def _limit_per_class(dataset: Dataset, limit: int, seed: int) -> Dataset:
    """A seeded sample of ``limit`` images per class (for quick runs and CI)."""
    rng = np.random.default_rng(seed)
    keep = []
    for cls in dataset.classes:
        members = sorted((r for r in dataset.records if r.label == cls), key=lambda r: r.path)
        picks = sorted(rng.permutation(len(members))[:limit])
        keep += [members[i] for i in picks]
    return Dataset(dataset.root, dataset.classes, keep, dataset.skipped)


def split_dataset(config: TrainConfig, reporter: Reporter, resume: bool = False) -> tuple[Dataset, str]:
    """Scan and split, or reuse a manifest (``--manifest``, or the run's own on ``--resume``).

    The manifest is written to RUN_DIR either way; returns its hash.
    """
    out = Path(config.out)
    manifest = config.manifest or (str(out / MANIFEST_FILE) if resume else None)
    if manifest:
        classes = [p.name for p in class_folders(config.dataset)]
        dataset = read_manifest(manifest, config.dataset, classes)
        reporter.message(f"split: reusing {manifest}")
    else:
        reporter.start("Scanning images", 1)
        scanned, mirrored = scan_dataset(config.dataset, progress=lambda i, n: reporter.advance(0, f"{i}/{n}"))
        reporter.advance(1)
        if config.per_class_limit:
            scanned = _limit_per_class(scanned, config.per_class_limit, config.seed)
        dataset = make_split(scanned, mirrored, config.fractions, config.seed)
        for path, why in scanned.skipped:
            reporter.message(f"skipped {path}: {why}")
    conflicts = identical_across_classes(dataset.records)
    if conflicts:
        reporter.message(f"warning: {describe_identical(conflicts)}")
    for split in ("train", "val", "test"):
        counts = dataset.counts(split)
        if split == "train" and min(counts.values()) == 0:
            raise InputError(f"{config.dataset}: too few images to split (train has {counts})")
    sha = write_manifest(dataset, out / MANIFEST_FILE)
    return dataset, sha


def load_crops(config: TrainConfig, dataset: Dataset, reporter: Reporter) -> dict[str, Split]:
    """Face crops of every split, detected like ``detect`` does (cached across runs)."""
    cache = FaceCache(cache_root(config.cache), config.size, config.margin, config.detector)
    index = {c: i for i, c in enumerate(dataset.classes)}
    splits = {}
    for split in ("train", "val", "test"):
        records = sorted((r for r in dataset.records if r.split == split), key=lambda r: r.path)
        reporter.start(f"Face crops ({split})", len(records))
        crops = cache.crops(dataset, records, progress=lambda i, n: reporter.advance(1))
        splits[split] = Split(
            crops.images,
            np.array([index[r.label] for r in records], np.int64),
            [r.path for r in records],
            crops.no_face,
            [source_of(r) for r in records],
        )
    return splits


def train(config: TrainConfig, reporter: Reporter | None = None, resume: bool = False) -> dict[str, Any]:
    """Run (or continue) a training run; returns its metrics. Writes everything under ``config.out``.

    Every cheap check runs before the run folder is touched; a run that fails before its first checkpoint
    removes what it created, so the same command can simply be run again.
    """
    reporter = reporter or SilentReporter()
    out = Path(config.out)
    check_out_outside_dataset(out, config.dataset)
    state = run_state(out)
    if resume:
        if state == "new":
            raise InputError(f"{out}: nothing to resume (no {CONFIG_FILE}); start a run without --resume")
        if (out / METRICS_FILE).is_file():
            raise InputError(f"{out}: the run there has finished ({METRICS_FILE}); nothing to resume")
        command, given = config.command, config.dataset
        config = load_config(out)
        if given and not _same_folder(given, config.dataset):
            raise InputError(f"{out}: the run trains on {config.dataset}, not {given}; resume it with that dataset")
        config.out = str(out)  # the folder may have moved since; it is where this run continues
        config.resumed.append(command)
        reporter.message(f"resuming {out} with the settings in its {CONFIG_FILE} (options given now are not used)")
    elif state == "started":
        raise InputError(f"{out}: already holds a training run; continue it with --resume or choose another --out")
    if not resume:  # a resumed run's config was checked as it was read
        check_config(config)
    class_folders(config.dataset)  # a missing or one-class dataset fails before the run folder is made
    check_out_outside_dataset(out, config.dataset)  # again: --resume reads the dataset from the run's config
    if state == "unstarted" and not resume:
        reporter.message(f"{out}: starting again (the run there never reached its first checkpoint)")
    created = prepare_run(out)
    try:
        return _run(config, reporter, resume, out)
    except BaseException:
        if not training_started(out):
            created.remove()
        raise


def photos_learnt_from(dataset: Dataset) -> list[str]:
    """Digests of the annotated photos behind the train and val crops (``collect-boxes`` records them), so that
    ``evaluate-scenes`` can tell when it scores the bundle on its own training photos."""
    cache: dict = {}  # each collect-boxes folder's records, read once
    found = {crop_photo_digest(dataset.file(r), cache) for r in dataset.records if r.split in ("train", "val")}
    return sorted(d for d in found if d)


def _run(config: TrainConfig, reporter: Reporter, resume: bool, out: Path) -> dict[str, Any]:
    started = time.monotonic()
    dataset, manifest_sha = split_dataset(config, reporter, resume)
    write_json(out / CONFIG_FILE, asdict(config))
    for split in ("train", "val", "test"):
        reporter.message(f"{split}: " + ", ".join(f"{c} {n}" for c, n in dataset.counts(split).items()))
    splits = load_crops(config, dataset, reporter)
    no_face = {s: splits[s].no_face for s in splits}
    reporter.message("no face found (whole image used): " + ", ".join(f"{s} {n}" for s, n in no_face.items()))

    from maskwatch.training.classifier import keras_run  # TensorFlow starts here, after the cheap checks

    result = keras_run.fit_and_export(config, dataset.classes, splits, reporter)
    seconds = time.monotonic() - started

    evaluation = result.evaluation
    metrics = {
        "test": evaluation.summary() if evaluation is not None else {"n": 0, "note": NO_TEST_NOTE},
        "val_accuracy": result.val_accuracy,
        "counts": {s: dataset.counts(s) for s in ("train", "val", "test")},
        "no_face": no_face,
        "skipped": len(dataset.skipped),
        "onnx_keras_max_abs_diff": result.parity,
        "parameters": result.parameters,
        "train_seconds": round(seconds, 1),
    }
    if evaluation is not None:
        write_evaluation(evaluation, out, images=splits["test"].images, names=splits["test"].names)
    else:
        reporter.message(NO_TEST_NOTE)
        (out / REPORT_TXT).write_text(NO_TEST_NOTE + "\n", encoding="utf-8")
    plot_curves(result.history, out / CURVES_PNG, result.stage_starts)
    learnt_from = photos_learnt_from(dataset)
    keras_run.write_bundle(out / BUNDLE_DIR, result.onnx, config, dataset.classes, metrics, manifest_sha, learnt_from)
    write_json(out / METRICS_FILE, metrics)
    return metrics


__all__ = ["TrainConfig", "Reporter", "SilentReporter", "TrainingInterrupted", "check_config", "train"]
