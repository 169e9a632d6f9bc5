"""The maskface network: MobileNetV2 trunk, a light FPN down to stride 4 and a CenterNet-style head.

One fully convolutional graph with a free input size (multiples of 32), so the
detector can letterbox a 640×480 frame to 320×256 instead of a padded square,
and run larger inputs for tiny faces without retraining.
"""

from __future__ import annotations

from pathlib import Path

from maskwatch.detectors.maskface import HEAD_CHANNELS, NUM_CLASSES, STRIDE

TRUNK_LAYERS = ("block_2_add", "block_5_add", "block_12_add", "block_16_project_BN")
"""MobileNetV2 outputs at strides 4, 8, 16 and 32 (the last before the wide 1280-channel conv)."""

DEFAULT_WEIGHTS = Path("../shared/weights/mobilenet_v2_0.35_no_top.weights.h5")

HEAT_PRIOR_BIAS = -4.6
"""Heatmap logit bias at init (sigmoid ≈ 0.01), so the focal loss does not start swamped by background."""


def build_model(alpha: float = 0.35, weights: str | Path | None = None, width: int = 32):
    """The Keras model: RGB 0..255 float input of any size divisible by 32 → raw maps at stride 4.

    Output channels: [heat logit, log w, log h, dx, dy, class logits × NUM_CLASSES].
    """
    import keras
    from keras import layers

    trunk = keras.applications.MobileNetV2(
        alpha=alpha,
        include_top=False,
        weights=str(weights) if weights else None,
        input_shape=(None, None, 3),
    )
    image = keras.Input((None, None, 3), name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalise")(image)
    features = keras.Model(trunk.input, [trunk.get_layer(n).output for n in TRUNK_LAYERS], name="trunk")(x)

    def lateral(t, name: str):
        t = layers.Conv2D(width, 1, use_bias=False, name=f"{name}_lat")(t)
        return layers.BatchNormalization(name=f"{name}_lat_bn")(t)

    def smooth(t, name: str):
        t = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")(t)
        t = layers.BatchNormalization(name=f"{name}_dw_bn")(t)
        t = layers.ReLU(name=f"{name}_dw_relu")(t)
        t = layers.Conv2D(width, 1, use_bias=False, name=f"{name}_pw")(t)
        t = layers.BatchNormalization(name=f"{name}_pw_bn")(t)
        return layers.ReLU(name=f"{name}_pw_relu")(t)

    c2, c3, c4, c5 = features
    p = smooth(lateral(c5, "p5"), "p5")
    for level, c in (("p4", c4), ("p3", c3), ("p2", c2)):
        p = layers.UpSampling2D(2, interpolation="nearest", name=f"{level}_up")(p)
        p = layers.Add(name=f"{level}_add")([p, lateral(c, level)])
        p = smooth(p, level)
    p = smooth(p, "head")
    heat = layers.Conv2D(
        1, 3, padding="same", bias_initializer=keras.initializers.Constant(HEAT_PRIOR_BIAS), name="heat"
    )(p)
    box = layers.Conv2D(4, 3, padding="same", name="box")(p)
    cls = layers.Conv2D(NUM_CLASSES, 1, name="cls")(p)
    out = layers.Concatenate(name="maps")([heat, box, cls])
    assert out.shape[-1] == HEAD_CHANNELS and STRIDE == 4
    return keras.Model(image, out, name="maskface")


def export_onnx(model, path: str | Path) -> Path:
    """Write the model as ONNX (dynamic batch, height and width); returns the path."""
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model(np.zeros((1, 64, 64, 3), np.float32), training=False)
    model.export(str(path), format="onnx", verbose=False)
    return path
