"""``maskwatch train-detector``: train the maskface detector and export it to ONNX."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import typer

from maskwatch.cli.app import app, console, console_err
from maskwatch.training.detector.config import TrainConfig

_D = TrainConfig()
"""Defaults of every option: the run settings' own (one definition)."""


def _optional(value: str | None) -> str | None:
    return None if value is None or value.lower() in ("", "none") else value


DEFAULT_SCENES = Path(_D.scenes)
"""This project's layout: the data beside the checkout (the defaults are relative to the current folder)."""


@app.command("train-detector")
def train_detector_command(
    scenes: Path = typer.Option(
        DEFAULT_SCENES, "--scenes", help="Scenes folder (images/ + annotations/); train half only."
    ),
    face_mask: str = typer.Option(
        _D.face_mask, "--face-mask", help="Face crops (with_mask/, without_mask/) to paste; 'none'."
    ),
    backbone_weights: str = typer.Option(
        _D.backbone_weights,
        "--backbone-weights",
        help="MobileNetV2 alpha 0.35 no-top weights file; 'imagenet' (needs internet) or 'none' (random).",
    ),
    out: Path = typer.Option(Path(_D.out), "--out", "-o", help="Run folder: checkpoint, ONNX, metadata."),
    steps: int = typer.Option(_D.steps, "--steps", min=1, help="Optimiser steps."),
    batch: int = typer.Option(_D.batch, "--batch", min=1, help="Images per step."),
    size: int = typer.Option(_D.size, "--size", min=64, help="Training sample side (multiple of 32)."),
    input_size: int = typer.Option(
        _D.input_size, "--input-size", min=32, help="Inference long side stored in the metadata."
    ),
    lr: float = typer.Option(_D.lr, "--lr", min=0.0, help="Peak learning rate (AdamW, cosine decay)."),
    width: int = typer.Option(_D.width, "--width", min=8, help="FPN / head channels."),
    limit_scenes: int = typer.Option(
        _D.limit_scenes or 0, "--limit-scenes", min=0, help="Use only the first N train scenes (0: all)."
    ),
    crops_per_class: int = typer.Option(
        _D.crops_per_class, "--crops-per-class", min=0, help="Face crops loaded per class."
    ),
    anchor_prob: float = typer.Option(
        _D.anchor_prob,
        "--anchor-prob",
        min=0.0,
        max=1.0,
        help="Share of scene samples scaled around one face (size balance).",
    ),
    anchor_class_power: float = typer.Option(
        _D.anchor_class_power,
        "--anchor-class-power",
        min=0.0,
        max=1.0,
        help="Anchor face classes drawn ∝ count^power: 1 as in the data, 0 balanced.",
    ),
    closeup_prob: float = typer.Option(
        _D.closeup_prob,
        "--closeup-prob",
        min=0.0,
        max=1.0,
        help="Share of samples that are one face crop filling the frame (webcam / portrait close-ups).",
    ),
    negative_prob: float = typer.Option(
        _D.negative_prob,
        "--negative-prob",
        min=0.0,
        max=1.0,
        help="Share of samples of face-like distractors (discs, blobs, textures), half of them with no face.",
    ),
    crowd_prob: float = typer.Option(
        _D.crowd_prob,
        "--crowd-prob",
        min=0.0,
        max=1.0,
        help="Share of samples that are crowds: 10-40 face crops pasted at 6-28 px.",
    ),
    threads: int = typer.Option(
        _D.threads or 0, "--threads", min=0, help="TensorFlow intra-op threads (0: TensorFlow's choice)."
    ),
    workers: int = typer.Option(
        _D.workers,
        "--workers",
        min=0,
        help="Processes making training samples (0: one thread, reproducible); on a GPU use about one per CPU core.",
    ),
    seed: int = typer.Option(_D.seed, "--seed", help="Random seed for sampling and initialisation."),
    checkpoint_every: int = typer.Option(
        _D.checkpoint_every, "--checkpoint-every", min=1, help="Save the checkpoint every N steps."
    ),
    scenes_split: str = typer.Option(
        _D.scenes_split,
        "--scenes-split",
        help="The scenes to train on: the train half, or all of them (a model to ship once its recipe has been judged "
        "on the test half by a twin trained on the train half).",
    ),
    holdout_fold: int = typer.Option(
        None,
        "--holdout-fold",
        min=0,
        help="Keep this fold of the train-half photos out of training and report recall and face AP on it at every "
        "checkpoint (validation.jsonl).",
    ),
    folds: int = typer.Option(_D.folds, "--folds", min=2, help="Folds of the train-half photos for --holdout-fold."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the checkpoint in --out."),
    init: str = typer.Option(
        "",
        "--init",
        help="Start from a maskface ONNX file ('packaged': the shipped model) to fine-tune it; use a lower --lr. "
        "'yunet' (or a yunet*.onnx path) fine-tunes YuNet-n with a class head instead (the yunet-mask detector).",
    ),
) -> None:
    """Train maskface (MobileNetV2 + FPN + CenterNet head) on the scenes train half plus synthetic scenes."""
    from maskwatch.errors import InputError, require_extra

    # imported lazily below: check before any of it runs. Keras' backend (KERAS_BACKEND) may be JAX or PyTorch
    # where TensorFlow is missing (a GPU host with JAX only); the ONNX export then waits for a --resume with TensorFlow.
    backend = os.environ.get("KERAS_BACKEND", "tensorflow").lower()
    if backend not in ("tensorflow", "jax", "torch"):
        raise InputError(f"KERAS_BACKEND={backend}: train-detector trains on tensorflow, jax or torch")
    needed = ["keras", *(("tensorflow", "onnx") if backend == "tensorflow" else ("onnx",) if init else ())]
    for module in needed:  # onnx reads an --init model and exports; TensorFlow runs the export
        require_extra(module, "train", "maskwatch train-detector")
    if importlib.util.find_spec(backend) is None:
        raise InputError(f"KERAS_BACKEND={backend}, but {backend} is not installed")
    from maskwatch.training.detector.train import TrainConfig, train

    if not (scenes / "annotations").is_dir() or not (scenes / "images").is_dir():
        default = " (the default --scenes, relative to the current folder)" if scenes == DEFAULT_SCENES else ""
        raise InputError(f"{scenes}: expected images/ and annotations/ folders{default}")
    from maskwatch.training.detector.yunet_train import is_yunet_init

    yunet = is_yunet_init(init)
    if init and not yunet:  # checked before TensorFlow starts, so a bad path gets one clean line
        from maskwatch.training.detector.onnx_import import read_init

        read_init(init)
    config = TrainConfig(
        scenes=str(scenes),
        scenes_split=scenes_split,
        face_mask=_optional(face_mask),
        backbone_weights=_optional(backbone_weights),
        out=str(out),
        steps=steps,
        batch=batch,
        size=size,
        input_size=input_size,
        lr=lr,
        width=width,
        limit_scenes=limit_scenes or None,
        crops_per_class=crops_per_class,
        anchor_prob=anchor_prob,
        anchor_class_power=anchor_class_power,
        closeup_prob=closeup_prob,
        negative_prob=negative_prob,
        crowd_prob=crowd_prob,
        threads=threads or None,
        workers=workers,
        seed=seed,
        checkpoint_every=checkpoint_every,
        init=init or None,
        holdout_fold=holdout_fold,
        folds=folds,
    )
    if yunet or (resume and (out / "yunet_mask.weights.h5").is_file()):
        from maskwatch.training.detector.yunet_train import train_yunet

        config.init = init or "yunet"
        onnx_path, losses = train_yunet(
            config, resume=resume, log=lambda line: console_err.print(line, highlight=False)
        )
        console.print(f"model: {onnx_path}", highlight=False)
        console.print(
            f"try it: MASKWATCH_YUNET_MASK={onnx_path} maskwatch evaluate-scenes IMAGES ANNOTATIONS "
            "--detector yunet-mask",
            highlight=False,
        )
        return
    onnx_path, losses = train(config, resume=resume, log=lambda line: console_err.print(line, highlight=False))
    if onnx_path is None:  # trained on a backend that cannot export; the checkpoint waits in --out
        console.print(f"checkpoint: {out}", highlight=False)
        return
    console.print(f"model: {onnx_path}", highlight=False)
    console.print(
        f"try it: MASKWATCH_MASKFACE={onnx_path} maskwatch evaluate-scenes IMAGES ANNOTATIONS --detector maskface",
        highlight=False,
    )
