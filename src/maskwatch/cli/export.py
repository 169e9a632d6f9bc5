"""``maskwatch export``: int8 ONNX and TFLite copies of a bundle or a detector, with parity and speed measured."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from maskwatch.cli.app import app, console, say_warning

DEFAULT_FACE_MASK = "../shared/data/face-mask"
DEFAULT_SCENES = "../shared/data/scenes"
"""The same defaults as ``train-detector``'s."""


@app.command()
def export(
    model: str = typer.Argument(None, help="Model bundle folder or maskwatch:NAME (or give --detector)."),
    fmt: str = typer.Option(..., "--format", "-f", help="onnx-int8 or tflite (tflite: bundles from a training run)."),
    out: Path = typer.Option(..., "--out", "-o", help="New folder for the exported bundle or detector."),
    detector: str = typer.Option(None, "--detector", help="Export this face detector instead of a bundle."),
    dataset: str = typer.Option(
        DEFAULT_FACE_MASK, "--dataset", help="Bundle: folder dataset whose train split calibrates, test split measures."
    ),
    manifest: str = typer.Option(
        None, "--manifest", help="Bundle: the training run's split.csv [the run's own, else the split train makes]."
    ),
    scenes: str = typer.Option(
        DEFAULT_SCENES,
        "--scenes",
        help="Detector: box-annotated photos (images/, annotations/); train half calibrates.",
    ),
    calibration: int = typer.Option(None, "--calibration-images", min=1, help="Images to calibrate on [256 / 64]."),
    cache: str = typer.Option(None, help="Face-crop cache folder [~/.cache/maskwatch]; 'none' disables it."),
    rounds: int = typer.Option(12, "--rounds", min=1, help="Timing rounds (fewer: quicker, noisier figures)."),
) -> None:
    """Quantise to int8 (or convert to TFLite), then report parity with the float model and speed on 2 cores."""
    from maskwatch.cli.progress import RichReporter
    from maskwatch.errors import InputError

    if (model is None) == (detector is None):
        raise InputError("give a bundle (BUNDLE) or a detector (--detector NAME), one of the two")
    from maskwatch.export import REPORT_FILE, export_bundle, export_detector

    with RichReporter() as reporter:
        stages: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in stages:
                stages[stage] = 0
                reporter.start(stage, total)
            reporter.advance(done - stages[stage], f"{done}/{total}")
            stages[stage] = done

        if detector is not None:
            report = export_detector(detector, fmt, out, scenes, calibration or 64, progress, rounds)
        else:
            report = export_bundle(model, fmt, out, dataset, manifest, cache, calibration or 256, progress, rounds)
    _print(report)
    console.print(f"wrote {out} (figures: {out / REPORT_FILE})")
    loss = accuracy_loss(report["parity"])
    if loss:
        say_warning(f"the {report['format']} copy loses the float model's accuracy ({loss}); keep the float one")


ACCURACY_TOLERANCE = 0.005
"""Test accuracy or face AP may drop this much (half a point) before an export is said not to keep accuracy."""


def accuracy_loss(parity: dict) -> str | None:
    """'accuracy 0.990 → 0.970' when the export's accuracy (or face AP) is more than the tolerance below float's."""
    for key in ("accuracy", "face_ap"):
        before, after = parity.get(f"{key}_float"), parity.get(f"{key}_export")
        if before is not None and after is not None and after < before - ACCURACY_TOLERANCE:
            return f"{key.replace('_', ' ')} {before:.3f} → {after:.3f}"
    return None


def _print(report: dict) -> None:
    kinds = list(report["speed_ms"])
    table = Table(title=f"{report['source']} → {report['format']} (speed on {report['threads']} threads)")
    table.add_column("figure")
    for kind in kinds:
        table.add_column(kind, justify="right")
    parity = report["parity"]
    for key in sorted(k.removesuffix("_float") for k in parity if k.endswith("_float")):
        values = (parity[f"{key}_float"], parity.get(f"{key}_export"))
        table.add_row(key.replace("_", " "), *["-" if v is None else f"{v:.4f}" for v in values])
    for key in report["speed_ms"][kinds[0]]:
        table.add_row(
            key.replace("ms_", "ms ").replace("_", " "), *[f"{report['speed_ms'][k][key]:.2f}" for k in kinds]
        )
    for key in report.get("end_to_end_fps", {}).get(kinds[0], {}):
        table.add_row(key.replace("_", " "), *[f"{report['end_to_end_fps'][k][key]:.1f}" for k in kinds])
    console.print(table)
    for key, value in parity.items():
        if not key.endswith(("_float", "_export")):
            console.print(f"{key.replace('_', ' ')}: {value}")
