"""Load a maskface ONNX export back into the Keras model, so a shipped detector can be fine-tuned.

The ONNX file is the only thing a user (or a later training session) is sure to have: the
Keras checkpoint stays in the run folder it was trained in. The export folds every batch
normalisation into its convolution (pointwise) or into a Mul/Add pair after it (depthwise),
so the normalisation statistics are gone. Each BN is rebuilt to reproduce that affine map
exactly in inference mode, with moving statistics measured on training samples so that
training mode (batch statistics) starts from nearly the same function.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import numpy as np

from maskwatch.errors import InputError

_LAYER = re.compile(r"/([A-Za-z0-9_]+?)_1/(?:convolution|depthwise)")
_BN = re.compile(r"/([A-Za-z0-9_]+?)_1/batchnorm/")
PACKAGED = "packaged"
"""``--init packaged`` names the maskface model shipped in the package."""


def resolve_init(value: str) -> bytes:
    """The ONNX bytes for ``--init``: a file path or ``packaged``."""
    if value == PACKAGED:
        from maskwatch.detectors.maskface import MODEL_FILE

        model = resources.files("maskwatch.packaged").joinpath(MODEL_FILE)
        if not model.is_file():
            raise InputError("no maskface model is packaged in this install; pass an .onnx path to --init")
        return model.read_bytes()
    path = Path(value)
    if not path.is_file():
        raise InputError(f"{path}: --init model not found")
    return path.read_bytes()


def read_init(value: str) -> tuple[bytes, int]:
    """The ONNX bytes and FPN width of ``--init``; an unreadable model's error names the file."""
    data = resolve_init(value)
    try:
        return data, onnx_width(data)
    except InputError as exc:
        raise InputError(f"{value}: {exc}") from None


def onnx_width(data: bytes) -> int:
    """FPN width of a maskface export (channels of its p5 lateral convolution)."""
    initializers = _initializers(_load(data))
    for name, value in initializers.items():
        if "/p5_lat_1/" in name and value.ndim == 4:
            return int(value.shape[0])
    raise InputError("--init: not a maskface ONNX model (no p5_lat convolution)")


def _load(data: bytes):
    import onnx

    try:
        return onnx.load_from_string(data)
    except Exception as exc:  # onnx raises protobuf DecodeError and friends
        raise InputError(f"--init: not a readable ONNX model ({type(exc).__name__})") from None


def _initializers(model) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _all_layers(model) -> dict[str, object]:
    layers: dict[str, object] = {}
    for layer in model.layers:
        layers[layer.name] = layer
        if hasattr(layer, "layers"):
            layers.update(_all_layers(layer))
    return layers


def folded_parameters(data: bytes, model) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], int]:
    """Set every convolution of ``model`` from the ONNX graph.

    Returns BN name → (scale, bias) that the export folded away, and the number of convolutions set.
    """
    onnx_model = _load(data)
    graph, values = onnx_model.graph, _initializers(onnx_model)
    layers = _all_layers(model)
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def constant_input(node) -> np.ndarray:
        found = [values[name] for name in node.input if name in values]
        if len(found) != 1:
            raise InputError(f"--init: unexpected graph around {node.name}; not a maskface export")
        return found[0].reshape(-1)

    def next_node(node, op: str):
        nodes = [n for n in consumers.get(node.output[0], []) if n.op_type == op]
        if len(nodes) != 1:
            raise InputError(f"--init: no {op} after {node.name}; not a maskface export")
        return nodes[0]

    folded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    done: set[str] = set()
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        match = _LAYER.search(node.name) or _LAYER.search(node.input[1])
        layer = layers.get(match.group(1)) if match else None
        if layer is None or node.input[1] not in values:
            raise InputError(f"--init: convolution {node.name} matches no layer of the maskface model")
        weight = values[node.input[1]]
        depthwise = type(layer).__name__ == "DepthwiseConv2D"
        kernel = weight.transpose(2, 3, 0, 1) if depthwise else weight.transpose(2, 3, 1, 0)
        own = layer.get_weights()
        if own[0].shape != kernel.shape:
            raise InputError(
                f"--init: layer {layer.name} has shape {kernel.shape} in the ONNX model, {own[0].shape} here"
            )
        done.add(layer.name)
        if layer.use_bias:
            layer.set_weights([kernel, values[node.input[2]].reshape(own[1].shape)])
            continue
        layer.set_weights([kernel])
        if len(node.input) == 3:
            bn_match = _BN.search(node.input[2])
            bias = values[node.input[2]]
            scale = np.ones_like(bias)
        else:
            mul = next_node(node, "Mul")
            bn_match = _BN.search(mul.name)
            scale, bias = constant_input(mul), constant_input(next_node(mul, "Add"))
        if bn_match is None or bn_match.group(1) not in layers:
            raise InputError(f"--init: no batch normalisation found after {node.name}")
        folded[bn_match.group(1)] = (scale.astype(np.float64), bias.reshape(-1).astype(np.float64))
    missing = [
        name
        for name, layer in layers.items()
        if type(layer).__name__ in ("Conv2D", "DepthwiseConv2D", "BatchNormalization")
        and name not in done
        and name not in folded
    ]
    if missing:
        raise InputError(f"--init: the ONNX model has no weights for {', '.join(missing[:4])}")
    return folded, len(done)


def load_onnx_weights(model, data: bytes, calibration: Iterable[np.ndarray]) -> int:
    """Set ``model``'s weights from a maskface ONNX export; returns the number of layers set.

    ``calibration``: batches of training images (RGB 0..255) to measure each BN's input statistics.
    """
    import keras

    folded, convolutions = folded_parameters(data, model)
    layers = _all_layers(model)
    norms = {name: layers[name] for name in folded}
    for name, layer in norms.items():
        scale, bias = folded[name]
        eps = layer.epsilon
        layer.set_weights([scale, bias, np.zeros_like(scale), np.full_like(scale, 1.0 - eps)])

    trunk = model.get_layer("trunk")
    normalise = model.get_layer("normalise")
    inner = [layer for layer in trunk.layers if layer.name in norms]
    outer = [layer for layer in model.layers if layer.name in norms]
    probe_trunk = keras.Model(trunk.input, [layer.input for layer in inner])
    probe_head = keras.Model(model.input, [layer.input for layer in outer])
    sums: dict[str, np.ndarray] = {}
    squares: dict[str, np.ndarray] = {}
    count: dict[str, float] = {}
    for images in calibration:
        images = np.asarray(images, np.float32)
        inside = probe_trunk(normalise(images), training=False)  # the trunk sees the model's own scaling
        heads = probe_head(images, training=False)
        for layer, value in [*zip(inner, inside), *zip(outer, heads)]:
            flat = np.asarray(value, np.float64).reshape(-1, value.shape[-1])
            sums[layer.name] = sums.get(layer.name, 0.0) + flat.sum(0)
            squares[layer.name] = squares.get(layer.name, 0.0) + (flat**2).sum(0)
            count[layer.name] = count.get(layer.name, 0.0) + len(flat)
    if not count:
        raise InputError("--init: no calibration images")
    for name, layer in norms.items():
        scale, bias = folded[name]
        mean = sums[name] / count[name]
        var = np.maximum(squares[name] / count[name] - mean**2, 0.0)
        gamma = scale * np.sqrt(var + layer.epsilon)
        layer.set_weights([gamma, scale * mean + bias, mean, var])
    return convolutions + len(folded)
