"""The classifier: backbone → global average pooling → dropout → dense softmax.

The head's layers are shared between the full model and a features-only head model,
so the head can be trained on cached frozen-backbone features (fast on a CPU) and
then fine-tuned inside the full model without copying weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from maskwatch.training.classifier.backbones import Backbone, build_base


@dataclass
class Classifier:
    model: keras.Model
    """Pixels (RGB 0..255) → class probabilities."""
    base: keras.Model
    features: keras.Model
    """Pixels → pooled backbone features (frozen base, inference mode)."""
    head: keras.Model
    """Pooled features → class probabilities (the same dropout and dense layers as ``model``)."""


def build_classifier(
    spec: Backbone, size: int, weights: str | None, n_classes: int, alpha: float = 1.0, dropout: float = 0.2
) -> Classifier:
    base = build_base(spec, size, weights, alpha)
    base.trainable = False
    preprocess = spec.preprocess()
    pool = layers.GlobalAveragePooling2D(name="pool")
    drop = layers.Dropout(dropout, name="dropout")
    dense = layers.Dense(n_classes, activation="softmax", name="classes")

    pixels = keras.Input((size, size, 3), name="pixels")
    pooled = pool(base(preprocess(pixels), training=False))  # BatchNorm stays in inference mode when fine-tuning
    model = keras.Model(pixels, dense(drop(pooled)), name=f"maskwatch_{spec.name}")
    features = keras.Model(pixels, pooled, name="features")
    feature_in = keras.Input((pooled.shape[-1],), name="features_in")
    head = keras.Model(feature_in, dense(drop(feature_in)), name="head")
    return Classifier(model, base, features, head)


def unfreeze_top(base: keras.Model, fraction: float) -> int:
    """Make the top ``fraction`` of the base's layers trainable (BatchNorm layers stay frozen); returns how many."""
    base.trainable = True
    cut = int(len(base.layers) * (1.0 - fraction))
    count = 0
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= cut and not isinstance(layer, layers.BatchNormalization)
        count += int(layer.trainable and bool(layer.weights))
    return count
