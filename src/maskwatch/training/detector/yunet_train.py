"""``train-detector --init yunet``: fine-tune YuNet-n with a class head on the scenes' train half and synthetic samples.

The samples are maskface's (``data.SampleMaker``: scene crops anchored on faces, pasted and synthetically
masked faces including masks worn below the nose, close-ups, distractors, crowds); the targets are assigned
each step from the model's own predictions (``yunet.assign``). Checkpoints, held-out validation and the
ONNX export follow the maskface loop's conventions, in their own file names.
"""

from __future__ import annotations

import json
import math
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from maskwatch.errors import InputError, ModelError
from maskwatch.media.files import make_folder, read_json_input
from maskwatch.training.detector.train import TrainConfig, warmup_cosine

WEIGHTS_FILE = "yunet_mask.weights.h5"
STATE_FILE = "state.json"
MODEL_FILE = "yunet_mask.onnx"
META_FILE = "yunet_mask.json"
INIT_NAME = "yunet"
"""``--init yunet``: the published YuNet-n ONNX file at ``YUNET_ONNX``."""


def is_yunet_init(value: str | None) -> bool:
    """Whether ``--init`` names YuNet (the word, or an .onnx file whose name starts with yunet)."""
    return bool(value) and (value == INIT_NAME or Path(value).name.lower().startswith("yunet"))


def yunet_path(value: str) -> Path:
    from maskwatch.training.detector.yunet import YUNET_ONNX

    return YUNET_ONNX if value == INIT_NAME else Path(value)


class SampleFeed:
    """Batches of (RGB float images, [(boxes, labels, ignore)]) made by one thread beside the training step."""

    def __init__(self, maker, batch: int) -> None:
        from maskwatch.training.detector.feeding import _fill

        def make():
            images, truths = [], []
            for _ in range(batch):
                s = maker.sample()
                images.append(s.image[:, :, ::-1])
                truths.append((s.boxes, s.labels, s.ignore))
            return np.stack(images), truths

        self.queue: queue.Queue = queue.Queue(maxsize=4)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=_fill, args=(make, self.queue, self.stop), daemon=True)
        self.thread.start()

    def next(self):
        while True:
            try:
                images, truths = self.queue.get(timeout=0.5)
                return images.astype(np.float32), truths
            except queue.Empty:
                if not self.thread.is_alive():
                    raise ModelError("the sample-making thread died (its error is printed above)") from None

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def validate_model(model, photos, input_size: int) -> dict:
    """Face figures of a model in training on held-out photos, through the detector its export will run in."""
    from maskwatch.detectors.yunet import YuNetDetector
    from maskwatch.evaluation.scene_run import face_results
    from maskwatch.training.detector.validation import MIN_SCORE, face_figures

    detector = YuNetDetector(
        min_score=MIN_SCORE, size=input_size, mask=True, network=lambda t: np.asarray(model.predict_on_batch(t))[0]
    )
    items = [(item.name, image, item.objects) for item, image in zip(photos.items, photos.images)]
    return face_figures(face_results(detector, items))


def train_yunet(
    config: TrainConfig, resume: bool = False, log: Callable[[str], None] = print
) -> tuple[Path | None, dict[str, float]]:
    """Fine-tune YuNet-n with a class head and export it to ONNX; returns the ONNX path and the last losses."""
    from maskwatch.training.detector.data import HeldOutFold, SampleMaker, load_face_crops, load_scenes
    from maskwatch.training.detector.validation import append_line, describe, load_held_out
    from maskwatch.training.detector.yunet import read_yunet

    if config.size % 32 or config.size < 64:
        raise InputError(f"--size must be a multiple of 32 and at least 64, got {config.size}")
    if not (math.isfinite(config.lr) and config.lr > 0):
        raise InputError(f"--lr must be a positive number, got {config.lr}")
    held_out = None
    if config.holdout_fold is not None:
        if config.folds < 2 or not 0 <= config.holdout_fold < config.folds:
            raise InputError(f"--holdout-fold must be 0..{config.folds - 1} with --folds {config.folds} (at least 2)")
        held_out = HeldOutFold(config.holdout_fold, config.folds)
    source = yunet_path(config.init or INIT_NAME)
    read_yunet(source)  # a wrong file is one line before anything starts
    out_dir = Path(config.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: --out is a file, not a folder")
    if resume and not (out_dir / STATE_FILE).is_file():
        raise InputError(f"{out_dir}: nothing to resume (no {WEIGHTS_FILE} / {STATE_FILE})")
    if not resume and any((out_dir / name).exists() for name in (STATE_FILE, MODEL_FILE)):
        raise InputError(
            f"{out_dir}: the folder holds a detector run; continue it with --resume or choose another --out"
        )
    scenes = load_scenes(config.scenes, "train", limit=config.limit_scenes, held_out=held_out)
    photos = load_held_out(config.scenes, held_out) if held_out is not None else None
    crops = load_face_crops(config.face_mask, per_class=config.crops_per_class, seed=config.seed)
    log(f"data: {len(scenes)} train-half scenes, {len(crops[0])} + {len(crops[1])} face crops")
    if photos is not None:
        log(f"validation: {len(photos.items)} train-half photos held out, fold {config.holdout_fold} of {config.folds}")
    try:
        make_folder(out_dir)
    except OSError as exc:
        raise InputError(f"{out_dir}: cannot create the run folder ({exc.strerror or exc})") from None

    import keras

    from maskwatch.training.detector.model import export_onnx
    from maskwatch.training.detector.yunet import LOSS_PARTS, assign, build_model, load_yunet_weights, loss_part

    if config.threads and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(config.threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            log(f"TensorFlow is already initialised; --threads {config.threads} not applied")
    keras.utils.set_random_seed(config.seed)
    model = build_model()
    start, elapsed_before = 0, 0.0
    if resume:
        state = read_json_input(out_dir / STATE_FILE)
        model.load_weights(str(out_dir / WEIGHTS_FILE))
        start, elapsed_before = int(state["step"]), float(state.get("seconds", 0.0))
        log(f"resumed at step {start}")
    else:
        layers = load_yunet_weights(model, source)
        log(f"started from {source}: {layers} YuNet layers set, class head new")
    model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=warmup_cosine(config, start), weight_decay=1e-4, global_clipnorm=10.0
        ),
        loss=loss_part("loss"),
        metrics=[loss_part(name) for name in LOSS_PARTS],
        jit_compile=False,
    )
    maker = SampleMaker(
        scenes=scenes,
        crops=crops,
        size=config.size,
        seed=config.seed + start,
        paste_prob=config.paste_prob,
        mosaic_prob=config.mosaic_prob,
        synthetic_bg_prob=config.synthetic_bg_prob,
        anchor_prob=config.anchor_prob,
        anchor_class_power=config.anchor_class_power,
        closeup_prob=config.closeup_prob,
        negative_prob=config.negative_prob,
        crowd_prob=config.crowd_prob,
    )

    def checkpoint(step: int, seconds: float) -> None:
        if not all(np.isfinite(w).all() for w in model.get_weights()):
            raise ModelError(f"training diverged: the weights are not finite after step {step} (try a lower --lr)")
        partial = out_dir / ("partial." + WEIGHTS_FILE)
        model.save_weights(str(partial))
        os.replace(partial, out_dir / WEIGHTS_FILE)
        (out_dir / (STATE_FILE + ".partial")).write_text(
            json.dumps({"step": step, "seconds": seconds, "config": asdict(config)}, indent=2)
        )
        os.replace(out_dir / (STATE_FILE + ".partial"), out_dir / STATE_FILE)

    t0 = time.perf_counter()
    running: dict[str, float] = {}
    last: dict[str, float] = {}
    validated = None
    feed = SampleFeed(maker, config.batch) if start < config.steps else None
    size = config.size
    try:
        for step in range(start, config.steps):
            images, truths = feed.next()
            maps = np.asarray(model.predict_on_batch(images))
            targets = np.stack([assign(m, b, lab, ign, size, size) for m, (b, lab, ign) in zip(maps, truths)])
            model.reset_metrics()
            logs = model.train_on_batch(images, targets, return_dict=True)
            values = {k: float(logs[k]) for k in ("loss", *LOSS_PARTS)}
            if not math.isfinite(values["loss"]):
                raise ModelError(
                    f"training diverged: the loss is {values['loss']} at step {step + 1} (try a lower --lr)"
                )
            for k, v in values.items():
                running[k] = 0.9 * running.get(k, v) + 0.1 * v
            last = values
            done = step + 1
            if done % 25 == 0 or done == config.steps:
                rate = (done - start) / (time.perf_counter() - t0)
                log(
                    f"step {done}/{config.steps} "
                    + " ".join(f"{k} {v:.3f}" for k, v in running.items())
                    + f" ({rate:.2f} steps/s)"
                )
            if done % config.checkpoint_every == 0 or done == config.steps:
                checkpoint(done, elapsed_before + time.perf_counter() - t0)
                if photos is not None:
                    validated = validate_model(model, photos, config.input_size)
                    append_line(out_dir, done, validated)
                    log(f"validation at step {done}: {describe(validated)}")
    finally:
        if feed is not None:
            feed.close()
    seconds = elapsed_before + time.perf_counter() - t0
    import tensorflow as tf

    onnx_path = export_onnx(model, out_dir / MODEL_FILE)
    meta = {
        "format": "maskwatch-yunet-mask/1",
        "classes": ["with_mask", "without_mask", "incorrect_mask"],
        "strides": [8, 16, 32],
        "input_size": config.input_size,
        "init": str(source),
        "train_seconds": round(seconds, 1),
        "config": asdict(config),
        "validation": validated,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2))
    log(f"exported {onnx_path} after {seconds / 60:.1f} min of training")
    return onnx_path, last
