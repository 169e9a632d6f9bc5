"""Exports of a classifier bundle: an int8 ONNX bundle (runs anywhere a bundle runs) or a TFLite model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from maskwatch.errors import InputError
from maskwatch.export import measure
from maskwatch.export.common import check_format, export_report, now, prepare_out, write_report
from maskwatch.export.data import Progress, classifier_crops
from maskwatch.export.quantize import SETTINGS, quantize
from maskwatch.inference.bundle import Bundle, load_bundle, save_bundle
from maskwatch.inference.classifier import MaskClassifier
from maskwatch.inference.onnx_runtime import model_sha256

CALIBRATION_BATCH = 32


def export_bundle(
    model: str | Path,
    fmt: str,
    out: str | Path,
    dataset: str | Path,
    manifest: str | Path | None = None,
    cache: str | None = None,
    calibration_images: int = 256,
    progress: Progress | None = None,
    rounds: int = measure.ROUNDS,
) -> dict[str, Any]:
    """Export a bundle to ``out`` (a new folder) and return the parity and speed report written beside it.

    ``rounds``: timing rounds (fewer is quicker and noisier)."""
    check_format(fmt)
    source = load_bundle(model)
    if not Path(dataset).is_dir():
        raise InputError(f"{dataset}: calibration dataset not found (a folder with one subfolder per class)")
    if fmt == "tflite":
        from maskwatch.export.tflite import check_tflite_source

        check_tflite_source(source)  # before any crops are cut: a bundle without its run fails at once
    out = prepare_out(out, source.source)
    crops = classifier_crops(source, dataset, manifest, cache, calibration_images, progress)
    if fmt == "tflite":
        from maskwatch.export.tflite import export_tflite

        return export_tflite(source, out, crops, rounds)
    return _export_int8(source, str(model), out, crops, rounds)


def _export_int8(source: Bundle, name: str, out: Path, crops: Any, rounds: int) -> dict[str, Any]:
    """``name``: the bundle as the user gave it (``maskwatch:default`` is recorded as that, not as a folder)."""
    from maskwatch.pipeline import Detector

    float_classifier = MaskClassifier(source, threads=measure.THREADS)
    input_name = float_classifier.input_name
    feeds = [
        {input_name: crops.calibration[i : i + CALIBRATION_BATCH].astype(np.float32)}
        for i in range(0, len(crops.calibration), CALIBRATION_BATCH)
    ]
    int8 = quantize(source.onnx, feeds)
    shown = name if name.startswith("maskwatch:") else source.source
    export_info: dict[str, Any] = {
        "format": "onnx-int8",
        "source_bundle": shown,
        "source_model_sha256": model_sha256(source.onnx),
        "calibration": crops.description,
        "quantisation": SETTINGS,
        "created": now(),
    }
    meta = source.meta.model_copy(update={"export": export_info, "created": now()})
    exported = Bundle(meta=meta, onnx=int8, source=str(out))
    int8_classifier = MaskClassifier(exported, threads=measure.THREADS)
    parity = measure.classifier_parity(float_classifier.predict, int8_classifier.predict, crops.test, crops.test_labels)
    speed = measure.classifier_speed(
        {"float": float_classifier.predict, "onnx-int8": int8_classifier.predict}, crops.test
    )
    e2e = measure.end_to_end(
        {
            "float": Detector(model=source, threads=measure.THREADS),
            "onnx-int8": Detector(model=exported, threads=measure.THREADS),
        },
        rounds * measure.CALLS_PER_ROUND,
    )
    report = export_report("onnx-int8", shown, out, parity, speed, e2e)
    metrics = {
        **source.meta.metrics,
        "test": _test_summary(int8_classifier, crops),
        "float_test": source.meta.metrics.get("test"),
    }
    save_bundle(out, int8, meta.model_copy(update={"export": {**export_info, "parity": parity}, "metrics": metrics}))
    write_report(out, report)
    return report


def _test_summary(classifier: MaskClassifier, crops: Any) -> dict[str, Any]:
    """The exported model's own test-split figures (accuracy with its interval, recall, ECE), as training reports
    them for a bundle: what ``maskwatch info`` shows for the export."""
    from maskwatch.evaluation.reports import Evaluation

    probabilities = np.concatenate([classifier.predict(crops.test[i : i + 64]) for i in range(0, len(crops.test), 64)])
    return Evaluation(classifier.classes, crops.test_labels, probabilities, sources=[]).summary()
