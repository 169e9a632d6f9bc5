"""``maskwatch train``: transfer learning from a folder dataset to a model bundle."""

from __future__ import annotations

import shlex
import sys

import typer
from rich.markup import escape

from maskwatch.cli.app import app, console, format_recall
from maskwatch.training.classifier.shared import TrainConfig

_D = TrainConfig(dataset="", out="")
"""Defaults of every option: the run settings' own (one definition)."""


@app.command()
def train(
    dataset: str = typer.Argument(..., help="Folder with one subfolder of images per class."),
    out: str = typer.Option(..., "--out", "-o", help="Run folder: split, checkpoints, reports and the bundle."),
    backbone: str = typer.Option(
        _D.backbone, help="mobilenetv2, mobilenet, xception, densenet169, efficientnetb0 or smallcnn."
    ),
    weights: str = typer.Option(
        _D.weights, help="ImageNet weights: 'imagenet' (Keras download), a local .h5 file, or 'none' (from scratch)."
    ),
    alpha: float = typer.Option(_D.alpha, min=0.1, max=1.4, help="Width multiplier of MobileNet backbones."),
    size: int = typer.Option(
        _D.size, min=32, max=1024, help="Input size of the classifier (square crops; xception needs 71 or more)."
    ),
    margin: float = typer.Option(
        _D.margin, min=0.0, max=1.0, help="Crop margin around the detected face (as detect uses)."
    ),
    detector: str = typer.Option(_D.detector, help="Face detector that cuts the crops (the one detect runs)."),
    seed: int = typer.Option(_D.seed, help="Seed of the split, augmentation and initialisation."),
    val: float = typer.Option(
        _D.fractions[1],
        min=0.0,
        max=0.5,
        help="Fraction of images for validation (0: early stopping follows the training loss).",
    ),
    test: float = typer.Option(
        _D.fractions[2], min=0.0, max=0.5, help="Fraction of images for test (0: no test evaluation)."
    ),
    head_epochs: int = typer.Option(_D.head_epochs, min=1, help="Epochs of the head on frozen-backbone features."),
    finetune_epochs: int = typer.Option(
        _D.finetune_epochs, min=0, help="Epochs of fine-tuning the top of the backbone."
    ),
    finetune_fraction: float = typer.Option(
        _D.finetune_fraction, min=0.0, max=1.0, help="Share of backbone layers fine-tuned."
    ),
    batch_size: int = typer.Option(_D.batch_size, min=1),
    head_lr: float = typer.Option(_D.head_lr, min=1e-6, max=1.0, help="Learning rate of the head stage."),
    finetune_lr: float = typer.Option(
        _D.finetune_lr, min=1e-6, max=1.0, help="Learning rate of the fine-tuning stage."
    ),
    augment_copies: int = typer.Option(
        _D.augment_copies, min=0, help="Augmented copies of each image for the head stage."
    ),
    balance_sources: bool = typer.Option(
        _D.balance_sources,
        "--balance-sources",
        help="Balance classes within each source (a subfolder of the class folder, else a file-name family).",
    ),
    low_res: float = typer.Option(
        _D.low_res,
        "--low-res",
        min=0.0,
        max=1.0,
        help="Share of augmented crops shrunk to a small face's pixels (12-48 px) and enlarged back.",
    ),
    patience: int = typer.Option(_D.patience, min=1, help="Early stopping: epochs without a better validation loss."),
    manifest: str = typer.Option(
        None, help="Reuse the split of an earlier run (its split.csv); --per-class, --val, --test do not apply."
    ),
    cache: str = typer.Option(None, help="Face-crop cache folder [~/.cache/maskwatch]; 'none' disables it."),
    per_class: int = typer.Option(None, min=2, help="Use only this many images per class (quick runs)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run in --out."),
) -> None:
    """Train a mask classifier (transfer learning) and export a model bundle with reports."""
    from maskwatch.cli.progress import RichReporter
    from maskwatch.errors import require_extra
    from maskwatch.training.classifier.trainer import train as run_training

    config = TrainConfig(
        dataset=dataset,
        out=out,
        backbone=backbone,
        weights=weights,
        alpha=alpha,
        size=size,
        margin=margin,
        detector=detector or _D.detector,
        seed=seed,
        fractions=(round(1.0 - val - test, 6), val, test),
        head_epochs=head_epochs,
        finetune_epochs=finetune_epochs,
        finetune_fraction=finetune_fraction,
        batch_size=batch_size,
        head_lr=head_lr,
        finetune_lr=finetune_lr,
        augment_copies=augment_copies,
        balance_sources=balance_sources,
        low_res=low_res,
        patience=patience,
        manifest=manifest,
        cache=cache,
        per_class_limit=per_class,
        command="maskwatch " + shlex.join(sys.argv[1:]),
    )
    require_extra("keras", "train", "maskwatch train")
    require_extra("tensorflow", "train", "maskwatch train")
    # every option, the dataset and --out are checked inside (one line each) before anything is written
    with RichReporter() as reporter:
        metrics = run_training(config, reporter, resume=resume)
    test_figures = metrics["test"]
    if "accuracy" in test_figures:
        console.print(
            f"test accuracy [bold]{test_figures['accuracy']:.4f}[/] "
            f"(95% CI {test_figures['accuracy_ci95'][0]:.4f}-{test_figures['accuracy_ci95'][1]:.4f}) on "
            f"{test_figures['n']} images; recall "
            + ", ".join(f"{escape(c)} {format_recall(r)}" for c, r in test_figures["recall"].items())
            + f"; {metrics['train_seconds']:.0f} s",
            markup=True,
        )
    else:
        console.print(f"{test_figures['note']}; {metrics['train_seconds']:.0f} s", highlight=False)
    console.print(f"bundle: {out}/bundle  (try: maskwatch detect IMAGE --model {out}/bundle)")
