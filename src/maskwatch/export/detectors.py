"""int8 exports of any registered ONNX face detector, run through the detector's own pre- and post-processing.

The detector is built and run on calibration photos while ``recorded_sessions`` keeps the inputs each of its
ONNX models is given (whatever letterboxing, passes and sizes it uses), so nothing here knows one detector
from another. The export folder maps each float model (by SHA-256) to its int8 copy; ``--detector FOLDER``
builds the same detector with the copies loaded in place of the originals (``maskwatch.detectors.exported``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from maskwatch.detectors import create_detector
from maskwatch.detectors.exported import EXPORT_FORMAT, META_FILE, exported_name
from maskwatch.errors import InputError, ModelError
from maskwatch.export import measure
from maskwatch.export.common import check_format, export_report, now, prepare_out, write_report
from maskwatch.export.data import Progress, scene_photos
from maskwatch.export.quantize import SETTINGS, quantize
from maskwatch.inference.onnx_runtime import create_session, model_sha256, recorded_sessions, substituted_models

PARITY_PHOTOS = 16
"""Test-half photos whose raw model outputs are compared between float and int8."""


def export_detector(
    name: str,
    fmt: str,
    out: str | Path,
    scenes: str | Path,
    calibration_images: int = 64,
    progress: Progress | None = None,
    rounds: int = measure.ROUNDS,
) -> dict[str, Any]:
    """Quantise detector ``name``'s ONNX models on train-half scene photos; measure it on the test half."""
    from maskwatch.pipeline import Detector

    if fmt == "tflite":
        raise InputError("tflite export is for classifier bundles; export a detector with --format onnx-int8")
    check_format(fmt, ("onnx-int8",))
    progress = progress or (lambda stage, i, n: None)
    with recorded_sessions() as sessions:
        float_detector = create_detector(name, min_score=measure.DETECTION_MIN_SCORE, threads=measure.THREADS)
        if not sessions:
            raise ModelError(f"detector {name!r} runs no ONNX model of its own: nothing to quantise")
        photos = scene_photos(scenes, calibration_images)
        out = prepare_out(out)
        for i, image in enumerate(photos.calibration):
            float_detector.detect(image)
            progress("Calibration photos", i + 1, len(photos.calibration))
    models: dict[str, Any] = {}
    for session in sessions:  # one detector may run several models, or one model from several sessions
        entry = models.setdefault(model_sha256(session.model), {"model": session.model, "feeds": []})
        entry["feeds"] += session.feeds
    if not any(entry["feeds"] for entry in models.values()):
        raise ModelError(f"detector {name!r} ran no model on the calibration photos: nothing to calibrate")
    substitutes = {sha: quantize(entry["model"], entry["feeds"]) for sha, entry in models.items() if entry["feeds"]}
    with substituted_models(substitutes):
        int8_detector = create_detector(name, min_score=measure.DETECTION_MIN_SCORE, threads=measure.THREADS)
    progress("Test photos", 0, 2)
    float_figures, float_found = measure.detector_figures(float_detector, photos.test)
    progress("Test photos", 1, 2)
    export_figures, export_found = measure.detector_figures(int8_detector, photos.test)
    progress("Test photos", 2, 2)
    parity: dict[str, Any] = {"n_photos": len(photos.test)}
    parity.update(measure.detection_diff(float_found, export_found))
    parity["raw_outputs_max_abs_diff"] = _outputs_diff(name, substitutes, photos.test)
    parity.update({f"{key}_float": value for key, value in float_figures.items()})
    parity.update({f"{key}_export": value for key, value in export_figures.items()})
    speed = measure.detector_speed({"float": float_detector, "onnx-int8": int8_detector}, rounds)
    with substituted_models(substitutes):
        int8_pipeline = Detector(detector=name, threads=measure.THREADS)
    float_pipeline = Detector(detector=name, threads=measure.THREADS)
    e2e = measure.end_to_end({"float": float_pipeline, "onnx-int8": int8_pipeline}, rounds * measure.CALLS_PER_ROUND)
    files = []
    for i, (sha, int8) in enumerate(substitutes.items()):
        file = "model.onnx" if len(substitutes) == 1 else f"model-{i}.onnx"
        (out / file).write_bytes(int8)
        files.append({"file": file, "replaces_sha256": sha})
    meta = {
        "format": EXPORT_FORMAT,
        "name": exported_name(name, fmt),
        "detector": name,
        "models": files,
        "export": {
            "format": fmt,
            "source_detector": name,
            "calibration": photos.description,
            "quantisation": SETTINGS,
            "parity": parity,
            "created": now(),
        },
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    report = export_report(fmt, name, out, parity, speed, e2e)
    write_report(out, report)
    return report


def _outputs_diff(name: str, substitutes: dict[str, bytes], photos: list) -> float:
    """Max absolute difference of the raw model outputs (float vs int8) on the first test photos."""
    from maskwatch.media.imageio import read_image

    with recorded_sessions() as sessions:
        probe = create_detector(name, threads=measure.THREADS)
        for item in photos[:PARITY_PHOTOS]:
            probe.detect(read_image(item.image_path))
    worst = 0.0
    for session in sessions:
        sha = model_sha256(session.model)
        if sha not in substitutes or not session.feeds:
            continue
        int8 = create_session(substitutes[sha], threads=measure.THREADS)
        worst = max(worst, measure.outputs_max_abs_diff(session.session, int8, session.feeds))
    return worst
