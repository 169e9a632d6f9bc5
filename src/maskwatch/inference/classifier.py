"""Mask classifier: all face crops of a frame in one batched ONNX Runtime call."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maskwatch.errors import ModelError
from maskwatch.inference.bundle import Bundle, load_bundle
from maskwatch.inference.onnx_runtime import create_session


class MaskClassifier:
    """Turns RGB face crops (N×S×S×3 uint8) into class probabilities (N×C)."""

    def __init__(self, model: str | Path | Bundle | None = None, threads: int | None = None) -> None:
        self.bundle = model if isinstance(model, Bundle) else load_bundle(model)
        self.classes = list(self.bundle.meta.classes)
        self.input_size = self.bundle.meta.input_size
        self.margin = self.bundle.meta.crop.margin
        self.session = create_session(self.bundle.onnx, threads=threads, source=self.bundle.source)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        self.input_name = inputs[0].name
        n_out = outputs[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(self.classes):
            raise ModelError(
                f"{self.bundle.source}: model has {n_out} outputs but bundle.json names {len(self.classes)} classes"
            )
        wrong = [d for d in inputs[0].shape[1:3] if isinstance(d, int) and d != self.input_size]  # N x S x S x 3
        if wrong:
            raise ModelError(
                f"{self.bundle.source}: model takes {wrong[0]} px crops but bundle.json says {self.input_size}"
            )

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities per crop; an empty batch gives an empty (0×C) array without running the model."""
        if len(crops) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        (probabilities,) = self.session.run(None, {self.input_name: crops.astype(np.float32)})
        return probabilities
