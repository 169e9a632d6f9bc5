"""``maskwatch info``: what this installation has (bundles, detectors, versions)."""

from __future__ import annotations

import typer

from maskwatch.cli.app import app, console, format_recall, say_warning


@app.command()
def info(model: str = typer.Option(None, help="Model bundle: maskwatch:NAME or a folder.")) -> None:
    """Show packaged model bundles, available face detectors and a bundle's metrics."""
    from maskwatch import __version__
    from maskwatch.detectors import DEFAULT_DETECTOR, PHOTO_DETECTORS, detector_names
    from maskwatch.inference.bundle import load_bundle, packaged_bundles
    from maskwatch.inference.classifier import MaskClassifier

    console.print(f"maskwatch {__version__}")
    console.print(f"bundles: {', '.join(packaged_bundles()) or 'none'}")
    photo_default = PHOTO_DETECTORS.get(DEFAULT_DETECTOR, DEFAULT_DETECTOR)
    console.print(
        f"detectors: {', '.join(detector_names())} (default: {DEFAULT_DETECTOR} for video, {photo_default} for photos)"
    )
    bundle = load_bundle(model)
    MaskClassifier(bundle, threads=1)  # loads the ONNX model: a bundle detect would refuse is refused here too
    meta = bundle.meta
    console.print(f"model: {bundle.source}")
    console.print(f"  classes: {', '.join(meta.classes)}  input: {meta.input_size}px  backbone: {meta.backbone}")
    photo = PHOTO_DETECTORS.get(meta.crop.detector, meta.crop.detector)
    console.print(
        f"  faces found by: {meta.crop.detector} in video, {photo} in photos (unless --detector names one for both)"
    )
    test = meta.metrics.get("test")
    if isinstance(test, dict) and "accuracy" in test:  # metrics are free-form: shown as far as they are well-formed
        ci = test.get("accuracy_ci95")
        low, high = ci if isinstance(ci, list) and len(ci) == 2 else (None, None)
        recalls = test.get("recall") if isinstance(test.get("recall"), dict) else {}
        recall = ", ".join(
            f"{c} {format_recall(r) if r is None or isinstance(r, (int, float)) else r}" for c, r in recalls.items()
        )
        console.print(
            f"  test split: accuracy {test['accuracy']} (95 % CI {low}-{high}, {test.get('n')} images);"
            f" recall {recall}; ECE {test.get('ece')}"
        )
    export = meta.export or {}
    if export.get("format"):
        float_accuracy = (meta.metrics.get("float_test") or {}).get("accuracy")
        console.print(
            f"  export: {export['format']} of {export.get('source_bundle')}"
            + (f" (float test accuracy {float_accuracy})" if float_accuracy is not None else "")
        )
    for key, value in meta.metrics.items():
        if isinstance(value, (int, float, str)):
            console.print(f"  {key}: {value}")
    if meta.crop.detector not in detector_names():  # detect refuses it unless --detector names another
        say_warning(f"{bundle.source}: bundle.json names an unknown detector {meta.crop.detector!r}")
