"""The maskface training loop: sample feeding, a compiled train step, checkpoints, validation, resume, ONNX export.

A custom loop (not ``fit``) so that batch making (one thread on a small CPU, worker
processes for a GPU: ``feeding``) overlaps with the Keras step, a run can stop
anywhere and resume from its last checkpoint, and a held-out fold is validated at
each checkpoint (``validation``).
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from maskwatch.detectors.maskface import DEFAULT_COARSE
from maskwatch.errors import InputError, ModelError
from maskwatch.media.files import file_in_the_way, make_folder, read_json_input
from maskwatch.training.common import check_hdf5
from maskwatch.training.detector.config import TrainConfig
from maskwatch.training.detector.validation import VALIDATION_FILE

if TYPE_CHECKING:
    from maskwatch.training.detector.validation import HeldOutPhotos

WEIGHTS_FILE = "maskface.weights.h5"
STATE_FILE = "state.json"
CALIBRATION_BATCHES = 8
"""Batches of training samples that measure the batch-norm statistics of an ``--init`` model."""


LOSS_PARTS = ("heat", "size", "offset", "cls")


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up then cosine decay to 2 % of the peak."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def warmup_cosine(config: TrainConfig, start: int):
    """``learning_rate`` as a Keras schedule (any backend); ``start`` is the step a resumed run begins at."""
    import keras
    from keras import ops

    class Schedule(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = ops.cast(step, "float32") + float(start)
            warm = config.lr * (step + 1.0) / config.warmup
            progress = ops.minimum(1.0, (step - config.warmup) / max(1, config.steps - config.warmup))
            decayed = config.lr * (0.02 + 0.98 * 0.5 * (1.0 + ops.cos(math.pi * progress)))
            return ops.where(step < config.warmup, warm, decayed)

        def get_config(self) -> dict:
            return {"start": start, "config": asdict(config)}

    return Schedule()


def train(
    config: TrainConfig, resume: bool = False, log: Callable[[str], None] = print
) -> tuple[Path | None, dict[str, float]]:
    """Train (or resume) a maskface model and export it; returns the ONNX path (None on a Keras backend that
    cannot export) and the last losses.

    Every check (options, --out, weights, --init, the data) runs before Keras is imported, so a bad
    input gets its one line without TensorFlow's start-up logs; nothing is written until they all pass.
    """
    from maskwatch.training.detector.data import HeldOutFold, load_face_crops, load_scenes
    from maskwatch.training.detector.validation import load_held_out

    if config.size % 32 or config.size < 64:
        raise InputError(f"--size must be a multiple of 32 and at least 64, got {config.size}")
    if not (math.isfinite(config.lr) and config.lr > 0):
        raise InputError(f"--lr must be a positive number, got {config.lr}")
    if config.input_size <= DEFAULT_COARSE:
        raise InputError(f"--input-size must be over {DEFAULT_COARSE} px (the coarse pass's), got {config.input_size}")
    held_out = None
    if config.holdout_fold is not None:
        if config.folds < 2 or not 0 <= config.holdout_fold < config.folds:
            raise InputError(f"--holdout-fold must be 0..{config.folds - 1} with --folds {config.folds} (at least 2)")
        held_out = HeldOutFold(config.holdout_fold, config.folds)
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

    scenes = load_scenes(config.scenes, "train", limit=config.limit_scenes, held_out=held_out)
    photos = load_held_out(config.scenes, held_out) if held_out is not None else None
    crops = load_face_crops(config.face_mask, per_class=config.crops_per_class, seed=config.seed)
    if config.face_mask is not None and config.crops_per_class > 0:
        for label, folder in ((0, "with_mask"), (1, "without_mask")):
            if not crops[label]:
                raise InputError(
                    f"{config.face_mask}: no face crops in {folder}/ (RMFD-named .jpg crops, 24 px or more); "
                    "pass --face-mask none to train without pasted faces"
                )
    log(f"data: {len(scenes)} train-half scenes, {len(crops[0])} + {len(crops[1])} face crops")
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
    """The Keras part of ``train``, once every input has been checked.

    Backend-neutral (``keras.ops`` loss, ``train_on_batch``), so the same loop runs on TensorFlow here and on
    JAX or PyTorch where TensorFlow is not installed (``KERAS_BACKEND``, e.g. a GPU host with JAX); only the ONNX
    export needs TensorFlow, and ``--resume`` there exports a checkpoint trained elsewhere.
    """
    import keras

    from maskwatch.training.detector.data import SampleMaker
    from maskwatch.training.detector.feeding import BatchFeed
    from maskwatch.training.detector.model import build_model, export_onnx
    from maskwatch.training.detector.targets import loss_part
    from maskwatch.training.detector.validation import append_line, describe, validate

    backend = keras.backend.backend()
    if config.threads and backend == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(config.threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already ran in this process (a caller, a test): its thread pools stay
            log(f"TensorFlow is already initialised; --threads {config.threads} not applied")
    keras.utils.set_random_seed(config.seed)
    try:
        with warnings.catch_warnings(record=True) as caught:  # Keras warns before it fails on a wrong file
            warnings.simplefilter("always")
            model = build_model(weights=weights, width=config.width)
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
    start = 0
    elapsed_before = 0.0
    trained_with = None
    if resume:
        state = read_json_input(out_dir / STATE_FILE)
        trained_with = state.get("config")
        try:
            model.load_weights(str(out_dir / WEIGHTS_FILE))
            start = int(state["step"])
        except Exception as exc:  # a damaged or foreign checkpoint: one line, the files stay as they are
            text = " ".join(str(exc).split())[:200]
            raise ModelError(f"{out_dir}: cannot resume from its checkpoint ({text})") from None
        elapsed_before = float(state.get("seconds", 0.0))
        log(f"resumed at step {start}")

    optimizer = keras.optimizers.AdamW(
        learning_rate=warmup_cosine(config, start), weight_decay=1e-4, global_clipnorm=10.0
    )
    model.compile(
        optimizer=optimizer,
        loss=loss_part("loss"),
        metrics=[loss_part(name) for name in LOSS_PARTS],
        jit_compile=False if backend == "tensorflow" else "auto",  # TensorFlow's XLA on CPU gained nothing
    )

    maker_options = dict(
        scenes=scenes,
        crops=crops,
        size=config.size,
        paste_prob=config.paste_prob,
        mosaic_prob=config.mosaic_prob,
        synthetic_bg_prob=config.synthetic_bg_prob,
        anchor_prob=config.anchor_prob,
        anchor_class_power=config.anchor_class_power,
        closeup_prob=config.closeup_prob,
        negative_prob=config.negative_prob,
        crowd_prob=config.crowd_prob,
    )
    if init is not None:
        from maskwatch.training.detector.onnx_import import load_onnx_weights

        maker = SampleMaker(seed=config.seed + start, **maker_options)
        calibration = (maker.batch(config.batch)[0] for _ in range(CALIBRATION_BATCHES))
        layers = load_onnx_weights(model, init, calibration)
        log(f"started from {config.init}: {layers} layers set, batch norms calibrated on {CALIBRATION_BATCHES} batches")

    def check_finite(step: int) -> None:
        """train_on_batch reports the loss before its update: the weights themselves are checked before saving."""
        if not all(np.isfinite(w).all() for w in model.get_weights()):
            raise ModelError(
                f"training diverged: the weights are not finite after step {step} (try a lower --lr); "
                "nothing from this step on was saved"
            )

    def checkpoint(step: int, seconds: float) -> None:
        # Each file is written under a temporary name and renamed, the state last: a crash or full disk mid-way
        # leaves the previous checkpoint whole, and weights without a state file are an unfinished first one.
        check_finite(step)
        partial = out_dir / ("partial." + WEIGHTS_FILE)  # Keras wants the .weights.h5 ending
        model.save_weights(str(partial))
        os.replace(partial, out_dir / WEIGHTS_FILE)
        state = {"step": step, "seconds": seconds, "config": asdict(config)}
        partial_state = out_dir / (STATE_FILE + ".partial")
        partial_state.write_text(json.dumps(state, indent=2))
        os.replace(partial_state, out_dir / STATE_FILE)

    def validation(step: int) -> dict:
        figures = validate(lambda tensor: np.asarray(model.predict_on_batch(tensor)), photos, config.input_size)
        append_line(out_dir, step, figures)
        log(f"validation at step {step}: {describe(figures)}")
        return figures

    t0 = time.perf_counter()
    validated: dict | None = None
    running: dict[str, float] = {}
    last: dict[str, float] = {}
    feed = None
    try:
        if start < config.steps:  # an export-only resume needs no samples
            feed = BatchFeed(maker_options, config.seed + start, config.batch, workers=config.workers)
            if config.workers:
                log(f"{config.workers} sample worker processes")
        for step in range(start, config.steps):
            images, targets = feed.next()
            model.reset_metrics()  # each step's own losses, not a running mean
            logs = model.train_on_batch(images, targets, return_dict=True)
            values = {k: float(logs[k]) for k in ("loss", *LOSS_PARTS)}
            if not math.isfinite(values["loss"]):  # stop before a checkpoint or an export saves broken weights
                raise ModelError(
                    f"training diverged: the loss is {values['loss']} at step {step + 1} (try a lower --lr); "
                    "nothing from this step on was saved"
                )
            for k, v in values.items():
                running[k] = 0.9 * running.get(k, v) + 0.1 * v
            last = values
            done = step + 1
            if done % 25 == 0 or done == config.steps:
                rate = (done - start) / (time.perf_counter() - t0)
                shown = " ".join(f"{k} {v:.3f}" for k, v in running.items())
                log(f"step {done}/{config.steps} {shown} ({rate:.2f} steps/s)")
            if done % config.checkpoint_every == 0 or done == config.steps:
                checkpoint(done, elapsed_before + time.perf_counter() - t0)
                if photos is not None:
                    validated = validation(done)
    finally:
        if feed is not None:
            feed.close()
    seconds = elapsed_before + time.perf_counter() - t0
    if start >= config.steps:
        log("nothing left to train" + ("; exporting the checkpoint" if backend == "tensorflow" else ""))
    if photos is not None and validated is None:
        validated = validation(start)  # the loop did not run: validate the checkpoint as it is
    if backend != "tensorflow":  # Keras exports ONNX through TensorFlow (tf2onnx)
        log(
            f"trained {seconds / 60:.1f} min on Keras' {backend} backend; to export the ONNX model, run "
            f"`{export_command(config, out_dir)}` where TensorFlow is installed (--out naming a writable copy "
            "of this folder if it moved; the data options may be your own)"
        )
        return None, last
    import tensorflow as tf

    onnx_path = export_onnx(model, out_dir / "maskface.onnx")
    recorded = asdict(config)
    if start >= config.steps and isinstance(trained_with, dict):  # an export-only resume: the recipe it ran
        recorded = {**trained_with, "input_size": config.input_size, "steps": start}
    meta = {
        "format": "maskwatch-maskface/1",
        "classes": ["with_mask", "without_mask", "incorrect_mask"],
        "stride": 4,
        "input_size": config.input_size,
        "threshold": 0.5,
        "train_seconds": round(seconds, 1),
        "config": recorded,
        "validation": validated,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    (out_dir / "maskface.json").write_text(json.dumps(meta, indent=2))
    log(f"exported {onnx_path} after {seconds / 60:.1f} min of training")
    return onnx_path, last
