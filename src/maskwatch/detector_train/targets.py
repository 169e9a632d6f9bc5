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


def detection_loss(target, pred, class_weight: float = 0.5, size_weight: float = 1.0):
    """Focal heatmap loss + L1 on log size and offset + class cross-entropy, all per positive."""
    import tensorflow as tf

    heat_gt, pos, ignore = target[..., 0], target[..., 5], target[..., 7]
    logit = pred[..., 0]
    p = tf.sigmoid(logit)
    log_p, log_not_p = -tf.nn.softplus(-logit), -tf.nn.softplus(logit)
    pos_loss = -log_p * tf.square(1 - p) * pos
    neg_loss = -log_not_p * tf.square(p) * tf.pow(1 - heat_gt, 4) * (1 - pos) * (1 - ignore)
    n = tf.maximum(tf.reduce_sum(pos), 1.0)
    heat = (tf.reduce_sum(pos_loss) + tf.reduce_sum(neg_loss)) / n
    size = tf.reduce_sum(tf.abs(pred[..., 1:3] - target[..., 1:3]) * pos[..., None]) / n
    offset = tf.reduce_sum(tf.abs(pred[..., 3:5] - target[..., 3:5]) * pos[..., None]) / n
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(target[..., 6], tf.int32), pred[..., 5:])
    cls = tf.reduce_sum(ce * pos) / n
    total = heat + size_weight * size + offset + class_weight * cls
    return total, {"heat": heat, "size": size, "offset": offset, "cls": cls}
