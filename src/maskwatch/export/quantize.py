"""Static int8 quantisation with ONNX Runtime's tools, in the form that runs fastest on its CPU kernels.

QOperator form (QLinearConv and friends: one fused int8 kernel per op) rather than QDQ (float ops wrapped in
Quantize/Dequantize pairs, which the CPU provider must first fuse back, and does not for every pattern);
per-channel weight scales, which keep a MobileNet's depthwise convolutions accurate where one scale per tensor
loses them; uint8 activations and int8 weights (the u8s8 kernels). The output heads stay in float (the last
convolutions or dense layer and what follows them): one uint8 scale shared by a detector's heat, size, offset and
class maps rounds the small ones away, and a softmax in uint8 rounds probabilities to 1/256; they are a sliver of
the work. The figures behind these choices are in docs/export.md.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maskwatch.errors import ModelError, first_line, require_extra

SETTINGS: dict[str, Any] = {
    "tool": "onnxruntime.quantization.quantize_static",
    "quant_format": "QOperator",
    "per_channel": True,
    "activation_type": "QUInt8",
    "weight_type": "QInt8",
    "calibrate_method": "MinMax",
    "float_nodes": "output heads",
}
"""What ``quantize`` does, recorded in every export's metadata."""


class _Feeds:
    """ONNX Runtime's CalibrationDataReader interface over a list of input feeds."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)

    def rewind(self) -> None:  # part of the interface; one calibration pass needs no second
        pass


HEAD_OPS = ("Conv", "MatMul", "Gemm")
"""Where a walk back from the outputs stops: the layers that compute the heads."""


def output_heads(graph: Any, include_heads: bool = True) -> list[str]:
    """Names of the nodes between the graph's outputs and the nearest convolutions or matrix products (those
    included unless ``include_heads`` is false): what is kept in float."""
    producer = {out: node for node in graph.node for out in node.output}
    todo, heads, seen = [o.name for o in graph.output], [], set()
    while todo:
        node = producer.get(todo.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type not in HEAD_OPS:
            heads.append(node.name)
            todo.extend(node.input)
        elif include_heads:
            heads.append(node.name)
    return heads


def _float_nodes(graph: Any, rule: str) -> list[str]:
    if rule == "output heads":
        return output_heads(graph)
    if rule == "after the heads":
        return output_heads(graph, include_heads=False)
    return []


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The quantiser logs a warning for every tensor it leaves in float (shape arithmetic): noise to a user."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def quantize(model: bytes, feeds: Sequence[dict[str, np.ndarray]], settings: dict[str, Any] | None = None) -> bytes:
    """An int8 copy of ``model`` calibrated on ``feeds`` (inputs as the model is run on them)."""
    require_extra("onnx", "export", "int8 export")
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import CalibrationMethod
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not feeds:
        raise ModelError("no calibration inputs: the calibration data gave the model nothing to run on")
    chosen = {**SETTINGS, **(settings or {})}
    with _quiet(), tempfile.TemporaryDirectory(prefix="maskwatch-quantize-") as tmp:
        source, prepared, out = Path(tmp, "float.onnx"), Path(tmp, "prepared.onnx"), Path(tmp, "int8.onnx")
        source.write_bytes(model)
        try:
            # Folds constants and infers shapes so every tensor gets a scale; symbolic shape inference would need
            # sympy, and these models' shapes are static but for the batch and image size.
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            prepared_model = onnx.load(str(prepared))
            graph = prepared_model.graph
            names = {node.name for node in graph.node}
            for i, node in enumerate(graph.node):  # the quantiser names nodes to leave in float, so each needs one
                if not node.name:
                    node.name = next(
                        f"{node.op_type}_{i}_{k}"
                        for k in range(len(names) + 1)
                        if f"{node.op_type}_{i}_{k}" not in names
                    )
                    names.add(node.name)
            onnx.save(prepared_model, str(prepared))
            quantize_static(
                str(prepared),
                str(out),
                _Feeds(feeds),
                quant_format=getattr(QuantFormat, chosen["quant_format"]),
                per_channel=bool(chosen["per_channel"]),
                activation_type=getattr(QuantType, chosen["activation_type"]),
                weight_type=getattr(QuantType, chosen["weight_type"]),
                calibrate_method=getattr(CalibrationMethod, chosen["calibrate_method"]),
                nodes_to_exclude=_float_nodes(graph, chosen["float_nodes"]),
            )
        except Exception as exc:  # the quantiser raises many kinds for a graph it cannot handle
            raise ModelError(f"int8 quantisation failed: {first_line(exc)}") from None
        return out.read_bytes()
