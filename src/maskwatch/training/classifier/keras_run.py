"""The Keras part of a training run: two stages, per-epoch checkpoints, ONNX export with a parity check.

Kept apart from ``trainer`` so that every cheap check (dataset, split, crops) runs
before TensorFlow is imported.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from maskwatch.errors import InputError, ModelError, first_line  # noqa: E402
from maskwatch.evaluation.reports import Evaluation  # noqa: E402
from maskwatch.inference.bundle import BundleMeta, CropSpec, save_bundle  # noqa: E402
from maskwatch.media.files import read_json_input  # noqa: E402
from maskwatch.training.classifier import TrainingInterrupted, resolve_weights  # noqa: E402
from maskwatch.training.classifier.augment import AugmentConfig, augment_batch  # noqa: E402
from maskwatch.training.classifier.backbones import backbone_spec, quiet  # noqa: E402
from maskwatch.training.classifier.export import onnx_bytes, onnx_parity  # noqa: E402
from maskwatch.training.classifier.model import Classifier, build_classifier, unfreeze_top  # noqa: E402
from maskwatch.training.classifier.shared import (  # noqa: E402
    CHECKPOINT_DIR,
    KERAS_MODEL,
    PARITY_IMAGES,
    STATE_FILE,
    FitResult,
    Reporter,
    Split,
    TrainConfig,
    one_hot,
    sample_weights,
    steps,
)
from maskwatch.training.common import now_iso, versions, write_json  # noqa: E402


class AugmentedCrops(keras.utils.PyDataset):
    """Shuffled, augmented batches of crops with their loss weights (one per crop); seeded by epoch."""

    def __init__(
        self, split: Split, n_classes: int, batch: int, seed: int, weights: np.ndarray, augment: AugmentConfig
    ) -> None:
        super().__init__()
        self.split, self.n_classes, self.batch, self.seed, self.weights = split, n_classes, batch, seed, weights
        self.augment = augment
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.rng = np.random.default_rng(self.seed * 1000 + epoch)
        self.order = self.rng.permutation(len(self.split.labels))

    def __len__(self) -> int:
        return steps(len(self.split.labels), self.batch)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx = self.order[index * self.batch : (index + 1) * self.batch]
        images = augment_batch(self.split.images[idx], self.rng, self.augment).astype(np.float32)
        labels = self.split.labels[idx]
        return images, one_hot(labels, self.n_classes), self.weights[idx]


class ProgressCallback(keras.callbacks.Callback):
    def __init__(self, reporter: Reporter, epoch_label: str) -> None:
        super().__init__()
        self.reporter, self.epoch_label = reporter, epoch_label

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        self.reporter.advance(1, f"{self.epoch_label} loss {loss:.3f}" if loss is not None else self.epoch_label)


def _save_weights(model: keras.Model, path: Path) -> None:
    """Atomic: a Ctrl-C while writing leaves the previous checkpoint intact."""
    tmp = path.with_name("tmp-" + path.name)
    model.save_weights(tmp)
    tmp.replace(path)


def save_keras_model(model: keras.Model, path: Path) -> None:
    """The trained classifier as a ``.keras`` file, for users who continue in Keras (atomic, like checkpoints)."""
    tmp = path.with_name("tmp-" + path.name)
    with quiet():
        model.save(tmp)
    tmp.replace(path)


def _load_checkpoint_weights(model, path: Path) -> None:
    """A checkpoint's weights, or one line naming the file (h5py's own error names none)."""
    try:
        model.load_weights(path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot load the checkpoint's weights ({first_line(exc)})") from None


def _load_state(folder: Path) -> dict[str, Any]:
    path = folder / STATE_FILE
    state = read_json_input(path) if path.is_file() else {}
    needed = STATE_KEYS.get(state.get("stage"), ()) if isinstance(state, dict) else ()
    if not isinstance(state, dict) or any(key not in state for key in needed):
        raise InputError(f"{path}: not a training checkpoint state (a {'/'.join(needed) or 'stage'} is missing)")
    return state


STATE_KEYS = {
    "head": ("history", "best_val_loss", "bad_epochs"),
    "finetune": ("epoch", "history", "best_val_loss", "bad_epochs"),
    "done": ("history",),
}
"""What a checkpoint state of each stage must hold for training to continue from it."""


def _augmented_features(
    clf: Classifier, split: Split, copies: int, seed: int, augment: AugmentConfig, reporter: Reporter
) -> tuple:
    """Frozen-backbone features of the train crops and of ``copies`` augmented versions of them."""
    reporter.start("Backbone features", copies + 1)
    feats, labels = [], []
    for copy in range(copies + 1):
        images = split.images if copy == 0 else augment_batch(split.images, np.random.default_rng(seed + copy), augment)
        feats.append(clf.features.predict(images.astype(np.float32), batch_size=64, verbose=0))
        labels.append(split.labels)
        reporter.advance(1)
    return np.concatenate(feats), np.concatenate(labels)


def fit_and_export(config: TrainConfig, classes: list[str], splits: dict[str, Split], reporter: Reporter) -> FitResult:
    keras.utils.set_random_seed(config.seed)
    spec = backbone_spec(config.backbone)
    weights = resolve_weights(config.weights)
    if weights is None:
        reporter.message(
            f"WARNING: {config.backbone} has no pretrained weights here: training FROM SCRATCH "
            "(expect lower accuracy; pass --weights FILE for ImageNet weights)"
        )
    n = len(classes)
    clf = build_classifier(spec, config.size, weights, n, config.alpha, config.dropout)
    folder = Path(config.out) / CHECKPOINT_DIR
    folder.mkdir(exist_ok=True)
    state = _load_state(folder)
    weights_by_crop = sample_weights(splits["train"], n, config.balance_sources)
    val_x, val_y = splits["val"].images.astype(np.float32), one_hot(splits["val"].labels, n)
    has_val = len(val_y) > 0
    if not has_val:
        reporter.message("no validation images: early stopping and the kept checkpoint follow the training loss")
    if state.get("stage") == "done" or (state.get("stage") == "head" and config.finetune_epochs == 0):
        reporter.message("training had finished: exporting its best checkpoint")
    try:
        if state.get("stage") is None:
            state = _train_head(clf, config, splits, weights_by_crop, reporter, folder)
        if config.finetune_epochs > 0:
            fraction = config.finetune_fraction if weights is not None else 1.0  # from scratch: train it all
            state = _finetune(
                clf, config, splits, weights_by_crop, reporter, folder, state, val_x, val_y, has_val, fraction
            )
    except KeyboardInterrupt:
        if state.get("stage") is None:
            raise TrainingInterrupted(
                "interrupted before the first checkpoint: nothing to resume; run the same command again"
            ) from None
        done = state.get("epoch", 0) if state.get("stage") == "finetune" else 0
        raise TrainingInterrupted(
            f"interrupted; {config.out} holds a checkpoint ({state.get('stage') or 'before the first'} stage, "
            f"{done} fine-tune epochs done); continue with: maskwatch train {config.dataset} --out {config.out} "
            "--resume"
        ) from None
    with quiet():  # Keras warns that the checkpoint's optimizer state is not loaded: it is not needed here
        _load_checkpoint_weights(clf.model, folder / "best.weights.h5")
    test = splits["test"]
    evaluation = None  # no test images (--test 0): nothing to evaluate, and Keras cannot predict on none
    if len(test.labels):
        probabilities = clf.model.predict(test.images.astype(np.float32), batch_size=64, verbose=0)
        evaluation = Evaluation(classes, test.labels, probabilities, sources=[])
    val_accuracy = None
    if has_val:
        predicted = clf.model.predict(val_x, batch_size=64, verbose=0).argmax(1)
        val_accuracy = round(float((predicted == splits["val"].labels).mean()), 4)
    save_keras_model(clf.model, Path(config.out) / KERAS_MODEL)
    sample = next((s.images for s in (test, splits["val"], splits["train"]) if len(s.images)), test.images)
    reporter.message(f"exporting to ONNX ({config.backbone})")
    try:
        onnx_model = onnx_bytes(clf.model)
        difference = onnx_parity(clf.model, onnx_model, sample[:PARITY_IMAGES])
        if difference >= 1e-4:
            raise ModelError(f"ONNX export disagrees with Keras (max abs difference {difference:.2e} ≥ 1e-4)")
    except ModelError as exc:
        raise ModelError(
            f"{exc}; the trained model is kept ({config.out}/{CHECKPOINT_DIR}, {config.out}/{KERAS_MODEL}): "
            f"retry the export with: maskwatch train {config.dataset} --out {config.out} --resume"
        ) from None
    return FitResult(
        evaluation=evaluation,
        val_accuracy=val_accuracy,
        parity=difference,
        parameters=int(clf.model.count_params()),
        onnx=onnx_model,
        history=state["history"],
        stage_starts={"fine-tune": state.get("head_epochs_run", 0)},
    )


def _train_head(
    clf: Classifier,
    config: TrainConfig,
    splits: dict[str, Split],
    weights: np.ndarray,
    reporter: Reporter,
    folder: Path,
) -> dict[str, Any]:
    n = clf.model.output_shape[-1]
    augment = AugmentConfig(low_res=config.low_res)
    train_f, train_l = _augmented_features(clf, splits["train"], config.augment_copies, config.seed, augment, reporter)
    val = splits["val"]
    has_val = len(val.labels) > 0
    val_f = clf.features.predict(val.images.astype(np.float32), batch_size=64, verbose=0) if has_val else None
    clf.head.compile(
        optimizer=keras.optimizers.Adam(config.head_lr), loss="categorical_crossentropy", metrics=["accuracy"]
    )
    batch = config.batch_size
    reporter.start("Head (frozen backbone)", config.head_epochs * steps(len(train_l), batch))
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss" if has_val else "loss", patience=max(config.patience, 5), restore_best_weights=True
    )
    history = clf.head.fit(
        train_f,
        one_hot(train_l, n),
        sample_weight=np.tile(weights, config.augment_copies + 1),  # the crops, then each augmented copy
        batch_size=batch,
        epochs=config.head_epochs,
        validation_data=(val_f, one_hot(val.labels, n)) if has_val else None,
        shuffle=True,
        verbose=0,
        callbacks=[stop, ProgressCallback(reporter, "head")],
    ).history
    _save_weights(clf.model, folder / "best.weights.h5")
    _save_weights(clf.model, folder / "last.weights.h5")
    val_losses = history.get("val_loss", history["loss"])
    state = {
        "stage": "head",
        "epoch": 0,
        "best_val_loss": float(min(val_losses)),
        "bad_epochs": 0,
        "head_epochs_run": len(history["loss"]),
        "history": {k: [float(v) for v in vals] for k, vals in history.items()},
    }
    write_json(folder / STATE_FILE, state)
    return state


def _finetune(
    clf: Classifier,
    config: TrainConfig,
    splits: dict[str, Split],
    weights: np.ndarray,
    reporter: Reporter,
    folder: Path,
    state: dict[str, Any],
    val_x: np.ndarray,
    val_y: np.ndarray,
    has_val: bool,
    fraction: float,
) -> dict[str, Any]:
    if state.get("stage") == "done":
        return state
    if state.get("stage") == "finetune":
        _load_checkpoint_weights(clf.model, folder / "last.weights.h5")
        reporter.message(f"resuming fine-tuning after epoch {state['epoch']}")
    trainable = unfreeze_top(clf.base, fraction)
    reporter.message(f"fine-tuning the top {trainable} weighted layers of {config.backbone}")
    clf.model.compile(
        optimizer=keras.optimizers.Adam(config.finetune_lr), loss="categorical_crossentropy", metrics=["accuracy"]
    )
    data = AugmentedCrops(
        splits["train"],
        clf.model.output_shape[-1],
        config.batch_size,
        config.seed,
        weights,
        AugmentConfig(low_res=config.low_res),
    )
    start = state.get("epoch", 0) if state.get("stage") == "finetune" else 0
    reporter.start("Fine-tuning", (config.finetune_epochs - start) * len(data))
    for epoch in range(start, config.finetune_epochs):
        data.set_epoch(epoch)
        began = time.monotonic()
        logs = clf.model.fit(
            data,
            epochs=1,
            verbose=0,
            validation_data=(val_x, val_y) if has_val else None,
            callbacks=[ProgressCallback(reporter, f"epoch {epoch + 1}/{config.finetune_epochs}")],
        ).history
        for key, values in logs.items():
            state["history"].setdefault(key, []).append(float(values[-1]))
        val_loss = float(logs["val_loss" if has_val else "loss"][-1])
        _save_weights(clf.model, folder / "last.weights.h5")
        improved = val_loss < state["best_val_loss"] - 1e-4
        if improved:
            _save_weights(clf.model, folder / "best.weights.h5")
            state["best_val_loss"], state["bad_epochs"] = val_loss, 0
        else:
            state["bad_epochs"] += 1
        state.update(stage="finetune", epoch=epoch + 1)
        write_json(folder / STATE_FILE, state)
        acc = logs.get("val_accuracy", logs.get("accuracy"))[-1]
        which = "val" if has_val else "train"
        reporter.message(
            f"fine-tune epoch {epoch + 1}: {which} loss {val_loss:.4f}, {which} accuracy {acc:.4f} "
            f"({time.monotonic() - began:.0f} s){' *' if improved else ''}"
        )
        if state["bad_epochs"] >= config.patience:
            reporter.message(f"early stop: no better validation loss for {config.patience} epochs")
            break
    state["stage"] = "done"
    write_json(folder / STATE_FILE, state)
    return state


def write_bundle(
    folder: Path,
    onnx_bytes: bytes,
    config: TrainConfig,
    classes: list[str],
    metrics: dict,
    manifest_sha: str,
    trained_on_photos: list[str],
) -> Path:
    spec = backbone_spec(config.backbone)
    meta = BundleMeta(
        classes=classes,
        input_size=config.size,
        crop=CropSpec(margin=config.margin, detector=config.detector),
        backbone=spec.describe(config.alpha) + ("" if resolve_weights(config.weights) else " (from scratch)"),
        metrics=metrics,
        split_manifest_sha256=manifest_sha,
        train_command=" | ".join([config.command, *config.resumed]) if config.resumed else config.command,
        versions=versions(),
        created=now_iso(),
        trained_on_photos=trained_on_photos,
    )
    return save_bundle(folder, onnx_bytes, meta)
