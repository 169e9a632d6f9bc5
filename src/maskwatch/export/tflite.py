"""TFLite export of a classifier bundle, from the Keras weights of the training run that made it.

A bundle holds ONNX only, and the training extra has no ONNX → TensorFlow converter (onnx2tf pins its own
TensorFlow, NumPy and ONNX Runtime versions), so the route is the run's Keras model: ``maskwatch train`` keeps
``RUN/config.json`` and ``RUN/checkpoint/best.weights.h5`` beside ``RUN/bundle``; the same model is rebuilt,
loaded with those weights, saved as a TensorFlow SavedModel and converted with TensorFlow's TFLite converter
(float32: the same numbers as the ONNX model, for TFLite runtimes on phones and microcontroller-class boards).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from maskwatch.errors import ModelError, first_line, require_extra
from maskwatch.export import measure
from maskwatch.export.common import export_report, now, write_report
from maskwatch.export.data import CropSets
from maskwatch.inference.bundle import META_FILE, Bundle
from maskwatch.inference.classifier import MaskClassifier

TFLITE_FILE = "model.tflite"
RUN_CONFIG = "config.json"
RUN_WEIGHTS = Path("checkpoint") / "best.weights.h5"
"""Where ``maskwatch train`` keeps a run's settings and its kept weights, relative to the run folder."""


def check_tflite_source(bundle: Bundle) -> Path:
    """The training run folder of ``bundle``, or one line saying why TFLite cannot be made from it."""
    run = Path(bundle.source).parent
    if not ((run / RUN_CONFIG).is_file() and (run / RUN_WEIGHTS).is_file()):
        raise ModelError(
            f"{bundle.source}: TFLite export needs the Keras weights of the training run that made the bundle "
            f"(RUN/{RUN_WEIGHTS.as_posix()} beside RUN/bundle) and this bundle has none; export the bundle of a "
            "`maskwatch train` run (see docs/export.md)"
        )
    require_extra("tensorflow", "train", "TFLite export")
    return run


def keras_model(run: Path, classes: list[str]) -> Any:
    """The run's classifier rebuilt from its config and loaded with its kept weights."""
    from maskwatch.training.classifier.backbones import backbone_spec, quiet
    from maskwatch.training.classifier.keras_run import _load_checkpoint_weights
    from maskwatch.training.classifier.model import build_classifier
    from maskwatch.training.classifier.trainer import load_config

    config = load_config(run)
    with quiet():
        clf = build_classifier(backbone_spec(config.backbone), config.size, None, len(classes), config.alpha)
        _load_checkpoint_weights(clf.model, run / RUN_WEIGHTS)
        clf.model.predict(np.zeros((1, config.size, config.size, 3), np.float32), verbose=0)  # exports need a call
    return clf.model


def convert(model: Any) -> bytes:
    """TFLite flatbuffer of a Keras model, through a SavedModel (Keras 3's own export)."""
    import tensorflow as tf

    from maskwatch.training.classifier.backbones import quiet

    with tempfile.TemporaryDirectory(prefix="maskwatch-tflite-") as tmp:
        try:
            with quiet():
                model.export(str(Path(tmp) / "saved"), format="tf_saved_model", verbose=False)
                return tf.lite.TFLiteConverter.from_saved_model(str(Path(tmp) / "saved")).convert()
        except Exception as exc:  # the converter raises many kinds
            raise ModelError(f"TFLite conversion failed: {first_line(exc)}") from None


class TFLiteClassifier:
    """Probabilities from a TFLite classifier with TensorFlow's interpreter, resized to each batch."""

    def __init__(self, model: bytes, threads: int = measure.THREADS) -> None:
        import tensorflow as tf

        self.interpreter = tf.lite.Interpreter(model_content=model, num_threads=threads)
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.batch = 0

    def predict(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) != self.batch:
            self.interpreter.resize_tensor_input(self.input, [len(crops), *crops.shape[1:]])
            self.interpreter.allocate_tensors()
            self.batch = len(crops)
        self.interpreter.set_tensor(self.input, crops.astype(np.float32))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output).copy()


def export_tflite(source: Bundle, out: Path, crops: CropSets, rounds: int = measure.ROUNDS) -> dict[str, Any]:
    """Write ``out/model.tflite`` and a ``bundle.json`` recording the export; measure it against the ONNX model."""
    run = check_tflite_source(source)
    tflite = convert(keras_model(run, source.classes))
    float_classifier = MaskClassifier(source, threads=measure.THREADS)
    lite = TFLiteClassifier(tflite)
    parity = measure.classifier_parity(float_classifier.predict, lite.predict, crops.test, crops.test_labels)
    speed = measure.classifier_speed({"float": float_classifier.predict, "tflite": lite.predict}, crops.test, rounds)
    export_info = {
        "format": "tflite",
        "model_file": TFLITE_FILE,
        "source_bundle": source.source,
        "source_run": str(run),
        "calibration": crops.description,
        "parity": parity,
        "created": now(),
    }
    (out / TFLITE_FILE).write_bytes(tflite)
    meta = source.meta.model_copy(update={"export": export_info, "created": now()})
    (out / META_FILE).write_text(json.dumps(meta.model_dump(), indent=2) + "\n", encoding="utf-8")
    report = export_report("tflite", source.source, out, parity, speed)
    write_report(out, report)
    return report
