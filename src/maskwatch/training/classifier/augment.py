"""Image augmentation on face crops (NumPy + OpenCV, seeded, no TensorFlow).

Applied the same way to every class: geometric jitter (rotation, zoom, shift,
shear, flip) so a model cannot key on one source's framing, and photometric
jitter (brightness, contrast, blur, JPEG re-encoding) so it cannot key on one
source's sharpness or compression. Optionally a crop is shrunk to the pixels of a
small face in a crowd photo and enlarged back, as ``detect`` enlarges such a face:
close-up sources (and masks drawn on them) then look like the faces they must
carry over to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    rotation: float = 15.0
    """Degrees, either way."""
    zoom: float = 0.15
    """Scale in 1 ± zoom."""
    shift: float = 0.08
    """Fraction of the side, either way."""
    shear: float = 8.0
    """Degrees, either way."""
    flip: bool = True
    brightness: float = 0.25
    """Added offset as a fraction of 255, either way."""
    contrast: float = 0.25
    """Multiplier in 1 ± contrast around the mean."""
    blur: float = 0.3
    """Probability of a Gaussian blur (3 or 5 px kernel)."""
    jpeg: float = 0.3
    """Probability of re-encoding at JPEG quality 35-90."""
    low_res: float = 0.0
    """Probability of shrinking the crop to ``low_res_sides`` pixels a side and enlarging it back."""
    low_res_sides: tuple[int, int] = (12, 48)
    """Smallest and largest side (px) of the shrunk crop; a face is about 1/1.4 of its crop."""


def augment_one(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """One randomly transformed copy of an RGB uint8 crop, same size."""
    size = image.shape[0]
    angle = rng.uniform(-cfg.rotation, cfg.rotation)
    scale = rng.uniform(1.0 - cfg.zoom, 1.0 + cfg.zoom)
    shear = math.tan(math.radians(rng.uniform(-cfg.shear, cfg.shear)))
    tx, ty = rng.uniform(-cfg.shift, cfg.shift, 2) * size
    centre = size / 2.0
    rotate = np.vstack([cv2.getRotationMatrix2D((centre, centre), angle, scale), [0, 0, 1]])
    shear_m = np.array([[1, shear, -shear * centre], [0, 1, 0], [0, 0, 1]])
    matrix = (rotate @ shear_m)[:2]
    matrix[:, 2] += (tx, ty)
    out = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if cfg.flip and rng.random() < 0.5:
        out = out[:, ::-1]
    pixels = out.astype(np.float32)
    factor = rng.uniform(1.0 - cfg.contrast, 1.0 + cfg.contrast)
    pixels = (pixels - pixels.mean()) * factor + pixels.mean() + rng.uniform(-cfg.brightness, cfg.brightness) * 255
    out = np.clip(pixels, 0, 255).astype(np.uint8)
    if rng.random() < cfg.blur:
        k = int(rng.choice([3, 5]))
        out = cv2.GaussianBlur(out, (k, k), 0)
    if cfg.low_res and rng.random() < cfg.low_res:
        out = shrink_and_enlarge(out, int(rng.integers(cfg.low_res_sides[0], cfg.low_res_sides[1] + 1)))
    if rng.random() < cfg.jpeg:
        ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(35, 91))])
        if ok:
            out = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    return np.ascontiguousarray(out)


def shrink_and_enlarge(image: np.ndarray, side: int) -> np.ndarray:
    """The crop as a ``side``-pixel face would be cut from a photo: area-averaged down, linear back up."""
    size = image.shape[0]
    if side >= size:
        return image
    small = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)


def augment_batch(images: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """A transformed copy of every crop in an N×S×S×3 uint8 batch."""
    return np.stack([augment_one(img, rng, cfg) for img in images]) if len(images) else images.copy()
