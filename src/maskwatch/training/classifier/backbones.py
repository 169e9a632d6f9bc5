"""Backbones for transfer learning, each with the input normalisation its weights expect.

Every backbone takes RGB pixels in 0..255 and normalises them inside the graph, so
the exported ONNX model needs no preprocessing outside it. Weights come from
``imagenet`` (Keras downloads them), a local file, or ``none`` (train from scratch).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import keras
from keras import layers

from maskwatch.errors import InputError, ModelError
from maskwatch.training.classifier import BACKBONE_MIN_SIZE, check_backbone_name

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _scale_minus_one() -> layers.Layer:
    return layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")


def _torch_normalise() -> layers.Layer:
    """DenseNet's ImageNet weights expect (x/255 - mean) / std per channel."""
    mean = [255.0 * m for m in IMAGENET_MEAN]
    variance = [(255.0 * s) ** 2 for s in IMAGENET_STD]
    return layers.Normalization(mean=mean, variance=variance, name="preprocess")


def _identity() -> layers.Layer:
    """EfficientNet rescales and normalises inside its own graph."""
    return layers.Identity(name="preprocess")


def _small_cnn(input_shape: tuple[int, int, int], weights: str | None, **_: object) -> keras.Model:
    """Four conv blocks (32-256 filters): a face-sized CNN that trains from scratch in minutes on a CPU."""
    if weights is not None:
        raise ModelError("smallcnn has no pretrained weights; use --weights none")
    inputs = keras.Input(input_shape)
    x = inputs
    for i, filters in enumerate((32, 64, 128, 256)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        x = layers.BatchNormalization(name=f"bn{i + 1}")(x)
        x = layers.ReLU(name=f"relu{i + 1}")(x)
        x = layers.MaxPooling2D(name=f"pool{i + 1}")(x)
    return keras.Model(inputs, x, name="smallcnn")


@dataclass(frozen=True)
class Backbone:
    """How to build one backbone family and normalise its input."""

    name: str
    build: Callable[..., keras.Model]
    preprocess: Callable[[], layers.Layer]
    takes_alpha: bool = False

    @property
    def min_size(self) -> int:
        """Smallest input side (kept in ``maskwatch.training.classifier`` so it is checked before Keras loads)."""
        return BACKBONE_MIN_SIZE[self.name]

    def describe(self, alpha: float) -> str:
        return f"{self.name}(alpha={alpha:g})" if self.takes_alpha else self.name


BACKBONES: dict[str, Backbone] = {
    "mobilenetv2": Backbone("mobilenetv2", keras.applications.MobileNetV2, _scale_minus_one, takes_alpha=True),
    "mobilenet": Backbone("mobilenet", keras.applications.MobileNet, _scale_minus_one, takes_alpha=True),
    "xception": Backbone("xception", keras.applications.Xception, _scale_minus_one),
    "densenet169": Backbone("densenet169", keras.applications.DenseNet169, _torch_normalise),
    "efficientnetb0": Backbone("efficientnetb0", keras.applications.EfficientNetB0, _identity),
    "smallcnn": Backbone("smallcnn", _small_cnn, lambda: layers.Rescaling(1.0 / 255.0, name="preprocess")),
}


def backbone_spec(name: str) -> Backbone:
    check_backbone_name(name)
    return BACKBONES[name]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keras prints and warns while building and exporting models; users see one line per problem instead."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def build_base(spec: Backbone, size: int, weights: str | None, alpha: float = 1.0) -> keras.Model:
    """The backbone without its top, loaded with ``weights``; any load failure becomes one ``ModelError`` line."""
    if size < spec.min_size:
        raise InputError(f"{spec.name} needs an input size of at least {spec.min_size} px, got {size}")
    kwargs: dict[str, object] = {"include_top": False, "weights": weights, "input_shape": (size, size, 3)}
    if spec.takes_alpha:
        kwargs["alpha"] = alpha
    if spec.name == "smallcnn":
        kwargs = {"input_shape": (size, size, 3), "weights": weights}
    try:
        with quiet():
            return spec.build(**kwargs)
    except ModelError:
        raise
    except Exception as exc:  # Keras raises ValueError, OSError, URL errors... for a bad or missing file
        text = " ".join(str(exc).split())
        if weights == "imagenet":
            raise ModelError(
                f"cannot get ImageNet weights for {spec.describe(alpha)} ({text[:160]}); "
                "pass a local file with --weights FILE, or --weights none to train from scratch"
            ) from None
        if weights is not None:
            raise ModelError(f"{weights}: not weights for {spec.describe(alpha)} ({text[:200]})") from None
        raise ModelError(f"cannot build {spec.describe(alpha)}: {text[:200]}") from None
