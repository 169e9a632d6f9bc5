"""``maskwatch evaluate``: reproduce a bundle's report on any folder dataset."""

from __future__ import annotations

import typer
from rich.table import Table

from maskwatch.cli.app import app, console, format_recall, say_warning


@app.command()
def evaluate(
    model: str = typer.Argument(..., help="Model bundle folder or maskwatch:NAME."),
    dataset: str = typer.Argument(..., help="Folder with one subfolder per class (names as the model's classes)."),
    out: str = typer.Option(None, "--out", "-o", help="Write report, confusion matrix, reliability diagram here."),
    manifest: str = typer.Option(None, help="A training run's split.csv: score only the images it lists."),
    split: str = typer.Option(None, help="With --manifest: train, val or test."),
    cache: str = typer.Option(None, help="Face-crop cache folder [~/.cache/maskwatch]; 'none' disables it."),
) -> None:
    """Accuracy with a 95% bootstrap interval, per-class recall, calibration (ECE) and per-source accuracy."""
    from maskwatch.cli.detect import setup_logging
    from maskwatch.cli.progress import RichReporter
    from maskwatch.data.dataset import describe_identical
    from maskwatch.errors import InputError
    from maskwatch.evaluation.classification import evaluate_bundle

    setup_logging()  # "warning: …" lines, e.g. plots skipped without matplotlib
    if split and not manifest:
        raise InputError("--split needs --manifest (the split.csv of a training run)")
    if split and split not in ("train", "val", "test"):
        raise InputError(f"unknown split {split!r}; choose train, val or test")
    with RichReporter() as reporter:
        reporter.start("Face crops", 1)
        summary = evaluate_bundle(
            model, dataset, out, manifest, split, cache, progress=lambda i, n: reporter.advance(0, f"{i}/{n}")
        )
        reporter.advance(1)
    for line in summary["skipped"]:
        console.print(f"skipped {line}", highlight=False)
    if summary["identical_across_classes"]:
        say_warning(describe_identical(summary["identical_across_classes"]))
    table = Table(title=f"{summary['n']} images ({summary['no_face']} without a detected face)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    low, high = summary["accuracy_ci95"]
    table.add_row("accuracy", f"{summary['accuracy']:.4f} (95% CI {low:.4f}-{high:.4f})")
    for cls, recall in summary["recall"].items():
        table.add_row(f"recall {cls}", format_recall(recall))
    table.add_row("expected calibration error", f"{summary['ece']:.4f}")
    for source, row in summary.get("per_source", {}).items():
        table.add_row(f"accuracy, source {source}", f"{row['accuracy']:.4f} (n={row['n']})")
    console.print(table)
    if out:
        console.print(f"report: {out}")
