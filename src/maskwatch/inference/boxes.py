"""Box maths shared by detectors, the tracker and scene metrics: IoU, containment, non-maximum suppression.

Boxes are N×4 arrays of x1, y1, x2, y2 in pixels.
"""

from __future__ import annotations

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a`` (N×4) and ``b`` (M×4), as x1, y1, x2, y2."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def inside_larger(box: tuple[float, ...], whole: np.ndarray, cover: float = 0.6, ratio: float = 2.0) -> bool:
    """Whether ``box`` lies mostly (``cover``) inside one of ``whole`` at least ``ratio`` times its area.

    Such a box is a face part (eyes, a cheek, just the mask) that a detector called a face
    while the real face is boxed too: a zoomed tile sees only part of a face, and two
    merged detectors may each box a different extent.
    """
    if len(whole) == 0:
        return False
    x1, y1, x2, y2 = box
    area = max((x2 - x1) * (y2 - y1), 1e-6)
    iw = np.clip(np.minimum(whole[:, 2], x2) - np.maximum(whole[:, 0], x1), 0, None)
    ih = np.clip(np.minimum(whole[:, 3], y2) - np.maximum(whole[:, 1], y1), 0, None)
    big = (whole[:, 2] - whole[:, 0]) * (whole[:, 3] - whole[:, 1]) >= ratio * area
    return bool(np.any(big & (iw * ih / area >= cover)))


def nms_clusters(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[np.ndarray]:
    """Greedy NMS as clusters: indices of each kept box (first) and of the boxes it suppresses, best first."""
    order = np.argsort(-scores, kind="stable")
    overlaps = iou_matrix(boxes[order], boxes[order])
    remaining = np.ones(len(order), dtype=bool)
    clusters = []
    for i in range(len(order)):
        if not remaining[i]:
            continue
        cluster = remaining & (overlaps[i] >= iou_threshold)
        cluster[i] = True
        members = np.flatnonzero(cluster)
        clusters.append(order[np.concatenate([[i], members[members != i]])])
        remaining &= ~cluster
    return clusters


def score_weighted_mean(values: np.ndarray, scores: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    """Mean of ``values[cluster]`` (boxes, keypoints, probabilities) weighted by the members' scores."""
    weights = scores[cluster][:, None]
    return (values[cluster] * weights).sum(0) / weights.sum()


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, extra: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Suppress overlapping boxes, averaging each cluster weighted by score (as MediaPipe does).

    Averaging steadies boxes from frame to frame compared with plain NMS. ``extra``
    (e.g. keypoints, N×K) is averaged with the same weights.
    """
    out_boxes, out_scores, out_extra = [], [], []
    for cluster in nms_clusters(boxes, scores, iou_threshold):
        out_boxes.append(score_weighted_mean(boxes, scores, cluster))
        out_scores.append(scores[cluster[0]])
        if extra is not None:
            out_extra.append(score_weighted_mean(extra, scores, cluster))
    if not out_boxes:
        empty_extra = np.zeros((0,) + extra.shape[1:], np.float32) if extra is not None else None
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), empty_extra
    return (
        np.asarray(out_boxes, np.float32),
        np.asarray(out_scores, np.float32),
        np.asarray(out_extra, np.float32) if extra is not None else None,
    )
