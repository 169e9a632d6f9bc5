"""What the maskface and YuNet trainers share: Keras set-up, atomic checkpoints, the step loop and the export's record.

The two detectors differ in their model, targets, validation and metadata; how a run steps, logs, checkpoints
and resumes is the same, so it lives here once and both runs behave alike (same log lines, same files). Keras
is imported inside the functions: the trainers' input checks run before it loads.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maskwatch.data.provenance import TRAINED_ON, recorded_digests
from maskwatch.errors import ModelError
from maskwatch.media.files import read_json_input
from maskwatch.training.detector.config import TrainConfig

STATE_FILE = "state.json"
"""The checkpoint's step, seconds of training and recipe, written after its weights."""
LOG_EVERY = 25
"""Steps between two loss lines (the last step always gets one)."""

Batch = tuple[np.ndarray, Any]


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


def start_keras(config: TrainConfig, log: Callable[[str], None]) -> str:
    """Size TensorFlow's thread pools to ``--threads`` and seed Keras, before any model is built (a shared CPU
    wants one pool, and a run must be reproducible); returns the Keras backend's name."""
    import keras

    backend = keras.backend.backend()
    if config.threads and backend == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(config.threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already ran in this process (a caller, a test): its thread pools stay
            log(f"TensorFlow is already initialised; --threads {config.threads} not applied")
    keras.utils.set_random_seed(config.seed)
    return backend


def compile_for_training(model, config: TrainConfig, start: int, loss_part, loss_parts, jit_compile) -> None:
    """AdamW on the warm-up + cosine schedule, continued at ``start`` on a resume, with each loss part a metric
    so a step reports its parts."""
    import keras


    model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=warmup_cosine(config, start), weight_decay=1e-4, global_clipnorm=10.0
        ),
        loss=loss_part("loss"),
        metrics=[loss_part(name) for name in loss_parts],
        jit_compile=jit_compile,
    )


def sample_options(config: TrainConfig, scenes: list, crops: dict[int, list]) -> dict:
    """``SampleMaker``'s keywords but the seed (a resumed run draws from seed + its step; feed workers from their
    own): one recipe for every producer of samples."""
    return dict(
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


def save_checkpoint(
    model, out_dir: Path, weights_file: str, step: int, seconds: float, config: TrainConfig, note: str = ""
) -> None:
    """Write the weights, then the state, each under a temporary name and renamed: a crash or full disk mid-way
    leaves the previous checkpoint whole, and weights without a state file are an unfinished first one.

    ``train_on_batch`` reports the loss before its update, so the weights themselves are checked first; ``note``
    ends the divergence message."""
    if not all(np.isfinite(w).all() for w in model.get_weights()):
        raise ModelError(f"training diverged: the weights are not finite after step {step} (try a lower --lr){note}")
    partial = out_dir / ("partial." + weights_file)  # Keras wants the .weights.h5 ending
    model.save_weights(str(partial))
    os.replace(partial, out_dir / weights_file)
    state = {"step": step, "seconds": seconds, "config": asdict(config)}
    partial_state = out_dir / (STATE_FILE + ".partial")
    partial_state.write_text(json.dumps(state, indent=2))
    os.replace(partial_state, out_dir / STATE_FILE)


def load_checkpoint(model, out_dir: Path, weights_file: str) -> tuple[int, float, dict]:
    """Load a run's last checkpoint into ``model``: (step, seconds so far, state). A damaged or foreign one is one
    line, and its files stay as they are."""
    state = read_json_input(out_dir / STATE_FILE)
    try:
        model.load_weights(str(out_dir / weights_file))
        return int(state["step"]), float(state.get("seconds", 0.0)), state
    except Exception as exc:
        text = " ".join(str(exc).split())[:200]
        raise ModelError(f"{out_dir}: cannot resume from its checkpoint ({text})") from None


def record_validation(out_dir: Path, step: int, figures: dict, log: Callable[[str], None]) -> dict:
    """Add a validation to the run's curve and its log; returns the figures."""
    from maskwatch.training.detector.validation import append_line, describe

    append_line(out_dir, step, figures)
    log(f"validation at step {step}: {describe(figures)}")
    return figures


@dataclass
class RunClock:
    """Training time across resumes: the seconds earlier runs recorded plus this one's since ``t0``."""

    start: int
    before: float = 0.0
    t0: float = field(default_factory=time.perf_counter)

    def seconds(self) -> float:
        return self.before + time.perf_counter() - self.t0

    def rate(self, done: int) -> float:
        """Steps per second of this run alone."""
        return (done - self.start) / (time.perf_counter() - self.t0)


def run_steps(
    model,
    config: TrainConfig,
    clock: RunClock,
    next_batch: Callable[[], Batch],
    loss_parts: tuple[str, ...],
    checkpoint: Callable[[int, float], dict | None],
    log: Callable[[str], None],
    note: str = "",
) -> tuple[dict[str, float], dict | None]:
    """Train from ``clock.start`` to ``config.steps``: a loss line every ``LOG_EVERY`` steps (a running mean),
    ``checkpoint(step, seconds)`` every ``--checkpoint-every`` and at the end; returns the last step's losses and
    the last figures ``checkpoint`` returned (None without validation).

    A loss that is not finite stops the run before a checkpoint or an export saves broken weights; ``note`` ends
    that message."""
    running: dict[str, float] = {}
    last: dict[str, float] = {}
    validated: dict | None = None
    for step in range(clock.start, config.steps):
        images, targets = next_batch()
        model.reset_metrics()  # each step's own losses, not a running mean
        logs = model.train_on_batch(images, targets, return_dict=True)
        values = {k: float(logs[k]) for k in ("loss", *loss_parts)}
        if not math.isfinite(values["loss"]):
            raise ModelError(
                f"training diverged: the loss is {values['loss']} at step {step + 1} (try a lower --lr){note}"
            )
        for k, v in values.items():
            running[k] = 0.9 * running.get(k, v) + 0.1 * v
        last = values
        done = step + 1
        if done % LOG_EVERY == 0 or done == config.steps:
            shown = " ".join(f"{k} {v:.3f}" for k, v in running.items())
            log(f"step {done}/{config.steps} {shown} ({clock.rate(done):.2f} steps/s)")
        if done % config.checkpoint_every == 0 or done == config.steps:
            validated = checkpoint(done, clock.seconds())
    return last, validated


def photos_learnt_from(scenes: list, start_meta: dict | None = None) -> dict[str, list[str]]:
    """The metadata entry naming the scene photos a run trained on (by digest), with those the model it started
    from had learnt (``start_meta``, that model's JSON), so ``evaluate-scenes`` can tell its own training photos."""
    return {TRAINED_ON: sorted({s.photo for s in scenes if s.photo} | recorded_digests(start_meta))}


def export_with_record(
    model, onnx_file: Path, meta_file: Path, meta: dict, seconds: float, log: Callable[[str], None]
) -> Path:
    """Export the model to ONNX (through TensorFlow) and write its metadata beside it, with the versions that made
    it: a model file says what it is and how it was made."""
    import keras
    import tensorflow as tf

    from maskwatch.training.detector.model import export_onnx

    onnx_path = export_onnx(model, onnx_file)
    meta = {**meta, "versions": {"tensorflow": tf.__version__, "keras": keras.__version__}}
    meta_file.write_text(json.dumps(meta, indent=2))
    log(f"exported {onnx_path} after {seconds / 60:.1f} min of training")
    return onnx_path
