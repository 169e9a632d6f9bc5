"""Keras classifier → ONNX bytes, with a Keras-vs-ONNX parity figure.

tf2onnx's ``from_function`` (what ``keras.Model.export(format="onnx")`` calls) lists
every input of the traced function as a graph input, and that includes the constant
tensors a layer captures: the mean and variance of a ``Normalization`` layer
(DenseNet's ImageNet normalisation, EfficientNet's own) became required ONNX inputs
that no caller can feed. Here the function is traced and frozen first (captures become
constants), and only the real input, the pixels, is named to the converter.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterator

import keras
import numpy as np

from maskwatch.errors import ModelError

INPUT_NAME = "pixels"
OUTPUT_NAME = "probabilities"
OPSET = 17
"""ONNX opset of exported bundles (the ONNX Runtime versions maskwatch supports all run it)."""


@contextlib.contextmanager
def _silent() -> Iterator[None]:
    """TensorFlow and tf2onnx log deprecations and progress to stderr while converting; a user sees none of it."""
    loggers = [logging.getLogger(name) for name in ("tensorflow", "tf2onnx", "absl")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR + 10)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def onnx_bytes(model: keras.Model) -> bytes:
    """The model as ONNX (one input ``pixels``: N×S×S×3 float RGB 0..255, one output ``probabilities``).

    Any converter failure is one ``ModelError`` line.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow as tf
        import tf2onnx
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    except ImportError as exc:
        raise ModelError(f"ONNX export needs TensorFlow and tf2onnx ({exc}): pip install 'maskwatch[train]'") from None
    try:
        with _silent():
            with contextlib.suppress(ImportError):  # tf2onnx still reads np.object & co., gone in NumPy 2:
                from keras.src.export.tf2onnx_lib import patch_tf2onnx  # Keras' own export patches it so

                patch_tf2onnx()
            signature = [tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=INPUT_NAME)]
            traced = tf.function(lambda pixels: model(pixels, training=False), input_signature=signature)
            concrete = traced.get_concrete_function()
            captured = {id(inner) for _, inner in concrete.graph.captures}
            inputs = [t.name for t in concrete.inputs if id(t) not in captured]
            outputs = [t.name for t in concrete.outputs]
            frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False, aggressive_inlining=True)
            proto, _ = tf2onnx.convert.from_graph_def(
                frozen.graph.as_graph_def(add_shapes=True),
                name=model.name,
                input_names=inputs,
                output_names=outputs,
                opset=OPSET,
                tensors_to_rename={inputs[0]: INPUT_NAME, outputs[0]: OUTPUT_NAME},
            )
    except Exception as exc:  # tf2onnx and TensorFlow raise many kinds; the user needs one line
        raise ModelError(f"ONNX export failed: {' '.join(str(exc).split())[:200] or type(exc).__name__}") from None
    return proto.SerializeToString()


def onnx_parity(model: keras.Model, onnx_model: bytes, sample: np.ndarray) -> float:
    """The largest |Keras - ONNX| probability difference on ``sample`` (0.0 for no sample).

    A model whose graph has inputs besides the pixels fails here, in one line, rather than in ``detect``.
    """
    if len(sample) == 0:
        return 0.0
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    if names != [INPUT_NAME]:
        raise ModelError(f"ONNX export failed: the graph takes {names}, not only {INPUT_NAME!r}")
    x = sample.astype(np.float32)
    expected = model.predict(x, batch_size=len(x), verbose=0)
    (got,) = session.run(None, {INPUT_NAME: x})
    return float(np.abs(expected - got).max())
