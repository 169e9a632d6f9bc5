"""``train-detector --init yunet``: fine-tune YuNet-n with a class head on the scenes' train half and synthetic samples.

The samples are maskface's (``data.SampleMaker``: scene crops anchored on faces, pasted and synthetically
masked faces including masks worn below the nose, close-ups, distractors, crowds); the targets are assigned
each step from the model's own predictions (``yunet.assign``). The step loop, checkpoints, held-out validation
lines and the export record are the maskface trainer's (``loop``), in their own file names.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from maskwatch.errors import InputError, ModelError
from maskwatch.media.files import make_folder
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
from maskwatch.training.detector.train import check_settings, held_out_fold

if TYPE_CHECKING:
    from maskwatch.training.detector.validation import HeldOutPhotos

WEIGHTS_FILE = "yunet_mask.weights.h5"
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
    from maskwatch.training.detector.data import load_face_crops, load_scenes
    from maskwatch.training.detector.validation import load_held_out
    from maskwatch.training.detector.yunet import read_yunet

    check_settings(config)
    held_out = held_out_fold(config)
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
    scenes = load_scenes(config.scenes, config.scenes_split, limit=config.limit_scenes, held_out=held_out)
    photos = load_held_out(config.scenes, held_out) if held_out is not None else None
    crops = load_face_crops(config.face_mask, per_class=config.crops_per_class, seed=config.seed)
    which = "train-half scenes" if config.scenes_split == "train" else "scenes"
    log(f"data: {len(scenes)} {which}, {len(crops[0])} + {len(crops[1])} face crops")
    if photos is not None:
        log(f"validation: {len(photos.items)} train-half photos held out, fold {config.holdout_fold} of {config.folds}")
    try:
        make_folder(out_dir)
    except OSError as exc:
        raise InputError(f"{out_dir}: cannot create the run folder ({exc.strerror or exc})") from None

    return _fine_tune(config, resume, log, out_dir, source, scenes, crops, photos)


def _fine_tune(
    config: TrainConfig,
    resume: bool,
    log: Callable[[str], None],
    out_dir: Path,
    source: Path,
    scenes: list,
    crops: dict[int, list],
    photos: HeldOutPhotos | None,
) -> tuple[Path, dict[str, float]]:
    """The Keras part of ``train_yunet``, once every input has been checked: the maskface loop's set-up, steps and
    checkpoints, with targets assigned from the model's own predictions each step."""
    from maskwatch.training.detector.data import SampleMaker
    from maskwatch.training.detector.yunet import LOSS_PARTS, build_model, load_yunet_weights, loss_part

    start_keras(config, log)
    model = build_model()
    start, elapsed_before = 0, 0.0
    if resume:
        start, elapsed_before, _ = load_checkpoint(model, out_dir, WEIGHTS_FILE)
        log(f"resumed at step {start}")
    else:
        layers = load_yunet_weights(model, source)
        log(f"started from {source}: {layers} YuNet layers set, class head new")
    compile_for_training(model, config, start, loss_part, LOSS_PARTS, jit_compile=False)
    maker = SampleMaker(seed=config.seed + start, **sample_options(config, scenes, crops))

    def checkpoint(step: int, seconds: float) -> dict | None:
        save_checkpoint(model, out_dir, WEIGHTS_FILE, step, seconds, config)
        if photos is None:
            return None
        return record_validation(out_dir, step, validate_model(model, photos, config.input_size), log)

    clock = RunClock(start, elapsed_before)
    last: dict[str, float] = {}
    validated = None
    if start < config.steps:
        feed = SampleFeed(maker, config.batch)
        try:
            batches = _assigned(model, feed, config.size)
            last, validated = run_steps(model, config, clock, batches, LOSS_PARTS, checkpoint, log)
        finally:
            feed.close()
    seconds = clock.seconds()
    meta = {
        "format": "maskwatch-yunet-mask/1",
        "classes": ["with_mask", "without_mask", "incorrect_mask"],
        "strides": [8, 16, 32],
        "input_size": config.input_size,
        "init": str(source),
        "train_seconds": round(seconds, 1),
        "config": asdict(config),
        "validation": validated,
        **photos_learnt_from(scenes),  # YuNet itself learnt from WIDER FACE, not from annotated scenes
    }
    return export_with_record(model, out_dir / MODEL_FILE, out_dir / META_FILE, meta, seconds, log), last


def _assigned(model, feed: SampleFeed, size: int) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """The next batch with its targets: each face's priors are chosen from the model's predictions as it is now."""
    from maskwatch.training.detector.yunet import assign

    def next_batch() -> tuple[np.ndarray, np.ndarray]:
        images, truths = feed.next()
        maps = np.asarray(model.predict_on_batch(images))
        targets = np.stack([assign(m, b, lab, ign, size, size) for m, (b, lab, ign) in zip(maps, truths)])
        return images, targets

    return next_batch
