"""A detector training run's settings, in a module of their own: ``maskwatch train-detector`` reads its option
defaults here without loading the training code."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    workers: int = 0
    """Sample-making processes (0: one thread beside the step, reproducible); a GPU needs several."""
    holdout_fold: int | None = None
    """A fold of the train-half photos kept out of training and validated on at each checkpoint (None: none)."""
    folds: int = 3
    scenes_split: str = "train"
    """Which scenes train: the train half, or ``all`` (a model shipped once its recipe was judged on the test half)."""
    extra: dict = field(default_factory=dict)
