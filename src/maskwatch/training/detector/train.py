"""The maskface training loop: sample feeding, a compiled train step, checkpoints, validation, resume, ONNX export.

A custom loop (not ``fit``) so that batch making (one thread on a small CPU, worker
processes for a GPU: ``feeding``) overlaps with the Keras step, a run can stop
anywhere and resume from its last checkpoint, and a held-out fold is validated at
each checkpoint (``validation``). The step loop, checkpoints and export record are ``loop``'s, shared with the
YuNet fine-tune; this module checks a run's inputs and sets up, resumes and exports maskface.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from maskwatch.detectors.maskface import DEFAULT_COARSE, load_meta
from maskwatch.errors import InputError, ModelError
from maskwatch.media.files import file_in_the_way, make_folder, read_json_input
from maskwatch.training.common import check_hdf5
from maskwatch.training.detector.config import TrainConfig
from maskwatch.training.detector.loop import (
    STATE_FILE,
    RunClock,
    compile_for_training,
    export_with_record,
    load_checkpoint,
    photos_learnt_from,
    record_validation,
    run_steps,
    sample_options,
    save_checkpoint,
    start_keras,
)
from maskwatch.training.detector.validation import VALIDATION_FILE

if TYPE_CHECKING:
    from maskwatch.training.detector.data import HeldOutFold
    from maskwatch.training.detector.validation import HeldOutPhotos

WEIGHTS_FILE = "maskface.weights.h5"
CALIBRATION_BATCHES = 8
"""Batches of training samples that measure the batch-norm statistics of an ``--init`` model."""


LOSS_PARTS = ("heat", "size", "offset", "cls")


def train(
    config: TrainConfig, resume: bool = False, log: Callable[[str], None] = print
) -> tuple[Path | None, dict[str, float]]:
    """Train (or resume) a maskface model and export it; returns the ONNX path (None on a Keras backend that
    cannot export) and the last losses.

    Every check (options, --out, weights, --init, the data) runs before Keras is imported, so a bad
    input gets its one line without TensorFlow's start-up logs; nothing is written until they all pass.
    """
    from maskwatch.training.detector.data import load_face_crops, load_scenes
    from maskwatch.training.detector.validation import load_held_out

    check_settings(config)
    if config.input_size <= DEFAULT_COARSE:
        raise InputError(f"--input-size must be over {DEFAULT_COARSE} px (the coarse pass's), got {config.input_size}")
    held_out = held_out_fold(config)
    if config.init and resume:
        raise InputError("--init starts a new run from an ONNX model; --resume continues a checkpoint: pick one")
    init = None
    if config.init:
        from maskwatch.training.detector.onnx_import import read_init

        init, width = read_init(config.init)
        if width != config.width:
            log(f"--init model has width {width}; using it instead of {config.width}")
            config.width = width
    out_dir = Path(config.out)
    check_out(out_dir, resume)
    if resume:
        check_same_holdout(out_dir, config)
    fresh = not resume and init is None
    weights = config.backbone_weights if fresh else None
    if weights not in (None, "imagenet"):
        if not Path(weights).is_file():
            raise InputError(f"{weights}: backbone weights not found (pass --backbone-weights none)")
        check_hdf5(weights, "MobileNetV2 weights")

    scenes = load_scenes(config.scenes, config.scenes_split, limit=config.limit_scenes, held_out=held_out)
    photos = load_held_out(config.scenes, held_out) if held_out is not None else None
    crops = load_face_crops(config.face_mask, per_class=config.crops_per_class, seed=config.seed)
    if config.face_mask is not None and config.crops_per_class > 0:
        for label, folder in ((0, "with_mask"), (1, "without_mask")):
            if not crops[label]:
                raise InputError(
                    f"{config.face_mask}: no face crops in {folder}/ (RMFD-named .jpg crops, 24 px or more); "
                    "pass --face-mask none to train without pasted faces"
                )
    which = "train-half scenes" if config.scenes_split == "train" else "scenes"
    log(f"data: {len(scenes)} {which}, {len(crops[0])} + {len(crops[1])} face crops")
    if photos is not None:
        log(f"validation: {len(photos.items)} train-half photos held out, fold {config.holdout_fold} of {config.folds}")
        if config.init:
            log("the --init model may have trained on the held-out photos (the packaged one did): its figures flatter")

    made = _make_out(out_dir)
    try:
        return _train(config, resume, log, out_dir, weights, init, scenes, crops, photos)
    except BaseException:
        if made is not None and not (out_dir / STATE_FILE).is_file():
            _remove_empty(out_dir, made)  # failed before its first checkpoint: leave no empty run folder behind
        raise


def check_settings(config: TrainConfig) -> None:
    """The sample size the model's strides divide, a learning rate the schedule can scale, and scenes to train on."""
    if config.scenes_split not in ("train", "all"):
        raise InputError(f"--scenes-split {config.scenes_split}: train or all (the test half alone never trains)")
    if config.size % 32 or config.size < 64:
        raise InputError(f"--size must be a multiple of 32 and at least 64, got {config.size}")
    if not (math.isfinite(config.lr) and config.lr > 0):
        raise InputError(f"--lr must be a positive number, got {config.lr}")


def held_out_fold(config: TrainConfig) -> HeldOutFold | None:
    """The fold ``--holdout-fold`` keeps out of training (None without it); a fold that does not exist is one line."""
    from maskwatch.training.detector.data import HeldOutFold

    if config.holdout_fold is None:
        return None
    if config.folds < 2 or not 0 <= config.holdout_fold < config.folds:
        raise InputError(f"--holdout-fold must be 0..{config.folds - 1} with --folds {config.folds} (at least 2)")
    return HeldOutFold(config.holdout_fold, config.folds)


RUN_FILES = (WEIGHTS_FILE, STATE_FILE, "maskface.onnx", "maskface.json")
"""What a run writes into --out; any of them there means the folder holds a run."""
LEFTOVER_FILES = ("partial." + WEIGHTS_FILE, STATE_FILE + ".partial", VALIDATION_FILE)
"""What an unfinished first checkpoint can leave: a new run in that folder is not refused for them."""


def check_out(out_dir: Path, resume: bool) -> None:
    """--out must be a folder (or creatable); a run there is continued with --resume, never overwritten."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: --out is a file, not a folder")
    blocker = file_in_the_way(out_dir.parent)
    if blocker is not None:
        raise InputError(f"{out_dir}: cannot create the run folder ({blocker} is a file)")
    if resume:
        if not (out_dir / STATE_FILE).is_file() or not (out_dir / WEIGHTS_FILE).is_file():
            raise InputError(f"{out_dir}: nothing to resume (no {WEIGHTS_FILE} / {STATE_FILE})")
    elif any((out_dir / name).exists() for name in RUN_FILES if name != WEIGHTS_FILE) or (
        (out_dir / WEIGHTS_FILE).exists() and (out_dir / STATE_FILE).exists()
    ):  # weights alone are a first checkpoint that never recorded its state: a new run replaces them
        raise InputError(
            f"{out_dir}: the folder holds a detector run; continue it with --resume or choose another --out"
        )
    elif out_dir.is_dir() and any(
        not p.name.startswith(".") and p.name not in (WEIGHTS_FILE, *LEFTOVER_FILES) for p in out_dir.iterdir()
    ):  # a run writes its files beside whatever is there: someone's folder is not a run folder
        raise InputError(f"{out_dir}: folder is not empty and holds no detector run; choose a new or empty --out")


def export_command(config: TrainConfig, out_dir: Path) -> str:
    """The resume that only exports a finished checkpoint: the options that shape the model (width), its metadata's
    input size and the held-out fold (the recipe recorded in maskface.json comes from the checkpoint's state)."""
    parts = ["KERAS_BACKEND=tensorflow maskwatch train-detector --resume", f"--steps {config.steps}"]
    parts.append(f"--width {config.width}")
    parts.append(f"--input-size {config.input_size}")
    if config.holdout_fold is not None:
        parts.append(f"--holdout-fold {config.holdout_fold} --folds {config.folds}")
    return " ".join([*parts, f"--out {out_dir}"])


def check_same_holdout(out_dir: Path, config: TrainConfig) -> None:
    """A resumed run keeps its held-out fold: a different one would validate on photos it has trained on."""
    state = read_json_input(out_dir / STATE_FILE)
    before = state.get("config") if isinstance(state, dict) else None
    if not isinstance(before, dict):
        raise InputError(f"{out_dir / STATE_FILE}: not a train-detector state (no config)")
    was = (before.get("holdout_fold"), before.get("folds", 3) if before.get("holdout_fold") is not None else None)
    now = (config.holdout_fold, config.folds if config.holdout_fold is not None else None)
    if was != now:
        told = "no --holdout-fold" if was[0] is None else f"--holdout-fold {was[0]} --folds {was[1]}"
        raise InputError(f"{out_dir}: the run was started with {told}; resume it with the same")


def _make_out(out_dir: Path) -> Path | None:
    """Create --out; returns the highest folder this created (None when it existed)."""
    try:
        return make_folder(out_dir)
    except OSError as exc:
        raise InputError(f"{out_dir}: cannot create the run folder ({exc.strerror or exc})") from None


def _remove_empty(out_dir: Path, top: Path) -> None:
    for folder in (out_dir, *out_dir.parents):
        try:
            folder.rmdir()  # only while empty: a file anyone put there stays
        except OSError:
            return
        if folder == top:
            return


NOT_SAVED = "; nothing from this step on was saved"
"""Ends a divergence message: the checkpoint before it is the run's last."""


@dataclass
class RunStart:
    """Where a run begins: step 0, or a checkpoint's step, its seconds of training and the recipe it ran."""

    step: int = 0
    seconds: float = 0.0
    recipe: dict | None = None


def _train(
    config: TrainConfig,
    resume: bool,
    log: Callable[[str], None],
    out_dir: Path,
    weights: str | None,
    init: bytes | None,
    scenes: list,
    crops: dict[int, list],
    photos: HeldOutPhotos | None,
) -> tuple[Path | None, dict[str, float]]:
    """The Keras part of ``train``, once every input has been checked: set up, train, validate, export.

    Backend-neutral (``keras.ops`` loss, ``train_on_batch``), so the same loop runs on TensorFlow here and on
    JAX or PyTorch where TensorFlow is not installed (``KERAS_BACKEND``, e.g. a GPU host with JAX); only the ONNX
    export needs TensorFlow, and ``--resume`` there exports a checkpoint trained elsewhere.
    """
    from maskwatch.training.detector.targets import loss_part

    backend = start_keras(config, log)
    model = _build_model(weights, config.width)
    begun = _resume(model, out_dir, log) if resume else RunStart()
    jit = False if backend == "tensorflow" else "auto"  # TensorFlow's XLA on CPU gained nothing
    compile_for_training(model, config, begun.step, loss_part, LOSS_PARTS, jit_compile=jit)
    options = sample_options(config, scenes, crops)
    if init is not None:
        _start_from_onnx(model, init, options, config, begun.step, log)

    def validation(step: int) -> dict:
        return record_validation(out_dir, step, _validate(model, photos, config.input_size), log)

    def checkpoint(step: int, seconds: float) -> dict | None:
        save_checkpoint(model, out_dir, WEIGHTS_FILE, step, seconds, config, note=NOT_SAVED)
        return validation(step) if photos is not None else None

    learnt = photos_learnt_from(scenes, _start_meta(config.init or (begun.recipe or {}).get("init")))
    clock = RunClock(begun.step, begun.seconds)
    last, validated = _run_feed(model, config, clock, options, checkpoint, log)
    seconds = clock.seconds()
    if begun.step >= config.steps:
        log("nothing left to train" + ("; exporting the checkpoint" if backend == "tensorflow" else ""))
    if photos is not None and validated is None:
        validated = validation(begun.step)  # the loop did not run: validate the checkpoint as it is
    if backend != "tensorflow":  # Keras exports ONNX through TensorFlow (tf2onnx)
        log(
            f"trained {seconds / 60:.1f} min on Keras' {backend} backend; to export the ONNX model, run "
            f"`{export_command(config, out_dir)}` where TensorFlow is installed (--out naming a writable copy "
            "of this folder if it moved; the data options may be your own)"
        )
        return None, last
    return _export(model, config, out_dir, begun, seconds, validated, learnt, log), last


def _build_model(weights: str | None, width: int):
    """The model, with its backbone's weights; weights Keras cannot use are one line, not its traceback."""
    from maskwatch.training.detector.model import build_model

    try:
        with warnings.catch_warnings(record=True) as caught:  # Keras warns before it fails on a wrong file
            warnings.simplefilter("always")
            model = build_model(weights=weights, width=width)
        for warning in caught:  # it built: its warnings are worth seeing
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    except Exception as exc:  # Keras raises ValueError, OSError, URL errors... for weights it cannot use
        if weights is None:
            raise
        text = " ".join(str(exc).split())[:200]
        if weights == "imagenet":
            raise ModelError(
                f"cannot get ImageNet weights ({text}); pass a local file with --backbone-weights FILE, or none"
            ) from None
        raise ModelError(f"{weights}: not MobileNetV2 alpha 0.35 no-top weights ({text})") from None
    return model


def _resume(model, out_dir: Path, log: Callable[[str], None]) -> RunStart:
    """Load the last checkpoint into ``model``: a damaged or foreign one is one line, and its files stay as they are."""
    step, seconds, state = load_checkpoint(model, out_dir, WEIGHTS_FILE)
    begun = RunStart(step, seconds, state.get("config"))
    log(f"resumed at step {begun.step}")
    return begun


def _start_from_onnx(
    model, init: bytes, options: dict, config: TrainConfig, start: int, log: Callable[[str], None]
) -> None:
    """Set ``--init``'s weights; its batch norms are measured on training samples, as the ONNX file has them folded."""
    from maskwatch.training.detector.data import SampleMaker
    from maskwatch.training.detector.onnx_import import load_onnx_weights

    maker = SampleMaker(seed=config.seed + start, **options)
    calibration = (maker.batch(config.batch)[0] for _ in range(CALIBRATION_BATCHES))
    layers = load_onnx_weights(model, init, calibration)
    log(f"started from {config.init}: {layers} layers set, batch norms calibrated on {CALIBRATION_BATCHES} batches")


def _validate(model, photos: HeldOutPhotos, input_size: int) -> dict:
    """The held-out figures of the model as it is, through the detector its export will run in."""
    from maskwatch.training.detector.validation import validate

    return validate(lambda tensor: np.asarray(model.predict_on_batch(tensor)), photos, input_size)


def _run_feed(
    model,
    config: TrainConfig,
    clock: RunClock,
    options: dict,
    checkpoint: Callable[[int, float], dict | None],
    log: Callable[[str], None],
) -> tuple[dict[str, float], dict | None]:
    """The step loop over a batch feed that is closed however the loop ends (its workers must not outlive the
    run); an export-only resume makes no samples and trains nothing."""
    from maskwatch.training.detector.feeding import BatchFeed

    if clock.start >= config.steps:
        return {}, None
    feed = BatchFeed(options, config.seed + clock.start, config.batch, workers=config.workers)
    try:
        if config.workers:
            log(f"{config.workers} sample worker processes")
        return run_steps(model, config, clock, feed.next, LOSS_PARTS, checkpoint, log, note=NOT_SAVED)
    finally:
        feed.close()


def _start_meta(init: str | None) -> dict:
    """The JSON of the maskface model a run started from (``--init``), empty when there is none or it is unreadable:
    it only adds that model's training photos to the record."""
    from maskwatch.training.detector.onnx_import import PACKAGED

    if not init:
        return {}
    try:
        return load_meta(None if init == PACKAGED else Path(init))
    except ModelError:
        return {}


def _export(
    model,
    config: TrainConfig,
    out_dir: Path,
    begun: RunStart,
    seconds: float,
    validated: dict | None,
    learnt: dict[str, list[str]],
    log: Callable[[str], None],
) -> Path:
    """Export maskface.onnx and maskface.json; an export-only resume records the recipe its checkpoint ran."""
    recorded = asdict(config)
    if begun.step >= config.steps and isinstance(begun.recipe, dict):
        recorded = {**begun.recipe, "input_size": config.input_size, "steps": begun.step}
    meta = {
        "format": "maskwatch-maskface/1",
        "classes": ["with_mask", "without_mask", "incorrect_mask"],
        "stride": 4,
        "input_size": config.input_size,
        "threshold": 0.5,
        "train_seconds": round(seconds, 1),
        "config": recorded,
        "validation": validated,
        **learnt,
    }
    return export_with_record(model, out_dir / "maskface.onnx", out_dir / "maskface.json", meta, seconds, log)
