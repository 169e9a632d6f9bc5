"""The maskface training loop: threaded sample making, a compiled train step, checkpoints, resume, ONNX export.

A custom loop (not ``fit``) so that one augmented-batch producer thread overlaps
with the TensorFlow step on a small CPU, and a run can stop anywhere and resume
from its last checkpoint.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from maskwatch.errors import InputError

WEIGHTS_FILE = "maskface.weights.h5"
STATE_FILE = "state.json"
CALIBRATION_BATCHES = 8
"""Batches of training samples that measure the batch-norm statistics of an ``--init`` model."""


@dataclass
class TrainConfig:
    """Everything that defines a run; saved next to the checkpoint and into the model's metadata."""

    scenes: str = "../shared/data/scenes"
    face_mask: str | None = "../shared/data/face-mask"
    backbone_weights: str | None = "../shared/weights/mobilenet_v2_0.35_no_top.weights.h5"
    out: str = "runs/maskface"
    steps: int = 3000
    batch: int = 16
    size: int = 256
    lr: float = 2e-3
    warmup: int = 150
    seed: int = 0
    limit_scenes: int | None = None
    crops_per_class: int = 800
    paste_prob: float = 0.5
    mosaic_prob: float = 0.25
    synthetic_bg_prob: float = 0.1
    anchor_prob: float = 0.5
    anchor_class_power: float = 0.5
    closeup_prob: float = 0.0
    negative_prob: float = 0.0
    crowd_prob: float = 0.0
    width: int = 32
    threads: int | None = None
    checkpoint_every: int = 250
    input_size: int = 320
    init: str | None = None
    extra: dict = field(default_factory=dict)


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up then cosine decay to 2 % of the peak."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _producer(maker, batch: int, out: queue.Queue, stop: threading.Event) -> None:
    while not stop.is_set():
        item = maker.batch(batch)
        while not stop.is_set():
            try:
                out.put(item, timeout=0.5)
                break
            except queue.Full:
                continue


def train(
    config: TrainConfig, resume: bool = False, log: Callable[[str], None] = print
) -> tuple[Path, dict[str, float]]:
    """Train (or resume) a maskface model and export it; returns the ONNX path and the last losses."""
    import tensorflow as tf

    from maskwatch.detector_train.data import SampleMaker, load_face_crops, load_scenes
    from maskwatch.detector_train.model import build_model, export_onnx
    from maskwatch.detector_train.targets import detection_loss

    if config.size % 32 or config.size < 64:
        raise InputError(f"--size must be a multiple of 32 and at least 64, got {config.size}")
    weights = config.backbone_weights
    if not config.init and weights not in (None, "imagenet") and not Path(weights).is_file():
        raise InputError(f"{weights}: backbone weights not found (pass --backbone-weights none)")
    if config.threads:
        tf.config.threading.set_intra_op_parallelism_threads(config.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    out_dir = Path(config.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    tf.random.set_seed(config.seed)

    init = None
    if config.init:
        from maskwatch.detector_train.onnx_import import load_onnx_weights, read_init

        if resume:
            raise InputError("--init starts a new run from an ONNX model; --resume continues a checkpoint: pick one")
        init, width = read_init(config.init)
        if width != config.width:
            log(f"--init model has width {width}; using it instead of {config.width}")
            config.width = width

    scenes = load_scenes(config.scenes, "train", limit=config.limit_scenes)
    crops = load_face_crops(config.face_mask, per_class=config.crops_per_class, seed=config.seed)
    log(f"data: {len(scenes)} train-half scenes, {len(crops[0])} + {len(crops[1])} face crops")

    fresh = not resume and init is None
    model = build_model(weights=config.backbone_weights if fresh else None, width=config.width)
    start = 0
    elapsed_before = 0.0
    if resume:
        state_path, weights_path = out_dir / STATE_FILE, out_dir / WEIGHTS_FILE
        if not state_path.is_file() or not weights_path.is_file():
            raise InputError(f"{out_dir}: nothing to resume (no {WEIGHTS_FILE} / {STATE_FILE})")
        state = json.loads(state_path.read_text())
        model.load_weights(str(weights_path))
        start = int(state["step"])
        elapsed_before = float(state.get("seconds", 0.0))
        log(f"resumed at step {start}")

    import keras

    optimizer = keras.optimizers.AdamW(learning_rate=config.lr, weight_decay=1e-4, global_clipnorm=10.0)
    variables = model.trainable_variables

    @tf.function(reduce_retracing=True)
    def step_fn(images, targets, lr):
        optimizer.learning_rate.assign(lr)
        with tf.GradientTape() as tape:
            pred = model(images, training=True)
            total, parts = detection_loss(targets, pred)
        grads = tape.gradient(total, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return total, parts

    maker = SampleMaker(
        scenes,
        crops,
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
    if init is not None:
        calibration = (maker.batch(config.batch)[0] for _ in range(CALIBRATION_BATCHES))
        layers = load_onnx_weights(model, init, calibration)
        log(f"started from {config.init}: {layers} layers set, batch norms calibrated on {CALIBRATION_BATCHES} batches")
    batches: queue.Queue = queue.Queue(maxsize=4)
    stop = threading.Event()
    worker = threading.Thread(target=_producer, args=(maker, config.batch, batches, stop), daemon=True)
    worker.start()

    def checkpoint(step: int, seconds: float) -> None:
        model.save_weights(str(out_dir / WEIGHTS_FILE))
        state = {"step": step, "seconds": seconds, "config": asdict(config)}
        (out_dir / STATE_FILE).write_text(json.dumps(state, indent=2))

    t0 = time.perf_counter()
    running: dict[str, float] = {}
    last: dict[str, float] = {}
    try:
        for step in range(start, config.steps):
            images, targets = batches.get()
            total, parts = step_fn(images, targets, np.float32(learning_rate(step, config)))
            values = {"loss": float(total), **{k: float(v) for k, v in parts.items()}}
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
    finally:
        stop.set()
    seconds = elapsed_before + time.perf_counter() - t0
    if start >= config.steps:
        log("nothing left to train; exporting the checkpoint")
    onnx_path = export_onnx(model, out_dir / "maskface.onnx")
    meta = {
        "format": "maskwatch-maskface/1",
        "classes": ["with_mask", "without_mask", "incorrect_mask"],
        "stride": 4,
        "input_size": config.input_size,
        "threshold": 0.5,
        "train_seconds": round(seconds, 1),
        "config": asdict(config),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    (out_dir / "maskface.json").write_text(json.dumps(meta, indent=2))
    log(f"exported {onnx_path} after {seconds / 60:.1f} min of training")
    return onnx_path, last
