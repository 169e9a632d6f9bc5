"""What both halves of a training run share: its settings, crops, progress reporting and the fit's result.

``trainer`` (every cheap check, no TensorFlow) and ``keras_run`` (the Keras part) both import this module;
``trainer`` imports ``keras_run`` only once the checks have passed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from maskwatch.data.dataset import DEFAULT_FRACTIONS
from maskwatch.inference.crops import DEFAULT_MARGIN
from maskwatch.settings import DEFAULT_DETECTOR

if TYPE_CHECKING:  # the CLI reads TrainConfig's defaults at start: no Matplotlib or scikit-learn for that
    from maskwatch.evaluation.reports import Evaluation

STATE_FILE = "state.json"
CHECKPOINT_DIR = "checkpoint"
KERAS_MODEL = "model.keras"
"""The trained Keras classifier (pixels RGB 0..255 → probabilities), beside the ONNX bundle."""
PARITY_IMAGES = 32


@dataclass
class TrainConfig:
    """Everything a run depends on; saved in RUN_DIR so ``--resume`` continues the same run."""

    dataset: str
    out: str
    backbone: str = "mobilenetv2"
    weights: str | None = "imagenet"
    alpha: float = 0.35
    size: int = 128
    margin: float = DEFAULT_MARGIN
    detector: str = DEFAULT_DETECTOR
    seed: int = 0
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    head_epochs: int = 40
    finetune_epochs: int = 6
    finetune_fraction: float = 0.3
    batch_size: int = 32
    head_lr: float = 1e-3
    finetune_lr: float = 1e-4
    dropout: float = 0.2
    augment_copies: int = 2
    balance_sources: bool = False
    low_res: float = 0.0
    """Share of augmented crops shrunk to a small face's pixels and enlarged back (``AugmentConfig.low_res``)."""
    patience: int = 3
    manifest: str | None = None
    cache: str | None = None
    per_class_limit: int | None = None
    command: str = ""
    resumed: list[str] = field(default_factory=list)


class Reporter(Protocol):
    """Where a run tells its progress (the CLI shows a Rich progress bar)."""

    def start(self, description: str, total: int) -> None: ...
    def advance(self, steps: int = 1, status: str = "") -> None: ...
    def message(self, text: str) -> None: ...


class SilentReporter:
    def start(self, description: str, total: int) -> None:
        pass

    def advance(self, steps: int = 1, status: str = "") -> None:
        pass

    def message(self, text: str) -> None:
        pass


@dataclass
class Split:
    """Crops (N×S×S×3 RGB uint8), labels and file names of one split."""

    images: np.ndarray
    labels: np.ndarray
    names: list[str]
    no_face: int
    sources: list[str] = field(default_factory=list)
    """Source of each crop (a subfolder inside the class folder), for per-source class balance."""


@dataclass
class FitResult:
    """What the Keras part hands back: the test evaluation (None without test images), figures and the model."""

    evaluation: Evaluation | None
    val_accuracy: float | None
    parity: float
    """Largest |Keras - ONNX| probability difference on a few crops."""
    parameters: int
    """Weights of the Keras model (``count_params``), recorded for ``maskwatch compare``."""
    onnx: bytes
    history: dict[str, Any]
    stage_starts: dict[str, int]


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Balanced weights: each class contributes equally to the loss, whatever its size."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return (len(labels) / (n_classes * np.maximum(counts, 1))).astype(np.float32)


def sample_weights(split: Split, n_classes: int, balance_sources: bool) -> np.ndarray:
    """A loss weight per crop (mean 1): balanced by class, or by class within each source.

    Per source matters when sources hold the classes in different shares (crowd
    photos mostly masked, close-ups half and half): a class balanced only overall
    lets a model tie "looks like a crowd photo" to the crowd's majority class.
    """
    labels = split.labels
    if not balance_sources:
        return class_weights(labels, n_classes)[labels]
    weights = np.empty(len(labels), np.float32)
    sources = np.array(split.sources)
    for source in np.unique(sources):
        mine = sources == source
        present = len(np.unique(labels[mine]))  # a source may lack a class: its others share its weight
        weights[mine] = class_weights(labels[mine], n_classes)[labels[mine]] * n_classes / present
    return weights


def one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    return np.eye(n, dtype=np.float32)[labels]


def steps(n: int, batch: int) -> int:
    return max(1, math.ceil(n / batch))
