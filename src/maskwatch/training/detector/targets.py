"""CenterNet-style training targets and losses for maskface.

Targets are packed into one float array per image so a batch is a single tensor:
channel 0 the Gaussian heatmap, 1–4 the box regression (log w, log h, dx, dy),
5 the centre mask, 6 the class index, 7 the ignore mask (faces too small or cut
by the crop: neither positive nor punished as background).
"""

from __future__ import annotations

import numpy as np

from maskwatch.detectors.maskface import STRIDE

TARGET_CHANNELS = 8
LABELS = {"with_mask": 0, "without_mask": 1, "mask_weared_incorrect": 2, "incorrect_mask": 2}
"""Dataset label → class index of the head (VOC scenes spell the third class mask_weared_incorrect)."""


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius: a centre shifted this far still gives a box with IoU ≥ min_overlap."""
    a1, b1 = 1.0, height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + np.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2 = 4.0, 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + np.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + np.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return float(min(r1, r2, r3))


def encode_targets(
    boxes: np.ndarray, labels: np.ndarray, ignore: np.ndarray, height: int, width: int, stride: int = STRIDE
) -> np.ndarray:
    """Boxes (N×4, input pixels) → target maps (height/stride × width/stride × TARGET_CHANNELS)."""
    out_h, out_w = height // stride, width // stride
    target = np.zeros((out_h, out_w, TARGET_CHANNELS), np.float32)
    ys, xs = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) if len(boxes) else np.zeros(0)
    for i in np.argsort(-areas, kind="stable"):  # small faces last: they win a shared centre cell
        x1, y1, x2, y2 = (float(v) / stride for v in boxes[i])
        w, h = x2 - x1, y2 - y1
        if w <= 0 or h <= 0:
            continue
        if ignore[i]:
            c1, r1 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
            c2, r2 = min(out_w, int(np.ceil(x2))), min(out_h, int(np.ceil(y2)))
            target[r1:r2, c1:c2, 7] = 1.0
            continue
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        col, row = min(out_w - 1, max(0, int(cx))), min(out_h - 1, max(0, int(cy)))
        radius = max(0.0, gaussian_radius(h, w))
        sigma = (2 * int(radius) + 1) / 6
        gaussian = np.exp(-((xs - col) ** 2 + (ys - row) ** 2) / (2 * sigma**2))
        target[..., 0] = np.maximum(target[..., 0], gaussian)
        target[row, col, 0] = 1.0
        target[row, col, 1:5] = (np.log(w), np.log(h), cx - col, cy - row)
        target[row, col, 5] = 1.0
        target[row, col, 6] = float(labels[i])
    target[..., 7] *= 1.0 - target[..., 5]
    return target


def loss_parts(target, pred, class_weight: float = 0.5, size_weight: float = 1.0) -> dict:
    """Focal heatmap loss + L1 on log size and offset + class cross-entropy, all per positive; ``loss`` is their
    weighted sum. Written in ``keras.ops``, so it trains on any Keras backend (TensorFlow here, JAX on a GPU
    machine without TensorFlow)."""
    from keras import ops

    heat_gt, pos, ignore = target[..., 0], target[..., 5], target[..., 7]
    logit = pred[..., 0]
    p = ops.sigmoid(logit)
    log_p, log_not_p = -ops.softplus(-logit), -ops.softplus(logit)
    pos_loss = -log_p * ops.square(1 - p) * pos
    neg_loss = -log_not_p * ops.square(p) * ops.power(1 - heat_gt, 4) * (1 - pos) * (1 - ignore)
    n = ops.maximum(ops.sum(pos), 1.0)
    heat = (ops.sum(pos_loss) + ops.sum(neg_loss)) / n
    size = ops.sum(ops.abs(pred[..., 1:3] - target[..., 1:3]) * pos[..., None]) / n
    offset = ops.sum(ops.abs(pred[..., 3:5] - target[..., 3:5]) * pos[..., None]) / n
    ce = ops.sparse_categorical_crossentropy(ops.cast(target[..., 6], "int32"), pred[..., 5:], from_logits=True)
    cls = ops.sum(ce * pos) / n
    total = heat + size_weight * size + offset + class_weight * cls
    return {"loss": total, "heat": heat, "size": size, "offset": offset, "cls": cls}


def loss_part(name: str):
    """One part of ``loss_parts`` as a Keras loss or metric function named after it."""

    def part(target, pred):
        return loss_parts(target, pred)[name]

    part.__name__ = name
    return part
