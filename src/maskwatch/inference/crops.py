"""Face crops: the single definition shared by training, collect and inference.

Every face is cut the same way (a square around the detector box, widened by a
margin, edges replicated where it leaves the image, resized) so a model never
learns the framing of a data source instead of the mask.
"""

from __future__ import annotations

import cv2
import numpy as np

from maskwatch.faces import Box

DEFAULT_MARGIN = 0.2
"""Fraction of the box's longer side added on each side: keeps chin and mask in view."""


def square_box(box: Box, margin: float = DEFAULT_MARGIN) -> tuple[int, int, int, int]:
    """The square (x1, y1, x2, y2) around ``box``'s centre with ``margin`` added on each side."""
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    left, top = int(round(cx - side / 2.0)), int(round(cy - side / 2.0))
    size = max(1, int(round(side)))
    return left, top, left + size, top + size


def crop_face(image_bgr: np.ndarray, box: Box, size: int, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """The face as an RGB ``size``×``size`` uint8 array, ready for a classifier."""
    h, w = image_bgr.shape[:2]
    x1, y1, x2, y2 = square_box(box, margin)
    pad = max(0, -x1, -y1, x2 - w, y2 - h)
    if pad:
        image_bgr = cv2.copyMakeBorder(image_bgr, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x1, y1, x2, y2 = x1 + pad, y1 + pad, x2 + pad, y2 + pad
    patch = image_bgr[y1:y2, x1:x2]
    interpolation = cv2.INTER_AREA if patch.shape[0] > size else cv2.INTER_LINEAR
    patch = cv2.resize(patch, (size, size), interpolation=interpolation)
    return cv2.cvtColor(patch, cv2.COLOR_BGR2RGB)


def whole_image_box(image_bgr: np.ndarray) -> Box:
    """The box used when no face is found in a training image: the whole image, no margin."""
    h, w = image_bgr.shape[:2]
    return (0.0, 0.0, float(w), float(h))
